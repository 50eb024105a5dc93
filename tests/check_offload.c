/* The reports lanes: a quick job runs while a long one is still running rather than after
 * it, and the long one, which calls offload_yield() between steps, makes no step while the
 * quick one works (reports take one core between them). */
#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "npsd/offload.h"

#include "testutil.h"

static struct offload *O;
static atomic_long steps;  /* the long job's */
static atomic_bool stop;   /* tells the long job to end */
static atomic_bool quick_done;
static long steps_in_quick[2]; /* the long job's steps early in the quick job, and at its end */

/* Steps until told to stop, yielding before each step as a report does in SQLite. */
static void long_run(struct offload_job *job)
{
	(void)job;
	while (!atomic_load(&stop)) {
		offload_yield(O);
		atomic_fetch_add(&steps, 1);
		usleep(100);
	}
}

static void quick_run(struct offload_job *job)
{
	(void)job;
	sleep_ms(50); /* a step the long job had begun is over, even on a loaded machine */
	steps_in_quick[0] = atomic_load(&steps);
	sleep_ms(100);
	steps_in_quick[1] = atomic_load(&steps);
	atomic_store(&quick_done, true);
}

START_TEST(a_quick_job_passes_a_long_one_which_waits_meanwhile)
{
	ck_assert_int_eq(offload_start(&O), 0);
	struct offload_job long_job = { .run = long_run }, quick_job = { .run = quick_run };
	offload_submit(O, OFFLOAD_LONG, &long_job, NULL);
	sleep_ms(20);
	ck_assert_int_gt(atomic_load(&steps), 0);
	offload_submit(O, OFFLOAD_QUICK, &quick_job, NULL);
	for (int i = 0; i < 200 && !atomic_load(&quick_done); i++)
		sleep_ms(10);
	ck_assert_msg(atomic_load(&quick_done), "the quick job waited for the long one");
	ck_assert_int_eq(steps_in_quick[1], steps_in_quick[0]);
	/* And the long job goes on once the quick lane is idle: within 2 s, as a loaded machine
	 * (CI beside other work, under ASan) may take a while to run the woken thread. */
	for (int i = 0; i < 200 && atomic_load(&steps) == steps_in_quick[1]; i++)
		sleep_ms(10);
	ck_assert_int_gt(atomic_load(&steps), steps_in_quick[1]);
	atomic_store(&stop, true);
	offload_stop(&O);
	ck_assert_ptr_null(O);
}
END_TEST

/* A stream of quick jobs with no gap (here five seconds of them, queued at once) holds a
 * long job back a second at most: then it goes on beside them. Its read keeps its snapshot
 * while it waits, so the checkpoint could not take the WAL past it for as long as the
 * stream lasted. */
static atomic_bool long_done;
static atomic_long quick_ran;

static void bounded_long_run(struct offload_job *job)
{
	(void)job;
	for (int i = 0; i < 50; i++) {
		offload_yield(O);
		atomic_fetch_add(&steps, 1);
		usleep(100);
	}
	atomic_store(&long_done, true);
}

static void busy_quick_run(struct offload_job *job)
{
	(void)job;
	sleep_ms(20);
	atomic_fetch_add(&quick_ran, 1);
}

START_TEST(a_stream_of_quick_jobs_holds_a_long_one_back_a_second_at_most)
{
	enum { QUICK_JOBS = 250 };
	static struct offload_job quick[QUICK_JOBS];
	ck_assert_int_eq(offload_start(&O), 0);
	struct offload_job long_job = { .run = bounded_long_run };
	offload_submit(O, OFFLOAD_LONG, &long_job, NULL);
	for (int i = 0; i < 200 && atomic_load(&steps) == 0; i++)
		sleep_ms(1);
	ck_assert_int_gt(atomic_load(&steps), 0);
	for (size_t i = 0; i < QUICK_JOBS; i++) {
		quick[i].run = busy_quick_run;
		offload_submit(O, OFFLOAD_QUICK, &quick[i], NULL);
	}
	for (int i = 0; i < 250 && !atomic_load(&long_done); i++)
		sleep_ms(10);
	long ran = atomic_load(&quick_ran);
	ck_assert_msg(atomic_load(&long_done),
	              "the long job waited 2.5 s behind quick jobs (%ld of %d run) and is not done", ran,
	              (int)QUICK_JOBS);
	ck_assert_msg(ran < QUICK_JOBS, "the quick jobs were all done first");
	offload_stop(&O);
	ck_assert_int_eq(atomic_load(&quick_ran), QUICK_JOBS);
}
END_TEST

/* The long lane holds at most OFFLOAD_LONG_WAITING_MAX jobs waiting and one owner's share of
 * them; a job beyond either is refused with when to come back: the jobs ahead at the pace
 * of those run so far (here 190 ms each). Others go on being taken meanwhile. */
static atomic_bool release;

static void paced_run(struct offload_job *job)
{
	(void)job;
	sleep_ms(190);
}

static void blocking_run(struct offload_job *job)
{
	(void)job;
	while (!atomic_load(&release))
		sleep_ms(5);
}

