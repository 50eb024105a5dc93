/* Which periods a digest webhook is told, on a database of its own with the alerts thread's
 * look (digests_look) called at chosen times: after a time npsd was down, after a change to
 * the webhook, after it was switched off (by a person, or disabled after failures) and on
 * again, and for a digest set a moment before a period ends. Amsterdam time throughout. */
#include <check.h>
#include <errno.h>
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
	 * at the change (from the end of the day told at 08:00 to Monday 09:00) and the one
	 * after it are told, and no hour of the day that was told at 08:00 again. */
	struct webhook_input at9 = { .active = -1, .has_digest_at = true, .digest_at = "09:00" };
	change(moved, mon_0800 + HOUR - 1, &at9);
	ck_assert_int_eq(look(mon_0800 + 25 * HOUR + 30, NULL), 2 + 1);
	ASSERT_TOLD(moved, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-23T08:00:00Z "
	                   "2026-11-23T08:00:00Z/2026-11-24T08:00:00Z");
}
END_TEST

static int run_sql(struct db_conn *conn, void *arg)
{
	return sqlite3_exec(db_handle(conn), arg, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* An answer of score on the claim touchpoint at answered_at. */
static void answer(const char *response_id, int score, int64_t answered_at)
{
	char *sql = sqlite3_mprintf(
	        "INSERT OR IGNORE INTO customers (id, created_at, updated_at) VALUES ('c1', 0, 0); "
	        "INSERT INTO surveys (response_id, source, customer_id, touchpoint, score, answered_at, "
	        "received_at, consent) VALUES (%Q, 's', 'c1', 'claim', %d, %lld, %lld, 1)",
	        response_id, score, (long long)answered_at, (long long)answered_at);
	ck_assert_int_eq(db_write_sync(db, run_sql, sql), 0);
	sqlite3_free(sql);
}

/* A number of the newest digest told to the webhook, at a JSON path of its data. */
static int64_t newest_digest_int(int64_t webhook_id, const char *json_path)
{
	static const char sql[] = "SELECT json_extract(e.payload, ?2) FROM deliveries d JOIN events e ON "
	                          "e.id = d.event_id WHERE d.webhook_id = ?1 AND e.type = 'digest' "
	                          "ORDER BY d.id DESC LIMIT 1";
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, webhook_id);
	sqlite3_bind_text(st, 2, json_path, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_reader_put(db, conn);
	return v;
}

/* Whether the digest told back digests before the newest (0: the newest) has want at json_path. */
static bool digest_back_is(int64_t webhook_id, int back, const char *json_path, const char *want)
{
	static const char sql[] = "SELECT json_extract(e.payload, ?2) = ?3 FROM deliveries d JOIN events e "
	                          "ON e.id = d.event_id WHERE d.webhook_id = ?1 AND e.type = 'digest' "
	                          "ORDER BY d.id DESC LIMIT 1 OFFSET ?4";
	struct db_conn *conn = db_reader(db);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db_handle(conn), sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, webhook_id);
	sqlite3_bind_text(st, 2, json_path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, want, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, back);
	bool is = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
	sqlite3_finalize(st);
	db_reader_put(db, conn);
	return is;
}

static bool newest_digest_is(int64_t webhook_id, const char *json_path, const char *want)
{
	return digest_back_is(webhook_id, 0, json_path, want);
}

static const struct webhook_input at10 = { .active = -1, .has_digest_at = true, .digest_at = "10:00" };

/* A daily digest moved from 08:00 to 10:00 at Monday noon, after Monday 08:00's was told:
 * its first digest at 10:00 runs from Monday 08:00 to Tuesday 10:00 (26 hours), then a day
 * each. It ran from Monday 10:00: 08:00 to 10:00 were in no digest. */
START_TEST(a_digest_moved_later_tells_the_hours_between_once)
{
	int64_t id = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 1);
	change(id, MON_0700 + 5 * HOUR, &at10);
	ck_assert_int_eq(look(MON_0700 + 5 * HOUR + 30, NULL), 0);
	ck_assert_int_eq(look(MON_0700 + 26 * HOUR + 30, NULL), 0); /* Tuesday 09:00:30 */
	ck_assert_int_eq(look(MON_0700 + 27 * HOUR + 30, NULL), 1);
	/* Titled by its length: "the last day" said 24 hours on a phone for figures of 26. */
	ck_assert(newest_digest_is(id, "$.title", "NPS, the last 26 hours"));
	ck_assert_int_eq(look(MON_0700 + 51 * HOUR + 30, NULL), 1);
	ASSERT_TOLD(id, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-24T09:00:00Z "
	                "2026-11-24T09:00:00Z/2026-11-25T09:00:00Z");
	ck_assert(newest_digest_is(id, "$.period", "daily"));
}
END_TEST

