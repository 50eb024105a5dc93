/* The managers' lists, paged the way the API pages them, against the plain query that
 * says what they must return: the callbacks in queue order (walked per status on the
 * indexes) and the answers newest first (walked in windows of ids, so a page may come back
 * short with a cursor to go on from). Random data; a fixed seed per run makes a failure
 * repeatable. */
#include <check.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/store.h"

#include "testutil.h"

#define MAX_ROWS 2000

static char dir[64];
static char path[128];
static struct npsd_db *db;

static void setup(void)
{
	db = open_test_db("lists", dir, path);
}

static void teardown(void)
{
	db_close(&db);
	remove_db_folder(dir, path);
}

static int run_sql(struct db_conn *conn, void *sql)
{
	return sqlite3_exec(db_handle(conn), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void exec_sql(char *sql)
{
	ck_assert_int_eq(db_write_sync(db, run_sql, sql), 0);
}

/* Statements gathered to run as one write: one commit instead of hundreds. */
struct script {
	char text[256 * 1024];
	size_t len;
};

static void script_add(struct script *s, const char *sql)
{
	int n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s;", sql);
	ck_assert(n > 0 && (size_t)n < sizeof s->text - s->len);
	s->len += (size_t)n;
}

struct ids {
	int64_t v[MAX_ROWS];
	size_t n;
};

static void ids_add(struct ids *ids, int64_t id)
{
	if (ids->n >= MAX_ROWS)
		ck_abort_msg("more than %d ids listed", MAX_ROWS);
	ids->v[ids->n++] = id;
}

/* The oracle: ids from a plain query with its parameters bound as text (NULL = none). */
static void oracle(const char *sql, const char *const params[], size_t nparams, struct ids *ret)
{
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), sql, -1, &st, NULL), SQLITE_OK);
	for (size_t i = 0; i < nparams; i++)
		if (params[i])
			sqlite3_bind_text(st, (int)i + 1, params[i], -1, SQLITE_STATIC);
	ret->n = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		ids_add(ret, sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	db_reader_put(db, conn);
}

static void assert_same(const struct ids *got, const struct ids *want, const char *what)
{
	if (got->n != want->n)
		ck_abort_msg("%s: %zu ids listed, %zu expected", what, got->n, want->n);
	for (size_t i = 0; i < want->n; i++)
		if (got->v[i] != want->v[i])
			ck_abort_msg("%s: item %zu is %" PRId64 ", expected %" PRId64, what, i, got->v[i],
			             want->v[i]);
}

/* ---------- callbacks ---------- */

static const char *const statuses[] = { "queued", "claimed", "done", "unreachable", "cancelled" };
static const char *const touchpoints[] = { "claim", "purchase", "renewal" };

#define NOW 1800000000

struct callback_page {
	struct ids *ids;
	int64_t last[2][3]; /* (not due, priority, id) of the last two rows, as the API keeps them */
};

static int callback_seen(const struct callback_row *row, void *arg)
{
	struct callback_page *p = arg;
	ids_add(p->ids, row->id);
	memcpy(p->last[0], p->last[1], sizeof p->last[0]);
	p->last[1][0] = row->due_at > NOW;
	p->last[1][1] = row->priority;
	p->last[1][2] = row->id;
	return 0;
}

/* Every page of one listing, limit+1 asked as the API does, the cursor from the last row
 * shown; the pages' ids in order. */
static void list_callbacks(const char *status, const char *touchpoint, int limit, struct ids *ret)
{
	struct callback_filter f = {
		.status = status, .touchpoint = touchpoint, .now = NOW, .limit = limit + 1
	};
	ret->n = 0;
	for (int pages = 0;; pages++) {
		if (pages > MAX_ROWS)
			ck_abort_msg("paging does not end");
		struct ids page = { .n = 0 };
		struct callback_page p = { .ids = &page };
		struct db_conn *conn = db_reader(db);
		int r = store_callback_list(conn, &f, callback_seen, &p);
		db_reader_put(db, conn);
		if (r != 0 || page.n > (size_t)limit + 1)
			ck_abort_msg("a page failed (%d) or held %zu rows for a limit of %d", r, page.n,
			             limit + 1);
		size_t shown = page.n > (size_t)limit ? (size_t)limit : page.n;
		for (size_t i = 0; i < shown; i++)
			ids_add(ret, page.v[i]);
		if (page.n <= (size_t)limit)
			return;
		f.has_cursor = true;
		memcpy(f.cursor_key, p.last[0], sizeof f.cursor_key);
	}
}

