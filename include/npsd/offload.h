#ifndef NPSD_OFFLOAD_H
#define NPSD_OFFLOAD_H

/*
 * Threads for slow reads: run on an HTTP thread they would hold up every other connection
 * that thread serves, survey platforms posting answers included. Two lanes, a thread each:
 * reads whose cost is bounded (tens of ms) take the quick lane, reads that grow with what
 * they select (a report over every answer: seconds) the long lane, so a scrape or an agent's
 * figures never queue behind managers' reports. Together they still take at most one core
 * from ingest: the long lane's work calls offload_yield(), which waits while the quick lane
 * has work.
 */
struct offload;

enum offload_lane {
	OFFLOAD_QUICK, /* bounded by what it reads, whatever the tables hold */
	OFFLOAD_LONG,  /* grows with the rows it selects */
};

struct offload_job {
	void (*run)(struct offload_job *job); /* on its lane's thread */
	struct offload_job *next;             /* the queue's */
};

int offload_start(struct offload **ret);
/* Queues job on lane; the jobs of a lane run once each, in order. Without threads (o NULL)
 * it runs at once, here. job is borrowed until its run has returned. */
void offload_submit(struct offload *o, enum offload_lane lane, struct offload_job *job);
/* For the long lane's jobs, between steps of their work: returns once the quick lane has
 * nothing queued or running, or once the job has waited here a second in all (then at
 * once: a stream of quick reads must not hold a report, and its snapshot, for ever). At
 * once when the quick lane has nothing, and for a NULL o. */
void offload_yield(struct offload *o);
/* Runs what is queued, stops and joins the threads, frees *o, NULLs it. NULL is a no-op. */
void offload_stop(struct offload **o);

#endif
