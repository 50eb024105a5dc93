#ifndef NPSD_STORE_INTERNAL_H
#define NPSD_STORE_INTERNAL_H
/* Shared by the store_*.c files only. */
#include <sqlite3.h>

/* strdup of a column, NULL for SQL NULL; sets *oom when a copy failed. */
char *store_column_dup(sqlite3_stmt *st, int col, int *oom);

/* Steps a statement that returns no rows and resets it: 0 or the error as a negative errno. */
int store_step_done(sqlite3_stmt *st);

/* Steps st to its end, calling visit for each row; stops early when visit returns nonzero
 * and returns that. Resets st. */
int store_rows(sqlite3_stmt *st, int (*visit)(sqlite3_stmt *st, void *arg), void *arg);

#endif
