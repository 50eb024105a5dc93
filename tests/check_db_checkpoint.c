/* Checkpoints beside the writer: the WAL must still start over while writes never pause. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "npsd/db_checkpoint.h"
#include "npsd/db_vfs.h"
#include "npsd/log.h"

#include "testutil.h"

static char dir[64];
static char path[128];
static sqlite3 *writer;

static void exec_ok(sqlite3 *h, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

/* A database in WAL mode with small pages (so that many frames cost little disk), and a
 * connection standing in for npsd's writer. */
static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/npsd-check-ckpt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/t.db", dir);
	ck_assert_int_eq(sqlite3_open_v2(path, &writer, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	                                 db_vfs_register() == 0 ? DB_VFS_NAME : NULL),
	                 SQLITE_OK);
	sqlite3_busy_timeout(writer, 5000); /* as npsd's writer */
	exec_ok(writer, "PRAGMA page_size = 512; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
	                "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)");
}

static void teardown(void)
{
	sqlite3_close(writer);
	remove_db_folder(dir, path);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* As npsd's writer does under load: the next transaction begins right after each COMMIT,
 * so a background checkpoint alone is always a few frames behind when it does, and SQLite
 * would never start the WAL over. The writer's hook finishing the pass is what lets it. */
START_TEST(the_wal_starts_over_under_continuous_writes)
{
	struct db_checkpointer *c = NULL;
	char *error = NULL;
	ck_assert_int_eq(db_checkpointer_start(path, 200, &c, &error), 0);
	ck_assert_ptr_null(error);
	sqlite3_wal_hook(writer, db_checkpointer_wal_hook, c);
	sqlite3_stmt *insert;
	ck_assert_int_eq(sqlite3_prepare_v2(writer, "INSERT INTO t (b) VALUES (zeroblob(300))", -1, &insert, NULL),
	                 SQLITE_OK);
	struct db_checkpoint_stats stats = { 0 };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long commits = 0;
	while (stats.wal_restarts < 10 && seconds_since(&t0) < 20) {
		exec_ok(writer, "BEGIN IMMEDIATE");
		for (int i = 0; i < 4; i++) {
			ck_assert_int_eq(sqlite3_step(insert), SQLITE_DONE);
			sqlite3_reset(insert);
		}
		exec_ok(writer, "COMMIT");
		commits++;
		db_checkpointer_stats(c, &stats);
	}
	sqlite3_finalize(insert);
	ck_assert_msg(stats.wal_restarts >= 10, "the WAL started over %llu times in %ld commits",
	              (unsigned long long)stats.wal_restarts, commits);
	ck_assert_uint_ge(stats.runs, 1);
	ck_assert_uint_ge(stats.finishes, 1);
	/* What was copied is in the database file itself. */
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_size, 200 * 512);
	sqlite3_wal_hook(writer, NULL, NULL);
	db_checkpointer_stop(&c);
	ck_assert_ptr_null(c);
	db_checkpointer_stop(&c); /* a no-op, as is NULL */
	db_checkpointer_stop(NULL);
}
END_TEST

/* Below the limit nothing is copied: a small WAL is left alone. */
START_TEST(a_small_wal_is_left_alone)
{
	struct db_checkpointer *c = NULL;
	char *error = NULL;
	ck_assert_int_eq(db_checkpointer_start(path, 100000, &c, &error), 0);
	sqlite3_wal_hook(writer, db_checkpointer_wal_hook, c);
	for (int i = 0; i < 50; i++)
		exec_ok(writer, "INSERT INTO t (b) VALUES (zeroblob(300))");
	usleep(100 * 1000);
	struct db_checkpoint_stats stats;
	db_checkpointer_stats(c, &stats);
	ck_assert_uint_eq(stats.runs, 0);
	ck_assert_uint_eq(stats.finishes, 0);
	sqlite3_wal_hook(writer, NULL, NULL);
	db_checkpointer_stop(&c);
}
END_TEST

START_TEST(start_reports_a_missing_database)
{
	struct db_checkpointer *c = NULL;
	char *error = NULL;
	char missing[160];
	snprintf(missing, sizeof missing, "%s/none/x.db", dir);
	ck_assert_int_lt(db_checkpointer_start(missing, 100, &c, &error), 0);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(error);
	ck_assert_ptr_nonnull(strstr(error, missing));
	free(error);
}
END_TEST

int main(void)
{
	log_set_level("warn");
	Suite *s = suite_create("db_checkpoint");
	TCase *tc = tcase_create("checkpointer");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, the_wal_starts_over_under_continuous_writes);
	tcase_add_test(tc, a_small_wal_is_left_alone);
	tcase_add_test(tc, start_reports_a_missing_database);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
