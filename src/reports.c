#include "npsd/reports.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "npsd/store.h"

int64_t nps_responses(const struct nps_counts *c)
{
	return c->promoters + c->passives + c->detractors;
}

double nps_value(const struct nps_counts *c)
{
	int64_t n = nps_responses(c);
	return n ? 100.0 * (double)(c->promoters - c->detractors) / (double)n : 0.0;
}

double nps_margin_of_error(const struct nps_counts *c)
{
	int64_t n = nps_responses(c);
	if (!n)
		return 0.0;
	double p = (double)c->promoters / (double)n, d = (double)c->detractors / (double)n;
	double variance = p + d - (p - d) * (p - d);
	/* Rounding can leave -1e-17 where the answers all agree. */
	return variance > 0 ? 1.96 * 100.0 * sqrt(variance / (double)n) : 0.0;
}

double report_figure(double x)
{
	/* + 0.0: a figure just below zero rounds to -0.0, which reads "-0.0". */
	return round(x * 10.0) / 10.0 + 0.0;
}

static const char *const group_names[] = {
	[GROUP_TOUCHPOINT] = "touchpoint",
	[GROUP_CHANNEL] = "channel",
	[GROUP_DAY] = "day",
	[GROUP_WEEK] = "week",
	[GROUP_MONTH] = "month",
};

int report_group_parse(const char *name)
{
	for (int g = GROUP_TOUCHPOINT; g <= GROUP_MONTH; g++)
		if (strcmp(name, group_names[g]) == 0)
			return g;
	return -1;
}

const char *report_group_name(enum report_group g)
{
	return g == GROUP_NONE ? NULL : group_names[g];
}

int report_period_of(enum report_group g, int64_t t, char key[static PERIOD_KEY_MAX], int64_t *ret_start)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm))
		return -1;
	size_t n = g == GROUP_DAY    ? strftime(key, PERIOD_KEY_MAX, "%Y-%m-%d", &tm)
	           : g == GROUP_WEEK ? strftime(key, PERIOD_KEY_MAX, "%G-W%V", &tm)
	                             : strftime(key, PERIOD_KEY_MAX, "%Y-%m", &tm);
	if (n == 0)
		return -1;
	if (g == GROUP_WEEK)
		tm.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday; mktime normalises */
	else if (g == GROUP_MONTH)
		tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1; /* midnight may lie on the other side of a DST change */
	time_t start = mktime(&tm);
	if (start == (time_t)-1)
		return -1;
	*ret_start = (int64_t)start;
	return 0;
}

static void counts_add(struct nps_counts *sum, const struct nps_counts *c)
{
	sum->promoters += c->promoters;
	sum->passives += c->passives;
	sum->detractors += c->detractors;
}

struct nps_walk {
	enum report_group group;
	int (*fn)(const struct nps_group *group, void *arg);
	void *arg;
	struct nps_counts total;
	int64_t excluded;
	/* The period being summed from its quarter hours: handed to fn when the next begins. */
	bool open;
	char key[PERIOD_KEY_MAX];
	struct nps_group period;
};

static int flush_period(struct nps_walk *w)
{
	if (!w->open)
		return 0;
	w->open = false;
	if (nps_responses(&w->period.counts) == 0)
		return 0;
	w->period.key = w->key;
	return w->fn(&w->period, w->arg);
}

static int visit_row(const struct nps_row *row, void *arg)
{
	struct nps_walk *w = arg;
	counts_add(&w->total, &row->counts);
	w->excluded += row->excluded;
	if (w->group == GROUP_NONE)
		return 0;
	if (!report_group_is_period(w->group)) {
		if (nps_responses(&row->counts) == 0)
			return 0;
		struct nps_group g = { .key = row->key, .counts = row->counts };
		return w->fn(&g, w->arg);
	}
	char key[PERIOD_KEY_MAX];
	int64_t start;
	if (report_period_of(w->group, row->bucket, key, &start) < 0)
		return -ERANGE;
	/* Quarter hours come in time order, and every zone's offset is a whole number of
	 * them, so each period's quarter hours are consecutive. */
	if (!w->open || strcmp(key, w->key) != 0) {
		int r = flush_period(w);
		if (r)
			return r;
		memcpy(w->key, key, sizeof key);
		w->period = (struct nps_group){ .start = start };
		w->open = true;
	}
	counts_add(&w->period.counts, &row->counts);
	return 0;
}

int reports_nps(struct db_conn *conn, const struct nps_filter *f, enum report_group g,
                int (*fn)(const struct nps_group *group, void *arg), void *arg, struct nps_counts *ret_total,
                int64_t *ret_excluded)
{
	static const enum nps_rows_key rows_key[] = {
		[GROUP_NONE] = NPS_ROWS_TOTAL,        [GROUP_TOUCHPOINT] = NPS_ROWS_TOUCHPOINT,
		[GROUP_CHANNEL] = NPS_ROWS_CHANNEL,   [GROUP_DAY] = NPS_ROWS_QUARTER_HOUR,
		[GROUP_WEEK] = NPS_ROWS_QUARTER_HOUR, [GROUP_MONTH] = NPS_ROWS_QUARTER_HOUR,
	};
	struct nps_walk w = { .group = g, .fn = fn, .arg = arg };
	int r = store_nps_rows(conn, f, rows_key[g], visit_row, &w);
	if (r == 0)
		r = flush_period(&w);
	if (r)
		return r;
	*ret_total = w.total;
	*ret_excluded = w.excluded;
	return 0;
}
