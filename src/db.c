#include "npsd/db.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "npsd/clock.h"
#include "npsd/db_checkpoint.h"
#include "npsd/db_vfs.h"
#include "npsd/log.h"
#include "npsd/migrations.h"

#define STMT_SLOTS 512 /* distinct statements per connection; far more than we have */
#define MAX_READERS 64 /* beyond this, readers wait: each connection costs a page cache */
/* A checkpoint copies each page once however often the WAL holds it, so fewer, larger
 * checkpoints copy less: 4000 pages measured best (bench/README.md). */
#define CHECKPOINT_FRAMES 4000

struct stmt_slot {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct db_conn {
	sqlite3 *handle;
	uint64_t rollbacks; /* see db_rollbacks() */
	struct db_conn *next_free;
	struct stmt_slot slots[STMT_SLOTS];
	int (*pause)(void *arg); /* db_reader_pause_hook()'s, until db_reader_put() */
	void *pause_arg;
};

struct npsd_db {
	char *path;
	char *wal_path; /* where SQLite keeps the WAL: beside the file a symbolic link names */
	struct db_conn *writer;
	struct db_checkpointer *checkpointer; /* the writer's WAL hook tells it the WAL's size */
	pthread_t writer_thread;
	int writer_running;

	pthread_mutex_t queue_lock;
	pthread_cond_t queue_wake;
	struct db_write *queue_head, *queue_tail;
	int stopping;

	/* Commits are made durable off the writer thread: the writer commits with
	 * synchronous=NORMAL and hands the batch here; this thread fdatasyncs the WAL and only
	 * then wakes the batch's requests. The writer meanwhile runs the next writes in a new
	 * transaction and commits it when this sync is done (take_while_syncing). */
	pthread_t sync_thread;
	int sync_running;
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_wake;
	struct db_write *sync_head, *sync_tail;
	int sync_dirty; /* a commit with changes was handed over since the last sync */
	int sync_stopping;
	int wal_fd;
	/* The database file, read-only: its link count (sync_wal) and DB_OPEN_EXCLUSIVE's flock. */
	int main_fd;
	bool commits_failing; /* the writer's: its last COMMIT failed (see commit()) */
	atomic_int sync_busy; /* a commit handed over is not durable yet */
	/* A sync failed. After a failed fsync the kernel may have dropped the pages it could not
	 * write, and a later fsync may succeed over the gap: from then on nothing is synced or
	 * acknowledged again in this process (db_broken). */
	atomic_int broken;
	int schema_found, schema_now; /* user_version before and after db_open's migrations */
	long fail_sync_at;            /* test hook: NPSD_TEST_FAIL_SYNC=N fails the Nth sync; 0 = off */
	long syncs;

	/* Held while the hook runs, and to replace it: once db_on_commit() returns, the old
	 * hook is neither running nor will run again. */
	pthread_mutex_t hook_lock;
	void (*commit_hook)(void *arg);
	void *commit_hook_arg;

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_wake;
	struct db_conn *free_readers;
	struct db_conn *readers[MAX_READERS];
	size_t nreaders;

	atomic_int_fast64_t
	        storage_failed_at_ns; /* a write last failed for the disk (full, I/O); 0 = never */
	atomic_uint_fast64_t writes_committed, batches_committed;
	atomic_uint_fast64_t queue_ns, batch_ns, sync_ns; /* see struct db_write_stats */
};

const char *db_strerror(int r)
{
	switch (r) {
	case -EEXIST:
		return "the database refused the change (a constraint or a trigger)";
	case -ENOTRECOVERABLE:
		return "a sync of the WAL failed";
	default:
		return strerror(-r);
	}
}

int db_errno(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_INTERRUPT:
		return -ECANCELED; /* db_reader_pause_hook()'s stop: not the storage's fault */
	default:
		return -EIO;
	}
}

void db_last_error(struct db_conn *conn, char *buf, size_t len)
{
	if (len == 0)
		return;
	int rc = sqlite3_errcode(conn->handle) & 0xff;
	snprintf(buf, len, "%s",
	         rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE ? ""
	                                                                  : sqlite3_errmsg(conn->handle));
}

sqlite3 *db_handle(struct db_conn *conn)
{
	return conn->handle;
}

static size_t slot_index(const char *sql)
{
	uintptr_t p = (uintptr_t)sql;
	return (size_t)((p >> 3) * 2654435761u) % STMT_SLOTS;
}

