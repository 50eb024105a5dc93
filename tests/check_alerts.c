/* The loop-health rules on their own: when a silence is news, and what counts as a drop. */
#include <check.h>

#include "npsd/alerts.h"
#include "npsd/digests.h"
#include "npsd/schedule.h"
#include "npsd/validate.h"

#include "testutil.h"

START_TEST(silence_is_news_once_when_open)
{
	const int64_t hour = 3600, since = 1000000;
	ck_assert(!alerts_silence_due(hour - 1, hour, true, since, 0));
	ck_assert(alerts_silence_due(hour, hour, true, since, 0));
	ck_assert(alerts_silence_due(5 * hour, hour, true, since, 0));
	/* Closed now: nobody to act on it. */
	ck_assert(!alerts_silence_due(5 * hour, hour, false, since, 0));
	/* Told already for this silence; a newer answer makes the next silence news. */
	ck_assert(!alerts_silence_due(5 * hour, hour, true, since, since));
	ck_assert(alerts_silence_due(5 * hour, hour, true, since + 1, since));
	/* silence_after 0: off. */
	ck_assert(!alerts_silence_due(100 * hour, 0, true, since, 0));
}
END_TEST

START_TEST(a_drop_needs_enough_answers_and_points)
{
	struct nps_counts before = { 10, 0, 0 }, after = { 4, 2, 4 }; /* 100 -> 0 */
	ck_assert(alerts_nps_dropped(&before, &after, 15, 10));
	ck_assert(!alerts_nps_dropped(&before, &after, 15, 11));  /* too few answers */
	ck_assert(!alerts_nps_dropped(&before, &after, 100, 10)); /* exactly the limit: not more */
	ck_assert(alerts_nps_dropped(&before, &after, 99.9, 10));
	ck_assert(!alerts_nps_dropped(&after, &before, 15, 10)); /* a rise */
	struct nps_counts none = { 0 };
	ck_assert(!alerts_nps_dropped(&none, &after, 0, 1));
	ck_assert(!alerts_nps_dropped(&before, &none, 0, 1));
}
END_TEST

static int64_t at(const char *rfc3339)
{
	int64_t t;
	ck_assert_msg(time_parse_rfc3339(rfc3339, &t) == 0, "bad time in test: %s", rfc3339);
	return t;
}

static void check_period(const char *kind, const char *digest_at, const char *now, const char *start,
                         const char *end)
{
	int64_t s, e;
	char got_s[21], got_e[21];
	ck_assert_int_eq(digest_period(kind, digest_at, at(now), &s, &e), 0);
	ck_assert_msg(s == at(start) && e == at(end), "%s %s at %s: [%s, %s), want [%s, %s)", kind,
	              digest_at ? digest_at : "(default)", now, time_format_rfc3339(s, got_s),
	              time_format_rfc3339(e, got_e), start, end);
}

