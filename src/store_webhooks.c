#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/digests.h"
#include "npsd/webhooks.h"
#include "store_internal.h"

#define WEBHOOK_COLUMNS                                                                             \
	"id, url, format, events, filter, auth, secret, description, disabled_reason, active, "     \
	"created_at, updated_at, failing_since, digest, digest_at, digest_sent_until, digest_was, " \
	"digest_was_at, digest_first_from, digest_first_until"

void webhook_row_clear(struct webhook_row *row)
{
	if (!row)
		return;
	free(row->url);
	free(row->format);
	free(row->events);
	free(row->filter);
	free(row->auth);
	free(row->secret);
	free(row->description);
	free(row->disabled_reason);
	free(row->digest);
	free(row->digest_at);
	free(row->digest_was);
	free(row->digest_was_at);
	memset(row, 0, sizeof *row);
}

static int read_webhook(sqlite3_stmt *st, struct webhook_row *ret)
{
	int oom = 0;
	struct webhook_row row = {
		.id = sqlite3_column_int64(st, 0),
		.url = store_column_dup(st, 1, &oom),
		.format = store_column_dup(st, 2, &oom),
		.events = store_column_dup(st, 3, &oom),
		.filter = store_column_dup(st, 4, &oom),
		.auth = store_column_dup(st, 5, &oom),
		.secret = store_column_dup(st, 6, &oom),
		.description = store_column_dup(st, 7, &oom),
		.disabled_reason = store_column_dup(st, 8, &oom),
		.active = sqlite3_column_int(st, 9) != 0,
		.created_at = sqlite3_column_int64(st, 10),
		.updated_at = sqlite3_column_int64(st, 11),
		.failing_since = sqlite3_column_int64(st, 12),
		.digest = store_column_dup(st, 13, &oom),
		.digest_at = store_column_dup(st, 14, &oom),
		.digest_sent_until = sqlite3_column_int64(st, 15),
		.digest_was = store_column_dup(st, 16, &oom),
		.digest_was_at = store_column_dup(st, 17, &oom),
		.digest_first_from = sqlite3_column_int64(st, 18),
		.digest_first_until = sqlite3_column_int64(st, 19),
	};
	if (oom) {
		webhook_row_clear(&row);
		return -ENOMEM;
	}
	*ret = row;
	return 0;
}

/* Binds a JSON value as compact text; NULL binds SQL NULL. The text is freed by SQLite. */
static void bind_json(sqlite3_stmt *st, int idx, json_t *value)
{
	char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
	if (text)
		sqlite3_bind_text(st, idx, text, -1, free);
	else
		sqlite3_bind_null(st, idx);
}

static void bind_int64_or_null(sqlite3_stmt *st, int idx, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, idx, v);
	else
		sqlite3_bind_null(st, idx);
}

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *v)
{
	db_bind_text(st, idx, v && *v ? v : NULL);
}

/* Sets the marks of the digest of webhook id (digests.h); NULL clears them all. */
static int write_digest_marks(struct db_conn *conn, int64_t id, const struct digest_marks *m)
{
	static const char sql[] = "UPDATE webhooks SET digest_sent_until = ?1, digest_was = ?2, "
	                          "digest_was_at = ?3, digest_first_from = ?4, digest_first_until = ?5 "
	                          "WHERE id = ?6";
	static const struct digest_marks none = { 0 };
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	if (!m)
		m = &none;
	bind_int64_or_null(st, 1, m->sent_until);
	bind_text_or_null(st, 2, m->was);
	bind_text_or_null(st, 3, m->was_at);
	bind_int64_or_null(st, 4, m->first_until ? m->first_from : 0);
	bind_int64_or_null(st, 5, m->first_until);
	sqlite3_bind_int64(st, 6, id);
	return store_step_done(st);
}

/*
 * A digest set or switched on again starts with the period under way: its mark is the end
 * of the last period that ended, written in the transaction of the change. Left to the
 * alerts thread's next look, it was the last period that ended by then: a change a moment
 * before a period's end lost that period, and a change before a time npsd was down lost
 * every period that ended meanwhile, with no skipped_periods to say so.
 */
static int mark_digest_start(struct db_conn *conn, const struct webhook_row *row, int64_t now)
{
	struct digest_marks m = { 0 };
	int64_t start;
	if (digest_period(row->digest, row->digest_at, now, &start, &m.sent_until) < 0)
		m.sent_until = 0;
	return write_digest_marks(conn, row->id, &m);
}

