#include "npsd/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/callbacks.h"
#include "npsd/clock.h"
#include "npsd/log.h"
#include "npsd/store.h"

/* Deadlines are wall-clock times, and the sleep until one runs on the monotonic clock: a
 * step of the wall clock (NTP setting it right after a VM was paused) would leave a lease or
 * an SLA that came due meanwhile waiting for the end of the sleep. Look at least this often. */
#define RECHECK_S 60
#define WAKE_COALESCE_MS 200 /* commits come in thousands a second; deadlines minutes ahead */
#define FAKE_CLOCK_POLL_MS 100

struct scheduler {
	struct npsd_db *db;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	bool woken, stopping;
	bool fake_clock;
};

static int tick_apply(struct db_conn *conn, void *arg)
{
	return callbacks_tick(conn, *(const int64_t *)arg);
}

int64_t scheduler_sleep_ms(int64_t now, int64_t next_deadline)
{
	if (next_deadline <= 0 || next_deadline - now >= RECHECK_S)
		return RECHECK_S * 1000;
	return next_deadline > now ? (next_deadline - now) * 1000 : 1000; /* a retry after a failed tick */
}

/* Runs what is due and returns how long to sleep, in milliseconds. */
static int64_t run_once(struct scheduler *s)
{
	int64_t now = clock_now();
	int r = db_write_sync(s->db, tick_apply, &now);
	if (r < 0)
		log_warn("scheduler: tick failed: %s", strerror(-r));
	else if (r > 0)
		log_debug("scheduler: %d callbacks changed", r);
	int64_t next = 0;
	struct db_conn *conn = db_reader(s->db);
	r = store_callbacks_next_deadline(conn, &next);
	db_reader_put(s->db, conn);
	int64_t sleep_ms = r < 0 ? 1000 : scheduler_sleep_ms(now, next);
	if (s->fake_clock && sleep_ms > FAKE_CLOCK_POLL_MS)
		sleep_ms = FAKE_CLOCK_POLL_MS;
	return sleep_ms;
}

static void *scheduler_main(void *arg)
{
	struct scheduler *s = arg;
	pthread_setname_np(pthread_self(), "npsd-scheduler");
	for (;;) {
		int64_t sleep_ms = run_once(s);
		struct timespec until = clock_mono_after_ms(sleep_ms);
		struct timespec earliest = clock_mono_after_ms(WAKE_COALESCE_MS);
		pthread_mutex_lock(&s->lock);
		/* A wake re-reads the deadlines, but not before WAKE_COALESCE_MS has passed. One may
		 * have come while the tick ran (its own commit wakes us, and so may a claim that
		 * set a new lease): scheduler_wake() signals only once until the flag is cleared,
		 * so the flag is looked at before every wait, not only after one. */
		while (!s->stopping) {
			if (s->woken) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				if (now.tv_sec > earliest.tv_sec ||
				    (now.tv_sec == earliest.tv_sec && now.tv_nsec >= earliest.tv_nsec))
					break;
				if (earliest.tv_sec < until.tv_sec ||
				    (earliest.tv_sec == until.tv_sec && earliest.tv_nsec < until.tv_nsec))
					until = earliest;
			}
			if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
				break;
		}
		s->woken = false;
		bool stop = s->stopping;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			break;
	}
	return NULL;
}

int scheduler_start(struct npsd_db *db, struct scheduler **ret)
{
	struct scheduler *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->db = db;
	const char *fake = getenv("NPSD_FAKE_CLOCK_FILE");
	s->fake_clock = fake && *fake;
	pthread_mutex_init(&s->lock, NULL);
	clock_mono_cond_init(&s->cond);
	int r = -pthread_create(&s->thread, NULL, scheduler_main, s);
	if (r < 0) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void scheduler_wake(void *arg)
{
	struct scheduler *s = arg;
	pthread_mutex_lock(&s->lock);
	if (!s->woken) {
		s->woken = true;
		pthread_cond_signal(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

void scheduler_stop(struct scheduler **sp)
{
	if (!sp || !*sp)
		return;
	struct scheduler *s = *sp;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	*sp = NULL;
}
