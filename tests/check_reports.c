/* The reports' pure parts (the NPS, its margin of error, the local calendar periods) and
 * reports_nps() on a database of random answers against a plain tally of the same answers:
 * every grouping, with and without filters and excluded answers. A fixed seed per run
 * makes a failure repeatable. */
#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/db.h"
#include "npsd/reports.h"
#include "npsd/schedule.h"
#include "npsd/validate.h"

#include "testutil.h"

static int64_t at(const char *rfc3339)
{
	int64_t t;
	ck_assert_msg(time_parse_rfc3339(rfc3339, &t) == 0, "bad time in test: %s", rfc3339);
	return t;
}

START_TEST(nps_of_known_mixes)
{
	struct nps_counts empty = { 0 }, all_promoters = { 5, 0, 0 }, mix = { 2, 1, 1 }, even = { 1, 0, 1 };
	ck_assert_int_eq(nps_responses(&empty), 0);
	ck_assert_double_eq(nps_value(&empty), 0.0);
	ck_assert_double_eq(nps_margin_of_error(&empty), 0.0);
	ck_assert_double_eq(nps_value(&all_promoters), 100.0);
	ck_assert_double_eq(nps_margin_of_error(&all_promoters), 0.0);
	ck_assert_int_eq(nps_responses(&mix), 4);
	ck_assert_double_eq_tol(nps_value(&mix), 25.0, 1e-9);
	/* p = .5, d = .25: variance .75 - .0625 = .6875; 1.96 x 100 x sqrt(.6875 / 4). */
	ck_assert_double_eq_tol(nps_margin_of_error(&mix), 81.2577, 1e-3);
	ck_assert_double_eq_tol(nps_value(&even), 0.0, 1e-9);
	ck_assert_double_eq_tol(nps_margin_of_error(&even), 196.0 * sqrt(0.5), 1e-9);
	/* A large sample: 1200 answers, NPS 23.5 with 40.5% promoters and 17% detractors. */
	struct nps_counts big = { 486, 510, 204 };
	ck_assert_double_eq_tol(nps_value(&big), 23.5, 1e-9);
	double p = 486.0 / 1200, d = 204.0 / 1200;
	ck_assert_double_eq_tol(nps_margin_of_error(&big), 196.0 * sqrt((p + d - (p - d) * (p - d)) / 1200),
	                        1e-9);
	ck_assert(nps_margin_of_error(&big) > 4.0 && nps_margin_of_error(&big) < 5.0);
}
END_TEST

/* Figures are rounded to one decimal, half away from zero, and never to "-0.0": 1001
 * promoters against 1002 detractors is an NPS of -0.05, shown as 0.0. */
START_TEST(figures_round_to_one_decimal_without_minus_zero)
{
	struct nps_counts close = { 1001, 0, 1002 };
	double shown = report_figure(nps_value(&close));
	ck_assert_double_eq(shown, 0.0);
	ck_assert_msg(!signbit(shown), "the NPS of 1001 promoters and 1002 detractors reads -0.0");
	ck_assert_double_eq(report_figure(6.25), 6.3);
	ck_assert_double_eq(report_figure(-6.25), -6.3);
	ck_assert_double_eq(report_figure(16.66), 16.7);
}
END_TEST

START_TEST(group_names)
{
	static const char *const names[] = { "touchpoint", "channel", "day", "week", "month" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int g = report_group_parse(names[i]);
		ck_assert_int_ge(g, 0);
		ck_assert_str_eq(report_group_name((enum report_group)g), names[i]);
	}
	ck_assert_int_eq(report_group_parse("Day"), -1);
	ck_assert_int_eq(report_group_parse(""), -1);
	ck_assert_int_eq(report_group_parse("year"), -1);
	ck_assert_ptr_null(report_group_name(GROUP_NONE));
	ck_assert(report_group_is_period(GROUP_DAY) && !report_group_is_period(GROUP_CHANNEL));
}
END_TEST

static void check_period(enum report_group g, const char *t, const char *key, const char *start)
{
	char got[PERIOD_KEY_MAX], buf[21];
	int64_t got_start;
	ck_assert_int_eq(report_period_of(g, at(t), got, &got_start), 0);
	ck_assert_msg(strcmp(got, key) == 0, "%s: key %s, expected %s", t, got, key);
	ck_assert_msg(got_start == at(start), "%s (%s): starts %s, expected %s", t, key,
	              time_format_rfc3339(got_start, buf), start);
}

