/* Which periods a digest webhook is told, on a database of its own with the alerts thread's
 * look (digests_look) called at chosen times: after a time npsd was down, after a change to
 * the webhook, after it was switched off (by a person, or disabled after failures) and on
 * again, and for a digest set a moment before a period ends. Amsterdam time throughout. */
#include <check.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/digests.h"
#include "npsd/schedule.h"
#include "npsd/store.h"
#include "npsd/validate.h"
#include "npsd/webhooks.h"

#include "testutil.h"

#define HOUR INT64_C(3600)
#define MON_0700 INT64_C(1795413600) /* Monday 2026-11-23 07:00 in Amsterdam (06:00Z) */

static char dir[64];
static char path[128];
static struct npsd_db *db;
static struct npsd_config cfg;

static void setup(void)
{
	ck_assert_int_eq(schedule_set_timezone("Europe/Amsterdam"), 0);
	config_defaults(&cfg);
	db = open_test_db("digests", dir, path);
}

static void teardown(void)
{
	db_close(&db);
	remove_db_folder(dir, path);
	config_free(&cfg);
}

struct change {
	int64_t id, now;
	struct webhook_input in;
	const char *disable; /* the reason, for store_webhook_disable instead of a patch */
};

static int apply_create(struct db_conn *conn, void *arg)
{
	struct change *c = arg;
	return store_webhook_insert(conn, &c->in, "whsec_x", c->now, &c->id);
}

static int apply_change(struct db_conn *conn, void *arg)
{
	struct change *c = arg;
	if (c->disable)
		return store_webhook_disable(conn, c->id, c->disable, c->now);
	return store_webhook_update(conn, c->id, &c->in, c->now);
}

/* A daily digest at 08:00 (or hourly at :00), made at now as POST /v1/webhooks makes it. */
static int64_t create_digest(const char *kind, int64_t now)
{
	struct change c = { .now = now,
		            .in = { .url = "http://receiver.example/digest",
		                    .active = 1,
		                    .digest = kind,
		                    .digest_at = strcmp(kind, "daily") == 0 ? "08:00" : NULL } };
	ck_assert_int_eq(db_write_sync(db, apply_create, &c), 0);
	return c.id;
}

static void change(int64_t id, int64_t now, const struct webhook_input *in)
{
	struct change c = { .id = id, .now = now, .in = *in };
	ck_assert_int_eq(db_write_sync(db, apply_change, &c), 0);
}

static void disable(int64_t id, int64_t now, const char *reason)
{
	struct change c = { .id = id, .now = now, .in = { .active = -1 }, .disable = reason };
	ck_assert_int_eq(db_write_sync(db, apply_change, &c), 0);
}

/* How many digests a look at now writes, and how many periods they said were skipped. */
static int look(int64_t now, int64_t *ret_skipped)
{
	int64_t skipped = 0;
	int n = digests_look(db, &cfg, now, &skipped);
	ck_assert_int_ge(n, 0);
	if (ret_skipped)
		*ret_skipped = skipped;
	return n;
}

/* The from and to of the digests written to the webhook, oldest first, as "FROM/TO ..." */
static char *periods_told(int64_t webhook_id)
{
	static const char sql[] = "SELECT json_extract(e.payload, '$.from') || '/' || "
	                          "json_extract(e.payload, '$.to') FROM deliveries d JOIN events e ON "
	                          "e.id = d.event_id WHERE d.webhook_id = ? AND e.type = 'digest' ORDER BY d.id";
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, webhook_id);
	char *text = calloc(1, 1);
	size_t len = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		size_t n = p ? strlen(p) : 0;
		text = realloc(text, len + n + 2);
		ck_assert_ptr_nonnull(text);
		if (len)
			text[len++] = ' ';
		memcpy(text + len, p ? p : "", n);
		len += n;
		text[len] = '\0';
	}
	sqlite3_finalize(st);
	db_reader_put(db, conn);
	return text;
}

#define ASSERT_TOLD(id, want)                                                          \
	do {                                                                           \
		char *told_ = periods_told(id);                                        \
		ck_assert_msg(strcmp(told_, want) == 0, "told: %s\nwant: %s", told_, want); \
		free(told_);                                                           \
	} while (0)

/* npsd down from Monday 07:00 to Thursday 09:00; the first thing after its return, before
 * the alerts thread's first look, is a PATCH of the description (or an "active": true to a
 * webhook that is on, a client sending its whole state). Each period that ended meanwhile is
 * still told: the patch made them look switched off (periods before updated_at were taken
 * for ones that ended while the webhook was off), and only the last was told. */
START_TEST(a_patch_after_downtime_keeps_the_missed_periods)
{
	int64_t daily = create_digest("daily", MON_0700), hourly = create_digest("hourly", MON_0700);
	ck_assert_int_eq(look(MON_0700, NULL), 0);
	const int64_t back = MON_0700 + 74 * HOUR + 30; /* Thursday 09:00:30 */
	struct webhook_input described = { .active = -1, .has_description = true, .description = "claims team" },
	                     on = { .active = 1 };
	change(daily, back, &described);
	change(hourly, back, &on);
	int64_t skipped;
	ck_assert_int_eq(look(back, &skipped), 4 + 7);
	ck_assert_int_eq(skipped, 74 - 7);
	ASSERT_TOLD(daily, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-24T07:00:00Z "
	                   "2026-11-24T07:00:00Z/2026-11-25T07:00:00Z 2026-11-25T07:00:00Z/2026-11-26T07:00:00Z");
	ck_assert_int_eq(look(back + 60, NULL), 0);
}
END_TEST