/* The uneven first digest told behind a newer one (npsd was down when it ended) says its
 * length and where it ends, as an older period says its day. */
START_TEST(an_uneven_first_digest_told_late_says_its_length_and_end)
{
	int64_t id = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 1);
	change(id, MON_0700 + 5 * HOUR, &at10);
	ck_assert_int_eq(look(MON_0700 + 51 * HOUR + 30, NULL), 2);
	ck_assert(digest_back_is(id, 1, "$.title", "NPS, 26 hours to Tuesday 24 Nov 10:00"));
	ck_assert(newest_digest_is(id, "$.title", "NPS, the last day"));
}
END_TEST

/* Moved from 08:00 to 06:00: at Monday noon, after Monday 08:00's digest, the first by 06:00
 * runs from Monday 08:00 to Tuesday 06:00 (it ran from Monday 06:00: 06:00 to 08:00 twice);
 * at Monday 07:00, before it, from Sunday 08:00 to Tuesday 06:00, the day under way by the
 * old time not told (it ran from Monday 06:00: Sunday 08:00 to Monday 06:00 in none). Its
 * period before is as long, just before it: 22 hours for the one of 22. */
START_TEST(a_digest_moved_earlier_tells_every_hour_once)
{
	const int64_t sun_0700 = MON_0700 - 24 * HOUR;
	int64_t late = create_digest("daily", sun_0700), early = create_digest("daily", sun_0700);
	ck_assert_int_eq(look(sun_0700 + HOUR + 30, NULL), 2);
	struct webhook_input at6 = { .active = -1, .has_digest_at = true, .digest_at = "06:00" };
	change(early, MON_0700, &at6);
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 1);
	change(late, MON_0700 + 5 * HOUR, &at6);
	/* Answers at Monday 00:00 and Sunday 08:30, before the late one's first digest but
	 * only the first in the 22 hours before it (from Sunday 10:00), and Monday 09:00. */
	answer("r-prev", 9, MON_0700 - 7 * HOUR);
	answer("r-old", 3, MON_0700 - 23 * HOUR + HOUR / 2);
	answer("r-new", 10, MON_0700 + 2 * HOUR);
	ck_assert_int_eq(look(MON_0700 + 23 * HOUR + 30, NULL), 2); /* Tuesday 06:00:30 */
	ASSERT_TOLD(late, "2026-11-21T07:00:00Z/2026-11-22T07:00:00Z 2026-11-22T07:00:00Z/2026-11-23T07:00:00Z "
	                  "2026-11-23T07:00:00Z/2026-11-24T05:00:00Z");
	ASSERT_TOLD(early, "2026-11-21T07:00:00Z/2026-11-22T07:00:00Z 2026-11-22T07:00:00Z/2026-11-24T05:00:00Z");
	ck_assert_int_eq(newest_digest_int(late, "$.responses"), 1);
	ck_assert_int_eq(newest_digest_int(late, "$.previous.responses"), 1);
	ck_assert_int_eq(newest_digest_int(early, "$.responses"), 3);
	ck_assert_int_eq(newest_digest_int(early, "$.previous.responses"), 0);
	ck_assert_int_eq(look(MON_0700 + 47 * HOUR + 30, NULL), 2);
	ASSERT_TOLD(early, "2026-11-21T07:00:00Z/2026-11-22T07:00:00Z 2026-11-22T07:00:00Z/2026-11-24T05:00:00Z "
	                   "2026-11-24T05:00:00Z/2026-11-25T05:00:00Z");
}
END_TEST

/* Hourly to daily and back. An hourly digest (told to Monday 08:00) made daily at 10:00 at
 * 08:30: its first daily digest is 08:00 to 10:00 (it was Sunday 10:00 to Monday 10:00,
 * hours told twice). A daily one (told to Monday 08:00) made hourly at 12:30: its first
 * hourly digest is 08:00 to 13:00, with 03:00 to 08:00 for the period before (it was 12:00
 * to 13:00, 08:00 to 12:00 in none). */
