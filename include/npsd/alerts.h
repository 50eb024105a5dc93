#ifndef NPSD_ALERTS_H
#define NPSD_ALERTS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/reports.h"

/*
 * Loop-health alerts (SPEC "Webhooks"): loop.silent when no answer has come in for
 * alerts.silence_after of opening hours (the survey feed may be broken), and
 * loop.nps_drop when a touchpoint's NPS over the last alerts.window fell more than
 * alerts.nps_drop points below the window before, with at least alerts.min_responses
 * answers in each. A thread of their own looks every few seconds (the silence) and every
 * ten minutes (the NPS, which reads two windows of answers), and writes the events through
 * the writer like every other event.
 */

/* The silence: when the call centre is open now and has been open for silence_after or
 * more (open_silence) since the last answer (or npsd's start, when later: a restart does
 * not know what it missed; since), unless this silence was announced already (alerted_for:
 * the since it was announced for). silence_after 0 switches it off. */
bool alerts_silence_due(int64_t open_silence, int64_t silence_after, bool open, int64_t since,
                        int64_t alerted_for);

/* The drop: both windows hold at least min_responses answers and the NPS fell by more
 * than drop points. */
bool alerts_nps_dropped(const struct nps_counts *previous, const struct nps_counts *current, double drop,
                        int min_responses);

struct alerts;
/* Starts the thread; db and cfg (the live config, re-read every look) are borrowed until
 * alerts_stop(). start_time is when npsd started (unix seconds). */
int alerts_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, int64_t start_time,
                 struct alerts **ret);
/* Stops and joins the thread, frees *a, NULLs it. NULL is a no-op. */
void alerts_stop(struct alerts **a);

#endif
