#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/api.h"
#include "npsd/app.h"
#include "npsd/clock.h"
#include "npsd/surveys.h"

#define BATCH_MAX 1000
#define LIST_DEFAULT 50
#define LIST_MAX 500
/* How many answers' ids one page of the list may walk past: a filter that few answers pass
 * then costs a page a few milliseconds (the walk reads ~6 million rows a second here) and
 * comes back short, with a next_cursor to go on from, instead of reading the whole table. */
#define LIST_SCAN_IDS 50000

/* A POST in flight: its items, the one write that stores them, and the request to wake. */
struct ingest_request {
	struct api_write write; /* first: the writer hands it back */
	bool batch;
	size_t nitems;
	struct ingest_slot {
		struct ingest_item item;
		json_t *error; /* a validation error object, or NULL when the item was valid */
	} slots[];
};

static void ingest_request_free(void *state)
{
	struct ingest_request *ir = state;
	if (!ir)
		return;
	for (size_t i = 0; i < ir->nitems; i++)
		json_decref(ir->slots[i].error);
	free(ir);
}

static int ingest_one(struct db_conn *conn, void *arg)
{
	struct ingest_item *item = arg;
	return surveys_ingest(conn, item, clock_now());
}

/* Runs on the writer thread. A batch is one write, so it commits whole or not at all: an
 * item's 400 or 409 is an outcome, and an error of storage fails every item alike, so its
 * items need no savepoints of their own (each would copy the pages it touches). */
static int ingest_apply(struct db_conn *conn, void *arg)
{
	struct ingest_request *ir = arg;
	for (size_t i = 0; i < ir->nitems; i++) {
		struct ingest_slot *slot = &ir->slots[i];
		if (slot->error)
			continue;
		int r = ingest_one(conn, &slot->item);
		if (r < 0)
			return r;
		if (!db_in_transaction(conn))
			return -EIO;
	}
	return 0;
}

static json_t *callback_json(const struct ingest_item *item)
{
	if (!item->has_callback)
		return json_null();
	char due[21];
	return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)item->callback.id, "status",
	                 item->callback.status, "due_at", time_format_rfc3339(item->callback.due_at, due));
}

static json_t *item_json(const struct ingest_item *item)
{
	return json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)item->survey_id, "response_id",
	                 item->in.response_id, "category", survey_category(item->score), "callback",
	                 callback_json(item));
}

/* The reply to one answer, the one npsd sends most, written from its fixed shape: built and
 * dumped by jansson it cost a fifth of the HTTP threads' instructions per answer, most of it
 * in the dump's cycle check (it prints each object's address into a hash table). jansson
 * still escapes the one string a client chose. The same text as http_reply_json() would
 * send for item_json(); NULL when out of memory or the id does not fit, to build it so. */
static char *item_text(const struct ingest_item *item)
{
	char id[1024];
	json_t *rid = json_string_nocheck(item->in.response_id);
	size_t id_len = rid ? json_dumpb(rid, id, sizeof id, JSON_ENCODE_ANY) : 0;
	json_decref(rid);
	if (id_len == 0 || id_len >= sizeof id)
		return NULL;
	id[id_len] = '\0';
	char callback[128] = "null", due[21];
	if (item->has_callback)
		snprintf(callback, sizeof callback, "{\"id\":%lld,\"status\":\"%s\",\"due_at\":\"%s\"}",
		         (long long)item->callback.id, item->callback.status,
		         time_format_rfc3339(item->callback.due_at, due));
	char *text = NULL;
	if (asprintf(&text, "{\"id\":%lld,\"response_id\":%s,\"category\":\"%s\",\"callback\":%s}",
	             (long long)item->survey_id, id, survey_category(item->score), callback) < 0)
		return NULL;
	return text;
}

static json_t *conflict_error(void)
{
	return http_error_object("conflict", "response_id",
	                         "response_id was already used for a different answer");
}

static void ingest_resumed(struct http_request *req)
{
	struct ingest_request *ir = http_state(req);
	if (ir->write.write.result < 0) {
		http_reply_storage_error(req, ir->write.write.result);
		return;
	}
	if (!ir->batch) {
		const struct ingest_item *item = &ir->slots[0].item;
		if (item->status == 409) {
			json_t *body = json_object();
			json_object_set_new(body, "error", conflict_error());
			http_reply_json(req, 409, body);
			return;
		}
		char *text = item_text(item);
		if (text)
			http_reply_text(req, item->status, NULL, text);
		else
			http_reply_json(req, item->status, item_json(item));
		return;
	}
	json_t *results = json_array();
	for (size_t i = 0; i < ir->nitems; i++) {
		const struct ingest_slot *slot = &ir->slots[i];
		json_t *result;
		if (slot->error) {
			result = json_pack("{s:i, s:O}", "status", 400, "error", slot->error);
		} else if (slot->item.status == 409) {
			result = json_pack("{s:i, s:o}", "status", 409, "error", conflict_error());
		} else {
			result = item_json(&slot->item);
			json_object_set_new(result, "status", json_integer(slot->item.status));
		}
		json_array_append_new(results, result);
	}
	http_reply_json(req, 200, results);
}