START_TEST(hourly_to_daily_and_back_tells_every_hour_once)
{
	int64_t to_daily = create_digest("hourly", MON_0700), to_hourly = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 2);
	struct webhook_input daily10 = { .active = -1,
		                         .has_digest = true,
		                         .digest = "daily",
		                         .has_digest_at = true,
		                         .digest_at = "10:00" },
	                     hourly = { .active = -1, .has_digest = true, .digest = "hourly" };
	change(to_daily, MON_0700 + HOUR + HOUR / 2, &daily10);
	answer("r-before", 2, MON_0700 - 2 * HOUR);
	answer("r-after", 9, MON_0700 + 4 * HOUR);
	change(to_hourly, MON_0700 + 5 * HOUR + HOUR / 2, &hourly);
	ck_assert_int_eq(look(MON_0700 + 5 * HOUR + HOUR / 2 + 30, NULL), 1);
	ASSERT_TOLD(to_daily, "2026-11-23T06:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-23T09:00:00Z");
	ck_assert(newest_digest_is(to_daily, "$.period", "daily"));
	ck_assert_int_eq(look(MON_0700 + 6 * HOUR + 30, NULL), 1);
	ASSERT_TOLD(to_hourly, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-23T12:00:00Z");
	ck_assert(newest_digest_is(to_hourly, "$.period", "hourly"));
	ck_assert_int_eq(newest_digest_int(to_hourly, "$.responses"), 1);
	ck_assert_int_eq(newest_digest_int(to_hourly, "$.previous.responses"), 1);
	ck_assert_int_eq(look(MON_0700 + 7 * HOUR + 30, NULL), 1);
	ASSERT_TOLD(to_hourly, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-23T12:00:00Z "
	                       "2026-11-23T12:00:00Z/2026-11-23T13:00:00Z");
}
END_TEST

/* Moved twice before the first digest by a new time was told (08:00 to 10:00 at noon, then
 * to 09:00 at 13:00; and 08:00 to 10:00 and back): the first digest starts where the last
 * one told ended, Monday 08:00, and ends by the time in force. It started at Monday 09:00. */
