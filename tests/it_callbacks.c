/*
 * The agents' callback queue against the real daemon (issue 3, SPEC "Callbacks"):
 *  - claim order (due first, then lower score, then older), 204 on an empty queue, the
 *    touchpoint filter, the queue list in queue order with limit and cursor;
 *  - 50 concurrent claims from several agents over 60 callbacks: none handed out twice;
 *  - leases: expiry hands the callback to another agent, heartbeat extends, release requeues;
 *  - 409 for someone else's or an unclaimed callback, 404 for an unknown one;
 *  - outcomes: no_answer/busy/voicemail retries then unreachable, call_later, wrong_number,
 *    do_not_call, reached with improvements;
 *  - one open callback per customer, none without consent or phone, the customer's history;
 *  - opening hours and time zones, SLA breach announced once, roles, stats, 400s.
 *
 * Time is the daemon's fake clock (NPSD_FAKE_CLOCK_FILE, unix seconds, re-read on every
 * use; the scheduler then re-checks every 100 ms), so hours and days pass in milliseconds.
 */
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "npsd/validate.h"

#include "testutil.h"

/* 2026-11-18T17:06:40Z, a Wednesday; the queue is open "always" unless a test says not. */
#define T0 INT64_C(1795000000)
#define LEASE 900   /* callbacks.lease default, 15m */
#define SLA 3600    /* callbacks.sla default, 1h */
#define RETRY1 1800 /* callbacks.retry default: 30m, 2h, 1d */
#define RETRY2 7200
#define WAIT_MS 3000 /* how long the scheduler gets to act on a new fake time */
#define PHONE "+31612345678"

/* ---------- small helpers ---------- */

/* Asserts that obj's key is the UTC time t. */
static void assert_time(json_t *obj, const char *key, int64_t t)
{
	char want[32];
	const char *got = sget(obj, key);
	ck_assert_msg(got != NULL, "\"%s\" is not a string", key);
	ck_assert_msg(strcmp(got, time_format_rfc3339(t, want)) == 0, "\"%s\" is %s, want %s", key, got, want);
}

static void assert_null(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	ck_assert_msg(v == NULL || json_is_null(v), "\"%s\" should be null", key);
}

/* SPEC's error body, with code and (when field is not NULL) field. */
static void assert_error(json_t *body, const char *code, const char *field)
{
	ck_assert_msg(body != NULL, "error reply without a JSON body");
	json_t *err = json_object_get(body, "error");
	ck_assert_msg(json_is_object(err), "no \"error\" object");
	ck_assert_msg(sget(err, "code") && strcmp(sget(err, "code"), code) == 0, "error code %s, want %s",
	              sget(err, "code") ? sget(err, "code") : "(none)", code);
	ck_assert_msg(json_is_string(json_object_get(err, "message")), "error without a message");
	if (field)
		ck_assert_msg(sget(err, "field") && strcmp(sget(err, "field"), field) == 0,
		              "error field %s, want %s", sget(err, "field") ? sget(err, "field") : "(none)",
		              field);
}

/* ---------- the daemon on a fake clock ---------- */

struct fx {
	struct npsd_proc p;
	char *ingest, *agent_a, *agent_b, *manager, *admin;
	int64_t now;
	int seq; /* response ids */
};

static void fx_start(struct fx *f, int64_t t0, const char *callbacks_ini)
{
	memset(f, 0, sizeof *f);
	f->now = t0;
	fake_clock_start(t0);
	int r = callbacks_ini ? npsd_start_callbacks(&f->p, callbacks_ini, NULL) : npsd_start(&f->p, NULL);
	ck_assert_msg(r == 0, "npsd did not start");
	f->ingest = npsctl_key(&f->p, "ingest", "survey-platform");
	f->agent_a = npsctl_key(&f->p, "agent", "agent-a");
	f->agent_b = npsctl_key(&f->p, "agent", "agent-b");
	f->manager = npsctl_key(&f->p, "manager", "manager-m");
	f->admin = npsctl_key(&f->p, "admin", "ops");
	ck_assert_ptr_nonnull(f->ingest);
	ck_assert_ptr_nonnull(f->agent_a);
	ck_assert_ptr_nonnull(f->agent_b);
	ck_assert_ptr_nonnull(f->manager);
	ck_assert_ptr_nonnull(f->admin);
}

static void fx_at(struct fx *f, int64_t t)
{
	f->now = t;
	fake_clock_set(t);
}

/* Stops the daemon cleanly (a crash or sanitizer report shows as a bad exit) and cleans up. */
static void fx_stop(struct fx *f)
{
	int status = npsd_stop(&f->p, SIGTERM);
	if (status != 0) {
		char *log = npsd_log(&f->p);
		size_t len = log ? strlen(log) : 0;
		fprintf(stderr, "npsd exited %d; log tail:\n%s\n", status,
		        log ? log + (len > 4000 ? len - 4000 : 0) : "");
		free(log);
	}
	npsd_cleanup(&f->p);
	free(f->ingest);
	free(f->agent_a);
	free(f->agent_b);
	free(f->manager);
	free(f->admin);
	ck_assert_msg(status == 0, "npsd exited with %d on SIGTERM", status);
}

/* One request that must get an answer below 500 (testutil's http_call). */
static long call(struct fx *f, const char *method, const char *path, const char *token, const char *body,
                 json_t **out)
{
	return http_call(&f->p, method, path, token, body, out);
}

static long cb_call(struct fx *f, const char *method, int64_t id, const char *action, const char *token,
                    const char *body, json_t **out)
{
	char path[96];
	if (action)
		snprintf(path, sizeof path, "/v1/callbacks/%lld/%s", (long long)id, action);
	else
		snprintf(path, sizeof path, "/v1/callbacks/%lld", (long long)id);
	return call(f, method, path, token, body, out);
}

/* Posts one answer, asserting 201; returns the reply. phone NULL: none. */
/* An answer given at answered_at (0: not sent, so npsd takes the time it receives it). */
static json_t *post_answer_at(struct fx *f, const char *customer, int score, const char *touchpoint,
                              const char *phone, bool consent, int64_t answered_at)
{
	char rid[48];
	snprintf(rid, sizeof rid, "resp-%d", ++f->seq);
	json_t *doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:i, s:b, s:s}", "response_id", rid,
	                        "customer", "id", customer, "name", "Test Customer", "language", "nl",
	                        "touchpoint", touchpoint, "channel", "web", "score", score, "contact_consent",
	                        consent, "comment", "a comment");
	ck_assert_ptr_nonnull(doc);
	if (phone)
		json_object_set_new(json_object_get(doc, "customer"), "phone", json_string(phone));
	if (answered_at) {
		char when[21];
		json_object_set_new(doc, "answered_at", json_string(time_format_rfc3339(answered_at, when)));
	}
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	json_t *reply = NULL;
	long status = call(f, "POST", "/v1/surveys", f->ingest, text, &reply);
	ck_assert_msg(status == 201, "POST /v1/surveys answered %ld for %s", status, text);
	free(text);
	ck_assert_ptr_nonnull(reply);
	return reply;
}

static json_t *post_answer(struct fx *f, const char *customer, int score, const char *touchpoint,
                           const char *phone, bool consent)
{
	return post_answer_at(f, customer, score, touchpoint, phone, consent, 0);
}

/* The callback id of a POST /v1/surveys reply, 0 when "callback" is null. */
static int64_t callback_of(json_t *reply)
{
	json_t *cb = json_object_get(reply, "callback");
	ck_assert_msg(cb != NULL, "the reply has no \"callback\" member");
	if (json_is_null(cb))
		return 0;
	ck_assert_msg(sget(cb, "status") && sget(cb, "due_at"), "callback without status or due_at");
	return iget(cb, "id");
}

/* A low score with phone and consent: asserts a callback and returns its id. */
static int64_t post_low(struct fx *f, const char *customer, int score, const char *touchpoint)
{
	json_t *reply = post_answer(f, customer, score, touchpoint, PHONE, true);
	int64_t id = callback_of(reply);
	json_decref(reply);
	ck_assert_msg(id > 0, "score %d of %s opened no callback", score, customer);
	return id;
}

static json_t *get_cb(struct fx *f, int64_t id)
{
	json_t *body = NULL;
	long status = cb_call(f, "GET", id, NULL, f->manager, NULL, &body);
	ck_assert_msg(status == 200, "GET callback %lld answered %ld", (long long)id, status);
	ck_assert_int_eq(iget(body, "id"), id);
	return body;
}

static const char *status_of(struct fx *f, int64_t id, char buf[16])
{
	json_t *cb = get_cb(f, id);
	snprintf(buf, 16, "%s", sget(cb, "status"));
	json_decref(cb);
	return buf;
}

/* Claims with token and body (NULL: none). Returns the id, or 0 after a 204 with an empty
 * body; *out (may be NULL) gets the claimed callback. */
