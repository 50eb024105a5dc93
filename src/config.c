#include "npsd/config.h"
#include "npsd/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The configuration file: one table of every option, a reader that feeds inih one line at a
 * time (so errors carry line numbers, which Debian's inih handler does not get), and the
 * value parsers. Nothing here logs: errors go back to the caller as text.
 */

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define STRING_MAX 4096 /* paths and URLs */
#define ITEM_MAX 64     /* one element of a comma-separated list */
#define WHY_MAX 256

#define SEC 1
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

enum opt_type {
	OPT_LISTEN,    /* "HOST:PORT" into listen_host and listen_port */
	OPT_UINT,      /* unsigned */
	OPT_INT,       /* int */
	OPT_SIZE,      /* size_t, "512", "64K", "1M", "1G" */
	OPT_DOUBLE,    /* double, plain decimal */
	OPT_DURATION,  /* int64_t seconds */
	OPT_DURATIONS, /* int64_t[CONFIG_MAX_STEPS] plus a size_t count; bounds are per step */
	OPT_BOOL,      /* bool */
	OPT_STRING,    /* char *, NULL when empty; bounds are on the length (min 1 = required) */
	OPT_URL,       /* like OPT_STRING, but http:// or https://, trailing '/' dropped */
	OPT_TIMEZONE,  /* char *, an IANA zone that exists on this machine */
	OPT_HOURS,     /* struct opening_hours */
	OPT_DATES,     /* struct civil_date[CONFIG_MAX_HOLIDAYS] plus a size_t count */
};

struct option {
	const char *section, *key;
	enum opt_type type;
	int64_t min, max; /* value bounds; see enum opt_type for what they bound */
	const char *def;  /* the default, as text, parsed like the file's values */
	bool reloadable;  /* SIGHUP applies it; the others need a restart */
	size_t offset;    /* of the value in struct npsd_config */
	size_t count_off; /* lists: of their size_t count */
};

#define OFF(field) offsetof(struct npsd_config, field)

/*
 * Every option there is. Defaults follow SPEC's sample, except for what a laptop needs to
 * run without root: the database in ./var and no holidays until someone lists them.
 * Not reloadable: what is bound at start (socket, threads, TLS, database) and the time
 * zone, which is process state that other threads read without locks (see schedule.h).
 */
static const struct option options[] = {
	/* section, key, type, min, max, default, reloadable, offset, count offset */
	{ "server", "listen", OPT_LISTEN, 0, 0, "127.0.0.1:8080", false, OFF(listen_host), 0 },
	{ "server", "threads", OPT_UINT, 0, 256, "0", false, OFF(threads), 0 },
	{ "server", "max_body", OPT_SIZE, KIB, GIB, "1M", true, OFF(max_body), 0 },
	{ "server", "public_url", OPT_URL, 0, 2048, "", true, OFF(public_url), 0 },
	{ "server", "tls_cert", OPT_STRING, 0, STRING_MAX, "", false, OFF(tls_cert), 0 },
	{ "server", "tls_key", OPT_STRING, 0, STRING_MAX, "", false, OFF(tls_key), 0 },
	{ "server", "connection_timeout", OPT_DURATION, 1 * SEC, 1 * HOUR, "30s", false,
	  OFF(connection_timeout), 0 },
	{ "server", "rate_limit", OPT_DOUBLE, 0, 1000000, "0", true, OFF(rate_limit), 0 },
	{ "database", "path", OPT_STRING, 1, STRING_MAX, "./var/npsd.db", false, OFF(db_path), 0 },
	{ "callbacks", "max_score", OPT_INT, 0, 10, "8", true, OFF(cb_max_score), 0 },
	{ "callbacks", "timezone", OPT_TIMEZONE, 0, 0, "Europe/Amsterdam", false, OFF(cb_timezone), 0 },
	{ "callbacks", "hours", OPT_HOURS, 0, 0, "mon-fri 08:00-20:00, sat 09:00-13:00", true, OFF(cb_hours),
	  0 },
	{ "callbacks", "holidays", OPT_DATES, 0, CONFIG_MAX_HOLIDAYS, "", true, OFF(cb_holidays),
	  OFF(cb_nholidays) },
	{ "callbacks", "sla", OPT_DURATION, 1 * MINUTE, 30 * DAY, "1h", true, OFF(cb_sla), 0 },
	{ "callbacks", "lease", OPT_DURATION, 1 * MINUTE, 24 * HOUR, "15m", true, OFF(cb_lease), 0 },
	{ "callbacks", "retry", OPT_DURATIONS, 1 * SEC, 30 * DAY, "30m, 2h, 1d", true, OFF(cb_retry),
	  OFF(cb_nretry) },
	{ "callbacks", "max_attempts", OPT_INT, 1, 20, "3", true, OFF(cb_max_attempts), 0 },
	{ "callbacks", "cooldown", OPT_DURATION, 0, 365 * DAY, "0", true, OFF(cb_cooldown), 0 },
	{ "webhooks", "timeout", OPT_DURATION, 1 * SEC, 5 * MINUTE, "10s", true, OFF(wh_timeout), 0 },
	{ "webhooks", "retry", OPT_DURATIONS, 1 * SEC, 7 * DAY, "5s, 30s, 2m, 10m, 30m, 1h, 3h, 6h, 12h",
	  true, OFF(wh_retry), OFF(wh_nretry) },
	{ "webhooks", "disable_after", OPT_DURATION, 1 * MINUTE, 365 * DAY, "72h", true,
	  OFF(wh_disable_after), 0 },
	{ "webhooks", "allow_private_targets", OPT_BOOL, 0, 1, "false", true, OFF(wh_allow_private_targets),
	  0 },
	{ "webhooks", "proxy", OPT_URL, 0, 2048, "", true, OFF(wh_proxy), 0 },
	{ "alerts", "silence_after", OPT_DURATION, 0, 30 * DAY, "2h", true, OFF(alerts_silence_after), 0 },
	{ "alerts", "window", OPT_DURATION, 1 * HOUR, 365 * DAY, "7d", true, OFF(alerts_window), 0 },
	{ "alerts", "nps_drop", OPT_DOUBLE, 0, 200, "15", true, OFF(alerts_nps_drop), 0 },
	{ "alerts", "min_responses", OPT_INT, 1, 1000000, "30", true, OFF(alerts_min_responses), 0 },
	{ "retention", "days", OPT_INT, 1, 36500, "730", true, OFF(retention_days), 0 },
};

#define NOPTIONS (sizeof options / sizeof options[0])

static const char *const sections[] = {
	"server", "database", "callbacks", "webhooks", "alerts", "retention"
};

static const char *const day_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

/* ---- small helpers ---- */

static void *field(struct npsd_config *cfg, size_t offset)
{
	return (char *)cfg + offset;
}

static const void *cfield(const struct npsd_config *cfg, size_t offset)
{
	return (const char *)cfg + offset;
}

static void why_set(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes the reason for a failure when the caller asked for one (why may be NULL). */
static void why_set(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* Returns a malloc'ed formatted string the caller frees, or NULL when out of memory. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Reads n (>0) decimal digits, capped so callers can multiply without overflow checks
 * beyond the cap. Returns 0 or -1 when the number is over cap. */
static int digits_value(const char *s, size_t n, int64_t cap, int64_t *ret)
{
	int64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (s[i] - '0');
		if (v > cap)
			return -1;
	}
	*ret = v;
	return 0;
}

/* Writes a duration the way a user would type it: the largest unit that divides it. */
static const char *format_duration(int64_t s, char *buf, size_t size)
{
	if (s == 0)
		snprintf(buf, size, "0");
	else if (s % DAY == 0)
		snprintf(buf, size, "%" PRId64 "d", s / DAY);
	else if (s % HOUR == 0)
		snprintf(buf, size, "%" PRId64 "h", s / HOUR);
	else if (s % MINUTE == 0)
		snprintf(buf, size, "%" PRId64 "m", s / MINUTE);
	else
		snprintf(buf, size, "%" PRId64 "s", s);
	return buf;
}

static const char *format_size(int64_t b, char *buf, size_t size)
{
	if (b != 0 && b % GIB == 0)
		snprintf(buf, size, "%" PRId64 "G", b / GIB);
	else if (b != 0 && b % MIB == 0)
		snprintf(buf, size, "%" PRId64 "M", b / MIB);
	else if (b != 0 && b % KIB == 0)
		snprintf(buf, size, "%" PRId64 "K", b / KIB);
	else
		snprintf(buf, size, "%" PRId64, b);
	return buf;
}

/*
 * Copies the next comma-separated element of *pp into item, without surrounding blanks,
 * and moves *pp past it (to NULL after the last one). Returns 1 for an element, possibly
 * empty, 0 when there is none left, -1 when it does not fit in item.
 */
static int next_item(const char **pp, char *item, size_t size)
{
	const char *p = *pp, *end, *comma;
	size_t len;

	if (p == NULL)
		return 0;
	comma = strchr(p, ',');
	end = comma ? comma : p + strlen(p);
	*pp = comma ? comma + 1 : NULL;
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - p);
	if (len >= size)
		return -1;
	memcpy(item, p, len);
	item[len] = '\0';
	return 1;
}

static bool blank(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return *s == '\0';
}

/* ---- value parsers ---- */

int config_parse_duration(const char *text, int64_t *ret_seconds)
{
	size_t len, n;
	int64_t v, unit;

	if (text == NULL)
		return -1;
	if (strcmp(text, "0") == 0) {
		*ret_seconds = 0;
		return 0;
	}
	len = strlen(text);
	n = len - 1;
	if (len < 2 || !all_digits(text, n))
		return -1;
	switch (text[n]) {
	case 's':
		unit = SEC;
		break;
	case 'm':
		unit = MINUTE;
		break;
	case 'h':
		unit = HOUR;
		break;
	case 'd':
		unit = DAY;
		break;
	default:
		return -1;
	}
	/* A cap of 10^12 units keeps the product far inside int64_t, and no sane value nears it. */
	if (digits_value(text, n, INT64_C(1000000000000), &v) < 0)
		return -1;
	*ret_seconds = v * unit;
	return 0;
}

int config_parse_size(const char *text, size_t *ret_bytes)
{
	size_t len, n;
	int64_t v, unit = 1;

	if (text == NULL)
		return -1;
	len = strlen(text);
	n = len;
	if (len > 0 && !isdigit((unsigned char)text[len - 1])) {
		n = len - 1;
		switch (text[n]) {
		case 'K':
		case 'k':
			unit = KIB;
			break;
		case 'M':
		case 'm':
			unit = MIB;
			break;
		case 'G':
		case 'g':
			unit = GIB;
			break;
		default:
			return -1;
		}
	}
	if (!all_digits(text, n) || digits_value(text, n, INT64_C(1000000000000), &v) < 0)
		return -1;
	/* v is below 10^12, but v * unit need not fit: compare before multiplying. */
	if ((uint64_t)v > SIZE_MAX / (uint64_t)unit)
		return -1;
	*ret_bytes = (size_t)v * (size_t)unit;
	return 0;
}

/* The list parsers below accept one trailing comma when trailing_ok, so a list in the file
 * may go on over the next, indented line: "holidays = 2026-12-25,\n  2026-12-26". */
static int parse_durations(const char *text, int64_t *list, size_t max, size_t *ret_n, bool trailing_ok,
                           char *why, size_t whysize)
{
	char item[ITEM_MAX];
	const char *p = text;
	size_t n = 0;
	int r;

	if (blank(text)) {
		*ret_n = 0;
		return 0;
	}
	while ((r = next_item(&p, item, sizeof item)) > 0) {
		if (item[0] == '\0' && p == NULL && n > 0 && trailing_ok)
			break;
		if (item[0] == '\0') {
			why_set(why, whysize, "empty element in list");
			return -1;
		}
		if (n == max) {
			why_set(why, whysize, "more than %zu steps", max);
			return -1;
		}
		if (config_parse_duration(item, &list[n]) < 0) {
			why_set(why, whysize, "%s is not a duration (use 30s, 15m, 2h, 1d)", item);
			return -1;
		}
		n++;
	}
	if (r < 0) {
		why_set(why, whysize, "element too long: not a duration (use 30s, 15m, 2h, 1d)");
		return -1;
	}
	*ret_n = n;
	return 0;
}

int config_parse_durations(const char *text, int64_t *ret_list, size_t max, size_t *ret_n)
{
	int64_t tmp[CONFIG_MAX_STEPS];
	size_t n;

	if (text == NULL || max > CONFIG_MAX_STEPS)
		return -1;
	if (parse_durations(text, tmp, max, &n, false, NULL, 0) < 0)
		return -1;
	memcpy(ret_list, tmp, n * sizeof tmp[0]);
	*ret_n = n;
	return 0;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* "YYYY-MM-DD", a day that exists, years 1900-9999. */
static int parse_date(const char *s, struct civil_date *ret)
{
	int64_t y = 0, m = 0, d = 0;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
	    !all_digits(s + 8, 2))
		return -1;
	digits_value(s, 4, 9999, &y);
	digits_value(s + 5, 2, 99, &m);
	digits_value(s + 8, 2, 99, &d);
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > days_in_month((int)y, (int)m))
		return -1;
	ret->year = (int)y;
	ret->month = (int)m;
	ret->day = (int)d;
	return 0;
}

