#ifndef NPSD_SCHEDULER_H
#define NPSD_SCHEDULER_H

#include <stdint.h>

#include "npsd/db.h"

/*
 * The scheduler thread: sleeps until the next lease expiry or SLA deadline, then runs
 * callbacks_tick() through the writer. Commits wake it to look again (at most a few times
 * a second: new deadlines are always minutes ahead). With a fake clock (clock.h) it looks
 * every 100 ms, since the time can jump.
 */
struct scheduler;

/* How long to sleep at now (unix seconds) before next_deadline (0: none), in milliseconds:
 * never more than a minute, so that a step of the wall clock is noticed; a deadline already
 * past (its tick failed) is tried again a second later. */
int64_t scheduler_sleep_ms(int64_t now, int64_t next_deadline);
/* Starts the thread; db is borrowed until scheduler_stop(). */
int scheduler_start(struct npsd_db *db, struct scheduler **ret);
/* Safe from any thread; cheap enough for every commit. */
void scheduler_wake(void *scheduler);
/* Stops and joins the thread, frees *s, NULLs it. NULL is a no-op. */
void scheduler_stop(struct scheduler **s);

#endif
