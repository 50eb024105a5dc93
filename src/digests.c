#include "npsd/digests.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/outbox.h"
#include "npsd/reports.h"
#include "npsd/store.h"
#include "npsd/validate.h"
#include "npsd/webhooks.h"

#define LOWEST_SHOWN 5
#define COMMENT_SHOWN_CHARS 160 /* of each lowest score's comment, in the message */

/* The local civil date day_offset days from the one of *tm. */
static void civil_date(const struct tm *tm, int day_offset, int *ret_y, int *ret_m, int *ret_d)
{
	/* Noon UTC: timegm() normalises the day without any zone's clock changes. */
	struct tm d = { .tm_year = tm->tm_year,
		        .tm_mon = tm->tm_mon,
		        .tm_mday = tm->tm_mday + day_offset,
		        .tm_hour = 12 };
	time_t t = timegm(&d);
	gmtime_r(&t, &d);
	*ret_y = d.tm_year;
	*ret_m = d.tm_mon;
	*ret_d = d.tm_mday;
}

/* When the local clock shows hour:minute on that date: the first time when it shows it twice
 * (the autumn change), and the later of the two readings, after the gap, when the spring
 * change skips it (02:30 becomes 03:30 summer time). The same date gives the same instant
 * whenever it is asked, so that no period is told twice. INT64_MIN when there is none. */
static int64_t local_instant(int y, int m, int d, int hour, int minute)
{
	int64_t valid = INT64_MAX, any = INT64_MIN;
	for (int dst = 0; dst <= 1; dst++) {
		struct tm tm = { .tm_year = y,
			         .tm_mon = m,
			         .tm_mday = d,
			         .tm_hour = hour,
			         .tm_min = minute,
			         .tm_isdst = dst };
		time_t t = mktime(&tm);
		struct tm back;
		if (t == (time_t)-1 || !localtime_r(&t, &back))
			continue;
		if ((int64_t)t > any)
			any = t;
		if (back.tm_year == y && back.tm_mon == m && back.tm_mday == d && back.tm_hour == hour &&
		    back.tm_min == minute && (int64_t)t < valid)
			valid = t;
	}
	return valid != INT64_MAX ? valid : any;
}

/* The last time at or before t (whose local time is *tm) that the local clock read :minute. */
static int64_t hour_boundary(int64_t t, const struct tm *tm, int minute)
{
	return t - ((tm->tm_min - minute + 60) % 60) * 60 - tm->tm_sec;
}

const char *digest_at_in_force(const char *kind, const char *digest_at)
{
	if (digest_at || !kind)
		return digest_at;
	return strcmp(kind, "daily") == 0 ? "08:00" : strcmp(kind, "hourly") == 0 ? "00:00" : NULL;
}

int digest_period(const char *kind, const char *digest_at, int64_t now, int64_t *ret_start, int64_t *ret_end)
{
	int hour, minute;
	bool hourly = strcmp(kind, "hourly") == 0;
	if (!hourly && strcmp(kind, "daily") != 0)
		return -1;
	digest_at = digest_at_in_force(kind, digest_at);
	if (!digest_at || sscanf(digest_at, "%2d:%2d", &hour, &minute) != 2)
		return -1;
	time_t t = (time_t)now;
	struct tm tm;
	if (!localtime_r(&t, &tm))
		return -1;
	if (hourly) {
		/* The period began where the one before it ended: where a clock change moves the
		 * local minute by half an hour (Lord Howe), an "hour" is 30 or 90 minutes long
		 * rather than two overlapping. */
		int64_t end = hour_boundary(now, &tm, minute), start;
		time_t before = (time_t)(end - 1);
		if (!localtime_r(&before, &tm))
			return -1;
		start = hour_boundary(end - 1, &tm, minute);
		*ret_start = start;
		*ret_end = end;
		return 0;
	}
	int y, m, d;
	civil_date(&tm, 0, &y, &m, &d);
	int64_t end = local_instant(y, m, d, hour, minute);
	int back = end > now ? 1 : 0;
	if (back) {
		civil_date(&tm, -1, &y, &m, &d);
		end = local_instant(y, m, d, hour, minute);
	}
	civil_date(&tm, -1 - back, &y, &m, &d);
	int64_t start = local_instant(y, m, d, hour, minute);
	if (end == INT64_MIN || start == INT64_MIN)
		return -1;
	*ret_start = start;
	*ret_end = end;
	return 0;
}