/* Appends the dates in text to list[*n .. max), skipping ones already there. */
static int parse_dates(const char *text, struct civil_date *list, size_t max, size_t *n, bool trailing_ok,
                       char *why, size_t whysize)
{
	char item[ITEM_MAX];
	const char *p = text;
	struct civil_date d;
	size_t count = *n, i;
	int r;

	if (blank(text))
		return 0;
	while ((r = next_item(&p, item, sizeof item)) > 0) {
		if (item[0] == '\0' && p == NULL && count > 0 && trailing_ok)
			break;
		if (item[0] == '\0') {
			why_set(why, whysize, "empty element in list");
			return -1;
		}
		if (parse_date(item, &d) < 0) {
			why_set(why, whysize, "%s is not a date (use YYYY-MM-DD, a day that exists)", item);
			return -1;
		}
		for (i = 0; i < count; i++)
			if (list[i].year == d.year && list[i].month == d.month && list[i].day == d.day)
				break;
		if (i < count)
			continue;
		if (count == max) {
			why_set(why, whysize, "more than %zu dates", max);
			return -1;
		}
		list[count++] = d;
	}
	if (r < 0) {
		why_set(why, whysize, "element too long: not a date (use YYYY-MM-DD)");
		return -1;
	}
	*n = count;
	return 0;
}

