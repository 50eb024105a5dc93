/* /v1/callbacks: the agents' queue. Translates between HTTP and callbacks.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/api.h"
#include "npsd/app.h"
#include "npsd/callbacks.h"
#include "npsd/clock.h"
#include "npsd/outbox.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500
#define HISTORY_MAX 20

/* claimed_by_key_id, beside SPEC's claimed_by (a key's name, which two keys may share), lets
 * the console tell the caller's own calls from those of a namesake. */
static json_t *callback_json(const struct callback_row *row)
{
	char due[21], sla[21], created[21];
	return json_pack(
	        "{s:I, s:s, s:i, s:s, s:s, s:s, s:b, s:i, s:i, s:s?, s:o, s:o, s:s?, s:s?, s:s, s:o, s:o}",
	        "id", (json_int_t)row->id, "status", row->status, "priority", row->priority, "touchpoint",
	        row->touchpoint, "due_at", time_format_rfc3339(row->due_at, due), "sla_deadline",
	        time_format_rfc3339(row->sla_deadline, sla), "sla_breached", row->sla_breached, "attempts",
	        row->attempts, "max_attempts", row->max_attempts, "claimed_by", row->claimed_by,
	        "claimed_by_key_id", row->claimed_key_id ? json_integer(row->claimed_key_id) : json_null(),
	        "lease_expires_at", api_time(row->lease_expires_at), "outcome", row->outcome, "notes",
	        row->notes, "created_at", time_format_rfc3339(row->created_at, created), "first_attempt_at",
	        api_time(row->first_attempt_at), "closed_at", api_time(row->closed_at));
}

static json_t *survey_brief_json(const struct survey_row *row)
{
	char answered[21];
	/* The answer's attributes (a policy number, a product) help the agent place the call.
	 * Whether it is left out of the NPS, and why, lets the console's managers see it here
	 * and put it back. */
	json_t *attributes = row->attributes ? json_loads(row->attributes, 0, NULL) : NULL;
	return json_pack("{s:I, s:s, s:s, s:s?, s:i, s:s, s:s?, s:s, s:o, s:b, s:s?}", "id",
	                 (json_int_t)row->id, "response_id", row->response_id, "touchpoint", row->touchpoint,
	                 "channel", row->channel, "score", row->score, "category",
	                 survey_category(row->score), "comment", row->comment, "answered_at",
	                 time_format_rfc3339(row->answered_at, answered), "attributes",
	                 attributes ? attributes : json_object(), "excluded", row->excluded, "exclude_reason",
	                 row->exclude_reason);
}

static int add_survey(const struct survey_row *row, void *arg)
{
	json_array_append_new(arg, survey_brief_json(row));
	return 0;
}

static int add_history_survey(const struct survey_row *row, void *arg)
{
	json_t *item = survey_brief_json(row);
	json_object_set_new(item, "type", json_string("survey"));
	json_object_set(item, "at", json_object_get(item, "answered_at"));
	json_array_append_new(arg, item);
	return 0;
}

static int add_history_call(const struct call_event *ev, void *arg)
{
	char at[21];
	json_array_append_new(arg, json_pack("{s:s, s:s, s:I, s:s, s:s?, s:s?, s:s?}", "type", "call", "at",
	                                     time_format_rfc3339(ev->at, at), "callback_id",
	                                     (json_int_t)ev->callback_id, "event", ev->kind, "agent",
	                                     ev->agent, "outcome", ev->outcome, "notes", ev->notes));
	return 0;
}

struct history_item {
	json_t *item;
	const char *at;
	bool is_call;
	size_t index; /* in the order each query gave: newest first, then the higher id */
};

/* Newest first. Within one second a call comes before an answer (it was made about an
 * answer already given), and otherwise each query's own order holds: qsort alone is not
 * stable, and whole seconds tie often. */
static int by_time_desc(const void *a, const void *b)
{
	const struct history_item *x = a, *y = b;
	int c = strcmp(y->at, x->at); /* RFC 3339 UTC strings sort as times */
	if (c != 0)
		return c;
	if (x->is_call != y->is_call)
		return x->is_call ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Earlier answers and calls of this customer, newest first: what the agent needs to
 * recognise who they are calling. */
static json_t *history_json(struct db_conn *conn, const struct callback_row *row)
{
	json_t *items = json_array();
	store_customer_surveys(conn, row->customer_id, row->id, HISTORY_MAX, add_history_survey, items);
	store_customer_calls(conn, row->customer_id, HISTORY_MAX, add_history_call, items);
	size_t n = json_array_size(items);
	struct history_item *sorted = calloc(n ? n : 1, sizeof *sorted);
	if (!sorted)
		return items;
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(items, i);
		const char *at = json_string_value(json_object_get(item, "at"));
		const char *type = json_string_value(json_object_get(item, "type"));
		sorted[i] = (struct history_item){ item, at ? at : "", type && strcmp(type, "call") == 0, i };
	}
	qsort(sorted, n, sizeof *sorted, by_time_desc);
	json_t *history = json_array();
	for (size_t i = 0; i < n && i < HISTORY_MAX; i++)
		json_array_append(history, sorted[i].item);
	free(sorted);
	json_decref(items);
	return history;
}

