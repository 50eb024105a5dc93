#include "npsd/callbacks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/outbox.h"
#include "npsd/schedule.h"

bool callbacks_owed(const struct npsd_config *cfg, const struct customer_row *customer, int score,
                    bool consent, int64_t now)
{
	if (score > cfg->cb_max_score || !consent)
		return false;
	if (!customer->phone || customer->do_not_call)
		return false;
	if (cfg->cb_cooldown > 0 && customer->last_reached_at > 0 &&
	    now - customer->last_reached_at < cfg->cb_cooldown)
		return false;
	return true;
}

static bool is_open(const char *status)
{
	return strcmp(status, "queued") == 0 || strcmp(status, "claimed") == 0;
}

/* When a call may happen at or after t: t itself in opening hours, else the next opening. */
static int64_t next_open(const struct npsd_config *cfg, int64_t t)
{
	int64_t due = schedule_next_open(&cfg->cb_hours, cfg->cb_holidays, cfg->cb_nholidays, t);
	return due < 0 ? t : due; /* never open within a year: call as soon as asked, not never */
}

int callbacks_open_or_join(struct db_conn *conn, const struct npsd_config *cfg, struct customer_row *customer,
                           const char *touchpoint, int score, int64_t answered_at, int64_t now,
                           struct callback_brief *ret, bool *ret_created)
{
	*ret_created = false;
	int r = customer->open_callback_id ? store_callback_brief(conn, customer->open_callback_id, ret)
	                                   : -ENOENT;
	if (r == 0 && !is_open(ret->status))
		r = -ENOENT; /* closed since: a new call is owed */
	if (r == 0) {
		if (score < ret->priority) {
			r = store_callback_join(conn, ret->id, score, touchpoint);
			ret->priority = score;
		}
		return r;
	}
	if (r != -ENOENT)
		return r;
	int64_t due = next_open(cfg, now);
	int64_t id;
	r = store_callback_insert(conn, customer->id, score, touchpoint, due, due + cfg->cb_sla,
	                          cfg->cb_max_attempts, answered_at, now, &id);
	if (r < 0)
		return r;
	*ret = (struct callback_brief){ .id = id, .status = "queued", .due_at = due, .priority = score };
	customer->open_callback_id = id;
	*ret_created = true;
	return 0;
}

int callbacks_emit_created(struct db_conn *conn, int64_t id, const struct customer_row *customer,
                           json_t *survey, int64_t now)
{
	struct callback_row row;
	int r = store_callback_get(conn, id, &row);
	if (r < 0) {
		json_decref(survey);
		return r;
	}
	json_t *data = json_pack("{s:o, s:o, s:o}", "callback", outbox_callback(&row), "customer",
	                         outbox_customer(customer->id, customer->name, customer->language), "survey",
	                         survey);
	struct event_facts facts = { .score = row.priority, .touchpoint = row.touchpoint };
	r = outbox_emit(conn, "callback.created", data, facts, now);
	callback_row_clear(&row);
	return r;
}

int callbacks_claim(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                    const char *touchpoint, int64_t now, int64_t *ret_id)
{
	/* An agent who released a callback passes it over for a lease's length: the queue
	 * order would otherwise hand it straight back to the one who just let it go. */
	int r = store_callback_claim(conn, touchpoint, agent->name, agent->key_id, now, now + cfg->cb_lease,
	                             now - cfg->cb_lease, ret_id);
	if (r < 0)
		return r;
	struct callback_row row;
	r = store_callback_get(conn, *ret_id, &row);
	if (r < 0)
		return r;
	r = store_callback_event_add(conn, row.id, row.customer_id, now, "claimed", agent->name, NULL, NULL);
	callback_row_clear(&row);
	return r;
}

/* Loads the callback and checks that agent holds its claim at now. A lease that has run out
 * is no claim, even before the scheduler has put the callback back in the queue. */
static int load_claimed(struct db_conn *conn, const struct principal *agent, int64_t id, int64_t now,
                        struct callback_row *row)
{
	int r = store_callback_get(conn, id, row);
	if (r < 0)
		return r;
	if (strcmp(row->status, "claimed") != 0)
		r = CALLBACK_WRONG_STATE;
	else if (row->claimed_key_id != agent->key_id)
		r = CALLBACK_NOT_YOURS;
	else if (row->lease_expires_at <= now)
		r = CALLBACK_LEASE_EXPIRED;
	if (r < 0)
		callback_row_clear(row);
	return r;
}

