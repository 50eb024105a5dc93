#ifndef NPSD_STORE_INTERNAL_H
#define NPSD_STORE_INTERNAL_H
/* Shared by the store_*.c files only. */
#include <sqlite3.h>
#include <stdint.h>

struct db_conn;

/* strdup of a column, NULL for SQL NULL; sets *oom when a copy failed. */
char *store_column_dup(sqlite3_stmt *st, int col, int *oom);

/* Steps a statement that returns no rows and resets it: 0 or the error as a negative errno. */
int store_step_done(sqlite3_stmt *st);

/* The statement for sql (as db_prepare) with ?1 bound to text_key when it is not NULL, else
 * to int_key; NULL when it cannot be prepared. Give it back with db_done(). */
sqlite3_stmt *store_prepare_keyed(struct db_conn *conn, const char *sql, const char *text_key,
                                  int64_t int_key);

/* Steps st to its end, calling visit for each row; stops early when visit returns nonzero
 * and returns that. Resets st. */
int store_rows(sqlite3_stmt *st, int (*visit)(sqlite3_stmt *st, void *arg), void *arg);

/* The statement for sql (static, as for db_prepare), an INSERT into table ("surveys",
 * "callbacks", "events" or "improvements") whose first parameter is the new row's id, with that parameter
 * bound: NULL for SQLite's own choice (the highest in use plus one), or, after an erasure or
 * purge deleted the newest rows, the one after the highest they noted (sql/0010), whose
 * note then goes. Runs in the caller's transaction. NULL with *ret_error (a negative errno)
 * on failure; give the statement back with db_done(). */
sqlite3_stmt *store_prepare_insert(struct db_conn *conn, const char *table, const char *sql, int *ret_error);

#endif
