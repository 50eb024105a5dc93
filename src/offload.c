#include "npsd/offload.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "npsd/clock.h"

/* How long one long read may wait in offload_yield() in all, after which it runs to its end
 * beside the quick lane (two cores for reports, as never without this). Its read keeps its
 * snapshot while it waits, which stops the checkpoint from taking the WAL past it and
 * starting it again: a stream of quick reads with no gap (agents' consoles, a scraper in a
 * loop) would otherwise hold a report back, and the WAL growing, for as long as it lasts. */
#define LONG_PAUSE_MAX_MS 1000

/* A refusal's Retry-After before any long job has run: about a report over two million
 * answers. */
#define LONG_RUN_GUESS_MS 1000
/* A minute at most: by then the clients ahead have been served or have given up (and
 * are skipped in microseconds), and an estimate from the reports run so far says little
 * further out. */
#define RETRY_MAX_S 60

struct lane {
	struct offload *o;
	enum offload_lane kind;
	pthread_t thread;
	bool started;
	pthread_cond_t wake;
	struct offload_job *head, *tail;
	unsigned waiting; /* in that queue: the one running and those in left not counted */
	/* Jobs taken out of the queue because their client had gone (evict_gone), run before
	 * it: they are skipped in microseconds, and no walk of the queue asks about them again. */
	struct offload_job *left;
};

struct offload {
	pthread_mutex_t lock; /* both lanes' queues, stopping */
	struct lane lanes[2];
	bool stopping;
	/* Quick jobs queued or running: read without the lock by offload_yield(), thousands of
	 * times a second in a long report, so that it costs a load while there are none. */
	atomic_int quick_pending;
	pthread_cond_t quick_idle;
	int64_t long_pause_left_ms; /* of the long job running; only its lane's thread uses it */
	/* The long jobs' recent run time (an average weighing the last one by a quarter), for
	 * a refusal's Retry-After. Those of left are not in it; others skipped for a client
	 * gone pull it down (the lane cannot tell them): Retry-After is a hint, not a promise. */
	int64_t long_run_ms;
	bool long_ran;
	uint64_t refused_full, refused_owner_share;
};