int callbacks_heartbeat(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                        int64_t id, int64_t now)
{
	struct callback_row row;
	int r = load_claimed(conn, agent, id, now, &row);
	if (r < 0)
		return r;
	row.lease_expires_at = now + cfg->cb_lease;
	r = store_callback_save(conn, &row);
	callback_row_clear(&row);
	return r;
}

static void unclaim(struct callback_row *row)
{
	free(row->claimed_by);
	row->claimed_by = NULL;
	row->claimed_key_id = 0;
	row->lease_expires_at = 0;
}

int callbacks_release(struct db_conn *conn, const struct principal *agent, int64_t id, int64_t now)
{
	struct callback_row row;
	int r = load_claimed(conn, agent, id, now, &row);
	if (r < 0)
		return r;
	unclaim(&row);
	snprintf(row.status, sizeof row.status, "queued");
	r = store_callback_save(conn, &row);
	if (r == 0)
		r = store_callback_mark_released(conn, id, agent->key_id, now);
	if (r == 0)
		r = store_callback_event_add(conn, id, row.customer_id, now, "released", agent->name, NULL,
		                             NULL);
	callback_row_clear(&row);
	return r;
}

/* The event of a callback closed (or past its SLA), with every improvement recorded on it
 * so far, as GET /v1/callbacks/{id} shows them: one attempt's alone left out what earlier
 * attempts' calls had learned. */
static int emit_closed(struct db_conn *conn, const char *type, const struct callback_row *row, int64_t now)
{
	if (!outbox_wanted(conn, type))
		return 0;
	struct customer_row customer;
	int r = store_customer_get(conn, row->customer_id, &customer);
	if (r < 0)
		return r;
	json_t *improvements = json_array();
	r = store_callback_improvements(conn, row->id, outbox_improvement_add, improvements);
	if (r < 0) {
		json_decref(improvements);
		customer_row_clear(&customer);
		return r;
	}
	json_t *data = json_pack("{s:o, s:o, s:s?, s:o}", "callback", outbox_callback(row), "customer",
	                         outbox_customer(customer.id, customer.name, customer.language), "notes",
	                         row->notes, "improvements", improvements);
	customer_row_clear(&customer);
	struct event_facts facts = { .score = row->priority, .touchpoint = row->touchpoint };
	return outbox_emit(conn, type, data, facts, now);
}

/* The retry step after `attempts` failed attempts: the schedule's last step repeats. */
static int64_t retry_step(const struct npsd_config *cfg, int attempts)
{
	if (cfg->cb_nretry == 0)
		return 3600;
	size_t i = attempts > 0 ? (size_t)attempts - 1 : 0;
	return cfg->cb_retry[i < cfg->cb_nretry ? i : cfg->cb_nretry - 1];
}

static int set_text(char **field, const char *value)
{
	free(*field);
	*field = NULL;
	if (value && !(*field = strdup(value)))
		return -ENOMEM;
	return 0;
}