int config_parse_dates(const char *text, struct civil_date *ret_list, size_t max, size_t *ret_n)
{
	struct civil_date tmp[CONFIG_MAX_HOLIDAYS];
	size_t n = 0;

	if (text == NULL || max > CONFIG_MAX_HOLIDAYS)
		return -1;
	if (parse_dates(text, tmp, max, &n, false, NULL, 0) < 0)
		return -1;
	memcpy(ret_list, tmp, n * sizeof tmp[0]);
	*ret_n = n;
	return 0;
}

/* "HH:MM" into minutes since midnight; 24:00 only when close is true. */
static int parse_clock(const char *s, size_t len, bool close, int *ret)
{
	int64_t h = 0, m = 0;

	if (len != 5 || s[2] != ':' || !all_digits(s, 2) || !all_digits(s + 3, 2))
		return -1;
	digits_value(s, 2, 99, &h);
	digits_value(s + 3, 2, 99, &m);
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !close)))
		return -1;
	*ret = (int)(h * 60 + m);
	return 0;
}

/* Monday first, as people read "mon-fri"; returns 0 (mon) .. 6 (sun) or -1. */
static int parse_day(const char *s, size_t len)
{
	static const char *const iso[7] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

	if (len != 3)
		return -1;
	for (int i = 0; i < 7; i++)
		if (strncasecmp(s, iso[i], 3) == 0)
			return i;
	return -1;
}

/* Adds one "DAYS HH:MM-HH:MM" item to h, keeping each day's windows sorted. */
static int hours_add_item(struct opening_hours *h, const char *item, char *why, size_t whysize)
{
	const char *sp = item, *days_end, *times;
	int first, last, open, close;
	const char *dash;

	while (*sp && !isspace((unsigned char)*sp))
		sp++;
	days_end = sp;
	times = sp;
	while (*times && isspace((unsigned char)*times))
		times++;
	dash = memchr(item, '-', (size_t)(days_end - item));
	if (dash) {
		first = parse_day(item, (size_t)(dash - item));
		last = parse_day(dash + 1, (size_t)(days_end - dash - 1));
	} else {
		first = last = parse_day(item, (size_t)(days_end - item));
	}
	if (first < 0 || last < 0 || *times == '\0') {
		why_set(why, whysize,
		        "\"%s\" is not DAYS HH:MM-HH:MM (e.g. mon-fri 08:00-20:00, sat 09:00-13:00)", item);
		return -1;
	}
	/* A range that wraps past Sunday ("fri-mon") is more likely a typo for "mon-fri" than
	 * what was meant, so it is refused rather than guessed at. */
	if (first > last) {
		why_set(why, whysize,
		        "\"%s\": a day range runs forward from mon to sun (write fri-sun, mon as two items)",
		        item);
		return -1;
	}
	dash = strchr(times, '-');
	if (dash == NULL || parse_clock(times, (size_t)(dash - times), false, &open) < 0 ||
	    parse_clock(dash + 1, strlen(dash + 1), true, &close) < 0) {
		why_set(why, whysize, "\"%s\": times are HH:MM-HH:MM, 00:00 to 24:00", item);
		return -1;
	}
	if (close <= open) {
		why_set(why, whysize,
		        "\"%s\": a window closes after it opens (split one past midnight in two)", item);
		return -1;
	}
	for (int iso = first; iso <= last; iso++) {
		int wday = (iso + 1) % 7;
		struct hours_window *w = h->windows[wday];
		uint8_t n = h->nwindows[wday];
		int at = 0;

		for (int i = 0; i < n; i++) {
			if (open < w[i].close_min && w[i].open_min < close) {
				why_set(why, whysize, "\"%s\" overlaps %02d:%02d-%02d:%02d on %s", item,
				        w[i].open_min / 60, w[i].open_min % 60, w[i].close_min / 60,
				        w[i].close_min % 60, day_names[wday]);
				return -1;
			}
			if (w[i].open_min < open)
				at = i + 1;
		}
		if (n == HOURS_MAX_WINDOWS) {
			why_set(why, whysize, "more than %d windows on %s", HOURS_MAX_WINDOWS,
			        day_names[wday]);
			return -1;
		}
		memmove(&w[at + 1], &w[at], (size_t)(n - at) * sizeof w[0]);
		w[at].open_min = (uint16_t)open;
		w[at].close_min = (uint16_t)close;
		h->nwindows[wday] = (uint8_t)(n + 1);
	}
	return 0;
}