sqlite3_stmt *db_prepare(struct db_conn *conn, const char *sql)
{
	size_t i = slot_index(sql);
	for (size_t probes = 0; probes < STMT_SLOTS; probes++, i = (i + 1) % STMT_SLOTS) {
		struct stmt_slot *slot = &conn->slots[i];
		if (slot->sql == sql)
			return slot->stmt;
		if (slot->sql)
			continue;
		sqlite3_stmt *stmt;
		int rc = sqlite3_prepare_v3(conn->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
		if (rc != SQLITE_OK) {
			log_error("db: cannot prepare statement: %s", sqlite3_errmsg(conn->handle));
			return NULL;
		}
		slot->sql = sql;
		slot->stmt = stmt;
		return stmt;
	}
	log_error("db: statement cache full");
	return NULL;
}

void db_done(sqlite3_stmt *stmt)
{
	if (!stmt)
		return;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

int db_bind_text(sqlite3_stmt *stmt, int idx, const char *text)
{
	if (!text)
		return sqlite3_bind_null(stmt, idx);
	return sqlite3_bind_text(stmt, idx, text, -1, SQLITE_STATIC);
}

const char *db_column_text(sqlite3_stmt *stmt, int col)
{
	return (const char *)sqlite3_column_text(stmt, col);
}

static void conn_close(struct db_conn **conn)
{
	if (!conn || !*conn)
		return;
	for (size_t i = 0; i < STMT_SLOTS; i++)
		sqlite3_finalize((*conn)->slots[i].stmt);
	sqlite3_close((*conn)->handle);
	free(*conn);
	*conn = NULL;
}

/* A statement's failure. The write lock kept by another process past the wait is no fault
 * of storage: it is npsctl beside npsd (a purge's batch, a slow disk under npsd's commit), and
 * the caller says what to do (npsd's 503 "storage is busy", npsctl's "try again"), so it is
 * only told at info, which npsctl does not print: its users saw SQLite's bare "database is
 * locked" above the advice. */
static void log_failure(const char *sql, int rc, const char *msg)
{
	if ((rc & 0xff) == SQLITE_BUSY)
		log_info("db: %s: another process kept the database locked for %d s", sql,
		         DB_BUSY_TIMEOUT_MS / 1000);
	else
		log_error("db: %s: %s", sql, msg);
}

/* Runs a fixed statement, e.g. a pragma; returns 0 or a negative errno. */
static int conn_exec(struct db_conn *conn, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(conn->handle, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_failure(sql, rc, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return db_errno(rc);
	}
	return 0;
}

/* Runs a cached statement that returns no rows. */
static int conn_step_cached(struct db_conn *conn, const char *sql)
{
	sqlite3_stmt *stmt = db_prepare(conn, sql);
	if (!stmt)
		return -EIO;
	int rc = sqlite3_step(stmt);
	db_done(stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_failure(sql, rc, sqlite3_errmsg(conn->handle));
		return db_errno(rc);
	}
	return 0;
}

/* Undoes the writes since the named savepoint (sql is its ROLLBACK TO), and counts it. */
static int rollback_to(struct db_conn *conn, const char *sql)
{
	conn->rollbacks++;
	return conn_step_cached(conn, sql);
}

/* SQLite calls this for a ROLLBACK, ours or its own after an error (a full disk). */
static void count_rollback(void *arg)
{
	((struct db_conn *)arg)->rollbacks++;
}

bool db_in_transaction(struct db_conn *conn)
{
	return !sqlite3_get_autocommit(conn->handle);
}

uint64_t db_rollbacks(const struct db_conn *conn)
{
	return conn->rollbacks;
}

/* Runs fn(conn, arg) in the savepoint that the three statements open, undo and close
 * (static strings: statements are cached by address), rolled back alone when fn returns a
 * negative value, which goes to *ret_result. Returns 0, or a negative errno when the
 * transaction cannot go on (SQLite may have rolled it back whole). */
static int in_savepoint(struct db_conn *conn, const char *open_sql, const char *undo_sql,
                        const char *close_sql, int (*fn)(struct db_conn *conn, void *arg), void *arg,
                        int *ret_result)
{
	int r = conn_step_cached(conn, open_sql);
	if (r < 0)
		return r;
	int result = *ret_result = fn(conn, arg);
	if (sqlite3_get_autocommit(conn->handle))
		return result < 0 ? result : -EIO;
	if (result < 0 && (r = rollback_to(conn, undo_sql)) < 0)
		return r;
	return conn_step_cached(conn, close_sql);
}

int db_isolated(struct db_conn *conn, int (*fn)(struct db_conn *conn, void *arg), void *arg)
{
	int result;
	int r = in_savepoint(conn, "SAVEPOINT one_part", "ROLLBACK TO one_part", "RELEASE one_part", fn, arg,
	                     &result);
	return r < 0 ? r : result;
}

static int conn_open(const char *path, int readonly, struct db_conn **ret_conn, char **ret_error)
{
	struct db_conn *conn = calloc(1, sizeof *conn);
	if (!conn)
		return -ENOMEM;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (readonly ? 0 : SQLITE_OPEN_CREATE);
	int rc = sqlite3_open_v2(path, &conn->handle, flags, db_vfs_register() == 0 ? DB_VFS_NAME : NULL);
	if (rc != SQLITE_OK) {
		if (ret_error &&
		    asprintf(ret_error, "%s: %s", path,
		             conn->handle ? sqlite3_errmsg(conn->handle) : sqlite3_errstr(rc)) < 0)
			*ret_error = NULL;
		conn_close(&conn);
		return db_errno(rc);
	}
	sqlite3_busy_timeout(conn->handle, DB_BUSY_TIMEOUT_MS);
	if (!readonly)
		sqlite3_rollback_hook(conn->handle, count_rollback, conn);
	sqlite3_extended_result_codes(conn->handle, 1);
	/* synchronous=NORMAL: SQLite syncs the WAL before each checkpoint; the sync of each
	 * commit is done by the sync thread (see struct npsd_db), so a 201 survives a power
	 * cut just as with FULL. Readers are query_only so a bug can never write outside the
	 * writer. */
	const char *pragmas =
	        readonly
	                ? "PRAGMA query_only = 1; PRAGMA foreign_keys = OFF;"
	                : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = "
	                  "OFF; "
	                  /* Savepoints journal into memory, not a temp file (two syscalls per page saved). */
	                  "PRAGMA temp_store = MEMORY;";
	int r = conn_exec(conn, pragmas);
	if (r < 0) {
		if (ret_error && asprintf(ret_error, "%s: cannot set up the connection: %s", path,
		                          sqlite3_errmsg(conn->handle)) < 0)
			*ret_error = NULL;
		conn_close(&conn);
		return r;
	}
	*ret_conn = conn;
	return 0;
}

static int read_user_version(struct db_conn *conn, int *ret_version)
{
	sqlite3_stmt *stmt;
	int rc = sqlite3_prepare_v2(conn->handle, "PRAGMA user_version", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_errno(rc);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*ret_version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

/* The refusal of a schema newer than this program's. */
static int refuse_newer(int version, int newest, char **ret_error)
{
	if (asprintf(ret_error, "database schema version %d is newer than this npsd knows (%d)", version,
	             newest) < 0)
		*ret_error = NULL;
	return -EPROTO;
}

/* Applies every migration newer than user_version, all in one transaction, so a failed
 * start leaves the schema as it was. With lock_fd >= 0 (the database file), it migrates only
 * when no npsd holds the file's flock: the one that does runs code of the schema it found.
 * On success *ret_found is the version it found and *ret_now the version it left. */
static int migrate(struct db_conn *conn, int lock_fd, int *ret_found, int *ret_now, char **ret_error)
{
	bool locked = false;
	int newest = migrations_count ? migrations[migrations_count - 1].version : 0;
	/* Looked at before the write lock is asked for: a schema already up to date needs none
	 * (npsctl key list or backup beside an npsd busy writing failed with "database is
	 * locked" after 5 s), and an npsd that holds the file must be told of at once, not after
	 * a wait for the lock that its writes may keep. */
	int version = 0;
	int r = read_user_version(conn, &version);
	if (r < 0)
		goto fail_msg;
	if (version > newest)
		return refuse_newer(version, newest, ret_error);
	if (version == newest) {
		*ret_found = *ret_now = version;
		return 0;
	}
	/* npsctl of a new release beside the npsd of the old one (upgraded, not yet restarted):
	 * a nightly backup migrated the schema under the running npsd. Held shared until the
	 * commit, so an npsd that starts meanwhile waits for it (lock_exclusive) instead of
	 * migrating beside this. */
	if (lock_fd >= 0) {
		if (flock(lock_fd, LOCK_SH | LOCK_NB) < 0) {
			r = -errno;
			if (asprintf(ret_error,
			             "database schema version %d is older than this program's (%d) and a "
			             "running npsd holds it: restart npsd (it applies the migrations), "
			             "then try again",
			             version, newest) < 0)
				*ret_error = NULL;
			return r == -EWOULDBLOCK ? -EBUSY : r;
		}
		locked = true;
	}
	r = conn_exec(conn, "BEGIN IMMEDIATE");
	if (r < 0)
		goto unlock;
	/* Again, under the lock: another npsctl may have migrated meanwhile. */
	r = read_user_version(conn, &version);
	if (r < 0)
		goto rollback;
	if (version > newest) {
		conn_exec(conn, "ROLLBACK");
		if (locked)
			flock(lock_fd, LOCK_UN);
		return refuse_newer(version, newest, ret_error);
	}
	for (size_t i = 0; i < migrations_count; i++) {
		const struct migration *m = &migrations[i];
		if (m->version <= version)
			continue;
		char *msg = NULL;
		int rc = sqlite3_exec(conn->handle, m->sql, NULL, NULL, &msg);
		if (rc != SQLITE_OK) {
			if (asprintf(ret_error, "migration %s failed: %s", m->name,
			             msg ? msg : sqlite3_errstr(rc)) < 0)
				*ret_error = NULL;
			sqlite3_free(msg);
			conn_exec(conn, "ROLLBACK");
			if (locked)
				flock(lock_fd, LOCK_UN);
			return db_errno(rc);
		}
		char pragma[64];
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
		r = conn_exec(conn, pragma);
		if (r < 0)
			goto rollback;
		log_info("db: applied migration %s", m->name);
	}
	r = conn_exec(conn, "COMMIT");
	if (r < 0)
		goto rollback;
	if (locked)
		flock(lock_fd, LOCK_UN);
	*ret_found = version;
	*ret_now = newest;
	return 0;
rollback:
	conn_exec(conn, "ROLLBACK");
unlock:
	if (locked)
		flock(lock_fd, LOCK_UN);
fail_msg:
	if (r == -EBUSY) {
		if (asprintf(ret_error,
		             "cannot migrate the database: another writer (npsd, or another npsctl) "
		             "kept it locked for %d s; try again",
		             DB_BUSY_TIMEOUT_MS / 1000) < 0)
			*ret_error = NULL;
		return r;
	}
	if (asprintf(ret_error, "cannot migrate the database: %s", sqlite3_errmsg(conn->handle)) < 0)
		*ret_error = NULL;
	return r;
}

/* The writer's COMMIT. A disk that stays full fails every commit until space comes back:
 * that is said once, and once more when commits go through again (it flooded the log with
 * a line per commit, a thousand a minute). */
static int commit(struct npsd_db *db, struct db_conn *conn)
{
	sqlite3_stmt *stmt = db_prepare(conn, "COMMIT");
	if (!stmt)
		return -EIO;
	int rc = sqlite3_step(stmt);
	db_done(stmt);
	if (rc == SQLITE_DONE) {
		if (db->commits_failing) {
			db->commits_failing = false;
			log_info("db: commits go through again");
		}
		return 0;
	}
	if (!db->commits_failing) {
		db->commits_failing = true;
		log_error("db: COMMIT: %s (said once until a commit goes through)",
		          sqlite3_errmsg(conn->handle));
	}
	return db_errno(rc);
}

static void fail_batch(struct db_write *batch, int result)
{
	for (struct db_write *w = batch; w; w = w->next)
		w->result = result;
}

static void finish_batch(struct npsd_db *db, struct db_write *batch)
{
	for (struct db_write *w = batch, *next; w; w = next) {
		next = w->next; /* done() may free w */
		if (w->result == -ENOSPC || w->result == -EIO || w->result == -EUCLEAN ||
		    w->result == -ENOTRECOVERABLE)
			atomic_store(&db->storage_failed_at_ns, clock_mono_ns());
		w->done(w);
	}
}

/* Every batch goes through the sync thread, even one that changed nothing: its answers
 * (say, the 200 of a retry) may speak of rows an earlier batch wrote, which must be on disk
 * first. Only the fdatasync is skipped when nothing new was committed. */
static void hand_to_sync(struct npsd_db *db, struct db_write *batch, bool changed, int64_t committed_ns)
{
	struct db_write *tail = batch;
	tail->stage_ns = committed_ns;
	while (tail->next) {
		tail = tail->next;
		tail->stage_ns = committed_ns;
	}
	pthread_mutex_lock(&db->sync_lock);
	if (db->sync_tail)
		db->sync_tail->next = batch;
	else
		db->sync_head = batch;
	db->sync_tail = tail;
	if (changed)
		db->sync_dirty = 1;
	atomic_store(&db->sync_busy, 1);
	pthread_cond_signal(&db->sync_wake);
	pthread_mutex_unlock(&db->sync_lock);
}

/* Makes everything committed so far durable. The WAL is opened here, on its first use,
 * because SQLite creates it at the first write. */
static int sync_wal(struct npsd_db *db)
{
	if (db->wal_fd < 0) {
		db->wal_fd = open(db->wal_path, O_RDWR | O_CLOEXEC);
		if (db->wal_fd < 0) {
			log_error("db: cannot open %s to sync it: %s", db->wal_path, strerror(errno));
			return -EIO;
		}
	}
	if (db->fail_sync_at > 0 && ++db->syncs == db->fail_sync_at) {
		log_error("db: fdatasync of the WAL failed: %s (NPSD_TEST_FAIL_SYNC)", strerror(EIO));
		return -EIO;
	}
	if (fdatasync(db->wal_fd) < 0) {
		log_error("db: fdatasync of the WAL failed: %s", strerror(errno));
		return errno == ENOSPC ? -ENOSPC : -EIO;
	}
	/* A database or WAL deleted, or replaced by a rename, while npsd runs takes what is
	 * written to it along when the last descriptor closes: nothing committed into it is
	 * durable, whatever the sync said. */
	struct stat wal_file, db_file;
	if ((fstat(db->wal_fd, &wal_file) == 0 && wal_file.st_nlink == 0) ||
	    (fstat(db->main_fd, &db_file) == 0 && db_file.st_nlink == 0)) {
		log_error("db: %s or its WAL was deleted or replaced while npsd ran: nothing written to "
		          "it is durable",
		          db->path);
		return -EIO;
	}
	int r = db_vfs_take_write_error();
	if (r < 0)
		log_error("db: a WAL write failed; the commits since the last sync are not acknowledged");
	return r;
}

/* One fdatasync covers every batch committed before it: under load the sync thread takes
 * several batches at a time. */
static void *sync_main(void *arg)
{
	struct npsd_db *db = arg;
	pthread_setname_np(pthread_self(), "npsd-sync");
	for (;;) {
		pthread_mutex_lock(&db->sync_lock);
		while (!db->sync_head && !db->sync_stopping)
			pthread_cond_wait(&db->sync_wake, &db->sync_lock);
		struct db_write *batch = db->sync_head;
		int dirty = db->sync_dirty;
		db->sync_head = db->sync_tail = NULL;
		db->sync_dirty = 0;
		pthread_mutex_unlock(&db->sync_lock);
		if (!batch)
			break;
		int r = atomic_load(&db->broken) ? -EIO : dirty ? sync_wal(db) : 0;
		if (r < 0 && !atomic_exchange(&db->broken, 1))
			log_error("db: storage failed; no write is acknowledged from now on: SQLite recovers "
			          "what is on disk when the database is next opened (restart npsd; an "
			          "npsctl command ends here)");
		if (r < 0) {
			/* Committed but not known to be on disk: it may or may not be there after
			 * the restart. */
			fail_batch(batch, -ENOTRECOVERABLE);
		} else {
			int64_t synced = clock_mono_ns();
			uint64_t waited = 0;
			for (struct db_write *w = batch; w; w = w->next)
				waited += (uint64_t)(synced - w->stage_ns);
			atomic_fetch_add(&db->sync_ns, waited);
		}
		finish_batch(db, batch);
		/* Nothing more handed over: the writer may commit what it holds. */
		pthread_mutex_lock(&db->sync_lock);
		bool idle = !db->sync_head;
		if (idle)
			atomic_store(&db->sync_busy, 0);
		pthread_mutex_unlock(&db->sync_lock);
		if (idle) {
			pthread_mutex_lock(&db->queue_lock);
			pthread_cond_signal(&db->queue_wake);
			pthread_mutex_unlock(&db->queue_lock);
		}
	}
	return NULL;
}

static int apply_isolated(struct db_conn *conn, struct db_write *w)
{
	return in_savepoint(conn, "SAVEPOINT one_write", "ROLLBACK TO one_write", "RELEASE one_write",
	                    w->apply, w->arg, &w->result);
}

/*
 * Replayable writes in a row share one savepoint, a run, instead of one each: SQLite copies
 * each page into a savepoint's journal before the first change under it, so a savepoint per
 * answer made the writer copy every page an answer touches (a quarter of its instructions).
 * When a write of the run fails, the run is rolled back and its writes up to the failed one
 * run again, each in a savepoint of its own: the failure stays alone, as if isolated from
 * the start.
 */
struct write_run {
	struct db_write *first; /* NULL: no run open */
};

static int run_end(struct db_conn *conn, struct write_run *run)
{
	if (!run->first)
		return 0;
	run->first = NULL;
	return conn_step_cached(conn, "RELEASE some_writes");
}

static int run_replay(struct db_conn *conn, struct write_run *run, struct db_write *failed)
{
	struct db_write *w = run->first;
	int r = rollback_to(conn, "ROLLBACK TO some_writes");
	if (r == 0)
		r = run_end(conn, run);
	for (; r == 0; w = w->next) {
		r = apply_isolated(conn, w);
		if (w == failed)
			break;
	}
	return r;
}

/* Runs each write of the list inside the open transaction, isolated from the others (each
 * in a savepoint of its own, or a run's), and adds up its time queued (stage_ns becomes the
 * time it started). Returns 0, or a negative errno when the transaction cannot go on; SQLite
 * may have rolled it back already (disk full, I/O error). */
static int apply_writes(struct db_conn *conn, struct db_write *list, struct write_run *run, uint64_t *count,
                        uint64_t *queued_ns)
{
	sqlite3 *h = conn->handle;
	for (struct db_write *w = list; w; w = w->next) {
		int64_t started = clock_mono_ns();
		(*count)++;
		*queued_ns += (uint64_t)(started - w->stage_ns);
		w->stage_ns = started;
		int r;
		if (!w->replayable) {
			if ((r = run_end(conn, run)) < 0 || (r = apply_isolated(conn, w)) < 0)
				return r;
			continue;
		}
		if (!run->first) {
			if ((r = conn_step_cached(conn, "SAVEPOINT some_writes")) < 0)
				return r;
			run->first = w;
		}
		w->result = w->apply(conn, w->arg);
		if (sqlite3_get_autocommit(h))
			return w->result < 0 ? w->result : -EIO;
		if (w->result < 0 && (r = run_replay(conn, run, w)) < 0)
			return r;
	}
	return 0;
}

/* While an fdatasync is in flight a commit would only wait for it: the writer keeps the
 * transaction open and takes in what arrives meanwhile, so each fdatasync covers one
 * commit, as large as the disk's latency makes it (fewer commits: fewer WAL frames, locks
 * and syncs per write). Returns the writes that arrived, or NULL once the sync is done or
 * npsd stops. */
static struct db_write *take_while_syncing(struct npsd_db *db)
{
	pthread_mutex_lock(&db->queue_lock);
	while (!db->queue_head && atomic_load(&db->sync_busy) && !db->stopping)
		pthread_cond_wait(&db->queue_wake, &db->queue_lock);
	struct db_write *more = db->queue_head;
	db->queue_head = db->queue_tail = NULL;
	pthread_mutex_unlock(&db->queue_lock);
	return more;
}

/* One transaction for the whole batch; its sync happens on the sync thread. */
static void run_batch(struct npsd_db *db, struct db_write *batch)
{
	struct db_conn *conn = db->writer;
	sqlite3 *h = conn->handle;
	uint64_t count = 0, queued_ns = 0;
	int changes_before = sqlite3_total_changes(h);
	int r = atomic_load(&db->broken) ? -EIO : conn_step_cached(conn, "BEGIN IMMEDIATE");
	if (r < 0) {
		fail_batch(batch, r);
		goto finish;
	}
	struct db_write *tail = batch;
	struct write_run run = { NULL };
	r = apply_writes(conn, batch, &run, &count, &queued_ns);
	while (r == 0 && atomic_load(&db->sync_busy)) {
		struct db_write *more = take_while_syncing(db);
		if (!more)
			break;
		while (tail->next)
			tail = tail->next;
		tail->next = more;
		r = apply_writes(conn, more, &run, &count, &queued_ns);
	}
	if (r == 0)
		r = run_end(conn, &run);
	if (r < 0) {
		/* Every write of this batch is gone, so every one of them must hear so. */
		fail_batch(batch, r);
		goto rollback;
	}
	r = commit(db, conn);
	if (r < 0) {
		fail_batch(batch, r);
		goto rollback;
	}
	int64_t committed = clock_mono_ns();
	uint64_t in_batch_ns = 0;
	for (struct db_write *w = batch; w; w = w->next)
		in_batch_ns += (uint64_t)(committed - w->stage_ns);
	atomic_fetch_add(&db->writes_committed, count);
	atomic_fetch_add(&db->batches_committed, 1);
	atomic_fetch_add(&db->queue_ns, queued_ns);
	atomic_fetch_add(&db->batch_ns, in_batch_ns);
	bool changed = sqlite3_total_changes(h) != changes_before;
	if (changed) {
		pthread_mutex_lock(&db->hook_lock);
		if (db->commit_hook)
			db->commit_hook(db->commit_hook_arg);
		pthread_mutex_unlock(&db->hook_lock);
	}
	hand_to_sync(db, batch, changed, committed);
	return;
rollback:
	if (!sqlite3_get_autocommit(h))
		conn_step_cached(conn, "ROLLBACK");
finish:
	finish_batch(db, batch);
}

static void *writer_main(void *arg)
{
	struct npsd_db *db = arg;
	pthread_setname_np(pthread_self(), "npsd-writer");
	for (;;) {
		pthread_mutex_lock(&db->queue_lock);
		while (!db->queue_head && !db->stopping)
			pthread_cond_wait(&db->queue_wake, &db->queue_lock);
		struct db_write *batch = db->queue_head;
		db->queue_head = db->queue_tail = NULL;
		pthread_mutex_unlock(&db->queue_lock);
		if (!batch)
			break; /* stopping and drained */
		run_batch(db, batch);
	}
	return NULL;
}

/* SQLite takes an empty file for a new database, and a new install starts from no file: an
 * empty one where the database should be is a restore or a copy that went wrong, and would
 * be migrated into a fresh start without keys or answers, as if nothing had been lost. (A
 * database whose pages are all still in its WAL has an empty file beside a WAL that is not.) */
static bool empty_file_stands_for_database(const char *path)
{
	struct stat st;
	char real[PATH_MAX], wal[PATH_MAX + 8];
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0 || !realpath(path, real))
		return false;
	snprintf(wal, sizeof wal, "%s-wal", real); /* beside the file a link names, as SQLite has it */
	return stat(wal, &st) < 0 || st.st_size == 0;
}

int db_open(const char *path, struct npsd_db **ret_db, char **ret_error)
{
	return db_open_flags(path, 0, ret_db, ret_error);
}

/* How long npsd waits for an npsctl that migrates the database: a start by systemd right
 * after an upgrade whose npsctl run migrates it, well within systemd's start timeout (90 s
 * by default); Restart= starts it again after a migration that takes longer. */
#define MIGRATION_WAIT_MS 30000
#define MIGRATION_LOOK_MS 50

/* DB_OPEN_EXCLUSIVE's flock on fd, the database file at path. npsctl holds it shared while
 * it migrates (migrate()), an npsd exclusive while it runs: a shared lock to be had tells
 * the one from the other. npsd stopped at once beside an npsctl's migration, saying "in use
 * by another npsd": a systemd start right after an upgrade whose npsctl run migrates
 * failed, and Restart= tried again every 2 s, up to its start limit.
 * 0; -EWOULDBLOCK when an npsd holds it; -EINPROGRESS, with *ret_error, when npsctl still
 * migrates after MIGRATION_WAIT_MS; or another negative errno. */
static int lock_exclusive(int fd, const char *path, char **ret_error)
{
	for (int waited = 0;; waited += MIGRATION_LOOK_MS) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return -errno;
		if (flock(fd, LOCK_SH | LOCK_NB) < 0)
			return -errno;
		flock(fd, LOCK_UN);
		if (waited >= MIGRATION_WAIT_MS) {
			if (asprintf(ret_error,
			             "npsctl is still migrating %s after %d s: try again once it is done",
			             path, MIGRATION_WAIT_MS / 1000) < 0)
				*ret_error = NULL;
			return -EINPROGRESS;
		}
		if (waited == 0)
			log_info("db: npsctl is migrating %s: waiting for it (up to %d s)", path,
			         MIGRATION_WAIT_MS / 1000);
		struct timespec pause = { .tv_nsec = MIGRATION_LOOK_MS * 1000000L };
		nanosleep(&pause, NULL);
	}
}

int db_open_flags(const char *path, unsigned flags, struct npsd_db **ret_db, char **ret_error)
{
	*ret_error = NULL;
	struct npsd_db *db = calloc(1, sizeof *db);
	if (!db)
		return -ENOMEM;
	int r = -ENOMEM;
	db->path = strdup(path);
	if (!db->path)
		goto fail;
	pthread_mutex_init(&db->queue_lock, NULL);
	pthread_cond_init(&db->queue_wake, NULL);
	pthread_mutex_init(&db->pool_lock, NULL);
	pthread_cond_init(&db->pool_wake, NULL);
	pthread_mutex_init(&db->sync_lock, NULL);
	pthread_mutex_init(&db->hook_lock, NULL);
	pthread_cond_init(&db->sync_wake, NULL);
	db->wal_fd = -1;
	db->main_fd = -1;
	const char *fail_sync = getenv("NPSD_TEST_FAIL_SYNC");
	db->fail_sync_at = fail_sync ? strtol(fail_sync, NULL, 10) : 0;
	if (empty_file_stands_for_database(path)) {
		r = -EINVAL;
		if (asprintf(ret_error,
		             "%s is an empty file, not a database (a restore or copy that failed?): "
		             "restore it from a backup, or remove it to start a new install",
		             path) < 0)
			*ret_error = NULL;
		goto fail;
	}
	r = conn_open(path, 0, &db->writer, ret_error);
	if (r < 0)
		goto fail;
	/* SQLite follows a symbolic link to the database and keeps the WAL beside the file it
	 * points to; "PATH-wal" beside the link would not exist, and the first sync would
	 * fail every write from then on. */
	const char *full = sqlite3_db_filename(db->writer->handle, "main");
	db->wal_path = strdup(full && *full ? sqlite3_filename_wal(full) : "");
	if (!db->wal_path || !*db->wal_path) {
		r = db->wal_path ? -EIO : -ENOMEM;
		goto fail;
	}
	/* SQLite opens a file this user may not write read-only, without a word (a restored
	 * backup left owned by root, chattr +i): every write would then fail until a restart,
	 * even once the file is put right. Refuse it, naming the file, instead. */
	if (sqlite3_db_readonly(db->writer->handle, "main") == 1) {
		r = -EACCES;
		if (asprintf(
		            ret_error,
		            "%s: this user may read the database but not write it (check its owner and mode)",
		            path) < 0)
			*ret_error = NULL;
		goto fail;
	}
	db->main_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (db->main_fd < 0) {
		r = -errno;
		if (asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	/* Before the migrations: a process that does not get the lock must leave the database
	 * as the one holding it knows it (a newer npsd started beside an older one migrated the
	 * schema under it). */
	if ((flags & DB_OPEN_EXCLUSIVE) && (r = lock_exclusive(db->main_fd, path, ret_error)) < 0) {
		if (r != -EWOULDBLOCK && !*ret_error &&
		    asprintf(ret_error, "cannot lock %s: %s", path, strerror(-r)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	r = migrate(db->writer, flags & DB_OPEN_EXCLUSIVE ? -1 : db->main_fd, &db->schema_found,
	            &db->schema_now, ret_error);
	if (r < 0)
		goto fail;
	r = db_checkpointer_start(path, CHECKPOINT_FRAMES, &db->checkpointer, ret_error);
	if (r < 0)
		goto fail;
	sqlite3_wal_hook(db->writer->handle, db_checkpointer_wal_hook, db->checkpointer);
	r = -pthread_create(&db->sync_thread, NULL, sync_main, db);
	if (r < 0) {
		if (asprintf(ret_error, "cannot start the sync thread: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	db->sync_running = 1;
	r = -pthread_create(&db->writer_thread, NULL, writer_main, db);
	if (r < 0) {
		if (asprintf(ret_error, "cannot start the writer thread: %s", strerror(-r)) < 0)
			*ret_error = NULL;
		goto fail;
	}
	db->writer_running = 1;
	*ret_db = db;
	return 0;
fail:
	db_close(&db);
	return r;
}

void db_schema_versions(const struct npsd_db *db, int *ret_found, int *ret_now)
{
	*ret_found = db->schema_found;
	*ret_now = db->schema_now;
}

void db_close(struct npsd_db **dbp)
{
	if (!dbp || !*dbp)
		return;
	struct npsd_db *db = *dbp;
	if (db->writer_running) {
		pthread_mutex_lock(&db->queue_lock);
		db->stopping = 1;
		pthread_cond_broadcast(&db->queue_wake);
		pthread_mutex_unlock(&db->queue_lock);
		pthread_join(db->writer_thread, NULL);
	}
	if (db->sync_running) { /* after the writer: it drains what the writer handed over */
		pthread_mutex_lock(&db->sync_lock);
		db->sync_stopping = 1;
		pthread_cond_signal(&db->sync_wake);
		pthread_mutex_unlock(&db->sync_lock);
		pthread_join(db->sync_thread, NULL);
	}
	if (db->wal_fd >= 0)
		close(db->wal_fd);
	if (db->writer)
		sqlite3_wal_hook(db->writer->handle, NULL, NULL);
	db_checkpointer_stop(&db->checkpointer); /* before the writer, whose close is the last */
	for (size_t i = 0; i < db->nreaders; i++)
		conn_close(&db->readers[i]);
	if (db->writer) /* a clean close checkpoints the WAL, so the file alone is complete */
		conn_close(&db->writer);
	if (db->main_fd >= 0) /* after SQLite's: a close drops every fcntl lock the process holds */
		close(db->main_fd);
	pthread_mutex_destroy(&db->queue_lock);
	pthread_cond_destroy(&db->queue_wake);
	pthread_mutex_destroy(&db->pool_lock);
	pthread_cond_destroy(&db->pool_wake);
	pthread_mutex_destroy(&db->sync_lock);
	pthread_mutex_destroy(&db->hook_lock);
	pthread_cond_destroy(&db->sync_wake);
	free(db->path);
	free(db->wal_path);
	free(db);
	*dbp = NULL;
}

void db_submit(struct npsd_db *db, struct db_write *w)
{
	w->next = NULL;
	w->stage_ns = clock_mono_ns();
	pthread_mutex_lock(&db->queue_lock);
	if (db->stopping) {
		pthread_mutex_unlock(&db->queue_lock);
		w->result = -ESHUTDOWN;
		w->done(w);
		return;
	}
	if (db->queue_tail)
		db->queue_tail->next = w;
	else
		db->queue_head = w;
	db->queue_tail = w;
	pthread_cond_signal(&db->queue_wake);
	pthread_mutex_unlock(&db->queue_lock);
}

struct sync_write {
	struct db_write w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int finished;
};

static void sync_write_done(struct db_write *w)
{
	struct sync_write *s = (struct sync_write *)w;
	pthread_mutex_lock(&s->lock);
	s->finished = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int db_write_sync(struct npsd_db *db, int (*apply)(struct db_conn *conn, void *arg), void *arg)
{
	struct sync_write s = { .w = { .apply = apply, .done = sync_write_done, .arg = arg } };
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	db_submit(db, &s.w);
	pthread_mutex_lock(&s.lock);
	while (!s.finished)
		pthread_cond_wait(&s.cond, &s.lock);
	pthread_mutex_unlock(&s.lock);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	return s.w.result;
}

void db_on_commit(struct npsd_db *db, void (*hook)(void *arg), void *arg)
{
	pthread_mutex_lock(&db->hook_lock);
	db->commit_hook = hook;
	db->commit_hook_arg = arg;
	pthread_mutex_unlock(&db->hook_lock);
}

struct db_conn *db_reader(struct npsd_db *db)
{
	pthread_mutex_lock(&db->pool_lock);
	for (;;) {
		struct db_conn *conn = db->free_readers;
		if (conn) {
			db->free_readers = conn->next_free;
			pthread_mutex_unlock(&db->pool_lock);
			return conn;
		}
		if (db->nreaders < MAX_READERS) {
			char *err = NULL;
			if (conn_open(db->path, 1, &conn, &err) == 0) {
				db->readers[db->nreaders++] = conn;
				pthread_mutex_unlock(&db->pool_lock);
				return conn;
			}
			log_error("db: cannot open a reader: %s", err ? err : "out of memory");
			free(err);
			if (db->nreaders == 0) {
				/* Nothing to wait for: fall back on the writer is not allowed, so retry
				 * after a pause rather than deadlock. */
				pthread_mutex_unlock(&db->pool_lock);
				struct timespec pause = { 0, 100 * 1000 * 1000 };
				nanosleep(&pause, NULL);
				pthread_mutex_lock(&db->pool_lock);
				continue;
			}
		}
		pthread_cond_wait(&db->pool_wake, &db->pool_lock);
	}
}

/* SQLite's progress handler, whose non-zero return interrupts the statement. */
static int call_pause(void *arg)
{
	struct db_conn *conn = arg;
	return conn->pause(conn->pause_arg);
}

void db_reader_pause_hook(struct db_conn *conn, int (*pause)(void *arg), void *arg)
{
	conn->pause = pause;
	conn->pause_arg = arg;
	/* Every thousand VM steps, tens of microseconds of a report's work: about what a quick
	 * read waits for a long one to pause. */
	sqlite3_progress_handler(conn->handle, pause ? 1000 : 0, pause ? call_pause : NULL, conn);
}

void db_reader_put(struct npsd_db *db, struct db_conn *conn)
{
	if (!conn)
		return;
	if (conn->pause) {
		db_reader_pause_hook(conn, NULL, NULL);
		/* A read the hook stopped may have left a statement mid-step on an error path
		 * that skipped its reset: it would hold its snapshot, and the WAL with it, for
		 * as long as the connection sits in the pool. */
		for (sqlite3_stmt *st = NULL; (st = sqlite3_next_stmt(conn->handle, st));)
			if (sqlite3_stmt_busy(st))
				sqlite3_reset(st);
	}
	pthread_mutex_lock(&db->pool_lock);
	conn->next_free = db->free_readers;
	db->free_readers = conn;
	pthread_cond_signal(&db->pool_wake);
	pthread_mutex_unlock(&db->pool_lock);
}

bool db_broken(struct npsd_db *db)
{
	return atomic_load(&db->broken);
}

bool db_storage_failed_lately(struct npsd_db *db, int64_t window_ns)
{
	int64_t at = atomic_load(&db->storage_failed_at_ns);
	return at && clock_mono_ns() - at < window_ns;
}

void db_write_stats(struct npsd_db *db, struct db_write_stats *ret)
{
	*ret = (struct db_write_stats){
		.writes = atomic_load(&db->writes_committed),
		.batches = atomic_load(&db->batches_committed),
		.queue_ns = atomic_load(&db->queue_ns),
		.batch_ns = atomic_load(&db->batch_ns),
		.sync_ns = atomic_load(&db->sync_ns),
	};
	struct db_checkpoint_stats cs = { 0 };
	if (db->checkpointer)
		db_checkpointer_stats(db->checkpointer, &cs);
	ret->checkpoints = cs.runs;
	ret->checkpoint_ns = cs.ns;
	ret->checkpoint_finishes = cs.finishes;
	ret->checkpoint_finish_ns = cs.finish_ns;
}

/* fsync of a file or folder by name: 0 or a negative errno. */
static int sync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int db_wal_truncate(struct npsd_db *db, int wait_ms)
{
	struct db_conn *conn = NULL;
	int r = conn_open(db->path, 0, &conn, NULL);
	if (r < 0)
		return r;
	sqlite3_busy_timeout(conn->handle, wait_ms);
	int rc = sqlite3_wal_checkpoint_v2(conn->handle, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	conn_close(&conn);
	return rc == SQLITE_OK ? 0 : db_errno(rc);
}

/* Copies every page of src into a new database file at path; 0 or a negative errno with
 * *ret_error set. */
static int copy_pages(sqlite3 *src, const char *path, char **ret_error)
{
	sqlite3 *dest = NULL;
	int rc = sqlite3_open_v2(path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dest, "main", src, "main") : NULL;
	if (b) {
		/* All pages in one step: one read transaction, so a copy of one moment. */
		rc = sqlite3_backup_step(b, -1);
		int finish = sqlite3_backup_finish(b);
		if (rc == SQLITE_DONE)
			rc = finish;
	} else if (rc == SQLITE_OK) {
		rc = sqlite3_errcode(dest);
	}
	/* The copy is one file: no -wal beside it to lose on the way to the tape. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dest, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	/* Named, with the system's reason: SQLite's words alone ("disk I/O error", "attempt to
	 * write a readonly database" for a -shm it cannot make) name no file. */
	int sys = dest && rc != SQLITE_OK ? sqlite3_system_errno(dest) : 0;
	if (rc != SQLITE_OK && asprintf(ret_error, "cannot write %s: %s%s%s%s", path,
	                                dest ? sqlite3_errmsg(dest) : sqlite3_errstr(rc), sys ? " (" : "",
	                                sys ? strerror(sys) : "", sys ? ")" : "") < 0)
		*ret_error = NULL;
	int r = rc == SQLITE_OK ? 0 : db_errno(rc);
	/* A write refused outright (not cut short) is SQLite's "disk I/O error"; its errno says
	 * whether that was only want of room. */
	if ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT || sys == EFBIG))
		r = -sys;
	if (sqlite3_close(dest) != SQLITE_OK && r == 0)
		r = -EIO;
	return r;
}

/* Replaces *ret_error for a backup that ran out of room (r is -ENOSPC, -EDQUOT or -EFBIG):
 * SQLite's "database or disk is full" names neither the file nor a way out, and under a
 * file-size limit (ulimit -f, systemd's LimitFSIZE=) the disk may not be full at all. */
static void explain_no_room(const char *path, int r, char **ret_error)
{
	struct rlimit limit;
	bool limited = getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY;
	free(*ret_error);
	int n;
	if (limited)
		n = asprintf(ret_error,
		             "no room to write %s: the disk is full or the copy reached this process's "
		             "file-size limit of %llu bytes (ulimit -f, systemd LimitFSIZE=); free space "
		             "there, raise the limit, or back up to another disk",
		             path, (unsigned long long)limit.rlim_cur);
	else if (r == -EFBIG)
		n = asprintf(ret_error,
		             "no room to write %s: the copy is larger than its file system allows; back "
		             "up to another file system",
		             path);
	else
		n = asprintf(ret_error,
		             "no room to write %s: the disk is full; free space there or back up to "
		             "another disk",
		             path);
	if (n < 0)
		*ret_error = NULL;
}

static void explain_exists(const char *path, char **ret_error)
{
	if (asprintf(ret_error, "%s exists: a backup never replaces a file", path) < 0)
		*ret_error = NULL;
}

/* Whether path names the database at db_path, or one of the files SQLite keeps beside it,
 * however either is spelled (".", "..", symbolic links): 1, 0, or a negative errno. */
static int names_database_file(const char *db_path, const char *path)
{
	static const char *const suffixes[] = { "", "-journal", "-wal", "-shm" };
	char *db_real = realpath(db_path, NULL), *dir_copy = strdup(path), *base_copy = strdup(path);
	char *dir_real = dir_copy ? realpath(dirname(dir_copy), NULL) : NULL;
	char *target = NULL;
	int r = -ENOMEM;
	if (!db_real || !base_copy)
		goto out;
	r = 0; /* a folder that is not there holds no database */
	if (!dir_real)
		goto out;
	if (asprintf(&target, "%s%s%s", dir_real, strcmp(dir_real, "/") == 0 ? "" : "/",
	             basename(base_copy)) < 0) {
		target = NULL;
		r = -ENOMEM;
		goto out;
	}
	size_t len = strlen(db_real);
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0] && !r; i++)
		r = strncmp(target, db_real, len) == 0 && strcmp(target + len, suffixes[i]) == 0;
out:
	free(target);
	free(dir_real);
	free(base_copy);
	free(dir_copy);
	free(db_real);
	return r;
}

/* Removes the backup's PATH.partial and the files SQLite keeps beside it: its -journal
 * (beside a new .partial, one a killed backup left would be rolled back into it), and the
 * -wal and -shm that the switch to rollback-journal mode opens (the copied header says WAL)
 * and leaves behind when it fails. A folder of one of those names is not the backup's and
 * stays (unlink fails on it). */
static void remove_partial(const char *partial)
{
	static const char *const suffixes[] = { "-journal", "-wal", "-shm" };
	char beside[PATH_MAX + 16];
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		int n = snprintf(beside, sizeof beside, "%s%s", partial, suffixes[i]);
		if (n > 0 && (size_t)n < sizeof beside) /* longer: no file can have that name */
			unlink(beside);
	}
	unlink(partial);
}

int db_backup(struct npsd_db *db, const char *path, char **ret_error)
{
	*ret_error = NULL;
	/* A copy named <db>-journal beside the database is, to SQLite, a hot journal, which
	 * the next open would "roll back" into the database; as <db>-wal or <db>-shm it would
	 * be taken for the WAL or its index once npsd has stopped and removed them. */
	int r = names_database_file(db->path, path);
	if (r != 0) {
		if (r > 0 && asprintf(ret_error,
		                      "%s is the database or a file SQLite keeps beside it (-journal, -wal, "
		                      "-shm), which SQLite would take for its own; write the backup under "
		                      "another name",
		                      path) < 0)
			*ret_error = NULL;
		return r > 0 ? -EINVAL : r;
	}
	/* Refused before the copy, not only at the end: a copy takes a second per 190 MB, and
	 * one that fills the disk first would be refused for that. The link() below still
	 * decides, for a file that appears meanwhile. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		explain_exists(path, ret_error);
		return -EEXIST;
	}
	char *partial = NULL, *dir_copy = NULL;
	if (asprintf(&partial, "%s.partial", path) < 0)
		return -ENOMEM;
	remove_partial(partial); /* what an interrupted backup left */
	/* Made here, not by SQLite: a copy of every customer's data is for its owner alone,
	 * whatever the umask of the shell that runs npsctl. */
	int fd = open(partial, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		r = -errno;
	else
		close(fd);
	if (r == 0) {
		struct db_conn *conn = db_reader(db);
		r = copy_pages(db_handle(conn), partial, ret_error);
		db_reader_put(db, conn);
	}
	if (r == 0)
		r = sync_path(partial, O_RDONLY);
	/* link() never replaces: a file that appeared at path meanwhile stays as it was. */
	if (r == 0 && link(partial, path) < 0) {
		r = -errno;
		if (r == -EEXIST)
			explain_exists(path, ret_error);
	}
	/* The new name is durable once its folder is synced. */
	if (r == 0 && !(dir_copy = strdup(path)))
		r = -ENOMEM;
	if (r == 0)
		r = sync_path(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
	if (r == -ENOSPC || r == -EDQUOT || r == -EFBIG)
		explain_no_room(path, r, ret_error);
	if (r < 0 && !*ret_error && asprintf(ret_error, "%s: %s", path, strerror(-r)) < 0)
		*ret_error = NULL;
	remove_partial(partial);
	free(partial);
	free(dir_copy);
	return r;
}
