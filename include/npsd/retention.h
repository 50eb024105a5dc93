#ifndef NPSD_RETENTION_H
#define NPSD_RETENTION_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/store.h"

/*
 * Retention ([retention] days): what is older goes, in short transactions through the
 * writer so that ingest beside it hardly notices. The daemon's thread purges at start and
 * then once a day; `npsctl purge` runs the same purge on demand.
 */

/* What a purge did. A batch whose sync failed (-ENOTRECOVERABLE: committed, not known to be
 * on disk) is in neither count of the other: it may or may not be gone after a restart. */
struct purge_report {
	struct purge_counts total;    /* the batches committed and on disk */
	struct purge_counts in_doubt; /* the batch whose sync failed; zero otherwise */
	char why[DB_WHY_LEN];         /* SQLite's words for the failure (db_last_error), or "" */
};

/* Purges everything older than cutoff (store_purge_batch's rules), a transaction of at most
 * RETENTION_BATCH rows per kind at a time, until a batch finds nothing; *ret gets what it
 * did, also when it failed part-way. stop (may be NULL) is read between batches: true ends
 * the purge early with 0. 0 or a negative errno. */
#define RETENTION_BATCH 500
int retention_purge(struct npsd_db *db, int64_t cutoff, const atomic_bool *stop, struct purge_report *ret);

/* Whether the WAL's truncation tries are worth making after a purge that failed with r (< 0)
 * having finished total: not when it finished nothing (it left no copies, and the run
 * again that the failure asks for truncates), nor when the storage failed (the checkpoint
 * writes to it). npsctl purge and npsd's daily run decide alike. */
bool retention_truncation_helps(int r, const struct purge_counts *total);

bool purge_counts_zero(const struct purge_counts *c);

/* After a purge or an erasure, whose deletes zeroed what they freed: copies the WAL into
 * the database file and truncates it (db_wal_truncate), so that no older WAL frame keeps a
 * copy of the deleted rows either. npsd's writes, readers and own checkpoints keep that
 * busy now and then, so up to RETENTION_TRUNCATE_TRIES tries over about ten seconds, each
 * holding up npsd's writes for 50 ms at most. stop (may be NULL) is read between tries: true
 * ends it early with -EBUSY. 0, -EBUSY when every try found it busy, or another negative
 * errno. */
#define RETENTION_TRUNCATE_TRIES 20
int retention_truncate_wal(struct npsd_db *db, const atomic_bool *stop);

struct retention;
/* Starts the thread; db and cfg (the live config, re-read at each run so that SIGHUP's
 * retention.days applies) are borrowed until retention_stop(). */
int retention_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, struct retention **ret);
/* Stops it (a purge under way ends after its current batch), joins it, frees *r and NULLs
 * it. NULL is a no-op. */
void retention_stop(struct retention **r);

#endif
