#include "npsd/schedule.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/*
 * Expectations are written as UTC instants on purpose: they pin down both the local
 * arithmetic and the offset in force (CET = UTC+1, CEST = UTC+2 in Europe/Amsterdam).
 */

static struct opening_hours hours;  /* SPEC's sample: mon-fri 08:00-20:00, sat 09:00-13:00 */
static struct civil_date holidays[CONFIG_MAX_HOLIDAYS];
static size_t nholidays;

static int64_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return (int64_t)timegm(&tm);
}

static void setup(void)
{
	ck_assert_int_eq(schedule_set_timezone("Europe/Amsterdam"), 0);
	ck_assert_int_eq(config_parse_hours("mon-fri 08:00-20:00, sat 09:00-13:00", &hours), 0);
	nholidays = 0;
}

static void teardown(void)
{
}

static int64_t next(int64_t t)
{
	return schedule_next_open(&hours, holidays, nholidays, t);
}

static bool open_at(int64_t t)
{
	return schedule_is_open(&hours, holidays, nholidays, t);
}

START_TEST(test_weekday_inside_hours)
{
	/* Wednesday 2026-11-25 10:00 CET. */
	int64_t t = utc(2026, 11, 25, 9, 0);

	ck_assert(open_at(t));
	ck_assert_int_eq(next(t), t);
	/* Opening and closing minutes: 08:00 is open, 20:00 is not. */
	ck_assert(open_at(utc(2026, 11, 25, 7, 0)));
	ck_assert(!open_at(utc(2026, 11, 25, 6, 59)));
	ck_assert(!open_at(utc(2026, 11, 25, 19, 0)));
	ck_assert(open_at(utc(2026, 11, 25, 18, 59) + 59));
}
END_TEST

START_TEST(test_early_morning)
{
	/* Wednesday 06:30 CET opens at 08:00 CET the same day. */
	ck_assert_int_eq(next(utc(2026, 11, 25, 5, 30)), utc(2026, 11, 25, 7, 0));
}
END_TEST

START_TEST(test_weekend_to_monday)
{
	/* Sunday 2026-11-29 12:00 CET -> Monday 2026-11-30 08:00 CET. */
	int64_t t = utc(2026, 11, 29, 11, 0);

	ck_assert(!open_at(t));
	ck_assert_int_eq(next(t), utc(2026, 11, 30, 7, 0));
}
END_TEST

START_TEST(test_saturday_window)
{
	/* Saturday 2026-11-28: open 09:00-13:00 CET. */
	ck_assert(open_at(utc(2026, 11, 28, 9, 0)));
	ck_assert_int_eq(next(utc(2026, 11, 28, 7, 30)), utc(2026, 11, 28, 8, 0));
	ck_assert(!open_at(utc(2026, 11, 28, 12, 0)));
}
END_TEST

START_TEST(test_answer_at_1959_and_2001)
{
	/* Wednesday 19:59 CET is open; 20:01 waits for Thursday 08:00 CET. */
	int64_t at1959 = utc(2026, 11, 25, 18, 59), at2001 = utc(2026, 11, 25, 19, 1);

	ck_assert(open_at(at1959));
	ck_assert_int_eq(next(at1959), at1959);
	ck_assert(!open_at(at2001));
	ck_assert_int_eq(next(at2001), utc(2026, 11, 26, 7, 0));
}
END_TEST

START_TEST(test_friday_evening_to_saturday)
{
	/* Friday 2026-11-27 20:01 CET -> Saturday 09:00 CET. */
	ck_assert_int_eq(next(utc(2026, 11, 27, 19, 1)), utc(2026, 11, 28, 8, 0));
}
END_TEST

START_TEST(test_saturday_afternoon_to_monday)
{
	/* Saturday 2026-11-28 13:30 CET -> Monday 2026-11-30 08:00 CET. */
	ck_assert_int_eq(next(utc(2026, 11, 28, 12, 30)), utc(2026, 11, 30, 7, 0));
}
END_TEST

START_TEST(test_holiday)
{
	ck_assert_int_eq(config_parse_dates("2026-11-25", holidays, CONFIG_MAX_HOLIDAYS, &nholidays),
			 0);
	/* The whole local Wednesday is closed, from its first second to its last. */
	ck_assert(!open_at(utc(2026, 11, 25, 9, 0)));
	ck_assert(!open_at(utc(2026, 11, 24, 23, 0)));
	/* Tuesday 20:30 CET -> Thursday 08:00 CET. */
	ck_assert_int_eq(next(utc(2026, 11, 24, 19, 30)), utc(2026, 11, 26, 7, 0));
	ck_assert(open_at(utc(2026, 11, 26, 7, 0)));
}
END_TEST

