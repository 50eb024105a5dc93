#include "npsd/surveys.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/callbacks.h"
#include "npsd/outbox.h"

static bool same_text(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* JSON has one number type: 3 and 3.0 are the same value, though jansson keeps them apart. */
static bool same_value(json_t *a, json_t *b)
{
	if (json_is_real(a) && json_is_real(b))
		return json_real_value(a) == json_real_value(b);
	if (json_is_integer(a) && json_is_real(b)) {
		json_t *t = a;
		a = b;
		b = t;
	}
	/* A real and an integer: equal only when the real is that very integer. As doubles,
	 * 9007199254740993 and 9007199254740992.0 would meet; two integers compare exactly. */
	if (json_is_real(a) && json_is_integer(b)) {
		double x = json_real_value(a);
		return x == trunc(x) && x >= -0x1p63 && x < 0x1p63 && (json_int_t)x == json_integer_value(b);
	}
	return json_equal(a, b);
}

/*
 * Attributes grow, never change: every stored key must come back with the same value, and
 * together they stay within SURVEY_ATTRIBUTES_MAX keys.
 * Returns 1 when `sent` adds keys, 0 when it adds nothing, -1 when a value differs or the
 * union would be too large.
 * *ret_merged receives the union as compact JSON when it grows.
 */
static int compare_attributes(const char *stored_text, json_t *sent, char **ret_merged)
{
	if (!sent)
		return 0;
	json_t *stored = stored_text ? json_loads(stored_text, 0, NULL) : json_object();
	if (!stored)
		return -1;
	int result = 0;
	const char *key;
	json_t *value;
	json_object_foreach (stored, key, value) {
		json_t *other = json_object_get(sent, key);
		if (other && !same_value(value, other)) {
			result = -1;
			goto out;
		}
	}
	json_object_foreach (sent, key, value) {
		if (!json_object_get(stored, key)) {
			json_object_set(stored, key, value);
			result = 1;
		}
	}
	if (result == 1 && json_object_size(stored) > SURVEY_ATTRIBUTES_MAX)
		result = -1;
	if (result == 1) {
		*ret_merged = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS);
		if (!*ret_merged)
			result = -1;
	}
out:
	json_decref(stored);
	return result;
}

unsigned surveys_compare(const struct survey_row *stored, const struct survey_input *in,
                         char **ret_attributes)
{
	*ret_attributes = NULL;
	/* What identifies the answer must match exactly. A sender that leaves out
	 * answered_at, channel or contact_consent on a retry still means the same answer. */
	if (strcmp(stored->customer_id, in->customer_id) != 0 ||
	    strcmp(stored->touchpoint, in->touchpoint) != 0 || stored->score != in->score ||
	    (in->consent_given && stored->consent != in->consent))
		return 409;
	if (in->channel && !same_text(stored->channel, in->channel))
		return 409;
	if (in->answered_at_given && stored->answered_at != in->answered_at)
		return 409;
	bool grows = false;
	if (in->comment && !same_text(stored->comment, in->comment)) {
		if (stored->comment)
			return 409;
		grows = true;
	}
	int attrs = compare_attributes(stored->attributes, in->attributes, ret_attributes);
	if (attrs < 0)
		return 409;
	if (attrs > 0)
		grows = true;
	return grows ? 0 : 200;
}

/* The survey as events carry it. */
static json_t *survey_brief(const struct ingest_item *item)
{
	char answered[21];
	return json_pack("{s:I, s:s, s:s, s:s?, s:i, s:s, s:s?, s:s}", "id", (json_int_t)item->survey_id,
	                 "response_id", item->in.response_id, "touchpoint", item->in.touchpoint, "channel",
	                 item->in.channel, "score", item->in.score, "category",
	                 survey_category(item->in.score), "comment", item->in.comment, "answered_at",
	                 time_format_rfc3339(item->in.answered_at, answered));
}

static json_t *attributes_json(const struct survey_input *in)
{
	return in->attributes ? json_incref(in->attributes) : json_object();
}

static int emit_survey_event(struct db_conn *conn, const char *type, const struct ingest_item *item,
                             const struct customer_row *customer, json_t *attributes, int64_t now)
{
	if (!outbox_wanted(conn, type)) {
		json_decref(attributes);
		return 0;
	}
	json_t *survey = survey_brief(item);
	json_object_set_new(survey, "attributes", attributes);
	json_t *callback = json_null();
	if (item->has_callback) {
		char due[21];
		json_decref(callback);
		callback = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)item->callback.id, "status",
		                     item->callback.status, "due_at",
		                     time_format_rfc3339(item->callback.due_at, due));
	}
	json_t *data = json_pack("{s:o, s:o, s:o}", "survey", survey, "customer",
	                         outbox_customer(customer->id, customer->name, customer->language),
	                         "callback", callback);
	struct event_facts facts = { .score = item->score, .touchpoint = item->in.touchpoint };
	return outbox_emit(conn, type, data, facts, now);
}

