/*
 * The managers' reports against the real daemon (SPEC "Reports"):
 *  - GET /v1/nps: the counts (promoters 9-10, passives 7-8, detractors 0-6), the NPS and its
 *    95% margin of error rounded to one decimal on known mixes; an empty database (0
 *    responses, nps and margin null); the echo of the filters and of callbacks.timezone;
 *  - group_by touchpoint and channel (key ascending, the answers without a channel first as
 *    the null group), day, week (ISO) and month as local calendar periods with the UTC
 *    instant they start: across Amsterdam's midnight, both daylight saving changes and the
 *    ISO year's edge, and in another configured time zone; empty periods are not listed;
 *  - the filters touchpoint, channel, from (inclusive) and to (exclusive) on answered_at;
 *  - PATCH /v1/surveys/{id} {"excluded"}: the answer leaves every figure and group (counted
 *    in "excluded" when it matches the filters), stays listed and marked, comes back on
 *    false; its 400s (code and field), 404, 415;
 *  - GET /v1/improvements: what agents recorded, newest first, with counts per area (all
 *    five), per touchpoint and per pair over every match rather than the page; the area,
 *    touchpoint, from and to filters; limit (default 50, at most 500) and cursor paging;
 *  - roles (manager and admin read; ingest and agent 403; no token 401) and bad query
 *    parameters, each a 400 invalid_field naming the parameter.
 * Every error is checked for its status, code and field. One daemon per test, on the fake
 * clock (NPSD_FAKE_CLOCK_FILE) at 2026-12-07T12:00:00Z: answers carry explicit answered_at
 * times on past days, and improvements are recorded at instants the test chooses.
 */
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "npsd/offload.h"
#include "npsd/validate.h"

#include "testutil.h"

/* 2026-12-07T12:00:00Z, a Monday: "now" for every test; all answers lie before it. */
#define T0 INT64_C(1796644800)
#define HOUR 3600
#define PHONE "+31612345678"
#define TOLERANCE 0.051 /* figures are rounded to one decimal */

static const char *const AREAS[5] = { "process", "communication", "service", "product", "other" };

/* ---------- the fixture: one daemon on a fake clock, a token per role ---------- */

static struct npsd_proc D;
static char *T_INGEST, *T_AGENT, *T_MANAGER, *T_ADMIN;
static int seq; /* response and customer ids */

static void start_with(const char *extra_ini)
{
	fake_clock_start(T0);
	seq = 0;
	ck_assert_msg(npsd_start(&D, extra_ini) == 0, "npsd did not start (NPSD_BIN=%s)", npsd_bin());
	T_INGEST = npsctl_key(&D, "ingest", "survey-platform");
	T_AGENT = npsctl_key(&D, "agent", "agent-anna");
	T_MANAGER = npsctl_key(&D, "manager", "manager-mo");
	T_ADMIN = npsctl_key(&D, "admin", "ops-admin");
	ck_assert_msg(T_INGEST && *T_INGEST && T_AGENT && *T_AGENT && T_MANAGER && *T_MANAGER && T_ADMIN &&
	                      *T_ADMIN,
	              "npsctl key create failed");
}

static void setup(void)
{
	start_with(NULL);
}

/* The helper's config already has a [callbacks] section without a timezone; a second
 * header only adds a key not set yet, which the parser accepts. */
static void setup_new_york(void)
{
	start_with("[callbacks]\ntimezone = America/New_York\n");
}

/* Stops npsd with SIGTERM: it must exit 0 (a crash or a sanitizer's exit shows here). */
static void teardown(void)
{
	int status = 0;
	if (D.pid > 0) {
		status = npsd_stop(&D, SIGTERM);
		if (status != 0) {
			char *log = npsd_log(&D);
			size_t len = log ? strlen(log) : 0;
			fprintf(stderr, "it_reports: npsd exit %d; log tail:\n%s\n", status,
			        log ? log + (len > 6000 ? len - 6000 : 0) : "(none)");
			free(log);
		}
	}
	npsd_cleanup(&D);
	free(T_INGEST);
	free(T_AGENT);
	free(T_MANAGER);
	free(T_ADMIN);
	T_INGEST = T_AGENT = T_MANAGER = T_ADMIN = NULL;
	ck_assert_msg(status == 0, "npsd exited %d on SIGTERM", status);
}

/* ---------- small helpers ---------- */

/* A JSON value as text for a failure message (leaked: the test's process ends then). */
static const char *dump(json_t *v)
{
	if (!v)
		return "(absent)";
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
	return s ? s : "(unprintable)";
}

/* A request that must get an answer. */
#define REQ(r, method, path, token, body)                                                                   \
	do {                                                                                                \
		http_json(&D, method, path, token, body, r);                                                \
		ck_assert_msg((r)->curl_code == 0 && (r)->status > 0, "%s %s: no answer (curl %d)", method, \
		              path, (r)->curl_code);                                                        \
	} while (0)

/*
 * The SPEC's error answer: the status, a body that is exactly {"error":{"code","message",
 * "field"}}, the code, a message, and field equal to `field` (NULL: field is null).
 */
#define expect_error(r, status, code, field) expect_error_at(__LINE__, r, status, code, field)
static void expect_error_at(int line, const struct http_result *r, long status, const char *code,
                            const char *field)
{
	ck_assert_msg(r->status == status, "line %d: status %ld, want %ld; body: %.400s", line, r->status,
	              status, r->body);
	ck_assert_msg(json_is_object(r->json) && json_object_size(r->json) == 1,
	              "line %d: body is not {\"error\":…}: %.400s", line, r->body);
	json_t *err = json_object_get(r->json, "error");
	ck_assert_msg(json_is_object(err), "line %d: no error object: %.400s", line, r->body);
	const char *got = sget(err, "code");
	ck_assert_msg(got && strcmp(got, code) == 0, "line %d: code %s, want %s; body: %.400s", line,
	              got ? got : "(none)", code, r->body);
	ck_assert_msg(sget(err, "message") && *sget(err, "message"), "line %d: no message: %.400s", line,
	              r->body);
	json_t *f = json_object_get(err, "field");
	if (field)
		ck_assert_msg(json_is_string(f) && strcmp(json_string_value(f), field) == 0,
		              "line %d: field %s, want %s; body: %.400s", line, dump(f), field, r->body);
	else
		ck_assert_msg(json_is_null(f), "line %d: field must be null; body: %.400s", line, r->body);
}

/* Posts one answer as ingest from a new customer and returns its survey id. channel and
 * answered_at NULL leave them out; with_phone gives the customer a phone (and consent is
 * the default true), so that a low score owes a callback: *ret_callback gets its id, 0
 * when none (ret_callback may be NULL). */
static json_int_t post_full(const char *touchpoint, const char *channel, int score, const char *answered_at,
                            bool with_phone, json_int_t *ret_callback)
{
	char rid[32], customer[32];
	snprintf(rid, sizeof rid, "rep-%d", ++seq);
	snprintf(customer, sizeof customer, "C-rep-%d", seq);
	json_t *doc = json_pack("{s:s, s:{s:s}, s:s, s:i}", "response_id", rid, "customer", "id", customer,
	                        "touchpoint", touchpoint, "score", score);
	ck_assert_ptr_nonnull(doc);
	if (channel)
		json_object_set_new(doc, "channel", json_string(channel));
	if (answered_at)
		json_object_set_new(doc, "answered_at", json_string(answered_at));
	if (with_phone)
		json_object_set_new(json_object_get(doc, "customer"), "phone", json_string(PHONE));
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	struct http_result r;
	REQ(&r, "POST", "/v1/surveys", T_INGEST, text);
	ck_assert_msg(r.status == 201, "POST /v1/surveys %s: %ld %.400s", text, r.status, r.body);
	json_int_t id = iget(r.json, "id");
	if (ret_callback) {
		json_t *cb = json_object_get(r.json, "callback");
		*ret_callback = json_is_object(cb) ? iget(cb, "id") : 0;
	}
	http_result_free(&r);
	free(text);
	return id;
}

/* An answer that owes no call (no phone). */
static json_int_t post(const char *touchpoint, const char *channel, int score, const char *answered_at)
{
	return post_full(touchpoint, channel, score, answered_at, false, NULL);
}

/* ---------- /v1/nps ---------- */

static double round1(double x)
{
	return round(x * 10.0) / 10.0;
}

/* The number at key, which must be JSON null when have is false, else want within
 * TOLERANCE. */
static void expect_number(int line, json_t *obj, const char *key, const char *ctx, bool have, double want)
{
	json_t *v = json_object_get(obj, key);
	if (!have) {
		if (!json_is_null(v))
			ck_abort_msg("line %d: %s: \"%s\" is %s, want null", line, ctx, key, dump(v));
		return;
	}
	if (!json_is_number(v) || fabs(json_number_value(v) - want) > TOLERANCE)
		ck_abort_msg("line %d: %s: \"%s\" is %s, want %.1f", line, ctx, key, dump(v), want);
}

/* obj (the answer or a group) holds p promoters, a passives, d detractors, and the NPS and
 * margin of error they make: 100 (p - d) / n and 196 sqrt((p + d - (p - d)^2) / n) with p
 * and d as shares, each rounded to one decimal, both null for no answer. */
#define expect_figures(obj, ctx, p, a, d) expect_figures_at(__LINE__, obj, ctx, p, a, d)
static void expect_figures_at(int line, json_t *obj, const char *ctx, int p, int a, int d)
{
	const int n = p + a + d;
	const char *const keys[4] = { "responses", "promoters", "passives", "detractors" };
	const int want[4] = { n, p, a, d };
	for (size_t i = 0; i < 4; i++) {
		json_t *v = json_object_get(obj, keys[i]);
		if (!json_is_integer(v) || json_integer_value(v) != want[i])
			ck_abort_msg("line %d: %s: \"%s\" is %s, want %d in %s", line, ctx, keys[i], dump(v),
			             want[i], dump(obj));
	}
	double ps = n ? (double)p / n : 0, ds = n ? (double)d / n : 0;
	double spread = ps + ds - (ps - ds) * (ps - ds);
	expect_number(line, obj, "nps", ctx, n > 0, round1(100.0 * (p - d) / (n ? n : 1)));
	expect_number(line, obj, "margin_of_error", ctx, n > 0,
	              round1(196.0 * sqrt((spread > 0 ? spread : 0) / (n ? n : 1))));
}

/* key is a string equal to want, or JSON null when want is NULL. */
static void expect_str_or_null(int line, json_t *obj, const char *key, const char *want, const char *ctx)
{
	json_t *v = json_object_get(obj, key);
	bool ok = want ? json_is_string(v) && strcmp(json_string_value(v), want) == 0 : json_is_null(v);
	if (!ok)
		ck_abort_msg("line %d: %s: \"%s\" is %s, want %s", line, ctx, key, dump(v),
		             want ? want : "null");
}

/* GET /v1/nps + query as manager: a 200 whose every member has its type, and "groups" only
 * with a group_by. The answer; the caller decrefs it. */
#define nps(query) nps_at(__LINE__, query)
static json_t *nps_at(int line, const char *query)
{
	char *path = fmt("/v1/nps%s", query);
	struct http_result r;
	REQ(&r, "GET", path, T_MANAGER, NULL);
	if (r.status != 200 || !json_is_object(r.json))
		ck_abort_msg("line %d: GET %s: %ld %.400s", line, path, r.status, r.body);
	json_t *doc = json_incref(r.json);
	http_result_free(&r);
	static const char *const maybe_str[] = { "from", "to", "touchpoint", "channel", "group_by" };
	for (size_t i = 0; i < 5; i++) {
		json_t *v = json_object_get(doc, maybe_str[i]);
		if (!json_is_string(v) && !json_is_null(v))
			ck_abort_msg("line %d: GET %s: \"%s\" is %s, want a string or null", line, path,
			             maybe_str[i], dump(v));
	}
	if (!json_is_string(json_object_get(doc, "timezone")))
		ck_abort_msg("line %d: GET %s: no timezone: %s", line, path, dump(doc));
	if (!json_is_integer(json_object_get(doc, "excluded")))
		ck_abort_msg("line %d: GET %s: \"excluded\" is not an integer: %s", line, path, dump(doc));
	bool grouped = json_is_string(json_object_get(doc, "group_by"));
	json_t *groups = json_object_get(doc, "groups");
	if (grouped ? !json_is_array(groups) : groups != NULL)
		ck_abort_msg("line %d: GET %s: \"groups\" is %s with group_by %s", line, path, dump(groups),
		             dump(json_object_get(doc, "group_by")));
	free(path);
	return doc;
}

/* One group an answer should list: key NULL is the JSON null group (no channel); start is
 * the UTC instant a day, week or month starts (NULL for touchpoint and channel groups). */
struct want_group {
	const char *key, *start;
	int p, a, d;
};