/* The time in force as minutes into the day (daily), or the minute past the hour (hourly). */
static int at_minutes(const char *kind, const char *digest_at)
{
	int hour, minute;
	const char *at = digest_at_in_force(kind, digest_at);
	if (!at || sscanf(at, "%2d:%2d", &hour, &minute) != 2)
		return -1;
	return strcmp(kind, "hourly") == 0 ? minute : hour * 60 + minute;
}

bool digest_same_schedule(const char *kind, const char *digest_at, const char *kind2, const char *at2)
{
	if (!kind || !kind2)
		return !kind && !kind2;
	return strcmp(kind, kind2) == 0 && at_minutes(kind, digest_at) == at_minutes(kind2, at2);
}

/* The end of the period of kind at digest_at under way at now: its first end after now. */
static int period_under_way_end(const char *kind, const char *digest_at, int64_t now, int64_t *ret_end)
{
	/* Steps shorter than any period (an hour is 30 minutes at the least, where a clock
	 * change moves the local minute by half an hour) meet the next end, never the one
	 * after it, whatever length the clock changes give the day. */
	const int64_t step = 600, limit = now + 3 * 86400;
	for (int64_t t = now + step; t < limit; t += step) {
		int64_t start, end;
		if (digest_period(kind, digest_at, t, &start, &end) < 0)
			return -1;
		if (end > now) {
			*ret_end = end;
			return 0;
		}
	}
	return -1;
}

int digest_rescheduled(const struct digest_marks *marks, const char *kind, const char *digest_at,
                       const char *new_kind, const char *new_at, int64_t now, struct digest_marks *ret)
{
	struct digest_marks m = *marks;
	if (!m.first_until) {
		/* The periods of the old schedule that had ended are told as they would have
		 * been (a change in the first second after npsd came back loses none of the days
		 * it was down for); the one under way at the change is not, its hours go into
		 * the first digest by the new schedule. */
		int64_t start, end;
		if (digest_period(kind, digest_at, now, &start, &end) < 0)
			return -1;
		if (end > m.sent_until) {
			snprintf(m.was, sizeof m.was, "%s", kind);
			snprintf(m.was_at, sizeof m.was_at, "%s", digest_at_in_force(kind, digest_at));
			m.first_from = end;
		} else {
			m.was[0] = m.was_at[0] = '\0';
			m.first_from = m.sent_until;
		}
	}
	/* Else changed again before the first digest by the schedule before was told: that
	 * first digest was never told, so the new one starts where it would have. */
	if (period_under_way_end(new_kind, new_at, now, &m.first_until) < 0)
		return -1;
	*ret = m;
	return 0;
}

/* What a digest webhook asks for, read on the alerts thread. */
struct digest_hook {
	int64_t id;
	struct digest_marks m;
	char kind[8], at[8];
	bool has_at;
	json_t *touchpoints; /* the filter's list, or NULL for all */
};

struct digest_hooks {
	struct digest_hook *v;
	size_t n, cap;
};

static void digest_hooks_free(struct digest_hooks *h)
{
	for (size_t i = 0; i < h->n; i++)
		json_decref(h->v[i].touchpoints);
	free(h->v);
}