/* The whole callback as an agent sees it. NULL when it cannot be read. */
static json_t *callback_full_json(struct db_conn *conn, int64_t id, int *ret_error)
{
	struct callback_row row;
	struct customer_row customer;
	int r = store_callback_get(conn, id, &row);
	if (r < 0) {
		*ret_error = r;
		return NULL;
	}
	r = store_customer_get(conn, row.customer_id, &customer);
	if (r < 0) {
		callback_row_clear(&row);
		*ret_error = r;
		return NULL;
	}
	json_t *body = callback_json(&row);
	json_object_set_new(body, "customer",
	                    json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:b}", "id", customer.id, "name",
	                              customer.name, "phone", customer.phone, "email", customer.email,
	                              "language", customer.language, "do_not_call", customer.do_not_call));
	json_t *surveys = json_array(), *improvements = json_array();
	store_callback_surveys(conn, row.customer_id, row.id, add_survey, surveys);
	store_callback_improvements(conn, row.id, outbox_improvement_add, improvements);
	json_object_set_new(body, "surveys", surveys);
	json_object_set_new(body, "improvements", improvements);
	json_object_set_new(body, "history", history_json(conn, &row));
	customer_row_clear(&customer);
	callback_row_clear(&row);
	return body;
}

static void reply_callback(struct http_request *req, unsigned status, int64_t id)
{
	struct npsd_app *app = http_app(req);
	struct db_conn *conn = db_reader(app->db);
	int r = 0;
	json_t *body = callback_full_json(conn, id, &r);
	db_reader_put(app->db, conn);
	if (!body) {
		if (r == -ENOENT)
			http_reply_error(req, 404, "not_found", NULL, "no callback with id %" PRId64, id);
		else
			http_reply_storage_error(req, r);
		return;
	}
	http_reply_json(req, status, body);
}

void api_callbacks_get(struct http_request *req)
{
	reply_callback(req, 200, http_path_id(req));
}

/* ---- writes ---- */

enum callback_action { ACT_CLAIM, ACT_HEARTBEAT, ACT_RELEASE, ACT_COMPLETE, ACT_CANCEL };

struct callback_op {
	struct api_write write; /* first: the writer hands it back */
	enum callback_action action;
	const struct npsd_config *cfg;
	struct principal who;
	int64_t id;
	const char *touchpoint;
	struct complete_input complete;
};

static int callback_apply(struct db_conn *conn, void *arg)
{
	struct callback_op *op = arg;
	int64_t now = clock_now();
	switch (op->action) {
	case ACT_CLAIM:
		return callbacks_claim(conn, op->cfg, &op->who, op->touchpoint, now, &op->id);
	case ACT_HEARTBEAT:
		return callbacks_heartbeat(conn, op->cfg, &op->who, op->id, now);
	case ACT_RELEASE:
		return callbacks_release(conn, &op->who, op->id, now);
	case ACT_COMPLETE:
		return callbacks_complete(conn, op->cfg, &op->who, op->id, &op->complete, now);
	case ACT_CANCEL:
		return callbacks_cancel(conn, &op->who, op->id, now);
	}
	return -EINVAL;
}

static void callback_resumed(struct http_request *req)
{
	struct callback_op *op = http_state(req);
	int r = op->write.write.result;
	switch (r) {
	case 0:
		reply_callback(req, 200, op->id);
		return;
	case -ENOENT:
		if (op->action == ACT_CLAIM)
			http_reply_empty(req, 204);
		else
			http_reply_error(req, 404, "not_found", NULL, "no callback with id %" PRId64, op->id);
		return;
	case CALLBACK_NOT_YOURS:
		http_reply_error(req, 409, "conflict", NULL,
		                 "callback %" PRId64 " is claimed by another agent", op->id);
		return;
	case CALLBACK_LEASE_EXPIRED:
		http_reply_error(req, 409, "conflict", NULL,
		                 "your lease on callback %" PRId64 " has expired: it is back in the queue",
		                 op->id);
		return;
	case CALLBACK_WRONG_STATE:
		http_reply_error(req, 409, "conflict", NULL,
		                 op->action == ACT_CANCEL ? "callback %" PRId64 " is already closed"
		                                          : "callback %" PRId64 " is not claimed by you",
		                 op->id);
		return;
	default:
		http_reply_storage_error(req, r);
	}
}

