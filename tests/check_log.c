/* log_limit: the lines a flood would repeat, on an explicit clock. */
#include <check.h>
#include <stdlib.h>

#include "npsd/log.h"

#include "testutil.h"

/* The first line goes out at once; those within the interval after it do not, and are
 * counted; the first one past it goes out with that count, which starts again from 0. */
START_TEST(one_line_an_interval_with_the_count_left_out)
{
	struct log_limit l = LOG_LIMIT_INIT;
	uint64_t missed = 99;
	ck_assert(log_limit_pass(&l, 0, 60000, &missed));
	ck_assert_uint_eq(missed, 0);
	for (int i = 0; i < 5; i++)
		ck_assert(!log_limit_pass(&l, 1000 + i, 60000, &missed));
	ck_assert(!log_limit_pass(&l, 59999, 60000, &missed));
	ck_assert(log_limit_pass(&l, 60000, 60000, &missed));
	ck_assert_uint_eq(missed, 6);
	ck_assert(!log_limit_pass(&l, 60001, 60000, &missed));
	/* Long after: at once, with what was left out since the last line however long ago. */
	ck_assert(log_limit_pass(&l, 10 * 60000, 60000, &missed));
	ck_assert_uint_eq(missed, 1);
	ck_assert(!log_limit_pass(&l, 10 * 60000 + 1, 60000, &missed));
	ck_assert(log_limit_pass(&l, 11 * 60000, 60000, &missed));
	ck_assert_uint_eq(missed, 1);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("limit");
	tcase_add_test(tc, one_line_an_interval_with_the_count_left_out);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(log_suite());
}
