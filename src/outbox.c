#include "npsd/outbox.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/validate.h"
#include "npsd/webhooks.h"

/* The active subscriptions, as the writer thread last read them. */
struct subscription {
	int64_t id;
	uint32_t events;
	int min_score, max_score; /* -1 = no bound */
	json_t *touchpoints;      /* array, or NULL for any */
};

static atomic_uint_fast64_t deliveries_written;

uint64_t outbox_deliveries_written(void)
{
	return atomic_load(&deliveries_written);
}

void outbox_delivery_requeued(void)
{
	atomic_fetch_add(&deliveries_written, 1);
}

static struct {
	bool loaded;
	/* db_rollbacks() when loaded: a rollback since may have undone the webhook changes the
	 * cache was read with (a batch that failed whole), so it is read again. */
	uint64_t rollbacks;
	struct subscription *subs;
	size_t n;
} cache;

void outbox_webhooks_changed(void)
{
	for (size_t i = 0; i < cache.n; i++)
		json_decref(cache.subs[i].touchpoints);
	free(cache.subs);
	cache.subs = NULL;
	cache.n = 0;
	cache.loaded = false;
}

static int cache_add(const struct webhook_row *row, void *arg)
{
	(void)arg;
	if (!row->active)
		return 0;
	struct subscription *subs = realloc(cache.subs, (cache.n + 1) * sizeof *subs);
	if (!subs)
		return -ENOMEM;
	cache.subs = subs;
	struct subscription *sub = &subs[cache.n++];
	*sub = (struct subscription){ .id = row->id, .min_score = -1, .max_score = -1 };
	json_t *events = row->events ? json_loads(row->events, 0, NULL) : NULL;
	size_t i;
	json_t *e;
	json_array_foreach (events, i, e)
		sub->events |= json_is_string(e) ? webhook_event_bit(json_string_value(e)) : 0;
	json_decref(events);
	/* Every webhook hears that another one went quiet, whatever it listed (SPEC: "goes to
	 * the other webhooks so a person hears of it"): few would think of subscribing to it,
	 * and alerts that stop without a word are the failure it exists for. */
	sub->events |= webhook_event_bit("webhook.disabled");
	json_t *filter = row->filter ? json_loads(row->filter, 0, NULL) : NULL;
	json_t *v;
	if ((v = json_object_get(filter, "min_score")) && json_is_integer(v))
		sub->min_score = (int)json_integer_value(v);
	if ((v = json_object_get(filter, "max_score")) && json_is_integer(v))
		sub->max_score = (int)json_integer_value(v);
	if ((v = json_object_get(filter, "touchpoints")) && json_is_array(v))
		sub->touchpoints = json_incref(v);
	json_decref(filter);
	return 0;
}

static int cache_load(struct db_conn *conn)
{
	if (cache.loaded && cache.rollbacks == db_rollbacks(conn))
		return 0;
	outbox_webhooks_changed();
	int r = store_webhook_each(conn, cache_add, NULL);
	if (r < 0) {
		outbox_webhooks_changed();
		return r;
	}
	cache.loaded = true;
	cache.rollbacks = db_rollbacks(conn);
	return 0;
}

/* Filters speak of answers: an event without a score (webhook.disabled) passes them. */
static bool passes(const struct subscription *sub, struct event_facts facts)
{
	if (facts.score >= 0) {
		if (sub->min_score >= 0 && facts.score < sub->min_score)
			return false;
		if (sub->max_score >= 0 && facts.score > sub->max_score)
			return false;
	}
	if (sub->touchpoints && facts.touchpoint) {
		size_t i;
		json_t *tp;
		json_array_foreach (sub->touchpoints, i, tp)
			if (strcmp(json_string_value(tp), facts.touchpoint) == 0)
				return true;
		return false;
	}
	return true;
}

static int insert_event(struct db_conn *conn, const char *type, json_t *data, int64_t now, int64_t *ret_id)
{
	if (!data)
		return -ENOMEM;
	/* 15 digits, as in answers: a figure rounded to 16.7 reads 16.7, not 16.699999999999999. */
	char *payload = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(data);
	if (!payload)
		return -ENOMEM;
	int r = store_event_insert(conn, type, payload, now, ret_id);
	free(payload);
	return r;
}

bool outbox_wanted(struct db_conn *conn, const char *type)
{
	/* A cache that cannot load says yes: emitting then reports the storage error. */
	if (cache_load(conn) < 0)
		return true;
	uint32_t bit = webhook_event_bit(type);
	for (size_t i = 0; i < cache.n; i++)
		if (cache.subs[i].events & bit)
			return true;
	return false;
}

int outbox_emit(struct db_conn *conn, const char *type, json_t *data, struct event_facts facts, int64_t now)
{
	int r = cache_load(conn);
	if (r < 0) {
		json_decref(data);
		return r;
	}
	/* An event no webhook's filter lets through is not kept: it would hold the customer's
	 * name and comment until retention, for nobody. */
	uint32_t bit = webhook_event_bit(type);
	bool passed = false;
	for (size_t i = 0; !passed && i < cache.n; i++)
		passed = (cache.subs[i].events & bit) && passes(&cache.subs[i], facts);
	if (!passed) {
		json_decref(data);
		return 0;
	}
	int64_t event_id;
	r = insert_event(conn, type, data, now, &event_id);
	for (size_t i = 0; r == 0 && i < cache.n; i++)
		if ((cache.subs[i].events & bit) && passes(&cache.subs[i], facts)) {
			r = store_delivery_insert(conn, event_id, cache.subs[i].id, now, NULL);
			atomic_fetch_add(&deliveries_written, 1);
		}
	return r;
}

int outbox_emit_to(struct db_conn *conn, const char *type, json_t *data, int64_t webhook_id, int64_t now,
                   int64_t *ret_delivery_id)
{
	int64_t event_id;
	int r = insert_event(conn, type, data, now, &event_id);
	if (r < 0)
		return r;
	atomic_fetch_add(&deliveries_written, 1);
	return store_delivery_insert(conn, event_id, webhook_id, now, ret_delivery_id);
}

json_t *outbox_customer(const char *id, const char *name, const char *language)
{
	return json_pack("{s:s, s:s?, s:s?}", "id", id, "name", name, "language", language);
}

int outbox_improvement_add(const char *area, const char *text, void *improvements)
{
	json_array_append_new(improvements, json_pack("{s:s, s:s}", "area", area, "text", text));
	return 0;
}

json_t *outbox_callback(const struct callback_row *row)
{
	char due[21], sla[21];
	return json_pack("{s:I, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:s?, s:s?}", "id", (json_int_t)row->id,
	                 "status", row->status, "priority", row->priority, "touchpoint", row->touchpoint,
	                 "due_at", time_format_rfc3339(row->due_at, due), "sla_deadline",
	                 time_format_rfc3339(row->sla_deadline, sla), "attempts", row->attempts,
	                 "max_attempts", row->max_attempts, "claimed_by", row->claimed_by, "outcome",
	                 row->outcome);
}