/*
 * reply's groups are exactly want, in order, for group_by `by`: each with its key as
 * "group" (and under the name of `by` for touchpoint and channel), its start, its figures;
 * and together they add up to the answer's counts.
 */
#define expect_groups(reply, by, want) \
	expect_groups_at(__LINE__, reply, by, want, sizeof want / sizeof want[0])
static void expect_groups_at(int line, json_t *reply, const char *by, const struct want_group *want, size_t n)
{
	expect_str_or_null(line, reply, "group_by", by, "answer");
	json_t *groups = json_object_get(reply, "groups");
	if (json_array_size(groups) != n)
		ck_abort_msg("line %d: group_by %s: %zu groups, want %zu: %s", line, by,
		             json_array_size(groups), n, dump(groups));
	bool named = strcmp(by, "touchpoint") == 0 || strcmp(by, "channel") == 0;
	json_int_t sum[4] = { 0 };
	static const char *const keys[4] = { "responses", "promoters", "passives", "detractors" };
	for (size_t i = 0; i < n; i++) {
		json_t *g = json_array_get(groups, i);
		char ctx[96];
		snprintf(ctx, sizeof ctx, "group_by %s, group %zu (%s)", by, i,
		         want[i].key ? want[i].key : "null");
		expect_str_or_null(line, g, "group", want[i].key, ctx);
		if (named)
			expect_str_or_null(line, g, by, want[i].key, ctx);
		if (want[i].start)
			expect_str_or_null(line, g, "start", want[i].start, ctx);
		expect_figures_at(line, g, ctx, want[i].p, want[i].a, want[i].d);
		for (size_t k = 0; k < 4; k++)
			sum[k] += json_integer_value(json_object_get(g, keys[k]));
	}
	for (size_t k = 0; k < 4; k++)
		if (sum[k] != json_integer_value(json_object_get(reply, keys[k])))
			ck_abort_msg(
			        "line %d: group_by %s: the groups' %s add up to %lld, the answer says %s",
			        line, by, keys[k], (long long)sum[k], dump(json_object_get(reply, keys[k])));
}

/* ---------- roles and the empty database ---------- */

START_TEST(managers_and_admins_read_reports_others_are_refused)
{
	json_int_t id = post("claim", "web", 9, "2026-11-10T10:00:00Z");
	char *patch_path = fmt("/v1/surveys/%lld", (long long)id);
	static const char patch[] = "{\"excluded\":false}";
	const struct {
		const char *method, *path, *body;
	} calls[] = {
		{ "GET", "/v1/nps", NULL },
		{ "GET", "/v1/nps?group_by=day", NULL },
		{ "GET", "/v1/improvements", NULL },
		{ "PATCH", patch_path, patch },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		struct http_result r;
		REQ(&r, calls[i].method, calls[i].path, T_INGEST, calls[i].body);
		expect_error(&r, 403, "forbidden", NULL);
		http_result_free(&r);
		REQ(&r, calls[i].method, calls[i].path, T_AGENT, calls[i].body);
		expect_error(&r, 403, "forbidden", NULL);
		http_result_free(&r);
		REQ(&r, calls[i].method, calls[i].path, NULL, calls[i].body);
		expect_error(&r, 401, "unauthorized", NULL);
		http_result_free(&r);
		REQ(&r, calls[i].method, calls[i].path, T_MANAGER, calls[i].body);
		ck_assert_msg(r.status == 200, "manager %s %s: %ld %s", calls[i].method, calls[i].path,
		              r.status, r.body);
		http_result_free(&r);
		REQ(&r, calls[i].method, calls[i].path, T_ADMIN, calls[i].body);
		ck_assert_msg(r.status == 200, "admin %s %s: %ld %s", calls[i].method, calls[i].path,
		              r.status, r.body);
		http_result_free(&r);
	}
	/* The refused PATCHes changed nothing: the answer still counts. */
	json_t *n = nps("");
	expect_figures(n, "after the refused PATCHes", 1, 0, 0);
	ck_assert_int_eq(iget(n, "excluded"), 0);
	json_decref(n);
	free(patch_path);
}
END_TEST

START_TEST(an_empty_database_has_no_score)
{
	json_t *n = nps("");
	expect_figures(n, "empty", 0, 0, 0);
	ck_assert_int_eq(iget(n, "excluded"), 0);
	ck_assert_str_eq(sget(n, "timezone"), "Europe/Amsterdam");
	static const char *const echoes[] = { "from", "to", "touchpoint", "channel", "group_by" };
	for (size_t i = 0; i < 5; i++)
		expect_str_or_null(__LINE__, n, echoes[i], NULL, "no filter");
	json_decref(n);
	/* Every grouping of nothing is an empty list, not a group of zeros. */
	static const char *const bys[] = { "touchpoint", "channel", "day", "week", "month" };
	for (size_t i = 0; i < 5; i++) {
		char *q = fmt("?group_by=%s", bys[i]);
		n = nps(q);
		ck_assert_str_eq(sget(n, "group_by"), bys[i]);
		ck_assert_msg(json_array_size(json_object_get(n, "groups")) == 0, "%s: groups %s", q,
		              dump(json_object_get(n, "groups")));
		expect_figures(n, q, 0, 0, 0);
		json_decref(n);
		free(q);
	}

	struct http_result r;
	REQ(&r, "GET", "/v1/improvements", T_MANAGER, NULL);
	ck_assert_msg(r.status == 200, "GET /v1/improvements: %ld %s", r.status, r.body);
	ck_assert_msg(json_is_array(json_object_get(r.json, "improvements")) &&
	                      json_array_size(json_object_get(r.json, "improvements")) == 0,
	              "empty improvements: %s", r.body);
	ck_assert_msg(json_is_null(json_object_get(r.json, "next_cursor")), "empty: next_cursor in %s",
	              r.body);
	/* All five areas at zero; no touchpoint, no pair. */
	json_t *want =
	        json_loads("{\"total\":0,\"by_area\":{\"process\":0,\"communication\":0,\"service\":0,"
	                   "\"product\":0,\"other\":0},\"by_touchpoint\":{},\"by_area_and_touchpoint\":[]}",
	                   0, NULL);
	ck_assert_ptr_nonnull(want);
	ck_assert_msg(json_equal(json_object_get(r.json, "counts"), want), "empty improvements: %s", r.body);
	json_decref(want);
	http_result_free(&r);
}
END_TEST

/* ---------- the figures ---------- */

START_TEST(the_figures_of_known_mixes)
{
	/* 5 promoters, 2 passives, 3 detractors: NPS 20.0, margin 196 sqrt(0.76 / 10) = 54.0. */
	static const int claim[] = { 10, 10, 9, 9, 9, 8, 7, 6, 3, 0 };
	for (size_t i = 0; i < sizeof claim / sizeof claim[0]; i++) {
		char at[32];
		post("claim", "web", claim[i], time_format_rfc3339(T0 - 20 * 86400 + (int64_t)i * 60, at));
	}
	json_t *n = nps("?touchpoint=claim");
	expect_figures(n, "claim", 5, 2, 3);
	/* The helper's formula checked against numbers worked out by hand. */
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "nps")), 20.0, TOLERANCE);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "margin_of_error")), 54.0, TOLERANCE);
	ck_assert_str_eq(sget(n, "touchpoint"), "claim");
	json_decref(n);

	/* Rounding: 33.33… and 106.69 (a margin may exceed 100 on few answers). */
	post("t3", NULL, 10, "2026-11-01T10:00:00Z");
	post("t3", NULL, 10, "2026-11-01T11:00:00Z");
	post("t3", NULL, 0, "2026-11-01T12:00:00Z");
	n = nps("?touchpoint=t3");
	expect_figures(n, "t3", 2, 0, 1);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "nps")), 33.3, TOLERANCE);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "margin_of_error")), 106.7, TOLERANCE);
	json_decref(n);

	/* Every score once: 6 is a detractor, 7 and 8 passives, 9 a promoter; -45.45… rounds
	 * to -45.5, away from zero. */
	for (int score = 0; score <= 10; score++) {
		char at[32];
		post("all", "app", score, time_format_rfc3339(T0 - 30 * 86400 + score * 3600, at));
	}
	n = nps("?touchpoint=all");
	expect_figures(n, "every score once", 2, 2, 7);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "nps")), -45.5, TOLERANCE);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "margin_of_error")), 46.2, TOLERANCE);
	json_decref(n);

	/* One promoter: 100 with a margin of 0, which is a number, not null. */
	post("t1", NULL, 9, "2026-10-01T10:00:00Z");
	n = nps("?touchpoint=t1");
	expect_figures(n, "one promoter", 1, 0, 0);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "nps")), 100.0, TOLERANCE);
	ck_assert(json_is_number(json_object_get(n, "margin_of_error")));
	json_decref(n);
	/* Only detractors, only passives. */
	post("t0", NULL, 0, "2026-10-02T10:00:00Z");
	post("t0", NULL, 5, "2026-10-02T11:00:00Z");
	n = nps("?touchpoint=t0");
	expect_figures(n, "only detractors", 0, 0, 2);
	ck_assert_double_eq_tol(json_number_value(json_object_get(n, "nps")), -100.0, TOLERANCE);
	json_decref(n);
	post("tpass", NULL, 7, "2026-10-03T10:00:00Z");
	post("tpass", NULL, 8, "2026-10-03T11:00:00Z");
	n = nps("?touchpoint=tpass");
	expect_figures(n, "only passives", 0, 2, 0);
	json_decref(n);

	/* Everything together, without a filter: no "groups" without a group_by. */
	n = nps("");
	expect_figures(n, "everything", 5 + 2 + 2 + 1, 2 + 2 + 2, 3 + 1 + 7 + 2);
	ck_assert_ptr_null(json_object_get(n, "groups"));
	ck_assert_int_eq(iget(n, "excluded"), 0);
	json_decref(n);
}
END_TEST

/* ---------- group_by ---------- */

START_TEST(group_by_touchpoint_and_channel)
{
	/* Posted out of key order, so the order of the groups is the server's. */
	post("renewal", NULL, 7, "2026-11-05T10:00:00Z");
	post("purchase", "web", 10, "2026-11-05T11:00:00Z");
	post("claim", "web", 9, "2026-11-05T12:00:00Z");
	post("purchase", "app", 2, "2026-11-05T13:00:00Z");
	post("claim", NULL, 6, "2026-11-05T14:00:00Z");
	post("claim", "web", 10, "2026-11-05T15:00:00Z");
	post("claim", "phone", 8, "2026-11-05T16:00:00Z");
	post("purchase", "app", 9, "2026-11-05T17:00:00Z");
	post("claim", "web", 3, "2026-11-05T18:00:00Z");

	json_t *n = nps("?group_by=touchpoint");
	static const struct want_group by_touchpoint[] = {
		{ "claim", NULL, 2, 1, 2 },
		{ "purchase", NULL, 2, 0, 1 },
		{ "renewal", NULL, 0, 1, 0 },
	};
	expect_groups(n, "touchpoint", by_touchpoint);
	expect_figures(n, "all touchpoints", 4, 2, 3);
	json_decref(n);

	/* The answers without a channel are a group too: the null key, first. */
	n = nps("?group_by=channel");
	static const struct want_group by_channel[] = {
		{ NULL, NULL, 0, 1, 1 },
		{ "app", NULL, 1, 0, 1 },
		{ "phone", NULL, 0, 1, 0 },
		{ "web", NULL, 3, 0, 1 },
	};
	expect_groups(n, "channel", by_channel);
	json_decref(n);

	/* A filter narrows the groups, and the answer names it. */
	n = nps("?group_by=channel&touchpoint=claim");
	static const struct want_group claim_by_channel[] = {
		{ NULL, NULL, 0, 0, 1 },
		{ "phone", NULL, 0, 1, 0 },
		{ "web", NULL, 2, 0, 1 },
	};
	expect_groups(n, "channel", claim_by_channel);
	ck_assert_str_eq(sget(n, "touchpoint"), "claim");
	json_decref(n);
	n = nps("?channel=web&group_by=touchpoint");
	static const struct want_group web_by_touchpoint[] = {
		{ "claim", NULL, 2, 0, 1 },
		{ "purchase", NULL, 1, 0, 0 },
	};
	expect_groups(n, "touchpoint", web_by_touchpoint);
	ck_assert_str_eq(sget(n, "channel"), "web");
	json_decref(n);
}
END_TEST

