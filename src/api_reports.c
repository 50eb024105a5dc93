#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "npsd/api.h"
#include "npsd/app.h"
#include "npsd/reports.h"
#include "npsd/store.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500

/* The bound the report applied, null for none: 1970-01-01T00:00:00Z is a bound like any
 * other (api_time() would show 0 as "not yet"). */
static json_t *bound_json(int64_t t)
{
	char buf[21];
	return t == REPORT_TIME_OPEN ? json_null() : json_string(time_format_rfc3339(t, buf));
}

/* The figures of one set of answers, into obj (a group or the whole report). */
static void put_figures(json_t *obj, const struct nps_counts *c)
{
	int64_t n = nps_responses(c);
	json_object_set_new(obj, "nps", n ? api_figure(nps_value(c)) : json_null());
	json_object_set_new(obj, "responses", json_integer(n));
	json_object_set_new(obj, "promoters", json_integer(c->promoters));
	json_object_set_new(obj, "passives", json_integer(c->passives));
	json_object_set_new(obj, "detractors", json_integer(c->detractors));
	json_object_set_new(obj, "margin_of_error", n ? api_figure(nps_margin_of_error(c)) : json_null());
}

/* A /v1/nps in flight: what was asked, and what the reports lane found. */
struct nps_request {
	struct api_read read; /* first: the reports lane hands it back */
	struct nps_filter f;  /* its strings borrow from the query */
	enum report_group group;
	json_t *groups; /* NULL without group_by */
	struct nps_counts total;
	int64_t excluded;
	int result;
};

static void nps_request_free(void *state)
{
	struct nps_request *nr = state;
	json_decref(nr->groups);
	free(nr);
}

static int add_group(const struct nps_group *g, void *arg)
{
	struct nps_request *nr = arg;
	json_t *obj = json_object();
	json_t *key = g->key ? json_string(g->key) : json_null();
	json_object_set(obj, "group", key);
	/* Under its own name too, so a client reading touchpoint groups reads "touchpoint". */
	json_object_set_new(obj, report_group_name(nr->group), key);
	if (report_group_is_period(nr->group))
		json_object_set_new(obj, "start", api_time(g->start));
	put_figures(obj, &g->counts);
	return json_array_append_new(nr->groups, obj) < 0 ? -ENOMEM : 0;
}

/* On the long reports lane: a range costs what it holds (a month by day 80-120 ms, an
 * unbounded one every answer, a second or so at two million), which an HTTP thread's other
 * connections must not wait for, nor the quick lane's scrapes. */
static void nps_run(struct api_read *r, struct db_conn *conn)
{
	struct nps_request *nr = (struct nps_request *)r;
	nr->result = reports_nps(conn, &nr->f, nr->group, add_group, nr, &nr->total, &nr->excluded);
}

static void nps_resumed(struct http_request *req)
{
	struct nps_request *nr = http_state(req);
	if (nr->result < 0) {
		http_reply_storage_error(req, nr->result);
		return;
	}
	json_t *body = json_pack("{s:o, s:o, s:s?, s:s?, s:s?, s:s}", "from", bound_json(nr->f.from), "to",
	                         bound_json(nr->f.to), "touchpoint", nr->f.touchpoint, "channel",
	                         nr->f.channel, "group_by", report_group_name(nr->group), "timezone",
	                         app_config(http_app(req))->cb_timezone);
	put_figures(body, &nr->total);
	json_object_set_new(body, "excluded", json_integer(nr->excluded));
	if (nr->groups) {
		json_object_set(body, "groups", nr->groups);
	}
	http_reply_json(req, 200, body);
}