START_TEST(a_digest_changed_twice_before_its_first_tells_every_hour_once)
{
	int64_t nine = create_digest("daily", MON_0700), back = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700 + HOUR + 30, NULL), 2);
	struct webhook_input at9 = { .active = -1, .has_digest_at = true, .digest_at = "09:00" },
	                     at8 = { .active = -1, .has_digest_at = true, .digest_at = "08:00" },
	                     described = { .active = -1, .has_description = true, .description = "claims" };
	change(nine, MON_0700 + 5 * HOUR, &at10);
	change(back, MON_0700 + 5 * HOUR, &at10);
	change(nine, MON_0700 + 6 * HOUR, &at9);
	change(back, MON_0700 + 6 * HOUR, &at8);
	change(nine, MON_0700 + 7 * HOUR, &described);
	ck_assert_int_eq(look(MON_0700 + 25 * HOUR + 30, NULL), 1); /* Tuesday 08:00:30 */
	ck_assert_int_eq(look(MON_0700 + 26 * HOUR + 30, NULL), 1);
	ck_assert_int_eq(look(MON_0700 + 27 * HOUR + 30, NULL), 0);
	ASSERT_TOLD(nine, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-24T08:00:00Z");
	ASSERT_TOLD(back, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-24T07:00:00Z");
	/* Back where it was: a day like any other, not "the last 24 hours". */
	ck_assert(newest_digest_is(back, "$.title", "NPS, the last day"));
	ck_assert(newest_digest_is(nine, "$.title", "NPS, the last 25 hours"));
}
END_TEST

/* npsd down from Monday 07:00 to Thursday 09:00:30, and the first thing after its return is
 * a change of time (08:00 to 10:00) or of kind (hourly to daily at 08:00): the periods of
 * the old schedule that ended meanwhile are told as after any time down (the newest 7 of
 * the 74 hours, 67 skipped), then the first by the new one from the end of the last of them.
 * They were lost: the change started again with the new time's period under way. A
 * digest changed while it is off starts, as before, with the period under way when it is
 * switched on (Wednesday 10:00 to Thursday 10:00), the days while off not told. */
START_TEST(a_change_after_downtime_tells_the_old_periods_then_the_new)
{
	int64_t moved = create_digest("daily", MON_0700), kind = create_digest("hourly", MON_0700),
		off = create_digest("daily", MON_0700);
	ck_assert_int_eq(look(MON_0700, NULL), 0);
	struct webhook_input daily = { .active = -1, .has_digest = true, .digest = "daily" },
	                     switched_off = { .active = 0 }, on = { .active = 1 };
	change(off, MON_0700 + HOUR / 2, &switched_off);
	const int64_t back = MON_0700 + 74 * HOUR + 30;
	change(moved, back, &at10);
	change(kind, back, &daily);
	change(off, back, &at10);
	change(off, back, &on);
	int64_t skipped;
	ck_assert_int_eq(look(back, &skipped), 4 + 7);
	ck_assert_int_eq(skipped, 74 - 7);
	ck_assert_int_eq(look(back + HOUR, NULL), 1 + 1); /* Thursday 10:00:30 */
	ASSERT_TOLD(moved, "2026-11-22T07:00:00Z/2026-11-23T07:00:00Z 2026-11-23T07:00:00Z/2026-11-24T07:00:00Z "
	                   "2026-11-24T07:00:00Z/2026-11-25T07:00:00Z 2026-11-25T07:00:00Z/2026-11-26T07:00:00Z "
	                   "2026-11-26T07:00:00Z/2026-11-26T09:00:00Z");
	ck_assert_int_eq(look(back + 23 * HOUR, NULL), 1); /* Friday 08:00:30 */
	ASSERT_TOLD(kind, "2026-11-26T01:00:00Z/2026-11-26T02:00:00Z 2026-11-26T02:00:00Z/2026-11-26T03:00:00Z "
	                  "2026-11-26T03:00:00Z/2026-11-26T04:00:00Z 2026-11-26T04:00:00Z/2026-11-26T05:00:00Z "
	                  "2026-11-26T05:00:00Z/2026-11-26T06:00:00Z 2026-11-26T06:00:00Z/2026-11-26T07:00:00Z "
	                  "2026-11-26T07:00:00Z/2026-11-26T08:00:00Z 2026-11-26T08:00:00Z/2026-11-27T07:00:00Z");
	ck_assert(newest_digest_is(kind, "$.period", "daily"));
	ck_assert_int_eq(look(back + 25 * HOUR, NULL), 2); /* Friday 10:00:30 */
	ASSERT_TOLD(off, "2026-11-25T09:00:00Z/2026-11-26T09:00:00Z 2026-11-26T09:00:00Z/2026-11-27T09:00:00Z");
}
END_TEST

/* Across the autumn clock change (Sunday 25 October 2026, 03:00 summer time back to 02:00):
 * moved from 08:00 to 10:00 at Saturday noon, the first digest runs from Saturday 08:00
 * summer time (06:00Z) to Sunday 10:00 winter time (09:00Z), 27 hours, and the period before
 * it is the 27 hours before; then Sunday 10:00 to Monday 10:00. */
START_TEST(a_change_across_a_clock_change_tells_every_hour_once)
{
	const int64_t fri_0700 = INT64_C(1792731600); /* Friday 2026-10-23 07:00 summer time (05:00Z) */
	int64_t id = create_digest("daily", fri_0700);
	ck_assert_int_eq(look(fri_0700 + HOUR + 30, NULL), 1);
	ck_assert_int_eq(look(fri_0700 + 25 * HOUR + 30, NULL), 1); /* Saturday 08:00:30 */
	change(id, fri_0700 + 29 * HOUR, &at10);
	answer("r-prev", 9, fri_0700 - 2 * HOUR);  /* 03:00Z Friday: 27 hours before 06:00Z Saturday */
	answer("r-out", 0, fri_0700 - 2 * HOUR - 1); /* a second before that */
	answer("r-last", 10, fri_0700 + 51 * HOUR + HOUR / 2); /* Sunday 09:30 winter time */
	ck_assert_int_eq(look(fri_0700 + 51 * HOUR + 30, NULL), 0); /* Sunday 09:00:30 winter time */
	ck_assert_int_eq(look(fri_0700 + 52 * HOUR + 30, NULL), 1);
	ck_assert_int_eq(newest_digest_int(id, "$.responses"), 1);
	ck_assert_int_eq(newest_digest_int(id, "$.previous.responses"), 1);
	ck_assert_int_eq(look(fri_0700 + 76 * HOUR + 30, NULL), 1);
	ASSERT_TOLD(id, "2026-10-22T06:00:00Z/2026-10-23T06:00:00Z 2026-10-23T06:00:00Z/2026-10-24T06:00:00Z "
	                "2026-10-24T06:00:00Z/2026-10-25T09:00:00Z 2026-10-25T09:00:00Z/2026-10-26T09:00:00Z");
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
	tcase_add_test(tc, a_digest_moved_later_tells_the_hours_between_once);
	tcase_add_test(tc, an_uneven_first_digest_told_late_says_its_length_and_end);
	tcase_add_test(tc, a_digest_moved_earlier_tells_every_hour_once);
	tcase_add_test(tc, hourly_to_daily_and_back_tells_every_hour_once);
	tcase_add_test(tc, a_digest_changed_twice_before_its_first_tells_every_hour_once);
	tcase_add_test(tc, a_change_after_downtime_tells_the_old_periods_then_the_new);
	tcase_add_test(tc, a_change_across_a_clock_change_tells_every_hour_once);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(digests_suite());
}
