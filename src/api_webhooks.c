/* /v1/webhooks and /v1/deliveries: managers' subscriptions and their delivery log. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/api.h"
#include "npsd/app.h"
#include "npsd/clock.h"
#include "npsd/digests.h"
#include "npsd/outbox.h"
#include "npsd/webhook_format.h"
#include "npsd/webhooks.h"

#define LIST_DEFAULT 50
#define LIST_MAX 200
#define ATTEMPTS_SHOWN 20

/* The secret is shown once, at creation; the receiver's auth header never. */
static json_t *webhook_json(const struct webhook_row *row)
{
	char created[21], updated[21];
	json_t *events = row->events ? json_loads(row->events, 0, NULL) : NULL;
	json_t *filter = row->filter ? json_loads(row->filter, 0, NULL) : NULL;
	return json_pack("{s:I, s:s, s:s, s:o, s:o, s:b, s:s?, s:b, s:s?, s:s, s:s, s:o, s:s?, s:s?}", "id",
	                 (json_int_t)row->id, "url", row->url, "format", row->format, "events",
	                 events ? events : json_array(), "filter", filter ? filter : json_object(),
	                 "auth_set", row->auth != NULL, "description", row->description, "active",
	                 row->active, "disabled_reason", row->disabled_reason, "created_at",
	                 time_format_rfc3339(row->created_at, created), "updated_at",
	                 time_format_rfc3339(row->updated_at, updated), "failing_since",
	                 api_time(row->failing_since), "digest", row->digest, "digest_at",
	                 digest_at_in_force(row->digest, row->digest_at));
}

static void reply_webhook(struct http_request *req, unsigned status, int64_t id, const char *secret)
{
	struct npsd_app *app = http_app(req);
	struct db_conn *conn = db_reader(app->db);
	struct webhook_row row;
	int r = store_webhook_get(conn, id, &row);
	db_reader_put(app->db, conn);
	if (r == -ENOENT) {
		http_reply_error(req, 404, "not_found", NULL, "no webhook with id %" PRId64, id);
		return;
	}
	if (r < 0) {
		http_reply_storage_error(req, r);
		return;
	}
	json_t *body = webhook_json(&row);
	webhook_row_clear(&row);
	if (secret)
		json_object_set_new(body, "secret", json_string(secret));
	http_reply_json(req, status, body);
}

enum webhook_action { ACT_CREATE, ACT_PATCH, ACT_DELETE, ACT_TEST, ACT_RETRY };

struct webhook_op {
	struct api_write write; /* first: the writer hands it back */
	enum webhook_action action;
	int64_t id;
	int64_t delivery_id;
	struct webhook_input in;
	char secret[64];
};

/* A test or a retry is refused for a webhook that is switched off (by PATCH or disabled
 * after failures): the delivery would only fail at once with "the webhook is disabled". */
static int require_switched_on(struct db_conn *conn, int64_t webhook_id)
{
	struct webhook_row row;
	int r = store_webhook_get(conn, webhook_id, &row);
	if (r < 0)
		return r;
	bool on = row.active;
	webhook_row_clear(&row);
	return on ? 0 : -EPERM;
}

/* A patch is judged with what it leaves, as a create is: a webhook that gets nothing (no
 * events and no digest), or a digest_at without a digest, is refused. -EDOM for the
 * events, -ERANGE for digest_at. Clearing the digest clears its time too. */
static int patch_leaves_a_webhook(struct db_conn *conn, int64_t id, struct webhook_input *in)
{
	struct webhook_row row;
	int r = store_webhook_get(conn, id, &row);
	if (r < 0)
		return r;
	bool digest = in->has_digest ? in->digest != NULL : row.digest != NULL;
	bool events = in->has_events ? in->events != 0 : row.events && strcmp(row.events, "[]") != 0;
	webhook_row_clear(&row);
	if (!digest && in->has_digest_at && in->digest_at)
		return -ERANGE;
	if (!digest && !events)
		return -EDOM;
	if (!digest) {
		in->has_digest_at = true;
		in->digest_at = NULL;
	}
	return 0;
}

