#include <errno.h>
#include <stdint.h>

#include "npsd/store.h"
#include "store_internal.h"

/* One statement per grouping, each a constant: the grouping column cannot be a parameter.
 * The answered_at range is always bound (open ends as the extremes of 64 bits) so that it
 * can always walk surveys_answered; excluded answers are counted apart, not dropped, so
 * the report can say how many it left out. */
#define NPS_SQL(key, group)                                                                              \
	"SELECT " key ", count(*) FILTER (WHERE NOT excluded AND score >= 9), "                          \
	"count(*) FILTER (WHERE NOT excluded AND score BETWEEN 7 AND 8), "                               \
	"count(*) FILTER (WHERE NOT excluded AND score <= 6), count(*) FILTER (WHERE excluded) "         \
	"FROM surveys WHERE answered_at >= ?1 AND answered_at < ?2 AND (?3 IS NULL OR touchpoint = ?3) " \
	"AND (?4 IS NULL OR channel = ?4) " group

/* The quarter hour's first second, rounding down for times before 1970 as well. */
#define QUARTER_HOUR "answered_at - ((answered_at % 900) + 900) % 900"

struct nps_visit {
	enum nps_rows_key key;
	int (*fn)(const struct nps_row *row, void *arg);
	void *arg;
};

static int visit_nps(sqlite3_stmt *st, void *arg)
{
	struct nps_visit *v = arg;
	struct nps_row row = {
		.counts = { .promoters = sqlite3_column_int64(st, 1),
		            .passives = sqlite3_column_int64(st, 2),
		            .detractors = sqlite3_column_int64(st, 3) },
		.excluded = sqlite3_column_int64(st, 4),
	};
	if (v->key == NPS_ROWS_QUARTER_HOUR)
		row.bucket = sqlite3_column_int64(st, 0);
	else
		row.key = db_column_text(st, 0);
	return v->fn(&row, v->arg);
}

static int64_t bound(int64_t t, int64_t open_as)
{
	return t == REPORT_TIME_OPEN ? open_as : t;
}

int store_nps_rows(struct db_conn *conn, const struct nps_filter *f, enum nps_rows_key key,
                   int (*fn)(const struct nps_row *row, void *arg), void *arg)
{
	static const char *const sql[] = {
		[NPS_ROWS_TOTAL] = NPS_SQL("NULL", ""),
		[NPS_ROWS_TOUCHPOINT] = NPS_SQL("touchpoint", "GROUP BY 1 ORDER BY 1"),
		[NPS_ROWS_CHANNEL] = NPS_SQL("channel", "GROUP BY 1 ORDER BY 1"),
		[NPS_ROWS_QUARTER_HOUR] = NPS_SQL(QUARTER_HOUR, "GROUP BY 1 ORDER BY 1"),
	};
	sqlite3_stmt *st = db_prepare(conn, sql[key]);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, bound(f->from, INT64_MIN));
	sqlite3_bind_int64(st, 2, bound(f->to, INT64_MAX));
	db_bind_text(st, 3, f->touchpoint);
	db_bind_text(st, 4, f->channel);
	struct nps_visit v = { key, fn, arg };
	return store_rows(st, visit_nps, &v);
}

#define IMPROVEMENT_FILTERS                                                                      \
	"created_at >= ?1 AND created_at < ?2 AND (?3 IS NULL OR area = ?3) AND (?4 IS NULL OR " \
	"touchpoint = ?4) "

static void bind_improvement_filter(sqlite3_stmt *st, const struct improvement_filter *f)
{
	sqlite3_bind_int64(st, 1, bound(f->from, INT64_MIN));
	sqlite3_bind_int64(st, 2, bound(f->to, INT64_MAX));
	db_bind_text(st, 3, f->area);
	db_bind_text(st, 4, f->touchpoint);
}

struct improvement_visit {
	int (*fn)(const struct improvement_row *row, void *arg);
	void *arg;
};

static int visit_improvement(sqlite3_stmt *st, void *arg)
{
	struct improvement_visit *v = arg;
	struct improvement_row row = {
		.id = sqlite3_column_int64(st, 0),
		.callback_id = sqlite3_column_int64(st, 1),
		.touchpoint = db_column_text(st, 2),
		.area = db_column_text(st, 3),
		.text = db_column_text(st, 4),
		.created_at = sqlite3_column_int64(st, 5),
	};
	return v->fn(&row, v->arg);
}

int store_improvement_list(struct db_conn *conn, const struct improvement_filter *f,
                           int (*fn)(const struct improvement_row *row, void *arg), void *arg)
{
	static const char sql[] =
	        "SELECT id, callback_id, touchpoint, area, text, created_at FROM improvements "
	        "WHERE id < ?5 AND " IMPROVEMENT_FILTERS "ORDER BY id DESC LIMIT ?6";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	bind_improvement_filter(st, f);
	sqlite3_bind_int64(st, 5, f->before_id ? f->before_id : INT64_MAX);
	sqlite3_bind_int(st, 6, f->limit);
	struct improvement_visit v = { fn, arg };
	return store_rows(st, visit_improvement, &v);
}

struct count_visit {
	int (*fn)(const char *area, const char *touchpoint, int64_t count, void *arg);
	void *arg;
};

static int visit_count(sqlite3_stmt *st, void *arg)
{
	struct count_visit *v = arg;
	return v->fn(db_column_text(st, 0), db_column_text(st, 1), sqlite3_column_int64(st, 2), v->arg);
}

int store_improvement_counts(struct db_conn *conn, const struct improvement_filter *f,
                             int (*fn)(const char *area, const char *touchpoint, int64_t count, void *arg),
                             void *arg)
{
	static const char sql[] =
	        "SELECT area, touchpoint, count(*) FROM improvements WHERE " IMPROVEMENT_FILTERS
	        "GROUP BY area, touchpoint ORDER BY area, touchpoint";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	bind_improvement_filter(st, f);
	struct count_visit v = { fn, arg };
	return store_rows(st, visit_count, &v);
}
