#ifndef NPSD_REPORTS_H
#define NPSD_REPORTS_H
#include <stdbool.h>
#include <stdint.h>

#include "npsd/db.h"

/*
 * The managers' reports (SPEC "Reports"): the Net Promoter Score with its margin of error,
 * over answers grouped by touchpoint, channel or a local calendar period. The maths and the
 * calendar are pure functions; reports_nps() reads the figures through the store.
 */

struct nps_counts {
	int64_t promoters;  /* scores 9-10 */
	int64_t passives;   /* 7-8 */
	int64_t detractors; /* 0-6 */
};

int64_t nps_responses(const struct nps_counts *c);
/* 100 x (promoters - detractors) / responses, from -100 to 100; 0 when there is none
 * (callers show "no figure" for zero responses rather than a score). */
double nps_value(const struct nps_counts *c);
/* The half-width of the 95% confidence interval of the NPS, in points: each answer counts
 * +1 (promoter), 0 or -1 (detractor), so the NPS is 100 x their mean, whose variance is
 * (p + d - (p - d)^2) / n for shares p and d. 0 when there is no response. */
double nps_margin_of_error(const struct nps_counts *c);

/* x rounded to one decimal: figures as people read them (23.5, ±4.5). */
double report_figure(double x);

enum report_group {
	GROUP_NONE,
	GROUP_TOUCHPOINT,
	GROUP_CHANNEL,
	GROUP_DAY,
	GROUP_WEEK,
	GROUP_MONTH,
};
/* "touchpoint", "channel", "day", "week" or "month"; -1 for anything else. */
int report_group_parse(const char *name);
const char *report_group_name(enum report_group g); /* NULL for GROUP_NONE */
static inline bool report_group_is_period(enum report_group g)
{
	return g >= GROUP_DAY;
}

#define PERIOD_KEY_MAX 16
/* The local calendar period (process time zone: callbacks.timezone) of kind g (a period
 * kind) that holds unix time t: its key ("2026-11-23", ISO week "2026-W48", "2026-11")
 * and the unix time it starts (local midnight of its first day). 0, or -1 when t has no
 * local time (out of range). */
int report_period_of(enum report_group g, int64_t t, char key[static PERIOD_KEY_MAX], int64_t *ret_start);

#define REPORT_TIME_OPEN INT64_MIN /* no bound */
struct nps_filter {
	int64_t from, to; /* answered_at: from inclusive, to exclusive; REPORT_TIME_OPEN = open */
	const char *touchpoint, *channel; /* NULL = any */
};
struct nps_group {
	const char *key; /* touchpoint, channel (NULL for answers without one) or period key */
	int64_t start;   /* periods: when it starts; else 0 */
	struct nps_counts counts;
};
/* The NPS figures of the answers that pass f, excluded ones left out (and counted in
 * *ret_excluded), in total (*ret_total) and, unless g is GROUP_NONE, per group: fn sees
 * each group with at least one answer, in key order (periods chronologically), and a
 * nonzero return stops the walk and is returned. Strings fn sees live for its call. */
int reports_nps(struct db_conn *conn, const struct nps_filter *f, enum report_group g,
                int (*fn)(const struct nps_group *group, void *arg), void *arg, struct nps_counts *ret_total,
                int64_t *ret_excluded);

#endif
