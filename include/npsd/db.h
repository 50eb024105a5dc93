#ifndef NPSD_DB_H
#define NPSD_DB_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The storage layer's plumbing: connections, migrations, statement caching and the writer
 * thread that does group commit. Only db.c and the store_*.c files see SQL; everything
 * above calls store functions.
 *
 * One writer, many readers. The writer thread owns the only write connection. A write is a
 * function (`apply`) handed to it with db_submit(); the writer takes every write queued,
 * runs each inside its own SAVEPOINT (or replayable ones in a shared one, run again one by
 * one when one of them fails) within one BEGIN IMMEDIATE ... COMMIT (synchronous=FULL: the
 * commit is on disk when it returns), then calls each write's `done`. One write failing
 * rolls back only its own writes. Readers borrow a connection of their own
 * from a pool; WAL lets them read beside the writer.
 */

struct npsd_db; /* the database: writer thread and reader pool */
struct db_conn; /* one SQLite connection with its prepared statements */

/* Error codes: 0 or a negative errno, translated from SQLite at this edge. */
#define DB_OK 0
/* How long a connection waits for SQLite's write lock, held by another process (npsd's
 * writer, npsctl), before its statement fails with -EBUSY. */
#define DB_BUSY_TIMEOUT_MS 5000

struct db_write {
	/* Runs on the writer thread inside a savepoint. A negative return rolls the savepoint
	 * back (its writes vanish, the neighbours' stay); 0 or positive keeps them. */
	int (*apply)(struct db_conn *conn, void *arg);
	/* Runs on the writer thread once the batch has committed or failed; `result` is apply's
	 * return, or the commit's error (-EIO, -ENOSPC, -EBUSY) when the whole batch failed.
	 * It must not block: it wakes whoever waits. */
	void (*done)(struct db_write *w);
	void *arg;
	/* apply may run twice: a later write it shared a savepoint with failed, and each write
	 * of that run is run again in a savepoint of its own (see db.c, struct write_run). Only
	 * for an apply whose every run sets all it hands back afresh and that touches nothing
	 * outside the database that a rollback would not undo. Cheaper per write under load. */
	bool replayable;
	int result;
	struct db_write *next; /* the writer's queue link */
	int64_t stage_ns;      /* db's own: when the write entered its current stage */
};

/*
 * Opens (creating if needed) the database at path, applies the pending migrations in one
 * transaction and starts the writer thread. Returns 0 and *ret_db, which the caller closes
 * with db_close(), or a negative errno with *ret_error malloc'ed for the caller to free.
 */
int db_open(const char *path, struct npsd_db **ret_db, char **ret_error);
/* Takes an exclusive flock on the database file, held until db_close(), before any
 * migration: one npsd per database (SQLite's own fcntl locks neither see it nor are
 * disturbed). While an npsctl migrates the database (it holds the flock shared), it waits
 * for it, up to 30 s. */
#define DB_OPEN_EXCLUSIVE 1u
/* db_open with flags (DB_OPEN_EXCLUSIVE); -EWOULDBLOCK, with *ret_error NULL, when another
 * npsd holds the lock; -EINPROGRESS, with *ret_error, when an npsctl still migrates after
 * the wait. */
int db_open_flags(const char *path, unsigned flags, struct npsd_db **ret_db, char **ret_error);

/* The schema's version (user_version) as db_open found it and as it left it: the same when it
 * applied no migration; the migrations applied are those of migrations[] in between. */
void db_schema_versions(const struct npsd_db *db, int *ret_found, int *ret_now);

/* Drains the queued writes, stops the writer, closes every connection, frees *db and sets
 * it to NULL. No reader may be borrowed any more. NULL and *db == NULL are no-ops. */
void db_close(struct npsd_db **db);

/*
 * Writes a consistent copy of the database (one read transaction: everything committed
 * before it began, nothing after) to path, while writes go on: a single file in rollback
 * journal mode, mode 0600, synced, that appears at path only once whole (it is written to
 * path.partial first). Never replaces a file at path (-EEXIST). 0, or a negative errno
 * with *ret_error malloc'ed for the caller to free.
 */
int db_backup(struct npsd_db *db, const char *path, char **ret_error);

/* Copies the whole WAL into the database file and truncates it to nothing, on a connection
 * of its own: what was deleted with secure_delete is then gone from the files too, where
 * older WAL frames kept it until later commits happened to overwrite them. Waits up to
 * wait_ms for the writers and readers of any process, holding the write lock once it has
 * it: every write waits meanwhile, so keep wait_ms short (a write's latency grows by as
 * much), and in any case well below the 5 s a write waits for a lock, or one may fail with
 * -EBUSY. Another checkpoint under way (npsd's own) fails it at once.
 * 0, or -EBUSY when they did not finish in time, or another negative errno. */
int db_wal_truncate(struct npsd_db *db, int wait_ms);