/*
 * The marks of a digest after a patch (was: the row before it, row: after it). A new
 * digest, one switched on again, one that was off or is switched off in the patch, and one
 * an older npsd left without a mark start with the period under way. One that goes on
 * telling with another kind or time tells every hour once (digest_rescheduled()): the
 * periods after its mark that had ended are told, and the first digest by the new schedule
 * takes the hours from the end of them to the end of its period under way, neither two
 * digests nor none. Anything else (a description, a URL, the same time again) leaves them.
 */
static int mark_digest_change(struct db_conn *conn, const struct webhook_row *was,
                              const struct webhook_row *row, bool on_again, int64_t now)
{
	if (!row->digest)
		return was->digest ? write_digest_marks(conn, row->id, NULL) : 0;
	bool same = digest_same_schedule(was->digest, was->digest_at, row->digest, row->digest_at);
	bool going_on = was->active && row->active;
	if (on_again || !was->digest || !row->digest_sent_until || (!same && !going_on))
		return mark_digest_start(conn, row, now);
	if (same)
		return 0;
	struct digest_marks m = { .sent_until = row->digest_sent_until,
		                  .first_from = row->digest_first_from,
		                  .first_until = row->digest_first_until },
	                    next;
	snprintf(m.was, sizeof m.was, "%s", row->digest_was ? row->digest_was : "");
	snprintf(m.was_at, sizeof m.was_at, "%s", row->digest_was_at ? row->digest_was_at : "");
	if (digest_rescheduled(&m, was->digest, was->digest_at, row->digest, row->digest_at, now, &next) < 0)
		return mark_digest_start(conn, row, now);
	return write_digest_marks(conn, row->id, &next);
}

int store_webhook_insert(struct db_conn *conn, const struct webhook_input *in, const char *secret,
                         int64_t now, int64_t *ret_id)
{
	static const char sql[] =
	        "INSERT INTO webhooks (url, format, events, filter, auth, secret, description, active, "
	        "created_at, updated_at, digest, digest_at) VALUES (?, ?, coalesce(?, '[]'), ?, ?, ?, ?, ?, "
	        "?, ?, ?, ?)";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, in->url);
	db_bind_text(st, 2, in->format ? in->format : "standard");
	bind_json(st, 3, in->events_json);
	bind_json(st, 4, in->filter);
	db_bind_text(st, 5, in->auth);
	db_bind_text(st, 6, secret);
	db_bind_text(st, 7, in->description);
	sqlite3_bind_int(st, 8, in->active != 0);
	sqlite3_bind_int64(st, 9, now);
	sqlite3_bind_int64(st, 10, now);
	db_bind_text(st, 11, in->digest);
	db_bind_text(st, 12, in->digest_at);
	int r = store_step_done(st);
	if (r == 0)
		*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	if (r == 0 && in->digest) {
		/* Read back, as the API shows it: the mark goes by what was stored. */
		struct webhook_row row = { 0 }; /* cleared below even when the read failed */
		r = store_webhook_get(conn, *ret_id, &row);
		if (r == 0)
			r = mark_digest_start(conn, &row, now);
		webhook_row_clear(&row);
	}
	return r;
}

int store_webhook_get(struct db_conn *conn, int64_t id, struct webhook_row *ret)
{
	static const char sql[] = "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? read_webhook(st, ret) : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	db_done(st);
	return r;
}

struct webhook_visit {
	int (*fn)(const struct webhook_row *row, void *arg);
	void *arg;
};

static int visit_webhook(sqlite3_stmt *st, void *arg)
{
	struct webhook_visit *v = arg;
	struct webhook_row row;
	int r = read_webhook(st, &row);
	if (r == 0) {
		r = v->fn(&row, v->arg);
		webhook_row_clear(&row);
	}
	return r;
}

int store_webhook_each(struct db_conn *conn, int (*fn)(const struct webhook_row *row, void *arg), void *arg)
{
	static const char sql[] = "SELECT " WEBHOOK_COLUMNS " FROM webhooks ORDER BY id";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	struct webhook_visit v = { fn, arg };
	return store_rows(st, visit_webhook, &v);
}

