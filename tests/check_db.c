/* The writer: group commit with a savepoint per write, isolation of failures, migrations. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/migrations.h"
#include "npsd/outbox.h"
#include "npsd/store.h"
#include "npsd/surveys.h"
#include "npsd/webhooks.h"

#include "testutil.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/npsd-check-db-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/t.db", dir);
}

static void teardown(void)
{
	remove_db_folder(dir, path);
}

struct key_write {
	struct db_write w;
	int n;
	int runs; /* how often the writer ran it */
	bool fail;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	int *done;
};

/* Inserts a key, then fails on purpose when asked: its row must vanish, no other. */
static int insert_key(struct db_conn *conn, void *arg)
{
	struct key_write *kw = arg;
	char name[32];
	uint8_t hash[TOKEN_HASH_LEN] = { 0 };
	snprintf(name, sizeof name, "k%d", kw->n);
	memcpy(hash, &kw->n, sizeof kw->n);
	int64_t id;
	kw->runs++;
	int r = store_key_insert(conn, name, ROLE_AGENT, hash, 1, &id);
	if (r < 0)
		return r;
	return kw->fail ? -EINVAL : 0;
}

static void key_done(struct db_write *w)
{
	struct key_write *kw = (struct key_write *)w;
	pthread_mutex_lock(kw->lock);
	(*kw->done)++;
	pthread_cond_signal(kw->cond);
	pthread_mutex_unlock(kw->lock);
}

/* Submits key write n (every third one fails on purpose), counted in *done when it ends;
 * replayable or not (db.h). */
static void submit_key(struct npsd_db *db, struct key_write *kw, int n, bool replayable, pthread_mutex_t *lock,
                       pthread_cond_t *cond, int *done)
{
	*kw = (struct key_write){ .w = { .apply = insert_key, .done = key_done, .arg = kw, .replayable = replayable },
		                  .n = n,
		                  .fail = n % 3 == 0,
		                  .lock = lock,
		                  .cond = cond,
		                  .done = done };
	db_submit(db, &kw->w);
}

static int count_key(const struct key_row *row, void *arg)
{
	int *count = arg;
	int n;
	ck_assert_int_eq(sscanf(row->name, "k%d", &n), 1);
	ck_assert_msg(n % 3 != 0, "the failed write k%d was kept", n);
	(*count)++;
	return 0;
}

/* Loop 0: every write in a savepoint of its own; 1: all replayable; 2: every other one. */
START_TEST(failed_writes_roll_back_alone)
{
	enum { N = 300 };
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	int done = 0;
	struct key_write *writes = calloc(N, sizeof *writes);
	for (int i = 0; i < N; i++)
		submit_key(db, &writes[i], i, _i == 1 || (_i == 2 && i % 2), &lock, &cond, &done);
	pthread_mutex_lock(&lock);
	while (done < N)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(writes[i].w.result, i % 3 == 0 ? -EINVAL : 0);
		if (_i == 0)
			ck_assert_int_eq(writes[i].runs, 1);
	}
	struct db_write_stats ws;
	db_write_stats(db, &ws);
	ck_assert_uint_eq(ws.writes, N);
	ck_assert_uint_lt(ws.batches, N); /* they were grouped */
	/* Every write waited somewhere: its batch at least, and the sync that acknowledged it. */
	ck_assert_uint_gt(ws.batch_ns, 0);
	ck_assert_uint_gt(ws.sync_ns, 0);
	int count = 0;
	struct db_conn *conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, count_key, &count), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(count, N - N / 3);
	free(writes);
	db_close(&db);
	ck_assert_ptr_null(db);
}
END_TEST

/* A write whose done() holds the sync thread until the test lets it go: meanwhile the
 * commit it belongs to is not durable yet, as if its fdatasync were slow. */
struct held_write {
	struct key_write kw; /* first: the writer hands back its db_write */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, released;
};

static void held_done(struct db_write *w)
{
	struct held_write *h = (struct held_write *)w;
	pthread_mutex_lock(&h->lock);
	h->entered = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->released)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	key_done(w);
}

/* Loop 0: each write in a savepoint of its own; 1: replayable, so the writes of the one
 * open transaction share savepoints and those before a failure run again. */
