#include "npsd/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/*
 * All the reasoning happens on "wall seconds": the local date and time of day written as
 * seconds since 1970-01-01 00:00 local, which is plain calendar arithmetic. The time zone
 * enters only as the UTC offset, wall = t + offset(t), constant between two transitions.
 * Searching one such stretch at a time makes the DST gap and the repeated autumn hour fall
 * out of the arithmetic instead of needing special cases, and avoids mktime(), whose
 * answer for a time inside the gap (tm_isdst = -1) is not pinned down by POSIX.
 */

#define DAY_SECS INT64_C(86400)
#define SEARCH_DAYS 366

int schedule_set_timezone(const char *iana_name)
{
	char tz[300];

	if (!config_timezone_valid(iana_name))
		return -1;
	/* The ':' makes glibc read the zone file rather than try NAME as a POSIX TZ rule. */
	snprintf(tz, sizeof tz, ":%s", iana_name);
	if (setenv("TZ", tz, 1) != 0)
		return -1;
	tzset();
	return 0;
}

/* The process zone's offset from UTC at t, in seconds east. */
static int64_t utc_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return tm.tm_gmtoff;
}

/* The first second after lo whose offset is not lo's, up to hi, whose offset is not: the
 * stretches asked about are at most a day long, so they hold one change of the offset. */
static int64_t offset_change(int64_t lo, int64_t hi)
{
	int64_t before = utc_offset(lo);

	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (utc_offset(mid) == before)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if (a % b != 0 && (a < 0) != (b < 0))
		q--;
	return q;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days). */
static struct civil_date civil_from_days(int64_t z)
{
	int64_t era, doe, yoe, doy, mp, d, m, y;
	struct civil_date c;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	c.year = (int)(y + (m <= 2));
	c.month = (int)m;
	c.day = (int)d;
	return c;
}

/* tm_wday of a day number: 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
	return (int)(((days % 7) + 7 + 4) % 7);
}

static bool is_holiday(const struct civil_date *holidays, size_t n, int64_t days)
{
	struct civil_date c = civil_from_days(days);

	for (size_t i = 0; i < n; i++)
		if (holidays[i].year == c.year && holidays[i].month == c.month && holidays[i].day == c.day)
			return true;
	return false;
}

/*
 * The first stretch of open wall time within [w0, w1), clipped to it, in [*ret_start,
 * *ret_end): false when the hours do not open in it. Relies on each day's windows being
 * sorted and disjoint, as config_parse_hours() leaves them.
 */
static bool first_open_window(const struct opening_hours *h, const struct civil_date *holidays,
                              size_t nholidays, int64_t w0, int64_t w1, int64_t *ret_start, int64_t *ret_end)
{
	for (int64_t day = floor_div(w0, DAY_SECS); day * DAY_SECS < w1; day++) {
		int wd = weekday(day);

		if (h->nwindows[wd] == 0 || is_holiday(holidays, nholidays, day))
			continue;
		for (int i = 0; i < h->nwindows[wd]; i++) {
			int64_t ws = day * DAY_SECS + h->windows[wd][i].open_min * INT64_C(60);
			int64_t we = day * DAY_SECS + h->windows[wd][i].close_min * INT64_C(60);

			if (we <= w0)
				continue;
			*ret_start = ws > w0 ? ws : w0;
			*ret_end = we < w1 ? we : w1;
			return *ret_start < w1;
		}
	}
	return false;
}

/* The first wall second in [w0, w1) at which the hours are open, or -1. */
static int64_t next_open_wall(const struct opening_hours *h, const struct civil_date *holidays,
                              size_t nholidays, int64_t w0, int64_t w1)
{
	int64_t start, end;

	return first_open_window(h, holidays, nholidays, w0, w1, &start, &end) ? start : -1;
}

static bool has_windows(const struct opening_hours *h)
{
	for (int d = 0; d < 7; d++)
		if (h->nwindows[d] > 0)
			return true;
	return false;
}

/* "always" with holidays: every day 00:00-24:00, so a holiday closes its whole local day. */
static const struct opening_hours whole_days = {
	.nwindows = { 1, 1, 1, 1, 1, 1, 1 },
	.windows = { [0][0] = { 0, 1440 },
	             [1][0] = { 0, 1440 },
	             [2][0] = { 0, 1440 },
	             [3][0] = { 0, 1440 },
	             [4][0] = { 0, 1440 },
	             [5][0] = { 0, 1440 },
	             [6][0] = { 0, 1440 } },
};

bool schedule_is_open(const struct opening_hours *h, const struct civil_date *holidays, size_t nholidays,
                      int64_t t)
{
	int64_t w;

	if (h->always && nholidays == 0)
		return true;
	if (h->always)
		h = &whole_days;
	w = t + utc_offset(t);
	return next_open_wall(h, holidays, nholidays, w, w + 1) == w;
}

int64_t schedule_next_open(const struct opening_hours *h, const struct civil_date *holidays, size_t nholidays,
                           int64_t t)
{
	int64_t x = t, limit = t + (SEARCH_DAYS + 1) * DAY_SECS;

	if (h->always && nholidays == 0)
		return t;
	if (h->always)
		h = &whole_days;
	if (!has_windows(h))
		return -1;
	/* One stretch of constant UTC offset at a time, at most a day long. */
	while (x < limit) {
		int64_t off = utc_offset(x), end = x + DAY_SECS, w;

		if (utc_offset(end) != off)
			end = offset_change(x, end);
		w = next_open_wall(h, holidays, nholidays, x + off, end + off);
		if (w >= 0)
			return w - off;
		x = end;
	}
	return -1;
}

/* How many wall seconds of [w0, w1) the hours are open: the overlap of each day's windows. */
static int64_t open_wall_seconds(const struct opening_hours *h, const struct civil_date *holidays,
                                 size_t nholidays, int64_t w0, int64_t w1)
{
	int64_t open = 0, start, end;

	for (int64_t t = w0; first_open_window(h, holidays, nholidays, t, w1, &start, &end); t = end)
		open += end - start;
	return open;
}

int64_t schedule_open_seconds(const struct opening_hours *h, const struct civil_date *holidays,
                              size_t nholidays, int64_t from, int64_t to, int64_t cap)
{
	int64_t open = 0;

	if (to <= from)
		return 0;
	if (h->always && nholidays == 0)
		return to - from < cap ? to - from : cap;
	if (h->always)
		h = &whole_days;
	/* Back from to, one stretch of constant UTC offset at a time (at most a day): a span of
	 * days costs a few calls per day, whatever its seconds, and the cap ends it early. */
	for (int64_t y = to; y > from && open < cap;) {
		int64_t off = utc_offset(y - 1), start = y - DAY_SECS > from ? y - DAY_SECS : from;

		if (utc_offset(start) != off)
			start = offset_change(start, y - 1);
		open += open_wall_seconds(h, holidays, nholidays, start + off, y + off);
		y = start;
	}
	return open < cap ? open : cap;
}