static int64_t claim(struct fx *f, const char *token, const char *body, json_t **out)
{
	struct http_result r;
	int rc = http_json(&f->p, "POST", "/v1/callbacks/claim", token, body, &r);
	ck_assert_msg(rc == 0, "claim: no response (curl %d)", r.curl_code);
	if (out)
		*out = NULL;
	if (r.status == 204) {
		ck_assert_msg(r.len == 0, "204 with a body: %s", r.body);
		http_result_free(&r);
		return 0;
	}
	ck_assert_msg(r.status == 200, "claim answered %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(r.json);
	ck_assert_str_eq(sget(r.json, "status"), "claimed");
	int64_t id = iget(r.json, "id");
	if (out)
		*out = json_incref(r.json);
	http_result_free(&r);
	return id;
}

static json_t *complete(struct fx *f, const char *token, int64_t id, const char *body, long want)
{
	json_t *reply = NULL;
	long status = cb_call(f, "POST", id, "complete", token, body, &reply);
	ck_assert_msg(status == want, "complete %lld with %s answered %ld, want %ld", (long long)id, body,
	              status, want);
	return reply;
}

/* Polls GET until key equals want (JSON text); returns the callback. */
static json_t *wait_for(struct fx *f, int64_t id, const char *key, const char *want_text)
{
	json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
	ck_assert_ptr_nonnull(want);
	json_t *cb = NULL;
	for (int waited = 0;; waited += 50) {
		cb = get_cb(f, id);
		if (json_equal(json_object_get(cb, key), want))
			break;
		if (waited >= WAIT_MS) {
			char *got = json_dumps(json_object_get(cb, key), JSON_ENCODE_ANY);
			ck_abort_msg("callback %lld: \"%s\" is still %s after %d ms, want %s", (long long)id,
			             key, got ? got : "(absent)", WAIT_MS, want_text);
		}
		json_decref(cb);
		sleep_ms(50);
	}
	json_decref(want);
	return cb;
}

/* The ids of a list reply, in order, into ids (at most max); returns the count. */
static size_t list_ids(json_t *reply, int64_t *ids, size_t max)
{
	json_t *items = json_object_get(reply, "callbacks");
	ck_assert_msg(json_is_array(items), "no \"callbacks\" array");
	ck_assert_uint_le(json_array_size(items), max);
	size_t i;
	json_t *item;
	json_array_foreach (items, i, item)
		ids[i] = iget(item, "id");
	return json_array_size(items);
}

static void assert_ids(const int64_t *got, size_t ngot, const int64_t *want, size_t nwant, const char *what)
{
	char g[256] = "", w[256] = "";
	for (size_t i = 0; i < ngot; i++)
		snprintf(g + strlen(g), sizeof g - strlen(g), "%s%lld", i ? "," : "", (long long)got[i]);
	for (size_t i = 0; i < nwant; i++)
		snprintf(w + strlen(w), sizeof w - strlen(w), "%s%lld", i ? "," : "", (long long)want[i]);
	ck_assert_msg(strcmp(g, w) == 0, "%s: got [%s], want [%s]", what, g, w);
}

/* The outbox keeps only events some webhook subscribes to: subscribe one (to a port where
 * nothing listens; its deliveries fail and retry, which does not matter here) so the rows
 * written for callbacks can be counted. */
static void fx_subscribe(struct fx *f)
{
	json_t *reply = NULL;
	long status =
	        call(f, "POST", "/v1/webhooks", f->manager,
	             "{\"url\":\"http://127.0.0.1:9/hook\",\"format\":\"standard\","
	             "\"events\":[\"callback.created\",\"callback.completed\",\"callback.sla_breached\","
	             "\"callback.unreachable\"],\"description\":\"it_callbacks outbox probe\"}",
	             &reply);
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	ck_assert_msg(status == 201, "POST /v1/webhooks answered %ld: %s", status, text ? text : "");
	free(text);
	json_decref(reply);
}

/* Outbox rows of type for callback id, read from the daemon's database. */
static int count_events(struct fx *f, const char *type, int64_t id)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(f->p.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                                    "SELECT count(*) FROM events WHERE type = ?1 AND "
	                                    "json_extract(payload, '$.callback.id') = ?2",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* The payload of the (last) outbox row of type for callback id, parsed; NULL when none. */
static json_t *event_payload(struct fx *f, const char *type, int64_t id)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(f->p.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(
	        sqlite3_prepare_v2(db,
	                           "SELECT payload FROM events WHERE type = ?1 AND "
	                           "json_extract(payload, '$.callback.id') = ?2 ORDER BY id DESC LIMIT 1",
	                           -1, &st, NULL),
	        SQLITE_OK);
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	json_t *payload = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		payload = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return payload;
}

/* ---------- claim order, 204, touchpoint filter, the list ---------- */

/* A manager paging through the queue sees every callback once, also when one becomes due
 * between two pages and so moves ahead of the page already read. */
/* SPEC writes the queue as GET /v1/callbacks?status=queued&touchpoint=&limit=&cursor=: an
 * empty value (or none) is no filter, as a form sends its blank fields; it was a 400. */
START_TEST(list_empty_query_values_are_no_filter)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t a = post_low(&f, "C-A", 3, "claim");
	int64_t b = post_low(&f, "C-B", 5, "renewal");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), a);
	static const char *const same[][2] = {
		{ "/v1/callbacks?status=queued", "/v1/callbacks?status=queued&touchpoint=&limit=&cursor=" },
		{ "/v1/callbacks", "/v1/callbacks?status=&touchpoint=" },
		{ "/v1/callbacks", "/v1/callbacks?status&touchpoint&limit&cursor" },
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		json_t *want = NULL, *got = NULL;
		ck_assert_int_eq(call(&f, "GET", same[i][0], f.manager, NULL, &want), 200);
		ck_assert_int_eq(call(&f, "GET", same[i][1], f.manager, NULL, &got), 200);
		ck_assert_msg(json_equal(got, want), "GET %s differs from GET %s", same[i][1], same[i][0]);
		json_decref(want);
		json_decref(got);
	}
	json_t *queued = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued&touchpoint=", f.manager, NULL, &queued), 200);
	json_t *items = json_object_get(queued, "callbacks");
	ck_assert_uint_eq(json_array_size(items), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "id")), b);
	json_decref(queued);
	fx_stop(&f);
}
END_TEST

START_TEST(list_pages_keep_their_order_while_callbacks_fall_due)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	/* Two tried once and not due again yet: y at T0 + RETRY1, x ten minutes later. */
	int64_t y = post_low(&f, "C-Y", 3, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), y);
	json_decref(complete(&f, f.agent_a, y, "{\"outcome\":\"no_answer\"}", 200));
	fx_at(&f, T0 + 600);
	int64_t x = post_low(&f, "C-X", 0, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), x);
	json_decref(complete(&f, f.agent_a, x, "{\"outcome\":\"no_answer\"}", 200));

	/* Neither is due: x first, by its lower score. */
	fx_at(&f, T0 + 900);
	json_t *list = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued&limit=1", f.manager, NULL, &list), 200);
	int64_t ids[4];
	const int64_t first_page[] = { x };
	assert_ids(ids, list_ids(list, ids, 4), first_page, 1, "the first page");
	json_t *next = json_object_get(list, "next_cursor");
	ck_assert_msg(json_is_string(next), "no next_cursor after the first of two");
	char path[160];
	snprintf(path, sizeof path, "/v1/callbacks?status=queued&limit=1&cursor=%s", json_string_value(next));
	json_decref(list);

	/* y falls due before the next page is read. */
	fx_at(&f, T0 + RETRY1 + 60);
	ck_assert_int_eq(call(&f, "GET", path, f.manager, NULL, &list), 200);
	const int64_t second_page[] = { y };
	assert_ids(ids, list_ids(list, ids, 4), second_page, 1, "the second page");
	ck_assert(json_is_null(json_object_get(list, "next_cursor")));
	json_decref(list);
	fx_stop(&f);
}
END_TEST

START_TEST(claim_order_filter_and_list_pagination)
{
	struct fx f;
	fx_start(&f, T0, NULL);

	/* Nothing queued: 204, no body. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_a, "{}", NULL), 0);
	json_t *list = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued", f.agent_a, NULL, &list), 200);
	ck_assert_uint_eq(json_array_size(json_object_get(list, "callbacks")), 0);
	ck_assert(json_is_null(json_object_get(list, "next_cursor")));
	json_decref(list);

	/* The lowest score, tried once already: queued but not due for 30 minutes. */
	int64_t f0 = post_low(&f, "C-F", 0, "purchase");
	json_t *cb = NULL;
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, &cb), f0);
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-a");
	/* And by which key: the one GET /v1/me names for agent-a. */
	json_t *me = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/me", f.agent_a, NULL, &me), 200);
	ck_assert_int_gt(iget(me, "key_id"), 0);
	ck_assert_int_eq(iget(cb, "claimed_by_key_id"), iget(me, "key_id"));
	json_decref(me);
	assert_time(cb, "lease_expires_at", T0 + LEASE);
	ck_assert_int_eq(iget(cb, "priority"), 0);
	json_decref(cb);
	json_decref(complete(&f, f.agent_a, f0, "{\"outcome\":\"no_answer\"}", 200));

	/* Posted so that neither the ids nor the times alone give the queue order. */
	fx_at(&f, T0 + 10);
	int64_t a5 = post_low(&f, "C-A", 5, "claim");
	fx_at(&f, T0 + 20);
	int64_t c8 = post_low(&f, "C-C", 8, "purchase");
	fx_at(&f, T0 + 30);
	int64_t b2 = post_low(&f, "C-B", 2, "claim");
	fx_at(&f, T0 + 40);
	int64_t d2 = post_low(&f, "C-D", 2, "purchase");

	/* The queue: due ones first (lower score, then older), then the one not due yet. */
	int64_t ids[16];
	const int64_t queue[] = { b2, d2, a5, c8, f0 };
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued", f.agent_a, NULL, &list), 200);
	assert_ids(ids, list_ids(list, ids, 16), queue, 5, "the queue");
	ck_assert(json_is_null(json_object_get(list, "next_cursor")));
	json_t *first = json_array_get(json_object_get(list, "callbacks"), 0);
	ck_assert_str_eq(sget(first, "status"), "queued");
	ck_assert_int_eq(iget(first, "priority"), 2);
	ck_assert_str_eq(sget(json_object_get(first, "customer"), "id"), "C-B");
	json_decref(list);

	/* The same, two at a time. */
	int64_t all[16];
	size_t nall = 0, pages = 0;
	char path[160] = "/v1/callbacks?status=queued&limit=2";
	for (;;) {
		ck_assert_int_eq(call(&f, "GET", path, f.manager, NULL, &list), 200);
		size_t n = list_ids(list, all + nall, 16 - nall);
		ck_assert_uint_le(n, 2);
		nall += n;
		pages++;
		json_t *next = json_object_get(list, "next_cursor");
		if (json_is_null(next)) {
			json_decref(list);
			break;
		}
		ck_assert_msg(json_is_string(next), "next_cursor must be a string or null");
		ck_assert_uint_eq(n, 2);
		snprintf(path, sizeof path, "/v1/callbacks?status=queued&limit=2&cursor=%s",
		         json_string_value(next));
		json_decref(list);
		ck_assert_uint_le(pages, 5);
	}
	ck_assert_uint_eq(pages, 3);
	assert_ids(all, nall, queue, 5, "the queue in pages of 2");

	/* A touchpoint filter on the list. */
	const int64_t purchase[] = { d2, c8, f0 };
	ck_assert_int_eq(
	        call(&f, "GET", "/v1/callbacks?status=queued&touchpoint=purchase", f.agent_a, NULL, &list),
	        200);
	assert_ids(ids, list_ids(list, ids, 16), purchase, 3, "the purchase queue");
	for (size_t i = 0; i < 3; i++) /* queued: no key holds them */
		ck_assert(json_is_null(
		        json_object_get(json_array_get(json_object_get(list, "callbacks"), i), "claimed_by_key_id")));
	json_decref(list);

	/* Claims follow the queue; the filter takes the first of its touchpoint. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), b2);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"claim\"}", &cb), a5);
	ck_assert_str_eq(sget(cb, "touchpoint"), "claim");
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-b");
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"claim\"}", NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"renewal\"}", NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_a, "{}", NULL), d2);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), c8);
	/* Only the one not yet due is left. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	/* Close the four before the clock moves on, or their leases would expire. */
	json_decref(complete(&f, f.agent_a, b2, "{\"outcome\":\"reached\"}", 200));
	json_decref(complete(&f, f.agent_b, a5, "{\"outcome\":\"reached\"}", 200));
	json_decref(complete(&f, f.agent_a, d2, "{\"outcome\":\"declined\"}", 200));
	json_decref(complete(&f, f.agent_a, c8, "{\"outcome\":\"reached\"}", 200));
	fx_at(&f, T0 + RETRY1 - 1);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	fx_at(&f, T0 + RETRY1);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"purchase\"}", NULL), f0);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);

	/* The claimed ones are listed as such. */
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=claimed&limit=500", f.manager, NULL, &list),
	                 200);
	ck_assert_uint_eq(json_array_size(json_object_get(list, "callbacks")), 1);
	json_decref(list);
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=done&limit=500", f.manager, NULL, &list), 200);
	ck_assert_uint_eq(json_array_size(json_object_get(list, "callbacks")), 4);
	json_decref(list);
	fx_stop(&f);
}
END_TEST

