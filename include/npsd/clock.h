#ifndef NPSD_CLOCK_H
#define NPSD_CLOCK_H
#include <pthread.h>
#include <stdint.h>
#include <time.h>

/*
 * The one source of wall-clock time, so tests can drive schedules without sleeping.
 * When the environment variable NPSD_FAKE_CLOCK_FILE names a file (test builds and
 * integration tests only), the time is read from it: unix seconds as text, re-read when
 * the file changes. Otherwise it is CLOCK_REALTIME.
 */
int64_t clock_now(void);    /* unix seconds */
int64_t clock_now_ms(void); /* unix milliseconds */
/* Monotonic milliseconds for measuring durations; never faked. */
int64_t clock_mono_ms(void);
/* The same in nanoseconds, for stage timings. */
int64_t clock_mono_ns(void);
/* CLOCK_MONOTONIC ms milliseconds from now: a deadline for pthread_cond_timedwait on a
 * condition variable set to that clock. */
struct timespec clock_mono_after_ms(int64_t ms);
/* Initialises cond on CLOCK_MONOTONIC, so that its timed waits ignore wall-clock steps. */
void clock_mono_cond_init(pthread_cond_t *cond);

#endif