static int collect_hook(const struct webhook_row *row, void *arg)
{
	struct digest_hooks *h = arg;
	if (!row->active || !row->digest)
		return 0;
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 8;
		struct digest_hook *v = realloc(h->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	struct digest_hook *d = &h->v[h->n++];
	*d = (struct digest_hook){ .id = row->id,
		                   .m = { .sent_until = row->digest_sent_until,
		                          .first_from = row->digest_first_from,
		                          .first_until = row->digest_first_until },
		                   .has_at = row->digest_at };
	snprintf(d->m.was, sizeof d->m.was, "%s", row->digest_was ? row->digest_was : "");
	snprintf(d->m.was_at, sizeof d->m.was_at, "%s", row->digest_was_at ? row->digest_was_at : "");
	snprintf(d->kind, sizeof d->kind, "%s", row->digest);
	snprintf(d->at, sizeof d->at, "%s", row->digest_at ? row->digest_at : "");
	json_t *filter = row->filter ? json_loads(row->filter, 0, NULL) : NULL;
	json_t *tps = json_object_get(filter, "touchpoints");
	d->touchpoints = json_is_array(tps) ? json_incref(tps) : NULL;
	json_decref(filter);
	return 0;
}

struct sum_walk {
	json_t *touchpoints;
	struct nps_counts sum;
};

static int sum_listed(const struct nps_group *g, void *arg)
{
	struct sum_walk *w = arg;
	size_t i;
	json_t *tp;
	json_array_foreach (w->touchpoints, i, tp) {
		if (g->key && strcmp(json_string_value(tp), g->key) == 0) {
			w->sum.promoters += g->counts.promoters;
			w->sum.passives += g->counts.passives;
			w->sum.detractors += g->counts.detractors;
			break; /* once, even in a filter stored before duplicates were refused */
		}
	}
	return 0;
}

/* The counts of [from, to), of the listed touchpoints only when the webhook filters. */
static int period_counts(struct db_conn *conn, json_t *touchpoints, int64_t from, int64_t to,
                         struct nps_counts *ret)
{
	struct nps_filter f = { .from = from, .to = to };
	struct sum_walk w = { .touchpoints = touchpoints };
	int64_t excluded;
	if (!touchpoints)
		return reports_nps(conn, &f, GROUP_NONE, NULL, NULL, ret, &excluded);
	struct nps_counts total;
	int r = reports_nps(conn, &f, GROUP_TOUCHPOINT, sum_listed, &w, &total, &excluded);
	if (r == 0)
		*ret = w.sum;
	return r;
}

static json_t *figure_or_null(const struct nps_counts *c, double value)
{
	return nps_responses(c) ? json_real(report_figure(value)) : json_null();
}

/* The message a person reads (ntfy, Slack): the figures in one line or three. */
struct text {
	char buf[4096];
	size_t len;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len = t->len + (size_t)n < sizeof t->buf ? t->len + (size_t)n : sizeof t->buf - 1;
}

struct lowest_walk {
	json_t *list;
	struct text *text;
};

static int add_lowest(const struct lowest_answer *a, void *arg)
{
	struct lowest_walk *w = arg;
	char at[21];
	/* customer_id lets an erasure find the digests that quote the customer. */
	json_t *item =
	        json_pack("{s:I, s:s, s:i, s:s, s:s?, s:s}", "survey_id", (json_int_t)a->id, "customer_id",
	                  a->customer_id, "score", a->score, "touchpoint", a->touchpoint, "comment",
	                  a->comment, "answered_at", time_format_rfc3339(a->answered_at, at));
	if (json_array_append_new(w->list, item) < 0)
		return -ENOMEM;
	text_add(w->text, "\n%d on %s", a->score, a->touchpoint);
	if (a->comment && *a->comment) {
		/* Up to COMMENT_SHOWN_CHARS code points (of up to 4 bytes: the comment is valid
		 * UTF-8), cut at a character, and an ellipsis when there is more. */
		const char *comment = a->comment;
		size_t n = 0;
		for (int chars = 0; comment[n] && chars < COMMENT_SHOWN_CHARS; chars++)
			while (((unsigned char)comment[++n] & 0xC0) == 0x80)
				;
		char shown[COMMENT_SHOWN_CHARS * 4 + sizeof "…"];
		memcpy(shown, comment, n);
		snprintf(shown + n, sizeof shown - n, "%s", comment[n] ? "…" : "");
		for (char *c = shown; *c; c++)
			if (*c == '\n' || *c == '\r' || *c == '\t')
				*c = ' '; /* one answer, one line */
		text_add(w->text, ": \"%s\"", shown);
	}
	return 0;
}

static const char *plural(int64_t n)
{
	return n == 1 ? "" : "s";
}

static void local_text(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, 32, "?");
}

