/*
 * The WAL's checkpoints, mostly off the writer thread.
 *
 * Why: with SQLite's automatic checkpoint the COMMIT that takes the WAL past its limit
 * copies the WAL into the database file and fsyncs both, on the writer thread, while
 * every request behind it waits. Copying 4,000 pages took 5–40 ms here, so every few
 * hundred commits all requests in flight stalled together (the slow tail of the claim
 * bench: four agents' claims, 5–7 ms each, at the same instant).
 *
 * A PASSIVE checkpoint needs no lock a writer takes, so the bulk of the copying runs
 * beside the commits, on a connection and thread of their own. It cannot finish the job
 * alone: SQLite starts the WAL over only when a write transaction begins with every frame
 * already copied, and under load the writer begins its next transaction right after each
 * COMMIT, while the checkpoint is still behind. Left at that the WAL grew without bound
 * (17,000 frames in the claim bench, and a growing file makes every fdatasync slower).
 * So once a background pass has copied all that was there, the writer copies the frames
 * committed during that pass, itself, right after its next COMMIT (in its WAL hook): its
 * next transaction then starts the WAL over. That costs the writer a short copy and two
 * fsyncs once per WAL cycle instead of the whole copy.
 *
 * Durability is unchanged: with synchronous=NORMAL a checkpoint fsyncs the WAL before it
 * copies a page and the database file after.
 */
#include "npsd/db_checkpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/clock.h"
#include "npsd/db_vfs.h"
#include "npsd/log.h"

/* Between two background passes at least this long: one that could not finish (a reader
 * on an older snapshot) is not retried at every commit. */
#define CHECKPOINT_SPACING_MS 50

struct db_checkpointer {
	sqlite3 *handle;
	int wal_frames;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* CLOCK_MONOTONIC */
	atomic_bool wanted;
	bool stopping;
	/* The last background pass (under lock): its number, the WAL generation it ran in, the
	 * WAL's frames and how many of them were copied when it ended. */
	uint64_t pass, pass_generation;
	int pass_frames, pass_copied;
	/* The writer's own, in its WAL hook: the WAL starts over (its size drops) in a new
	 * generation; the pass it last finished. */
	atomic_uint_fast64_t generation;
	int last_frames;
	uint64_t finished_pass;
	atomic_uint_fast64_t runs, ns, finishes, finish_ns;
};

/* Waits, holding c->lock, until a checkpoint is wanted (until == NULL) or until the time
 * until has come; returns true instead once the checkpointer is stopping. */
static bool wait_stopping(struct db_checkpointer *c, const struct timespec *until)
{
	while (!c->stopping) {
		if (!until && atomic_load(&c->wanted))
			return false;
		int rc = until ? pthread_cond_timedwait(&c->wake, &c->lock, until)
		               : pthread_cond_wait(&c->wake, &c->lock);
		if (rc == ETIMEDOUT)
			return false;
	}
	return true;
}

static void *checkpointer_main(void *arg)
{
	struct db_checkpointer *c = arg;
	pthread_setname_np(pthread_self(), "npsd-checkpoint");
	int last_rc = SQLITE_OK;
	pthread_mutex_lock(&c->lock);
	while (!wait_stopping(c, NULL)) {
		pthread_mutex_unlock(&c->lock);
		uint64_t generation = atomic_load(&c->generation);
		int64_t began = clock_mono_ns();
		int frames = 0, copied = 0;
		int rc = sqlite3_wal_checkpoint_v2(c->handle, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames,
		                                   &copied);
		atomic_fetch_add(&c->ns, (uint64_t)(clock_mono_ns() - began));
		atomic_fetch_add(&c->runs, 1);
		/* BUSY: the writer is finishing the last pass, or a closing connection checkpoints;
		 * the next pass catches up. */
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != last_rc)
			log_warn("db: checkpoint failed: %s", sqlite3_errmsg(c->handle));
		last_rc = rc;
		struct timespec until = clock_mono_after_ms(CHECKPOINT_SPACING_MS);
		pthread_mutex_lock(&c->lock);
		c->pass++;
		c->pass_generation = generation;
		c->pass_frames = rc == SQLITE_OK ? frames : -1;
		c->pass_copied = copied;
		if (wait_stopping(c, &until))
			break;
		/* Commits meanwhile asked again; the next one past the limit asks anew. */
		atomic_store(&c->wanted, false);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* True when the last background pass copied the whole WAL of this generation: the writer
 * copies what was committed during that pass (once per pass). A cap on that would not
 * hold: when writes come faster than a pass copies, every pass leaves more than the cap,
 * and the WAL grows without end (the test's tight loop: 470,000 frames in 20 s). */
static bool finish_due(struct db_checkpointer *c)
{
	pthread_mutex_lock(&c->lock);
	bool due = c->pass != c->finished_pass && c->pass_generation == atomic_load(&c->generation) &&
	           c->pass_frames >= 0 && c->pass_copied == c->pass_frames;
	if (due)
		c->finished_pass = c->pass;
	pthread_mutex_unlock(&c->lock);
	return due;
}

int db_checkpointer_wal_hook(void *checkpointer, sqlite3 *handle, const char *schema, int frames)
{
	struct db_checkpointer *c = checkpointer;
	if (frames < c->last_frames)
		atomic_fetch_add(&c->generation, 1);
	c->last_frames = frames;
	if (frames < c->wal_frames)
		return SQLITE_OK;
	if (!atomic_load(&c->wanted) && !atomic_exchange(&c->wanted, true)) {
		pthread_mutex_lock(&c->lock);
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->lock);
	}
	if (finish_due(c)) {
		int64_t began = clock_mono_ns();
		/* BUSY: a background pass has begun meanwhile; the next pass is finished instead. */
		sqlite3_wal_checkpoint_v2(handle, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		atomic_fetch_add(&c->finish_ns, (uint64_t)(clock_mono_ns() - began));
		atomic_fetch_add(&c->finishes, 1);
	}
	return SQLITE_OK;
}

int db_checkpointer_start(const char *path, int wal_frames, struct db_checkpointer **ret, char **ret_error)
{
	*ret_error = NULL;
	struct db_checkpointer *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->wal_frames = wal_frames;
	pthread_mutex_init(&c->lock, NULL);
	clock_mono_cond_init(&c->wake);
	int r = -EIO;
	int rc = sqlite3_open_v2(path, &c->handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                         db_vfs_register() == 0 ? DB_VFS_NAME : NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->handle, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		if (asprintf(ret_error, "%s: cannot open the checkpoint connection: %s", path,
		             c->handle ? sqlite3_errmsg(c->handle) : sqlite3_errstr(rc)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	r = -pthread_create(&c->thread, NULL, checkpointer_main, c);
	if (r < 0) {
		if (asprintf(ret_error, "cannot start the checkpoint thread: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	sqlite3_close(c->handle);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

void db_checkpointer_stats(struct db_checkpointer *c, struct db_checkpoint_stats *ret)
{
	*ret = (struct db_checkpoint_stats){
		.runs = atomic_load(&c->runs),
		.ns = atomic_load(&c->ns),
		.finishes = atomic_load(&c->finishes),
		.finish_ns = atomic_load(&c->finish_ns),
		.wal_restarts = atomic_load(&c->generation),
	};
}

void db_checkpointer_stop(struct db_checkpointer **cp)
{
	if (!cp || !*cp)
		return;
	struct db_checkpointer *c = *cp;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->handle);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}