int store_webhook_update(struct db_conn *conn, int64_t id, const struct webhook_input *in, int64_t now)
{
	/* One statement for any patch: a flag per field says whether to take the new value.
	 * Re-activating a webhook also forgets why it was disabled and its failure streak. */
	static const char sql[] =
	        "UPDATE webhooks SET "
	        "url = CASE WHEN ?1 THEN ?2 ELSE url END, format = CASE WHEN ?3 THEN ?4 ELSE format END, "
	        "events = CASE WHEN ?5 THEN coalesce(?6, '[]') ELSE events END, "
	        "filter = CASE WHEN ?7 THEN ?8 ELSE filter END, "
	        "auth = CASE WHEN ?9 THEN ?10 ELSE auth END, "
	        "description = CASE WHEN ?11 THEN ?12 ELSE description END, "
	        "active = CASE WHEN ?13 >= 0 THEN ?13 ELSE active END, "
	        /* Only switching it back on forgets: an "active": true sent to an active webhook
	         * (a client sending its whole state) must not reset the spell that disables it. */
	        "disabled_reason = CASE WHEN ?13 = 1 AND active = 0 THEN NULL ELSE disabled_reason END, "
	        "failing_since = CASE WHEN ?13 = 1 AND active = 0 THEN NULL ELSE failing_since END, "
	        "digest = CASE WHEN ?16 THEN ?17 ELSE digest END, "
	        "digest_at = CASE WHEN ?18 THEN ?19 ELSE digest_at END, "
	        "updated_at = ?14 WHERE id = ?15";
	/* The row as it was, for its digest's marks (mark_digest_change). */
	struct webhook_row was = { 0 }, row = { 0 }; /* cleared below even when a read failed */
	int r = store_webhook_get(conn, id, &was);
	if (r < 0)
		goto out;
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st) {
		r = -EIO;
		goto out;
	}
	sqlite3_bind_int(st, 1, in->has_url);
	db_bind_text(st, 2, in->url);
	sqlite3_bind_int(st, 3, in->has_format);
	db_bind_text(st, 4, in->format);
	sqlite3_bind_int(st, 5, in->has_events);
	bind_json(st, 6, in->events_json);
	sqlite3_bind_int(st, 7, in->has_filter);
	bind_json(st, 8, in->filter);
	sqlite3_bind_int(st, 9, in->has_auth);
	db_bind_text(st, 10, in->auth);
	sqlite3_bind_int(st, 11, in->has_description);
	db_bind_text(st, 12, in->description);
	sqlite3_bind_int(st, 13, in->active);
	sqlite3_bind_int64(st, 14, now);
	sqlite3_bind_int64(st, 15, id);
	sqlite3_bind_int(st, 16, in->has_digest);
	db_bind_text(st, 17, in->digest);
	sqlite3_bind_int(st, 18, in->has_digest_at);
	db_bind_text(st, 19, in->digest_at);
	r = store_step_done(st);
	if (r == 0 && sqlite3_changes(db_handle(conn)) == 0)
		r = -ENOENT;
	if (r == 0)
		r = store_webhook_get(conn, id, &row);
	/* Switched on again: the periods that ended while it was off are not told, however it
	 * was switched off. */
	if (r == 0)
		r = mark_digest_change(conn, &was, &row, in->active == 1 && !was.active, now);
out:
	webhook_row_clear(&was);
	webhook_row_clear(&row);
	return r;
}

int store_webhook_delete(struct db_conn *conn, int64_t id)
{
	static const char sql_attempts[] =
	        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE webhook_id = ?)";
	static const char sql_deliveries[] = "DELETE FROM deliveries WHERE webhook_id = ?";
	static const char sql_webhook[] = "DELETE FROM webhooks WHERE id = ?";
	const char *const steps[] = { sql_attempts, sql_deliveries, sql_webhook };
	for (size_t i = 0; i < 3; i++) {
		sqlite3_stmt *st = db_prepare(conn, steps[i]);
		if (!st)
			return -EIO;
		sqlite3_bind_int64(st, 1, id);
		int r = store_step_done(st);
		if (r < 0)
			return r;
	}
	return sqlite3_changes(db_handle(conn)) ? 0 : -ENOENT;
}

int store_webhook_disable(struct db_conn *conn, int64_t id, const char *reason, int64_t now)
{
	static const char sql[] =
	        "UPDATE webhooks SET active = 0, disabled_reason = ?, updated_at = ? WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, reason);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(st);
}