START_TEST(test_christmas)
{
	/* 2026-12-25 is a Friday, 26 a Saturday: from Thursday evening to Monday the 28th. */
	ck_assert_int_eq(config_parse_dates("2026-12-25, 2026-12-26", holidays, CONFIG_MAX_HOLIDAYS,
					    &nholidays),
			 0);
	ck_assert_int_eq(next(utc(2026, 12, 24, 19, 1)), utc(2026, 12, 28, 7, 0));
	ck_assert_int_eq(next(utc(2026, 12, 25, 9, 0)), utc(2026, 12, 28, 7, 0));
	ck_assert_int_eq(next(utc(2026, 12, 26, 9, 0)), utc(2026, 12, 28, 7, 0));
	ck_assert(!open_at(utc(2026, 12, 26, 9, 0)));
}
END_TEST

START_TEST(test_dst_spring)
{
	/* Sunday 2026-03-29 at 02:00 CET the clocks go to 03:00 CEST (01:00 UTC). */

	/* Over the weekend: Saturday 13:30 CET -> Monday 08:00 CEST, which is 06:00 UTC. */
	ck_assert_int_eq(next(utc(2026, 3, 28, 12, 30)), utc(2026, 3, 30, 6, 0));
	/* Friday 20:01 CET -> Saturday 09:00 CET (before the switch). */
	ck_assert_int_eq(next(utc(2026, 3, 27, 19, 1)), utc(2026, 3, 28, 8, 0));
	/* Monday 08:00 CEST is open, 07:59 CEST is not. */
	ck_assert(open_at(utc(2026, 3, 30, 6, 0)));
	ck_assert(!open_at(utc(2026, 3, 30, 5, 59)));

	/* A window opening at 02:30, which does not exist that day, opens at 03:00 CEST. */
	ck_assert_int_eq(config_parse_hours("sun 02:30-04:00", &hours), 0);
	ck_assert_int_eq(next(utc(2026, 3, 28, 22, 0)), utc(2026, 3, 29, 1, 0));
	ck_assert(open_at(utc(2026, 3, 29, 1, 0)));
	ck_assert(!open_at(utc(2026, 3, 29, 0, 59)));  /* 01:59 CET */
	ck_assert(!open_at(utc(2026, 3, 29, 2, 0)));   /* 04:00 CEST */
	/* A week later 02:30 exists again: 02:30 CEST = 00:30 UTC. */
	ck_assert_int_eq(next(utc(2026, 3, 29, 2, 0)), utc(2026, 4, 5, 0, 30));

	/* A window wholly inside the gap does not open that day at all. */
	ck_assert_int_eq(config_parse_hours("sun 02:00-02:45", &hours), 0);
	ck_assert_int_eq(next(utc(2026, 3, 28, 22, 0)), utc(2026, 4, 5, 0, 0));
}
END_TEST

START_TEST(test_dst_autumn)
{
	/* Sunday 2026-10-25 at 03:00 CEST the clocks go back to 02:00 CET (01:00 UTC). */

	/* Saturday 13:30 CEST -> Monday 08:00 CET, which is 07:00 UTC. */
	ck_assert_int_eq(next(utc(2026, 10, 24, 11, 30)), utc(2026, 10, 26, 7, 0));
	/* Friday 20:01 CEST -> Saturday 09:00 CEST = 07:00 UTC. */
	ck_assert_int_eq(next(utc(2026, 10, 23, 18, 1)), utc(2026, 10, 24, 7, 0));

	/* 02:30-03:00 happens twice that night, and is open both times. */
	ck_assert_int_eq(config_parse_hours("sun 02:30-03:00", &hours), 0);
	ck_assert_int_eq(next(utc(2026, 10, 24, 22, 0)), utc(2026, 10, 25, 0, 30)); /* CEST */
	ck_assert(open_at(utc(2026, 10, 25, 0, 45)));
	ck_assert(!open_at(utc(2026, 10, 25, 1, 0)));  /* 02:00 CET, second pass */
	ck_assert_int_eq(next(utc(2026, 10, 25, 1, 10)), utc(2026, 10, 25, 1, 30)); /* CET */
	ck_assert(open_at(utc(2026, 10, 25, 1, 45)));
	ck_assert(!open_at(utc(2026, 10, 25, 2, 0)));  /* 03:00 CET */
	/* After the second pass: next Sunday, 02:30 CET = 01:30 UTC. */
	ck_assert_int_eq(next(utc(2026, 10, 25, 2, 0)), utc(2026, 11, 1, 1, 30));
}
END_TEST

START_TEST(test_always)
{
	int64_t t = utc(2026, 12, 25, 3, 17);

	ck_assert_int_eq(config_parse_hours("always", &hours), 0);
	ck_assert_int_eq(config_parse_dates("2026-12-25", holidays, CONFIG_MAX_HOLIDAYS, &nholidays),
			 0);
	/* Open at every instant but on a holiday (SPEC: the hours minus the holidays), which is
	 * closed from local midnight to midnight: Christmas 2026 is 23:00 UTC on the 24th to
	 * 23:00 UTC on the 25th in Amsterdam. */
	ck_assert(!open_at(t));
	ck_assert_int_eq(next(t), utc(2026, 12, 25, 23, 0));
	ck_assert(open_at(utc(2026, 12, 24, 22, 59)));
	ck_assert(!open_at(utc(2026, 12, 24, 23, 0)));
	ck_assert_int_eq(next(utc(2026, 12, 24, 22, 0)), utc(2026, 12, 24, 22, 0));
	ck_assert_int_eq(next(utc(2026, 3, 29, 1, 0)), utc(2026, 3, 29, 1, 0));
	/* Without holidays, every instant, DST changes included. */
	nholidays = 0;
	ck_assert(open_at(t));
	ck_assert_int_eq(next(t), t);
	ck_assert_int_eq(next(utc(2026, 10, 25, 1, 30)), utc(2026, 10, 25, 1, 30));
}
END_TEST

