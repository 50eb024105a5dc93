/* The loop-health rules on their own: when a silence is news, and what counts as a drop. */
#include <check.h>

#include "npsd/alerts.h"

#include "testutil.h"

START_TEST(silence_is_news_once_when_open)
{
	const int64_t hour = 3600, last = 1000000;
	ck_assert(!alerts_silence_due(last + hour - 1, last, hour, true, 0));
	ck_assert(alerts_silence_due(last + hour, last, hour, true, 0));
	ck_assert(alerts_silence_due(last + 5 * hour, last, hour, true, 0));
	/* Closed: nobody to act on it. */
	ck_assert(!alerts_silence_due(last + 5 * hour, last, hour, false, 0));
	/* Told already for this last answer; a newer answer makes the next silence news. */
	ck_assert(!alerts_silence_due(last + 5 * hour, last, hour, true, last));
	ck_assert(alerts_silence_due(last + 5 * hour, last + 1, hour, true, last));
	/* silence_after 0: off. */
	ck_assert(!alerts_silence_due(last + 100 * hour, last, 0, true, 0));
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

static Suite *alerts_suite(void)
{
	Suite *s = suite_create("alerts");
	TCase *tc = tcase_create("rules");
	tcase_add_test(tc, silence_is_news_once_when_open);
	tcase_add_test(tc, a_drop_needs_enough_answers_and_points);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(alerts_suite());
}
