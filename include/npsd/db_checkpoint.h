#ifndef NPSD_DB_CHECKPOINT_H
#define NPSD_DB_CHECKPOINT_H

#include <sqlite3.h>
#include <stdint.h>

/* Copies the WAL back into the database file on a thread and connection of its own, so
 * that the writer's commits do not wait for it, but for the last few frames of each WAL
 * cycle (see db_checkpoint.c). */
struct db_checkpointer;

/* Opens a connection to the database at path (which must exist, in WAL mode) and starts
 * the thread. It checkpoints once told of a WAL of at least wal_frames frames. Returns 0,
 * or a negative errno with a message in *ret_error (the caller frees it; may be NULL on
 * out of memory). */
int db_checkpointer_start(const char *path, int wal_frames, struct db_checkpointer **ret, char **ret_error);

/* The writer's WAL hook (sqlite3_wal_hook, on the writer's connection only): SQLite passes
 * the WAL's size in frames after each commit. Wakes the thread when a checkpoint is due,
 * and copies the last few frames itself once a background pass has copied the rest.
 * Cheap otherwise; never waits for a checkpoint in progress. */
int db_checkpointer_wal_hook(void *checkpointer, sqlite3 *handle, const char *schema, int frames);

/* Since start: background checkpoints run and the time they took, summed; the same for
 * the ones the writer ran to finish them; and how often the WAL started over (as seen by
 * the hook: its size dropped). */
struct db_checkpoint_stats {
	uint64_t runs, ns;
	uint64_t finishes, finish_ns;
	uint64_t wal_restarts;
};
void db_checkpointer_stats(struct db_checkpointer *c, struct db_checkpoint_stats *ret);

/* Stops the thread (a checkpoint in progress finishes first), closes its connection and
 * frees it; sets *cp to NULL. NULL or *cp == NULL is a no-op. */
void db_checkpointer_stop(struct db_checkpointer **cp);

#endif