/* ---------- 50 concurrent claims ---------- */

#define QUEUE_SIZE 60
#define CLAIMERS 50
#define AGENTS 5

struct claimer {
	const struct npsd_proc *p;
	const char *token;
	const char *agent;
	pthread_barrier_t *start;
	long status;
	int64_t id;
	char claimed_by[64];
	int curl_code;
};

static void *claimer_main(void *arg)
{
	struct claimer *c = arg;
	CURL *curl = curl_easy_init();
	char url[128], authz[512];
	struct curl_slist *headers = NULL;
	struct growbuf resp = { 0 };
	snprintf(url, sizeof url, "%s/v1/callbacks/claim", c->p->base_url);
	snprintf(authz, sizeof authz, "Authorization: Bearer %s", c->token);
	headers = curl_slist_append(headers, authz);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	if (curl) {
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{}");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)2);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, growbuf_write);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	}
	pthread_barrier_wait(c->start);
	if (!curl) {
		c->curl_code = -1;
	} else {
		c->curl_code = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &c->status);
		json_t *j = resp.len ? json_loadb(resp.data, resp.len, 0, NULL) : NULL;
		if (j) {
			c->id = json_integer_value(json_object_get(j, "id"));
			const char *by = json_string_value(json_object_get(j, "claimed_by"));
			snprintf(c->claimed_by, sizeof c->claimed_by, "%s", by ? by : "");
			json_decref(j);
		}
		curl_easy_cleanup(curl);
	}
	curl_slist_free_all(headers);
	free(resp.data);
	return NULL;
}

START_TEST(concurrent_claims_never_hand_out_one_twice)
{
	struct fx f;
	fx_start(&f, T0, NULL);

	/* 60 customers in one batch. */
	json_t *batch = json_array();
	for (int i = 0; i < QUEUE_SIZE; i++) {
		char rid[32], cust[32];
		snprintf(rid, sizeof rid, "conc-%d", i);
		snprintf(cust, sizeof cust, "C-conc-%d", i);
		json_array_append_new(batch, json_pack("{s:s, s:{s:s, s:s}, s:s, s:i}", "response_id", rid,
		                                       "customer", "id", cust, "phone", PHONE, "touchpoint",
		                                       "claim", "score", i % 9));
	}
	char *text = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	json_t *reply = NULL;
	ck_assert_int_eq(call(&f, "POST", "/v1/surveys", f.ingest, text, &reply), 200);
	free(text);
	ck_assert_uint_eq(json_array_size(reply), QUEUE_SIZE);
	int64_t queued[QUEUE_SIZE];
	for (size_t i = 0; i < QUEUE_SIZE; i++) {
		json_t *item = json_array_get(reply, i);
		ck_assert_int_eq(iget(item, "status"), 201);
		queued[i] = callback_of(item);
		ck_assert_int_gt(queued[i], 0);
	}
	json_decref(reply);

	char *tokens[AGENTS];
	char names[AGENTS][24];
	for (int a = 0; a < AGENTS; a++) {
		snprintf(names[a], sizeof names[a], "agent-%d", a + 1);
		tokens[a] = npsctl_key(&f.p, "agent", names[a]);
		ck_assert_ptr_nonnull(tokens[a]);
	}
	/* npsd reloads its keys on a miss at most every 100 ms: make sure it knows the new ones. */
	for (int a = 0; a < AGENTS; a++) {
		long st = 0;
		for (int waited = 0; waited <= 2000; waited += 50) {
			if ((st = call(&f, "GET", "/v1/callbacks/stats", tokens[a], NULL, NULL)) == 200)
				break;
			sleep_ms(50);
		}
		ck_assert_msg(st == 200, "the new token of %s answers %ld", names[a], st);
	}
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, CLAIMERS);
	struct claimer c[CLAIMERS];
	pthread_t tids[CLAIMERS];
	for (int i = 0; i < CLAIMERS; i++) {
		c[i] = (struct claimer){
			.p = &f.p, .token = tokens[i % AGENTS], .agent = names[i % AGENTS], .start = &start
		};
		ck_assert_int_eq(pthread_create(&tids[i], NULL, claimer_main, &c[i]), 0);
	}
	for (int i = 0; i < CLAIMERS; i++)
		pthread_join(tids[i], NULL);
	pthread_barrier_destroy(&start);

	for (int i = 0; i < CLAIMERS; i++) {
		ck_assert_msg(c[i].curl_code == 0, "claimer %d: curl %d", i, c[i].curl_code);
		ck_assert_msg(c[i].status == 200, "claimer %d answered %ld", i, c[i].status);
		ck_assert_msg(c[i].id > 0, "claimer %d got no id", i);
		ck_assert_str_eq(c[i].claimed_by, c[i].agent);
		bool known = false;
		for (int q = 0; q < QUEUE_SIZE; q++)
			known = known || queued[q] == c[i].id;
		ck_assert_msg(known, "claimer %d got %lld, which is not one of the 60", i,
		              (long long)c[i].id);
		for (int j = 0; j < i; j++)
			ck_assert_msg(c[j].id != c[i].id,
			              "callback %lld handed out twice (claimers %d and %d)",
			              (long long)c[i].id, j, i);
	}

	/* Each is stored as claimed by the agent that got it. */
	for (int i = 0; i < CLAIMERS; i += 7) {
		json_t *cb = get_cb(&f, c[i].id);
		ck_assert_str_eq(sget(cb, "status"), "claimed");
		ck_assert_str_eq(sget(cb, "claimed_by"), c[i].agent);
		json_decref(cb);
	}

	/* 10 left, none of them handed out. */
	json_t *stats = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &stats), 200);
	ck_assert_int_eq(iget(stats, "queue_depth"), QUEUE_SIZE - CLAIMERS);
	ck_assert_int_eq(iget(stats, "claimed"), CLAIMERS);
	json_decref(stats);
	json_t *list = NULL;
	int64_t left[QUEUE_SIZE];
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued&limit=500", f.agent_a, NULL, &list),
	                 200);
	size_t nleft = list_ids(list, left, QUEUE_SIZE);
	json_decref(list);
	ck_assert_uint_eq(nleft, QUEUE_SIZE - CLAIMERS);
	for (size_t l = 0; l < nleft; l++)
		for (int i = 0; i < CLAIMERS; i++)
			ck_assert_msg(left[l] != c[i].id, "%lld is both queued and claimed",
			              (long long)left[l]);
	/* The rest can still be claimed, then the queue is empty. */
	for (size_t l = 0; l < nleft; l++)
		ck_assert_int_gt(claim(&f, f.agent_a, NULL, NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), 0);

	for (int a = 0; a < AGENTS; a++)
		free(tokens[a]);
	fx_stop(&f);
}
END_TEST

/* ---------- leases ---------- */

/* A key revoked (an agent who left) holds no call until its lease runs out: npsctl puts
 * its calls in progress back in the queue at once, and says so; others' calls stay theirs. */
START_TEST(a_revoked_key_hands_its_calls_back_at_once)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t mine = post_low(&f, "C-gone-1", 3, "claim");
	int64_t theirs = post_low(&f, "C-gone-2", 4, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), mine);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), theirs);
	json_t *me = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/me", f.agent_a, NULL, &me), 200);
	char id[32];
	snprintf(id, sizeof id, "%lld", (long long)iget(me, "key_id"));
	json_decref(me);

	const char *const argv[] = { npsctl_bin(), "--db", f.p.db_path, "key", "revoke", id, NULL };
	char *err = NULL;
	ck_assert_int_eq(run_program(argv, NULL, &err), 0);
	ck_assert_msg(err && strstr(err, "its 1 call in progress went back to the queue"), "npsctl said: %s", err);
	free(err);

	/* No clock moved: the lease has most of its time left. */
	json_t *cb = get_cb(&f, mine);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	assert_null(cb, "claimed_by");
	assert_null(cb, "lease_expires_at");
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	json_decref(cb);
	char st[16];
	ck_assert_str_eq(status_of(&f, theirs, st), "claimed");
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), mine);
	fx_stop(&f);
}
END_TEST

START_TEST(lease_expiry_hands_callback_to_another_agent)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t id = post_low(&f, "C-lease", 4, "claim");
	json_t *cb = NULL;
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, &cb), id);
	assert_time(cb, "lease_expires_at", T0 + LEASE);
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), 0);

	/* Still held a second before the lease ends. */
	fx_at(&f, T0 + LEASE - 1);
	sleep_ms(400);
	char st[16];
	ck_assert_str_eq(status_of(&f, id, st), "claimed");
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), 0);

	/* Past it: back in the queue, no attempt counted, and agent B gets it. */
	fx_at(&f, T0 + LEASE + 60);
	cb = wait_for(&f, id, "status", "\"queued\"");
	assert_null(cb, "claimed_by");
	assert_null(cb, "lease_expires_at");
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, &cb), id);
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-b");
	assert_time(cb, "lease_expires_at", T0 + LEASE + 60 + LEASE);
	json_decref(cb);

	/* A's lease is gone: heartbeat, complete and release are conflicts. */
	json_t *err = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_a, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	err = complete(&f, f.agent_a, id, "{\"outcome\":\"reached\"}", 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_a, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);

	/* B still holds it. */
	cb = get_cb(&f, id);
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-b");
	json_decref(cb);
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_b, NULL, NULL), 200);
	json_decref(complete(&f, f.agent_b, id, "{\"outcome\":\"reached\"}", 200));
	fx_stop(&f);
}
END_TEST