static void submit_op(struct http_request *req, enum callback_action action, struct callback_op *op)
{
	op->action = action;
	op->cfg = app_config(http_app(req));
	op->who = *http_principal(req);
	if (action != ACT_CLAIM)
		op->id = http_path_id(req);
	api_submit(req, &op->write, callback_apply, callback_resumed);
}

static struct callback_op *new_op(struct http_request *req)
{
	struct callback_op *op = calloc(1, sizeof *op);
	if (!op) {
		http_reply_storage_error(req, -ENOMEM);
		return NULL;
	}
	http_set_state(req, op, free);
	return op;
}

void api_callbacks_claim(struct http_request *req)
{
	struct field_error err;
	const char *touchpoint = NULL;
	if (validate_claim(http_json(req), &touchpoint, &err) < 0) {
		http_reply_field_error(req, &err);
		return;
	}
	struct callback_op *op = new_op(req);
	if (!op)
		return;
	op->touchpoint = touchpoint; /* borrows the request's JSON, which outlives the op */
	submit_op(req, ACT_CLAIM, op);
}

static void simple_action(struct http_request *req, enum callback_action action)
{
	struct callback_op *op = new_op(req);
	if (op)
		submit_op(req, action, op);
}

void api_callbacks_heartbeat(struct http_request *req)
{
	simple_action(req, ACT_HEARTBEAT);
}

void api_callbacks_release(struct http_request *req)
{
	simple_action(req, ACT_RELEASE);
}

void api_callbacks_cancel(struct http_request *req)
{
	simple_action(req, ACT_CANCEL);
}

void api_callbacks_complete(struct http_request *req)
{
	struct field_error err;
	struct complete_input in;
	if (validate_complete(http_json(req), clock_now(), &in, &err) < 0) {
		http_reply_field_error(req, &err);
		return;
	}
	struct callback_op *op = new_op(req);
	if (!op)
		return;
	op->complete = in;
	submit_op(req, ACT_COMPLETE, op);
}

/* ---- reads ---- */

struct list_state {
	json_t *items;
	struct customer_lookup {
		struct db_conn *conn;
	} lookup;
	int64_t now;
	int64_t keys[2][3]; /* the queue keys of the last two rows: a cursor names the one before the extra */
};

static int list_add(const struct callback_row *row, void *arg)
{
	struct list_state *st = arg;
	json_t *item = callback_json(row);
	if (!item)
		return -ENOMEM; /* left out, it would still move the cursor past it */
	struct customer_row customer;
	if (store_customer_get(st->lookup.conn, row->customer_id, &customer) == 0) {
		json_object_set_new(item, "customer",
		                    json_pack("{s:s, s:s?, s:s?}", "id", customer.id, "name", customer.name,
		                              "language", customer.language));
		customer_row_clear(&customer);
	}
	if (json_array_append_new(st->items, item) < 0)
		return -ENOMEM;
	memcpy(st->keys[0], st->keys[1], sizeof st->keys[0]);
	st->keys[1][0] = row->due_at > st->now;
	st->keys[1][1] = row->priority;
	st->keys[1][2] = row->id;
	return 0;
}

static const char *const statuses[] = { "queued", "claimed", "done", "unreachable", "cancelled", NULL };

/* A list in flight. With a touchpoint it is read on the long reports lane: a touchpoint few
 * callbacks have makes the walk go over every callback of the statuses asked for, 0.3-0.8 s
 * at a million, which the other connections of an HTTP thread must not wait for. Without
 * one, a page reads at most a page of each status (milliseconds), so it is read at once
 * rather than queued behind a manager's report (an agent's queue view). */
struct list_request {
	struct api_read read; /* first: the reports lane hands it back */
	struct callback_filter f;
	struct list_state st;
	int64_t limit;
	int result;
};

static void list_request_free(void *state)
{
	struct list_request *lr = state;
	if (!lr)
		return;
	json_decref(lr->st.items);
	free(lr);
}

static void list_run(struct api_read *r, struct db_conn *conn)
{
	struct list_request *lr = (struct list_request *)r;
	lr->st.lookup.conn = conn;
	lr->result = store_callback_list(conn, &lr->f, list_add, &lr->st);
	lr->st.lookup.conn = NULL;
}

static void list_resumed(struct http_request *req)
{
	struct list_request *lr = http_state(req);
	if (lr->result < 0) {
		http_reply_storage_error(req, lr->result);
		return;
	}
	char next[80] = "";
	if (json_array_size(lr->st.items) > (size_t)lr->limit) {
		json_array_remove(lr->st.items, (size_t)lr->limit);
		snprintf(next, sizeof next, "%" PRId64 ".%" PRId64 ".%" PRId64 ".%" PRId64, lr->st.keys[0][0],
		         lr->st.keys[0][1], lr->st.keys[0][2], lr->f.now);
	}
	json_t *items = lr->st.items;
	lr->st.items = NULL;
	api_reply_page(req, "callbacks", items, next[0] ? next : NULL);
}