/* Adds the items of text to *h (which may hold earlier ones). On failure *h holds a part. */
static int hours_add(struct opening_hours *h, const char *text, bool trailing_ok, char *why, size_t whysize)
{
	char item[ITEM_MAX];
	const char *p = text;
	int r, nitems = 0;
	bool had_windows = false;

	for (int d = 0; d < 7; d++)
		had_windows |= h->nwindows[d] > 0;
	if (blank(text)) {
		why_set(why, whysize, "empty: use always, or e.g. mon-fri 08:00-20:00, sat 09:00-13:00");
		return -1;
	}
	while ((r = next_item(&p, item, sizeof item)) > 0) {
		if (item[0] == '\0' && p == NULL && nitems > 0 && trailing_ok)
			break;
		if (item[0] == '\0') {
			why_set(why, whysize, "empty element in list");
			return -1;
		}
		if (strcasecmp(item, "always") == 0) {
			if (had_windows || nitems > 0 || p != NULL || h->always) {
				why_set(why, whysize, "always stands alone, without windows");
				return -1;
			}
			h->always = true;
			nitems++;
			continue;
		}
		if (h->always) {
			why_set(why, whysize, "always stands alone, without windows");
			return -1;
		}
		if (hours_add_item(h, item, why, whysize) < 0)
			return -1;
		nitems++;
	}
	if (r < 0) {
		why_set(why, whysize, "an item is too long (use DAYS HH:MM-HH:MM)");
		return -1;
	}
	return 0;
}

int config_parse_hours(const char *text, struct opening_hours *ret)
{
	struct opening_hours h;

	if (text == NULL)
		return -1;
	memset(&h, 0, sizeof h);
	if (hours_add(&h, text, false, NULL, 0) < 0)
		return -1;
	*ret = h;
	return 0;
}

bool config_timezone_valid(const char *tz)
{
	char path[512];
	char magic[4];
	struct stat st;
	bool ok;
	int fd;

	/* Only the characters IANA names use: no dots means no "..", no leading '/' means no
	 * escape from the zoneinfo directory. */
	if (tz == NULL || tz[0] == '\0' || tz[0] == '/' || strlen(tz) > 255)
		return false;
	for (const char *p = tz; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
			return false;
	snprintf(path, sizeof path, "%s/%s", ZONEINFO_DIR, tz);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* zoneinfo also holds tables (zone.tab, iso3166.tab); only TZif files are zones. */
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	     read(fd, magic, sizeof magic) == (ssize_t)sizeof magic && memcmp(magic, "TZif", 4) == 0;
	close(fd);
	return ok;
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -1;
}

/* A plain decimal: digits with at most one '.', so no signs, exponents, hex, inf or nan. */
static int parse_decimal(const char *s, double *ret)
{
	size_t dots = 0, digits = 0;
	char *end;
	double v;

	for (const char *p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (isdigit((unsigned char)*p))
			digits++;
		else
			return -1;
	}
	if (digits == 0 || dots > 1)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return -1;
	*ret = v;
	return 0;
}

/* Writes the host (brackets stripped, "" for ":PORT") into host and the port into *port. */
static int parse_listen(const char *text, char *host, size_t hostsize, uint16_t *port, char *why,
                        size_t whysize)
{
	const char *colon, *h, *h_end;
	unsigned char addr[16];
	int64_t p;
	size_t plen;

	if (text[0] == '[') {
		h = text + 1;
		h_end = strchr(h, ']');
		if (h_end == NULL || h_end[1] != ':')
			goto bad;
		colon = h_end + 1;
	} else {
		h = text;
		colon = strrchr(text, ':');
		if (colon == NULL)
			goto bad;
		h_end = colon;
		if (memchr(h, ':', (size_t)(h_end - h))) {
			why_set(why, whysize, "an IPv6 address goes in brackets: [::1]:8080");
			return -1;
		}
	}
	plen = strlen(colon + 1);
	if (plen > 5 || !all_digits(colon + 1, plen) || digits_value(colon + 1, plen, 65535, &p) < 0) {
		why_set(why, whysize, "the port is a number from 0 to 65535");
		return -1;
	}
	if ((size_t)(h_end - h) >= hostsize)
		goto bad;
	memcpy(host, h, (size_t)(h_end - h));
	host[h_end - h] = '\0';
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, host, addr) != 1) {
			why_set(why, whysize, "%s is not an IPv6 address", host);
			return -1;
		}
	} else if (host[0] == '\0') {
		/* ":8080" is every IPv4 interface, as in most servers' listen syntax. */
		snprintf(host, hostsize, "0.0.0.0");
	} else if (strcasecmp(host, "localhost") == 0) {
		/* The one name worth accepting; anything else could resolve differently later. */
		snprintf(host, hostsize, "127.0.0.1");
	} else if (inet_pton(AF_INET, host, addr) != 1) {
		why_set(why, whysize, "%s is not an IP address (names other than localhost are not resolved)",
		        host);
		return -1;
	}
	*port = (uint16_t)p;
	return 0;