/* Amsterdam: UTC+1 in winter, +2 in summer; days change at 23:00 or 22:00 UTC. */
START_TEST(periods_in_amsterdam)
{
	ck_assert_int_eq(schedule_set_timezone("Europe/Amsterdam"), 0);
	check_period(GROUP_DAY, "2026-11-22T22:59:59Z", "2026-11-22", "2026-11-21T23:00:00Z");
	check_period(GROUP_DAY, "2026-11-22T23:00:00Z", "2026-11-23", "2026-11-22T23:00:00Z");
	check_period(GROUP_DAY, "2026-07-01T22:30:00Z", "2026-07-02", "2026-07-01T22:00:00Z");
	/* The day clocks spring forward is 23 hours long, the day they fall back 25. */
	check_period(GROUP_DAY, "2026-03-29T12:00:00Z", "2026-03-29", "2026-03-28T23:00:00Z");
	check_period(GROUP_DAY, "2026-03-29T22:00:00Z", "2026-03-30", "2026-03-29T22:00:00Z");
	check_period(GROUP_DAY, "2026-10-25T22:59:59Z", "2026-10-25", "2026-10-24T22:00:00Z");
	/* ISO weeks start on Monday; the last days of 2026 and the first of 2027 are 2026-W53. */
	check_period(GROUP_WEEK, "2026-11-22T23:00:00Z", "2026-W48", "2026-11-22T23:00:00Z");
	check_period(GROUP_WEEK, "2026-11-22T22:59:59Z", "2026-W47", "2026-11-15T23:00:00Z");
	check_period(GROUP_WEEK, "2027-01-03T12:00:00Z", "2026-W53", "2026-12-27T23:00:00Z");
	check_period(GROUP_WEEK, "2026-04-01T12:00:00Z", "2026-W14", "2026-03-29T22:00:00Z");
	check_period(GROUP_MONTH, "2026-11-30T22:59:59Z", "2026-11", "2026-10-31T23:00:00Z");
	check_period(GROUP_MONTH, "2026-11-30T23:00:00Z", "2026-12", "2026-11-30T23:00:00Z");
	check_period(GROUP_MONTH, "2026-04-15T00:00:00Z", "2026-04", "2026-03-31T22:00:00Z");
	ck_assert_int_eq(schedule_set_timezone("America/St_Johns"), 0); /* UTC-3:30 */
	check_period(GROUP_DAY, "2026-11-23T03:29:59Z", "2026-11-22", "2026-11-22T03:30:00Z");
	check_period(GROUP_DAY, "2026-11-23T03:30:00Z", "2026-11-23", "2026-11-23T03:30:00Z");
}
END_TEST

/* ---- reports_nps() against a tally of the same random answers ---- */

#define ANSWERS 1500
#define MAX_GROUPS 600

static const char *const touchpoints[] = { "claim", "purchase", "renewal" };
static const char *const channels[] = { NULL, "app", "web" }; /* in the store's order */

struct answer {
	int64_t answered_at;
	int touchpoint, channel, score;
	bool excluded;
};
static struct answer answers[ANSWERS];

static char dir[64];
static char path[128];
static struct npsd_db *db;