/* Amsterdam is UTC+1 in winter, UTC+2 in summer; 2026-10-25 has 25 hours. */
START_TEST(group_by_day_follows_amsterdam_midnight)
{
	post("claim", NULL, 10, "2026-11-22T23:00:00Z"); /* Mon 23 Nov 00:00 CET */
	post("claim", NULL, 7, "2026-11-22T22:59:59Z");  /* Sun 22 Nov 23:59:59 CET */
	post("claim", NULL, 5, "2026-11-22T23:30:00Z");  /* 23 Nov 00:30 CET */
	post("claim", NULL, 0, "2026-07-01T22:30:00Z");  /* 2 Jul 00:30 CEST */
	post("claim", NULL, 10, "2026-07-01T21:59:59Z"); /* 1 Jul 23:59:59 CEST */
	post("claim", NULL, 8, "2026-10-24T21:59:59Z");  /* 24 Oct 23:59:59 CEST */
	post("claim", NULL, 9, "2026-10-24T22:00:00Z");  /* 25 Oct 00:00 CEST */
	post("claim", NULL, 3, "2026-10-25T22:30:00Z");  /* 25 Oct 23:30 CET, after the change */
	post("claim", NULL, 10, "2026-10-25T23:00:00Z"); /* 26 Oct 00:00 CET */

	json_t *n = nps("?group_by=day");
	static const struct want_group days[] = {
		{ "2026-07-01", "2026-06-30T22:00:00Z", 1, 0, 0 },
		{ "2026-07-02", "2026-07-01T22:00:00Z", 0, 0, 1 },
		{ "2026-10-24", "2026-10-23T22:00:00Z", 0, 1, 0 },
		{ "2026-10-25", "2026-10-24T22:00:00Z", 1, 0, 1 },
		{ "2026-10-26", "2026-10-25T23:00:00Z", 1, 0, 0 },
		{ "2026-11-22", "2026-11-21T23:00:00Z", 0, 1, 0 },
		{ "2026-11-23", "2026-11-22T23:00:00Z", 1, 0, 1 },
	};
	expect_groups(n, "day", days);
	ck_assert_str_eq(sget(n, "timezone"), "Europe/Amsterdam");
	json_decref(n);

	/* from and to are instants, not local days: a window from Amsterdam's midnight. */
	n = nps("?group_by=day&from=2026-11-22T23:00:00Z");
	static const struct want_group last_day[] = {
		{ "2026-11-23", "2026-11-22T23:00:00Z", 1, 0, 1 },
	};
	expect_groups(n, "day", last_day);
	json_decref(n);
}
END_TEST

START_TEST(group_by_week_and_month_in_local_time)
{
	post("claim", NULL, 9, "2025-12-28T12:00:00Z");  /* Sun: 2025-W52 */
	post("claim", NULL, 2, "2025-12-29T10:00:00Z");  /* Mon: 2026-W01, still December */
	post("claim", NULL, 10, "2025-12-31T23:30:00Z"); /* 1 Jan 2026 00:30 local */
	post("claim", NULL, 7, "2026-07-15T10:00:00Z");  /* a summer week and month */
	post("claim", NULL, 10, "2026-10-25T22:30:00Z"); /* Sun 23:30 CET: W43 began in CEST */
	post("claim", NULL, 10, "2026-10-31T22:30:00Z"); /* Sat 31 Oct 23:30 */
	post("claim", NULL, 4, "2026-10-31T23:30:00Z");  /* Sun 1 Nov 00:30 */
	post("claim", NULL, 6, "2026-11-22T22:30:00Z");  /* Sun 22 Nov 23:30: W47 */
	post("claim", NULL, 9, "2026-11-22T23:30:00Z");  /* Mon 23 Nov 00:30: W48 */
	post("claim", NULL, 8, "2026-11-29T22:59:00Z");  /* Sun 29 Nov 23:59: still W48 */

	json_t *n = nps("?group_by=week");
	static const struct want_group weeks[] = {
		{ "2025-W52", "2025-12-21T23:00:00Z", 1, 0, 0 },
		{ "2026-W01", "2025-12-28T23:00:00Z", 1, 0, 1 },
		{ "2026-W29", "2026-07-12T22:00:00Z", 0, 1, 0 },
		{ "2026-W43", "2026-10-18T22:00:00Z", 1, 0, 0 },
		{ "2026-W44", "2026-10-25T23:00:00Z", 1, 0, 1 },
		{ "2026-W47", "2026-11-15T23:00:00Z", 0, 0, 1 },
		{ "2026-W48", "2026-11-22T23:00:00Z", 1, 1, 0 },
	};
	expect_groups(n, "week", weeks);
	json_decref(n);

	n = nps("?group_by=month");
	static const struct want_group months[] = {
		{ "2025-12", "2025-11-30T23:00:00Z", 1, 0, 1 },
		{ "2026-01", "2025-12-31T23:00:00Z", 1, 0, 0 },
		{ "2026-07", "2026-06-30T22:00:00Z", 0, 1, 0 },
		{ "2026-10", "2026-09-30T22:00:00Z", 2, 0, 0 },
		{ "2026-11", "2026-10-31T23:00:00Z", 1, 1, 2 },
	};
	expect_groups(n, "month", months);
	json_decref(n);
}
END_TEST

/* The periods are those of callbacks.timezone, whatever it is; New York leaves summer time
 * on 2026-11-01. */
START_TEST(periods_follow_the_configured_time_zone)
{
	post("claim", NULL, 10, "2026-11-23T03:00:00Z"); /* Sun 22 Nov 22:00 EST */
	post("claim", NULL, 0, "2026-11-23T05:00:00Z");  /* Mon 23 Nov 00:00 EST */
	post("claim", NULL, 8, "2026-11-01T03:30:00Z");  /* Sat 31 Oct 23:30 EDT */
	post("claim", NULL, 9, "2026-11-01T04:30:00Z");  /* Sun 1 Nov 00:30 EDT */

	json_t *n = nps("?group_by=day&from=2026-11-20T00:00:00Z");
	ck_assert_str_eq(sget(n, "timezone"), "America/New_York");
	static const struct want_group days[] = {
		{ "2026-11-22", "2026-11-22T05:00:00Z", 1, 0, 0 },
		{ "2026-11-23", "2026-11-23T05:00:00Z", 0, 0, 1 },
	};
	expect_groups(n, "day", days);
	json_decref(n);
	n = nps("?group_by=month");
	static const struct want_group months[] = {
		{ "2026-10", "2026-10-01T04:00:00Z", 0, 1, 0 },
		{ "2026-11", "2026-11-01T04:00:00Z", 2, 0, 1 },
	};
	expect_groups(n, "month", months);
	json_decref(n);
}
END_TEST

/* ---------- filters ---------- */

/* GET /v1/nps + query has p, a, d and echoes the filters (NULL: null). */
#define expect_filtered(query, p, a, d, from, to, tp, ch)                   \
	do {                                                                \
		json_t *n_ = nps(query);                                    \
		expect_figures_at(__LINE__, n_, query, p, a, d);            \
		expect_str_or_null(__LINE__, n_, "from", from, query);      \
		expect_str_or_null(__LINE__, n_, "to", to, query);          \
		expect_str_or_null(__LINE__, n_, "touchpoint", tp, query);  \
		expect_str_or_null(__LINE__, n_, "channel", ch, query);     \
		expect_str_or_null(__LINE__, n_, "group_by", NULL, query);  \
		ck_assert_str_eq(sget(n_, "timezone"), "Europe/Amsterdam"); \
		json_decref(n_);                                            \
	} while (0)

START_TEST(filters_and_the_edges_of_from_and_to)
{
	post("claim", "web", 10, "2026-11-01T00:00:00Z");
	post("claim", "phone", 0, "2026-11-02T00:00:00Z");
	post("purchase", "web", 8, "2026-11-03T00:00:00Z");
	post("purchase", NULL, 9, "2026-11-04T00:00:00Z");

	expect_filtered("", 2, 1, 1, NULL, NULL, NULL, NULL);
	/* from takes an answer at that very second, to leaves it out. */
	expect_filtered("?from=2026-11-02T00:00:00Z", 1, 1, 1, "2026-11-02T00:00:00Z", NULL, NULL, NULL);
	expect_filtered("?to=2026-11-02T00:00:00Z", 1, 0, 0, NULL, "2026-11-02T00:00:00Z", NULL, NULL);
	expect_filtered("?from=2026-11-02T00:00:00Z&to=2026-11-04T00:00:00Z", 0, 1, 1, "2026-11-02T00:00:00Z",
	                "2026-11-04T00:00:00Z", NULL, NULL);
	expect_filtered("?from=2026-11-02T00:00:01Z&to=2026-11-04T00:00:01Z", 1, 1, 0, "2026-11-02T00:00:01Z",
	                "2026-11-04T00:00:01Z", NULL, NULL);
	/* An empty window is no error: from equal to to is not from after to. */
	expect_filtered("?from=2026-11-02T00:00:00Z&to=2026-11-02T00:00:00Z", 0, 0, 0, "2026-11-02T00:00:00Z",
	                "2026-11-02T00:00:00Z", NULL, NULL);
	expect_filtered("?touchpoint=claim", 1, 0, 1, NULL, NULL, "claim", NULL);
	expect_filtered("?channel=web", 1, 1, 0, NULL, NULL, NULL, "web");
	expect_filtered("?touchpoint=purchase&channel=web", 0, 1, 0, NULL, NULL, "purchase", "web");
	expect_filtered("?touchpoint=nowhere", 0, 0, 0, NULL, NULL, "nowhere", NULL);
	expect_filtered("?channel=phone&touchpoint=claim&from=2026-11-02T00:00:00Z", 0, 0, 1,
	                "2026-11-02T00:00:00Z", NULL, "claim", "phone");
	/* An offset names the same instant as its UTC form (RFC 3339). */
	json_t *n = nps("?from=2026-11-02T01:00:00%2B01:00");
	expect_figures(n, "from with an offset", 1, 1, 1);
	json_decref(n);
	/* Empty segments are no parameter (as everywhere). */
	n = nps("?&touchpoint=claim&&group_by=channel");
	static const struct want_group claim_by_channel[] = {
		{ "phone", NULL, 0, 0, 1 },
		{ "web", NULL, 1, 0, 0 },
	};
	expect_groups(n, "channel", claim_by_channel);
	json_decref(n);
	/* The epoch is a bound like any other, not "no bound", in the figures and in the echo. */
	expect_filtered("?to=1970-01-01T00:00:00Z", 0, 0, 0, NULL, "1970-01-01T00:00:00Z", NULL, NULL);
	expect_filtered("?from=1970-01-01T00:00:00Z", 2, 1, 1, "1970-01-01T00:00:00Z", NULL, NULL, NULL);
}
END_TEST

/* The longest touchpoint or channel: 64 characters. */
#define NAME_64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

START_TEST(bad_query_parameters_are_400)
{
	static const struct {
		const char *path, *field;
	} cases[] = {
		{ "/v1/nps?group_by=year", "group_by" },
		{ "/v1/nps?group_by=Day", "group_by" },
		{ "/v1/nps?group_by=day&group_by=week", "group_by" },
		{ "/v1/nps?from=yesterday", "from" },
		{ "/v1/nps?from=2026-13-01T00:00:00Z", "from" },
		{ "/v1/nps?from=2026-11-01", "from" },
		{ "/v1/nps?to=2026-11-31T00:00:00Z", "to" },
		{ "/v1/nps?to=soon", "to" },
		/* from after to: the window's end is what is wrong. */
		{ "/v1/nps?from=2026-11-02T00:00:00Z&to=2026-11-01T23:59:59Z", "to" },
		{ "/v1/nps?touchpoint=Claim", "touchpoint" },
		{ "/v1/nps?touchpoint=a%20b", "touchpoint" },
		{ "/v1/nps?touchpoint=" NAME_64 "x", "touchpoint" },
		{ "/v1/nps?channel=WEB", "channel" },
		{ "/v1/nps?channel=w%2Fb", "channel" },
		{ "/v1/nps?channel=" NAME_64 "x", "channel" },
		{ "/v1/nps?bogus=1", "bogus" },
		{ "/v1/nps?group=day", "group" },
		{ "/v1/nps?touchpoint=claim&limit=5", "limit" },
		{ "/v1/improvements?area=people", "area" },
		{ "/v1/improvements?area=Process", "area" },
		{ "/v1/improvements?from=yesterday", "from" },
		{ "/v1/improvements?to=2026-02-30T00:00:00Z", "to" },
		{ "/v1/improvements?from=2026-12-07T00:00:00Z&to=2026-12-06T00:00:00Z", "to" },
		{ "/v1/improvements?touchpoint=Claim", "touchpoint" },
		{ "/v1/improvements?limit=0", "limit" },
		{ "/v1/improvements?limit=501", "limit" },
		{ "/v1/improvements?limit=-1", "limit" },
		{ "/v1/improvements?limit=ten", "limit" },
		{ "/v1/improvements?cursor=abc", "cursor" },
		/* A filter /v1/nps takes is still unknown here. */
		{ "/v1/improvements?channel=web", "channel" },
		{ "/v1/improvements?group_by=area", "group_by" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct http_result r;
		REQ(&r, "GET", cases[i].path, T_MANAGER, NULL);
		if (r.status != 400)
			ck_abort_msg("GET %s: %ld, want 400: %.400s", cases[i].path, r.status, r.body);
		expect_error_at(__LINE__, &r, 400, "invalid_field", cases[i].field);
		http_result_free(&r);
	}
	/* The edges that are allowed. */
	static const char *const fine[] = {
		"/v1/improvements?limit=1",
		"/v1/improvements?limit=500",
		"/v1/improvements?area=other&touchpoint=claim"
		"&from=2026-12-01T00:00:00Z&to=2026-12-08T00:00:00Z",
		"/v1/nps?touchpoint=a.b_c-1&channel=0",
		"/v1/nps?touchpoint=" NAME_64 "&channel=" NAME_64,
	};
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		struct http_result r;
		REQ(&r, "GET", fine[i], T_MANAGER, NULL);
		if (r.status != 200)
			ck_abort_msg("GET %s: %ld, want 200: %.400s", fine[i], r.status, r.body);
		http_result_free(&r);
	}
}
END_TEST

