#include "npsd/offload.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct offload {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct offload_job *head, *tail;
	bool stopping;
};

static void *offload_main(void *arg)
{
	struct offload *o = arg;
	pthread_setname_np(pthread_self(), "npsd-reports");
	pthread_mutex_lock(&o->lock);
	for (;;) {
		struct offload_job *job = o->head;
		if (!job) {
			if (o->stopping)
				break;
			pthread_cond_wait(&o->wake, &o->lock);
			continue;
		}
		o->head = job->next;
		if (!o->head)
			o->tail = NULL;
		pthread_mutex_unlock(&o->lock);
		job->run(job);
		pthread_mutex_lock(&o->lock);
	}
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

int offload_start(struct offload **ret)
{
	struct offload *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->wake, NULL);
	int r = -pthread_create(&o->thread, NULL, offload_main, o);
	if (r < 0) {
		pthread_cond_destroy(&o->wake);
		pthread_mutex_destroy(&o->lock);
		free(o);
		return r;
	}
	*ret = o;
	return 0;
}

void offload_submit(struct offload *o, struct offload_job *job)
{
	if (!o) {
		job->run(job);
		return;
	}
	job->next = NULL;
	pthread_mutex_lock(&o->lock);
	if (o->tail)
		o->tail->next = job;
	else
		o->head = job;
	o->tail = job;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
}

void offload_stop(struct offload **op)
{
	if (!op || !*op)
		return;
	struct offload *o = *op;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->wake);
	pthread_mutex_destroy(&o->lock);
	free(o);
	*op = NULL;
}
