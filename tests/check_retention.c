/* Retention and erasure on a database built row by row: which rows store_purge_batch's
 * rules keep and which go (through retention_purge, in batches of RETENTION_BATCH, with
 * answers it must keep between those it deletes), that what a purge deletes is zeroed in
 * the file also where SQLite's secure_delete is off by default, and that
 * store_erase_customer leaves nothing about one customer while another keeps everything. */
#include <check.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/db.h"
#include "npsd/retention.h"
#include "npsd/store.h"

#include "testutil.h"

#define NOW INT64_C(1796644800) /* 2026-12-07T12:00:00Z */
#define CUTOFF (NOW - 730 * 86400)
#define OLD (CUTOFF - 10 * 86400)
#define NEW (CUTOFF + 10 * 86400)
#define MANY_OLD 1200 /* more than two batches */
#define KEPT_BETWEEN 300

static char dir[64];
static char path[128];
static struct npsd_db *db;

static struct {
	char *text;
	size_t len, cap;
} script;

/* Not checked as printf: SQLite's %Q and %q quote. */
static void sql(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	ck_assert_ptr_nonnull(line);
	size_t n = strlen(line);
	if (script.len + n + 2 > script.cap) {
		script.cap = 2 * (script.len + n + 2);
		script.text = realloc(script.text, script.cap);
		ck_assert_ptr_nonnull(script.text);
	}
	memcpy(script.text + script.len, line, n);
	script.len += n;
	script.text[script.len++] = ';';
	script.text[script.len] = '\0';
	sqlite3_free(line);
}

