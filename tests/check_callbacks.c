/* Callbacks against a real database: leases as the agents' calls see them, and the
 * scheduler thread that requeues expired ones, on the real clock. */
#include <check.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "npsd/auth.h"
#include "npsd/callbacks.h"
#include "npsd/clock.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/scheduler.h"

#include "testutil.h"

static char dir[64];
static char path[128];
static struct npsd_db *db;
static struct scheduler *sched;

static void setup(void)
{
	db = open_test_db("callbacks", dir, path);
}

static void teardown(void)
{
	scheduler_stop(&sched);
	db_close(&db);
	remove_db_folder(dir, path);
}

static int run_sql(struct db_conn *conn, void *sql)
{
	return sqlite3_exec(db_handle(conn), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* A customer and a callback for them; lease_expires_at 0 means a queued one. */
static void insert_callback(int64_t id, int64_t due_at, int64_t sla_deadline, int64_t lease_expires_at)
{
	char sql[1024];
	snprintf(
	        sql, sizeof sql,
	        "INSERT INTO customers (id, phone, created_at, updated_at) VALUES ('C-%" PRId64
	        "', '+3160000000%" PRId64 "', 0, 0);"
	        "INSERT INTO callbacks (id, customer_id, status, priority, touchpoint, due_at, sla_deadline, "
	        "max_attempts, claimed_by, claimed_key_id, lease_expires_at, created_at) VALUES (%" PRId64
	        ", 'C-%" PRId64 "', '%s', 3, 'claim', %" PRId64 ", %" PRId64 ", 3, %s, %s, NULLIF(%" PRId64
	        ", 0), 0)",
	        id, id % 10, id, id, lease_expires_at ? "claimed" : "queued", due_at, sla_deadline,
	        lease_expires_at ? "'agent'" : "NULL", lease_expires_at ? "7" : "NULL", lease_expires_at);
	ck_assert_int_eq(db_write_sync(db, run_sql, sql), 0);
}

static void status_of(int64_t id, char *buf, size_t size)
{
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), "SELECT status FROM callbacks WHERE id = ?1", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	db_reader_put(db, conn);
}

/* ---------- leases ---------- */

struct lease_call {
	const char *action; /* heartbeat, release, complete */
	int64_t key_id, now;
	int result;
};

static int call_apply(struct db_conn *conn, void *arg)
{
	struct lease_call *c = arg;
	struct npsd_config cfg = { 0 };
	config_defaults(&cfg);
	struct principal agent = { .key_id = c->key_id, .role = ROLE_AGENT };
	snprintf(agent.name, sizeof agent.name, "agent-%" PRId64, c->key_id);
	struct complete_input done = { .outcome = "reached" };
	if (strcmp(c->action, "heartbeat") == 0)
		c->result = callbacks_heartbeat(conn, &cfg, &agent, 2, c->now);
	else if (strcmp(c->action, "release") == 0)
		c->result = callbacks_release(conn, &agent, 2, c->now);
	else
		c->result = callbacks_complete(conn, &cfg, &agent, 2, &done, c->now);
	config_free(&cfg);
	return 0;
}

static int lease_call(const char *action, int64_t key_id, int64_t now)
{
	struct lease_call c = { action, key_id, now, 0 };
	ck_assert_int_eq(db_write_sync(db, call_apply, &c), 0);
	return c.result;
}

/* A lease that has run out is no claim, whether or not the scheduler has put the callback
 * back in the queue yet: its holder may not renew it, release it or record an outcome. */
START_TEST(an_expired_lease_is_no_claim)
{
	const int64_t t = 1800000000;
	insert_callback(2, t - 600, t + 3600, t); /* agent key 7's lease ends at t */
	static const char *const actions[] = { "heartbeat", "release", "complete" };
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(lease_call(actions[i], 7, t), CALLBACK_LEASE_EXPIRED);
		ck_assert_int_eq(lease_call(actions[i], 7, t + 60), CALLBACK_LEASE_EXPIRED);
		ck_assert_int_eq(lease_call(actions[i], 8, t - 1), CALLBACK_NOT_YOURS);
	}
	char status[16];
	status_of(2, status, sizeof status);
	ck_assert_str_eq(status, "claimed"); /* nothing changed it: the scheduler requeues it */
	/* A second before the end the lease holds: a heartbeat renews it from then. */
	ck_assert_int_eq(lease_call("heartbeat", 7, t - 1), 0);
	ck_assert_int_eq(lease_call("complete", 7, t + 60), 0);
	status_of(2, status, sizeof status);
	ck_assert_str_eq(status, "done");
}
END_TEST

/* ---------- the scheduler ---------- */

/* A tick that changes something commits, and its commit wakes the scheduler while it is
 * still running the tick. A claim made after that must still be seen: its lease's expiry
 * is the next deadline. (The scheduler used to wait out the sleep it had computed before
 * the claim, an hour with nothing else pending.) */
START_TEST(a_lease_taken_after_a_changing_tick_still_expires)
{
	int64_t now = clock_now();
	/* Callback 1: its SLA passed a while ago, so the first tick marks it (a change). */
	insert_callback(1, now - 100, now - 50, 0);
	ck_assert_int_eq(scheduler_start(db, &sched), 0);
	db_on_commit(db, scheduler_wake, sched);
	sleep(1); /* the first tick has run, and the wake its own commit made */

	/* Callback 2, claimed now with a lease of two seconds: the claim's commit wakes the
	 * scheduler, which must then sleep until the lease runs out, not an hour. */
	now = clock_now();
	insert_callback(2, now, now + 3600, now + 2);
	char status[16];
	status_of(2, status, sizeof status);
	ck_assert_str_eq(status, "claimed");
	for (int waited_ms = 0; waited_ms < 6000; waited_ms += 100) {
		status_of(2, status, sizeof status);
		if (strcmp(status, "queued") == 0)
			break;
		usleep(100 * 1000);
	}
	ck_assert_msg(strcmp(status, "queued") == 0, "the expired lease was not noticed: callback 2 is %s",
	              status);
	status_of(1, status, sizeof status);
	ck_assert_str_eq(status, "queued");
}
END_TEST

int main(void)
{
	log_set_level("warn");
	Suite *s = suite_create("callbacks");
	TCase *leases = tcase_create("leases");
	tcase_add_checked_fixture(leases, setup, teardown);
	tcase_add_test(leases, an_expired_lease_is_no_claim);
	suite_add_tcase(s, leases);
	TCase *tc = tcase_create("scheduler");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_lease_taken_after_a_changing_tick_still_expires);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
