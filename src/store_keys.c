#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "npsd/store.h"
#include "store_internal.h"

int store_key_insert(struct db_conn *conn, const char *name, enum role role,
                     const uint8_t hash[TOKEN_HASH_LEN], int64_t now, int64_t *ret_id)
{
	static const char sql[] =
	        "INSERT INTO api_keys (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, role_name(role));
	sqlite3_bind_blob(st, 3, hash, TOKEN_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	int rc = sqlite3_step(st);
	db_done(st);
	if (rc != SQLITE_DONE)
		return db_errno(rc);
	*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	return 0;
}

int store_key_revoke(struct db_conn *conn, int64_t id, int64_t now)
{
	static const char sql_get[] = "SELECT revoked_at FROM api_keys WHERE id = ?";
	static const char sql_set[] =
	        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";
	sqlite3_stmt *st = db_prepare(conn, sql_get);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int revoked = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
	db_done(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return db_errno(rc);
	if (revoked)
		return -EALREADY;
	st = db_prepare(conn, sql_set);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	db_done(st);
	return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

int store_key_live(struct db_conn *conn, const uint8_t hash[TOKEN_HASH_LEN])
{
	static const char sql[] = "SELECT 1 FROM api_keys WHERE token_hash = ? AND revoked_at IS NULL";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_blob(st, 1, hash, TOKEN_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	db_done(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
}

struct key_visit {
	int (*fn)(const struct key_row *row, void *arg);
	void *arg;
};

static int visit_key(sqlite3_stmt *st, void *arg)
{
	struct key_visit *v = arg;
	struct key_row row = { .id = sqlite3_column_int64(st, 0) };
	const char *name = db_column_text(st, 1);
	snprintf(row.name, sizeof row.name, "%s", name ? name : "");
	/* A row this version cannot read is skipped, not fatal: the others still work. */
	if (role_parse(db_column_text(st, 2), &row.role) < 0 || sqlite3_column_bytes(st, 3) != TOKEN_HASH_LEN)
		return 0;
	memcpy(row.hash, sqlite3_column_blob(st, 3), TOKEN_HASH_LEN);
	row.created_at = sqlite3_column_int64(st, 4);
	row.revoked_at = sqlite3_column_int64(st, 5);
	return v->fn(&row, v->arg);
}

int store_key_each(struct db_conn *conn, bool live_only, int (*fn)(const struct key_row *row, void *arg),
                   void *arg)
{
	static const char sql_all[] =
	        "SELECT id, name, role, token_hash, created_at, revoked_at FROM api_keys ORDER BY id";
	static const char sql_live[] =
	        "SELECT id, name, role, token_hash, created_at, revoked_at FROM api_keys "
	        "WHERE revoked_at IS NULL ORDER BY id";
	sqlite3_stmt *st = db_prepare(conn, live_only ? sql_live : sql_all);
	if (!st)
		return -EIO;
	struct key_visit v = { fn, arg };
	return store_rows(st, visit_key, &v);
}