/* ---------- PATCH /v1/surveys/{id}: excluded answers ---------- */

/* PATCHes survey id with body as manager, wants a 200 that shows the survey as a GET does;
 * returns it (the caller decrefs). */
#define patch_ok(id, body) patch_ok_at(__LINE__, id, body)
static json_t *patch_ok_at(int line, json_int_t id, const char *body)
{
	char *path = fmt("/v1/surveys/%lld", (long long)id);
	struct http_result r;
	REQ(&r, "PATCH", path, T_MANAGER, body);
	if (r.status != 200 || !json_is_object(r.json))
		ck_abort_msg("line %d: PATCH %s %s: %ld %.400s", line, path, body, r.status, r.body);
	json_t *patched = json_incref(r.json);
	http_result_free(&r);
	REQ(&r, "GET", path, T_MANAGER, NULL);
	ck_assert_msg(r.status == 200, "line %d: GET %s: %ld", line, path, r.status);
	if (!json_equal(patched, r.json))
		ck_abort_msg("line %d: PATCH answered %s, GET shows %s", line, dump(patched), r.body);
	ck_assert_int_eq(iget(patched, "id"), id);
	http_result_free(&r);
	free(path);
	return patched;
}

/* The survey is marked excluded (or not) with reason (NULL: null). */
static void expect_mark(int line, json_t *s, bool excluded, const char *reason)
{
	json_t *v = json_object_get(s, "excluded");
	if (!json_is_boolean(v) || json_is_true(v) != excluded)
		ck_abort_msg("line %d: \"excluded\" is %s, want %s", line, dump(v),
		             excluded ? "true" : "false");
	expect_str_or_null(line, s, "exclude_reason", reason, "survey");
}

START_TEST(an_excluded_answer_leaves_every_figure_and_comes_back)
{
	json_int_t a = post("claim", "web", 10, "2026-11-10T10:00:00Z");
	json_int_t b = post("claim", "web", 0, "2026-11-10T11:00:00Z");
	json_int_t c = post("purchase", "web", 9, "2026-11-12T10:00:00Z"); /* alone on its day */
	post("claim", NULL, 8, "2026-11-10T12:00:00Z");
	(void)a;
	json_t *n = nps("");
	expect_figures(n, "before", 2, 1, 1);
	json_decref(n);

	json_t *s = patch_ok(c, "{\"excluded\": true, \"reason\": \"test answer\"}");
	expect_mark(__LINE__, s, true, "test answer");
	ck_assert_int_eq(iget(s, "score"), 9);
	ck_assert_str_eq(sget(s, "touchpoint"), "purchase");
	json_decref(s);

	n = nps("");
	expect_figures(n, "c excluded", 1, 1, 1);
	ck_assert_int_eq(iget(n, "excluded"), 1);
	json_decref(n);
	/* Its touchpoint and its day had nothing else: they are no group now. */
	n = nps("?group_by=touchpoint");
	static const struct want_group only_claim[] = { { "claim", NULL, 1, 1, 1 } };
	expect_groups(n, "touchpoint", only_claim);
	ck_assert_int_eq(iget(n, "excluded"), 1);
	json_decref(n);
	n = nps("?group_by=day");
	static const struct want_group only_10th[] = { { "2026-11-10", "2026-11-09T23:00:00Z", 1, 1, 1 } };
	expect_groups(n, "day", only_10th);
	json_decref(n);
	n = nps("?group_by=channel");
	static const struct want_group web_and_none[] = {
		{ NULL, NULL, 0, 1, 0 },
		{ "web", NULL, 1, 0, 1 },
	};
	expect_groups(n, "channel", web_and_none);
	json_decref(n);
	/* "excluded" counts only those the filters match. */
	n = nps("?touchpoint=claim");
	expect_figures(n, "claim", 1, 1, 1);
	ck_assert_int_eq(iget(n, "excluded"), 0);
	json_decref(n);
	n = nps("?touchpoint=purchase");
	expect_figures(n, "purchase", 0, 0, 0);
	ck_assert_int_eq(iget(n, "excluded"), 1);
	json_decref(n);
	n = nps("?from=2026-11-11T00:00:00Z");
	expect_figures(n, "from the 11th", 0, 0, 0);
	ck_assert_int_eq(iget(n, "excluded"), 1);
	json_decref(n);
	n = nps("?to=2026-11-11T00:00:00Z");
	ck_assert_int_eq(iget(n, "excluded"), 0);
	json_decref(n);

	/* Still stored and listed, marked. */
	struct http_result r;
	REQ(&r, "GET", "/v1/surveys?touchpoint=purchase", T_MANAGER, NULL);
	ck_assert_int_eq(r.status, 200);
	json_t *items = json_object_get(r.json, "surveys");
	ck_assert_msg(json_array_size(items) == 1, "GET /v1/surveys?touchpoint=purchase: %s", r.body);
	ck_assert_int_eq(iget(json_array_get(items, 0), "id"), c);
	expect_mark(__LINE__, json_array_get(items, 0), true, "test answer");
	http_result_free(&r);
	REQ(&r, "GET", "/v1/surveys", T_MANAGER, NULL);
	ck_assert_msg(json_array_size(json_object_get(r.json, "surveys")) == 4, "GET /v1/surveys: %s",
	              r.body);
	http_result_free(&r);

	/* Excluding twice is no error; the new reason replaces the old. */
	s = patch_ok(c, "{\"excluded\":true,\"reason\":\"duplicate of a real answer\"}");
	expect_mark(__LINE__, s, true, "duplicate of a real answer");
	json_decref(s);
	/* Without a reason, or with "", there is none. */
	s = patch_ok(b, "{\"excluded\":true}");
	expect_mark(__LINE__, s, true, NULL);
	json_decref(s);
	s = patch_ok(b, "{\"reason\":\"\",\"excluded\":true}");
	expect_mark(__LINE__, s, true, NULL);
	json_decref(s);
	n = nps("");
	expect_figures(n, "b and c excluded", 1, 1, 0);
	ck_assert_int_eq(iget(n, "excluded"), 2);
	json_decref(n);

	/* false puts them back, reason gone. */
	s = patch_ok(c, "{\"excluded\":false}");
	expect_mark(__LINE__, s, false, NULL);
	json_decref(s);
	n = nps("");
	expect_figures(n, "c back", 2, 1, 0);
	ck_assert_int_eq(iget(n, "excluded"), 1);
	json_decref(n);
	s = patch_ok(b, "{\"excluded\":false}");
	expect_mark(__LINE__, s, false, NULL);
	json_decref(s);
	n = nps("?group_by=touchpoint");
	static const struct want_group both[] = {
		{ "claim", NULL, 1, 1, 1 },
		{ "purchase", NULL, 1, 0, 0 },
	};
	expect_groups(n, "touchpoint", both);
	expect_figures(n, "all back", 2, 1, 1);
	ck_assert_int_eq(iget(n, "excluded"), 0);
	json_decref(n);
	/* Un-excluding one that is not excluded is no error either. */
	s = patch_ok(b, "{\"excluded\":false}");
	expect_mark(__LINE__, s, false, NULL);
	json_decref(s);
}
END_TEST

START_TEST(patch_errors_name_the_field_and_change_nothing)
{
	json_int_t id = post("claim", "web", 3, "2026-11-10T10:00:00Z");
	char *path = fmt("/v1/surveys/%lld", (long long)id);
	char long_reason[600], max_reason[2 * 500 + 1];
	memset(long_reason, 'x', 501);
	long_reason[501] = '\0';
	/* 500 characters of two bytes each: the limit counts characters. */
	for (size_t i = 0; i < 500; i++)
		memcpy(max_reason + 2 * i, "\xc3\xa9", 2);
	max_reason[1000] = '\0';
	char *too_long = fmt("{\"excluded\":true,\"reason\":\"%s\"}", long_reason);
	const struct {
		const char *body, *code, *field;
	} cases[] = {
		{ "{}", "missing_field", "excluded" },
		{ "{\"reason\":\"test answer\"}", "missing_field", "excluded" },
		{ "{\"excluded\":\"true\"}", "invalid_field", "excluded" },
		{ "{\"excluded\":1}", "invalid_field", "excluded" },
		{ "{\"excluded\":0}", "invalid_field", "excluded" },
		{ "{\"excluded\":[true]}", "invalid_field", "excluded" },
		{ "{\"excluded\":true,\"reason\":5}", "invalid_field", "reason" },
		{ "{\"excluded\":true,\"reason\":true}", "invalid_field", "reason" },
		{ "{\"excluded\":true,\"reason\":[\"a\"]}", "invalid_field", "reason" },
		{ too_long, "invalid_field", "reason" },
		/* Putting an answer back clears the reason: one given with it would be lost. */
		{ "{\"excluded\":false,\"reason\":\"checked, a real answer\"}", "invalid_field", "reason" },
		{ "{\"excluded\":true,\"why\":\"x\"}", "invalid_field", "why" },
		/* PATCH marks an answer; it does not edit one. */
		{ "{\"excluded\":true,\"score\":9}", "invalid_field", "score" },
		{ "{\"excluded\":", "invalid_json", NULL },
		{ "not json", "invalid_json", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct http_result r;
		REQ(&r, "PATCH", path, T_MANAGER, cases[i].body);
		if (r.status != 400)
			ck_abort_msg("PATCH %.80s: %ld, want 400: %.400s", cases[i].body, r.status, r.body);
		expect_error_at(__LINE__, &r, 400, cases[i].code, cases[i].field);
		http_result_free(&r);
	}
	/* Not an object: a 400 with the error body (invalid_json or invalid_field). */
	static const char *const not_objects[] = { "[]", "true", "\"excluded\"", "[{\"excluded\":true}]" };
	for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
		struct http_result r;
		REQ(&r, "PATCH", path, T_MANAGER, not_objects[i]);
		const char *code = sget(json_object_get(r.json, "error"), "code");
		if (r.status != 400 || !code ||
		    (strcmp(code, "invalid_json") && strcmp(code, "invalid_field")))
			ck_abort_msg("PATCH %s: %ld %.400s, want 400 invalid_json or invalid_field",
			             not_objects[i], r.status, r.body);
		http_result_free(&r);
	}
	struct http_result r;
	http_do(&D, "PATCH", path, T_MANAGER, "text/plain", "{\"excluded\":true}", 17, &r);
	expect_error(&r, 415, "unsupported_media_type", "content-type");
	http_result_free(&r);
	/* No such survey. */
	REQ(&r, "PATCH", "/v1/surveys/999999", T_MANAGER, "{\"excluded\":true}");
	expect_error(&r, 404, "not_found", NULL);
	http_result_free(&r);
	REQ(&r, "PATCH", "/v1/surveys/abc", T_MANAGER, "{\"excluded\":true}");
	expect_error(&r, 404, "not_found", NULL);
	http_result_free(&r);

	/* None of it marked the answer. */
	REQ(&r, "GET", path, T_MANAGER, NULL);
	expect_mark(__LINE__, r.json, false, NULL);
	http_result_free(&r);
	json_t *n = nps("");
	expect_figures(n, "after the errors", 0, 0, 1);
	json_decref(n);
	/* The longest reason is taken whole. */
	char *body = fmt("{\"excluded\":true,\"reason\":\"%s\"}", max_reason);
	json_t *s = patch_ok(id, body);
	expect_mark(__LINE__, s, true, max_reason);
	json_decref(s);
	free(body);
	free(too_long);
	free(path);
}
END_TEST

/* ---------- /v1/improvements ---------- */

/*
 * What an agent learns on the phone, recorded at time t: a low score from a new customer on
 * touchpoint (a callback is owed: phone and consent, hours = always), claimed by the agent
 * and completed as reached with improvements (JSON array text). The callback's id.
 */
