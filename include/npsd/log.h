#ifndef NPSD_LOG_H
#define NPSD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Logging to stderr, which journald collects. Callers pass ids, counts and codes, never a
 * customer's phone, name or email: nothing below ever receives PII, so nothing can leak it.
 * The level is checked before any formatting happens.
 */
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_threshold;

/* "error", "warn", "info" or "debug"; returns 0 or -1 for an unknown name. */
int log_set_level(const char *name);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A line that a flood (a client in a loop) would repeat: at most one an interval, and that
 * one says how many were left out since the last. Static, with LOG_LIMIT_INIT; shared by
 * threads.
 */
struct log_limit {
	pthread_mutex_t lock;
	int64_t next_ms; /* when the next line may be written; 0 = at once */
	uint64_t missed; /* lines left out since the last one written */
};
#define LOG_LIMIT_INIT                          \
	{                                       \
		PTHREAD_MUTEX_INITIALIZER, 0, 0 \
	}

/* True when a line may be written at now_ms (a monotonic clock, from 0 on): *ret_missed is then how
 * many were left out before it, and the next may be written interval_ms later. False, and
 * counted, when the last one was written less than interval_ms ago. */
bool log_limit_pass(struct log_limit *l, int64_t now_ms, int64_t interval_ms, uint64_t *ret_missed);

#define log_at(lvl, ...)                               \
	do {                                           \
		if ((lvl) <= log_threshold)            \
			log_write((lvl), __VA_ARGS__); \
	} while (0)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