#define PERIOD_NAME_SIZE 128

/* What a digest's title and first line call [from, to): "the last day" or "the last hour"
 * for the newest period told; an older one, told after a time npsd was down, by itself, in
 * local time: a day by the date its middle falls on ("Sunday 22 Nov": at the default 08:00,
 * the day before the digest), an hour by its start ("Thursday 26 Nov 07:00"). A week of
 * pushes all titled "NPS, the last day" did not say which day each was. */
static void period_name(bool hourly, bool newest, int64_t from, int64_t to, char buf[PERIOD_NAME_SIZE])
{
	time_t t = (time_t)(hourly ? from : from + (to - from) / 2);
	struct tm tm;
	char day[16], month[8], minute[8] = "";
	if (newest || !localtime_r(&t, &tm) || !strftime(day, sizeof day, "%A", &tm) ||
	    !strftime(month, sizeof month, "%b", &tm) ||
	    (hourly && !strftime(minute, sizeof minute, " %H:%M", &tm)))
		snprintf(buf, PERIOD_NAME_SIZE, "%s", hourly ? "the last hour" : "the last day");
	else
		snprintf(buf, PERIOD_NAME_SIZE, "%s %d %s%s", day, tm.tm_mday, month, minute);
}

/* The first digest after a change of kind or time, by its length and its local end ("the
 * last 26 hours", "26 hours to Tuesday 24 Nov 10:00"): titled "the last day" as one period
 * is, it said 24 hours on a phone where the figures were of 26. */
static void uneven_name(bool newest, int64_t from, int64_t to, char buf[PERIOD_NAME_SIZE])
{
	int64_t minutes = (to - from) / 60;
	char length[48];
	if (minutes % 60)
		snprintf(length, sizeof length, "%lld h %02lld min", (long long)(minutes / 60),
		         (long long)(minutes % 60));
	else
		snprintf(length, sizeof length, "%lld hour%s", (long long)(minutes / 60),
		         plural(minutes / 60));
	time_t t = (time_t)to;
	struct tm tm;
	char day[16], month[8];
	if (newest || !localtime_r(&t, &tm) || !strftime(day, sizeof day, "%A", &tm) ||
	    !strftime(month, sizeof month, "%b", &tm))
		snprintf(buf, PERIOD_NAME_SIZE, "the last %s", length);
	else
		snprintf(buf, PERIOD_NAME_SIZE, "%s to %s %d %s %02d:%02d", length, day, tm.tm_mday, month,
		         tm.tm_hour, tm.tm_min);
}

/* A period to tell, by the schedule of kind at at (NULL: the default). uneven: the first
 * after a change of kind or time, longer or shorter than one period. */
struct period {
	int64_t from, to;
	const char *kind, *at;
	bool uneven;
};

/* The digest of period per for one webhook, the newest period told or an older one, saying
 * that the skipped periods (of skipped_kind: "hour", "day" or "period") before it were not
 * told: a new object, or NULL with *ret_error. */