int store_webhook_failing(struct db_conn *conn, int64_t id, int64_t failed_at, int64_t spell_gap)
{
	static const char sql[] =
	        "UPDATE webhooks SET failing_since = CASE WHEN ?1 = 0 THEN NULL "
	        "WHEN failing_since IS NULL OR last_failed_at IS NULL OR ?1 - last_failed_at > ?3 THEN ?1 "
	        "ELSE failing_since END, last_failed_at = nullif(?1, 0) WHERE id = ?2";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, failed_at);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, spell_gap);
	return store_step_done(st);
}

#define DELIVERY_COLUMNS                                                                           \
	"d.id, d.event_id, d.webhook_id, d.status, d.attempts, d.next_attempt_at, d.lease_until, " \
	"d.created_at, d.updated_at, d.last_http_status, d.last_error, e.type"

void delivery_row_clear(struct delivery_row *row)
{
	if (!row)
		return;
	free(row->last_error);
	free(row->event_type);
	memset(row, 0, sizeof *row);
}

static int read_delivery(sqlite3_stmt *st, struct delivery_row *ret)
{
	int oom = 0;
	struct delivery_row row = {
		.id = sqlite3_column_int64(st, 0),
		.event_id = sqlite3_column_int64(st, 1),
		.webhook_id = sqlite3_column_int64(st, 2),
		.attempts = sqlite3_column_int(st, 4),
		.next_attempt_at = sqlite3_column_int64(st, 5),
		.lease_until = sqlite3_column_int64(st, 6),
		.created_at = sqlite3_column_int64(st, 7),
		.updated_at = sqlite3_column_int64(st, 8),
		.last_http_status = sqlite3_column_int(st, 9),
		.last_error = store_column_dup(st, 10, &oom),
		.event_type = store_column_dup(st, 11, &oom),
	};
	const char *status = db_column_text(st, 3);
	snprintf(row.status, sizeof row.status, "%s", status ? status : "");
	if (oom) {
		delivery_row_clear(&row);
		return -ENOMEM;
	}
	*ret = row;
	return 0;
}

struct delivery_visit {
	int (*fn)(const struct delivery_row *row, void *arg);
	void *arg;
};

static int visit_delivery(sqlite3_stmt *st, void *arg)
{
	struct delivery_visit *v = arg;
	struct delivery_row row;
	int r = read_delivery(st, &row);
	if (r == 0) {
		r = v->fn(&row, v->arg);
		delivery_row_clear(&row);
	}
	return r;
}

static int delivery_rows(sqlite3_stmt *st, int (*fn)(const struct delivery_row *row, void *arg), void *arg)
{
	struct delivery_visit v = { fn, arg };
	return store_rows(st, visit_delivery, &v);
}

int store_delivery_insert(struct db_conn *conn, int64_t event_id, int64_t webhook_id, int64_t now,
                          int64_t *ret_id)
{
	static const char sql[] = "INSERT INTO deliveries (event_id, webhook_id, status, next_attempt_at, "
	                          "created_at, updated_at) "
	                          "VALUES (?1, ?2, 'pending', ?3, ?3, ?3)";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, event_id);
	sqlite3_bind_int64(st, 2, webhook_id);
	sqlite3_bind_int64(st, 3, now);
	int r = store_step_done(st);
	if (r == 0 && ret_id)
		*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	return r;
}

int store_delivery_get(struct db_conn *conn, int64_t id, struct delivery_row *ret)
{
	static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries d JOIN events e "
	                          "ON e.id = d.event_id WHERE d.id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? read_delivery(st, ret) : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	db_done(st);
	return r;
}

int store_delivery_list(struct db_conn *conn, int64_t webhook_id, int64_t before_id, int limit,
                        int (*fn)(const struct delivery_row *row, void *arg), void *arg)
{
	static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM deliveries d JOIN events e "
	                          "ON e.id = d.event_id WHERE d.webhook_id = ?1 AND (?2 = 0 OR d.id < ?2) "
	                          "ORDER BY d.id DESC LIMIT ?3";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, webhook_id);
	sqlite3_bind_int64(st, 2, before_id);
	sqlite3_bind_int(st, 3, limit);
	return delivery_rows(st, fn, arg);
}

int store_delivery_retry(struct db_conn *conn, const struct delivery_row *row, int64_t now)
{
	if (strcmp(row->status, "delivered") == 0)
		return -EALREADY;
	/* Being sent right now: a second send beside it would be one the log never shows (the
	 * first finish finds its lease gone), and its result is a minute away at most. */
	if (strcmp(row->status, "pending") == 0 && row->lease_until > now)
		return -EBUSY;
	static const char sql[] =
	        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?1, lease_until = NULL, "
	        "updated_at = ?1 WHERE id = ?2";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, row->id);
	return store_step_done(st);
}