/* Queues w for the next batch. w is borrowed until its done() has been called.
 * After db_close() began, done() runs at once with result -ESHUTDOWN. */
void db_submit(struct npsd_db *db, struct db_write *w);

/* Submits apply(arg) and waits for its commit; returns its result. For callers off the hot
 * path (npsctl, the scheduler, tests). */
int db_write_sync(struct npsd_db *db, int (*apply)(struct db_conn *conn, void *arg), void *arg);

/* Called on the writer thread after every commit that changed something; for waking the
 * threads that act on new rows. NULL removes it: once this returns, the old hook is not
 * running and will not run again. */
void db_on_commit(struct npsd_db *db, void (*hook)(void *arg), void *arg);

/* Borrows a read-only connection; give it back with db_reader_put(). Never NULL: waits for
 * one when all are lent out. */
struct db_conn *db_reader(struct npsd_db *db);
void db_reader_put(struct npsd_db *db, struct db_conn *conn);
/* Has SQLite call pause(arg) every thousand or so steps of conn's statements, on the thread
 * running them, until conn goes back with db_reader_put(): a long read can wait there
 * while other work goes first. A non-zero return stops the statement, which then fails
 * with -ECANCELED (and so does every later one past a thousand steps while it says so):
 * a read nobody waits for any more need not run to its end. */
void db_reader_pause_hook(struct db_conn *conn, int (*pause)(void *arg), void *arg);

/* The statement for sql on this connection, prepared once and cached by the address of sql
 * (so pass a static string), reset and with no bindings. NULL on a preparation error, which
 * is a bug (logged). Give it back with db_done() before the connection is returned. */
sqlite3_stmt *db_prepare(struct db_conn *conn, const char *sql);
void db_done(sqlite3_stmt *stmt);

/* The SQLite result code as a negative errno: BUSY/LOCKED -EBUSY, FULL -ENOSPC,
 * CONSTRAINT -EEXIST, NOMEM -ENOMEM, READONLY -EROFS, CORRUPT/NOTADB -EUCLEAN (a damaged
 * file), anything else -EIO. */
int db_errno(int sqlite_rc);
/* Words for a negative errno from this layer, for a log or a message: strerror's, but where
 * db_errno's code would say the wrong thing ("File exists" for a constraint or a trigger,
 * "State not recoverable" for a commit whose sync failed). A static string. */
const char *db_strerror(int r);

/* SQLite's own words for the failure of conn's last statement (a trigger's RAISE message,
 * "FOREIGN KEY constraint failed"), which db_errno's code alone loses: -EEXIST reads "File
 * exists". Copied into buf (len bytes, cut short if need be); "" when that statement did not
 * fail. Call it right after the failure, before conn runs anything else, which replaces it. */
#define DB_WHY_LEN 160
void db_last_error(struct db_conn *conn, char *buf, size_t len);

/* Runs fn inside a nested savepoint of the writer's transaction, rolled back alone when fn
 * returns a negative value: for a write made of parts that fail one by one. */
int db_isolated(struct db_conn *conn, int (*fn)(struct db_conn *conn, void *arg), void *arg);

/* How often writes on this connection were undone so far: a savepoint rolled back, or a
 * whole transaction. What a caller cached from its own uncommitted writes may be gone once
 * this moves. Writer thread only. */
uint64_t db_rollbacks(const struct db_conn *conn);

sqlite3 *db_handle(struct db_conn *conn);
/* False once SQLite has rolled the writer's transaction back whole (a full disk, an I/O
 * error): a write of several parts must stop there, or its next statements would each
 * commit on their own. */
bool db_in_transaction(struct db_conn *conn);
/* Since start: writes committed, the batches (transactions) that carried them, and where
 * their time went, summed over the writes: waiting for the writer (queue), their batch's
 * statements and commit (batch), the fdatasync that made them durable (sync); and the
 * WAL checkpoints run beside them, and the short ones the writer ran to finish those,
 * with their time. */
struct db_write_stats {
	uint64_t writes, batches;
	uint64_t queue_ns, batch_ns, sync_ns;
	uint64_t checkpoints, checkpoint_ns, checkpoint_finishes, checkpoint_finish_ns;
};
void db_write_stats(struct npsd_db *db, struct db_write_stats *ret);
/* True once a sync of the WAL has failed: every write fails from then on (-EIO), and the
 * daemon should stop so that a restart recovers what is on disk. */
bool db_broken(struct npsd_db *db);
/* True when a write failed for the storage's sake (a full disk, an I/O error) less than
 * window_ns ago. A small write may still fit where a larger one did not. */
bool db_storage_failed_lately(struct npsd_db *db, int64_t window_ns);

/* Helpers for binding: NULL binds SQL NULL. */
int db_bind_text(sqlite3_stmt *stmt, int idx, const char *text);
const char *db_column_text(sqlite3_stmt *stmt, int col); /* NULL for SQL NULL */

#endif