START_TEST(heartbeat_extends_and_release_requeues)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t id = post_low(&f, "C-hb", 3, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), id);

	/* A heartbeat five minutes in renews the lease from then. */
	fx_at(&f, T0 + 300);
	json_t *cb = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_a, NULL, &cb), 200);
	ck_assert_int_eq(iget(cb, "id"), id);
	assert_time(cb, "lease_expires_at", T0 + 300 + LEASE);
	json_decref(cb);
	cb = get_cb(&f, id);
	assert_time(cb, "lease_expires_at", T0 + 300 + LEASE);
	json_decref(cb);

	/* Past the first lease but inside the renewed one: still A's. */
	fx_at(&f, T0 + LEASE + 60);
	sleep_ms(500);
	cb = get_cb(&f, id);
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-a");
	json_decref(cb);

	/* Someone else's heartbeat or release: 409, nothing changes. */
	json_t *err = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_b, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_b, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);

	/* A body the call cannot take is refused, and nothing happens. */
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_a, "garbage", &err), 400);
	assert_error(err, "invalid_json", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_a, "{\"reason\":\"lunch\"}", &err),
	                 400);
	assert_error(err, "invalid_field", "reason");
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_a, "[]", &err), 400);
	json_decref(err);
	cb = get_cb(&f, id);
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	assert_time(cb, "lease_expires_at", T0 + 300 + LEASE);
	json_decref(cb);

	/* Release: queued again at once, no attempt counted, claimable by B. */
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_a, NULL, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	assert_null(cb, "claimed_by");
	assert_null(cb, "lease_expires_at");
	json_decref(cb);
	/* A released callback is not A's any more. */
	ck_assert_int_eq(cb_call(&f, "POST", id, "heartbeat", f.agent_a, NULL, &err), 409);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_a, NULL, &err), 409);
	json_decref(err);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, &cb), id);
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

/* Release puts a callback back where the queue order says, which is usually first: the
 * agent who let it go gets the next one instead, for a lease's length, unless nothing else
 * is due. Anyone else gets it at once. */
START_TEST(a_released_callback_goes_to_someone_else)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t x = post_low(&f, "C-rel-x", 2, "claim");
	int64_t y = post_low(&f, "C-rel-y", 5, "claim");
	int64_t z = post_low(&f, "C-rel-z", 7, "claim");
	json_t *cb = NULL;

	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), x);
	ck_assert_int_eq(cb_call(&f, "POST", x, "release", f.agent_a, NULL, NULL), 200);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), y);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), x);

	/* B lets it go too: B takes z, and then x again, the only one due left. */
	ck_assert_int_eq(cb_call(&f, "POST", x, "release", f.agent_b, NULL, NULL), 200);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), z);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, &cb), x);
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-b");
	json_decref(cb);
	/* A filter that leaves only the released one finds it as well. */
	ck_assert_int_eq(cb_call(&f, "POST", x, "release", f.agent_b, NULL, NULL), 200);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"claim\"}", NULL), x);

	/* For a lease's length only: a lease after the release, x comes first for B again. */
	json_decref(complete(&f, f.agent_a, y, "{\"outcome\":\"reached\"}", 200));
	json_decref(complete(&f, f.agent_b, z, "{\"outcome\":\"reached\"}", 200));
	ck_assert_int_eq(cb_call(&f, "POST", x, "release", f.agent_b, NULL, NULL), 200);
	int64_t w = post_low(&f, "C-rel-w", 8, "claim");
	fx_at(&f, T0 + LEASE);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), w);
	ck_assert_int_eq(cb_call(&f, "POST", w, "release", f.agent_b, NULL, NULL), 200);
	fx_at(&f, T0 + LEASE + 1);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), x);
	/* Four releases, and no attempt counted. */
	cb = get_cb(&f, x);
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

/* ---------- 409 and 404 ---------- */

START_TEST(conflicts_and_not_found)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t held = post_low(&f, "C-held", 2, "claim");
	int64_t open = post_low(&f, "C-open", 6, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), held);

	/* Someone else's callback. */
	json_t *err = complete(&f, f.agent_b, held, "{\"outcome\":\"reached\",\"notes\":\"not mine\"}", 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	json_t *cb = get_cb(&f, held);
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	ck_assert_str_eq(sget(cb, "claimed_by"), "agent-a");
	assert_null(cb, "outcome");
	json_decref(cb);

	/* A queued one nobody claimed. */
	err = complete(&f, f.agent_a, open, "{\"outcome\":\"reached\"}", 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", open, "heartbeat", f.agent_a, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", open, "release", f.agent_a, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	char st[16];
	ck_assert_str_eq(status_of(&f, open, st), "queued");

	/* A closed one. */
	json_decref(complete(&f, f.agent_a, held, "{\"outcome\":\"reached\"}", 200));
	err = complete(&f, f.agent_a, held, "{\"outcome\":\"reached\"}", 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);

	/* No such callback. */
	static const char *const actions[] = { "heartbeat", "release", "cancel", NULL };
	err = complete(&f, f.agent_a, 999999, "{\"outcome\":\"reached\"}", 404);
	assert_error(err, "not_found", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "GET", 999999, NULL, f.agent_a, NULL, &err), 404);
	assert_error(err, "not_found", NULL);
	json_decref(err);
	for (size_t i = 0; actions[i]; i++) {
		const char *token = strcmp(actions[i], "cancel") == 0 ? f.manager : f.agent_a;
		ck_assert_int_eq(cb_call(&f, "POST", 999999, actions[i], token, NULL, &err), 404);
		assert_error(err, "not_found", NULL);
		json_decref(err);
	}
	fx_stop(&f);
}
END_TEST

/* ---------- outcomes ---------- */

START_TEST(no_answer_retries_then_unreachable)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	fx_subscribe(&f);
	int64_t id = post_low(&f, "C-na", 5, "claim");
	json_t *cb = get_cb(&f, id);
	ck_assert_int_eq(iget(cb, "max_attempts"), 3);
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	json_decref(cb);

	/* First attempt: no answer → back in 30 minutes. */
	fx_at(&f, T0 + 60);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), id);
	cb = complete(&f, f.agent_a, id,
	              "{\"outcome\":\"no_answer\",\"notes\":\"rang twice\",\"improvements\":[{\"area\":"
	              "\"process\",\"text\":\"idea from the first try\"}]}",
	              200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_int_eq(iget(cb, "attempts"), 1);
	ck_assert_str_eq(sget(cb, "notes"), "rang twice");
	assert_time(cb, "due_at", T0 + 60 + RETRY1);
	assert_null(cb, "claimed_by");
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	fx_at(&f, T0 + 60 + RETRY1 - 1);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), 0);

	/* Second: busy → back after the second step, 2 hours. */
	int64_t t2 = T0 + 60 + RETRY1;
	fx_at(&f, t2);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), id);
	/* A release in between counts no attempt and keeps it due. */
	ck_assert_int_eq(cb_call(&f, "POST", id, "release", f.agent_b, NULL, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_int_eq(iget(cb, "attempts"), 1);
	assert_time(cb, "due_at", t2);
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), id);
	cb = complete(&f, f.agent_b, id, "{\"outcome\":\"busy\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_int_eq(iget(cb, "attempts"), 2);
	/* The notes are the latest outcome's, as the outcome is: not the first call's any more
	 * (those stay in the history). */
	assert_null(cb, "notes");
	assert_time(cb, "due_at", t2 + RETRY2);
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), 0);

	/* Third, the last: voicemail → unreachable, closed, off the queue. */
	int64_t t3 = t2 + RETRY2;
	fx_at(&f, t3);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), id);
	cb = complete(&f, f.agent_a, id,
	              "{\"outcome\":\"voicemail\",\"notes\":\"left a message\",\"improvements\":[{\"area\":"
	              "\"service\",\"text\":\"idea from the last try\"}]}",
	              200);
	ck_assert_str_eq(sget(cb, "status"), "unreachable");
	ck_assert_int_eq(iget(cb, "attempts"), 3);
	ck_assert_str_eq(sget(cb, "outcome"), "voicemail");
	assert_time(cb, "closed_at", t3);
	json_decref(cb);
	fx_at(&f, t3 + 86400);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	json_t *err = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", id, "cancel", f.manager, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(count_events(&f, "callback.unreachable", id), 1);
	ck_assert_int_eq(count_events(&f, "callback.created", id), 1);
	/* The event tells what every call learned, as the callback shows it: the first try's
	 * improvement too, not the last one's alone. */
	json_t *told = event_payload(&f, "callback.unreachable", id);
	ck_assert_ptr_nonnull(told);
	json_t *ideas = json_object_get(told, "improvements");
	ck_assert_msg(json_array_size(ideas) == 2, "callback.unreachable improvements: %zu", json_array_size(ideas));
	ck_assert_str_eq(sget(json_array_get(ideas, 0), "text"), "idea from the first try");
	ck_assert_str_eq(sget(json_array_get(ideas, 1), "text"), "idea from the last try");
	json_decref(told);

	/* An unreachable customer who answers low again is owed a new call. */
	int64_t again = post_low(&f, "C-na", 4, "claim");
	ck_assert_int_ne(again, id);
	fx_stop(&f);
}
END_TEST