int callbacks_complete(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                       int64_t id, const struct complete_input *in, int64_t now)
{
	struct callback_row row;
	int r = load_claimed(conn, agent, id, now, &row);
	if (r < 0)
		return r;
	const char *o = in->outcome;
	bool retries = strcmp(o, "no_answer") == 0 || strcmp(o, "busy") == 0 || strcmp(o, "voicemail") == 0;
	bool wrong_number = strcmp(o, "wrong_number") == 0;
	bool reached =
	        strcmp(o, "reached") == 0 || strcmp(o, "declined") == 0 || strcmp(o, "do_not_call") == 0;
	const char *event = NULL;
	unclaim(&row);
	/* Outcome and notes are the latest attempt's; every attempt's are in the history. */
	if ((r = set_text(&row.outcome, o)) < 0 || (r = set_text(&row.notes, in->notes)) < 0)
		goto out;
	if (!row.first_attempt_at)
		row.first_attempt_at = now;
	/* A wrong number was a call made, so it counts like any unanswered one: the callback,
	 * its events and the console show `attempts` as the calls that did not reach them. */
	if (retries || wrong_number)
		row.attempts++;
	if (retries) {
		if (row.attempts >= row.max_attempts) {
			snprintf(row.status, sizeof row.status, "unreachable");
			event = "callback.unreachable";
		} else {
			snprintf(row.status, sizeof row.status, "queued");
			row.due_at = next_open(cfg, now + retry_step(cfg, row.attempts));
		}
	} else if (strcmp(o, "call_later") == 0) {
		snprintf(row.status, sizeof row.status, "queued");
		row.due_at = in->retry_at; /* the customer's own choice of time */
	} else if (wrong_number) {
		/* No retry can reach them on this number, whatever the count. */
		snprintf(row.status, sizeof row.status, "unreachable");
		event = "callback.unreachable";
	} else { /* reached, declined, do_not_call */
		snprintf(row.status, sizeof row.status, "done");
		event = "callback.completed";
	}
	if (!is_open(row.status))
		row.closed_at = now;
	if ((r = store_callback_save(conn, &row)) < 0)
		goto out;
	if ((r = store_callback_event_add(conn, id, row.customer_id, now, "outcome", agent->name, o,
	                                  in->notes)) < 0)
		goto out;
	for (size_t i = 0; i < in->nimprovements; i++) {
		r = store_improvement_add(conn, id, row.touchpoint, in->improvements[i].area,
		                          in->improvements[i].text, now);
		if (r < 0)
			goto out;
	}
	/* A call_later keeps the callback open: the cooldown starts when it closes. */
	if (!is_open(row.status) &&
	    (r = store_customer_callback_closed(conn, row.customer_id, reached ? now : 0,
	                                        strcmp(o, "do_not_call") == 0)) < 0)
		goto out;
	if (event)
		r = emit_closed(conn, event, &row, now);
out:
	callback_row_clear(&row);
	return r;
}

int callbacks_cancel(struct db_conn *conn, const struct principal *who, int64_t id, int64_t now)
{
	struct callback_row row;
	int r = store_callback_get(conn, id, &row);
	if (r < 0)
		return r;
	if (!is_open(row.status)) {
		r = CALLBACK_WRONG_STATE;
		goto out;
	}
	unclaim(&row);
	snprintf(row.status, sizeof row.status, "cancelled");
	row.closed_at = now;
	if ((r = store_callback_save(conn, &row)) < 0 ||
	    (r = store_customer_callback_closed(conn, row.customer_id, 0, false)) < 0)
		goto out;
	r = store_callback_event_add(conn, id, row.customer_id, now, "cancelled", who->name, NULL, NULL);
out:
	callback_row_clear(&row);
	return r;
}

struct tick {
	struct db_conn *conn;
	int64_t now;
	int changed;
};

static int on_lease_expired(const struct callback_row *row, void *arg)
{
	struct tick *t = arg;
	t->changed++;
	return store_callback_event_add(t->conn, row->id, row->customer_id, t->now, "lease_expired", NULL,
	                                NULL, NULL);
}

static int on_sla_breached(const struct callback_row *row, void *arg)
{
	struct tick *t = arg;
	t->changed++;
	return emit_closed(t->conn, "callback.sla_breached", row, t->now);
}

static int on_key_revoked(const struct callback_row *row, void *arg)
{
	struct tick *t = arg;
	t->changed++;
	return store_callback_event_add(t->conn, row->id, row->customer_id, t->now, "key_revoked", NULL, NULL,
	                                NULL);
}

int callbacks_release_key(struct db_conn *conn, int64_t key_id, int64_t now)
{
	struct tick t = { .conn = conn, .now = now };
	int r = store_callbacks_release_key(conn, key_id, on_key_revoked, &t);
	return r < 0 ? r : t.changed;
}

int callbacks_tick(struct db_conn *conn, int64_t now)
{
	struct tick t = { .conn = conn, .now = now };
	int r = store_callbacks_expire_leases(conn, now, on_lease_expired, &t);
	if (r == 0)
		r = store_callbacks_breach_sla(conn, now, on_sla_breached, &t);
	return r < 0 ? r : t.changed;
}