struct attempt_visit {
	int (*fn)(const struct attempt_row *row, void *arg);
	void *arg;
};

static int visit_attempt(sqlite3_stmt *st, void *arg)
{
	struct attempt_visit *v = arg;
	struct attempt_row row = {
		.at = sqlite3_column_int64(st, 0),
		.http_status = sqlite3_column_int(st, 1),
		.duration_ms = sqlite3_column_int(st, 2),
		.error = db_column_text(st, 3),
		.response_head = db_column_text(st, 4),
	};
	return v->fn(&row, v->arg);
}

int store_attempt_list(struct db_conn *conn, int64_t delivery_id, int limit,
                       int (*fn)(const struct attempt_row *row, void *arg), void *arg)
{
	/* The newest ones, oldest first: manual retries can take a delivery past any limit,
	 * and the attempt just asked for must be in view. */
	static const char sql[] =
	        "SELECT at, http_status, duration_ms, error, response_head FROM ("
	        "SELECT id, at, http_status, duration_ms, error, response_head FROM attempts "
	        "WHERE delivery_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, delivery_id);
	sqlite3_bind_int(st, 2, limit);
	struct attempt_visit v = { fn, arg };
	return store_rows(st, visit_attempt, &v);
}

int store_deliveries_claim(struct db_conn *conn, int64_t webhook_id, int64_t now, int64_t lease_until,
                           int limit, int (*fn)(const struct delivery_row *row, void *arg), void *arg)
{
	/* A lease left by a crashed npsd has run out, so its delivery is claimed again: a resend,
	 * never a loss. */
	static const char sql[] =
	        "UPDATE deliveries SET lease_until = ?1 WHERE id IN (SELECT id FROM deliveries "
	        "INDEXED BY deliveries_webhook_due WHERE webhook_id = ?4 AND status = 'pending' AND "
	        "next_attempt_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2) "
	        "ORDER BY next_attempt_at, id LIMIT ?3) "
	        "RETURNING id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until, "
	        "created_at, "
	        "updated_at, last_http_status, last_error, NULL";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, lease_until);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, limit);
	sqlite3_bind_int64(st, 4, webhook_id);
	return delivery_rows(st, fn, arg);
}

struct id_visit {
	int (*fn)(int64_t id, void *arg);
	void *arg;
};

static int visit_id(sqlite3_stmt *st, void *arg)
{
	struct id_visit *v = arg;
	return v->fn(sqlite3_column_int64(st, 0), v->arg);
}

int store_webhook_ids(struct db_conn *conn, int (*fn)(int64_t id, void *arg), void *arg)
{
	static const char sql[] = "SELECT id FROM webhooks ORDER BY id";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	struct id_visit v = { fn, arg };
	return store_rows(st, visit_id, &v);
}

int store_delivery_finish(struct db_conn *conn, int64_t id, int64_t lease_until, const char *status,
                          int attempts, int64_t next_attempt_at, const struct attempt_row *a, int64_t now)
{
	static const char sql_update[] =
	        "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, lease_until = NULL, "
	        "last_http_status = ?4, last_error = ?5, updated_at = ?6 WHERE id = ?7 AND lease_until = ?8";
	static const char sql_attempt[] =
	        "INSERT INTO attempts (delivery_id, at, http_status, duration_ms, error, response_head) "
	        "VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = db_prepare(conn, sql_update);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, status);
	sqlite3_bind_int(st, 2, attempts);
	sqlite3_bind_int64(st, 3, next_attempt_at);
	if (a->http_status)
		sqlite3_bind_int(st, 4, a->http_status);
	db_bind_text(st, 5, a->error);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, id);
	sqlite3_bind_int64(st, 8, lease_until);
	int r = store_step_done(st);
	if (r < 0)
		return r;
	if (sqlite3_changes(db_handle(conn)) == 0)
		return -ESTALE;
	st = db_prepare(conn, sql_attempt);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, a->at);
	if (a->http_status)
		sqlite3_bind_int(st, 3, a->http_status);
	sqlite3_bind_int(st, 4, a->duration_ms);
	db_bind_text(st, 5, a->error);
	db_bind_text(st, 6, a->response_head);
	return store_step_done(st);
}

