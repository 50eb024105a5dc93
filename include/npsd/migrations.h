#ifndef NPSD_MIGRATIONS_H
#define NPSD_MIGRATIONS_H
#include <stddef.h>

/* The schema steps from sql/NNNN_*.sql, compiled in by sql/embed.sh, in ascending order. */
struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;

#endif
