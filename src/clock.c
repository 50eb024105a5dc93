#include "npsd/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static const char *fake_clock_path(void)
{
	static int checked;
	static const char *path;
	if (!checked) {
		path = getenv("NPSD_FAKE_CLOCK_FILE");
		if (path && !*path)
			path = NULL;
		checked = 1;
	}
	return path;
}

/* The fake clock holds milliseconds' worth of precision in seconds: "1795000000" or
 * "1795000000.250". A file that cannot be read falls back to the real clock. */
static int read_fake_ms(const char *path, int64_t *ret_ms)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	double secs;
	int ok = fscanf(f, "%lf", &secs) == 1;
	fclose(f);
	if (!ok)
		return -1;
	*ret_ms = (int64_t)(secs * 1000.0);
	return 0;
}

int64_t clock_now_ms(void)
{
	const char *fake = fake_clock_path();
	int64_t ms;
	if (fake && read_fake_ms(fake, &ms) == 0)
		return ms;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now(void)
{
	return clock_now_ms() / 1000;
}

int64_t clock_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec clock_mono_after_ms(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

void clock_mono_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}