static json_t *validation_error(json_t *doc, int64_t now, struct survey_input *in)
{
	struct field_error err;
	if (validate_survey(doc, now, in, &err) == 0)
		return NULL;
	return http_error_object(err.code, err.field, err.message);
}

void api_surveys_post(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	json_t *doc = http_json(req);
	bool batch = json_is_array(doc);
	size_t n = batch ? json_array_size(doc) : 1;
	if (batch && (n == 0 || n > BATCH_MAX)) {
		http_reply_error(req, 400, "invalid_field", NULL, "a batch holds 1 to %d answers, not %zu",
		                 BATCH_MAX, n);
		return;
	}
	struct ingest_request *ir = calloc(1, sizeof *ir + n * sizeof ir->slots[0]);
	if (!ir) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_set_state(req, ir, ingest_request_free);
	ir->batch = batch;
	ir->nitems = n;
	int64_t now = clock_now();
	const struct npsd_config *cfg = app_config(app);
	size_t valid = 0;
	for (size_t i = 0; i < n; i++) {
		struct ingest_slot *slot = &ir->slots[i];
		slot->error = validation_error(batch ? json_array_get(doc, i) : doc, now, &slot->item.in);
		if (slot->error)
			continue;
		slot->item.source = http_principal(req)->name;
		slot->item.cfg = cfg;
		valid++;
	}
	if (!batch && ir->slots[0].error) {
		json_t *body = json_object();
		json_object_set(body, "error", ir->slots[0].error);
		http_reply_json(req, 400, body);
		return;
	}
	if (valid == 0) {
		ingest_resumed(req);
		return;
	}
	/* Each run of surveys_ingest() sets every result of its item afresh, and what else it
	 * touches (the writer's webhook cache) is read again after a rollback. */
	ir->write.write.replayable = true;
	api_submit(req, &ir->write, ingest_apply, ingest_resumed);
}

static json_t *survey_json(struct db_conn *conn, const struct survey_row *row)
{
	char answered[21], received[21];
	json_t *attributes = row->attributes ? json_loads(row->attributes, 0, NULL) : NULL;
	json_t *callback = json_null();
	struct callback_brief cb;
	if (row->callback_id && store_callback_brief(conn, row->callback_id, &cb) == 0) {
		char due[21];
		json_decref(callback);
		callback = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)cb.id, "status", cb.status,
		                     "due_at", time_format_rfc3339(cb.due_at, due));
	}
	/* Managers read who answered; the contact details are the customer's latest. */
	json_t *customer = NULL;
	struct customer_row c;
	if (store_customer_get(conn, row->customer_id, &c) == 0) {
		customer = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:b}", "id", c.id, "name", c.name,
		                     "phone", c.phone, "email", c.email, "language", c.language,
		                     "do_not_call", c.do_not_call);
		customer_row_clear(&c);
	}
	if (!customer)
		customer = json_pack("{s:s}", "id", row->customer_id);
	return json_pack(
	        "{s:I, s:s, s:s, s:o, s:s, s:s?, s:i, s:s, s:s?, s:s, s:s, s:o, s:b, s:o, s:b, s:s?, s:o}",
	        "id", (json_int_t)row->id, "response_id", row->response_id, "source", row->source, "customer",
	        customer, "touchpoint", row->touchpoint, "channel", row->channel, "score", row->score,
	        "category", survey_category(row->score), "comment", row->comment, "answered_at",
	        time_format_rfc3339(row->answered_at, answered), "received_at",
	        time_format_rfc3339(row->received_at, received), "updated_at", api_time(row->updated_at),
	        "contact_consent", row->consent, "attributes", attributes ? attributes : json_object(),
	        "excluded", row->excluded, "exclude_reason", row->exclude_reason, "callback", callback);
}

static void reply_survey(struct http_request *req, int64_t id);

void api_surveys_get(struct http_request *req)
{
	reply_survey(req, http_path_id(req));
}