START_TEST(test_whole_day_and_midnight)
{
	/* 00:00-24:00 runs up to midnight, where the next day's window takes over. */
	ck_assert_int_eq(config_parse_hours("mon-tue 00:00-24:00", &hours), 0);
	ck_assert(open_at(utc(2026, 11, 23, 22, 59) + 59));  /* Monday 23:59:59 CET */
	ck_assert(open_at(utc(2026, 11, 23, 23, 0)));        /* Tuesday 00:00 CET */
	ck_assert(!open_at(utc(2026, 11, 24, 23, 0)));       /* Wednesday 00:00 CET */
	ck_assert_int_eq(next(utc(2026, 11, 24, 23, 0)), utc(2026, 11, 29, 23, 0));
}
END_TEST

START_TEST(test_never_open)
{
	memset(&hours, 0, sizeof hours);
	ck_assert(!open_at(utc(2026, 11, 25, 9, 0)));
	ck_assert_int_eq(next(utc(2026, 11, 25, 9, 0)), -1);

	/* A holiday on the only open weekday pushes the opening a week on. */
	ck_assert_int_eq(config_parse_hours("mon 08:00-09:00", &hours), 0);
	ck_assert_int_eq(config_parse_dates("2026-11-30", holidays, CONFIG_MAX_HOLIDAYS, &nholidays),
			 0);
	ck_assert_int_eq(next(utc(2026, 11, 25, 9, 0)), utc(2026, 12, 7, 7, 0));
}
END_TEST

START_TEST(test_other_zone)
{
	ck_assert_int_eq(schedule_set_timezone("UTC"), 0);
	ck_assert_int_eq(next(utc(2026, 11, 28, 13, 30)), utc(2026, 11, 30, 8, 0));
	ck_assert_int_eq(schedule_set_timezone("America/New_York"), 0);
	/* Saturday 13:30 EST is 18:30 UTC; Monday 08:00 EST is 13:00 UTC. */
	ck_assert_int_eq(next(utc(2026, 11, 28, 18, 30)), utc(2026, 11, 30, 13, 0));
	ck_assert_int_eq(schedule_set_timezone("Europe/Nowhere"), -1);
	ck_assert_int_eq(schedule_set_timezone("../etc/passwd"), -1);
}
END_TEST

/* Open time over a span: the weekend does not count, the cap ends the count. */
START_TEST(test_open_seconds)
{
	/* Friday 2026-11-27 19:00 CET to Monday 2026-11-30 09:00 CET: Friday's last hour,
	 * Saturday 09:00-13:00 and Monday's first hour. */
	int64_t fri = utc(2026, 11, 27, 18, 0), mon = utc(2026, 11, 30, 8, 0);
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, nholidays, fri, mon, 100 * 3600), 6 * 3600);
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, nholidays, fri, mon, 2 * 3600), 2 * 3600);
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, nholidays, mon, fri, 3600), 0);
	/* Counted back from the end: a cap of an hour is met by Monday alone. */
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, nholidays, utc(2026, 11, 30, 7, 30), mon, 3600),
	                 1800);
	/* A holiday closes the whole day, also with "always". */
	ck_assert_int_eq(config_parse_hours("always", &hours), 0);
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, 0, fri, mon, 100 * 3600), mon - fri);
	ck_assert_int_eq(config_parse_dates("2026-11-28", holidays, CONFIG_MAX_HOLIDAYS, &nholidays), 0);
	ck_assert_int_eq(schedule_open_seconds(&hours, holidays, nholidays, fri, mon, 100 * 3600),
	                 mon - fri - 24 * 3600);
}
END_TEST

static Suite *schedule_suite(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("amsterdam");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_weekday_inside_hours);
	tcase_add_test(tc, test_early_morning);
	tcase_add_test(tc, test_weekend_to_monday);
	tcase_add_test(tc, test_saturday_window);
	tcase_add_test(tc, test_answer_at_1959_and_2001);
	tcase_add_test(tc, test_friday_evening_to_saturday);
	tcase_add_test(tc, test_saturday_afternoon_to_monday);
	tcase_add_test(tc, test_holiday);
	tcase_add_test(tc, test_christmas);
	tcase_add_test(tc, test_dst_spring);
	tcase_add_test(tc, test_dst_autumn);
	tcase_add_test(tc, test_always);
	tcase_add_test(tc, test_whole_day_and_midnight);
	tcase_add_test(tc, test_never_open);
	tcase_add_test(tc, test_other_zone);
	tcase_add_test(tc, test_open_seconds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(schedule_suite());
}
