#ifndef NPSD_OFFLOAD_H
#define NPSD_OFFLOAD_H

/*
 * A thread for slow reads (reports over many answers): run on an HTTP thread they would
 * hold up every other connection that thread serves, survey platforms posting answers
 * included. One thread: reports wait for each other rather than take both cores from
 * ingest.
 */
struct offload;

struct offload_job {
	void (*run)(struct offload_job *job); /* on the offload thread */
	struct offload_job *next;             /* the queue's */
};

int offload_start(struct offload **ret);
/* Queues job; it runs once, in order. Without a thread (o NULL) it runs at once, here. job
 * is borrowed until its run has returned. */
void offload_submit(struct offload *o, struct offload_job *job);
/* Runs what is queued, stops and joins the thread, frees *o, NULLs it. NULL is a no-op. */
void offload_stop(struct offload **o);

#endif
