#include "npsd/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/clock.h"
#include "npsd/log.h"
#include "npsd/validate.h"

#define RUN_EVERY_S (24 * 3600)
#define LOOK_MS (3600 * 1000)
#define FAKE_CLOCK_LOOK_MS 100 /* a test's clock jumps */

bool purge_counts_zero(const struct purge_counts *c)
{
	static const struct purge_counts zero;
	return memcmp(c, &zero, sizeof zero) == 0;
}

static void counts_add(struct purge_counts *sum, const struct purge_counts *c)
{
	sum->surveys += c->surveys;
	sum->callbacks += c->callbacks;
	sum->improvements += c->improvements;
	sum->callback_events += c->callback_events;
	sum->customers += c->customers;
	sum->customers_kept_do_not_call += c->customers_kept_do_not_call;
	sum->events += c->events;
	sum->deliveries += c->deliveries;
	sum->attempts += c->attempts;
}

struct purge_batch {
	int64_t cutoff;
	struct purge_cursor cursor;
	struct purge_counts counts;
	char *why;
};

static int apply_batch(struct db_conn *conn, void *arg)
{
	struct purge_batch *b = arg;
	b->counts = (struct purge_counts){ 0 };
	int r = store_purge_batch(conn, b->cutoff, RETENTION_BATCH, &b->cursor, &b->counts, b->why,
	                          DB_WHY_LEN);
	if (r < 0) /* rolled back: a sync failing after would otherwise put them in doubt */
		b->counts = (struct purge_counts){ 0 };
	return r;
}

int retention_purge(struct npsd_db *db, int64_t cutoff, const atomic_bool *stop, struct purge_report *ret)
{
	*ret = (struct purge_report){ 0 };
	struct purge_batch b = { .cutoff = cutoff, .cursor = PURGE_CURSOR_START, .why = ret->why };
	do {
		if (stop && atomic_load(stop))
			return 0;
		int r = db_write_sync(db, apply_batch, &b);
		/* Its apply ran to the end and its COMMIT went through: the counts are what the
		 * batch deleted, unless the disk lost them. */
		if (r == -ENOTRECOVERABLE)
			ret->in_doubt = b.counts;
		if (r < 0)
			return r;
		counts_add(&ret->total, &b.counts);
	} while (!purge_counts_zero(&b.counts));
	return 0;
}

bool retention_truncation_helps(int r, const struct purge_counts *total)
{
	/* Failed before it deleted anything, whatever the cause (the write lock held, an I/O
	 * error, a row it could not delete): the tries (about ten seconds when writes or
	 * readers keep the WAL busy) only put its report off. */
	if (purge_counts_zero(total))
		return false;
	/* Failed part-way: the batches it finished left older copies of their rows in the WAL,
	 * worth the tries (the lock's holder may let go within them; on a full disk the
	 * truncation is what frees room), unless the storage failed: after a failed sync the
	 * kernel may have dropped the pages the checkpoint would copy, and a checkpoint into
	 * a file SQLite found corrupt only writes more of it. */
	return r != -EIO && r != -ENOTRECOVERABLE && r != -EROFS && r != -EUCLEAN;
}

/* The checkpoint waits for readers holding the write lock, and every write of npsd waits
 * with it: a try that waited a second held up every answer for a second whenever a report
 * ran through it. A short wait per try outlasts a request's own reads, and many tries spread
 * over as long outlast what a second each did, at a tenth of the writes' time. */
#define TRUNCATE_WAIT_MS 50
#define TRUNCATE_PAUSE_MS 450
#define TRUNCATE_PAUSE_STEP_MS 50

int retention_truncate_wal(struct npsd_db *db, const atomic_bool *stop)
{
	int r = -EBUSY;
	for (int i = 0; r == -EBUSY && i < RETENTION_TRUNCATE_TRIES; i++) {
		/* A pause, not a try at once: a checkpoint of npsd's own under way fails the
		 * next try without waiting, and a report may be over by then. */
		for (int waited = 0; i > 0 && waited < TRUNCATE_PAUSE_MS; waited += TRUNCATE_PAUSE_STEP_MS) {
			if (stop && atomic_load(stop))
				return r;
			struct timespec pause = { .tv_nsec = TRUNCATE_PAUSE_STEP_MS * 1000000L };
			nanosleep(&pause, NULL);
		}
		if (stop && atomic_load(stop))
			return r;
		r = db_wal_truncate(db, TRUNCATE_WAIT_MS);
	}
	return r;
}

struct retention {
	struct npsd_db *db;
	_Atomic(const struct npsd_config *) *cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	atomic_bool stopping;
	bool fake_clock;
	bool wal_has_copies; /* the last truncation after a purge failed: try again */
};

