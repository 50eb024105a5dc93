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

static int64_t open_secs(int64_t from, int64_t to, int64_t cap)
{
	return schedule_open_seconds(&hours, holidays, nholidays, from, to, cap);
}

/* Open time is exact to the second whatever the span's ends: it was counted a minute at a
 * time back from the end, each minute open or not as its first second was, so a span that
 * opened or closed inside it came out up to 59 s wrong and loop.silent fired that early
 * or late. */
START_TEST(test_open_seconds_unaligned)
{
	/* Wednesday 2026-11-25, open 08:00-20:00 CET (07:00-19:00Z). */
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 6, 59) + 30, utc(2026, 11, 25, 7, 0) + 30, 3600), 30);
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 7, 0) + 10, utc(2026, 11, 25, 7, 0) + 50, 3600), 40);
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 18, 59) + 50, utc(2026, 11, 25, 19, 1) + 5, 3600), 10);
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 6, 58) + 1, utc(2026, 11, 25, 7, 2) + 59, 3600), 179);
	/* The cap, reached part of the way into a minute. */
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 6, 59) + 30, utc(2026, 11, 25, 7, 0) + 30, 17), 17);
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 7, 0) + 30, utc(2026, 11, 25, 7, 0) + 30, 3600), 0);
}
END_TEST

START_TEST(test_open_seconds_across_the_close_and_the_opening)
{
	/* Wednesday 12:00:17 CET to Thursday 20:00:42 CET: 7 h 59 min 43 s of Wednesday, the
	 * whole of Thursday's 12 h, nothing of the night or of the 42 s after Thursday's close. */
	int64_t from = utc(2026, 11, 25, 11, 0) + 17, to = utc(2026, 11, 26, 19, 0) + 42;
	ck_assert_int_eq(open_secs(from, to, 100 * 3600), 7 * 3600 + 59 * 60 + 43 + 12 * 3600);
	/* Wednesday 19:59:55 CET to Thursday 08:00:07 CET: 5 s and 7 s. */
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 18, 59) + 55, utc(2026, 11, 26, 7, 0) + 7, 3600), 12);
	/* Friday 19:30:05 CET to Monday 08:15:55 CET: 29 min 55 s, Saturday's 4 h, 15 min 55 s. */
	ck_assert_int_eq(open_secs(utc(2026, 11, 27, 18, 30) + 5, utc(2026, 11, 30, 7, 15) + 55, 100 * 3600),
			 29 * 60 + 55 + 4 * 3600 + 15 * 60 + 55);
	/* Counted back from the end: a cap of an hour is met by Monday and Saturday. */
	ck_assert_int_eq(open_secs(utc(2026, 11, 27, 18, 30) + 5, utc(2026, 11, 30, 7, 15) + 55, 3600), 3600);
}
END_TEST

START_TEST(test_open_seconds_over_a_holiday)
{
	/* Wednesday 20:00:20 CET to Friday 08:00:15 CET: Thursday is a holiday, so only 15 s. */
	int64_t from = utc(2026, 11, 25, 19, 0) + 20, to = utc(2026, 11, 27, 7, 0) + 15;
	ck_assert_int_eq(open_secs(from, to, 100 * 3600), 12 * 3600 + 15);
	ck_assert_int_eq(config_parse_dates("2026-11-26", holidays, CONFIG_MAX_HOLIDAYS, &nholidays), 0);
	ck_assert_int_eq(open_secs(from, to, 100 * 3600), 15);
	/* "always" with the holiday: closed from local midnight to midnight (23:00Z to 23:00Z). */
	ck_assert_int_eq(config_parse_hours("always", &hours), 0);
	ck_assert_int_eq(open_secs(utc(2026, 11, 25, 22, 59) + 30, utc(2026, 11, 26, 23, 0) + 45, 100 * 3600), 75);
}
END_TEST

START_TEST(test_open_seconds_across_dst_changes)
{
	/* Sunday 2026-03-29 01:00-04:00 local: 01:00-02:00 CET (00:00-01:00Z), then the clocks
	 * jump to 03:00 CEST (01:00Z) and it is open to 04:00 CEST (02:00Z): two real hours. */
	ck_assert_int_eq(config_parse_hours("sun 01:00-04:00", &hours), 0);
	ck_assert_int_eq(open_secs(utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 30) + 7, 100 * 3600), 2 * 3600);
	ck_assert_int_eq(open_secs(utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1, 0) + 10, 100 * 3600), 3610);
	ck_assert_int_eq(open_secs(utc(2026, 3, 29, 0, 59) + 50, utc(2026, 3, 29, 1, 0) + 10, 100 * 3600), 20);
	/* Sunday 2026-10-25: 01:00 CEST (23:00Z the day before) to 03:00 CEST (01:00Z), then
	 * 02:00-04:00 CET (01:00-03:00Z): the repeated hour is open twice, four real hours. */
	ck_assert_int_eq(open_secs(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 4, 0) + 1, 100 * 3600), 4 * 3600);
	ck_assert_int_eq(open_secs(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 1, 30) + 25, 100 * 3600),
			 2 * 3600 + 30 * 60 + 25);
	ck_assert_int_eq(open_secs(utc(2026, 10, 25, 0, 59) + 45, utc(2026, 10, 25, 1, 0) + 15, 100 * 3600), 30);
}
END_TEST

/* A year's open time, counted a day at a time, comes out whole: the two clock changes make
 * up for each other. */
START_TEST(test_open_seconds_of_a_year)
{
	/* Monday 2026-01-05 00:00 CET to Monday 2027-01-04 00:00 CET: 52 weeks of 64 open hours
	 * (the two clock changes make up for each other). */
	int64_t from = utc(2026, 1, 4, 23, 0), to = utc(2027, 1, 3, 23, 0);
	ck_assert_int_eq(open_secs(from, to, INT64_MAX), INT64_C(52) * 64 * 3600);
	/* A cap of days ends the count that many open days back from the end. */
	ck_assert_int_eq(open_secs(from, to, 3 * 86400), 3 * 86400);
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
	tcase_add_test(tc, test_open_seconds_unaligned);
	tcase_add_test(tc, test_open_seconds_across_the_close_and_the_opening);
	tcase_add_test(tc, test_open_seconds_over_a_holiday);
	tcase_add_test(tc, test_open_seconds_across_dst_changes);
	tcase_add_test(tc, test_open_seconds_of_a_year);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(schedule_suite());
}