START_TEST(call_later_wrong_number_do_not_call_reached)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	fx_subscribe(&f);
	char when[32], body[160];

	/* call_later: retry_at is required, then the callback waits for it, no attempt counted. */
	int64_t later = post_low(&f, "C-later", 5, "t-later");
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-later\"}", NULL), later);
	json_t *err = complete(&f, f.agent_a, later, "{\"outcome\":\"call_later\"}", 400);
	assert_error(err, "missing_field", "retry_at");
	json_decref(err);
	snprintf(body, sizeof body, "{\"outcome\":\"call_later\",\"retry_at\":\"%s\"}",
	         time_format_rfc3339(T0 + 31 * 86400, when));
	err = complete(&f, f.agent_a, later, body, 400);
	assert_error(err, "invalid_field", "retry_at");
	json_decref(err);
	snprintf(body, sizeof body, "{\"outcome\":\"call_later\",\"retry_at\":\"%s\"}", time_format_rfc3339(T0 - 60, when));
	err = complete(&f, f.agent_a, later, body, 400);
	assert_error(err, "invalid_field", "retry_at");
	json_decref(err);
	snprintf(body, sizeof body, "{\"outcome\":\"reached\",\"retry_at\":\"%s\"}", time_format_rfc3339(T0 + 3600, when));
	err = complete(&f, f.agent_a, later, body, 400);
	assert_error(err, "invalid_field", "retry_at");
	json_decref(err);
	const int64_t retry_at = T0 + 3 * 86400 + 5400;
	snprintf(body, sizeof body,
	         "{\"outcome\":\"call_later\",\"retry_at\":\"%s\",\"notes\":\"after the holiday\"}",
	         time_format_rfc3339(retry_at, when));
	json_t *cb = complete(&f, f.agent_a, later, body, 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_int_eq(iget(cb, "attempts"), 0);
	assert_time(cb, "due_at", retry_at);
	json_decref(cb);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-later\"}", NULL), 0);

	/* wrong_number: unreachable at once. */
	int64_t wrong = post_low(&f, "C-wrong", 5, "t-wrong");
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-wrong\"}", NULL), wrong);
	cb = complete(&f, f.agent_a, wrong, "{\"outcome\":\"wrong_number\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "unreachable");
	ck_assert_str_eq(sget(cb, "outcome"), "wrong_number");
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.unreachable", wrong), 1);

	/* do_not_call: done, and the customer is never queued again (still stored). */
	int64_t dnc = post_low(&f, "C-dnc", 6, "t-dnc");
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-dnc\"}", NULL), dnc);
	cb = complete(&f, f.agent_b, dnc,
	              "{\"outcome\":\"do_not_call\",\"notes\":\"asked not to be called\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "done");
	ck_assert_str_eq(sget(cb, "outcome"), "do_not_call");
	json_decref(cb);
	cb = get_cb(&f, dnc);
	ck_assert(json_is_true(json_object_get(json_object_get(cb, "customer"), "do_not_call")));
	json_decref(cb);
	fx_at(&f, T0 + 86400);
	json_t *reply = post_answer(&f, "C-dnc", 1, "t-dnc", PHONE, true);
	ck_assert_int_eq(callback_of(reply), 0);
	ck_assert_str_eq(sget(reply, "category"), "detractor");
	json_decref(reply);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-dnc\"}", NULL), 0);

	/* reached with improvements: done, and everything recorded is shown. */
	int64_t ok = post_low(&f, "C-reached", 3, "t-reached");
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-reached\"}", NULL), ok);
	fx_at(&f, T0 + 86400 + 600);
	cb = complete(&f, f.agent_b, ok,
	              "{\"outcome\":\"reached\",\"notes\":\"Payout took 3 weeks; apologised.\","
	              "\"improvements\":[{\"area\":\"process\",\"text\":\"Pay small claims within a week\"},"
	              "{\"area\":\"communication\",\"text\":\"Tell the customer the status\"}]}",
	              200);
	json_decref(cb);
	cb = get_cb(&f, ok);
	ck_assert_str_eq(sget(cb, "status"), "done");
	ck_assert_str_eq(sget(cb, "outcome"), "reached");
	ck_assert_str_eq(sget(cb, "notes"), "Payout took 3 weeks; apologised.");
	assert_time(cb, "closed_at", T0 + 86400 + 600);
	json_t *imp = json_object_get(cb, "improvements");
	ck_assert_uint_eq(json_array_size(imp), 2);
	ck_assert_str_eq(sget(json_array_get(imp, 0), "area"), "process");
	ck_assert_str_eq(sget(json_array_get(imp, 0), "text"), "Pay small claims within a week");
	ck_assert_str_eq(sget(json_array_get(imp, 1), "area"), "communication");
	ck_assert_str_eq(sget(json_array_get(imp, 1), "text"), "Tell the customer the status");
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.completed", ok), 1);
	/* The event carries the outcome and what the agent learnt. */
	json_t *ev = event_payload(&f, "callback.completed", ok);
	ck_assert_msg(ev != NULL, "no callback.completed payload");
	ck_assert_str_eq(sget(json_object_get(ev, "callback"), "outcome"), "reached");
	ck_assert_str_eq(sget(json_object_get(ev, "callback"), "status"), "done");
	ck_assert_uint_eq(json_array_size(json_object_get(ev, "improvements")), 2);
	ck_assert_str_eq(sget(json_array_get(json_object_get(ev, "improvements"), 0), "area"), "process");
	json_decref(ev);

	/* declined also ends it as done. */
	int64_t dec = post_low(&f, "C-declined", 7, "t-declined");
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-declined\"}", NULL), dec);
	cb = complete(&f, f.agent_b, dec, "{\"outcome\":\"declined\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "done");
	json_decref(cb);

	/* The call_later one comes back at the chosen time. */
	fx_at(&f, retry_at - 1);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-later\"}", NULL), 0);
	fx_at(&f, retry_at);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-later\"}", NULL), later);
	fx_stop(&f);
}
END_TEST

/* ---------- who is owed a call ---------- */

/* A wrong number is a call made: it counts as an attempt (the callback, its event and
 * the console say how many calls were made), and ends the callback at once, on the first
 * call and below max_attempts alike. */
START_TEST(wrong_number_counts_the_call_and_ends_it)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	fx_subscribe(&f);

	/* On the first call: unreachable with 1 attempt, not 0. */
	int64_t first = post_low(&f, "C-wrong-1", 5, "t-wrong-1");
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-wrong-1\"}", NULL), first);
	json_t *cb = complete(&f, f.agent_a, first, "{\"outcome\":\"wrong_number\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "unreachable");
	ck_assert_int_eq(iget(cb, "attempts"), 1);
	json_decref(cb);
	cb = get_cb(&f, first);
	ck_assert_int_eq(iget(cb, "attempts"), 1);
	json_decref(cb);
	json_t *told = event_payload(&f, "callback.unreachable", first);
	ck_assert_ptr_nonnull(told);
	ck_assert_int_eq(iget(json_object_get(told, "callback"), "attempts"), 1);
	json_decref(told);

	/* After an unanswered try: the second call counts too, and still ends it though
	 * max_attempts (3) is not reached. */
	int64_t second = post_low(&f, "C-wrong-2", 5, "t-wrong-2");
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-wrong-2\"}", NULL), second);
	json_decref(complete(&f, f.agent_a, second, "{\"outcome\":\"no_answer\"}", 200));
	fx_at(&f, T0 + RETRY1);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-wrong-2\"}", NULL), second);
	cb = complete(&f, f.agent_b, second, "{\"outcome\":\"wrong_number\"}", 200);
	ck_assert_str_eq(sget(cb, "status"), "unreachable");
	ck_assert_int_eq(iget(cb, "attempts"), 2);
	assert_time(cb, "closed_at", T0 + RETRY1);
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.unreachable", second), 1);
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-wrong-2\"}", NULL), 0);
	fx_stop(&f);
}
END_TEST

START_TEST(one_open_callback_per_customer)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	fx_subscribe(&f);
	int64_t id = post_low(&f, "C-dup", 7, "claim");
	json_t *cb = get_cb(&f, id);
	ck_assert_int_eq(iget(cb, "priority"), 7);
	json_decref(cb);

	fx_at(&f, T0 + 60);
	ck_assert_int_eq(post_low(&f, "C-dup", 3, "purchase"), id);
	cb = get_cb(&f, id);
	ck_assert_int_eq(iget(cb, "priority"), 3);
	/* The touchpoint follows the lowest score: the purchase team's claims take it now. */
	ck_assert_str_eq(sget(cb, "touchpoint"), "purchase");
	json_t *surveys = json_object_get(cb, "surveys");
	ck_assert_uint_eq(json_array_size(surveys), 2);
	ck_assert_int_eq(iget(json_array_get(surveys, 0), "score"), 7);
	ck_assert_int_eq(iget(json_array_get(surveys, 1), "score"), 3);
	json_decref(cb);

	/* A higher score joins but does not lower the priority. */
	fx_at(&f, T0 + 120);
	ck_assert_int_eq(post_low(&f, "C-dup", 6, "claim"), id);
	cb = get_cb(&f, id);
	ck_assert_int_eq(iget(cb, "priority"), 3);
	ck_assert_str_eq(sget(cb, "touchpoint"), "purchase");
	ck_assert_uint_eq(json_array_size(json_object_get(cb, "surveys")), 3);
	json_decref(cb);

	/* Joining a claimed callback too; still one in the whole queue. */
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"claim\"}", NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"purchase\"}", NULL), id);
	ck_assert_int_eq(post_low(&f, "C-dup", 1, "claim"), id);
	cb = get_cb(&f, id);
	ck_assert_int_eq(iget(cb, "priority"), 1);
	ck_assert_str_eq(sget(cb, "touchpoint"), "claim");
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	ck_assert_uint_eq(json_array_size(json_object_get(cb, "surveys")), 4);
	json_decref(cb);
	json_t *list = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks", f.manager, NULL, &list), 200);
	ck_assert_uint_eq(json_array_size(json_object_get(list, "callbacks")), 1);
	json_decref(list);
	ck_assert_int_eq(count_events(&f, "callback.created", id), 1);
	fx_stop(&f);
}
END_TEST

START_TEST(no_callback_without_consent_phone_or_low_score)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_t *reply = post_answer(&f, "C-noconsent", 2, "claim", PHONE, false);
	ck_assert_int_eq(callback_of(reply), 0);
	json_decref(reply);
	reply = post_answer(&f, "C-nophone", 2, "claim", NULL, true);
	ck_assert_int_eq(callback_of(reply), 0);
	json_decref(reply);
	reply = post_answer(&f, "C-happy", 9, "claim", PHONE, true);
	ck_assert_int_eq(callback_of(reply), 0);
	ck_assert_str_eq(sget(reply, "category"), "promoter");
	json_decref(reply);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	/* 8 is the default max_score: a call. */
	reply = post_answer(&f, "C-passive", 8, "claim", PHONE, true);
	ck_assert_int_gt(callback_of(reply), 0);
	ck_assert_str_eq(sget(reply, "category"), "passive");
	json_decref(reply);
	json_t *stats = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.agent_a, NULL, &stats), 200);
	ck_assert_int_eq(iget(stats, "queue_depth"), 1);
	json_decref(stats);
	fx_stop(&f);
}
END_TEST

/* Within one second (fast hands, or a clock that only counts seconds) the history still
 * reads newest first: the call after the answers it was about, later answers first. */
START_TEST(history_within_one_second_keeps_its_order)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_decref(post_answer(&f, "C-sec", 9, "purchase", PHONE, true));
	int64_t first = post_low(&f, "C-sec", 5, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), first);
	json_decref(complete(&f, f.agent_a, first, "{\"outcome\":\"declined\"}", 200));
	fx_at(&f, T0 + 86400);
	int64_t second = post_low(&f, "C-sec", 3, "claim");
	json_t *cb = get_cb(&f, second);
	json_t *history = json_object_get(cb, "history");
	ck_assert_uint_eq(json_array_size(history), 3);
	json_t *h0 = json_array_get(history, 0), *h1 = json_array_get(history, 1);
	json_t *h2 = json_array_get(history, 2);
	ck_assert_str_eq(sget(h0, "type"), "call");
	ck_assert_str_eq(sget(h0, "outcome"), "declined");
	ck_assert_str_eq(sget(h1, "type"), "survey");
	ck_assert_int_eq(iget(h1, "score"), 5);
	ck_assert_str_eq(sget(h2, "type"), "survey");
	ck_assert_int_eq(iget(h2, "score"), 9);
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

/* An answer left out of the NPS says so, with its reason, among the callback's answers and
 * in the history: the console shows it there and offers managers to count it again. */