bad:
	why_set(why, whysize, "not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080, :8080)");
	return -1;
}

/* ---- the table's setters ---- */

static bool is_list(const struct option *o)
{
	return o->type == OPT_DURATIONS || o->type == OPT_DATES || o->type == OPT_HOURS;
}

/* Replaces the string at *slot with a copy of text, or NULL when text is empty. */
static int set_string(char **slot, const char *text, char *why, size_t whysize)
{
	char *copy = NULL;

	if (text[0] != '\0') {
		copy = strdup(text);
		if (copy == NULL) {
			why_set(why, whysize, "out of memory");
			return -1;
		}
	}
	free(*slot);
	*slot = copy;
	return 0;
}

/*
 * Parses text as option o and stores it in cfg; append adds to a list instead of replacing
 * it (an indented continuation line). Leaves cfg unchanged and writes why on failure.
 */
static int opt_set(const struct option *o, struct npsd_config *cfg, const char *text, bool append, char *why,
                   size_t whysize)
{
	void *slot = field(cfg, o->offset);
	char lo[32], hi[32];
	int64_t i64;
	double dbl;
	size_t sz, len;
	bool b;

	switch (o->type) {
	case OPT_LISTEN: {
		char host[64];
		uint16_t port;

		if (parse_listen(text, host, sizeof host, &port, why, whysize) < 0 ||
		    set_string(&cfg->listen_host, host, why, whysize) < 0)
			return -1;
		cfg->listen_port = port;
		return 0;
	}
	case OPT_UINT:
	case OPT_INT:
		len = strlen(text);
		if (!all_digits(text, len) || digits_value(text, len, INT64_C(1) << 40, &i64) < 0) {
			why_set(why, whysize, "not a whole number");
			return -1;
		}
		if (i64 < o->min || i64 > o->max) {
			why_set(why, whysize, "must be from %" PRId64 " to %" PRId64, o->min, o->max);
			return -1;
		}
		if (o->type == OPT_UINT)
			*(unsigned *)slot = (unsigned)i64;
		else
			*(int *)slot = (int)i64;
		return 0;
	case OPT_SIZE:
		if (config_parse_size(text, &sz) < 0) {
			why_set(why, whysize, "not a size (use 512, 64K, 1M, 1G)");
			return -1;
		}
		if ((int64_t)sz < o->min || (int64_t)sz > o->max) {
			why_set(why, whysize, "must be from %s to %s", format_size(o->min, lo, sizeof lo),
			        format_size(o->max, hi, sizeof hi));
			return -1;
		}
		*(size_t *)slot = sz;
		return 0;
	case OPT_DOUBLE:
		if (parse_decimal(text, &dbl) < 0) {
			why_set(why, whysize, "not a number (e.g. 15 or 2.5)");
			return -1;
		}
		if (dbl < (double)o->min || dbl > (double)o->max) {
			why_set(why, whysize, "must be from %" PRId64 " to %" PRId64, o->min, o->max);
			return -1;
		}
		*(double *)slot = dbl;
		return 0;
	case OPT_DURATION:
		if (config_parse_duration(text, &i64) < 0) {
			why_set(why, whysize, "not a duration (use 30s, 15m, 2h, 1d)");
			return -1;
		}
		if (i64 < o->min || i64 > o->max) {
			why_set(why, whysize, "must be from %s to %s", format_duration(o->min, lo, sizeof lo),
			        format_duration(o->max, hi, sizeof hi));
			return -1;
		}
		*(int64_t *)slot = i64;
		return 0;
	case OPT_DURATIONS: {
		int64_t tmp[CONFIG_MAX_STEPS];
		int64_t *list = slot;
		size_t *count = field(cfg, o->count_off);
		size_t have = append ? *count : 0, n;

		if (parse_durations(text, tmp, CONFIG_MAX_STEPS, &n, true, why, whysize) < 0)
			return -1;
		if (have + n > CONFIG_MAX_STEPS) {
			why_set(why, whysize, "more than %d steps", CONFIG_MAX_STEPS);
			return -1;
		}
		if (have + n == 0) {
			why_set(why, whysize, "needs 1 to %d steps (e.g. 30m, 2h, 1d)", CONFIG_MAX_STEPS);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (tmp[i] < o->min || tmp[i] > o->max) {
				why_set(why, whysize, "each step must be from %s to %s",
				        format_duration(o->min, lo, sizeof lo),
				        format_duration(o->max, hi, sizeof hi));
				return -1;
			}
		}
		memcpy(list + have, tmp, n * sizeof tmp[0]);
		*count = have + n;
		return 0;
	}
	case OPT_BOOL:
		if (parse_bool(text, &b) < 0) {
			why_set(why, whysize, "not a boolean (use true or false)");
			return -1;
		}
		*(bool *)slot = b;
		return 0;
	case OPT_STRING:
	case OPT_URL: {
		char buf[STRING_MAX + 1];

		len = strlen(text);
		if ((int64_t)len < o->min) {
			why_set(why, whysize, "must not be empty");
			return -1;
		}
		if ((int64_t)len > o->max) {
			why_set(why, whysize, "longer than %" PRId64 " characters", o->max);
			return -1;
		}
		for (size_t i = 0; i < len; i++) {
			if (iscntrl((unsigned char)text[i]) ||
			    (o->type == OPT_URL && isspace((unsigned char)text[i]))) {
				why_set(why, whysize, "contains a blank or control character");
				return -1;
			}
		}
		memcpy(buf, text, len + 1);
		if (o->type == OPT_URL && len > 0) {
			size_t scheme = 0;

			if (strncasecmp(buf, "https://", 8) == 0)
				scheme = 8;
			else if (strncasecmp(buf, "http://", 7) == 0)
				scheme = 7;

			/* Links are built as public_url + "/ui/...", so one '/' is dropped here. */
			while (len > scheme && buf[len - 1] == '/')
				buf[--len] = '\0';
			if (scheme == 0 || len == scheme) {
				why_set(why, whysize, "not an http:// or https:// URL");
				return -1;
			}
		}
		return set_string(slot, buf, why, whysize);
	}
	case OPT_TIMEZONE:
		if (!config_timezone_valid(text)) {
			why_set(why, whysize, "%s is not a time zone in %s (e.g. Europe/Amsterdam)", text,
			        ZONEINFO_DIR);
			return -1;
		}
		return set_string(slot, text, why, whysize);
	case OPT_HOURS: {
		struct opening_hours h;

		if (append)
			h = *(struct opening_hours *)slot;
		else
			memset(&h, 0, sizeof h);
		if (hours_add(&h, text, true, why, whysize) < 0)
			return -1;
		*(struct opening_hours *)slot = h;
		return 0;
	}
	case OPT_DATES: {
		struct civil_date tmp[CONFIG_MAX_HOLIDAYS];
		size_t *count = field(cfg, o->count_off);
		size_t n = 0;

		if (append) {
			n = *count;
			memcpy(tmp, slot, n * sizeof tmp[0]);
		}
		if (parse_dates(text, tmp, (size_t)o->max, &n, true, why, whysize) < 0)
			return -1;
		memcpy(slot, tmp, n * sizeof tmp[0]);
		*count = n;
		return 0;
	}
	}
	why_set(why, whysize, "internal error: unknown option type");
	return -1;
}