void api_reports_nps(struct http_request *req)
{
	struct nps_filter f = { .from = REPORT_TIME_OPEN, .to = REPORT_TIME_OPEN };
	if (api_query_range(req, REPORT_TIME_OPEN, &f.from, &f.to) < 0 ||
	    http_query_token(req, "touchpoint", &f.touchpoint) < 0 ||
	    http_query_token(req, "channel", &f.channel) < 0)
		return;
	int group = GROUP_NONE;
	const char *group_by = http_query(req, "group_by");
	if (group_by && (group = report_group_parse(group_by)) < 0) {
		http_reply_error(req, 400, "invalid_field", "group_by",
		                 "group_by must be touchpoint, channel, day, week or month");
		return;
	}
	struct nps_request *nr = calloc(1, sizeof *nr);
	if (!nr || (group != GROUP_NONE && !(nr->groups = json_array()))) {
		free(nr);
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	nr->f = f;
	nr->group = group;
	http_set_state(req, nr, nps_request_free);
	api_offload(req, OFFLOAD_LONG, &nr->read, nps_run, nps_resumed);
}

/* A /v1/improvements in flight: what was asked, and what the reports lane found. */
struct improvements_state {
	struct api_read read;        /* first: the reports lane hands it back */
	struct improvement_filter f; /* its strings borrow from the query */
	size_t limit;
	json_t *items;
	json_t *by_area, *by_touchpoint, *pairs;
	int64_t total;
	int result;
};

static void improvements_state_free(void *state)
{
	struct improvements_state *st = state;
	json_decref(st->items);
	json_decref(st->by_area);
	json_decref(st->by_touchpoint);
	json_decref(st->pairs);
	free(st);
}

static int add_improvement(const struct improvement_row *row, void *arg)
{
	struct improvements_state *st = arg;
	json_t *item = json_pack("{s:I, s:I, s:s, s:s, s:s, s:o}", "id", (json_int_t)row->id, "callback_id",
	                         (json_int_t)row->callback_id, "touchpoint", row->touchpoint, "area",
	                         row->area, "text", row->text, "created_at", api_time(row->created_at));
	/* A page missing a row would read as whole: fail it instead. */
	return json_array_append_new(st->items, item) < 0 ? -ENOMEM : 0;
}

static void count_into(json_t *obj, const char *key, int64_t n)
{
	json_int_t had = json_integer_value(json_object_get(obj, key));
	json_object_set_new(obj, key, json_integer(had + (json_int_t)n));
}

static int add_count(const char *area, const char *touchpoint, int64_t count, void *arg)
{
	struct improvements_state *st = arg;
	count_into(st->by_area, area, count);
	count_into(st->by_touchpoint, touchpoint, count);
	st->total += count;
	json_t *pair = json_pack("{s:s, s:s, s:I}", "area", area, "touchpoint", touchpoint, "count",
	                         (json_int_t)count);
	return json_array_append_new(st->pairs, pair) < 0 ? -ENOMEM : 0;
}

/* On the long reports lane: the counts cover every improvement the filters select (the whole
 * table without from and to), which an HTTP thread's other connections must not wait for;
 * a rare area walks the table for its page too. */
static void improvements_run(struct api_read *r, struct db_conn *conn)
{
	struct improvements_state *st = (struct improvements_state *)r;
	st->result = store_improvement_list(conn, &st->f, add_improvement, st);
	if (st->result == 0)
		st->result = store_improvement_counts(conn, &st->f, add_count, st);
}

static void improvements_resumed(struct http_request *req)
{
	struct improvements_state *st = http_state(req);
	if (st->result < 0) {
		http_reply_storage_error(req, st->result);
		return;
	}
	char next[API_CURSOR_MAX] = "";
	api_page_cut(st->items, st->limit, next);
	json_t *counts =
	        json_pack("{s:I, s:O, s:O, s:O}", "total", (json_int_t)st->total, "by_area", st->by_area,
	                  "by_touchpoint", st->by_touchpoint, "by_area_and_touchpoint", st->pairs);
	http_reply_json(req, 200,
	                json_pack("{s:O, s:o, s:o}", "improvements", st->items, "counts", counts,
	                          "next_cursor", next[0] ? json_string(next) : json_null()));
}

void api_reports_improvements(struct http_request *req)
{
	struct improvement_filter f = { .from = REPORT_TIME_OPEN, .to = REPORT_TIME_OPEN };
	int64_t limit = LIST_DEFAULT, cursor = 0;
	if (api_query_range(req, REPORT_TIME_OPEN, &f.from, &f.to) < 0 ||
	    http_query_token(req, "touchpoint", &f.touchpoint) < 0 ||
	    http_query_int(req, "limit", 1, LIST_MAX, &limit) < 0 ||
	    http_query_int(req, "cursor", 1, INT64_MAX, &cursor) < 0)
		return;
	f.area = http_query(req, "area");
	if (f.area && !valid_area(f.area)) {
		http_reply_error(req, 400, "invalid_field", "area",
		                 "area must be process, communication, service, product or other");
		return;
	}
	f.before_id = cursor;
	f.limit = (int)limit + 1; /* one more tells whether a next page exists */
	struct improvements_state *st = calloc(1, sizeof *st);
	if (st) {
		st->f = f;
		st->limit = (size_t)limit;
		st->items = json_array();
		/* Every area shows, a zero too: the to-do list's empty columns are news as well. */
		st->by_area = json_pack("{s:i, s:i, s:i, s:i, s:i}", "process", 0, "communication", 0,
		                        "service", 0, "product", 0, "other", 0);
		st->by_touchpoint = json_object();
		st->pairs = json_array();
	}
	if (!st || !st->items || !st->by_area || !st->by_touchpoint || !st->pairs) {
		if (st)
			improvements_state_free(st);
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_set_state(req, st, improvements_state_free);
	api_offload(req, OFFLOAD_LONG, &st->read, improvements_run, improvements_resumed);
}
