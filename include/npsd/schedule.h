#ifndef NPSD_SCHEDULE_H
#define NPSD_SCHEDULE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "npsd/config.h"

/*
 * Opening-hours arithmetic for the callback queue: pure functions of the hours, the holidays
 * and a unix time, evaluated in the process time zone (callbacks.timezone).
 *
 * Rules, by the local wall clock:
 * - Open when the local time of day lies in a window of that weekday, [open, close), and
 *   the local date is not a holiday. Holidays close the whole local day.
 * - "always" (h->always) is open at every instant of a day that is not a holiday: a
 *   round-the-clock team's hours (SPEC: the hours minus the holidays).
 * - Daylight saving: a window opening inside the spring-forward gap (02:30 on the last
 *   Sunday of March in Europe/Amsterdam) opens at the first instant after the gap (03:00
 *   CEST); a window lying wholly in the gap does not open that day. In the autumn hour that
 *   happens twice, a window is open during both passes of the wall-clock times it covers.
 * Time zones are assumed to change their UTC offset at most once a day (all of tzdata's do).
 */

/* Sets the process time zone (TZ=":NAME", tzset) once at start, before any thread starts:
 * setenv is not thread-safe and every thread's localtime_r reads it. All local-time math
 * below uses it. Returns 0, or -1 when NAME is not a zone under /usr/share/zoneinfo. */
int schedule_set_timezone(const char *iana_name);

/* True when the call centre is open at unix time t. */
bool schedule_is_open(const struct opening_hours *h, const struct civil_date *holidays, size_t nholidays,
                      int64_t t);

/* t itself when open, else the next opening instant (unix seconds) after t; searches up to
 * 366 days ahead and returns -1 if never open in that span (e.g. all days closed). */
int64_t schedule_next_open(const struct opening_hours *h, const struct civil_date *holidays, size_t nholidays,
                           int64_t t);

/* How many seconds the call centre was open in [from, to), exact to the second whatever
 * from and to are (the DST changes and holidays counted in), and only up to cap: counted
 * back from to a day at most at a time, so a caller asking "open for at least cap?" pays
 * for little more, and a span of months costs a few hundred steps. 0 when from >= to. */
int64_t schedule_open_seconds(const struct opening_hours *h, const struct civil_date *holidays,
                              size_t nholidays, int64_t from, int64_t to, int64_t cap);

#endif