static const struct option *find_option(const char *section, const char *key)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strcmp(options[i].section, section) == 0 && strcmp(options[i].key, key) == 0)
			return &options[i];
	return NULL;
}

static bool known_section(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strlen(sections[i]) == len && strncmp(sections[i], name, len) == 0)
			return true;
	return false;
}

/* ---- public API ---- */

void config_defaults(struct npsd_config *cfg)
{
	char why[WHY_MAX];

	for (size_t i = 0; i < NOPTIONS; i++) {
		/* The defaults are constants that the unit tests parse; only running out of memory
		 * for a few short strings can fail here, at start, with nothing to fall back on. */
		if (opt_set(&options[i], cfg, options[i].def, false, why, sizeof why) < 0) {
			fprintf(stderr, "npsd: default %s.%s: %s\n", options[i].section, options[i].key, why);
			abort();
		}
	}
}

void config_free(struct npsd_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->listen_host);
	for (size_t i = 0; i < NOPTIONS; i++) {
		enum opt_type t = options[i].type;

		if (t == OPT_STRING || t == OPT_URL || t == OPT_TIMEZONE)
			free(*(char **)field(cfg, options[i].offset));
	}
	memset(cfg, 0, sizeof *cfg);
}

/* A value given by a command-line flag instead of the file; the error names the flag. */
static int set_by_flag(struct npsd_config *cfg, const char *flag, const char *section, const char *key,
                       const char *text, char **ret_error)
{
	char why[WHY_MAX];

	if (opt_set(find_option(section, key), cfg, text, false, why, sizeof why) == 0)
		return 0;
	if (ret_error && asprintf(ret_error, "%s: %s", flag, why) < 0)
		*ret_error = NULL;
	return -1;
}

int config_set_listen(struct npsd_config *cfg, const char *hostport, char **ret_error)
{
	return set_by_flag(cfg, "--listen", "server", "listen", hostport, ret_error);
}

int config_set_db_path(struct npsd_config *cfg, const char *path, char **ret_error)
{
	return set_by_flag(cfg, "--db", "database", "path", path, ret_error);
}

/* ---- loading a file ---- */

struct load_ctx {
	struct npsd_config *cfg;
	const char *path;
	FILE *file;
	int lineno;                /* of the line inih is working on */
	bool continuation;         /* that line is indented and goes on with the last key */
	const struct option *last; /* the last key set in the current section */
	int set_on[NOPTIONS];      /* the line each option was set on; 0 = not in this file */
	char *error;               /* the first error, "FILE:LINE: key: what" */
	int error_line;
};

/* Stands for an error message that could not be allocated. */
static char oom_marker[] = "out of memory";

