/* Cutting connections whose request is past its deadline (include/npsd/deadline.h). */
#include "npsd/deadline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "npsd/clock.h"

/* How often the thread looks: a connection is cut at most this long after its deadline. */
#define SWEEP_MS 1000

struct deadline_watch {
	struct deadline_watch *prev, *next;
	int fd;
	atomic_int_fast64_t deadline_ms; /* set by the owner's threads, read by the sweep */
};

struct deadlines {
	pthread_t thread;
	pthread_mutex_t lock; /* the list, and stopping */
	pthread_cond_t cond;  /* CLOCK_MONOTONIC: stopping */
	bool stopping;
	struct deadline_watch *head;
	atomic_uint_fast64_t cut;
};

static void sweep(struct deadlines *d, int64_t now_ms)
{
	for (struct deadline_watch *w = d->head; w; w = w->next) {
		int64_t at = atomic_load(&w->deadline_ms);
		if (at == 0 || at > now_ms)
			continue;
		/* Once (the owner closes the connection when it sees the shutdown), and not if
		 * the owner has just moved the deadline: its request ended in time. */
		if (!atomic_compare_exchange_strong(&w->deadline_ms, &at, 0))
			continue;
		/* Counted first: whoever sees the connection end may read the count at once. */
		atomic_fetch_add(&d->cut, 1);
		shutdown(w->fd, SHUT_RDWR);
	}
}

static void *deadlines_main(void *arg)
{
	struct deadlines *d = arg;
	pthread_setname_np(pthread_self(), "npsd-deadlines");
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct timespec until = clock_mono_after_ms(SWEEP_MS);
		if (pthread_cond_timedwait(&d->cond, &d->lock, &until) == ETIMEDOUT)
			sweep(d, clock_mono_ms());
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int deadlines_start(struct deadlines **ret)
{
	struct deadlines *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	clock_mono_cond_init(&d->cond);
	int r = -pthread_create(&d->thread, NULL, deadlines_main, d);
	if (r < 0) {
		pthread_cond_destroy(&d->cond);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

void deadlines_stop(struct deadlines **dp)
{
	if (!dp || !*dp)
		return;
	struct deadlines *d = *dp;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	while (d->head) {
		struct deadline_watch *w = d->head;
		d->head = w->next;
		free(w);
	}
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
	*dp = NULL;
}

struct deadline_watch *deadlines_add(struct deadlines *d, int fd, int64_t deadline_ms)
{
	struct deadline_watch *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->fd = fd;
	atomic_init(&w->deadline_ms, deadline_ms);
	pthread_mutex_lock(&d->lock);
	w->next = d->head;
	if (d->head)
		d->head->prev = w;
	d->head = w;
	pthread_mutex_unlock(&d->lock);
	return w;
}

void deadlines_remove(struct deadlines *d, struct deadline_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&d->lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		d->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&d->lock);
	free(w);
}

void deadline_set(struct deadline_watch *w, int64_t deadline_ms)
{
	if (w)
		atomic_store(&w->deadline_ms, deadline_ms);
}

void deadline_sooner(struct deadline_watch *w, int64_t deadline_ms)
{
	if (!w)
		return;
	int64_t at = atomic_load(&w->deadline_ms);
	/* A failed exchange reloads at: the sweep may have just cut the connection (0), and a
	 * second deadline would cut it, and count it, twice. */
	while (at != 0 && at > deadline_ms &&
	       !atomic_compare_exchange_weak(&w->deadline_ms, &at, deadline_ms))
		;
}

uint64_t deadlines_cut(struct deadlines *d)
{
	return atomic_load(&d->cut);
}