START_TEST(digest_periods_in_local_time)
{
	ck_assert_int_eq(schedule_set_timezone("Europe/Amsterdam"), 0);
	/* Daily at 08:00 (the default) Amsterdam time: 07:00Z in winter. */
	check_period("daily", NULL, "2026-12-07T09:00:00Z", "2026-12-06T07:00:00Z", "2026-12-07T07:00:00Z");
	check_period("daily", "08:00", "2026-12-07T07:00:00Z", "2026-12-06T07:00:00Z",
	             "2026-12-07T07:00:00Z");
	check_period("daily", "08:00", "2026-12-07T06:59:59Z", "2026-12-05T07:00:00Z",
	             "2026-12-06T07:00:00Z");
	check_period("daily", "18:30", "2026-07-01T20:00:00Z", "2026-06-30T16:30:00Z",
	             "2026-07-01T16:30:00Z");
	/* The day clocks spring forward has 23 hours. */
	check_period("daily", "08:00", "2026-03-29T07:00:00Z", "2026-03-28T07:00:00Z",
	             "2026-03-29T06:00:00Z");
	/* The autumn change shows 02:30 twice: the first showing ends the period, asked at any
	 * time (the day itself has 25 hours). */
	check_period("daily", "02:30", "2026-10-25T00:45:00Z", "2026-10-24T00:30:00Z",
	             "2026-10-25T00:30:00Z");
	check_period("daily", "02:30", "2026-10-25T01:45:00Z", "2026-10-24T00:30:00Z",
	             "2026-10-25T00:30:00Z");
	check_period("daily", "02:30", "2026-10-25T23:30:00Z", "2026-10-24T00:30:00Z",
	             "2026-10-25T00:30:00Z");
	check_period("daily", "02:30", "2026-10-26T01:30:00Z", "2026-10-25T00:30:00Z",
	             "2026-10-26T01:30:00Z");
	/* The spring change skips 02:30: read as 03:30 summer time. */
	check_period("daily", "02:30", "2026-03-29T02:00:00Z", "2026-03-28T01:30:00Z",
	             "2026-03-29T01:30:00Z");
	/* Hourly on the hour, or at a minute of each hour. */
	check_period("hourly", NULL, "2026-12-07T09:37:20Z", "2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z");
	check_period("hourly", "00:45", "2026-12-07T09:37:20Z", "2026-12-07T07:45:00Z",
	             "2026-12-07T08:45:00Z");
	check_period("hourly", "00:45", "2026-12-07T09:45:00Z", "2026-12-07T08:45:00Z",
	             "2026-12-07T09:45:00Z");
	/* Where local hours start at half past the UTC hour. */
	ck_assert_int_eq(schedule_set_timezone("America/St_Johns"), 0);
	check_period("hourly", NULL, "2026-11-23T03:40:00Z", "2026-11-23T02:30:00Z", "2026-11-23T03:30:00Z");
	int64_t s, e;
	ck_assert_int_eq(digest_period("weekly", NULL, 0, &s, &e), -1);
	ck_assert_int_eq(digest_period("daily", "x", 0, &s, &e), -1);
}
END_TEST

/* Asked every ten minutes across both clock changes, as the alerts thread asks, each
 * period is told once and begins where the one before it ended. */
START_TEST(digest_periods_follow_each_other_across_clock_changes)
{
	static const char *const zones[] = { "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe" };
	static const char *const times[] = { NULL, "00:30", "01:30", "02:00", "02:30", "03:00", "23:59" };
	static const char *const spans[][2] = {
		{ "2026-03-26T00:00:00Z", "2026-04-07T00:00:00Z" },
		{ "2026-10-01T00:00:00Z", "2026-11-05T00:00:00Z" },
	};
	for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
		ck_assert_int_eq(schedule_set_timezone(zones[z]), 0);
		for (size_t k = 0; k < 2; k++)
			for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
				for (size_t sp = 0; sp < 2; sp++) {
					const char *kind = k ? "hourly" : "daily";
					int64_t told_until = 0, s, e;
					for (int64_t now = at(spans[sp][0]); now < at(spans[sp][1]);
					     now += 600) {
						if (digest_period(kind, times[i], now, &s, &e) < 0)
							ck_abort_msg("%s %s: no period at %lld", zones[z],
							             kind, (long long)now);
						if (e > now || e <= s)
							ck_abort_msg(
							        "%s %s %s at %lld: [%lld, %lld)", zones[z],
							        kind, times[i] ? times[i] : "-",
							        (long long)now, (long long)s, (long long)e);
						if (e <= told_until)
							continue; /* told already */
						if (told_until && s != told_until)
							ck_abort_msg("%s %s %s at %lld: period [%lld, %lld) "
							             "after one told "
							             "until %lld",
							             zones[z], kind,
							             times[i] ? times[i] : "-",
							             (long long)now, (long long)s,
							             (long long)e, (long long)told_until);
						told_until = e;
					}
				}
	}
}
END_TEST

static Suite *alerts_suite(void)
{
	Suite *s = suite_create("alerts");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, silence_is_news_once_when_open);
	tcase_add_test(tc, a_drop_needs_enough_answers_and_points);
	tcase_add_test(tc, digest_periods_in_local_time);
	tcase_add_test(tc, digest_periods_follow_each_other_across_clock_changes);
	/* That one walks five weeks in ten-minute steps for 84 cases: 3 s under ASan, close to
	 * Check's default 4 s on a loaded machine (it timed out so once). */
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(alerts_suite());
}