static int run_script(struct db_conn *conn, void *arg)
{
	char *error = NULL;
	int rc = sqlite3_exec(db_handle(conn), arg, NULL, NULL, &error);
	if (rc != SQLITE_OK)
		fprintf(stderr, "check_retention: %s\n", error);
	sqlite3_free(error);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* Runs the statements sql() gathered, in one write, and starts a new script. */
static void run_sql(void)
{
	ck_assert_int_eq(db_write_sync(db, run_script, script.text), 0);
	free(script.text);
	script.text = NULL;
	script.len = script.cap = 0;
}

static void customer(const char *id, bool do_not_call, int64_t open_callback)
{
	sql("INSERT INTO customers (id, name, phone, email, language, do_not_call, open_callback_id, "
	    "created_at, updated_at) VALUES (%Q, 'Name of %q', '+31600000000', 'x@example.nl', 'nl', %d, "
	    "nullif(%lld, 0), 0, 0)",
	    id, id, do_not_call, (long long)open_callback);
}

static void survey(const char *response_id, const char *customer_id, int64_t answered_at, int64_t callback)
{
	sql("INSERT INTO surveys (response_id, source, customer_id, touchpoint, score, answered_at, "
	    "received_at, consent, callback_id) VALUES (%Q, 's', %Q, 'claim', 3, %lld, %lld, 1, nullif(%lld, "
	    "0))",
	    response_id, customer_id, (long long)answered_at, (long long)answered_at, (long long)callback);
}

static void callback(int64_t id, const char *customer_id, const char *status, int64_t created_at)
{
	sql("INSERT INTO callbacks (id, customer_id, status, priority, touchpoint, due_at, sla_deadline, "
	    "max_attempts, created_at) VALUES (%lld, %Q, %Q, 3, 'claim', %lld, %lld, 3, %lld)",
	    (long long)id, customer_id, status, (long long)created_at, (long long)created_at,
	    (long long)created_at);
	sql("INSERT INTO callback_events (callback_id, customer_id, at, kind) VALUES (%lld, %Q, %lld, "
	    "'created')",
	    (long long)id, customer_id, (long long)created_at);
	sql("INSERT INTO improvements (callback_id, touchpoint, area, text, created_at) VALUES (%lld, "
	    "'claim', "
	    "'process', 'faster', %lld)",
	    (long long)id, (long long)created_at);
}

/* An event about customer_id with two deliveries of one attempt each. */
static void event(const char *customer_id, int64_t at)
{
	sql("INSERT INTO events (type, payload, created_at) VALUES ('survey.received', "
	    "json_object('customer', json_object('id', %Q, 'name', 'Name of ' || %Q)), %lld)",
	    customer_id, customer_id, (long long)at);
	for (int hook = 1; hook <= 2; hook++) {
		sql("INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at, created_at, "
		    "updated_at) VALUES ((SELECT max(id) FROM events), %d, 'delivered', %lld, %lld, %lld)",
		    hook, (long long)at, (long long)at, (long long)at);
		sql("INSERT INTO attempts (delivery_id, at, http_status, duration_ms) VALUES ((SELECT "
		    "max(id) "
		    "FROM deliveries), %lld, 200, 5)",
		    (long long)at);
	}
}

/* A digest that quotes customer_id's answer among its lowest scores, with two deliveries. */
static void digest_event(const char *customer_id, int64_t at)
{
	sql("INSERT INTO events (type, payload, created_at) VALUES ('digest', json_object('nps', 10, 'lowest', "
	    "json_array(json_object('customer_id', %Q, 'comment', 'Words of ' || %Q))), %lld)",
	    customer_id, customer_id, (long long)at);
	for (int hook = 1; hook <= 2; hook++)
		sql("INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at, created_at, "
		    "updated_at) VALUES ((SELECT max(id) FROM events), %d, 'pending', %lld, %lld, %lld)",
		    hook, (long long)at, (long long)at, (long long)at);
}

/*
 * A: an old promoter: goes, and A with it.       B: an old low score, called: all goes.
 * C: an old low score still queued: stays.       D: like B, but do-not-call: the row stays.
 * E: a new answer: stays.                        F: an old answer whose callback was queued
 * G: an old and a new answer: the old goes.         after the cutoff (a late feed): stays.
 * H: many old answers, each alone: all go.       I: old answers behind an open callback,
 * Q"uote: an id that needs escaping in JSON.        answered between H's: all stay.
 */
static void setup(void)
{
	db = open_test_db("retention", dir, path);
	sql("INSERT INTO webhooks (id, url, format, events, secret, created_at, updated_at) VALUES "
	    "(1, 'http://a', 'standard', '[]', 'whsec_x', 0, 0), (2, 'http://b', 'standard', '[]', "
	    "'whsec_y', 0, 0)");
	customer("A", false, 0);
	survey("a1", "A", OLD, 0);
	customer("B", false, 0);
	callback(2, "B", "done", OLD);
	survey("b1", "B", OLD, 2);
	customer("C", false, 3);
	callback(3, "C", "queued", OLD);
	survey("c1", "C", OLD, 3);
	customer("D", true, 0);
	callback(4, "D", "done", OLD);
	survey("d1", "D", OLD, 4);
	customer("E", false, 0);
	survey("e1", "E", NEW, 0);
	customer("F", false, 0);
	callback(6, "F", "done", NEW);
	survey("f1", "F", OLD, 6);
	customer("G", false, 0);
	survey("g1", "G", OLD, 0);
	survey("g2", "G", NEW, 0);
	customer("I", false, 9);
	callback(9, "I", "claimed", OLD);
	customer("H", false, 0);
	for (int i = 0; i < MANY_OLD; i++) {
		char rid[16];
		snprintf(rid, sizeof rid, "h%d", i);
		survey(rid, "H", OLD - 100000 + 50 * i, 0);
		if (i % 4 == 0 && i / 4 < KEPT_BETWEEN) {
			snprintf(rid, sizeof rid, "i%d", i);
			survey(rid, "I", OLD - 100000 + 50 * i + 1, 9);
		}
	}
	customer("Q\"uote", false, 0);
	survey("q1", "Q\"uote", NEW, 0);
	event("B", OLD);
	event("E", OLD);
	event("Q\"uote", OLD);
	event("B", NEW);
	event("E", NEW);
	digest_event("B", NEW);
	digest_event("E", NEW);
	run_sql();
}

static void teardown(void)
{
	db_close(&db);
	remove_db_folder(dir, path);
}

/* The single integer a query answers. */
static int64_t count(const char *query)
{
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), query, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_reader_put(db, conn);
	return n;
}