START_TEST(writes_during_a_sync_join_one_commit_and_fail_alone)
{
	enum { N = 12 };
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	int held_count = 0, done = 0;
	struct held_write held = {
		.kw = { .w = { .apply = insert_key, .done = held_done, .arg = &held.kw },
		        .n = 1000,
		        .lock = &lock,
		        .cond = &cond,
		        .done = &held_count },
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	db_submit(db, &held.kw.w);
	pthread_mutex_lock(&held.lock);
	while (!held.entered)
		pthread_cond_wait(&held.cond, &held.lock);
	pthread_mutex_unlock(&held.lock);
	struct db_write_stats before, during, after;
	db_write_stats(db, &before);

	/* The sync thread is busy: these are taken into one open transaction, not committed. */
	struct key_write writes[N];
	for (int i = 0; i < N; i++) {
		submit_key(db, &writes[i], i, _i == 1, &lock, &cond, &done);
		usleep(2000);
	}
	usleep(100 * 1000);
	db_write_stats(db, &during);
	ck_assert_uint_eq(during.batches, before.batches);
	pthread_mutex_lock(&lock);
	ck_assert_int_eq(done, 0);
	pthread_mutex_unlock(&lock);

	pthread_mutex_lock(&held.lock);
	held.released = true;
	pthread_cond_broadcast(&held.cond);
	pthread_mutex_unlock(&held.lock);
	pthread_mutex_lock(&lock);
	while (done < N || held_count < 1)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	db_write_stats(db, &after);
	ck_assert_uint_eq(after.batches, before.batches + 1);
	ck_assert_uint_eq(after.writes, before.writes + N);
	ck_assert_int_eq(held.kw.w.result, 0);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(writes[i].w.result, i % 3 == 0 ? -EINVAL : 0);
		/* Replayable: 0 fails in its run and runs alone; 1, 2 and 3 share the next run,
		 * which 3 fails, so all three run again; ... 10 and 11 follow the last failure. */
		int runs = _i == 0 || i > 9 ? 1 : 2;
		ck_assert_msg(writes[i].runs == runs, "write %d ran %d times, want %d", i, writes[i].runs, runs);
	}
	int count = 0;
	struct db_conn *conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, count_key, &count), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(count, 1 + N - N / 3);
	db_close(&db);
}
END_TEST

/* Inserts `n` keys with names long enough to take pages of their own. */
struct bulk {
	int first, n;
};

static int insert_bulk(struct db_conn *conn, void *arg)
{
	const struct bulk *b = arg;
	for (int i = b->first; i < b->first + b->n; i++) {
		char name[2048];
		snprintf(name, sizeof name, "bulk%06d-%01900d", i, 0);
		uint8_t hash[TOKEN_HASH_LEN] = { 0 };
		memcpy(hash, &i, sizeof i);
		hash[8] = 0xb0;
		int64_t id;
		int r = store_key_insert(conn, name, ROLE_AGENT, hash, 1, &id);
		if (r < 0)
			return r;
	}
	return 0;
}

static int count_rows(const struct key_row *row, void *arg)
{
	(void)row;
	(*(int *)arg)++;
	return 0;
}

static int integrity(struct db_conn *conn, void *arg)
{
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), "PRAGMA integrity_check", -1, &st, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	snprintf(arg, 256, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return 0;
}

/* The file size limit stands in for a full disk: files may grow 64 KiB past the WAL's size
 * now, and a write past that fails with EFBIG (SIGXFSZ ignored). */
static void disk_full_soon(void)
{
	signal(SIGXFSZ, SIG_IGN);
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", path);
	struct stat st;
	ck_assert_int_eq(stat(wal, &st), 0);
	struct rlimit limit = { .rlim_cur = (rlim_t)st.st_size + 64 * 1024, .rlim_max = RLIM_INFINITY };
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
}

static void disk_space_again(void)
{
	struct rlimit limit = { .rlim_cur = RLIM_INFINITY, .rlim_max = RLIM_INFINITY };
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
}

/* A disk that fills up mid-commit: the write fails, nothing of it is kept, and the database
 * stays whole for the writes after it (the WAL buffer must not publish frames that never
 * reached the file). */