START_TEST(callback_pages_follow_the_queue_order)
{
	srand(20261123);
	char customers[] = "INSERT INTO customers (id, created_at, updated_at) VALUES ('C', 0, 0)";
	exec_sql(customers);
	static struct script script;
	char sql[512];
	for (int i = 1; i <= 150; i++) {
		/* Due times on both sides of now, some exactly at it (due), many sharing a priority. */
		int64_t due = NOW + (rand() % 7 - 4) * 600;
		snprintf(sql, sizeof sql,
		         "INSERT INTO callbacks (id, customer_id, status, priority, touchpoint, due_at, "
		         "sla_deadline, max_attempts, created_at) VALUES (%d, 'C', '%s', %d, '%s', %" PRId64
		         ", %" PRId64 ", 3, 0)",
		         i * 3 + rand() % 3, statuses[rand() % 5], rand() % 11, touchpoints[rand() % 3], due,
		         due + 3600);
		script_add(&script, sql);
	}
	exec_sql(script.text);
	static const char order[] =
	        "SELECT id FROM callbacks WHERE (?1 IS NULL OR status = ?1) AND "
	        "(?2 IS NULL OR touchpoint = ?2) ORDER BY due_at > 1800000000, priority, id";
	static const int limits[] = { 1, 4, 500 };
	for (int s = -1; s < 5; s++) {
		for (int t = -1; t < 1; t++) {
			const char *params[2] = { s < 0 ? NULL : statuses[s], t < 0 ? NULL : touchpoints[t] };
			static struct ids want, got;
			oracle(order, params, 2, &want);
			ck_assert_uint_gt(want.n, 0);
			for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
				list_callbacks(params[0], params[1], limits[l], &got);
				char what[96];
				snprintf(what, sizeof what, "status %s, touchpoint %s, limit %d",
				         params[0] ? params[0] : "any", params[1] ? params[1] : "any",
				         limits[l]);
				assert_same(&got, &want, what);
			}
		}
	}
}
END_TEST

/* ---------- surveys ---------- */

static int survey_seen(const struct survey_row *row, void *arg)
{
	ids_add(arg, row->id);
	return 0;
}

/* Every page, as the API pages: limit+1 asked; a full page goes on from its last row shown,
 * a short one from the cursor the store gave back, if any. */
static void list_surveys(struct survey_filter f, int limit, int64_t scan_ids, struct ids *ret, int *ret_pages)
{
	f.limit = limit + 1;
	f.scan_ids = scan_ids;
	f.before_id = 0;
	ret->n = 0;
	for (*ret_pages = 1;; (*ret_pages)++) {
		if (*ret_pages > 10 * MAX_ROWS)
			ck_abort_msg("paging does not end");
		struct ids page = { .n = 0 };
		int64_t resume = -1;
		struct db_conn *conn = db_reader(db);
		int r = store_survey_list(conn, &f, survey_seen, &page, &resume);
		db_reader_put(db, conn);
		if (r != 0 || resume < 0 || page.n > (size_t)limit + 1)
			ck_abort_msg("a page failed (%d), gave no cursor (%" PRId64
			             ") or held %zu rows for a "
			             "limit of %d",
			             r, resume, page.n, limit + 1);
		size_t shown = page.n > (size_t)limit ? (size_t)limit : page.n;
		for (size_t i = 0; i < shown; i++)
			ids_add(ret, page.v[i]);
		int64_t next = page.n > (size_t)limit ? page.v[limit - 1] : resume;
		if (!next)
			return;
		/* Each page moves the cursor down, so paging ends. */
		if (f.before_id != 0 && next >= f.before_id)
			ck_abort_msg("the cursor went from %" PRId64 " to %" PRId64, f.before_id, next);
		f.before_id = next;
	}
}

