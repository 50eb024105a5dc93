/* server.rate_limit: token buckets per key, on an explicit clock. */
#include <check.h>
#include <stdlib.h>

#include "npsd/ratelimit.h"

#include "testutil.h"

START_TEST(burst_of_twice_the_rate_then_refusal)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(5, &rl), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ratelimit_take(rl, 1, 1000), 0);
	ck_assert_int_eq(ratelimit_take(rl, 1, 1000), 1); /* empty: 1/5 s away, rounded up */
	ratelimit_free(&rl);
	ck_assert_ptr_null(rl);
}
END_TEST

/* A rate so low that the wait overflows an int still gives a sane Retry-After. */
START_TEST(a_tiny_rate_waits_at_most_a_day)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(1e-10, &rl), 0);
	ck_assert_int_eq(ratelimit_take(rl, 1, 0), 0); /* the first request is always let through */
	ck_assert_int_eq(ratelimit_take(rl, 1, 0), RATELIMIT_WAIT_MAX);
	ratelimit_set_rate(rl, 0.001);
	ck_assert_int_eq(ratelimit_take(rl, 1, 0), 1000);
	ratelimit_free(&rl);
}
END_TEST

/* A reload that lowers the rate holds at once: a bucket filled under the old rate is cut to
 * the new burst, not only at its next refill. */
START_TEST(a_lower_rate_cuts_full_buckets_at_once)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(100, &rl), 0);
	ck_assert_int_eq(ratelimit_take(rl, 3, 5000), 0); /* 199 of 200 left */
	ratelimit_set_rate(rl, 1);                        /* burst 2 */
	ck_assert_int_eq(ratelimit_take(rl, 3, 5000), 0);
	ck_assert_int_eq(ratelimit_take(rl, 3, 5000), 0);
	ck_assert_int_eq(ratelimit_take(rl, 3, 5000), 1);
	ratelimit_free(&rl);
}
END_TEST

START_TEST(refills_at_the_rate)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(2, &rl), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ratelimit_take(rl, 7, 0), 0);
	ck_assert_int_gt(ratelimit_take(rl, 7, 0), 0);
	ck_assert_int_eq(ratelimit_take(rl, 7, 500), 0); /* one token back after 0.5 s at 2/s */
	ck_assert_int_gt(ratelimit_take(rl, 7, 500), 0);
	/* never more than the burst, however long the pause */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ratelimit_take(rl, 7, 100000), 0);
	ck_assert_int_gt(ratelimit_take(rl, 7, 100000), 0);
	ratelimit_free(&rl);
}
END_TEST

START_TEST(keys_have_their_own_buckets)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(1, &rl), 0);
	for (int64_t key = 1; key <= 500; key++) { /* forces the table to grow */
		ck_assert_int_eq(ratelimit_take(rl, key, 0), 0);
		ck_assert_int_eq(ratelimit_take(rl, key, 0), 0);
		ck_assert_int_eq(ratelimit_take(rl, key, 0), 1);
	}
	ck_assert_int_eq(ratelimit_take(rl, 3, 0), 1);
	ck_assert_int_eq(ratelimit_take(rl, 3, 1000), 0);
	ratelimit_free(&rl);
}
END_TEST

START_TEST(slow_rates_ask_for_a_longer_wait)
{
	struct ratelimit *rl;
	ck_assert_int_eq(ratelimit_new(0.1, &rl), 0); /* one every 10 s; the burst is at least 1 */
	ck_assert_int_eq(ratelimit_take(rl, 1, 0), 0);
	ck_assert_int_eq(ratelimit_take(rl, 1, 0), 10);
	ck_assert_int_eq(ratelimit_take(rl, 1, 5000), 5);
	ratelimit_free(&rl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("buckets");
	tcase_add_test(tc, burst_of_twice_the_rate_then_refusal);
	tcase_add_test(tc, refills_at_the_rate);
	tcase_add_test(tc, a_lower_rate_cuts_full_buckets_at_once);
	tcase_add_test(tc, a_tiny_rate_waits_at_most_a_day);
	tcase_add_test(tc, keys_have_their_own_buckets);
	tcase_add_test(tc, slow_rates_ask_for_a_longer_wait);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
