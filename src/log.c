#include "npsd/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LVL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* sd-daemon(3) priority prefixes, so journald files each line at its level. */
static const char *const level_prefix[] = { "<3>", "<4>", "<6>", "<7>" };

int log_set_level(const char *name)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			log_threshold = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* journald reads the <N> priority prefix; a terminal shows it as noise. systemd sets
 * JOURNAL_STREAM when stderr goes to the journal. */
static bool to_journal(void)
{
	static int cached = -1;
	if (cached < 0)
		cached = getenv("JOURNAL_STREAM") != NULL;
	return cached;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	int off = snprintf(line, sizeof line, "%s%s: ", to_journal() ? level_prefix[level] : "",
	                   level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	/* One write per line keeps lines from different threads whole. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

bool log_limit_pass(struct log_limit *l, int64_t now_ms, int64_t interval_ms, uint64_t *ret_missed)
{
	pthread_mutex_lock(&l->lock);
	bool pass = now_ms >= l->next_ms;
	if (pass) {
		*ret_missed = l->missed;
		l->missed = 0;
		l->next_ms = now_ms + interval_ms;
	} else {
		l->missed++;
	}
	pthread_mutex_unlock(&l->lock);
	return pass;
}