/* retention_purge's counts of what went; nothing may be in doubt here, where no sync fails. */
static int purge_total(int64_t cutoff, const atomic_bool *stop, struct purge_counts *ret)
{
	struct purge_report p;
	int r = retention_purge(db, cutoff, stop, &p);
	ck_assert(purge_counts_zero(&p.in_doubt));
	*ret = p.total;
	return r;
}

#define ASSERT_COUNT(query, n)                                                                    \
	ck_assert_msg(count(query) == (n), "%s: %lld, want %lld", query, (long long)count(query), \
	              (long long)(n))

START_TEST(purge_keeps_what_is_owed_or_new)
{
	struct purge_counts c;
	ck_assert_int_eq(purge_total(CUTOFF, NULL, &c), 0);
	ck_assert_int_eq(c.surveys, 4 + MANY_OLD);
	ck_assert_int_eq(c.callbacks, 2);
	ck_assert_int_eq(c.improvements, 2);
	ck_assert_int_eq(c.callback_events, 2);
	ck_assert_int_eq(c.customers, 3);
	ck_assert_int_eq(c.customers_kept_do_not_call, 1);
	ck_assert_int_eq(c.events, 3);
	ck_assert_int_eq(c.deliveries, 6);
	ck_assert_int_eq(c.attempts, 6);

	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE response_id IN ('a1', 'b1', 'd1', 'g1')", 0);
	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE customer_id = 'H'", 0);
	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE response_id IN ('c1', 'e1', 'f1', 'g2', 'q1')", 5);
	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE customer_id = 'I'", KEPT_BETWEEN);
	ASSERT_COUNT("SELECT group_concat(id) = '3,6,9' FROM (SELECT id FROM callbacks ORDER BY id)", 1);
	ASSERT_COUNT("SELECT count(*) FROM improvements WHERE callback_id IN (2, 4)", 0);
	ASSERT_COUNT("SELECT count(*) FROM improvements", 3);
	ASSERT_COUNT("SELECT count(*) FROM callback_events", 3);
	ASSERT_COUNT(
	        "SELECT group_concat(id) = 'C,D,E,F,G,I,Q\"uote' FROM (SELECT id FROM customers ORDER BY id)",
	        1);
	ASSERT_COUNT(
	        "SELECT do_not_call = 1 AND coalesce(name, phone, email, language) IS NULL FROM customers "
	        "WHERE id = 'D'",
	        1);
	ASSERT_COUNT("SELECT count(*) FROM customers WHERE id <> 'D' AND name IS NULL", 0);
	ASSERT_COUNT("SELECT count(*) FROM events", 4);
	ASSERT_COUNT("SELECT count(*) FROM deliveries", 8);
	ASSERT_COUNT("SELECT count(*) FROM attempts", 4);

	/* Nothing is left to purge. */
	ck_assert_int_eq(purge_total(CUTOFF, NULL, &c), 0);
	ck_assert(purge_counts_zero(&c));
}
END_TEST

/* A purge asked to stop before it began deletes nothing. */
START_TEST(purge_stops_when_asked)
{
	atomic_bool stop = true;
	struct purge_counts c;
	ck_assert_int_eq(purge_total(CUTOFF, &stop, &c), 0);
	ck_assert(purge_counts_zero(&c));
	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE customer_id = 'H'", MANY_OLD);
}
END_TEST

struct erase_job {
	const char *id, *id_json;
	struct purge_counts counts;
};

static int apply_erase(struct db_conn *conn, void *arg)
{
	struct erase_job *job = arg;
	return store_erase_customer(conn, job->id, job->id_json, &job->counts);
}