static int run_sql(struct db_conn *conn, void *sql)
{
	return sqlite3_exec(db_handle(conn), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Answers over 2026 and into 2027, a fifth of them within a few days of each other (and of
 * a DST change), so that days and weeks hold several. */
static void setup_answers(void)
{
	ck_assert_int_eq(schedule_set_timezone("Europe/Amsterdam"), 0);
	db = open_test_db("reports", dir, path);
	unsigned seed = (unsigned)time(NULL);
	fprintf(stderr, "check_reports: seed %u\n", seed);
	srand(seed);
	static char sql[ANSWERS * 220];
	size_t len = (size_t)snprintf(
	        sql, sizeof sql, "INSERT INTO customers (id, created_at, updated_at) VALUES ('c', 0, 0);");
	int64_t year = at("2026-01-01T00:00:00Z"), dst = at("2026-10-23T00:00:00Z");
	for (int i = 0; i < ANSWERS; i++) {
		struct answer *a = &answers[i];
		a->answered_at = i % 5 == 0 ? dst + rand() % (5 * 86400) : year + rand() % (400 * 86400);
		a->touchpoint = rand() % 3;
		a->channel = rand() % 3;
		a->score = rand() % 11;
		a->excluded = rand() % 10 == 0;
		char channel[16] = "NULL";
		if (channels[a->channel])
			snprintf(channel, sizeof channel, "'%s'", channels[a->channel]);
		int n = snprintf(
		        sql + len, sizeof sql - len,
		        "INSERT INTO surveys (response_id, source, customer_id, touchpoint, channel, "
		        "score, answered_at, received_at, consent, excluded) VALUES ('r%d', 's', 'c', "
		        "'%s', %s, %d, %lld, 0, 1, %d);",
		        i, touchpoints[a->touchpoint], channel, a->score, (long long)a->answered_at,
		        a->excluded);
		ck_assert(n > 0 && (size_t)n < sizeof sql - len);
		len += (size_t)n;
	}
	ck_assert_int_eq(db_write_sync(db, run_sql, sql), 0);
}

static void teardown_answers(void)
{
	db_close(&db);
	remove_db_folder(dir, path);
}

struct tally {
	size_t n;
	struct nps_group groups[MAX_GROUPS];
	char keys[MAX_GROUPS][PERIOD_KEY_MAX];
	bool null_key[MAX_GROUPS];
};

static void counts_add_score(struct nps_counts *c, int score)
{
	if (score >= 9)
		c->promoters++;
	else if (score >= 7)
		c->passives++;
	else
		c->detractors++;
}

static bool passes(const struct answer *a, const struct nps_filter *f)
{
	return (f->from == REPORT_TIME_OPEN || a->answered_at >= f->from) &&
	       (f->to == REPORT_TIME_OPEN || a->answered_at < f->to) &&
	       (!f->touchpoint || strcmp(f->touchpoint, touchpoints[a->touchpoint]) == 0) &&
	       (!f->channel || (channels[a->channel] && strcmp(f->channel, channels[a->channel]) == 0));
}

/* The expected groups: found by a linear search for each answer's key, then ordered. */
static int compare_groups(const void *x, const void *y)
{
	const struct nps_group *a = x, *b = y;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	if (!a->key || !b->key)
		return (a->key != NULL) - (b->key != NULL); /* answers without a channel first */
	return strcmp(a->key, b->key);
}

static void expected(const struct nps_filter *f, enum report_group g, struct tally *t,
                     struct nps_counts *total, int64_t *excluded)
{
	memset(t, 0, sizeof *t);
	*total = (struct nps_counts){ 0 };
	*excluded = 0;
	for (int i = 0; i < ANSWERS; i++) {
		const struct answer *a = &answers[i];
		if (!passes(a, f))
			continue;
		if (a->excluded) {
			(*excluded)++;
			continue;
		}
		counts_add_score(total, a->score);
		if (g == GROUP_NONE)
			continue;
		char key[PERIOD_KEY_MAX] = "";
		int64_t start = 0;
		bool null_key = false;
		if (g == GROUP_TOUCHPOINT)
			snprintf(key, sizeof key, "%s", touchpoints[a->touchpoint]);
		else if (g == GROUP_CHANNEL && channels[a->channel])
			snprintf(key, sizeof key, "%s", channels[a->channel]);
		else if (g == GROUP_CHANNEL)
			null_key = true;
		else
			ck_assert_int_eq(report_period_of(g, a->answered_at, key, &start), 0);
		size_t j = 0;
		while (j < t->n && !(t->null_key[j] == null_key && strcmp(t->keys[j], key) == 0))
			j++;
		if (j == t->n) {
			if (t->n == MAX_GROUPS)
				ck_abort_msg("more than %d groups", MAX_GROUPS);
			memcpy(t->keys[j], key, sizeof key);
			t->null_key[j] = null_key;
			t->groups[j].start = start;
			t->n++;
		}
		counts_add_score(&t->groups[j].counts, a->score);
	}
	for (size_t j = 0; j < t->n; j++)
		t->groups[j].key = t->null_key[j] ? NULL : t->keys[j];
	qsort(t->groups, t->n, sizeof t->groups[0], compare_groups);
}

struct seen {
	const struct tally *want;
	size_t n;
};

static int check_group(const struct nps_group *g, void *arg)
{
	struct seen *s = arg;
	if (s->n >= s->want->n)
		ck_abort_msg("more groups than the %zu expected (at %s)", s->want->n,
		             g->key ? g->key : "null");
	const struct nps_group *w = &s->want->groups[s->n++];
	bool same_key = (!g->key && !w->key) || (g->key && w->key && strcmp(g->key, w->key) == 0);
	if (!same_key || g->start != w->start || memcmp(&g->counts, &w->counts, sizeof g->counts) != 0)
		ck_abort_msg("group %zu: %s start %lld %lld/%lld/%lld, expected %s start %lld %lld/%lld/%lld",
		             s->n - 1, g->key ? g->key : "null", (long long)g->start,
		             (long long)g->counts.promoters, (long long)g->counts.passives,
		             (long long)g->counts.detractors, w->key ? w->key : "null", (long long)w->start,
		             (long long)w->counts.promoters, (long long)w->counts.passives,
		             (long long)w->counts.detractors);
	return 0;
}

static void check_report(const struct nps_filter *f, enum report_group g)
{
	static struct tally want;
	struct nps_counts want_total, total;
	int64_t want_excluded, excluded;
	expected(f, g, &want, &want_total, &want_excluded);
	struct seen seen = { &want, 0 };
	struct db_conn *conn = db_reader(db);
	int r = reports_nps(conn, f, g, check_group, &seen, &total, &excluded);
	db_reader_put(db, conn);
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(seen.n, want.n);
	ck_assert_int_eq(total.promoters, want_total.promoters);
	ck_assert_int_eq(total.passives, want_total.passives);
	ck_assert_int_eq(total.detractors, want_total.detractors);
	ck_assert_int_eq(excluded, want_excluded);
}

START_TEST(nps_matches_a_tally)
{
	int64_t from = at("2026-03-01T00:00:00Z"), to = at("2026-10-26T01:00:00Z");
	const struct nps_filter filters[] = {
		{ REPORT_TIME_OPEN, REPORT_TIME_OPEN, NULL, NULL },
		{ from, to, NULL, NULL },
		{ from, REPORT_TIME_OPEN, "claim", NULL },
		{ REPORT_TIME_OPEN, to, NULL, "web" },
		{ from, to, "renewal", "app" },
		{ to, to, NULL, NULL }, /* empty: to is exclusive */
		{ REPORT_TIME_OPEN, REPORT_TIME_OPEN, "unknown", NULL },
	};
	for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
		for (int g = GROUP_NONE; g <= GROUP_MONTH; g++)
			check_report(&filters[i], (enum report_group)g);
}
END_TEST

/* The walk stops at the first nonzero return of fn and hands it back. */
static int stop_at_second(const struct nps_group *g, void *arg)
{
	(void)g;
	return ++*(int *)arg == 2 ? 42 : 0;
}

START_TEST(nps_walk_stops)
{
	const struct nps_filter all = { REPORT_TIME_OPEN, REPORT_TIME_OPEN, NULL, NULL };
	for (int g = GROUP_TOUCHPOINT; g <= GROUP_MONTH; g++) {
		int calls = 0;
		struct nps_counts total;
		int64_t excluded;
		struct db_conn *conn = db_reader(db);
		int r = reports_nps(conn, &all, (enum report_group)g, stop_at_second, &calls, &total,
		                    &excluded);
		db_reader_put(db, conn);
		ck_assert_int_eq(r, 42);
		ck_assert_int_eq(calls, 2);
	}
}
END_TEST

static Suite *reports_suite(void)
{
	Suite *s = suite_create("reports");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, nps_of_known_mixes);
	tcase_add_test(tc, figures_round_to_one_decimal_without_minus_zero);
	tcase_add_test(tc, group_names);
	tcase_add_test(tc, periods_in_amsterdam);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup_answers, teardown_answers);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, nps_matches_a_tally);
	tcase_add_test(tc, nps_walk_stops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(reports_suite());
}