static int webhook_apply(struct db_conn *conn, void *arg)
{
	struct webhook_op *op = arg;
	int64_t now = clock_now();
	int r;
	switch (op->action) {
	case ACT_CREATE:
		r = store_webhook_insert(conn, &op->in, op->secret, now, &op->id);
		break;
	case ACT_PATCH:
		r = patch_leaves_a_webhook(conn, op->id, &op->in);
		if (r == 0)
			r = store_webhook_update(conn, op->id, &op->in, now);
		break;
	case ACT_DELETE:
		r = store_webhook_delete(conn, op->id);
		break;
	case ACT_TEST: {
		r = require_switched_on(conn, op->id);
		if (r < 0)
			return r;
		char at[21];
		json_t *data =
		        json_pack("{s:s, s:I, s:s}", "message", "npsd test alert: this webhook works",
		                  "webhook_id", (json_int_t)op->id, "sent_at", time_format_rfc3339(now, at));
		return outbox_emit_to(conn, "webhook.test", data, op->id, now, &op->delivery_id);
	}
	case ACT_RETRY: {
		struct delivery_row delivery;
		r = store_delivery_get(conn, op->delivery_id, &delivery);
		if (r < 0)
			return r;
		op->id = delivery.webhook_id;
		r = require_switched_on(conn, op->id);
		if (r == 0)
			r = store_delivery_retry(conn, &delivery, now);
		delivery_row_clear(&delivery);
		if (r == 0)
			outbox_delivery_requeued(); /* wakes the delivery thread after the commit */
		return r;
	}
	default:
		return -EINVAL;
	}
	if (r == 0)
		outbox_webhooks_changed(); /* the fan-out reads subscriptions afresh */
	return r;
}

static json_t *delivery_json(struct db_conn *conn, const struct delivery_row *row);

static void webhook_resumed(struct http_request *req)
{
	struct webhook_op *op = http_state(req);
	int r = op->write.write.result;
	if (r == -ENOENT) {
		if (op->action == ACT_RETRY)
			http_reply_error(req, 404, "not_found", NULL, "no delivery with id %" PRId64,
			                 op->delivery_id);
		else
			http_reply_error(req, 404, "not_found", NULL, "no webhook with id %" PRId64, op->id);
		return;
	}
	if (r == -ERANGE && op->action == ACT_PATCH) {
		http_reply_error(req, 400, "invalid_field", "digest_at", "digest_at goes with a digest");
		return;
	}
	if (r == -EDOM && op->action == ACT_PATCH) {
		http_reply_error(req, 400, "invalid_field", "events",
		                 "the webhook would get nothing: give it events or a digest");
		return;
	}
	if (r == -EPERM) {
		http_reply_error(req, 409, "conflict", NULL,
		                 "webhook %" PRId64 " is switched off (inactive or disabled); PATCH "
		                 "{\"active\": true} turns it on. Nothing was sent",
		                 op->id);
		return;
	}
	if (r == -EALREADY) {
		http_reply_error(req, 409, "conflict", NULL, "delivery %" PRId64 " was already delivered",
		                 op->delivery_id);
		return;
	}
	if (r == -EBUSY && op->action == ACT_RETRY) {
		http_reply_error(req, 409, "conflict", NULL,
		                 "delivery %" PRId64
		                 " is being sent right now; its attempt will show in its log",
		                 op->delivery_id);
		return;
	}
	if (r < 0) {
		http_reply_storage_error(req, r);
		return;
	}
	switch (op->action) {
	case ACT_CREATE:
		reply_webhook(req, 201, op->id, op->secret);
		return;
	case ACT_PATCH:
		reply_webhook(req, 200, op->id, NULL);
		return;
	case ACT_DELETE:
		http_reply_empty(req, 204);
		return;
	case ACT_TEST:
	case ACT_RETRY: {
		struct npsd_app *app = http_app(req);
		struct db_conn *conn = db_reader(app->db);
		struct delivery_row row;
		r = store_delivery_get(conn, op->delivery_id, &row);
		json_t *body = r == 0 ? delivery_json(conn, &row) : NULL;
		if (r == 0)
			delivery_row_clear(&row);
		db_reader_put(app->db, conn);
		if (!body)
			http_reply_storage_error(req, r);
		else
			http_reply_json(req, 202, body); /* accepted: the delivery thread sends it */
		return;
	}
	}
}

static struct webhook_op *new_op(struct http_request *req, enum webhook_action action)
{
	struct webhook_op *op = calloc(1, sizeof *op);
	if (!op) {
		http_reply_storage_error(req, -ENOMEM);
		return NULL;
	}
	op->action = action;
	op->id = http_path_id(req);
	http_set_state(req, op, free);
	return op;
}

static void submit(struct http_request *req, struct webhook_op *op)
{
	api_submit(req, &op->write, webhook_apply, webhook_resumed);
}

void api_webhooks_create(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	struct webhook_input in;
	struct field_error err;
	if (webhooks_validate(http_json(req), false, app_config(app)->wh_allow_private_targets, &in, &err) <
	    0) {
		http_reply_field_error(req, &err);
		return;
	}
	struct webhook_op *op = new_op(req, ACT_CREATE);
	if (!op)
		return;
	op->in = in;
	if (op->in.active < 0)
		op->in.active = 1;
	if (webhook_secret_generate(op->secret, sizeof op->secret) < 0) {
		http_reply_storage_error(req, -EIO);
		return;
	}
	submit(req, op);
}