static void *lane_main(void *arg)
{
	struct lane *l = arg;
	struct offload *o = l->o;
	pthread_setname_np(pthread_self(), l->kind == OFFLOAD_QUICK ? "npsd-quick" : "npsd-reports");
	pthread_mutex_lock(&o->lock);
	for (;;) {
		bool evicted = l->left;
		struct offload_job *job = evicted ? l->left : l->head;
		if (!job) {
			if (o->stopping)
				break;
			pthread_cond_wait(&l->wake, &o->lock);
			continue;
		}
		if (evicted) {
			l->left = job->next;
		} else {
			l->head = job->next;
			if (!l->head)
				l->tail = NULL;
			l->waiting--;
		}
		if (l->kind == OFFLOAD_LONG)
			o->long_pause_left_ms = LONG_PAUSE_MAX_MS;
		pthread_mutex_unlock(&o->lock);
		int64_t started = clock_mono_ms();
		job->run(job);
		int64_t ran = clock_mono_ms() - started;
		pthread_mutex_lock(&o->lock);
		if (l->kind == OFFLOAD_LONG && !evicted) {
			o->long_run_ms = o->long_ran ? (3 * o->long_run_ms + ran) / 4 : ran;
			o->long_ran = true;
		}
		/* Under the lock, which offload_yield() waits with: its wake is not lost. */
		if (l->kind == OFFLOAD_QUICK && atomic_fetch_sub(&o->quick_pending, 1) == 1)
			pthread_cond_broadcast(&o->quick_idle);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

static void offload_free(struct offload *o)
{
	for (size_t i = 0; i < 2; i++)
		pthread_cond_destroy(&o->lanes[i].wake);
	pthread_cond_destroy(&o->quick_idle);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

int offload_start(struct offload **ret)
{
	struct offload *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	clock_mono_cond_init(&o->quick_idle);
	atomic_init(&o->quick_pending, 0);
	o->long_run_ms = LONG_RUN_GUESS_MS;
	for (size_t i = 0; i < 2; i++) {
		o->lanes[i] = (struct lane){ .o = o, .kind = i == 0 ? OFFLOAD_QUICK : OFFLOAD_LONG };
		pthread_cond_init(&o->lanes[i].wake, NULL);
	}
	for (size_t i = 0; i < 2; i++) {
		int r = -pthread_create(&o->lanes[i].thread, NULL, lane_main, &o->lanes[i]);
		if (r < 0) {
			offload_stop(&o);
			return r;
		}
		o->lanes[i].started = true;
	}
	*ret = o;
	return 0;
}

/* The time ahead jobs take at the recent pace, in whole seconds, 1 to RETRY_MAX_S. */
static unsigned retry_seconds(const struct offload *o, unsigned ahead)
{
	int64_t s = (o->long_run_ms * (int64_t)ahead + 999) / 1000;
	return s < 1 ? 1 : s > RETRY_MAX_S ? RETRY_MAX_S : (unsigned)s;
}

/* Under the lock: moves the jobs of l's queue whose client has gone to l->left. A poll()
 * each, so only at a limit; the queue then holds at most OFFLOAD_LONG_WAITING_MAX, and each
 * job that has gone is asked about no more, whatever a client that opens and closes
 * connections in a loop sends. */
static void evict_gone(struct lane *l)
{
	struct offload_job **at = &l->head, *last = NULL;
	while (*at) {
		struct offload_job *j = *at;
		if (j->gone && j->gone(j)) {
			*at = j->next;
			j->next = l->left;
			l->left = j;
			l->waiting--;
		} else {
			last = j;
			at = &j->next;
		}
	}
	l->tail = last;
}

/* Under the lock: the jobs of owner in l's queue, with the place of the first in *first. */
static unsigned waiting_of(const struct lane *l, int64_t owner, unsigned *first)
{
	unsigned n = 0, at = 0;
	*first = 0;
	for (const struct offload_job *j = l->head; j; j = j->next, at++)
		if (j->owner == owner && n++ == 0)
			*first = at;
	return n;
}

/* Under the lock: 0 when the long lane l takes job, else -EAGAIN with *why. */
static int long_lane_room(struct offload *o, struct lane *l, const struct offload_job *job,
                          struct offload_refusal *why)
{
	if (l->waiting >= OFFLOAD_LONG_WAITING_MAX)
		evict_gone(l);
	if (l->waiting >= OFFLOAD_LONG_WAITING_MAX) {
		o->refused_full++;
		*why = (struct offload_refusal){ .waiting = l->waiting,
			                         .retry_s = retry_seconds(o, l->waiting) };
		return -EAGAIN;
	}
	if (!job->owner)
		return 0;
	unsigned first, own = waiting_of(l, job->owner, &first);
	if (own >= OFFLOAD_LONG_WAITING_PER_OWNER) {
		evict_gone(l);
		own = waiting_of(l, job->owner, &first);
	}
	if (own < OFFLOAD_LONG_WAITING_PER_OWNER)
		return 0;
	o->refused_owner_share++;
	/* Once its first waiting job starts to run, the owner has room again. */
	*why = (struct offload_refusal){ .owner_share = true,
		                         .waiting = own,
		                         .retry_s = retry_seconds(o, first + 1) };
	return -EAGAIN;
}

int offload_submit(struct offload *o, enum offload_lane lane, struct offload_job *job,
                   struct offload_refusal *ret_refusal)
{
	if (!o) {
		job->run(job);
		return 0;
	}
	struct lane *l = &o->lanes[lane == OFFLOAD_QUICK ? 0 : 1];
	job->next = NULL;
	pthread_mutex_lock(&o->lock);
	if (lane == OFFLOAD_LONG) {
		struct offload_refusal why;
		int r = long_lane_room(o, l, job, &why);
		if (r < 0) {
			pthread_mutex_unlock(&o->lock);
			if (ret_refusal)
				*ret_refusal = why;
			return r;
		}
	}
	if (lane == OFFLOAD_QUICK)
		atomic_fetch_add(&o->quick_pending, 1);
	l->waiting++;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

void offload_stats(struct offload *o, struct offload_stats *ret)
{
	*ret = (struct offload_stats){ 0 };
	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	ret->refused_full = o->refused_full;
	ret->refused_owner_share = o->refused_owner_share;
	ret->long_waiting = o->lanes[1].waiting;
	pthread_mutex_unlock(&o->lock);
}

void offload_yield(struct offload *o)
{
	if (!o || atomic_load_explicit(&o->quick_pending, memory_order_relaxed) == 0 ||
	    o->long_pause_left_ms <= 0)
		return;
	int64_t start = clock_mono_ms();
	struct timespec until = clock_mono_after_ms(o->long_pause_left_ms);
	pthread_mutex_lock(&o->lock);
	while (atomic_load(&o->quick_pending) > 0 &&
	       pthread_cond_timedwait(&o->quick_idle, &o->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&o->lock);
	o->long_pause_left_ms -= clock_mono_ms() - start;
}

void offload_stop(struct offload **op)
{
	if (!op || !*op)
		return;
	struct offload *o = *op;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	for (size_t i = 0; i < 2; i++)
		pthread_cond_signal(&o->lanes[i].wake);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < 2; i++)
		if (o->lanes[i].started)
			pthread_join(o->lanes[i].thread, NULL);
	offload_free(o);
	*op = NULL;
}