static json_t *build_digest(struct db_conn *conn, const struct npsd_config *cfg, const struct digest_hook *h,
                            const struct period *per, bool newest, int64_t skipped, const char *skipped_kind,
                            int64_t now, int *ret_error)
{
	int64_t from = per->from, to = per->to, prev_from = from - (to - from), prev_to = from;
	struct nps_counts c, p;
	struct callback_stats q;
	/* The period that ends where this one begins; before an uneven first digest after a
	 * change, as long a time just before it: its responses (and the hours of the day in
	 * its NPS) then compare with the previous ones, where 26 hours against 24 would not. */
	int r = per->uneven ? 0 : digest_period(per->kind, per->at, from, &prev_from, &prev_to);
	if (r == 0)
		r = period_counts(conn, h->touchpoints, from, to, &c);
	if (r == 0)
		r = period_counts(conn, h->touchpoints, prev_from, prev_to, &p);
	if (r == 0)
		r = store_callback_stats(conn, now, &q);
	if (r < 0) {
		*ret_error = r;
		return NULL;
	}
	struct text text = { 0 };
	char a[32], b[32], f[21], t[21];
	local_text(from, a);
	local_text(to, b);
	bool hourly = strcmp(per->kind, "hourly") == 0;
	char name[PERIOD_NAME_SIZE], title[PERIOD_NAME_SIZE + 8];
	if (per->uneven)
		uneven_name(newest, from, to, name);
	else
		period_name(hourly, newest, from, to, name);
	snprintf(title, sizeof title, "NPS, %s", name);
	name[0] = (char)toupper((unsigned char)name[0]);
	text_add(&text, "%s, %s to %s: ", name, a, b);
	bool both = nps_responses(&c) && nps_responses(&p);
	double change = nps_value(&c) - nps_value(&p);
	if (nps_responses(&c)) {
		text_add(&text, "NPS %.1f", report_figure(nps_value(&c)));
		if (both)
			text_add(&text, " (%+.1f against the period before)", report_figure(change));
		text_add(&text, " from %lld answer%s: %lld promoter%s, %lld passive%s, %lld detractor%s.",
		         (long long)nps_responses(&c), plural(nps_responses(&c)), (long long)c.promoters,
		         plural(c.promoters), (long long)c.passives, plural(c.passives),
		         (long long)c.detractors, plural(c.detractors));
	} else {
		text_add(&text, "no answers.");
	}
	json_t *lowest = json_array();
	struct lowest_walk lw = { lowest, &text };
	char *tps_json = h->touchpoints ? json_dumps(h->touchpoints, JSON_COMPACT) : NULL;
	if (nps_responses(&c)) {
		text_add(&text, "\nLowest:");
		r = store_lowest_answers(conn, from, to, tps_json, LOWEST_SHOWN, add_lowest, &lw);
	}
	free(tps_json);
	if (r < 0) {
		json_decref(lowest);
		*ret_error = r;
		return NULL;
	}
	text_add(&text,
	         "\nOpen queue: %lld callback%s, %lld due (the oldest waiting %lld min), %lld being called.",
	         (long long)q.queued, plural(q.queued), (long long)q.due, (long long)(q.oldest_due_age / 60),
	         (long long)q.claimed);
	if (skipped > 0)
		text_add(&text, "\nNot told: the %lld %s%s before this one (npsd was down).",
		         (long long)skipped, skipped_kind, plural(skipped));
	json_t *previous = json_pack("{s:o, s:I}", "nps", figure_or_null(&p, nps_value(&p)), "responses",
	                             (json_int_t)nps_responses(&p));
	json_t *queue = json_pack("{s:I, s:I, s:I, s:I}", "queued", (json_int_t)q.queued, "due",
	                          (json_int_t)q.due, "claimed", (json_int_t)q.claimed,
	                          "oldest_due_age_seconds", (json_int_t)q.oldest_due_age);
	json_t *d = json_pack(
	        "{s:s, s:s, s:s, s:s, s:O?, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:s, s:s}",
	        "period", per->kind, "from", time_format_rfc3339(from, f), "to", time_format_rfc3339(to, t),
	        "timezone", cfg->cb_timezone, "touchpoints", h->touchpoints, "nps",
	        figure_or_null(&c, nps_value(&c)), "responses", (json_int_t)nps_responses(&c), "promoters",
	        (json_int_t)c.promoters, "passives", (json_int_t)c.passives, "detractors",
	        (json_int_t)c.detractors, "margin_of_error", figure_or_null(&c, nps_margin_of_error(&c)),
	        "previous", previous, "change", both ? json_real(report_figure(change)) : json_null(),
	        "lowest", lowest, "queue", queue, "skipped_periods", (json_int_t)skipped, "title", title,
	        "message", text.buf);
	if (!d)
		*ret_error = -ENOMEM;
	return d;
}

