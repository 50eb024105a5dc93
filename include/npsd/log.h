#ifndef NPSD_LOG_H
#define NPSD_LOG_H

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