START_TEST(a_full_disk_fails_the_write_and_keeps_the_database_whole)
{
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	struct bulk first = { 0, 50 };
	ck_assert_int_eq(db_write_sync(db, insert_bulk, &first), 0);
	disk_full_soon();
	struct bulk too_much = { 1000, 400 }; /* ~800 KiB of WAL: past the limit */
	ck_assert_int_lt(db_write_sync(db, insert_bulk, &too_much), 0);
	disk_space_again();
	struct bulk after = { 2000, 20 };
	ck_assert_int_eq(db_write_sync(db, insert_bulk, &after), 0);
	int rows = 0;
	struct db_conn *conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, count_rows, &rows), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(rows, 50 + 20);
	char verdict[256] = "";
	ck_assert_int_eq(db_write_sync(db, integrity, verdict), 0);
	ck_assert_str_eq(verdict, "ok");
	db_close(&db);
	/* And after a restart, from the files alone. */
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	rows = 0;
	conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, count_rows, &rows), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(rows, 50 + 20);
	db_close(&db);
}
END_TEST

/* Subscribes a standard webhook to the events named in events (a JSON array, taken over)
 * and has the writer's cache read it again. */
static int subscribe(struct db_conn *conn, json_t *events)
{
	struct webhook_input in = { .url = "http://hooks.example/nps", .format = "standard", .active = -1,
		                    .events_json = events };
	size_t i;
	json_t *e;
	json_array_foreach (events, i, e)
		in.events |= webhook_event_bit(json_string_value(e));
	int64_t id;
	int r = store_webhook_insert(conn, &in, "whsec_dGVzdA==", 1, &id);
	json_decref(events);
	if (r == 0)
		outbox_webhooks_changed();
	return r;
}

/* A manager's new webhook, then an answer it hears of, in a write that the full disk fails. */
static int webhook_then_too_much(struct db_conn *conn, void *arg)
{
	(void)arg;
	int r = subscribe(conn, json_pack("[s]", "survey.received"));
	if (r < 0)
		return r;
	r = outbox_emit(conn, "survey.received", json_object(), NO_FACTS, 1);
	if (r < 0)
		return r;
	struct bulk too_much = { 1000, 400 };
	return insert_bulk(conn, &too_much);
}

static int answer_received(struct db_conn *conn, void *arg)
{
	(void)arg;
	return outbox_emit(conn, "survey.received", json_object(), NO_FACTS, 2);
}

/* The one integer a query answers. */
static int query_int(struct db_conn *conn, const char *sql)
{
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int count_outbox(struct db_conn *conn, void *arg)
{
	*(int *)arg = query_int(conn, "SELECT (SELECT count(*) FROM webhooks) + (SELECT count(*) FROM events) "
	                              "+ (SELECT count(*) FROM deliveries)");
	return 0;
}

/* The writer caches the webhook subscriptions; a write that failed took its new webhook
 * with it, so the answers after it must not be fanned out to a webhook that never was. */
START_TEST(subscriptions_of_a_failed_write_are_forgotten)
{
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	struct bulk first = { 0, 50 };
	ck_assert_int_eq(db_write_sync(db, insert_bulk, &first), 0);
	disk_full_soon();
	ck_assert_int_lt(db_write_sync(db, webhook_then_too_much, NULL), 0);
	disk_space_again();
	ck_assert_int_eq(db_write_sync(db, answer_received, NULL), 0);
	int rows = -1;
	ck_assert_int_eq(db_write_sync(db, count_outbox, &rows), 0);
	ck_assert_msg(rows == 0, "%d webhook, event and delivery rows after the failed write, want none", rows);
	db_close(&db);
	outbox_webhooks_changed(); /* frees the cache */
}
END_TEST

struct parts {
	int kept;
};

static int part_ok(struct db_conn *conn, void *arg)
{
	(void)arg;
	uint8_t hash[TOKEN_HASH_LEN] = { 1 };
	int64_t id;
	return store_key_insert(conn, "kept", ROLE_ADMIN, hash, 1, &id);
}

static int part_bad(struct db_conn *conn, void *arg)
{
	(void)arg;
	uint8_t hash[TOKEN_HASH_LEN] = { 2 };
	int64_t id;
	store_key_insert(conn, "dropped", ROLE_ADMIN, hash, 1, &id);
	return -EINVAL;
}

static int two_parts(struct db_conn *conn, void *arg)
{
	(void)arg;
	ck_assert_int_eq(db_isolated(conn, part_ok, NULL), 0);
	ck_assert_int_eq(db_isolated(conn, part_bad, NULL), -EINVAL);
	return 0;
}

static int names(const struct key_row *row, void *arg)
{
	ck_assert_str_eq(row->name, "kept");
	(*(int *)arg)++;
	return 0;
}

START_TEST(isolated_parts_fail_alone)
{
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	ck_assert_int_eq(db_write_sync(db, two_parts, NULL), 0);
	int n = 0;
	struct db_conn *conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, names, &n), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(n, 1);
	db_close(&db);
}
END_TEST