struct digest_write {
	int64_t webhook_id, was, first_until, until, now;
	json_t *data; /* stolen by the write; NULL: only mark the period (a new digest) */
	bool stale;   /* the webhook changed since it was read: nothing was written */
};

static int apply_digest(struct db_conn *conn, void *arg)
{
	struct digest_write *w = arg;
	/* The mark first: a webhook deleted or changed since it was read gets nothing. */
	int r = store_webhook_digest_sent(conn, w->webhook_id, w->was, w->first_until, w->until);
	if (r == -ESTALE) {
		w->stale = true;
		return 0;
	}
	if (r == 0 && w->data) {
		json_t *data = w->data;
		w->data = NULL;
		r = outbox_emit_to(conn, "digest", data, w->webhook_id, w->now, NULL);
	}
	return r;
}

static int write_digest(struct npsd_db *db, struct digest_write *w)
{
	int r = db_write_sync(db, apply_digest, w);
	json_decref(w->data); /* when the write never ran */
	return r;
}

/* The periods to tell, newest first while they are gathered, and the older ones left out. */
struct periods {
	struct period v[DIGESTS_CATCH_UP_MAX];
	int n;
	int64_t skipped;
	const char *skipped_kind; /* "hour", "day", or "period" for a mix or an uneven one */
};

static void periods_add(struct periods *ps, const struct period *p)
{
	if (ps->n < DIGESTS_CATCH_UP_MAX) {
		ps->v[ps->n++] = *p;
		return;
	}
	const char *kind = p->uneven ? "period" : strcmp(p->kind, "hourly") == 0 ? "hour" : "day";
	if (ps->skipped > 0 && strcmp(ps->skipped_kind, kind) != 0)
		kind = "period";
	ps->skipped_kind = kind;
	ps->skipped++;
}

/* Adds, newest first, each period of kind at at that ends after floor and at or before
 * until. Back from the newest: each step is one period, so a year down costs a year of
 * periods once, and then the mark is past them. */
static int add_periods(struct periods *ps, const char *kind, const char *at, int64_t until, int64_t floor)
{
	struct period p = { .kind = kind, .at = at };
	if (digest_period(kind, at, until, &p.from, &p.to) < 0)
		return -1;
	while (p.to > floor) {
		periods_add(ps, &p);
		struct period before = p;
		if (digest_period(kind, at, p.from, &before.from, &before.to) < 0 || before.to >= p.to)
			break;
		p = before;
	}
	return 0;
}

/*
 * The periods of h to tell at now, oldest first, in v: each one that ended after the mark.
 * Those are the periods npsd was down for: a webhook switched on again has its mark moved to
 * the period under way then (store_webhooks.c), so that another change (a description, a
 * URL) tells the same periods as none. After a change of kind or time, the periods of the
 * old schedule that had ended then, the uneven first digest by the new one once it has
 * ended, and the new one's periods after it. Of these only the DIGESTS_CATCH_UP_MAX newest:
 * *ret_skipped says how many older ones are left untold, of *ret_skipped_kind. Returns how
 * many are in v, 0 when none, -1 for a digest whose periods cannot be worked out.
 */
