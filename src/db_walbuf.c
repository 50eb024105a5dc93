/*
 * A thin SQLite VFS over the default one that gathers the writes to a WAL file and hands
 * them to the kernel as one pwrite at the next sync.
 *
 * Why: SQLite writes each WAL frame as two pwrite() calls (24-byte header, then the page),
 * and a commit of a group of surveys touches some fifty pages. On the virtual machines we
 * measured, a syscall costs tens of microseconds, so those writes were half of the writer
 * thread's time. The frames of a transaction are appended one after another, so they
 * coalesce into a single write.
 *
 * Why it is safe: the buffer is written out with the last frame of each commit, before
 * SQLite publishes it: a frame header whose "database size" field is set marks the commit
 * frame, and once its page is buffered the whole buffer goes to the file in that same
 * xWrite call. A failure (a full disk) is then SQLite's to see: it fails the commit and
 * rolls it back, and no frame that is not in the file is ever published. Were a flush to
 * fail later (at the wal-index barrier, or when the 1 MiB buffer is full mid-transaction),
 * it is reported too. Every other operation on the WAL file (read, size, truncate, close,
 * sync) flushes first. Files other than WALs are passed straight through.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/db_vfs.h"

#define WALBUF_CAP (1u << 20) /* larger writes go straight through */
/* The unix VFS refuses writes of 128 KiB or more in one call (it masks the length as a
 * guard), so a flush goes out in pieces below that. */
#define WRITE_PIECE (64u << 10)
#define FRAME_HEADER 24 /* a WAL frame: this header, then one page */

struct walbuf_file {
	sqlite3_file base;  /* must be first: SQLite sees this */
	sqlite3_file *real; /* the default VFS's file, in the same allocation after us */
	int is_wal;
	struct walbuf_file *main_db; /* for a WAL: its database file */
	struct walbuf_file *wal;     /* for a database: its open WAL, if any */
	int write_failed;            /* a flush at a barrier failed: the next sync reports it */
	int commit_page_next;        /* the last header buffered was a commit frame's */
	unsigned char *buf;
	size_t len;
	sqlite3_int64 offset; /* file offset of buf[0] */
};

static sqlite3_vfs *real_vfs;
static atomic_int barrier_flush_failed;
static sqlite3_vfs walbuf_vfs;

static sqlite3_file *real_of(sqlite3_file *f)
{
	return ((struct walbuf_file *)f)->real;
}

static int flush(struct walbuf_file *f)
{
	if (f->len == 0)
		return SQLITE_OK;
	int rc = SQLITE_OK;
	for (size_t done = 0; done < f->len && rc == SQLITE_OK; done += WRITE_PIECE) {
		size_t piece = f->len - done < WRITE_PIECE ? f->len - done : WRITE_PIECE;
		rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)piece,
		                               f->offset + (sqlite3_int64)done);
	}
	f->len = 0;
	return rc;
}

static int wb_close(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = flush(f);
	if (f->main_db && f->main_db->wal == f)
		f->main_db->wal = NULL;
	if (f->wal)
		f->wal->main_db = NULL;
	int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = flush(f);
	if (rc != SQLITE_OK)
		return rc;
	return f->real->pMethods->xRead(f->real, out, amount, offset);
}

static int wb_write(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	if (!f->is_wal)
		return f->real->pMethods->xWrite(f->real, data, amount, offset);
	if (f->len > 0 &&
	    (offset != f->offset + (sqlite3_int64)f->len || f->len + (size_t)amount > WALBUF_CAP)) {
		int rc = flush(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if ((size_t)amount > WRITE_PIECE || (!f->buf && !(f->buf = malloc(WALBUF_CAP)))) {
		int rc = flush(f);
		return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amount, offset);
	}
	if (f->len == 0)
		f->offset = offset;
	memcpy(f->buf + f->len, data, (size_t)amount);
	f->len += (size_t)amount;
	/* Bytes 4..7 of a frame header: the database size after a commit, 0 in other frames.
	 * Each header is looked at anew: one SQLite rewrites alone (a spilled transaction
	 * rewriting its frames' checksums up to the commit's header) is followed by no page,
	 * and the flag it set must not make the next transaction's first page pass for a
	 * commit page while its real one waits for the barrier, where a full disk would be
	 * found too late to fail that write alone. */
	const unsigned char *h = data;
	if (amount == FRAME_HEADER) {
		f->commit_page_next = (h[4] | h[5] | h[6] | h[7]) != 0;
		return SQLITE_OK;
	}
	if (f->commit_page_next) {
		f->commit_page_next = 0;
		return flush(f); /* the commit's last write: out now, while it can still fail */
	}
	return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = flush(f);
	if (f->write_failed) {
		f->write_failed = 0;
		return SQLITE_IOERR_WRITE;
	}
	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *ret_size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, ret_size);
}