/* Switched off and on again, by a person or after the receiver failed (disabled after 410 or
 * disable_after): a digest starts again with the period under way when it is switched on,
 * as a new one does. The last day that ended while it was off was told at once. */
START_TEST(switched_on_again_a_digest_starts_with_the_period_under_way)
{
	int64_t by_hand = create_digest("daily", MON_0700), gone = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700, NULL), 0);
	struct webhook_input off = { .active = 0 }, on = { .active = 1 };
	change(by_hand, MON_0700 + HOUR / 2, &off);
	disable(gone, MON_0700 + HOUR / 2, "the receiver answered 410 Gone");
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 0);
	/* Thursday 09:00:30: both switched on. */
	const int64_t back = MON_0700 + 74 * HOUR + 30;
	change(by_hand, back, &on);
	change(gone, back, &on);
	ck_assert_int_eq(look(back, NULL), 0);
	ASSERT_TOLD(by_hand, "");
	ASSERT_TOLD(gone, "");
	/* Friday 08:00:30: the day under way when they were switched on. */
	ck_assert_int_eq(look(MON_0700 + 97 * HOUR + 30, NULL), 2);
	ASSERT_TOLD(by_hand, "2026-11-26T07:00:00Z/2026-11-27T07:00:00Z");
	ASSERT_TOLD(gone, "2026-11-26T07:00:00Z/2026-11-27T07:00:00Z");
}
END_TEST

/* A digest set a moment before its period ends (or its time changed then) whose first look
 * comes after that end: its first digest is the period that was under way, as README says,
 * not the one after it. The look took the last period that ended by then for the start, and
 * the period under way was told to nobody. So after a time npsd was down right after. */
START_TEST(a_digest_set_just_before_a_period_ends_tells_that_period)
{
	const int64_t mon_0800 = MON_0700 + HOUR;
	int64_t moved = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700, NULL), 0);
	int64_t fresh = create_digest("daily", mon_0800 - 1);
	/* 08:00: Sunday to Monday, to the one set at 07:59:59 and the one made at 07:00. */
	ck_assert_int_eq(look(mon_0800 + 30, NULL), 2);
	ASSERT_TOLD(fresh, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z");
	/* 08:59:59: moved to 09:00, and npsd down until Tuesday 09:00:30: the period under way
	 * at the change (Sunday 09:00 to Monday 09:00) and the one after it are told, and the
	 * day that was told at 08:00 is not told again. */
	struct webhook_input at9 = { .active = -1, .has_digest_at = true, .digest_at = "09:00" };
	change(moved, mon_0800 + HOUR - 1, &at9);
	ck_assert_int_eq(look(mon_0800 + 25 * HOUR + 30, NULL), 2 + 1);
	ASSERT_TOLD(moved, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-22T08:00:00Z/2026-11-23T08:00:00Z "
	                   "2026-11-23T08:00:00Z/2026-11-24T08:00:00Z");
}
END_TEST

/* The writer's SQLite refuses to read the webhooks table (as a failing disk or want of
 * memory would make the read fail) once the webhook is inserted. */
static int refuse_webhooks_read(void *arg, int action, const char *table, const char *column,
                                const char *schema, const char *trigger)
{
	(void)arg;
	(void)column;
	(void)schema;
	(void)trigger;
	return action == SQLITE_READ && table && strcmp(table, "webhooks") == 0 ? SQLITE_DENY : SQLITE_OK;
}

/* Leaves stale bytes where the frames of what is called next will be, as a busy writer
 * thread's stack holds them. */
static __attribute__((noinline)) void dirty_stack(void)
{
	volatile unsigned char junk[16384];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = 0x5a;
}

static int apply_create_unreadable(struct db_conn *conn, void *arg)
{
	sqlite3_set_authorizer(db_handle(conn), refuse_webhooks_read, NULL);
	dirty_stack();
	int r = apply_create(conn, arg);
	sqlite3_set_authorizer(db_handle(conn), NULL, NULL);
	return r;
}

/* A digest webhook whose row cannot be read back for its mark: the create fails, as a
 * failed write does, and frees nothing it did not read (the row it would have read was left
 * as the stack had it, and freed). */
START_TEST(a_digest_whose_row_cannot_be_read_for_its_mark_fails_cleanly)
{
	struct change c = { .now = MON_0700,
		            .in = { .url = "http://receiver.example/digest",
		                    .active = 1,
		                    .digest = "daily",
		                    .digest_at = "08:00" } };
	ck_assert_int_lt(db_write_sync(db, apply_create_unreadable, &c), 0);
	/* Nothing was written, and the writer goes on. */
	int64_t id = create_digest("daily", MON_0700);
	ck_assert_int_gt(id, 0);
}
END_TEST

static Suite *digests_suite(void)
{
	Suite *s = suite_create("digests");
	TCase *tc = tcase_create("periods told");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_patch_after_downtime_keeps_the_missed_periods);
	tcase_add_test(tc, switched_on_again_a_digest_starts_with_the_period_under_way);
	tcase_add_test(tc, a_digest_set_just_before_a_period_ends_tells_that_period);
	tcase_add_test(tc, a_digest_whose_row_cannot_be_read_for_its_mark_fails_cleanly);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(digests_suite());
}