static int periods_to_tell(const struct digest_hook *h, int64_t now, struct period v[DIGESTS_CATCH_UP_MAX],
                           int64_t *ret_skipped, const char **ret_skipped_kind)
{
	const struct digest_marks *m = &h->m;
	const char *at = h->has_at ? h->at : NULL;
	struct periods ps = { .n = 0, .skipped_kind = "period" };
	bool first = m->first_until != 0;
	if (add_periods(&ps, h->kind, at, now, first ? m->first_until : m->sent_until) < 0)
		return -1;
	if (first && now >= m->first_until && m->first_from < m->first_until) {
		struct period p = { m->first_from, m->first_until, h->kind, at, true };
		/* Changed and changed back (or to a time naming the same periods) before it was
		 * told: one period after all, titled and compared as one. */
		int64_t start, end;
		if (digest_period(h->kind, at, m->first_until, &start, &end) == 0 && start == p.from &&
		    end == p.to)
			p.uneven = false;
		periods_add(&ps, &p);
	}
	if (first && m->was[0] && m->sent_until < m->first_from &&
	    add_periods(&ps, m->was, m->was_at, m->first_from, m->sent_until) < 0)
		return -1;
	for (int i = 0; i < ps.n; i++)
		v[i] = ps.v[ps.n - 1 - i];
	*ret_skipped = ps.skipped;
	*ret_skipped_kind = ps.skipped_kind;
	return ps.n;
}

int digests_look(struct npsd_db *db, const struct npsd_config *cfg, int64_t now, int64_t *ret_skipped)
{
	struct digest_hooks hooks = { 0 };
	struct db_conn *conn = db_reader(db);
	int listed = store_webhook_each(conn, collect_hook, &hooks), failed = listed;
	int written = 0;
	int64_t skipped_told = 0;
	/* One webhook's digest that cannot be made or written holds up none of the others. */
	for (size_t i = 0; listed == 0 && i < hooks.n; i++) {
		const struct digest_hook *h = &hooks.v[i];
		struct period v[DIGESTS_CATCH_UP_MAX];
		int64_t skipped = 0;
		const char *skipped_kind = "period";
		int n;
		if (!h->m.sent_until) {
			/* A digest set by an npsd that did not mark it when it was set: it starts
			 * with the next period, only the mark of the last one that ended. */
			if (digest_period(h->kind, h->has_at ? h->at : NULL, now, &v[0].from, &v[0].to) < 0)
				continue;
			n = 1;
		} else if ((n = periods_to_tell(h, now, v, &skipped, &skipped_kind)) <= 0) {
			continue;
		}
		/* Oldest first, each with its own mark in the transaction of its message: a crash
		 * half way leaves the rest for the next look, none told twice. */
		int64_t was = h->m.sent_until, first_until = h->m.first_until;
		for (int k = 0; k < n; k++) {
			struct digest_write w = { .webhook_id = h->id,
				                  .was = was,
				                  .first_until = first_until,
				                  .until = v[k].to,
				                  .now = now };
			int r = 0;
			if (h->m.sent_until)
				w.data = build_digest(conn, cfg, h, &v[k], k == n - 1, k == 0 ? skipped : 0,
				                      skipped_kind, now, &r);
			if (r == 0) {
				db_reader_put(db, conn);
				r = write_digest(db, &w);
				conn = db_reader(db);
			}
			if (r < 0 && failed == 0)
				failed = r;
			if (r < 0 || w.stale)
				break;
			if (h->m.sent_until) {
				written++;
				skipped_told += k == 0 ? skipped : 0;
			}
			was = v[k].to;
			if (first_until && was >= first_until)
				first_until = 0; /* the mark cleared it */
		}
	}
	db_reader_put(db, conn);
	digest_hooks_free(&hooks);
	*ret_skipped = skipped_told;
	return failed < 0 ? failed : written;
}