static int finish_with_callback(struct db_conn *conn, struct ingest_item *item, int64_t callback_id)
{
	item->has_callback = false;
	if (!callback_id)
		return 0;
	int r = store_callback_brief(conn, callback_id, &item->callback);
	if (r == 0)
		item->has_callback = true;
	return r == -ENOENT ? 0 : r;
}

/* survey.updated carries the answer as it now stands. */
static int emit_updated(struct db_conn *conn, const struct ingest_item *item, const struct survey_row *before,
                        int64_t now)
{
	if (!outbox_wanted(conn, "survey.updated"))
		return 0;
	struct survey_row row;
	struct customer_row customer;
	int r = store_survey_get(conn, before->id, &row);
	if (r < 0)
		return r;
	r = store_customer_get(conn, row.customer_id, &customer);
	if (r < 0) {
		survey_row_clear(&row);
		return r;
	}
	struct ingest_item updated = *item;
	updated.in.comment = row.comment;
	updated.in.channel = row.channel;
	updated.in.answered_at = row.answered_at;
	json_t *attributes = row.attributes ? json_loads(row.attributes, 0, NULL) : NULL;
	r = emit_survey_event(conn, "survey.updated", &updated, &customer,
	                      attributes ? attributes : json_object(), now);
	customer_row_clear(&customer);
	survey_row_clear(&row);
	return r;
}

static int ingest_existing(struct db_conn *conn, struct ingest_item *item, const struct survey_row *stored,
                           int64_t now)
{
	char *attributes = NULL;
	unsigned verdict = surveys_compare(stored, &item->in, &attributes);
	item->survey_id = stored->id;
	item->score = stored->score;
	if (verdict == 409) {
		item->status = 409;
		return 0;
	}
	item->status = 200;
	int r = finish_with_callback(conn, item, stored->callback_id);
	if (r == 0 && verdict == 0) {
		const char *comment = stored->comment ? NULL : item->in.comment;
		r = store_survey_complete(conn, stored->id, comment, attributes, now);
		if (r == 0)
			r = emit_updated(conn, item, stored, now);
	}
	free(attributes);
	return r;
}

/* Replaces *field with a copy of value when the answer gives one: what the customer tells
 * now is newer than what is stored. */
static int take_newer(char **field, const char *value)
{
	if (!value)
		return 0;
	char *copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* The customer as stored (*ret_known) or new, with the contact fields the answer gives. */
static int customer_with_answer(struct db_conn *conn, const struct survey_input *in, struct customer_row *ret,
                                bool *ret_known)
{
	int r = store_customer_get(conn, in->customer_id, ret);
	*ret_known = r == 0;
	if (r == -ENOENT) {
		*ret = (struct customer_row){ .id = strdup(in->customer_id) };
		r = ret->id ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	if (take_newer(&ret->name, in->customer_name) < 0 ||
	    take_newer(&ret->phone, in->customer_phone) < 0 ||
	    take_newer(&ret->email, in->customer_email) < 0 ||
	    take_newer(&ret->language, in->customer_language) < 0) {
		customer_row_clear(ret);
		return -ENOMEM;
	}
	return 0;
}

int surveys_ingest(struct db_conn *conn, struct ingest_item *item, int64_t now)
{
	const struct survey_input *in = &item->in;
	struct survey_row stored;
	int r = store_survey_by_response_id(conn, in->response_id, &stored);
	if (r == 0) {
		r = ingest_existing(conn, item, &stored, now);
		survey_row_clear(&stored);
		return r;
	}
	if (r != -ENOENT)
		return r;

	struct customer_row customer;
	bool known;
	r = customer_with_answer(conn, in, &customer, &known);
	if (r < 0)
		return r;
	item->has_callback = false;
	bool created = false;
	if (callbacks_owed(item->cfg, &customer, in->score, in->consent, now)) {
		r = callbacks_open_or_join(conn, item->cfg, &customer, in->touchpoint, in->score,
		                           in->answered_at, now, &item->callback, &created);
		if (r < 0)
			goto out;
		item->has_callback = true;
	}
	r = known ? store_customer_update(conn, &customer, now) : store_customer_insert(conn, &customer, now);
	if (r < 0)
		goto out;
	char *attributes = NULL;
	if (in->attributes) {
		attributes = json_dumps(in->attributes, JSON_COMPACT | JSON_SORT_KEYS);
		if (!attributes) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = store_survey_insert(conn, in, item->source, attributes, now,
	                        item->has_callback ? item->callback.id : 0, &item->survey_id);
	free(attributes);
	if (r < 0)
		goto out;
	item->score = in->score;
	item->status = 201;
	r = emit_survey_event(conn, "survey.received", item, &customer, attributes_json(in), now);
	if (r == 0 && created && outbox_wanted(conn, "callback.created"))
		r = callbacks_emit_created(conn, item->callback.id, &customer, survey_brief(item), now);
out:
	customer_row_clear(&customer);
	return r;
}