START_TEST(excluded_answers_are_marked_in_a_callback)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_t *reply = post_answer(&f, "C-excl", 9, "purchase", PHONE, true);
	int64_t happy = iget(reply, "id");
	json_decref(reply);
	int64_t cb_id = post_low(&f, "C-excl", 2, "claim");
	char path[64];
	snprintf(path, sizeof path, "/v1/surveys/%lld", (long long)happy);
	ck_assert_int_eq(call(&f, "PATCH", path, f.manager,
	                      "{\"excluded\":true,\"reason\":\"test answer\"}", NULL),
	                 200);
	json_t *cb = get_cb(&f, cb_id);
	json_t *mine = json_array_get(json_object_get(cb, "surveys"), 0);
	ck_assert(json_is_false(json_object_get(mine, "excluded")));
	ck_assert(json_is_null(json_object_get(mine, "exclude_reason")));
	json_t *earlier = json_array_get(json_object_get(cb, "history"), 0);
	ck_assert_int_eq(iget(earlier, "id"), happy);
	ck_assert(json_is_true(json_object_get(earlier, "excluded")));
	ck_assert_str_eq(sget(earlier, "exclude_reason"), "test answer");
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

START_TEST(history_of_a_returning_customer)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_t *reply = post_answer(&f, "C-ret", 9, "purchase", PHONE, true);
	ck_assert_int_eq(callback_of(reply), 0);
	json_decref(reply);
	fx_at(&f, T0 + 60);
	int64_t first = post_low(&f, "C-ret", 5, "claim");
	fx_at(&f, T0 + 120);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), first);
	fx_at(&f, T0 + 150);
	json_decref(complete(&f, f.agent_a, first, "{\"outcome\":\"no_answer\"}", 200));
	fx_at(&f, T0 + 150 + RETRY1);
	ck_assert_int_eq(claim(&f, f.agent_b, NULL, NULL), first);
	fx_at(&f, T0 + 150 + RETRY1 + 60);
	json_decref(complete(&f, f.agent_b, first,
	                     "{\"outcome\":\"reached\",\"notes\":\"Unhappy about the wait\"}", 200));

	fx_at(&f, T0 + 86400);
	int64_t second = post_low(&f, "C-ret", 4, "claim");
	ck_assert_int_ne(second, first);
	json_t *cb = get_cb(&f, second);
	json_t *customer = json_object_get(cb, "customer");
	ck_assert_str_eq(sget(customer, "id"), "C-ret");
	ck_assert_str_eq(sget(customer, "phone"), PHONE);
	ck_assert_str_eq(sget(customer, "name"), "Test Customer");
	json_t *surveys = json_object_get(cb, "surveys");
	ck_assert_uint_eq(json_array_size(surveys), 1);
	ck_assert_int_eq(iget(json_array_get(surveys, 0), "score"), 4);

	/* Newest first: the reached call, the no-answer, the answer behind it, the happy answer. */
	json_t *history = json_object_get(cb, "history");
	ck_assert_msg(json_is_array(history), "no history array");
	ck_assert_uint_eq(json_array_size(history), 4);
	json_t *h0 = json_array_get(history, 0), *h1 = json_array_get(history, 1);
	json_t *h2 = json_array_get(history, 2), *h3 = json_array_get(history, 3);
	ck_assert_str_eq(sget(h0, "type"), "call");
	ck_assert_str_eq(sget(h0, "outcome"), "reached");
	ck_assert_str_eq(sget(h0, "notes"), "Unhappy about the wait");
	ck_assert_str_eq(sget(h0, "agent"), "agent-b");
	ck_assert_int_eq(iget(h0, "callback_id"), first);
	assert_time(h0, "at", T0 + 150 + RETRY1 + 60);
	ck_assert_str_eq(sget(h1, "type"), "call");
	ck_assert_str_eq(sget(h1, "outcome"), "no_answer");
	assert_time(h1, "at", T0 + 150);
	ck_assert_str_eq(sget(h2, "type"), "survey");
	ck_assert_int_eq(iget(h2, "score"), 5);
	assert_time(h2, "at", T0 + 60);
	ck_assert_str_eq(sget(h3, "type"), "survey");
	ck_assert_int_eq(iget(h3, "score"), 9);
	assert_time(h3, "at", T0);
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

/* Posts a raw answer body and returns the callback id of its 201 (0 when none). */
static int64_t post_raw(struct fx *f, const char *body)
{
	json_t *reply = NULL;
	long status = call(f, "POST", "/v1/surveys", f->ingest, body, &reply);
	ck_assert_msg(status == 201, "POST /v1/surveys answered %ld for %s", status, body);
	int64_t id = callback_of(reply);
	json_decref(reply);
	return id;
}

START_TEST(contact_fields_an_answer_gives_replace_the_stored_ones)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	/* No phone yet: no call, but the customer and their name are kept. */
	ck_assert_int_eq(post_raw(&f, "{\"response_id\":\"cf-1\",\"customer\":{\"id\":\"C-cf\",\"name\":\"A. "
	                              "Eerst\",\"language\":\"nl\"},\"touchpoint\":\"claim\",\"score\":3}"),
	                 0);
	/* The phone comes with a later answer: now a call is owed; the name stays. */
	int64_t id = post_raw(&f, "{\"response_id\":\"cf-2\",\"customer\":{\"id\":\"C-cf\",\"phone\":\"" PHONE
	                          "\"},\"touchpoint\":\"claim\",\"score\":4}");
	ck_assert_int_gt(id, 0);
	json_t *cb = get_cb(&f, id);
	json_t *customer = json_object_get(cb, "customer");
	ck_assert_str_eq(sget(customer, "name"), "A. Eerst");
	ck_assert_str_eq(sget(customer, "phone"), PHONE);
	ck_assert_str_eq(sget(customer, "language"), "nl");
	json_decref(cb);
	/* A new name and language replace the old ones; the answer joins the open call. */
	ck_assert_int_eq(post_raw(&f, "{\"response_id\":\"cf-3\",\"customer\":{\"id\":\"C-cf\",\"name\":\"A. "
	                              "Later\",\"language\":\"en\"},\"touchpoint\":\"claim\",\"score\":2}"),
	                 id);
	cb = get_cb(&f, id);
	customer = json_object_get(cb, "customer");
	ck_assert_str_eq(sget(customer, "name"), "A. Later");
	ck_assert_str_eq(sget(customer, "language"), "en");
	ck_assert_str_eq(sget(customer, "phone"), PHONE);
	ck_assert_int_eq(iget(cb, "priority"), 2);
	ck_assert_uint_eq(json_array_size(json_object_get(cb, "surveys")), 2);
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

START_TEST(history_keeps_the_newest_20)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	for (int i = 0; i < 25; i++) {
		fx_at(&f, T0 + 60 * i);
		json_decref(post_answer(&f, "C-many", 9 + i % 2, "purchase", PHONE, true));
	}
	fx_at(&f, T0 + 3600);
	int64_t id = post_low(&f, "C-many", 2, "claim");
	json_t *cb = get_cb(&f, id);
	json_t *history = json_object_get(cb, "history");
	ck_assert_uint_eq(json_array_size(history), 20);
	/* The newest 20 answers: minutes 24 down to 5. */
	for (size_t i = 0; i < 20; i++) {
		json_t *h = json_array_get(history, i);
		ck_assert_str_eq(sget(h, "type"), "survey");
		assert_time(h, "at", T0 + 60 * (int64_t)(24 - i));
	}
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

START_TEST(cooldown_after_a_reached_call)
{
	struct fx f;
	fx_start(&f, T0, "hours = always\ncooldown = 30d\n");
	int64_t id = post_low(&f, "C-cool", 4, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), id);
	json_decref(complete(&f, f.agent_a, id, "{\"outcome\":\"reached\"}", 200));
	/* Reached: no new call within 30 days, the answer still stored. */
	fx_at(&f, T0 + 10 * 86400);
	json_t *reply = post_answer(&f, "C-cool", 2, "claim", PHONE, true);
	ck_assert_int_eq(callback_of(reply), 0);
	json_decref(reply);
	/* Not reached (wrong number) does not start the cooldown. */
	int64_t other = post_low(&f, "C-cool-2", 4, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), other);
	json_decref(complete(&f, f.agent_a, other, "{\"outcome\":\"wrong_number\"}", 200));
	ck_assert_int_gt(post_low(&f, "C-cool-2", 3, "claim"), other);
	/* After 30 days a call is owed again. */
	fx_at(&f, T0 + 30 * 86400 + 1);
	int64_t again = post_low(&f, "C-cool", 5, "claim");
	ck_assert_int_gt(again, id);
	fx_stop(&f);
}
END_TEST

/* ---------- opening hours ---------- */

/* Europe/Amsterdam is CET (UTC+1) in November. */
#define FRI_1945_CET INT64_C(1795200300) /* 2026-11-20T18:45:00Z, Friday 19:45 local */
#define FRI_2000_CET INT64_C(1795201200) /* 2026-11-20T19:00:00Z, Friday 20:00 local */
#define SAT_1200_CET INT64_C(1795258800) /* 2026-11-21T11:00:00Z, Saturday noon local */
#define MON_0800_CET INT64_C(1795417200) /* 2026-11-23T07:00:00Z, Monday 08:00 local */