START_TEST(survey_pages_walk_windows_of_ids_and_miss_nothing)
{
	srand(20261124);
	char customers[] =
	        "INSERT INTO customers (id, created_at, updated_at) VALUES ('C', 0, 0), ('D', 0, 0)";
	exec_sql(customers);
	static struct script script;
	char sql[512];
	for (int i = 1; i <= 600; i++) {
		snprintf(sql, sizeof sql,
		         "INSERT INTO surveys (id, response_id, source, customer_id, touchpoint, channel, "
		         "score, answered_at, received_at, consent) VALUES (%d, 'r-%d', 't', '%s', '%s', %s, "
		         "%d, %d, 0, 1)",
		         i, i, rand() % 4 ? "C" : "D", rand() % 20 ? touchpoints[rand() % 2] : "renewal",
		         (const char *[]){ "'web'", "'app'", "NULL" }[rand() % 3], rand() % 11,
		         1700000000 + rand() % 1000);
		script_add(&script, sql);
	}
	exec_sql(script.text);
	/* Ids never used or gone: the windows start at the newest id there is. */
	char gap[] = "DELETE FROM surveys WHERE id BETWEEN 150 AND 420";
	exec_sql(gap);
	static const char order[] = "SELECT id FROM surveys WHERE (?1 IS NULL OR touchpoint = ?1) AND "
	                            "(?2 IS NULL OR customer_id = ?2) AND (?3 IS NULL OR score <= ?3) AND "
	                            "(?4 IS NULL OR answered_at >= ?4) AND (?5 IS NULL OR answered_at < ?5) AND "
	                            "(?6 IS NULL OR channel = ?6) AND (?7 IS NULL OR score >= ?7) "
	                            "ORDER BY id DESC";
	struct case_ {
		const char *params[7];
		struct survey_filter f;
	} cases[] = {
		{ { NULL }, { .max_score = -1, .from = SURVEY_TIME_OPEN, .to = SURVEY_TIME_OPEN } },
		{ { "renewal" },
		  { .touchpoint = "renewal",
		    .max_score = -1,
		    .from = SURVEY_TIME_OPEN,
		    .to = SURVEY_TIME_OPEN } },
		{ { "claim", NULL, "3", "1700000200", "1700000700" },
		  { .touchpoint = "claim", .max_score = 3, .from = 1700000200, .to = 1700000700 } },
		{ { NULL, "D", NULL },
		  { .customer_id = "D", .max_score = -1, .from = SURVEY_TIME_OPEN, .to = SURVEY_TIME_OPEN } },
		{ { "nothing" },
		  { .touchpoint = "nothing",
		    .max_score = -1,
		    .from = SURVEY_TIME_OPEN,
		    .to = SURVEY_TIME_OPEN } },
		/* The channel and the lowest score, alone and with the others. */
		{ { NULL, NULL, NULL, NULL, NULL, "web" },
		  { .channel = "web", .min_score = -1, .max_score = -1, .from = SURVEY_TIME_OPEN, .to = SURVEY_TIME_OPEN } },
		{ { NULL, NULL, NULL, NULL, NULL, NULL, "9" },
		  { .min_score = 9, .max_score = -1, .from = SURVEY_TIME_OPEN, .to = SURVEY_TIME_OPEN } },
		{ { "claim", NULL, "8", NULL, NULL, "app", "7" },
		  { .touchpoint = "claim",
		    .channel = "app",
		    .min_score = 7,
		    .max_score = 8,
		    .from = SURVEY_TIME_OPEN,
		    .to = SURVEY_TIME_OPEN } },
		{ { NULL, "D", NULL, NULL, NULL, "web", "9" },
		  { .customer_id = "D",
		    .channel = "web",
		    .min_score = 9,
		    .max_score = -1,
		    .from = SURVEY_TIME_OPEN,
		    .to = SURVEY_TIME_OPEN } },
	};
	static const int limits[] = { 1, 3, 50 };
	static const int64_t windows[] = { 0, 1, 7, 100, 1000 };
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		static struct ids want, got;
		oracle(order, cases[c].params, 7, &want);
		for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
			for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
				int pages = 0;
				list_surveys(cases[c].f, limits[l], windows[w], &got, &pages);
				char what[96];
				snprintf(what, sizeof what, "case %zu, limit %d, window %" PRId64, c,
				         limits[l], windows[w]);
				assert_same(&got, &want, what);
				/* A window bounds a page's walk: more pages than matches only by the
				 * windows it took to pass over the 149 + 180 ids there are (a
				 * customer's index needs none). */
				int64_t most = (int64_t)(want.n / (size_t)limits[l]) + 1;
				if (windows[w] && !cases[c].f.customer_id)
					most += 329 / windows[w] + 2;
				ck_assert_msg(pages <= most, "%s: %d pages, at most %" PRId64 " expected",
				              what, pages, most);
			}
		}
	}
}
END_TEST

static Suite *lists_suite(void)
{
	Suite *s = suite_create("store_lists");
	TCase *tc = tcase_create("lists");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, callback_pages_follow_the_queue_order);
	tcase_add_test(tc, survey_pages_walk_windows_of_ids_and_miss_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	log_set_level("warn"); /* migrations log at info */
	return run_suite(lists_suite());
}