/* The rest passes through unchanged. */
static int wb_lock(sqlite3_file *f, int level)
{
	return real_of(f)->pMethods->xLock(real_of(f), level);
}
static int wb_unlock(sqlite3_file *f, int level)
{
	return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
static int wb_check_reserved(sqlite3_file *f, int *out)
{
	return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
static int wb_file_control(sqlite3_file *f, int op, void *arg)
{
	return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
static int wb_sector_size(sqlite3_file *f)
{
	return real_of(f)->pMethods->xSectorSize(real_of(f));
}
static int wb_device_characteristics(sqlite3_file *f)
{
	return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f));
}
static int wb_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
	return real_of(f)->pMethods->xShmMap(real_of(f), region, size, extend, out);
}
static int wb_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
/* The barrier in the middle of publishing a commit: the frames go to the file first. */
static void wb_shm_barrier(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	if (f->wal && flush(f->wal) != SQLITE_OK) {
		f->wal->write_failed = 1;
		atomic_store(&barrier_flush_failed, 1);
	}
	f->real->pMethods->xShmBarrier(f->real);
}
static int wb_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
}
static int wb_fetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out)
{
	return real_of(f)->pMethods->xFetch(real_of(f), offset, amount, out);
}
static int wb_unfetch(sqlite3_file *f, sqlite3_int64 offset, void *p)
{
	return real_of(f)->pMethods->xUnfetch(real_of(f), offset, p);
}

static const sqlite3_io_methods walbuf_methods = {
	.iVersion = 3,
	.xClose = wb_close,
	.xRead = wb_read,
	.xWrite = wb_write,
	.xTruncate = wb_truncate,
	.xSync = wb_sync,
	.xFileSize = wb_file_size,
	.xLock = wb_lock,
	.xUnlock = wb_unlock,
	.xCheckReservedLock = wb_check_reserved,
	.xFileControl = wb_file_control,
	.xSectorSize = wb_sector_size,
	.xDeviceCharacteristics = wb_device_characteristics,
	.xShmMap = wb_shm_map,
	.xShmLock = wb_shm_lock,
	.xShmBarrier = wb_shm_barrier,
	.xShmUnmap = wb_shm_unmap,
	.xFetch = wb_fetch,
	.xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	(void)vfs;
	struct walbuf_file *f = (struct walbuf_file *)file;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
	int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	/* SQLite calls xClose only when pMethods is set, so set it only when the real file
	 * opened; the real VFS follows the same rule for its own file. */
	f->base.pMethods = rc == SQLITE_OK ? &walbuf_methods : NULL;
	if (rc == SQLITE_OK && f->is_wal && name) {
		/* Opened through this VFS too, so the database's file object is ours. */
		struct walbuf_file *main_db = (struct walbuf_file *)sqlite3_database_file_object(name);
		if (main_db && main_db->base.pMethods == &walbuf_methods) {
			f->main_db = main_db;
			main_db->wal = f;
		}
	}
	return rc;
}

static int wb_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}
static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int wb_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}
static int wb_sleep(sqlite3_vfs *v, int usec)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, usec);
}
static int wb_current_time(sqlite3_vfs *v, double *out)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, out);
}
static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}
static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void)v;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int register_result = SQLITE_ERROR;

static void register_once(void)
{
	/* Must come before SQLite initialises (sqlite3_vfs_find does): memory statistics take
	 * a global mutex at every allocation, which the writer does thousands of times a
	 * second, and npsd never reads them. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs || real_vfs->iVersion < 2)
		return;
	walbuf_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct walbuf_file) + real_vfs->szOsFile,
		.mxPathname = real_vfs->mxPathname,
		.zName = DB_VFS_NAME,
		.xOpen = wb_open,
		.xDelete = wb_delete,
		.xAccess = wb_access,
		.xFullPathname = wb_full_pathname,
		.xRandomness = wb_randomness,
		.xSleep = wb_sleep,
		.xCurrentTime = wb_current_time,
		.xGetLastError = wb_last_error,
		.xCurrentTimeInt64 = wb_current_time64,
	};
	register_result = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int db_vfs_take_write_error(void)
{
	return atomic_exchange(&barrier_flush_failed, 0) ? -EIO : 0;
}

int db_vfs_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, register_once);
	return register_result == SQLITE_OK ? 0 : -EIO;
}