void api_callbacks_list(struct http_request *req)
{
	int64_t limit = LIST_DEFAULT;
	struct callback_filter f = { .now = clock_now() };
	if (http_query_token(req, "touchpoint", &f.touchpoint) < 0 ||
	    http_query_int(req, "limit", 1, LIST_MAX, &limit) < 0)
		return;
	f.status = http_query(req, "status");
	if (f.status) {
		bool known = false;
		for (size_t i = 0; statuses[i]; i++)
			known = known || strcmp(f.status, statuses[i]) == 0;
		if (!known) {
			http_reply_error(req, 400, "invalid_field", "status",
			                 "status must be queued, claimed, done, unreachable or cancelled");
			return;
		}
	}
	/* A cursor also carries the time its listing began: what is due is judged as then, so a
	 * callback that falls due between two pages is not moved ahead of the pages read. (A
	 * cursor of three parts, from before, judges as now.) */
	const char *cursor = http_query(req, "cursor");
	if (cursor) {
		struct callback_cursor c;
		if (parse_callback_cursor(cursor, &c) < 0) {
			http_reply_error(req, 400, "invalid_field", "cursor",
			                 "cursor must be a next_cursor value");
			return;
		}
		f.has_cursor = true;
		memcpy(f.cursor_key, c.key, sizeof f.cursor_key);
		if (c.as_of)
			f.now = c.as_of;
	}
	f.limit = (int)limit + 1; /* one more tells whether there is a next page */
	struct list_request *lr = calloc(1, sizeof *lr);
	if (!lr || !(lr->st.items = json_array())) {
		free(lr);
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	lr->f = f;
	lr->limit = limit;
	lr->st.now = f.now;
	http_set_state(req, lr, list_request_free);
	if (f.touchpoint) {
		/* Long: a touchpoint few callbacks of the status have walks all of that status. */
		api_offload(req, OFFLOAD_LONG, &lr->read, list_run, list_resumed);
		return;
	}
	struct npsd_app *app = http_app(req);
	struct db_conn *conn = db_reader(app->db);
	list_run(&lr->read, conn);
	db_reader_put(app->db, conn);
	list_resumed(req);
}

/* The stats in flight: read on the quick reports lane (30 days of callbacks on their
 * created_at index: 50-80 ms at a million, which an HTTP thread's other connections must
 * not wait for, and which grows with the month's callbacks, not with the table). */
struct stats_request {
	struct api_read read; /* first: the reports lane hands it back */
	struct callback_stats s;
	int result;
};

static void stats_run(struct api_read *r, struct db_conn *conn)
{
	struct stats_request *sr = (struct stats_request *)r;
	sr->result = store_callback_stats(conn, clock_now(), &sr->s);
}

static void stats_resumed(struct http_request *req)
{
	struct stats_request *sr = http_state(req);
	if (sr->result < 0) {
		http_reply_storage_error(req, sr->result);
		return;
	}
	const struct callback_stats s = sr->s;
	/* Rounded to one decimal, as the NPS figures are. */
	json_t *sla = s.sla_total ? api_figure(100.0 * (double)s.sla_met / (double)s.sla_total) : json_null();
	/* The store's medians are in seconds; people read minutes. */
	json_t *first = s.median_seconds_to_first_call >= 0 ? api_figure(s.median_seconds_to_first_call / 60)
	                                                    : json_null();
	json_t *close =
	        s.median_seconds_to_close >= 0 ? api_figure(s.median_seconds_to_close / 60) : json_null();
	json_t *ingest = s.median_seconds_ingest_to_queue >= 0
	                         ? api_figure(s.median_seconds_ingest_to_queue / 60)
	                         : json_null();
	json_t *reached = s.low_scores
	                          ? api_figure(100.0 * (double)s.low_scores_reached / (double)s.low_scores)
	                          : json_null();
	http_reply_json(
	        req, 200,
	        json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "queue_depth",
	                  (json_int_t)s.queued, "due", (json_int_t)s.due, "claimed", (json_int_t)s.claimed,
	                  "oldest_due_age_seconds", (json_int_t)s.oldest_due_age, "sla_met_percent", sla,
	                  "median_minutes_to_first_call", first, "median_minutes_to_close", close,
	                  "low_scores_reached_percent", reached, "median_minutes_ingest_to_queue", ingest));
}

void api_callbacks_stats(struct http_request *req)
{
	struct stats_request *sr = calloc(1, sizeof *sr);
	if (!sr) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_set_state(req, sr, free);
	api_offload(req, OFFLOAD_QUICK, &sr->read, stats_run, stats_resumed);
}