static json_int_t improve(const char *touchpoint, int64_t t, const char *improvements)
{
	fake_clock_set(t);
	json_int_t cb = 0;
	post_full(touchpoint, "web", 3, NULL, true, &cb);
	ck_assert_msg(cb > 0, "a low score with phone and consent on %s owed no callback", touchpoint);
	char *body = fmt("{\"touchpoint\":\"%s\"}", touchpoint);
	struct http_result r;
	REQ(&r, "POST", "/v1/callbacks/claim", T_AGENT, body);
	ck_assert_msg(r.status == 200, "claim %s: %ld %s", body, r.status, r.body);
	ck_assert_int_eq(iget(r.json, "id"), cb);
	http_result_free(&r);
	free(body);
	char *path = fmt("/v1/callbacks/%lld/complete", (long long)cb);
	body = fmt("{\"outcome\":\"reached\",\"notes\":\"talked it through\",\"improvements\":%s}",
	           improvements);
	REQ(&r, "POST", path, T_AGENT, body);
	ck_assert_msg(r.status == 200, "complete %s: %ld %s", body, r.status, r.body);
	http_result_free(&r);
	free(body);
	free(path);
	return cb;
}

/* GET /v1/improvements + query as manager: a 200 (the caller decrefs it). */
#define improvements(query) improvements_at(__LINE__, query)
static json_t *improvements_at(int line, const char *query)
{
	char *path = fmt("/v1/improvements%s", query);
	struct http_result r;
	REQ(&r, "GET", path, T_MANAGER, NULL);
	if (r.status != 200 || !json_is_object(r.json) ||
	    !json_is_array(json_object_get(r.json, "improvements")) ||
	    !json_is_object(json_object_get(r.json, "counts")))
		ck_abort_msg("line %d: GET %s: %ld %.400s", line, path, r.status, r.body);
	json_t *next = json_object_get(r.json, "next_cursor");
	if (!json_is_null(next) && !(json_is_string(next) && *json_string_value(next)))
		ck_abort_msg("line %d: GET %s: next_cursor %s", line, path, dump(next));
	json_t *doc = json_incref(r.json);
	http_result_free(&r);
	free(path);
	return doc;
}

/*
 * reply's counts: total, by_area exactly (all five areas, JSON text), by_touchpoint and
 * by_area_and_touchpoint (as {"area/touchpoint": count} JSON text) with any entry of 0 left
 * aside: whether a zero is listed there is not said.
 */
#define expect_counts(reply, total, by_area, by_touchpoint, by_pair) \
	expect_counts_at(__LINE__, reply, total, by_area, by_touchpoint, by_pair)
static void expect_counts_at(int line, json_t *reply, json_int_t total, const char *by_area,
                             const char *by_touchpoint, const char *by_pair)
{
	json_t *counts = json_object_get(reply, "counts");
	json_t *v = json_object_get(counts, "total");
	if (!json_is_integer(v) || json_integer_value(v) != total)
		ck_abort_msg("line %d: counts.total is %s, want %lld", line, dump(v), (long long)total);
	json_t *want = json_loads(by_area, 0, NULL);
	ck_assert_ptr_nonnull(want);
	if (!json_equal(json_object_get(counts, "by_area"), want))
		ck_abort_msg("line %d: counts.by_area is %s, want %s", line,
		             dump(json_object_get(counts, "by_area")), by_area);
	json_decref(want);

	json_t *got = json_object();
	const char *key;
	json_object_foreach (json_object_get(counts, "by_touchpoint"), key, v) {
		if (!json_is_integer(v))
			ck_abort_msg("line %d: counts.by_touchpoint.%s is %s", line, key, dump(v));
		if (json_integer_value(v) != 0)
			json_object_set(got, key, v);
	}
	want = json_loads(by_touchpoint, 0, NULL);
	ck_assert_ptr_nonnull(want);
	if (!json_is_object(json_object_get(counts, "by_touchpoint")) || !json_equal(got, want))
		ck_abort_msg("line %d: counts.by_touchpoint is %s, want %s", line,
		             dump(json_object_get(counts, "by_touchpoint")), by_touchpoint);
	json_decref(want);
	json_decref(got);

	json_t *pairs = json_object_get(counts, "by_area_and_touchpoint");
	if (!json_is_array(pairs))
		ck_abort_msg("line %d: counts.by_area_and_touchpoint is %s", line, dump(pairs));
	got = json_object();
	size_t i;
	json_array_foreach (pairs, i, v) {
		const char *area = sget(v, "area"), *tp = sget(v, "touchpoint");
		json_t *count = json_object_get(v, "count");
		if (!area || !tp || !json_is_integer(count))
			ck_abort_msg("line %d: counts.by_area_and_touchpoint[%zu] is %s", line, i, dump(v));
		char *k = fmt("%s/%s", area, tp);
		if (json_object_get(got, k))
			ck_abort_msg("line %d: %s listed twice in %s", line, k, dump(pairs));
		if (json_integer_value(count) != 0)
			json_object_set(got, k, count);
		free(k);
	}
	want = json_loads(by_pair, 0, NULL);
	ck_assert_ptr_nonnull(want);
	if (!json_equal(got, want))
		ck_abort_msg("line %d: counts.by_area_and_touchpoint is %s, want %s", line, dump(pairs),
		             by_pair);
	json_decref(want);
	json_decref(got);
}

/* One improvement a list should show. */
struct want_imp {
	json_int_t callback_id;
	const char *touchpoint, *area, *text;
	int64_t at;
};

/* reply's improvements are exactly want, in order, with every field; ids go down. */
#define expect_items(reply, want, n) expect_items_at(__LINE__, reply, want, n)
static void expect_items_at(int line, json_t *reply, const struct want_imp *want, size_t n)
{
	json_t *items = json_object_get(reply, "improvements");
	if (json_array_size(items) != n)
		ck_abort_msg("line %d: %zu improvements, want %zu: %s", line, json_array_size(items), n,
		             dump(items));
	json_int_t prev = INT64_MAX;
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(items, i);
		char at[32];
		json_t *id = json_object_get(item, "id"), *cb = json_object_get(item, "callback_id");
		const char *tp = sget(item, "touchpoint"), *area = sget(item, "area"),
		           *text = sget(item, "text");
		const char *created = sget(item, "created_at");
		if (!json_is_integer(id) || json_integer_value(id) >= prev || !json_is_integer(cb) ||
		    json_integer_value(cb) != want[i].callback_id || !tp || strcmp(tp, want[i].touchpoint) ||
		    !area || strcmp(area, want[i].area) || !text || strcmp(text, want[i].text) || !created ||
		    strcmp(created, time_format_rfc3339(want[i].at, at)))
			ck_abort_msg("line %d: improvement %zu is %s, want callback_id %lld, %s, %s, \"%s\", "
			             "created_at %s, id below %lld",
			             line, i, dump(item), (long long)want[i].callback_id, want[i].touchpoint,
			             want[i].area, want[i].text, at, (long long)prev);
		prev = json_integer_value(id);
	}
}

/* Four callbacks an hour apart, six improvements; one more callback records none. */
struct seeded {
	json_int_t cb[4];
};

static void seed_improvements(struct seeded *s)
{
	s->cb[0] = improve("claim", T0,
	                   "[{\"area\":\"process\",\"text\":\"Pay small claims within a week\"},"
	                   "{\"area\":\"communication\",\"text\":\"Tell the customer the status\"}]");
	s->cb[1] =
	        improve("purchase", T0 + HOUR, "[{\"area\":\"product\",\"text\":\"A cheaper second car\"}]");
	improve("claim", T0 + HOUR + 60, "[]");
	s->cb[2] = improve("claim", T0 + 2 * HOUR, "[{\"area\":\"process\",\"text\":\"Fewer forms\"}]");
	s->cb[3] = improve("renewal", T0 + 3 * HOUR,
	                   "[{\"area\":\"service\",\"text\":\"Answer the phone faster\"},"
	                   "{\"area\":\"other\",\"text\":\"Nicer hold music\"}]");
}

#define ZERO_AREAS "\"process\":0,\"communication\":0,\"service\":0,\"product\":0,\"other\":0"

START_TEST(improvements_newest_first_with_counts)
{
	struct seeded s;
	seed_improvements(&s);
	json_t *reply = improvements("");
	const struct want_imp all[] = {
		{ s.cb[3], "renewal", "other", "Nicer hold music", T0 + 3 * HOUR },
		{ s.cb[3], "renewal", "service", "Answer the phone faster", T0 + 3 * HOUR },
		{ s.cb[2], "claim", "process", "Fewer forms", T0 + 2 * HOUR },
		{ s.cb[1], "purchase", "product", "A cheaper second car", T0 + HOUR },
		{ s.cb[0], "claim", "communication", "Tell the customer the status", T0 },
		{ s.cb[0], "claim", "process", "Pay small claims within a week", T0 },
	};
	expect_items(reply, all, 6);
	expect_counts(reply, 6, "{\"process\":2,\"communication\":1,\"service\":1,\"product\":1,\"other\":1}",
	              "{\"claim\":3,\"purchase\":1,\"renewal\":2}",
	              "{\"process/claim\":2,\"communication/claim\":1,\"product/purchase\":1,"
	              "\"service/renewal\":1,\"other/renewal\":1}");
	ck_assert(json_is_null(json_object_get(reply, "next_cursor")));
	json_decref(reply);

	/* The counts cover every match, not just the page. */
	reply = improvements("?limit=2");
	expect_items(reply, all, 2);
	expect_counts(reply, 6, "{\"process\":2,\"communication\":1,\"service\":1,\"product\":1,\"other\":1}",
	              "{\"claim\":3,\"purchase\":1,\"renewal\":2}",
	              "{\"process/claim\":2,\"communication/claim\":1,\"product/purchase\":1,"
	              "\"service/renewal\":1,\"other/renewal\":1}");
	ck_assert(json_is_string(json_object_get(reply, "next_cursor")));
	json_decref(reply);
}
END_TEST

/* The body of a 200 to GET path, owned by the caller. */
static char *body_of(const char *path)
{
	struct http_result r;
	REQ(&r, "GET", path, T_MANAGER, NULL);
	ck_assert_msg(r.status == 200, "GET %s: %ld %.400s", path, r.status, r.body);
	char *body = strdup(r.body);
	http_result_free(&r);
	return body;
}

/* SPEC writes the reports as GET /v1/nps?from=&to=&touchpoint=&channel=&group_by=… and
 * GET /v1/improvements?from=&to=&area=&touchpoint=: an empty value (or none) is no filter,
 * as a form sends its blank fields; each was a 400. */
START_TEST(empty_query_values_are_no_filter)
{
	struct seeded s;
	seed_improvements(&s);
	post("claim", "app", 10, NULL);
	static const char *const same[][2] = {
		{ "/v1/nps", "/v1/nps?from=&to=&touchpoint=&channel=&group_by=" },
		{ "/v1/nps", "/v1/nps?from&to&touchpoint&channel&group_by" },
		{ "/v1/nps?touchpoint=claim", "/v1/nps?touchpoint=claim&channel=&from=" },
		{ "/v1/nps?group_by=channel", "/v1/nps?group_by=channel&to=" },
		{ "/v1/improvements", "/v1/improvements?from=&to=&area=&touchpoint=" },
		{ "/v1/improvements?area=process", "/v1/improvements?area=process&touchpoint=&limit=&cursor=" },
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		char *want = body_of(same[i][0]), *got = body_of(same[i][1]);
		ck_assert_msg(strcmp(got, want) == 0, "GET %s: %s, want as GET %s: %s", same[i][1], got, same[i][0],
		              want);
		free(want);
		free(got);
	}
	json_t *all = improvements("?touchpoint=");
	ck_assert_int_gt(json_array_size(json_object_get(all, "improvements")), 0);
	json_decref(all);
}
END_TEST