static int read_version(struct db_conn *conn, void *arg)
{
	*(int *)arg = query_int(conn, "PRAGMA user_version");
	return 0;
}

START_TEST(migrations_apply_once_and_data_survives)
{
	struct npsd_db *db;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	ck_assert_int_eq(db_write_sync(db, part_ok, NULL), 0);
	db_close(&db);
	ck_assert_int_eq(db_open(path, &db, &error), 0); /* a second start: nothing to apply */
	int version = 0, n = 0;
	ck_assert_int_eq(db_write_sync(db, read_version, &version), 0);
	ck_assert_int_eq(version, migrations[migrations_count - 1].version);
	struct db_conn *conn = db_reader(db);
	ck_assert_int_eq(store_key_each(conn, false, names, &n), 0);
	db_reader_put(db, conn);
	ck_assert_int_eq(n, 1);
	db_close(&db);
}
END_TEST

/* A database of the step before 0009 (status CHECKs as IN lists), with rows in both tables
 * 0009 rebuilds and a deliveries counter past the highest id left. */
static void make_database_before_0009(void)
{
	sqlite3 *h = NULL;
	ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
	size_t i = 0;
	for (; i < migrations_count && migrations[i].version < 9; i++)
		ck_assert_msg(sqlite3_exec(h, migrations[i].sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s",
		              migrations[i].name, sqlite3_errmsg(h));
	ck_assert_uint_lt(i, migrations_count);
	ck_assert_int_eq(migrations[i].version, 9);
	char version[64];
	snprintf(version, sizeof version, "PRAGMA user_version = %d", migrations[i - 1].version);
	const char *rows =
	        "INSERT INTO customers (id, created_at, updated_at) VALUES ('C-1', 1, 1);"
	        "INSERT INTO callbacks (id, customer_id, status, priority, touchpoint, due_at, sla_deadline,"
	        " max_attempts, created_at, released_key_id, released_at, answered_at) VALUES"
	        " (7, 'C-1', 'claimed', 3, 'claim', 10, 20, 3, 5, 4, 6, 2),"
	        " (8, 'C-1', 'done', 6, 'renewal', 11, 21, 3, 5, NULL, NULL, 3);"
	        "INSERT INTO events (id, type, payload, created_at) VALUES (1, 'survey.received', '{}', 1);"
	        "INSERT INTO webhooks (id, url, format, events, secret, created_at, updated_at) VALUES"
	        " (1, 'https://example.com/h', 'standard', '[]', 'whsec_x', 1, 1);"
	        "INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at, created_at,"
	        " updated_at) VALUES (40, 1, 1, 'delivered', 1, 1, 1), (41, 1, 1, 'pending', 1, 1, 1);"
	        "UPDATE sqlite_sequence SET seq = 90 WHERE name = 'deliveries';";
	ck_assert_msg(sqlite3_exec(h, version, NULL, NULL, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(h));
	ck_assert_msg(sqlite3_exec(h, rows, NULL, NULL, NULL) == SQLITE_OK, "%s", sqlite3_errmsg(h));
	sqlite3_close(h);
}

static int try_sql(struct db_conn *conn, void *arg)
{
	const char *const *sql = arg;
	return sqlite3_exec(db_handle(conn), *sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EINVAL;
}

/* 0 when the writer ran sql, -EINVAL when SQLite refused it. */
static int writer_sql(struct npsd_db *db, const char *sql)
{
	return db_write_sync(db, try_sql, &sql);
}

static int read_int(struct db_conn *conn, void *arg)
{
	struct {
		const char *sql;
		long long value;
	} *q = arg;
	q->value = query_int(conn, q->sql);
	return 0;
}

static long long writer_int(struct npsd_db *db, const char *sql)
{
	struct {
		const char *sql;
		long long value;
	} q = { sql, -1 };
	ck_assert_int_eq(db_write_sync(db, read_int, &q), 0);
	return q.value;
}

/* 0009 rebuilds callbacks and deliveries for their CHECKs: every row and column stays, the
 * rule still holds, the indexes are back, and a new delivery's id comes after the counter,
 * not after the highest id left. */
START_TEST(checks_rebuilt_keep_rows_rules_and_counter)
{
	make_database_before_0009();
	struct npsd_db *db = NULL;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM callbacks WHERE id = 7 AND status = 'claimed' "
	                                "AND priority = 3 AND touchpoint = 'claim' AND released_key_id = 4 "
	                                "AND released_at = 6 AND answered_at = 2 AND created_at = 5"),
	                 1);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM callbacks WHERE id = 8 AND status = 'done'"),
	                 1);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM deliveries"), 2);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
	                                "(tbl_name = 'callbacks' OR tbl_name = 'deliveries')"),
	                 9);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_new'"), 0);
	ck_assert_int_eq(writer_sql(db, "UPDATE callbacks SET status = 'lost' WHERE id = 7"), -EINVAL);
	ck_assert_int_eq(writer_sql(db, "UPDATE deliveries SET status = 'sent' WHERE id = 40"), -EINVAL);
	ck_assert_int_eq(writer_sql(db, "UPDATE callbacks SET status = 'cancelled' WHERE id = 7"), 0);
	ck_assert_int_eq(writer_sql(db,
	                            "INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at, "
	                            "created_at, updated_at) VALUES (1, 1, 'failed', 1, 1, 1)"),
	                 0);
	ck_assert_int_eq(writer_int(db, "SELECT max(id) FROM deliveries"), 91);
	db_close(&db);
}
END_TEST