START_TEST(erase_leaves_nothing_about_the_customer)
{
	struct erase_job job = { .id = "B", .id_json = "\"B\"" };
	ck_assert_int_eq(db_write_sync(db, apply_erase, &job), 0);
	ck_assert_int_eq(job.counts.surveys, 1);
	ck_assert_int_eq(job.counts.callbacks, 1);
	ck_assert_int_eq(job.counts.improvements, 1);
	ck_assert_int_eq(job.counts.callback_events, 1);
	ck_assert_int_eq(job.counts.customers, 1);
	ck_assert_int_eq(job.counts.events, 3); /* two about B, and the digest that quotes B */
	ck_assert_int_eq(job.counts.deliveries, 6);
	ck_assert_int_eq(job.counts.attempts, 4);
	ASSERT_COUNT("SELECT count(*) FROM surveys WHERE customer_id = 'B'", 0);
	ASSERT_COUNT("SELECT count(*) FROM callbacks WHERE customer_id = 'B'", 0);
	ASSERT_COUNT("SELECT count(*) FROM callback_events WHERE customer_id = 'B'", 0);
	ASSERT_COUNT("SELECT count(*) FROM improvements WHERE callback_id = 2", 0);
	ASSERT_COUNT("SELECT count(*) FROM customers WHERE id = 'B'", 0);
	ASSERT_COUNT("SELECT count(*) FROM events WHERE payload LIKE '%\"B\"%'", 0);
	ASSERT_COUNT("SELECT count(*) FROM deliveries WHERE event_id NOT IN (SELECT id FROM events)", 0);
	ASSERT_COUNT("SELECT count(*) FROM attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)", 0);
	ASSERT_COUNT("SELECT count(*) FROM events WHERE payload LIKE '%Words of B%'", 0);
	/* Everyone else keeps everything, the digest that quotes E too. */
	ASSERT_COUNT("SELECT count(*) FROM events", 4);
	ASSERT_COUNT("SELECT count(*) FROM events WHERE payload LIKE '%Words of E%'", 1);
	ASSERT_COUNT("SELECT count(*) FROM surveys", 8 - 1 + MANY_OLD + KEPT_BETWEEN + 1); /* b1 went */
	ASSERT_COUNT("SELECT count(*) FROM customers", 9);

	/* An id with a quote is found in the payloads, which escape it. */
	job = (struct erase_job){ .id = "Q\"uote", .id_json = "\"Q\\\"uote\"" };
	ck_assert_int_eq(db_write_sync(db, apply_erase, &job), 0);
	ck_assert_int_eq(job.counts.events, 1);
	ck_assert_int_eq(job.counts.surveys, 1);
	ck_assert_int_eq(job.counts.customers, 1);

	/* Again: nothing is left about B. */
	job = (struct erase_job){ .id = "B", .id_json = "\"B\"" };
	ck_assert_int_eq(db_write_sync(db, apply_erase, &job), 0);
	ck_assert(purge_counts_zero(&job.counts));
}
END_TEST

/* The highest id of table, read now. */
static int64_t top_id(const char *table)
{
	char *query = sqlite3_mprintf("SELECT max(id) FROM %s", table);
	int64_t id = count(query);
	sqlite3_free(query);
	return id;
}

/* The highest id of each table, or the ids of one new row of each. */
struct tops {
	int64_t survey, callback, event, improvement;
};

/* A new answer (response_id), callback, event and improvement, through the inserts npsd
 * runs, and the ids they took. */
struct new_ids {
	const char *response_id;
	struct tops got;
};

static int insert_one_of_each(struct db_conn *conn, void *arg)
{
	struct new_ids *ids = arg;
	struct survey_input in = { .response_id = ids->response_id, .customer_id = "E", .touchpoint = "claim",
		                   .score = 3, .answered_at = NOW, .consent = true };
	struct tops *got = &ids->got;
	int r = store_callback_insert(conn, "E", 3, "claim", NOW, NOW, 3, NOW, NOW, &got->callback);
	if (r == 0)
		r = store_survey_insert(conn, &in, "s", NULL, NOW, got->callback, &got->survey);
	if (r == 0)
		r = store_event_insert(conn, "survey.received", "{}", NOW, &got->event);
	if (r == 0)
		r = store_improvement_add(conn, got->callback, "claim", "process", "faster", NOW);
	got->improvement = sqlite3_last_insert_rowid(db_handle(conn));
	return r;
}