START_TEST(improvements_filters)
{
	struct seeded s;
	seed_improvements(&s);
	json_t *reply = improvements("?area=process");
	const struct want_imp process[] = {
		{ s.cb[2], "claim", "process", "Fewer forms", T0 + 2 * HOUR },
		{ s.cb[0], "claim", "process", "Pay small claims within a week", T0 },
	};
	expect_items(reply, process, 2);
	/* Every area is counted, zeros included. */
	expect_counts(reply, 2, "{\"process\":2,\"communication\":0,\"service\":0,\"product\":0,\"other\":0}",
	              "{\"claim\":2}", "{\"process/claim\":2}");
	json_decref(reply);

	reply = improvements("?touchpoint=renewal");
	const struct want_imp renewal[] = {
		{ s.cb[3], "renewal", "other", "Nicer hold music", T0 + 3 * HOUR },
		{ s.cb[3], "renewal", "service", "Answer the phone faster", T0 + 3 * HOUR },
	};
	expect_items(reply, renewal, 2);
	expect_counts(reply, 2, "{\"process\":0,\"communication\":0,\"service\":1,\"product\":0,\"other\":1}",
	              "{\"renewal\":2}", "{\"service/renewal\":1,\"other/renewal\":1}");
	json_decref(reply);

	reply = improvements("?area=process&touchpoint=purchase");
	expect_items(reply, process, 0);
	expect_counts(reply, 0, "{" ZERO_AREAS "}", "{}", "{}");
	json_decref(reply);

	/* from is inclusive and to exclusive, on the time the agent recorded it. */
	char q[160], a[32], b[32];
	snprintf(q, sizeof q, "?from=%s", time_format_rfc3339(T0 + HOUR, a));
	reply = improvements(q);
	const struct want_imp later[] = {
		{ s.cb[3], "renewal", "other", "Nicer hold music", T0 + 3 * HOUR },
		{ s.cb[3], "renewal", "service", "Answer the phone faster", T0 + 3 * HOUR },
		{ s.cb[2], "claim", "process", "Fewer forms", T0 + 2 * HOUR },
		{ s.cb[1], "purchase", "product", "A cheaper second car", T0 + HOUR },
	};
	expect_items(reply, later, 4);
	expect_counts(
	        reply, 4, "{\"process\":1,\"communication\":0,\"service\":1,\"product\":1,\"other\":1}",
	        "{\"claim\":1,\"purchase\":1,\"renewal\":2}",
	        "{\"process/claim\":1,\"product/purchase\":1,\"service/renewal\":1,\"other/renewal\":1}");
	json_decref(reply);

	snprintf(q, sizeof q, "?to=%s", time_format_rfc3339(T0 + HOUR, a));
	reply = improvements(q);
	const struct want_imp first[] = {
		{ s.cb[0], "claim", "communication", "Tell the customer the status", T0 },
		{ s.cb[0], "claim", "process", "Pay small claims within a week", T0 },
	};
	expect_items(reply, first, 2);
	expect_counts(reply, 2, "{\"process\":1,\"communication\":1,\"service\":0,\"product\":0,\"other\":0}",
	              "{\"claim\":2}", "{\"process/claim\":1,\"communication/claim\":1}");
	json_decref(reply);

	snprintf(q, sizeof q, "?from=%s&to=%s", time_format_rfc3339(T0 + HOUR, a), time_format_rfc3339(T0 + 2 * HOUR, b));
	reply = improvements(q);
	const struct want_imp second[] = {
		{ s.cb[1], "purchase", "product", "A cheaper second car", T0 + HOUR },
	};
	expect_items(reply, second, 1);
	expect_counts(reply, 1, "{\"process\":0,\"communication\":0,\"service\":0,\"product\":1,\"other\":0}",
	              "{\"purchase\":1}", "{\"product/purchase\":1}");
	json_decref(reply);

	/* An empty window is no error. */
	snprintf(q, sizeof q, "?from=%s&to=%s", time_format_rfc3339(T0 + HOUR, a), time_format_rfc3339(T0 + HOUR, b));
	reply = improvements(q);
	expect_items(reply, second, 0);
	expect_counts(reply, 0, "{" ZERO_AREAS "}", "{}", "{}");
	json_decref(reply);

	snprintf(q, sizeof q, "?area=process&from=%s&touchpoint=claim", time_format_rfc3339(T0 + 1, a));
	reply = improvements(q);
	expect_items(reply, process, 1);
	expect_counts(reply, 1, "{\"process\":1,\"communication\":0,\"service\":0,\"product\":0,\"other\":0}",
	              "{\"claim\":1}", "{\"process/claim\":1}");
	json_decref(reply);
}
END_TEST

/*
 * Walks the pages of query (without "?", may be "") at limit per page: every page has at
 * most limit items, ids go down across pages, none twice; each page counts want_total.
 * Writes the ids into ids (at most max) and returns how many; *ret_pages gets the pages.
 */
static size_t walk_pages(const char *query, int limit, json_int_t want_total, json_int_t *ids, size_t max,
                         int *ret_pages)
{
	size_t n = 0;
	int pages = 0;
	char *cursor = NULL;
	for (;;) {
		char *q = cursor ? fmt("?%s%slimit=%d&cursor=%s", query, *query ? "&" : "", limit, cursor)
		                 : fmt("?%s%slimit=%d", query, *query ? "&" : "", limit);
		json_t *reply = improvements(q);
		pages++;
		if (pages > 100)
			ck_abort_msg("%s: paging does not end", q);
		json_t *items = json_object_get(reply, "improvements");
		if (json_array_size(items) > (size_t)limit)
			ck_abort_msg("%s: %zu items over limit %d", q, json_array_size(items), limit);
		json_t *total = json_object_get(json_object_get(reply, "counts"), "total");
		if (json_integer_value(total) != want_total)
			ck_abort_msg("%s: counts.total %s, want %lld on every page", q, dump(total),
			             (long long)want_total);
		size_t i;
		json_t *item;
		json_array_foreach (items, i, item) {
			json_int_t id = json_integer_value(json_object_get(item, "id"));
			if (n >= max || (n > 0 && id >= ids[n - 1]))
				ck_abort_msg("%s: id %lld after %lld (a repeat, or not newest first)", q,
				             (long long)id, n ? (long long)ids[n - 1] : 0LL);
			ids[n++] = id;
		}
		json_t *next = json_object_get(reply, "next_cursor");
		curl_free(cursor);
		cursor = json_is_string(next) ? curl_easy_escape(NULL, json_string_value(next), 0) : NULL;
		json_decref(reply);
		free(q);
		if (!cursor)
			break;
	}
	*ret_pages = pages;
	return n;
}

START_TEST(improvements_page_by_cursor)
{
	/* 3 callbacks of 20 (the most one call takes): 60, areas in turn, 12 each. */
	static const char *const touchpoints[3] = { "claim", "purchase", "claim" };
	for (int c = 0; c < 3; c++) {
		char list[2048];
		size_t len = 0;
		list[len++] = '[';
		for (int i = 0; i < 20; i++)
			len += (size_t)snprintf(list + len, sizeof list - len,
			                        "%s{\"area\":\"%s\",\"text\":\"idea %d.%d\"}", i ? "," : "",
			                        AREAS[(c * 20 + i) % 5], c, i);
		snprintf(list + len, sizeof list - len, "]");
		improve(touchpoints[c], T0 + c * 60, list);
	}

	/* The default page is 50, with a cursor to the other 10. */
	json_t *reply = improvements("");
	ck_assert_uint_eq(json_array_size(json_object_get(reply, "improvements")), 50);
	json_t *next = json_object_get(reply, "next_cursor");
	ck_assert_msg(json_is_string(next), "50 of 60: next_cursor %s", dump(next));
	expect_counts(
	        reply, 60, "{\"process\":12,\"communication\":12,\"service\":12,\"product\":12,\"other\":12}",
	        "{\"claim\":40,\"purchase\":20}",
	        "{\"process/claim\":8,\"communication/claim\":8,\"service/claim\":8,\"product/claim\":8,"
	        "\"other/claim\":8,\"process/purchase\":4,\"communication/purchase\":4,"
	        "\"service/purchase\":4,\"product/purchase\":4,\"other/purchase\":4}");
	json_int_t last_of_first = json_integer_value(
	        json_object_get(json_array_get(json_object_get(reply, "improvements"), 49), "id"));
	char *esc = curl_easy_escape(NULL, json_string_value(next), 0);
	char *q = fmt("?cursor=%s", esc);
	curl_free(esc);
	json_decref(reply);
	reply = improvements(q);
	json_t *items = json_object_get(reply, "improvements");
	ck_assert_uint_eq(json_array_size(items), 10);
	ck_assert_int_lt(iget(json_array_get(items, 0), "id"), last_of_first);
	ck_assert(json_is_null(json_object_get(reply, "next_cursor")));
	json_decref(reply);
	free(q);

	/* 500 takes them all. */
	reply = improvements("?limit=500");
	ck_assert_uint_eq(json_array_size(json_object_get(reply, "improvements")), 60);
	ck_assert(json_is_null(json_object_get(reply, "next_cursor")));
	json_decref(reply);

	/* Small pages: every one once, newest first. */
	json_int_t ids[80];
	int pages = 0;
	size_t n = walk_pages("", 7, 60, ids, 80, &pages);
	ck_assert_uint_eq(n, 60);
	ck_assert_msg(pages == 9 || pages == 10, "60 at 7 a page: %d pages", pages);
	/* Paging with a filter keeps to it: 12 process improvements, 8 on claim. */
	n = walk_pages("area=process", 5, 12, ids, 80, &pages);
	ck_assert_uint_eq(n, 12);
	n = walk_pages("touchpoint=claim&area=process", 3, 8, ids, 80, &pages);
	ck_assert_uint_eq(n, 8);
	/* Exactly one page full: the walk may end at once or after an empty page. */
	n = walk_pages("touchpoint=purchase", 20, 20, ids, 80, &pages);
	ck_assert_uint_eq(n, 20);
	ck_assert_int_le(pages, 2);
}
END_TEST

/* ---------- a slow report holds up nobody ---------- */

struct timed_get {
	const char *path, *token;
	long status;
	struct timespec done;
};

static void *timed_get(void *arg)
{
	struct timed_get *g = arg;
	struct http_result r;
	if (http_do(&D, "GET", g->path, g->token, NULL, NULL, 0, &r) == 0)
		g->status = r.status;
	http_result_free(&r);
	clock_gettime(CLOCK_MONOTONIC, &g->done);
	return NULL;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Restarts npsd with one HTTP thread, on a database that sql has filled meanwhile. */
static void restart_on_one_thread_with(const char *sql)
{
	ck_assert_int_eq(npsd_stop(&D, SIGTERM), 0);
	config_replace(&D, "threads = 2", "threads = 1");
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(D.db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(npsd_restart(&D), 0);
}

/* GETs the slow path as a manager and, while it is being read, the quick one: both succeed
 * and the quick one is answered first. */
static void answered_during(const char *slow_path, const char *quick_path)
{
	struct timed_get slow = { .path = slow_path, .token = T_MANAGER };
	struct timed_get quick = { .path = quick_path, .token = T_MANAGER };
	pthread_t a, b;
	ck_assert_int_eq(pthread_create(&a, NULL, timed_get, &slow), 0);
	sleep_ms(30); /* the slow read is under way */
	ck_assert_int_eq(pthread_create(&b, NULL, timed_get, &quick), 0);
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	ck_assert_int_eq(slow.status, 200);
	ck_assert_int_eq(quick.status, 200);
	ck_assert_msg(before(&quick.done, &slow.done), "%s waited for %s", quick_path, slow_path);
}

/* A report over every answer runs on the long reports lane: the one HTTP thread answers other
 * requests meanwhile (here a health check and the list of queued callbacks, sent while the
 * report is being worked out). */
/* 400,000 answers, one a minute from 2025-01-01: a report over them all by day takes about
 * half a second. */
#define MANY_ANSWERS                                                                                    \
	"INSERT INTO customers (id, created_at, updated_at) VALUES ('bulk', 0, 0);"                     \
	"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) INSERT INTO " \
	"surveys (response_id, source, customer_id, touchpoint, score, answered_at, received_at, "      \
	"consent) SELECT 'bulk-' || i, 's', 'bulk', 'claim', i % 11, 1735689600 + i * 60, "              \
	"1735689600, 1 FROM n"

START_TEST(a_slow_report_holds_up_no_other_request)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	answered_during("/v1/nps?group_by=day", "/healthz");
	/* Nor does an agent's view of the queue wait for it on a reports lane. */
	answered_during("/v1/nps?group_by=day", "/v1/callbacks?status=queued");
}
END_TEST

/* Three managers' reports over every answer are queued when a Prometheus scrape and an
 * agent console's figures come in: both read on the quick lane and are answered before even
 * the first report is done, not after all three (a second and a half here, many seconds at
 * two million answers, past Prometheus' scrape_timeout). */
START_TEST(quick_reads_pass_queued_reports)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	struct timed_get slow[3], metrics = { .path = "/metrics" },
	                          stats = { .path = "/v1/callbacks/stats", .token = T_AGENT };
	pthread_t slow_t[3], metrics_t, stats_t;
	for (size_t i = 0; i < 3; i++) {
		slow[i] = (struct timed_get){ .path = "/v1/nps?group_by=day", .token = T_MANAGER };
		ck_assert_int_eq(pthread_create(&slow_t[i], NULL, timed_get, &slow[i]), 0);
		sleep_ms(20); /* queued in this order */
	}
	ck_assert_int_eq(pthread_create(&metrics_t, NULL, timed_get, &metrics), 0);
	ck_assert_int_eq(pthread_create(&stats_t, NULL, timed_get, &stats), 0);
	pthread_join(metrics_t, NULL);
	pthread_join(stats_t, NULL);
	struct timespec first = { 0 };
	for (size_t i = 0; i < 3; i++) {
		pthread_join(slow_t[i], NULL);
		ck_assert_int_eq(slow[i].status, 200);
		if (i == 0 || before(&slow[i].done, &first))
			first = slow[i].done;
	}
	ck_assert_int_eq(metrics.status, 200);
	ck_assert_int_eq(stats.status, 200);
	ck_assert_msg(before(&metrics.done, &first), "/metrics waited for a queued report");
	ck_assert_msg(before(&stats.done, &first), "/v1/callbacks/stats waited for a queued report");
}
END_TEST

