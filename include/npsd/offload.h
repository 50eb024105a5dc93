#ifndef NPSD_OFFLOAD_H
#define NPSD_OFFLOAD_H

#include <stdbool.h>
#include <stdint.h>

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
	/* Who asked (an API key's id), for the long lane's share per owner; 0: nobody in
	 * particular, held to no share. */
	int64_t owner;
	/* Whether whoever asked has left (NULL: never), asked under the lanes' lock from the
	 * submitting thread while the job is queued, and only when a limit below is reached:
	 * such a job is taken out of the queue, to take no room there, and run (to be skipped
	 * in microseconds) once the job running is done. A manager who reloads the page while
	 * their reports wait is not refused for the ones the reload abandoned. */
	bool (*gone)(struct offload_job *job);
	struct offload_job *next; /* the queue's */
};

/* Long jobs waiting at most (the one running not counted), and one owner's share of them.
 * The long lane runs one report at a time (0.5-1.5 s each over two million answers):
 * 32 waiting is 15-50 s for the last, about what a manager, a browser or a proxy in front
 * waits before giving up, and every waiting connection holds its memory. A report asked
 * beyond that is better refused at once, with when to come back, than queued behind
 * a minute of reports for a client who has left by its turn. Eight for one owner: one
 * manager's reports page asks three at once, so a few tabs of it fit, while
 * a dashboard or script in a loop on one key leaves three quarters of the queue to the
 * others. */
#define OFFLOAD_LONG_WAITING_MAX 32
#define OFFLOAD_LONG_WAITING_PER_OWNER 8

/* Why a long job was not queued: for the refusal's message and its Retry-After. */
struct offload_refusal {
	bool owner_share; /* true: the owner has its share waiting; false: the queue is full */
	unsigned waiting; /* the jobs waiting: the owner's, or all of them */
	unsigned retry_s; /* when to ask again, in whole seconds (1-60): see offload_submit */
};

/* Since start: long jobs refused, by reason; and the long jobs waiting now. For /metrics. */
struct offload_stats {
	uint64_t refused_full, refused_owner_share;
	unsigned long_waiting;
};

int offload_start(struct offload **ret);
/* Queues job on lane; the jobs of a lane run once each, in order. Without threads (o NULL)
 * it runs at once, here. job is borrowed until its run has returned. Returns 0, or, for
 * the long lane only, -EAGAIN when OFFLOAD_LONG_WAITING_MAX jobs wait already or
 * OFFLOAD_LONG_WAITING_PER_OWNER of job's owner do (not counting those gone): job is not
 * queued (nor run), and
 * *ret_refusal (may be NULL) says why and when to ask again, estimated from the jobs
 * ahead and the recent jobs' run times: all those waiting for a full queue (when what is
 * queued now has run: sooner, every refused client would come back to a full queue), or
 * those up to the owner's first for its share (which then starts to run). */
int offload_submit(struct offload *o, enum offload_lane lane, struct offload_job *job,
                   struct offload_refusal *ret_refusal);
/* Zeros for a NULL o. */
void offload_stats(struct offload *o, struct offload_stats *ret);
/* For the long lane's jobs, between steps of their work: returns once the quick lane has
 * nothing queued or running, or once the job has waited here a second in all (then at
 * once: a stream of quick reads must not hold a report, and its snapshot, for ever). At
 * once when the quick lane has nothing, and for a NULL o. */
void offload_yield(struct offload *o);
/* Runs what is queued, stops and joins the threads, frees *o, NULLs it. NULL is a no-op. */
void offload_stop(struct offload **o);

#endif