static void fail(struct load_ctx *ctx, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Records the first error only: it is the one the user fixes first. */
static void fail(struct load_ctx *ctx, const char *key, const char *fmt, ...)
{
	char what[WHY_MAX + 128];
	va_list ap;

	if (ctx->error)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	ctx->error_line = ctx->lineno;
	ctx->error = key ? str_printf("%s:%d: %s: %s", ctx->path, ctx->lineno, key, what)
	                 : str_printf("%s:%d: %s", ctx->path, ctx->lineno, what);
	if (ctx->error == NULL)
		ctx->error = oom_marker; /* still a failure; config_load reports it */
}

/* Where an inline comment starts in p (the line past its indent), as inih sees it: a ';'
 * after a blank; else p's length. */
static size_t inline_comment_at(const char *p)
{
	for (size_t i = 1; p[0] && p[i]; i++)
		if (p[i] == ';' && isspace((unsigned char)p[i - 1]))
			return i;
	return strlen(p);
}

/* The key an over-long line sets, or the list it continues, into key: the error names
 * it as every other error of a value does. NULL for a section or comment line. */
static const char *long_line_key(const struct load_ctx *ctx, const char *line, char key[static 65])
{
	const char *p = line;
	if (ctx->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	bool indented = *p == ' ' || *p == '\t';
	p += strspn(p, " \t");
	if (*p == '\0' || *p == ';' || *p == '#' || *p == '[')
		return NULL;
	/* An '=' in a comment ("; see ...?year=2027") makes no key of the line: read_line
	 * tells a continuation so. */
	if (indented && !memchr(p, '=', inline_comment_at(p)))
		return ctx->last ? ctx->last->key : NULL;
	size_t word = strcspn(p, " \t=");
	snprintf(key, 65, "%.*s", (int)(word < 64 ? word : 64), p);
	return key;
}

/*
 * inih's reader: one physical line per call, so ctx->lineno is the line of every handler
 * call that follows. It also does what Debian's inih 55 cannot: report unknown (even empty)
 * sections and over-long lines, accept indented keys, and drop inline comments from
 * continuation lines. Returning NULL ends the parse; it does so after the first error.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	char *p, *end, *comment;
	size_t len;
	bool indented;

	if (ctx->error || num < 3 || fgets(str, num, ctx->file) == NULL)
		return NULL;
	ctx->lineno++;
	ctx->continuation = false;
	len = strlen(str);
	/* A full buffer without its newline is a longer line, unless the file ends there. Even
	 * when only the newline is missing it counts as too long: newer inih versions would
	 * read the newline through this reader as the rest of the line. */
	if (len == (size_t)num - 1 && str[len - 1] != '\n') {
		int c = getc(ctx->file);

		if (c != EOF) {
			char key[65];
			fail(ctx, long_line_key(ctx, str, key),
			     "line longer than %d characters (a list may go on over "
			     "indented lines)",
			     num - 2);
			return NULL;
		}
	}
	p = str;
	if (ctx->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	indented = *p == ' ' || *p == '\t';
	while (*p && isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return str;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end) {
			ctx->last = NULL;
			if (!known_section(p + 1, (size_t)(end - p - 1))) {
				fail(ctx, NULL,
				     "[%.*s]: unknown section (known: server, database, "
				     "callbacks, webhooks, alerts, retention)",
				     (int)(end - p - 1 > 64 ? 64 : end - p - 1), p + 1);
				return NULL;
			}
		}
		return str; /* without ']', inih reports the syntax error */
	}
	comment = p + inline_comment_at(p);
	bool has_value = memchr(p, '=', (size_t)(comment - p)) != NULL;
	if (!indented && !has_value) {
		/* "threads 4": the error names the key the line was meant to set. */
		char key[65];
		size_t word = strcspn(p, " \t\r\n");
		snprintf(key, sizeof key, "%.*s", (int)(word < sizeof key ? word : sizeof key - 1), p);
		fail(ctx, key, "no '=': write %s = VALUE", key);
		return NULL;
	}
	if (!indented)
		return str;
	if (has_value) {
		/* An indented key: hand it to inih unindented, else it reads it as a continuation. */
		memmove(str, p, strlen(p) + 1);
		return str;
	}
	if (ctx->last == NULL) {
		fail(ctx, NULL, "indented line with no key above it to continue");
		return NULL;
	}
	/* inih 55 keeps inline comments in continuation lines; cut them as it does elsewhere. */
	*comment = '\0';
	ctx->continuation = true;
	return str;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	const struct option *o;
	char why[WHY_MAX];
	size_t idx;

	if (ctx->error)
		return 0;
	if (ctx->continuation) {
		o = ctx->last;
		if (!is_list(o)) {
			fail(ctx, o->key,
			     "only a list (hours, holidays, retry) may go on over an "
			     "indented line");
			return 0;
		}
		if (opt_set(o, ctx->cfg, value, true, why, sizeof why) < 0) {
			fail(ctx, o->key, "%s", why);
			return 0;
		}
		return 1;
	}
	if (name[0] == '\0') {
		fail(ctx, NULL, "syntax error: no key before '='");
		return 0;
	}
	if (section[0] == '\0') {
		fail(ctx, name, "outside of any [section]");
		return 0;
	}
	o = find_option(section, name);
	if (o == NULL) {
		fail(ctx, name, "unknown key in [%s]", section);
		return 0;
	}
	idx = (size_t)(o - options);
	if (ctx->set_on[idx]) {
		fail(ctx, name, "already set on line %d", ctx->set_on[idx]);
		return 0;
	}
	ctx->set_on[idx] = ctx->lineno;
	ctx->last = o;
	if (opt_set(o, ctx->cfg, value, false, why, sizeof why) < 0) {
		fail(ctx, name, "%s", why);
		return 0;
	}
	return 1;
}

/* Checks what no single line can: options that only make sense together. */
static void check_together(struct load_ctx *ctx, bool read_files)
{
	struct npsd_config *cfg = ctx->cfg;
	size_t icert = (size_t)(find_option("server", "tls_cert") - options);
	size_t ikey = (size_t)(find_option("server", "tls_key") - options);

	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		bool cert = cfg->tls_cert != NULL;

		ctx->lineno = ctx->set_on[cert ? icert : ikey];
		if (ctx->lineno == 0)
			ctx->lineno = ctx->set_on[cert ? ikey : icert];
		fail(ctx, cert ? "tls_cert" : "tls_key",
		     "set without %s (HTTPS needs both, plain HTTP neither)", cert ? "tls_key" : "tls_cert");
		return;
	}
	if (!read_files)
		return;
	/* The files are read again at start, after the database is open; checking them here
	 * names a missing or wrong file with its line, and lets --check-config catch it. */
	const char *const files[] = { cfg->tls_cert, cfg->tls_key };
	const size_t lines[] = { icert, ikey };
	for (size_t i = 0; i < 2; i++) {
		if (files[i] && access(files[i], R_OK) < 0) {
			int e = errno;
			ctx->lineno = ctx->set_on[lines[i]];
			fail(ctx, i == 0 ? "tls_cert" : "tls_key", "cannot read %s: %s", files[i],
			     strerror(e));
			return;
		}
	}
	if (cfg->tls_cert == NULL)
		return;
	enum tls_file bad;
	char why[2 * WHY_MAX];
	int r = tls_check_pair(cfg->tls_cert, cfg->tls_key, &cfg->tls_not_after, &bad, why, sizeof why);
	if (r == -ENOMEM) {
		fail(ctx, NULL, "out of memory checking the TLS files");
	} else if (r < 0) {
		ctx->lineno = ctx->set_on[lines[bad == TLS_CERT ? 0 : 1]];
		fail(ctx, bad == TLS_CERT ? "tls_cert" : "tls_key", "%s", why);
	}
}

int config_load(struct npsd_config *cfg, const char *path, char **ret_error)
{
	return config_load_flags(cfg, path, 0, ret_error);
}