void api_webhooks_patch(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	struct webhook_input in;
	struct field_error err;
	if (webhooks_validate(http_json(req), true, app_config(app)->wh_allow_private_targets, &in, &err) <
	    0) {
		http_reply_field_error(req, &err);
		return;
	}
	struct webhook_op *op = new_op(req, ACT_PATCH);
	if (!op)
		return;
	op->in = in;
	submit(req, op);
}

void api_webhooks_delete(struct http_request *req)
{
	struct webhook_op *op = new_op(req, ACT_DELETE);
	if (op)
		submit(req, op);
}

void api_webhooks_test(struct http_request *req)
{
	struct webhook_op *op = new_op(req, ACT_TEST);
	if (op)
		submit(req, op);
}

void api_deliveries_retry(struct http_request *req)
{
	struct webhook_op *op = new_op(req, ACT_RETRY);
	if (!op)
		return;
	op->delivery_id = op->id;
	submit(req, op);
}

void api_webhooks_get(struct http_request *req)
{
	reply_webhook(req, 200, http_path_id(req), NULL);
}

static int add_webhook(const struct webhook_row *row, void *arg)
{
	json_array_append_new(arg, webhook_json(row));
	return 0;
}

void api_webhooks_list(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	json_t *items = json_array();
	struct db_conn *conn = db_reader(app->db);
	int r = store_webhook_each(conn, add_webhook, items);
	db_reader_put(app->db, conn);
	if (r < 0) {
		json_decref(items);
		http_reply_storage_error(req, r);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:o}", "webhooks", items));
}

static int add_attempt(const struct attempt_row *a, void *arg)
{
	char at[21];
	json_array_append_new(arg, json_pack("{s:s, s:o, s:i, s:s?, s:s?}", "at",
	                                     time_format_rfc3339(a->at, at), "http_status",
	                                     a->http_status ? json_integer(a->http_status) : json_null(),
	                                     "duration_ms", a->duration_ms, "error", a->error,
	                                     "response_head", a->response_head));
	return 0;
}

static json_t *delivery_json(struct db_conn *conn, const struct delivery_row *row)
{
	char created[21];
	json_t *attempts = json_array();
	store_attempt_list(conn, row->id, ATTEMPTS_SHOWN, add_attempt, attempts);
	bool pending = strcmp(row->status, "pending") == 0;
	return json_pack("{s:I, s:I, s:I, s:s?, s:s, s:i, s:o, s:s?, s:o, s:s, s:o}", "id",
	                 (json_int_t)row->id, "webhook_id", (json_int_t)row->webhook_id, "event_id",
	                 (json_int_t)row->event_id, "event_type", row->event_type, "status", row->status,
	                 "attempts", row->attempts, "last_http_status",
	                 row->last_http_status ? json_integer(row->last_http_status) : json_null(),
	                 "last_error", row->last_error, "next_attempt_at",
	                 pending ? api_time(row->next_attempt_at) : json_null(), "created_at",
	                 time_format_rfc3339(row->created_at, created), "attempt_log", attempts);
}

struct delivery_list {
	struct db_conn *conn;
	json_t *items;
	int64_t last_id;
};

static int add_delivery(const struct delivery_row *row, void *arg)
{
	struct delivery_list *list = arg;
	json_array_append_new(list->items, delivery_json(list->conn, row));
	list->last_id = row->id;
	return 0;
}

void api_webhooks_deliveries(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	int64_t limit = LIST_DEFAULT, cursor = 0;
	if (http_query_int(req, "limit", 1, LIST_MAX, &limit) < 0 ||
	    http_query_int(req, "cursor", 1, INT64_MAX, &cursor) < 0)
		return;
	struct delivery_list list = { .conn = db_reader(app->db), .items = json_array() };
	struct webhook_row hook;
	int r = store_webhook_get(list.conn, http_path_id(req), &hook);
	if (r == 0) {
		webhook_row_clear(&hook);
		r = store_delivery_list(list.conn, http_path_id(req), cursor, (int)limit, add_delivery,
		                        &list);
	}
	db_reader_put(app->db, list.conn);
	if (r < 0) {
		json_decref(list.items);
		if (r == -ENOENT)
			http_reply_error(req, 404, "not_found", NULL, "no webhook with id %" PRId64,
			                 http_path_id(req));
		else
			http_reply_storage_error(req, r);
		return;
	}
	json_t *next = json_null();
	if (json_array_size(list.items) == (size_t)limit) {
		char text[24];
		snprintf(text, sizeof text, "%" PRId64, list.last_id);
		json_decref(next);
		next = json_string(text);
	}
	http_reply_json(req, 200, json_pack("{s:o, s:o}", "deliveries", list.items, "next_cursor", next));
}