/* The CPU seconds npsd's long reports lane has used. A report's CPU time, unlike its time on
 * the clock, stays the same on a loaded machine (CI beside other builds stretched one report
 * and not the next, past a bound of 1.9 reports' time where the code under test took 1.1). */
static double lane_cpu_seconds_once(void)
{
	char *dir = fmt("/proc/%d/task", (int)D.pid);
	DIR *tasks = opendir(dir);
	ck_assert_msg(tasks, "%s: %s", dir, strerror(errno));
	double seconds = -1;
	struct dirent *e;
	while (seconds < 0 && (e = readdir(tasks))) {
		if (e->d_name[0] == '.')
			continue;
		char *path = fmt("%s/%s/comm", dir, e->d_name);
		char line[512] = "";
		FILE *f = fopen(path, "r");
		free(path);
		if (!f)
			continue;
		bool lane = fgets(line, sizeof line, f) && strcmp(line, "npsd-reports\n") == 0;
		fclose(f);
		if (!lane)
			continue;
		path = fmt("%s/%s/stat", dir, e->d_name);
		f = fopen(path, "r");
		free(path);
		ck_assert(f && fgets(line, sizeof line, f));
		fclose(f);
		unsigned long user, sys;
		const char *fields = strrchr(line, ')');
		ck_assert(fields);
		ck_assert_int_eq(sscanf(fields + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user,
		                        &sys),
		                 2);
		seconds = (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
	}
	closedir(tasks);
	free(dir);
	return seconds;
}

static double reports_lane_cpu_seconds(void)
{
	/* npsd writes its port file once it listens, and may start the lane a moment after. */
	double seconds = lane_cpu_seconds_once();
	for (int i = 0; seconds < 0 && i < 200; i++) {
		sleep_ms(10);
		seconds = lane_cpu_seconds_once();
	}
	ck_assert_msg(seconds >= 0, "no npsd-reports thread in npsd %d", (int)D.pid);
	return seconds;
}

/* One report over every answer, alone: the reports lane's CPU seconds for it. */
static double one_report_cpu_seconds(void)
{
	double before = reports_lane_cpu_seconds();
	json_t *all = nps_at(__LINE__, "?group_by=day");
	json_decref(all);
	return reports_lane_cpu_seconds() - before;
}

/* /metrics counts the requests dropped because their client left as want says, and no 503
 * among the answers: none was answered for nobody. */
static void dropped_and_no_503(const char *want)
{
	struct http_result m;
	ck_assert_int_eq(http_do(&D, "GET", "/metrics", NULL, NULL, NULL, 0, &m), 0);
	ck_assert_int_eq(m.status, 200);
	char *line = fmt("\nnpsd_http_dropped_total %s\n", want);
	const char *dropped = strstr(m.body, "\nnpsd_http_dropped_total ");
	ck_assert_msg(dropped && strncmp(dropped, line, strlen(line)) == 0, "%.40s",
	              dropped ? dropped + 1 : "no npsd_http_dropped_total");
	free(line);
	const char *unavailable = strstr(m.body, "npsd_http_responses_total{code=\"503\"}");
	ck_assert_msg(!unavailable, "%.50s", unavailable);
	http_result_free(&m);
}

/* Four managers give up on their reports while one is being read (their connections close
 * while queued): the report asked after them is read right after the first, not after four
 * more for nobody. */
START_TEST(a_queued_report_whose_client_left_is_not_read)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	double one = fmin(one_report_cpu_seconds(), one_report_cpu_seconds());
	struct timed_get first = { .path = "/v1/nps?group_by=day", .token = T_MANAGER };
	struct timed_get last = first;
	pthread_t first_t, last_t;
	double cpu_before = reports_lane_cpu_seconds();
	ck_assert_int_eq(pthread_create(&first_t, NULL, timed_get, &first), 0);
	sleep_ms(20); /* under way */
	char *request = fmt("GET /v1/nps?group_by=day HTTP/1.1\r\nHost: localhost\r\n"
	                    "Authorization: Bearer %s\r\n\r\n",
	                    T_MANAGER);
	int gone[4];
	for (size_t i = 0; i < 4; i++) {
		gone[i] = raw_connect(&D);
		ck_assert_int_ge(gone[i], 0);
		ck_assert_int_eq(raw_send(gone[i], request), 0);
	}
	sleep_ms(30); /* queued */
	for (size_t i = 0; i < 4; i++)
		close(gone[i]);
	free(request);
	ck_assert_int_eq(pthread_create(&last_t, NULL, timed_get, &last), 0);
	pthread_join(first_t, NULL);
	pthread_join(last_t, NULL);
	ck_assert_int_eq(first.status, 200);
	ck_assert_int_eq(last.status, 200);
	/* Two reports' work: four more would be six. */
	double cpu = reports_lane_cpu_seconds() - cpu_before;
	ck_assert_msg(cpu < 3 * one, "the reports lane worked %.2f s of CPU for the first and the last "
	              "report (one takes %.2f s): the reports of closed connections were read", cpu, one);
	/* They are told apart in /metrics, not counted as answers: a 503 there reads as storage
	 * trouble to whoever watches the 5xx rate, when only managers closed a tab. */
	dropped_and_no_503("4");
}
END_TEST

/* A list of callbacks filtered by a touchpoint that none has walks every callback of the
 * statuses asked for (400,000 here: about half a second); it runs on the long reports lane, so
 * the one HTTP thread answers a health check meanwhile. */
START_TEST(a_slow_callbacks_list_holds_up_no_other_request)
{
	restart_on_one_thread_with("INSERT INTO customers (id, created_at, updated_at) VALUES ('bulk', 0, 0);"
	                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
	                           "400000) INSERT INTO callbacks (customer_id, status, priority, touchpoint, "
	                           "due_at, sla_deadline, max_attempts, created_at) SELECT 'bulk', 'done', "
	                           "i % 9, 'claim', i, i, 3, i FROM n");
	answered_during("/v1/callbacks?status=done&touchpoint=rare", "/healthz");
}
END_TEST

/* ---------- a cap on the reports waiting ---------- */

/* Over MANY_ANSWERS: about half a second, the time the tests below have to fill the queue. */
#define SLOW_REPORT "/v1/nps?group_by=day"
/* No answer in its range: milliseconds, once its turn comes. */
#define QUICK_REPORT "/v1/nps?from=2026-01-01T00:00:00Z"

/* Sends GET path with token on a connection of its own and returns the socket at once,
 * without waiting for the answer (raw_reply reads it). */
static int send_get(const char *path, const char *token)
{
	int fd = raw_connect(&D);
	ck_assert_int_ge(fd, 0);
	char *request = fmt("GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n", path,
	                    token);
	ck_assert_int_eq(raw_send(fd, request), 0);
	free(request);
	return fd;
}

/* Whether the answer to the request sent on fd has begun to arrive. */
static bool answered(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* Reads the answer to the request sent on fd, which must be a 200, and closes fd. */
#define expect_200(fd) expect_200_at(__LINE__, fd)
static void expect_200_at(int line, int fd)
{
	char *reply = raw_reply(fd, 10000);
	ck_assert_msg(reply && strncmp(reply, "HTTP/1.1 200 ", 13) == 0, "line %d: %.200s", line,
	              reply ? reply : "(no answer)");
	free(reply);
	close(fd);
}

/* A sample's value in /metrics (its name and labels as written there), or -1 when absent. */
static long long metric_sample(const char *sample)
{
	struct http_result m;
	ck_assert_int_eq(http_do(&D, "GET", "/metrics", NULL, NULL, NULL, 0, &m), 0);
	ck_assert_int_eq(m.status, 200);
	char *line = fmt("\n%s ", sample);
	const char *at = strstr(m.body, line);
	long long value = at ? strtoll(at + strlen(line), NULL, 10) : -1;
	free(line);
	http_result_free(&m);
	return value;
}

/* Waits until /metrics (read on the quick lane) shows n reports waiting on the long lane,
 * while the report asked on holding is still running: false when it ended first, or after
 * 5 s. */
static bool reports_waiting(long long n, int holding)
{
	for (int i = 0; i < 1000 && !answered(holding); i++) {
		if (metric_sample("npsd_reports_waiting") == n)
			return true;
		sleep_ms(5);
	}
	return false;
}

/* A manager closes the tab while a report over every answer runs: the rest of it is not
 * read, so the lane's work for it and the report queued behind it is about one report, not
 * two. The one left is told apart in /metrics (dropped, no 503: a report read to its end for
 * nobody is a 200 there), and the reader it ran on, stopped mid-statement, serves the reports
 * and quick reads after it. */
START_TEST(a_report_whose_client_left_mid_run_stops)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	/* One report's CPU time, on a warm cache as the two below: the mean of two (the smaller
	 * of two was a fast outlier now and then). */
	double one = (one_report_cpu_seconds() + one_report_cpu_seconds()) / 2;
	double cpu_before = reports_lane_cpu_seconds();
	int gone = send_get(SLOW_REPORT, T_MANAGER);
	struct timed_get last = { .path = SLOW_REPORT, .token = T_MANAGER };
	pthread_t last_t;
	ck_assert_int_eq(pthread_create(&last_t, NULL, timed_get, &last), 0);
	/* The first under way, the last queued behind it: then the tab closes, and the lane
	 * finds it gone at its next look, within 50 ms. */
	ck_assert_msg(reports_waiting(1, gone), "the first report was not under way with the last behind it");
	close(gone);
	pthread_join(last_t, NULL);
	ck_assert_int_eq(last.status, 200);
	/* The first stopped about 50 ms into it: the lane's work for both is one report and
	 * that, where two read to their end are two (and a 200 for nobody, not a drop). */
	double cpu = reports_lane_cpu_seconds() - cpu_before;
	ck_assert_msg(cpu < 1.75 * one, "the reports lane worked %.2f s of CPU for the two reports (one "
	              "takes %.2f s): the report of a closed connection was read to its end", cpu, one);
	dropped_and_no_503("1");
	/* Whichever reader the stopped report ran on reads whole reports and quick reads again. */
	for (size_t i = 0; i < 3; i++) {
		json_t *all = nps_at(__LINE__, "");
		ck_assert_int_eq(json_integer_value(json_object_get(all, "responses")), 400000);
		json_decref(all);
	}
	struct http_result stats;
	ck_assert_int_eq(http_do(&D, "GET", "/v1/callbacks/stats", T_AGENT, NULL, NULL, 0, &stats), 0);
	ck_assert_int_eq(stats.status, 200);
	http_result_free(&stats);
}
END_TEST

/* A report asked with token is refused at once: status with SPEC's error body (code, field
 * null), a Retry-After of 1 to 60 s, and a message that starts with want and says when to
 * try again, as the header does. */
#define expect_refused(token, status, code, want) expect_refused_at(__LINE__, token, status, code, want)
static void expect_refused_at(int line, const char *token, long status, const char *code, const char *want)
{
	struct http_result r;
	ck_assert_int_eq(http_do(&D, "GET", QUICK_REPORT, token, NULL, NULL, 0, &r), 0);
	expect_error_at(line, &r, status, code, NULL);
	char *retry = http_header(&r, "Retry-After");
	ck_assert_msg(retry, "line %d: no Retry-After", line);
	char *end;
	long seconds = strtol(retry, &end, 10);
	ck_assert_msg(*end == '\0' && seconds >= 1 && seconds <= 60, "line %d: Retry-After: %s", line,
	              retry);
	char *message = fmt("%s; try again in %ld s", want, seconds);
	const char *got = sget(json_object_get(r.json, "error"), "message");
	ck_assert_msg(strcmp(got, message) == 0, "line %d: message \"%s\", want \"%s\"", line, got, message);
	free(message);
	free(retry);
	http_result_free(&r);
}

/* While one report runs, four managers queue their share each (eight): the queue is full
 * (32), and a fifth manager's report is refused at once, 503 with Retry-After, instead of
 * waiting behind all of them. /metrics (the quick lane) answers meanwhile and counts the
 * refusal; the 32 get their 200s; once they are done a report is served again. */
