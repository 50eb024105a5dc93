#ifndef NPSD_DB_VFS_H
#define NPSD_DB_VFS_H

/* The VFS npsd opens its database with: the default one, with WAL writes gathered until
 * the commit's sync (see db_walbuf.c). */
#define DB_VFS_NAME "npsd-walbuf"

/* Registers it (once; thread-safe). Returns 0, or -EIO when SQLite's default VFS is too
 * old to wrap, in which case callers open with the default VFS. */
int db_vfs_register(void);

/* -EIO once after a WAL write failed where SQLite cannot hear of it (while publishing a
 * commit), else 0: the commit it belonged to must not be acknowledged. */
int db_vfs_take_write_error(void);

#endif
