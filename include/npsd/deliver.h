#ifndef NPSD_DELIVER_H
#define NPSD_DELIVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"

/*
 * The delivery thread: the libcurl multi loop that takes due deliveries from the outbox
 * (leased, so a crash means a resend, never a loss), sends them in their webhook's format,
 * records every attempt, and schedules retries. Nothing is sent from a request thread.
 */
struct deliver;

/* cfg points to the config in force (replaced whole on reload; read at each round); it and
 * db are borrowed until deliver_stop(). */
int deliver_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, struct deliver **ret);
/* New outbox rows were committed: look now. Safe from any thread. */
void deliver_wake(void *deliver);
/* Stops: transfers in flight are abandoned (their leases run out, they are sent again). */
void deliver_stop(struct deliver **d);

/* The wait before a retry, in step's unit (npsd passes milliseconds): step (a
 * webhooks.retry step) with +-20% jitter, random choosing where in the range (uniform over
 * all of uint32_t), rounded to the nearest unit (truncation would give 4-5 for a step of
 * 5, never 6), at least 1. */
int64_t deliver_jitter(int64_t step, uint32_t random);
/* When a retry waiting delay_ms from now_ms is due, in the whole unix seconds deliveries
 * are kept in: rounded up, so that it never comes before its wait (truncated, a wait of a
 * second could end at once). */
int64_t deliver_retry_at(int64_t now_ms, int64_t delay_ms);

#endif