START_TEST(business_hours_in_winter)
{
	struct fx f;
	fx_start(&f, FRI_1945_CET, "hours = mon-fri 08:00-20:00\ntimezone = Europe/Amsterdam\n");

	/* Open on Friday evening: due at once. */
	json_t *reply = post_answer(&f, "C-fri", 6, "claim", PHONE, true);
	int64_t fri = callback_of(reply);
	ck_assert_int_gt(fri, 0);
	assert_time(json_object_get(reply, "callback"), "due_at", FRI_1945_CET);
	json_decref(reply);
	/* A no-answer at 19:45 would come back at 20:15: closed, so Monday 08:00. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), fri);
	json_t *cb = complete(&f, f.agent_a, fri, "{\"outcome\":\"no_answer\"}", 200);
	ck_assert_str_eq(sget(cb, "due_at"), "2026-11-23T07:00:00Z");
	json_decref(cb);

	/* 19:59:59 is still open, 20:00 is not. */
	fx_at(&f, FRI_2000_CET - 1);
	reply = post_answer(&f, "C-fri-late", 7, "claim", PHONE, true);
	assert_time(json_object_get(reply, "callback"), "due_at", FRI_2000_CET - 1);
	json_decref(reply);
	fx_at(&f, FRI_2000_CET);
	reply = post_answer(&f, "C-fri-closed", 7, "claim", PHONE, true);
	ck_assert_str_eq(sget(json_object_get(reply, "callback"), "due_at"), "2026-11-23T07:00:00Z");
	json_decref(reply);

	/* Saturday noon: due next Monday 08:00 local, SLA an hour after. */
	fx_at(&f, SAT_1200_CET);
	reply = post_answer(&f, "C-sat", 3, "claim", PHONE, true);
	int64_t sat = callback_of(reply);
	ck_assert_int_gt(sat, 0);
	ck_assert_str_eq(sget(json_object_get(reply, "callback"), "due_at"), "2026-11-23T07:00:00Z");
	json_decref(reply);
	cb = get_cb(&f, sat);
	ck_assert_str_eq(sget(cb, "due_at"), "2026-11-23T07:00:00Z");
	ck_assert_str_eq(sget(cb, "sla_deadline"), "2026-11-23T08:00:00Z");
	json_decref(cb);

	/* Take the one due on Friday 19:59:59 out of the way. */
	int64_t late = claim(&f, f.agent_b, NULL, NULL);
	ck_assert_int_gt(late, 0);
	json_decref(complete(&f, f.agent_b, late, "{\"outcome\":\"reached\"}", 200));
	/* Nothing else is due until Monday 08:00 local. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	fx_at(&f, MON_0800_CET - 1);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	/* Its SLA runs from the opening, so the weekend does not breach it. */
	sleep_ms(300);
	cb = get_cb(&f, sat);
	ck_assert(json_is_false(json_object_get(cb, "sla_breached")));
	json_decref(cb);
	fx_at(&f, MON_0800_CET);
	/* All three are due now; the Saturday one has the lowest score. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), sat);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), fri);
	ck_assert_int_gt(claim(&f, f.agent_a, NULL, NULL), 0);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);
	fx_stop(&f);
}
END_TEST

/* Europe/Amsterdam is CEST (UTC+2) in June. */
#define SAT_1200_CEST INT64_C(1781344800) /* 2026-06-13T10:00:00Z, Saturday noon local */
#define SAT_1300_CEST INT64_C(1781348400) /* 2026-06-13T11:00:00Z, Saturday 13:00 local */

START_TEST(business_hours_in_summer_with_a_holiday)
{
	struct fx f;
	fx_start(&f, SAT_1200_CEST,
	         "hours = mon-fri 08:00-20:00, sat 09:00-13:00\ntimezone = Europe/Amsterdam\n"
	         "holidays = 2026-06-15\nsla = 2h\n");
	/* Saturday morning is open. */
	json_t *reply = post_answer(&f, "C-sat-open", 5, "claim", PHONE, true);
	ck_assert_str_eq(sget(json_object_get(reply, "callback"), "due_at"), "2026-06-13T10:00:00Z");
	json_decref(reply);
	/* At 13:00 it closes; Sunday closed, Monday a holiday: Tuesday 08:00 CEST. */
	fx_at(&f, SAT_1300_CEST);
	reply = post_answer(&f, "C-sat-closed", 5, "claim", PHONE, true);
	int64_t id = callback_of(reply);
	ck_assert_str_eq(sget(json_object_get(reply, "callback"), "due_at"), "2026-06-16T06:00:00Z");
	json_decref(reply);
	json_t *cb = get_cb(&f, id);
	ck_assert_str_eq(sget(cb, "sla_deadline"), "2026-06-16T08:00:00Z");
	json_decref(cb);
	fx_stop(&f);
}
END_TEST

/* ---------- SLA ---------- */

START_TEST(sla_breach_is_marked_and_announced_once)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	fx_subscribe(&f);
	int64_t late = post_low(&f, "C-sla-late", 5, "t-late");
	int64_t called = post_low(&f, "C-sla-called", 6, "t-called");
	json_t *cb = get_cb(&f, late);
	assert_time(cb, "due_at", T0);
	assert_time(cb, "sla_deadline", T0 + SLA);
	ck_assert(json_is_false(json_object_get(cb, "sla_breached")));
	json_decref(cb);

	/* The other one is phoned in time (no answer counts as a first call). */
	fx_at(&f, T0 + 600);
	ck_assert_int_eq(claim(&f, f.agent_a, "{\"touchpoint\":\"t-called\"}", NULL), called);
	json_decref(complete(&f, f.agent_a, called, "{\"outcome\":\"no_answer\"}", 200));

	fx_at(&f, T0 + SLA - 1);
	sleep_ms(400);
	cb = get_cb(&f, late);
	ck_assert(json_is_false(json_object_get(cb, "sla_breached")));
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.sla_breached", late), 0);
	/* A call in the deadline's own second is in time ("by sla_deadline"), so that second
	 * does not breach it yet: stats count such a call as met. */
	fx_at(&f, T0 + SLA);
	sleep_ms(400);
	cb = get_cb(&f, late);
	ck_assert(json_is_false(json_object_get(cb, "sla_breached")));
	json_decref(cb);

	fx_at(&f, T0 + SLA + 1);
	cb = wait_for(&f, late, "sla_breached", "true");
	ck_assert_str_eq(sget(cb, "status"), "queued");
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.sla_breached", late), 1);

	/* Later ticks do not fire it again; the one called in time never breaches. */
	fx_at(&f, T0 + 2 * SLA);
	sleep_ms(500);
	fx_at(&f, T0 + 3 * SLA);
	sleep_ms(500);
	ck_assert_int_eq(count_events(&f, "callback.sla_breached", late), 1);
	ck_assert_int_eq(count_events(&f, "callback.sla_breached", called), 0);
	cb = get_cb(&f, called);
	ck_assert(json_is_false(json_object_get(cb, "sla_breached")));
	json_decref(cb);
	/* Still breached once it is claimed and closed. */
	ck_assert_int_eq(claim(&f, f.agent_b, "{\"touchpoint\":\"t-late\"}", NULL), late);
	json_decref(complete(&f, f.agent_b, late, "{\"outcome\":\"reached\"}", 200));
	cb = get_cb(&f, late);
	ck_assert(json_is_true(json_object_get(cb, "sla_breached")));
	json_decref(cb);
	ck_assert_int_eq(count_events(&f, "callback.sla_breached", late), 1);
	fx_stop(&f);
}
END_TEST

/* ---------- roles ---------- */

START_TEST(roles)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t a = post_low(&f, "C-role-a", 4, "claim");
	int64_t b = post_low(&f, "C-role-b", 5, "claim");
	json_t *err = NULL;

	/* No token, unknown token. */
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks", NULL, NULL, &err), 401);
	assert_error(err, "unauthorized", NULL);
	json_decref(err);
	ck_assert_int_eq(call(&f, "POST", "/v1/callbacks/claim", "not-a-token", NULL, &err), 401);
	assert_error(err, "unauthorized", NULL);
	json_decref(err);

	/* ingest may not touch the queue. */
	static const char *const ingest_get[] = { "/v1/callbacks", "/v1/callbacks/stats", "/v1/callbacks/1",
		                                  NULL };
	for (size_t i = 0; ingest_get[i]; i++) {
		ck_assert_int_eq(call(&f, "GET", ingest_get[i], f.ingest, NULL, &err), 403);
		assert_error(err, "forbidden", NULL);
		json_decref(err);
	}
	ck_assert_int_eq(call(&f, "POST", "/v1/callbacks/claim", f.ingest, NULL, &err), 403);
	assert_error(err, "forbidden", NULL);
	json_decref(err);

	/* manager reads and cancels, but does not work the queue. */
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued", f.manager, NULL, NULL), 200);
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, NULL), 200);
	ck_assert_int_eq(cb_call(&f, "GET", a, NULL, f.manager, NULL, NULL), 200);
	ck_assert_int_eq(call(&f, "POST", "/v1/callbacks/claim", f.manager, NULL, &err), 403);
	assert_error(err, "forbidden", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", a, "heartbeat", f.manager, NULL, &err), 403);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", a, "release", f.manager, NULL, &err), 403);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", a, "complete", f.manager, "{\"outcome\":\"reached\"}", &err),
	                 403);
	assert_error(err, "forbidden", NULL);
	json_decref(err);

	/* agent reads and works, but does not cancel. */
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=queued", f.agent_a, NULL, NULL), 200);
	ck_assert_int_eq(cb_call(&f, "GET", b, NULL, f.agent_a, NULL, NULL), 200);
	ck_assert_int_eq(cb_call(&f, "POST", b, "cancel", f.agent_a, NULL, &err), 403);
	assert_error(err, "forbidden", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", b, "cancel", f.ingest, NULL, &err), 403);
	json_decref(err);
	char st[16];
	ck_assert_str_eq(status_of(&f, b, st), "queued");

	/* The manager cancels a queued one: off the queue, and cancelling again is a conflict. */
	json_t *cb = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", b, "cancel", f.manager, NULL, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "cancelled");
	json_decref(cb);
	ck_assert_int_eq(cb_call(&f, "POST", b, "cancel", f.manager, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);

	/* A claimed one can be cancelled too; the agent's lease is then gone. */
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), a);
	ck_assert_int_eq(cb_call(&f, "POST", a, "cancel", f.manager, NULL, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "cancelled");
	json_decref(cb);
	err = complete(&f, f.agent_a, a, "{\"outcome\":\"reached\"}", 409);
	json_decref(err);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), 0);

	/* Cancel of a done callback: 409. The admin may do all of it. */
	int64_t c = post_low(&f, "C-role-c", 2, "claim");
	ck_assert_int_eq(claim(&f, f.admin, NULL, &cb), c);
	ck_assert_str_eq(sget(cb, "claimed_by"), "ops");
	json_decref(cb);
	json_decref(complete(&f, f.admin, c, "{\"outcome\":\"reached\"}", 200));
	ck_assert_int_eq(cb_call(&f, "POST", c, "cancel", f.manager, NULL, &err), 409);
	assert_error(err, "conflict", NULL);
	json_decref(err);
	ck_assert_int_eq(cb_call(&f, "POST", c, "cancel", f.admin, NULL, &err), 409);
	json_decref(err);
	ck_assert_str_eq(status_of(&f, c, st), "done");

	/* A cancelled customer's next low score opens a new callback. */
	int64_t again = post_low(&f, "C-role-b", 5, "claim");
	ck_assert_int_ne(again, b);
	fx_stop(&f);
}
END_TEST

/* ---------- stats ---------- */