/* The deliveries' counts by status that /metrics shows come from a table the triggers of
 * 0012 keep: seeded from the rows there were, then moved by every insert, change of status
 * and delete, they stay what counting the rows says. */
static int read_counts(struct db_conn *conn, void *arg)
{
	int64_t *c = arg;
	return store_delivery_counts(conn, &c[0], &c[1], &c[2]);
}

START_TEST(delivery_counts_follow_the_rows)
{
	make_database_before_0009(); /* one delivered, one pending */
	struct npsd_db *db = NULL;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	int64_t c[3] = { -1, -1, -1 };
	ck_assert_int_eq(db_write_sync(db, read_counts, c), 0);
	ck_assert(c[0] == 1 && c[1] == 1 && c[2] == 0);
	ck_assert_int_eq(writer_sql(db, "INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at,"
	                                " created_at, updated_at) VALUES (1, 1, 'pending', 1, 1, 1),"
	                                " (1, 1, 'pending', 1, 1, 1), (1, 1, 'failed', 1, 1, 1)"),
	                 0);
	ck_assert_int_eq(writer_sql(db, "UPDATE deliveries SET status = 'delivered' WHERE id = 41"), 0);
	ck_assert_int_eq(writer_sql(db, "UPDATE deliveries SET attempts = 2 WHERE status = 'pending'"), 0);
	ck_assert_int_eq(writer_sql(db, "DELETE FROM deliveries WHERE id = 40"), 0);
	/* A write that fails takes its counts back with it. */
	ck_assert_int_eq(writer_sql(db, "INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at,"
	                                " created_at, updated_at) VALUES (1, 1, 'failed', 1, 1, 1), (1, 1, 'gone', 1, 1, 1)"),
	                 -EINVAL);
	ck_assert_int_eq(db_write_sync(db, read_counts, c), 0);
	static const char *const statuses[] = { "pending", "delivered", "failed" };
	for (int i = 0; i < 3; i++) {
		char sql[96];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM deliveries WHERE status = '%s'", statuses[i]);
		ck_assert_msg(c[i] == writer_int(db, sql), "%s: %lld counted, %lld rows", statuses[i], (long long)c[i],
		              writer_int(db, sql));
	}
	ck_assert(c[0] == 2 && c[1] == 1 && c[2] == 1);
	db_close(&db);
}
END_TEST


/* Stores one answer owed a callback with a webhook that hears of it: every statement ingest
 * writes with (the customer, the survey, its callback, the events and their deliveries). */