struct list_state {
	struct db_conn *conn;
	json_t *items;
};

static int list_add(const struct survey_row *row, void *arg)
{
	struct list_state *st = arg;
	/* A page missing a row would read as whole: fail it instead. */
	return json_array_append_new(st->items, survey_json(st->conn, row)) < 0 ? -ENOMEM : 0;
}

void api_surveys_list(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	struct survey_filter f = { .min_score = -1,
		                   .max_score = -1,
		                   .from = SURVEY_TIME_OPEN,
		                   .to = SURVEY_TIME_OPEN,
		                   .limit = LIST_DEFAULT };
	int64_t min_score = -1, max_score = -1, limit = LIST_DEFAULT, cursor = 0;
	if (http_query_token(req, "touchpoint", &f.touchpoint) < 0 ||
	    http_query_token(req, "channel", &f.channel) < 0 ||
	    http_query_int(req, "min_score", 0, 10, &min_score) < 0 ||
	    http_query_int(req, "max_score", 0, 10, &max_score) < 0 ||
	    api_query_range(req, SURVEY_TIME_OPEN, &f.from, &f.to) < 0 ||
	    http_query_int(req, "limit", 1, LIST_MAX, &limit) < 0 ||
	    http_query_int(req, "cursor", 1, INT64_MAX, &cursor) < 0 ||
	    http_query_name(req, "customer_id", ID_MAX_CHARS, &f.customer_id) < 0)
		return;
	/* An empty range is a mistake (the bounds swapped), not a question whose answer is
	 * "none", as a to before from is. */
	if (min_score >= 0 && max_score >= 0 && min_score > max_score) {
		http_reply_error(req, 400, "invalid_field", "min_score",
		                 "min_score must not be above max_score");
		return;
	}
	f.min_score = (int)min_score;
	f.max_score = (int)max_score;
	f.before_id = cursor;
	f.limit = (int)limit + 1; /* one more tells whether a next page exists */
	f.scan_ids = LIST_SCAN_IDS;
	struct list_state st = { .conn = db_reader(app->db), .items = json_array() };
	int64_t resume = 0;
	int r = store_survey_list(st.conn, &f, list_add, &st, &resume);
	db_reader_put(app->db, st.conn);
	if (r < 0) {
		json_decref(st.items);
		http_reply_storage_error(req, r);
		return;
	}
	char next[API_CURSOR_MAX] = "";
	if (resume)
		snprintf(next, sizeof next, "%lld", (long long)resume);
	api_page_cut(st.items, (size_t)limit, next); /* a full page goes on from its last row */
	api_reply_page(req, "surveys", st.items, next[0] ? next : NULL);
}

/* A PATCH in flight: what to set, and what the writer found. */
struct patch_request {
	struct api_write write; /* first: the writer hands it back */
	int64_t id;
	struct survey_patch patch; /* borrows from the request's JSON body */
};

static int patch_apply(struct db_conn *conn, void *arg)
{
	struct patch_request *pr = arg;
	return store_survey_set_excluded(conn, pr->id, pr->patch.excluded, pr->patch.reason);
}

static void reply_survey(struct http_request *req, int64_t id)
{
	struct npsd_app *app = http_app(req);
	struct db_conn *conn = db_reader(app->db);
	struct survey_row row;
	int r = store_survey_get(conn, id, &row);
	if (r == 0) {
		http_reply_json(req, 200, survey_json(conn, &row));
		survey_row_clear(&row);
	} else if (r == -ENOENT) {
		http_reply_error(req, 404, "not_found", NULL, "no survey with id %lld", (long long)id);
	} else {
		http_reply_storage_error(req, r);
	}
	db_reader_put(app->db, conn);
}

static void patch_resumed(struct http_request *req)
{
	struct patch_request *pr = http_state(req);
	int r = pr->write.write.result;
	if (r < 0 && r != -ENOENT) {
		http_reply_storage_error(req, r);
		return;
	}
	reply_survey(req, pr->id);
}

/* Leaves an answer out of the NPS figures, or puts it back: kept, listed and marked. */
void api_surveys_patch(struct http_request *req)
{
	struct field_error err;
	struct survey_patch patch;
	if (validate_survey_patch(http_json(req), &patch, &err) < 0) {
		http_reply_field_error(req, &err);
		return;
	}
	struct patch_request *pr = calloc(1, sizeof *pr);
	if (!pr) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	pr->id = http_path_id(req);
	pr->patch = patch;
	http_set_state(req, pr, free);
	api_submit(req, &pr->write, patch_apply, patch_resumed);
}