START_TEST(stats_after_some_work)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_t *s = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.agent_a, NULL, &s), 200);
	static const char *const fields[] = { "queue_depth",
		                              "due",
		                              "claimed",
		                              "oldest_due_age_seconds",
		                              "sla_met_percent",
		                              "median_minutes_to_first_call",
		                              "median_minutes_to_close",
		                              "low_scores_reached_percent",
		                              "median_minutes_ingest_to_queue",
		                              NULL };
	for (size_t i = 0; fields[i]; i++)
		ck_assert_msg(json_object_get(s, fields[i]) != NULL, "stats lack \"%s\"", fields[i]);
	ck_assert_int_eq(iget(s, "queue_depth"), 0);
	ck_assert_int_eq(iget(s, "claimed"), 0);
	json_decref(s);

	int64_t a = post_low(&f, "C-st-a", 1, "claim");
	post_low(&f, "C-st-b", 2, "claim");
	post_low(&f, "C-st-c", 3, "claim");
	post_low(&f, "C-st-d", 4, "claim");
	/* Two a manager cancels after a minute (test answers): nobody called, so they do not
	 * count as closed by the loop, or "time to close" would mean little. */
	int64_t cancelled[2] = { post_low(&f, "C-st-x", 2, "claim"), post_low(&f, "C-st-y", 2, "claim") };
	fx_at(&f, T0 + 60);
	for (size_t i = 0; i < 2; i++) {
		json_t *out = NULL;
		ck_assert_int_eq(cb_call(&f, "POST", cancelled[i], "cancel", f.manager, NULL, &out), 200);
		json_decref(out);
	}

	/* The first called after 10 minutes and reached; the second is being called. */
	fx_at(&f, T0 + 600);
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), a);
	json_decref(complete(&f, f.agent_a, a, "{\"outcome\":\"reached\"}", 200));
	int64_t b = claim(&f, f.agent_b, NULL, NULL);
	ck_assert_int_gt(b, 0);

	fx_at(&f, T0 + 1200);
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &s), 200);
	for (size_t i = 0; fields[i]; i++)
		ck_assert_msg(json_object_get(s, fields[i]) != NULL, "stats lack \"%s\"", fields[i]);
	ck_assert_int_eq(iget(s, "queue_depth"), 2);
	ck_assert_int_eq(iget(s, "due"), 2);
	ck_assert_int_eq(iget(s, "claimed"), 1);
	ck_assert_int_eq(iget(s, "oldest_due_age_seconds"), 1200);
	ck_assert_msg(json_is_number(json_object_get(s, "sla_met_percent")), "sla_met_percent not a number");
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "sla_met_percent")), 100.0, 1e-9);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_to_first_call")), 10.0,
	                        1e-9);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_to_close")), 10.0, 1e-9);
	/* Of the four calls owed (the cancelled two were not), one has reached its customer. */
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "low_scores_reached_percent")), 25.0,
	                        1e-9);
	json_decref(s);

	/* The second called and reached after 23 minutes (within its lease): the median of two is
	 * their mean. */
	fx_at(&f, T0 + 1380);
	json_decref(complete(&f, f.agent_b, b, "{\"outcome\":\"reached\"}", 200));
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &s), 200);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_to_first_call")), 16.5,
	                        1e-9);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_to_close")), 16.5, 1e-9);
	/* Every answer came without answered_at: npsd took the time it got them, and queued
	 * their callbacks in the same commit. */
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_ingest_to_queue")), 0.0,
	                        1e-9);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "low_scores_reached_percent")), 50.0,
	                        1e-9);
	json_decref(s);

	/* Two more owed: two of six reached, shown to one decimal as the NPS figures are. */
	post_low(&f, "C-st-e", 2, "claim");
	post_low(&f, "C-st-f", 2, "claim");
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &s), 200);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "low_scores_reached_percent")), 33.3,
	                        1e-9);
	json_decref(s);
	fx_stop(&f);
}
END_TEST

/* Ingest to queue is the survey feed's delay: from the customer's answer to the call owed
 * in the queue. An answer that joins an open callback does not start a new one, and a
 * sender's clock ahead of npsd's counts as no delay. /metrics shows the same median. */
START_TEST(stats_ingest_to_queue)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	json_t *s = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &s), 200);
	ck_assert(json_is_null(json_object_get(s, "median_minutes_ingest_to_queue")));
	json_decref(s);
	json_decref(post_answer_at(&f, "C-feed-a", 3, "claim", PHONE, true, T0 - 1800));
	json_decref(post_answer_at(&f, "C-feed-b", 3, "claim", PHONE, true, T0 - 600));
	json_decref(post_answer_at(&f, "C-feed-c", 3, "claim", PHONE, true, T0 + 120));
	json_decref(post_answer_at(&f, "C-feed-b", 1, "claim", PHONE, true, T0 - 86400)); /* joins */
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, &s), 200);
	ck_assert_int_eq(iget(s, "queue_depth"), 3);
	ck_assert_double_eq_tol(json_number_value(json_object_get(s, "median_minutes_ingest_to_queue")), 10.0,
	                        1e-9);
	json_decref(s);
	struct http_result m = { 0 };
	ck_assert_int_eq(http_do(&f.p, "GET", "/metrics", NULL, NULL, NULL, 0, &m), 0);
	ck_assert_int_eq(m.status, 200);
	ck_assert_msg(strstr(m.body, "\nnpsd_callbacks_ingest_to_queue_seconds 600\n") != NULL,
	              "no ingest-to-queue median of 600 s in /metrics:\n%s", m.body);
	http_result_free(&m);
	fx_stop(&f);
}
END_TEST

/* ---------- 400s ---------- */

START_TEST(bad_requests_name_the_field)
{
	struct fx f;
	fx_start(&f, T0, NULL);
	int64_t id = post_low(&f, "C-bad", 3, "claim");
	ck_assert_int_eq(claim(&f, f.agent_a, NULL, NULL), id);

	static const struct {
		const char *body, *code, *field;
	} cases[] = {
		{ "{\"outcome\":\"maybe\"}", "invalid_field", "outcome" },
		{ "{\"outcome\":7}", "invalid_field", "outcome" },
		{ "{\"notes\":\"no outcome\"}", "missing_field", "outcome" },
		{ "{\"outcome\":\"reached\",\"mood\":\"good\"}", "invalid_field", "mood" },
		{ "{\"outcome\":\"reached\",\"notes\":12}", "invalid_field", "notes" },
		{ "{\"outcome\":\"reached\",\"improvements\":{}}", "invalid_field", "improvements" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"billing\",\"text\":\"x\"}]}",
		  "invalid_field", "improvements.0.area" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"ok\"},"
		  "{\"area\":\"Service\",\"text\":\"x\"}]}",
		  "invalid_field", "improvements.1.area" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"text\":\"x\"}]}", "missing_field",
		  "improvements.0.area" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\"}]}", "missing_field",
		  "improvements.0.text" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"\"}]}",
		  "invalid_field", "improvements.0.text" },
		{ "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"x\",\"who\":1}"
		  "]}",
		  "invalid_field", "improvements.0.who" },
		{ "{\"outcome\":\"call_later\",\"retry_at\":\"tomorrow\"}", "invalid_field", "retry_at" },
		{ NULL, NULL, NULL },
	};
	for (size_t i = 0; cases[i].body; i++) {
		json_t *err = complete(&f, f.agent_a, id, cases[i].body, 400);
		assert_error(err, cases[i].code, cases[i].field);
		json_decref(err);
	}
	json_t *err = NULL;
	ck_assert_int_eq(cb_call(&f, "POST", id, "complete", f.agent_a, "{\"outcome\":", &err), 400);
	assert_error(err, "invalid_json", NULL);
	json_decref(err);
	/* None of it changed the callback. */
	json_t *cb = get_cb(&f, id);
	ck_assert_str_eq(sget(cb, "status"), "claimed");
	assert_null(cb, "outcome");
	ck_assert_uint_eq(json_array_size(json_object_get(cb, "improvements")), 0);
	json_decref(cb);

	/* Claim filters and list parameters. */
	ck_assert_int_eq(
	        call(&f, "POST", "/v1/callbacks/claim", f.agent_b, "{\"touchpoint\":\"Not Valid\"}", &err),
	        400);
	assert_error(err, "invalid_field", "touchpoint");
	json_decref(err);
	ck_assert_int_eq(call(&f, "POST", "/v1/callbacks/claim", f.agent_b, "{\"queue\":\"x\"}", &err), 400);
	assert_error(err, "invalid_field", "queue");
	json_decref(err);
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?status=open", f.agent_b, NULL, &err), 400);
	assert_error(err, "invalid_field", "status");
	json_decref(err);
	const char *const bad_cursors[] = {
		"zzz", "0.3.7x", "0.3.7.", "0.3.7.1795000000.1", "0.3", "%200.3.7", "-1.-5.3", "+0.3.7",
		"3.0.0.0", "2.0.35.1795000000", "18446744073709551616.0.0.0", "0.0.35.99999999999999999999",
	};
	for (size_t i = 0; i < sizeof bad_cursors / sizeof *bad_cursors; i++) {
		char path[96];
		snprintf(path, sizeof path, "/v1/callbacks?cursor=%s", bad_cursors[i]);
		ck_assert_int_eq(call(&f, "GET", path, f.agent_b, NULL, &err), 400);
		assert_error(err, "invalid_field", "cursor");
		json_decref(err);
	}
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks?limit=0", f.agent_b, NULL, &err), 400);
	assert_error(err, "invalid_field", "limit");
	json_decref(err);
	fx_stop(&f);
}
END_TEST

static Suite *callbacks_suite(void)
{
	Suite *s = suite_create("callbacks");
	TCase *tc = tcase_create("callbacks");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, claim_order_filter_and_list_pagination);
	tcase_add_test(tc, list_pages_keep_their_order_while_callbacks_fall_due);
	tcase_add_test(tc, list_empty_query_values_are_no_filter);
	tcase_add_test(tc, concurrent_claims_never_hand_out_one_twice);
	tcase_add_test(tc, lease_expiry_hands_callback_to_another_agent);
	tcase_add_test(tc, a_revoked_key_hands_its_calls_back_at_once);
	tcase_add_test(tc, heartbeat_extends_and_release_requeues);
	tcase_add_test(tc, a_released_callback_goes_to_someone_else);
	tcase_add_test(tc, conflicts_and_not_found);
	tcase_add_test(tc, no_answer_retries_then_unreachable);
	tcase_add_test(tc, call_later_wrong_number_do_not_call_reached);
	tcase_add_test(tc, wrong_number_counts_the_call_and_ends_it);
	tcase_add_test(tc, one_open_callback_per_customer);
	tcase_add_test(tc, no_callback_without_consent_phone_or_low_score);
	tcase_add_test(tc, history_of_a_returning_customer);
	tcase_add_test(tc, history_within_one_second_keeps_its_order);
	tcase_add_test(tc, excluded_answers_are_marked_in_a_callback);
	tcase_add_test(tc, contact_fields_an_answer_gives_replace_the_stored_ones);
	tcase_add_test(tc, history_keeps_the_newest_20);
	tcase_add_test(tc, cooldown_after_a_reached_call);
	tcase_add_test(tc, business_hours_in_winter);
	tcase_add_test(tc, business_hours_in_summer_with_a_holiday);
	tcase_add_test(tc, sla_breach_is_marked_and_announced_once);
	tcase_add_test(tc, roles);
	tcase_add_test(tc, stats_after_some_work);
	tcase_add_test(tc, stats_ingest_to_queue);
	tcase_add_test(tc, bad_requests_name_the_field);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(callbacks_suite());
	curl_global_cleanup();
	return status;
}