static atomic_int noop_ran;
static void noop_run(struct offload_job *job)
{
	(void)job;
	atomic_fetch_add(&noop_ran, 1);
}

static struct offload_job waiting[OFFLOAD_LONG_WAITING_MAX];
static bool left[OFFLOAD_LONG_WAITING_MAX]; /* whose client has gone, by place in waiting */
static bool gone(struct offload_job *job)
{
	return left[job - waiting];
}

START_TEST(a_full_long_lane_refuses_and_says_when_to_come_back)
{
	/* 20 jobs of nobody in particular (held to no share), the owner's 8, 4 more: 32. */
	enum { OWNER = 5, BEFORE = 20, OWN_END = BEFORE + OFFLOAD_LONG_WAITING_PER_OWNER };
	ck_assert_int_eq(offload_start(&O), 0);
	struct offload_job paced = { .run = paced_run }, blocking = { .run = blocking_run };
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &paced, NULL), 0);
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &blocking, NULL), 0);
	/* The paced job has run and the blocking one runs once it is off the queue. */
	struct offload_stats st;
	for (int i = 0; i < 300; i++) {
		offload_stats(O, &st);
		if (st.long_waiting == 0)
			break;
		sleep_ms(5);
	}
	ck_assert_uint_eq(st.long_waiting, 0);
	for (size_t i = 0; i < OFFLOAD_LONG_WAITING_MAX; i++) {
		waiting[i] = (struct offload_job){ .run = noop_run,
		                                   .owner = i >= BEFORE && i < OWN_END ? OWNER : 0,
		                                   .gone = gone };
		ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &waiting[i], NULL), 0);
		if (i != OWN_END - 1)
			continue;
		/* The owner has its share: its next job is refused until its first runs, after the
		 * running one and the 20 before it (21 x 190 ms = 4.0 s). */
		struct offload_job one_more = { .run = noop_run, .owner = OWNER };
		struct offload_refusal why = { 0 };
		ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &one_more, &why), -EAGAIN);
		ck_assert(why.owner_share);
		ck_assert_uint_eq(why.waiting, OFFLOAD_LONG_WAITING_PER_OWNER);
		ck_assert_msg(why.retry_s == 4 || why.retry_s == 5, "retry in %u s", why.retry_s);
	}
	/* The queue is full: anyone is refused until what waits has run (32 x 190 ms = 6.1 s). */
	struct offload_job beyond = { .run = noop_run, .owner = 9 };
	struct offload_refusal why = { 0 };
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &beyond, &why), -EAGAIN);
	ck_assert(!why.owner_share);
	ck_assert_uint_eq(why.waiting, OFFLOAD_LONG_WAITING_MAX);
	ck_assert_msg(why.retry_s == 7 || why.retry_s == 8, "retry in %u s", why.retry_s);
	/* The quick lane takes its jobs still. */
	struct offload_job quick = { .run = noop_run, .owner = 9 };
	ck_assert_int_eq(offload_submit(O, OFFLOAD_QUICK, &quick, NULL), 0);
	offload_stats(O, &st);
	ck_assert_uint_eq(st.refused_full, 1);
	ck_assert_uint_eq(st.refused_owner_share, 1);
	ck_assert_uint_eq(st.long_waiting, OFFLOAD_LONG_WAITING_MAX);
	/* Three clients leave, one of them the owner's: their jobs take no room any more, and
	 * the owner has room for one. */
	left[0] = left[1] = left[BEFORE] = true;
	struct offload_job after[3] = { { .run = noop_run, .owner = OWNER },
		                        { .run = noop_run, .owner = OWNER },
		                        { .run = noop_run } };
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &after[0], NULL), 0);
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &after[1], &why), -EAGAIN);
	ck_assert(why.owner_share);
	ck_assert_int_eq(offload_submit(O, OFFLOAD_LONG, &after[2], NULL), 0);
	offload_stats(O, &st);
	ck_assert_uint_eq(st.long_waiting, OFFLOAD_LONG_WAITING_MAX - 1);
	ck_assert_uint_eq(st.refused_owner_share, 2);
	/* Every job taken runs once, those that left included (they are skipped there). */
	atomic_store(&release, true);
	offload_stop(&O);
	ck_assert_int_eq(atomic_load(&noop_ran), OFFLOAD_LONG_WAITING_MAX + 2 + 1); /* and the quick one */
}
END_TEST

/* Without threads a job runs at once, on the caller's thread, and yielding is a no-op. */
static bool ran;
static void mark(struct offload_job *job)
{
	(void)job;
	offload_yield(NULL);
	ran = true;
}

START_TEST(without_threads_a_job_runs_at_once)
{
	struct offload_job job = { .run = mark };
	offload_submit(NULL, OFFLOAD_LONG, &job, NULL);
	ck_assert(ran);
	offload_stop(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("offload");
	TCase *tc = tcase_create("offload");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_quick_job_passes_a_long_one_which_waits_meanwhile);
	tcase_add_test(tc, a_stream_of_quick_jobs_holds_a_long_one_back_a_second_at_most);
	tcase_add_test(tc, a_full_long_lane_refuses_and_says_when_to_come_back);
	tcase_add_test(tc, without_threads_a_job_runs_at_once);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