int store_deliveries_next_due(struct db_conn *conn, int64_t *ret)
{
	/* A delivery in flight is claimable again only when its lease runs out. */
	static const char sql[] = "SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) "
	                          "FROM deliveries WHERE status = 'pending'";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	db_done(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

int store_event_get(struct db_conn *conn, int64_t id, char **ret_type, char **ret_payload,
                    int64_t *ret_created_at)
{
	static const char sql[] = "SELECT type, payload, created_at FROM events WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	if (r == 0) {
		int oom = 0;
		*ret_type = store_column_dup(st, 0, &oom);
		*ret_payload = store_column_dup(st, 1, &oom);
		*ret_created_at = sqlite3_column_int64(st, 2);
		if (oom) {
			free(*ret_type);
			free(*ret_payload);
			r = -ENOMEM;
		}
	}
	db_done(st);
	return r;
}

int store_delivery_counts(struct db_conn *conn, int64_t *ret_pending, int64_t *ret_delivered,
                          int64_t *ret_failed)
{
	/* Kept by triggers (sql/0012_delivery_counts.sql): counting the rows walked every
	 * delivery kept, 0.13-0.33 s at three million, at every scrape. */
	static const char sql[] = "SELECT (SELECT n FROM delivery_counts WHERE status = 'pending'), "
	                          "(SELECT n FROM delivery_counts WHERE status = 'delivered'), "
	                          "(SELECT n FROM delivery_counts WHERE status = 'failed')";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_pending = sqlite3_column_int64(st, 0);
		*ret_delivered = sqlite3_column_int64(st, 1);
		*ret_failed = sqlite3_column_int64(st, 2);
	}
	db_done(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

int store_webhook_digest_sent(struct db_conn *conn, int64_t id, int64_t was, int64_t first_until,
                              int64_t until)
{
	static const char sql[] =
	        "UPDATE webhooks SET digest_sent_until = ?1, "
	        /* Past the end of the first digest after a change: that change is told. */
	        "digest_was = CASE WHEN ?1 >= digest_first_until THEN NULL ELSE digest_was END, "
	        "digest_was_at = CASE WHEN ?1 >= digest_first_until THEN NULL ELSE digest_was_at END, "
	        "digest_first_from = CASE WHEN ?1 >= digest_first_until THEN NULL "
	        "ELSE digest_first_from END, "
	        "digest_first_until = CASE WHEN ?1 >= digest_first_until THEN NULL "
	        "ELSE digest_first_until END "
	        "WHERE id = ?2 AND active = 1 AND digest IS NOT NULL AND coalesce(digest_sent_until, 0) = ?3 "
	        "AND coalesce(digest_first_until, 0) = ?4";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, until);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_bind_int64(st, 3, was);
	sqlite3_bind_int64(st, 4, first_until);
	int r = store_step_done(st);
	if (r == 0 && sqlite3_changes(db_handle(conn)) == 0)
		r = -ESTALE;
	return r;
}

struct lowest_visit {
	int (*fn)(const struct lowest_answer *a, void *arg);
	void *arg;
};

static int visit_lowest(sqlite3_stmt *st, void *arg)
{
	struct lowest_visit *v = arg;
	struct lowest_answer a = {
		.id = sqlite3_column_int64(st, 0),
		.touchpoint = db_column_text(st, 1),
		.score = sqlite3_column_int(st, 2),
		.comment = db_column_text(st, 3),
		.answered_at = sqlite3_column_int64(st, 4),
		.customer_id = db_column_text(st, 5),
	};
	return v->fn(&a, v->arg);
}

int store_lowest_answers(struct db_conn *conn, int64_t from, int64_t to, const char *touchpoints_json,
                         int limit, int (*fn)(const struct lowest_answer *a, void *arg), void *arg)
{
	static const char sql[] =
	        "SELECT id, touchpoint, score, comment, answered_at, customer_id FROM surveys WHERE "
	        "answered_at >= ?1 "
	        "AND "
	        "answered_at < ?2 AND NOT excluded AND (?3 IS NULL OR touchpoint IN (SELECT value FROM "
	        "json_each(?3))) ORDER BY score, answered_at DESC, id DESC LIMIT ?4";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	db_bind_text(st, 3, touchpoints_json);
	sqlite3_bind_int(st, 4, limit);
	struct lowest_visit v = { fn, arg };
	return store_rows(st, visit_lowest, &v);
}