START_TEST(a_report_beyond_the_full_queue_is_refused_at_once)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	enum { KEYS = OFFLOAD_LONG_WAITING_MAX / OFFLOAD_LONG_WAITING_PER_OWNER };
	char *keys[KEYS];
	for (size_t k = 0; k < KEYS; k++) {
		char name[32];
		snprintf(name, sizeof name, "manager-%zu", k);
		keys[k] = npsctl_key(&D, "manager", name);
		ck_assert_msg(keys[k] && *keys[k], "npsctl key create failed");
	}
	int holding = send_get(SLOW_REPORT, T_MANAGER);
	sleep_ms(20); /* under way */
	int queued[OFFLOAD_LONG_WAITING_MAX];
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_MAX; i++)
		queued[i] = send_get(QUICK_REPORT, keys[i / OFFLOAD_LONG_WAITING_PER_OWNER]);
	bool full = reports_waiting(OFFLOAD_LONG_WAITING_MAX, holding);
	char *want = fmt("%d reports are waiting to run", OFFLOAD_LONG_WAITING_MAX);
	expect_refused(T_ADMIN, 503, "unavailable", want);
	free(want);
	ck_assert_msg(full, "/metrics never showed %d reports waiting", OFFLOAD_LONG_WAITING_MAX);
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"queue_full\"}"), 1);
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"key_share\"}"), 0);
	ck_assert_msg(!answered(holding), "the report ahead ended before the refusal and /metrics: the "
	                                  "test proved nothing (a machine too slow?)");
	expect_200(holding);
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_MAX; i++)
		expect_200(queued[i]);
	ck_assert_int_eq(metric_sample("npsd_reports_waiting"), 0);
	json_decref(nps(""));
	json_decref(nps_at(__LINE__, "?from=2026-01-01T00:00:00Z"));
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"queue_full\"}"), 1);
	for (size_t k = 0; k < KEYS; k++)
		free(keys[k]);
}
END_TEST

/* One key has a share of the queue (eight): its ninth report is refused (429) while another
 * key's is queued and served, so a script in a loop locks out no other manager. Reports
 * whose client has left take no room: a manager who reloads the page (the eight reports
 * before abandoned, their connections closed) is not refused for them. */
START_TEST(one_key_has_a_share_of_the_queue_and_left_reports_take_none)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	/* The lane held by a third key's slow reports, one under way and HELD behind it (two
	 * seconds here, longer on a loaded machine, as the steps below are): with one, a loaded
	 * machine took longer for the steps than the report took, and the ninth was served. */
	enum { HELD = 3 };
	char *holder = npsctl_key(&D, "manager", "holder");
	ck_assert_msg(holder && *holder, "npsctl key create failed");
	int holding[1 + HELD];
	holding[0] = send_get(SLOW_REPORT, holder);
	sleep_ms(20); /* under way */
	for (size_t i = 1; i <= HELD; i++)
		holding[i] = send_get(SLOW_REPORT, holder);
	int last = holding[HELD];
	ck_assert_msg(reports_waiting(HELD, last), "the holder's reports were not under way and queued");
	int left[OFFLOAD_LONG_WAITING_PER_OWNER], queued[OFFLOAD_LONG_WAITING_PER_OWNER];
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_PER_OWNER; i++)
		left[i] = send_get(QUICK_REPORT, T_MANAGER);
	bool waited = reports_waiting(HELD + OFFLOAD_LONG_WAITING_PER_OWNER, last);
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_PER_OWNER; i++)
		close(left[i]);
	sleep_ms(20); /* the FINs are in */
	/* At the key's share, the abandoned ones are found and leave the count. */
	queued[0] = send_get(QUICK_REPORT, T_MANAGER);
	bool evicted = reports_waiting(HELD + 1, last);
	for (size_t i = 1; i < OFFLOAD_LONG_WAITING_PER_OWNER; i++)
		queued[i] = send_get(QUICK_REPORT, T_MANAGER);
	bool share = reports_waiting(HELD + OFFLOAD_LONG_WAITING_PER_OWNER, last);
	ck_assert_msg(waited && evicted && share, "/metrics never showed %d reports waiting",
	              HELD + (!waited ? OFFLOAD_LONG_WAITING_PER_OWNER : !evicted ? 1 : OFFLOAD_LONG_WAITING_PER_OWNER));
	char *want = fmt("%d reports of this key are waiting to run", OFFLOAD_LONG_WAITING_PER_OWNER);
	/* A limit of this key's (SPEC's 429, as server.rate_limit), not npsd busy for all. */
	expect_refused(T_MANAGER, 429, "rate_limited", want);
	free(want);
	int other = send_get(QUICK_REPORT, T_ADMIN);
	ck_assert(reports_waiting(HELD + OFFLOAD_LONG_WAITING_PER_OWNER + 1, last));
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"key_share\"}"), 1);
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"queue_full\"}"), 0);
	ck_assert_msg(!answered(last), "the reports ahead ended before the refusal: the test proved "
	                               "nothing (a machine too slow?)");
	for (size_t i = 0; i <= HELD; i++)
		expect_200(holding[i]);
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_PER_OWNER; i++)
		expect_200(queued[i]);
	expect_200(other);
	free(holder);
	/* The abandoned ones were skipped at their turn, not answered. */
	ck_assert_int_eq(metric_sample("npsd_http_dropped_total"), OFFLOAD_LONG_WAITING_PER_OWNER);
	json_decref(nps(""));
}
END_TEST

/* The key id behind token, from /v1/me. */
static long long key_id_of(const char *token)
{
	struct http_result r;
	REQ(&r, "GET", "/v1/me", token, NULL);
	ck_assert_int_eq(r.status, 200);
	long long id = json_integer_value(json_object_get(r.json, "key_id"));
	http_result_free(&r);
	return id;
}

/* How many times needle occurs in haystack. */
static int occurrences(const char *haystack, const char *needle)
{
	int n = 0;
	for (const char *at = haystack; (at = strstr(at, needle)); at += strlen(needle))
		n++;
	return n;
}

/* Refused reports are logged as warnings, for ops reading journald, where they were only
 * counted in /metrics: the key's id, the answer, the count and when to come back, without
 * the key's name or token. A flood of them is one line a minute for each reason: ten refused
 * for a key's share and ten for a full queue are a line each. */
START_TEST(refused_reports_are_logged_a_line_a_minute_for_each_reason)
{
	restart_on_one_thread_with(MANY_ANSWERS);
	enum { KEYS = OFFLOAD_LONG_WAITING_MAX / OFFLOAD_LONG_WAITING_PER_OWNER, FLOOD = 10 };
	char *keys[KEYS];
	keys[0] = strdup(T_MANAGER);
	for (size_t k = 1; k < KEYS; k++) {
		char name[32];
		snprintf(name, sizeof name, "manager-%zu", k);
		keys[k] = npsctl_key(&D, "manager", name);
		ck_assert_msg(keys[k] && *keys[k], "npsctl key create failed");
	}
	long long manager = key_id_of(T_MANAGER), admin = key_id_of(T_ADMIN);
	int holding = send_get(SLOW_REPORT, T_ADMIN);
	sleep_ms(20); /* under way */
	int queued[OFFLOAD_LONG_WAITING_MAX];
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_PER_OWNER; i++)
		queued[i] = send_get(QUICK_REPORT, keys[0]);
	bool share = reports_waiting(OFFLOAD_LONG_WAITING_PER_OWNER, holding);
	char *want = fmt("%d reports of this key are waiting to run", OFFLOAD_LONG_WAITING_PER_OWNER);
	for (int i = 0; i < FLOOD; i++)
		expect_refused(T_MANAGER, 429, "rate_limited", want);
	free(want);
	for (size_t i = OFFLOAD_LONG_WAITING_PER_OWNER; i < OFFLOAD_LONG_WAITING_MAX; i++)
		queued[i] = send_get(QUICK_REPORT, keys[i / OFFLOAD_LONG_WAITING_PER_OWNER]);
	bool full = reports_waiting(OFFLOAD_LONG_WAITING_MAX, holding);
	want = fmt("%d reports are waiting to run", OFFLOAD_LONG_WAITING_MAX);
	for (int i = 0; i < FLOOD; i++)
		expect_refused(T_ADMIN, 503, "unavailable", want);
	free(want);
	ck_assert_msg(share && full, "/metrics never showed %d reports waiting",
	              !share ? OFFLOAD_LONG_WAITING_PER_OWNER : OFFLOAD_LONG_WAITING_MAX);
	ck_assert_msg(!answered(holding), "the report ahead ended before the refusals: the test proved "
	                                  "nothing (a machine too slow?)");
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"key_share\"}"), FLOOD);
	ck_assert_int_eq(metric_sample("npsd_reports_refused_total{reason=\"queue_full\"}"), FLOOD);
	expect_200(holding);
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_MAX; i++)
		expect_200(queued[i]);

	char *log = npsd_log(&D);
	ck_assert_msg(log, "no log");
	char *share_line = fmt("warn: reports: refused a report of key %lld with 429: %d of its reports are "
	                       "waiting, its share of the queue (Retry-After ",
	                       manager, OFFLOAD_LONG_WAITING_PER_OWNER);
	char *full_line = fmt("warn: reports: refused a report of key %lld with 503: %d reports are waiting, "
	                      "the queue is full (Retry-After ",
	                      admin, OFFLOAD_LONG_WAITING_MAX);
	ck_assert_msg(occurrences(log, share_line) == 1 && occurrences(log, full_line) == 1 &&
	                      occurrences(log, "reports: refused") == 2,
	              "want one line of each refusal; log:\n%s", log);
	ck_assert_msg(!strstr(log, "manager-mo") && !strstr(log, T_MANAGER) && !strstr(log, T_ADMIN),
	              "a key's name or token in the log:\n%s", log);
	free(full_line);
	free(share_line);
	free(log);
	for (size_t k = 0; k < KEYS; k++)
		free(keys[k]);
}
END_TEST

/* /metrics' help of the refusals names each reason's answer: it called both a 503, while a
 * key over its share gets a 429 rate_limited. */
START_TEST(the_help_of_refused_reports_names_each_answer)
{
	struct http_result m;
	ck_assert_int_eq(http_do(&D, "GET", "/metrics", NULL, NULL, NULL, 0, &m), 0);
	ck_assert_int_eq(m.status, 200);
	const char *help = strstr(m.body, "# HELP npsd_reports_refused_total ");
	ck_assert_msg(help, "no help of npsd_reports_refused_total");
	char *line = strndup(help, strcspn(help, "\n"));
	char *full = fmt("503 when their queue was full (queue_full: %d waiting)", OFFLOAD_LONG_WAITING_MAX);
	char *share = fmt("429 when their key had %d of them waiting (key_share)", OFFLOAD_LONG_WAITING_PER_OWNER);
	ck_assert_msg(strstr(line, full) && strstr(line, share), "the help: %s", line);
	free(share);
	free(full);
	free(line);
	http_result_free(&m);
}
END_TEST

/* ---------- the suite ---------- */

static Suite *reports_suite(void)
{
	Suite *s = suite_create("reports");
	TCase *tc = tcase_create("reports");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, managers_and_admins_read_reports_others_are_refused);
	tcase_add_test(tc, an_empty_database_has_no_score);
	tcase_add_test(tc, the_figures_of_known_mixes);
	tcase_add_test(tc, group_by_touchpoint_and_channel);
	tcase_add_test(tc, group_by_day_follows_amsterdam_midnight);
	tcase_add_test(tc, group_by_week_and_month_in_local_time);
	tcase_add_test(tc, filters_and_the_edges_of_from_and_to);
	tcase_add_test(tc, bad_query_parameters_are_400);
	tcase_add_test(tc, empty_query_values_are_no_filter);
	tcase_add_test(tc, an_excluded_answer_leaves_every_figure_and_comes_back);
	tcase_add_test(tc, patch_errors_name_the_field_and_change_nothing);
	tcase_add_test(tc, improvements_newest_first_with_counts);
	tcase_add_test(tc, improvements_filters);
	tcase_add_test(tc, improvements_page_by_cursor);
	tcase_add_test(tc, a_slow_report_holds_up_no_other_request);
	tcase_add_test(tc, quick_reads_pass_queued_reports);
	tcase_add_test(tc, a_queued_report_whose_client_left_is_not_read);
	tcase_add_test(tc, a_report_whose_client_left_mid_run_stops);
	tcase_add_test(tc, a_slow_callbacks_list_holds_up_no_other_request);
	tcase_add_test(tc, a_report_beyond_the_full_queue_is_refused_at_once);
	tcase_add_test(tc, one_key_has_a_share_of_the_queue_and_left_reports_take_none);
	tcase_add_test(tc, the_help_of_refused_reports_names_each_answer);
	tcase_add_test(tc, refused_reports_are_logged_a_line_a_minute_for_each_reason);
	suite_add_tcase(s, tc);

	TCase *tz = tcase_create("timezone");
	tcase_set_timeout(tz, 60);
	tcase_add_checked_fixture(tz, setup_new_york, teardown);
	tcase_add_test(tz, periods_follow_the_configured_time_zone);
	suite_add_tcase(s, tz);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(reports_suite());
	curl_global_cleanup();
	return status;
}
