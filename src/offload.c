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

struct lane {
	struct offload *o;
	enum offload_lane kind;
	pthread_t thread;
	bool started;
	pthread_cond_t wake;
	struct offload_job *head, *tail;
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
};

static void *lane_main(void *arg)
{
	struct lane *l = arg;
	struct offload *o = l->o;
	pthread_setname_np(pthread_self(), l->kind == OFFLOAD_QUICK ? "npsd-quick" : "npsd-reports");
	pthread_mutex_lock(&o->lock);
	for (;;) {
		struct offload_job *job = l->head;
		if (!job) {
			if (o->stopping)
				break;
			pthread_cond_wait(&l->wake, &o->lock);
			continue;
		}
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
		if (l->kind == OFFLOAD_LONG)
			o->long_pause_left_ms = LONG_PAUSE_MAX_MS;
		pthread_mutex_unlock(&o->lock);
		job->run(job);
		pthread_mutex_lock(&o->lock);
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

void offload_submit(struct offload *o, enum offload_lane lane, struct offload_job *job)
{
	if (!o) {
		job->run(job);
		return;
	}
	struct lane *l = &o->lanes[lane == OFFLOAD_QUICK ? 0 : 1];
	job->next = NULL;
	pthread_mutex_lock(&o->lock);
	if (lane == OFFLOAD_QUICK)
		atomic_fetch_add(&o->quick_pending, 1);
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
	pthread_cond_signal(&l->wake);
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