/* The same, then a failure: the write rolls back, what the inserts took with it. */
static int insert_one_of_each_and_fail(struct db_conn *conn, void *arg)
{
	int r = insert_one_of_each(conn, arg);
	return r < 0 ? r : -EIO;
}

static struct tops tops_now(void)
{
	return (struct tops){ top_id("surveys"), top_id("callbacks"), top_id("events"), top_id("improvements") };
}

/* The deletes took every table's newest row: each highest id is lower than before. */
static void assert_tops_lowered(struct tops before)
{
	struct tops after = tops_now();
	ck_assert_int_lt(after.survey, before.survey);
	ck_assert_int_lt(after.callback, before.callback);
	ck_assert_int_lt(after.event, before.event);
	ck_assert_int_lt(after.improvement, before.improvement);
}

/* Each new row took the id right after the one in last. */
static void assert_ids_follow(struct tops got, struct tops last)
{
	ck_assert_int_eq(got.survey, last.survey + 1);
	ck_assert_int_eq(got.callback, last.callback + 1);
	ck_assert_int_eq(got.event, last.event + 1);
	ck_assert_int_eq(got.improvement, last.improvement + 1);
}

/* Each table's newest row is Z's: erased, its ids are not handed out again, not even by an
 * insert that is rolled back, and once past them ids go on one by one. */
START_TEST(ids_erased_at_the_top_are_not_handed_out_again)
{
	customer("Z", false, 0);
	callback(100, "Z", "done", NEW);
	survey("z1", "Z", NEW, 100);
	event("Z", NEW);
	run_sql();
	struct tops before = tops_now();
	ck_assert_int_eq(before.callback, 100);
	ASSERT_COUNT("SELECT customer_id = 'Z' FROM surveys ORDER BY id DESC LIMIT 1", 1);
	ASSERT_COUNT("SELECT callback_id = 100 FROM improvements ORDER BY id DESC LIMIT 1", 1);
	struct erase_job job = { .id = "Z", .id_json = "\"Z\"" };
	ck_assert_int_eq(db_write_sync(db, apply_erase, &job), 0);
	assert_tops_lowered(before);
	ASSERT_COUNT("SELECT count(*) FROM id_floors", 4);

	struct new_ids failed = { .response_id = "after-0" };
	ck_assert_int_eq(db_write_sync(db, insert_one_of_each_and_fail, &failed), -EIO);
	ASSERT_COUNT("SELECT count(*) FROM id_floors", 4);
	struct new_ids ids = { .response_id = "after-1" };
	ck_assert_int_eq(db_write_sync(db, insert_one_of_each, &ids), 0);
	assert_ids_follow(ids.got, before);
	ck_assert_int_eq(ids.got.callback, 101);
	/* Past them now: the notes are gone, and inserts look into an empty table again. */
	ASSERT_COUNT("SELECT count(*) FROM id_floors", 0);
	struct new_ids next = { .response_id = "after-2" };
	ck_assert_int_eq(db_write_sync(db, insert_one_of_each, &next), 0);
	assert_ids_follow(next.got, ids.got);
}
END_TEST

/* A purge that takes every row up to the newest hands none of their ids out again; one that
 * takes no table's newest notes nothing, and a note a table has passed is only dropped. */