static int ingest_with_a_subscriber(struct db_conn *conn, void *arg)
{
	(void)arg;
	int r = subscribe(conn, json_pack("[s, s]", "survey.received", "callback.created"));
	if (r < 0)
		return r;
	/* From here on: the statements that ran are ingest's. */
	for (sqlite3_stmt *st = sqlite3_next_stmt(db_handle(conn), NULL); st;
	     st = sqlite3_next_stmt(db_handle(conn), st))
		sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 1);
	struct npsd_config cfg = { 0 };
	config_defaults(&cfg);
	struct ingest_item item = { .cfg = &cfg, .source = "test",
		                    .in = { .response_id = "r-1", .customer_id = "C-1", .customer_phone = "+31612345678",
		                            .touchpoint = "claim", .score = 3, .answered_at = 1000, .consent = true } };
	r = surveys_ingest(conn, &item, 1000);
	config_free(&cfg);
	ck_assert_int_eq(item.status, 201);
	ck_assert(item.has_callback);
	return r;
}

/* The write statements this connection ran since their counters were reset whose program
 * opens a temporary table:
 * what SQLite builds for a CHECK's or an index's `IN (three or more values)` each time the
 * statement runs. */
static int statements_with_temporary_tables(struct db_conn *conn, void *arg)
{
	sqlite3 *h = db_handle(conn);
	int *found = arg;
	for (sqlite3_stmt *st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st)) {
		if (sqlite3_stmt_readonly(st) || sqlite3_stmt_isexplain(st) ||
		    sqlite3_stmt_status(st, SQLITE_STMTSTATUS_RUN, 0) == 0)
			continue;
		char sql[4096];
		snprintf(sql, sizeof sql, "EXPLAIN %s", sqlite3_sql(st));
		sqlite3_stmt *explain = NULL;
		ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &explain, NULL), SQLITE_OK);
		while (sqlite3_step(explain) == SQLITE_ROW) {
			if (strcmp((const char *)sqlite3_column_text(explain, 1), "OpenEphemeral") == 0) {
				fprintf(stderr, "a temporary table per run: %s\n", sqlite3_sql(st));
				(*found)++;
				break;
			}
		}
		sqlite3_finalize(explain);
	}
	return 0;
}

/* An answer's writes cost what their rows cost: none of ingest's statements builds a table
 * for a list of values at every run (0009). */
START_TEST(ingest_builds_no_table_per_answer)
{
	struct npsd_db *db = NULL;
	char *error = NULL;
	ck_assert_int_eq(db_open(path, &db, &error), 0);
	ck_assert_int_eq(db_write_sync(db, ingest_with_a_subscriber, NULL), 0);
	ck_assert_int_eq(writer_int(db, "SELECT count(*) FROM deliveries"), 2);
	int found = 0;
	ck_assert_int_eq(db_write_sync(db, statements_with_temporary_tables, &found), 0);
	ck_assert_int_eq(found, 0);
	db_close(&db);
}
END_TEST

START_TEST(open_reports_a_bad_path)
{
	struct npsd_db *db = NULL;
	char *error = NULL;
	ck_assert_int_lt(db_open("/nonexistent-dir/x/y.db", &db, &error), 0);
	ck_assert_ptr_null(db);
	ck_assert_ptr_nonnull(error);
	free(error);
}
END_TEST

int main(void)
{
	log_set_level("warn"); /* migrations log at info; the summary is what matters here */
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("writer");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, failed_writes_roll_back_alone, 0, 3);
	tcase_add_loop_test(tc, writes_during_a_sync_join_one_commit_and_fail_alone, 0, 2);
	tcase_add_test(tc, isolated_parts_fail_alone);
	tcase_add_test(tc, a_full_disk_fails_the_write_and_keeps_the_database_whole);
	tcase_add_test(tc, subscriptions_of_a_failed_write_are_forgotten);
	tcase_add_test(tc, migrations_apply_once_and_data_survives);
	tcase_add_test(tc, checks_rebuilt_keep_rows_rules_and_counter);
	tcase_add_test(tc, delivery_counts_follow_the_rows);
	tcase_add_test(tc, ingest_builds_no_table_per_answer);
	tcase_add_test(tc, open_reports_a_bad_path);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
