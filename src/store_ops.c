/* SQL for operations: the readiness probe. */
#include <errno.h>

#include "npsd/store.h"
#include "store_internal.h"

int store_readiness_touch(struct db_conn *conn, int64_t now)
{
	static const char sql[] = "INSERT INTO readiness (id, checked_at) VALUES (1, ?) "
	                          "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	return store_step_done(st);
}
