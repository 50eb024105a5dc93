/* How long the scheduler sleeps: until the next deadline, but never long enough to miss a
 * step of the wall clock its deadlines are written in. */
#include <check.h>

#include "npsd/scheduler.h"

#include "testutil.h"

START_TEST(it_sleeps_until_a_near_deadline)
{
	ck_assert_int_eq(scheduler_sleep_ms(1000, 1030), 30 * 1000);
	ck_assert_int_eq(scheduler_sleep_ms(1000, 1001), 1000);
}
END_TEST

/* A lease that ends in an hour, after the wall clock was set 50 minutes forward, is over
 * ten minutes later: a sleep of an hour on the monotonic clock overslept it by 50. */
START_TEST(it_looks_again_within_a_minute_whatever_the_deadline)
{
	ck_assert_int_eq(scheduler_sleep_ms(1000, 1000 + 3600), 60 * 1000);
	ck_assert_int_eq(scheduler_sleep_ms(1000, 1060), 60 * 1000);
	ck_assert_int_eq(scheduler_sleep_ms(1000, 0), 60 * 1000); /* nothing pending */
}
END_TEST

START_TEST(a_deadline_already_past_is_tried_again_a_second_later)
{
	ck_assert_int_eq(scheduler_sleep_ms(1000, 1000), 1000);
	ck_assert_int_eq(scheduler_sleep_ms(1000, 900), 1000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("sleep");
	tcase_add_test(tc, it_sleeps_until_a_near_deadline);
	tcase_add_test(tc, it_looks_again_within_a_minute_whatever_the_deadline);
	tcase_add_test(tc, a_deadline_already_past_is_tried_again_a_second_later);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