int config_load_flags(struct npsd_config *cfg, const char *path, unsigned flags, char **ret_error)
{
	struct load_ctx ctx;
	int r, rc = -1;

	memset(&ctx, 0, sizeof ctx);
	ctx.cfg = cfg;
	ctx.path = path;
	ctx.file = fopen(path, "re");
	if (ctx.file == NULL) {
		ctx.error = str_printf("%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	r = ini_parse_stream(read_line, &ctx, on_value, &ctx);
	/* inih goes on after a syntax error (a line with no '=', a '[' with no ']') and
	 * returns the first one's line; report whichever came first. */
	if (r > 0 && (ctx.error == NULL || r < ctx.error_line)) {
		if (ctx.error != oom_marker)
			free(ctx.error);
		ctx.error = NULL;
		ctx.lineno = r;
		fail(&ctx, NULL, "syntax error: expected [section], key = value or a comment");
	} else if (r < 0 && ctx.error == NULL) {
		ctx.error = str_printf("%s: cannot parse: out of memory", path);
	}
	if (ctx.error == NULL && ferror(ctx.file))
		ctx.error = str_printf("%s: cannot read: %s", path, strerror(errno));
	if (ctx.error == NULL)
		check_together(&ctx, !(flags & CONFIG_NO_FILES));
	if (ctx.error == NULL)
		rc = 0;
	fclose(ctx.file);
out:
	if (rc < 0) {
		if (ctx.error == NULL || ctx.error == oom_marker)
			ctx.error = str_printf("%s: out of memory", path);
		if (ret_error)
			*ret_error = ctx.error;
		else
			free(ctx.error);
	}
	return rc;
}

/* ---- reload ---- */

static bool opt_equal(const struct option *o, const struct npsd_config *a, const struct npsd_config *b)
{
	const void *x = cfield(a, o->offset), *y = cfield(b, o->offset);

	switch (o->type) {
	case OPT_LISTEN:
		return a->listen_port == b->listen_port && strcmp(a->listen_host ? a->listen_host : "",
		                                                  b->listen_host ? b->listen_host : "") == 0;
	case OPT_UINT:
		return *(const unsigned *)x == *(const unsigned *)y;
	case OPT_INT:
		return *(const int *)x == *(const int *)y;
	case OPT_SIZE:
		return *(const size_t *)x == *(const size_t *)y;
	case OPT_DOUBLE:
		return *(const double *)x == *(const double *)y;
	case OPT_DURATION:
		return *(const int64_t *)x == *(const int64_t *)y;
	case OPT_BOOL:
		return *(const bool *)x == *(const bool *)y;
	case OPT_STRING:
	case OPT_URL:
	case OPT_TIMEZONE: {
		const char *s = *(char *const *)x, *t = *(char *const *)y;

		return strcmp(s ? s : "", t ? t : "") == 0;
	}
	case OPT_DURATIONS:
	case OPT_DATES: {
		size_t n = *(const size_t *)cfield(a, o->count_off);
		size_t elem = o->type == OPT_DATES ? sizeof(struct civil_date) : sizeof(int64_t);

		return n == *(const size_t *)cfield(b, o->count_off) && memcmp(x, y, n * elem) == 0;
	}
	case OPT_HOURS: {
		const struct opening_hours *g = x, *h = y;

		if (g->always != h->always)
			return false;
		for (int d = 0; d < 7; d++)
			if (g->nwindows[d] != h->nwindows[d] ||
			    memcmp(g->windows[d], h->windows[d], g->nwindows[d] * sizeof g->windows[d][0]) !=
			            0)
				return false;
		return true;
	}
	}
	return false;
}

/* Copies option o from src to dst; strings are duplicated. */
static int opt_copy(const struct option *o, struct npsd_config *dst, const struct npsd_config *src)
{
	void *x = field(dst, o->offset);
	const void *y = cfield(src, o->offset);

	switch (o->type) {
	case OPT_LISTEN:
		dst->listen_port = src->listen_port;
		return set_string(&dst->listen_host, src->listen_host ? src->listen_host : "", NULL, 0);
	case OPT_STRING:
	case OPT_URL:
	case OPT_TIMEZONE: {
		const char *s = *(char *const *)y;

		return set_string(x, s ? s : "", NULL, 0);
	}
	case OPT_UINT:
		memcpy(x, y, sizeof(unsigned));
		break;
	case OPT_INT:
		memcpy(x, y, sizeof(int));
		break;
	case OPT_SIZE:
		memcpy(x, y, sizeof(size_t));
		break;
	case OPT_DOUBLE:
		memcpy(x, y, sizeof(double));
		break;
	case OPT_DURATION:
		memcpy(x, y, sizeof(int64_t));
		break;
	case OPT_BOOL:
		memcpy(x, y, sizeof(bool));
		break;
	case OPT_HOURS:
		memcpy(x, y, sizeof(struct opening_hours));
		break;
	case OPT_DURATIONS:
		memcpy(x, y, CONFIG_MAX_STEPS * sizeof(int64_t));
		memcpy(field(dst, o->count_off), cfield(src, o->count_off), sizeof(size_t));
		break;
	case OPT_DATES:
		memcpy(x, y, CONFIG_MAX_HOLIDAYS * sizeof(struct civil_date));
		memcpy(field(dst, o->count_off), cfield(src, o->count_off), sizeof(size_t));
		break;
	}
	return 0;
}

int config_reload_merge(struct npsd_config *fresh, const struct npsd_config *running, char *changed,
                        size_t size)
{
	size_t used = 0;
	int n = 0;

	if (changed && size)
		changed[0] = '\0';
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option *o = &options[i];

		if (o->reloadable || opt_equal(o, fresh, running))
			continue;
		if (changed && used < size) {
			int w = snprintf(changed + used, size - used, "%s%s.%s", n ? ", " : "", o->section,
			                 o->key);

			used += w > 0 ? (size_t)w : 0;
		}
		n++;
		if (opt_copy(o, fresh, running) < 0)
			return -1;
	}
	fresh->tls_not_after = running->tls_not_after; /* of the certificate in use */
	return n;
}