START_TEST(ids_purged_at_the_top_are_not_handed_out_again)
{
	struct purge_counts c;
	ck_assert_int_eq(purge_total(OLD - 200000, NULL, &c), 0);
	ck_assert(purge_counts_zero(&c));
	ASSERT_COUNT("SELECT count(*) FROM id_floors", 0);

	callback(50, "B", "done", OLD); /* the newest callback and improvement, old enough to go */
	run_sql();
	struct tops before = tops_now();
	ck_assert_int_eq(before.callback, 50);
	ck_assert_int_eq(purge_total(NEW + 1, NULL, &c), 0);
	assert_tops_lowered(before);
	struct new_ids ids = { .response_id = "after-1" };
	ck_assert_int_eq(db_write_sync(db, insert_one_of_each, &ids), 0);
	assert_ids_follow(ids.got, before);
	ck_assert_int_eq(ids.got.callback, 51);

	sql("INSERT INTO id_floors (name, max_id) VALUES ('surveys', 1)");
	run_sql();
	struct new_ids next = { .response_id = "after-2" };
	ck_assert_int_eq(db_write_sync(db, insert_one_of_each, &next), 0);
	ck_assert_int_eq(next.got.survey, ids.got.survey + 1);
	ASSERT_COUNT("SELECT count(*) FROM id_floors", 0);
}
END_TEST

/* Whether the database file holds text anywhere, in a page in use or a freed one. */
static bool file_has(const char *text)
{
	size_t len = 0;
	char *bytes = read_all(path, &len);
	ck_assert_ptr_nonnull(bytes);
	bool found = memmem(bytes, len, text, strlen(text)) != NULL;
	free(bytes);
	return found;
}

static int read_secure_delete(struct db_conn *conn, void *arg)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), "PRAGMA secure_delete", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	*(int *)arg = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Upstream SQLite leaves what a delete frees readable in the file (secure_delete is off
 * unless it is built with SQLITE_SECURE_DELETE, as Debian's is): a purge turns it on for
 * its own deletes, so the words of the rows it took are nowhere in the file once the WAL is
 * copied in, and puts the connection's own setting back for the writes after it. */
START_TEST(purge_zeroes_what_it_deletes_and_keeps_the_setting)
{
	sql("PRAGMA secure_delete = OFF");
	sql("INSERT INTO customers (id, name, phone, email, language, created_at, updated_at) VALUES "
	    "('Z', 'Zora Purged-5e1d', '+31655501234', 'zora.5e1d@example.nl', 'nl', 0, 0)");
	sql("INSERT INTO surveys (response_id, source, customer_id, touchpoint, score, comment, "
	    "answered_at, received_at, consent) VALUES ('z1', 's', 'Z', 'claim', 2, 'comment-5e1d of Z', "
	    "%lld, %lld, 1)",
	    (long long)OLD, (long long)OLD);
	run_sql();
	static const char *const gone[] = { "Zora Purged-5e1d", "+31655501234", "zora.5e1d@example.nl",
		                            "comment-5e1d of Z" };
	ck_assert_int_eq(db_wal_truncate(db, 1000), 0);
	for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
		ck_assert_msg(file_has(gone[i]), "\"%s\" is not in the file before the purge: the search is blind",
		              gone[i]);

	struct purge_counts c;
	ck_assert_int_eq(purge_total(CUTOFF, NULL, &c), 0);
	ASSERT_COUNT("SELECT count(*) FROM customers WHERE id = 'Z'", 0);
	ck_assert_int_eq(db_wal_truncate(db, 1000), 0);
	for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
		ck_assert_msg(!file_has(gone[i]), "\"%s\" is still in the file after the purge", gone[i]);
	ck_assert_msg(file_has("Name of E"), "a customer kept is not in the file: the search is blind");
	int on = -1;
	ck_assert_int_eq(db_write_sync(db, read_secure_delete, &on), 0);
	ck_assert_int_eq(on, 0);
}
END_TEST

static Suite *retention_suite(void)
{
	Suite *s = suite_create("retention");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, purge_keeps_what_is_owed_or_new);
	tcase_add_test(tc, purge_stops_when_asked);
	tcase_add_test(tc, erase_leaves_nothing_about_the_customer);
	tcase_add_test(tc, ids_erased_at_the_top_are_not_handed_out_again);
	tcase_add_test(tc, ids_purged_at_the_top_are_not_handed_out_again);
	tcase_add_test(tc, purge_zeroes_what_it_deletes_and_keeps_the_setting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(retention_suite());
}