static void run_once(struct retention *rt)
{
	int64_t days = atomic_load(rt->cfg)->retention_days;
	int64_t cutoff = clock_now() - days * 86400;
	struct purge_report p;
	int r = retention_purge(rt->db, cutoff, &rt->stopping, &p);
	const struct purge_counts *c = &p.total;
	bool purged = !purge_counts_zero(c);
	char at[21];
	if (r < 0)
		log_warn("retention: purge of what is older than %s stopped: %s%s%s",
		         time_format_rfc3339(cutoff, at), db_strerror(r), p.why[0] ? ": " : "", p.why);
	if (!purge_counts_zero(&p.in_doubt))
		log_warn("retention: the disk failed while a batch was written: %lld answers, %lld "
		         "callbacks, %lld customers, %lld events may or may not have been purged; a run "
		         "after npsd's restart purges them if they are still there",
		         (long long)p.in_doubt.surveys, (long long)p.in_doubt.callbacks,
		         (long long)p.in_doubt.customers, (long long)p.in_doubt.events);
	/* After one that found nothing too when the last run could not truncate; after one that
	 * failed, as npsctl purge decides. */
	if (r == 0 ? purged || rt->wal_has_copies : retention_truncation_helps(r, c)) {
		int t = retention_truncate_wal(rt->db, &rt->stopping);
		rt->wal_has_copies = t < 0;
		if (t < 0 && !atomic_load(&rt->stopping))
			log_warn("retention: the purged rows are gone from the database, but older copies "
			         "may stay in its WAL until npsd reuses it or stops (%s); the next run tries "
			         "again",
			         db_strerror(t));
	} else if (purged) {
		rt->wal_has_copies = true;
		log_warn("retention: the purged rows are gone from the database, but older copies may "
		         "stay in its WAL until npsd reuses it or stops (%s: not truncated on the storage "
		         "that failed); the next run tries again",
		         db_strerror(r));
	}
	if (purged)
		log_info("retention: purged %lld answers, %lld callbacks, %lld customers, %lld events older "
		         "than %s (retention.days %lld)",
		         (long long)c->surveys, (long long)c->callbacks, (long long)c->customers,
		         (long long)c->events, time_format_rfc3339(cutoff, at), (long long)days);
}

static void *retention_main(void *arg)
{
	struct retention *rt = arg;
	pthread_setname_np(pthread_self(), "npsd-retention");
	int64_t next_run = 0; /* at start */
	for (;;) {
		/* Due a day after the last run began, not after it ended: a clock that moved on
		 * during a run (a large purge, the WAL's tries) put the next one a day after that,
		 * and a day went by without one (a test's clock, moved on while a run went on). */
		int64_t began = clock_now();
		if (began >= next_run) {
			run_once(rt);
			next_run = began + RUN_EVERY_S;
		}
		/* A day by the clock npsd keeps (a test's fake one too), looked at now and then. */
		struct timespec until = clock_mono_after_ms(rt->fake_clock ? FAKE_CLOCK_LOOK_MS : LOOK_MS);
		pthread_mutex_lock(&rt->lock);
		while (!atomic_load(&rt->stopping) &&
		       pthread_cond_timedwait(&rt->cond, &rt->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&rt->lock);
		if (atomic_load(&rt->stopping))
			return NULL;
	}
}

int retention_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, struct retention **ret)
{
	struct retention *rt = calloc(1, sizeof *rt);
	if (!rt)
		return -ENOMEM;
	rt->db = db;
	rt->cfg = cfg;
	atomic_init(&rt->stopping, false);
	const char *fake = getenv("NPSD_FAKE_CLOCK_FILE");
	rt->fake_clock = fake && *fake;
	pthread_mutex_init(&rt->lock, NULL);
	clock_mono_cond_init(&rt->cond);
	int r = -pthread_create(&rt->thread, NULL, retention_main, rt);
	if (r < 0) {
		pthread_cond_destroy(&rt->cond);
		pthread_mutex_destroy(&rt->lock);
		free(rt);
		return r;
	}
	*ret = rt;
	return 0;
}

void retention_stop(struct retention **rp)
{
	if (!rp || !*rp)
		return;
	struct retention *rt = *rp;
	pthread_mutex_lock(&rt->lock);
	atomic_store(&rt->stopping, true);
	pthread_cond_signal(&rt->cond);
	pthread_mutex_unlock(&rt->lock);
	pthread_join(rt->thread, NULL);
	pthread_cond_destroy(&rt->cond);
	pthread_mutex_destroy(&rt->lock);
	free(rt);
	*rp = NULL;
}
