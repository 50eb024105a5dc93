#ifndef NPSD_STORE_INTERNAL_H
#define NPSD_STORE_INTERNAL_H
/* Shared by the store_*.c files only. */
#include <sqlite3.h>

/* strdup of a column, NULL for SQL NULL; sets *oom when a copy failed. */
char *store_column_dup(sqlite3_stmt *st, int col, int *oom);

#endif
