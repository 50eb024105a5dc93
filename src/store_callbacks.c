#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/store.h"
#include "store_internal.h"

#define CALLBACK_COLUMNS                                                                         \
	"id, customer_id, status, priority, touchpoint, due_at, sla_deadline, sla_breached, "    \
	"attempts, max_attempts, claimed_by, claimed_key_id, lease_expires_at, outcome, notes, " \
	"created_at, first_attempt_at, closed_at"

void callback_row_clear(struct callback_row *row)
{
	if (!row)
		return;
	free(row->customer_id);
	free(row->touchpoint);
	free(row->claimed_by);
	free(row->outcome);
	free(row->notes);
	memset(row, 0, sizeof *row);
}

static int read_callback(sqlite3_stmt *st, struct callback_row *ret)
{
	int oom = 0;
	struct callback_row row = {
		.id = sqlite3_column_int64(st, 0),
		.customer_id = store_column_dup(st, 1, &oom),
		.priority = sqlite3_column_int(st, 3),
		.touchpoint = store_column_dup(st, 4, &oom),
		.due_at = sqlite3_column_int64(st, 5),
		.sla_deadline = sqlite3_column_int64(st, 6),
		.sla_breached = sqlite3_column_int(st, 7) != 0,
		.attempts = sqlite3_column_int(st, 8),
		.max_attempts = sqlite3_column_int(st, 9),
		.claimed_by = store_column_dup(st, 10, &oom),
		.claimed_key_id = sqlite3_column_int64(st, 11),
		.lease_expires_at = sqlite3_column_int64(st, 12),
		.outcome = store_column_dup(st, 13, &oom),
		.notes = store_column_dup(st, 14, &oom),
		.created_at = sqlite3_column_int64(st, 15),
		.first_attempt_at = sqlite3_column_int64(st, 16),
		.closed_at = sqlite3_column_int64(st, 17),
	};
	const char *status = db_column_text(st, 2);
	snprintf(row.status, sizeof row.status, "%s", status ? status : "");
	if (oom) {
		callback_row_clear(&row);
		return -ENOMEM;
	}
	*ret = row;
	return 0;
}

struct callback_visit {
	int (*fn)(const struct callback_row *row, void *arg);
	void *arg;
};

static int visit_callback(sqlite3_stmt *st, void *arg)
{
	struct callback_visit *v = arg;
	struct callback_row row;
	int r = read_callback(st, &row);
	if (r == 0) {
		r = v->fn ? v->fn(&row, v->arg) : 0;
		callback_row_clear(&row);
	}
	return r;
}

static int callback_rows(sqlite3_stmt *st, int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	struct callback_visit v = { fn, arg };
	return store_rows(st, visit_callback, &v);
}

int store_callback_get(struct db_conn *conn, int64_t id, struct callback_row *ret)
{
	static const char sql[] = "SELECT " CALLBACK_COLUMNS " FROM callbacks WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? read_callback(st, ret) : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	db_done(st);
	return r;
}

static void bind_optional_int64(sqlite3_stmt *st, int idx, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, idx, v);
	else
		sqlite3_bind_null(st, idx);
}

int store_callback_save(struct db_conn *conn, const struct callback_row *row)
{
	static const char sql[] =
	        "UPDATE callbacks SET status = ?, priority = ?, due_at = ?, sla_breached = ?, attempts = ?, "
	        "claimed_by = ?, claimed_key_id = ?, lease_expires_at = ?, outcome = ?, notes = ?, "
	        "first_attempt_at = ?, closed_at = ? WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, row->status);
	sqlite3_bind_int(st, 2, row->priority);
	sqlite3_bind_int64(st, 3, row->due_at);
	sqlite3_bind_int(st, 4, row->sla_breached);
	sqlite3_bind_int(st, 5, row->attempts);
	db_bind_text(st, 6, row->claimed_by);
	bind_optional_int64(st, 7, row->claimed_key_id);
	bind_optional_int64(st, 8, row->lease_expires_at);
	db_bind_text(st, 9, row->outcome);
	db_bind_text(st, 10, row->notes);
	bind_optional_int64(st, 11, row->first_attempt_at);
	bind_optional_int64(st, 12, row->closed_at);
	sqlite3_bind_int64(st, 13, row->id);
	return store_step_done(st);
}

#define CLAIM_SET                                                                         \
	"UPDATE callbacks SET status = 'claimed', claimed_by = ?1, claimed_key_id = ?2, " \
	"lease_expires_at = ?3, released_key_id = NULL, released_at = NULL WHERE id = "

/* Runs one of the claim statements: 0 with *ret_id, -ENOENT when it found none. */
static int claim_step(sqlite3_stmt *st, const char *touchpoint, const char *agent, int64_t key_id,
                      int64_t now, int64_t lease_until, int64_t *ret_id)
{
	db_bind_text(st, 1, agent);
	sqlite3_bind_int64(st, 2, key_id);
	sqlite3_bind_int64(st, 3, lease_until);
	sqlite3_bind_int64(st, 4, now);
	db_bind_text(st, 5, touchpoint);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_id = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
		db_done(st);
		return rc == SQLITE_DONE ? 0 : db_errno(rc);
	}
	db_done(st);
	return rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
}

int store_callback_claim(struct db_conn *conn, const char *touchpoint, const char *agent, int64_t key_id,
                         int64_t now, int64_t lease_until, int64_t skip_released_since, int64_t *ret_id)
{
	/* The queue index walks (status, priority, id) and carries due_at, so the first due
	 * row is found without touching the table for the ones not due. */
	static const char in_queue_order[] =
	        CLAIM_SET "(SELECT id FROM callbacks INDEXED BY callbacks_queue "
	                  "WHERE status = 'queued' AND due_at <= ?4 AND (?5 IS NULL OR touchpoint = ?5) "
	                  "AND NOT (released_key_id IS ?2 AND released_at >= ?6) "
	                  "ORDER BY priority, id LIMIT 1) RETURNING id";
	/* Only the caller's own recent releases can be left when the first found nothing. */
	static const char own_releases[] =
	        CLAIM_SET "(SELECT id FROM callbacks INDEXED BY callbacks_released "
	                  "WHERE released_key_id = ?2 AND status = 'queued' AND due_at <= ?4 "
	                  "AND (?5 IS NULL OR touchpoint = ?5) ORDER BY priority, id LIMIT 1) RETURNING id";
	sqlite3_stmt *st = db_prepare(conn, in_queue_order);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 6, skip_released_since);
	int r = claim_step(st, touchpoint, agent, key_id, now, lease_until, ret_id);
	if (r != -ENOENT)
		return r;
	if (!(st = db_prepare(conn, own_releases)))
		return -EIO;
	return claim_step(st, touchpoint, agent, key_id, now, lease_until, ret_id);
}

int store_callback_mark_released(struct db_conn *conn, int64_t id, int64_t key_id, int64_t now)
{
	static const char sql[] = "UPDATE callbacks SET released_key_id = ?1, released_at = ?2 WHERE id = ?3";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, key_id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(st);
}

/* A page at most of one status's callbacks that are due, walked on the queue index in
 * (priority, id) order from a bound on; or of those not yet due, found on their own index
 * (few: the index by due time reads only them) and sorted. */
#define LIST_ARM(status, later, index, due_test, bound)                                                   \
	"SELECT * FROM (SELECT " CALLBACK_COLUMNS ", " later " AS later FROM callbacks INDEXED BY " index \
	" WHERE status = '" status "' AND (?1 IS NULL OR ?1 = '" status "') AND " due_test                \
	" AND (?2 IS NULL OR touchpoint = ?2) AND (priority, id) > " bound                                \
	" ORDER BY priority, id LIMIT ?7)"
#define UNION_ALL " UNION ALL "
#define LIST_STATUS(status)                                                             \
	LIST_ARM(status, "0", "callbacks_queue", "due_at <= ?3 AND ?4 = 0", "(?5, ?6)") \
	UNION_ALL LIST_ARM(status, "1", "callbacks_status_due", "due_at > ?3", "(?8, ?9)")
#define LIST_EVERY_STATUS                                                                                   \
	LIST_STATUS("queued")                                                                               \
	UNION_ALL LIST_STATUS("claimed") UNION_ALL LIST_STATUS("done") UNION_ALL LIST_STATUS("unreachable") \
	        UNION_ALL LIST_STATUS("cancelled")

int store_callback_list(struct db_conn *conn, const struct callback_filter *f,
                        int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	/* "ORDER BY due_at > now, priority, id" over the table would sort every callback ever
	 * made for each page (0.1 s at a million, on an HTTP thread that ingest shares): the
	 * expression defeats the index. Instead each status's due and not-yet-due callbacks
	 * give a page of each at most, and only those are sorted. A status not asked for is a
	 * constant false that SQLite tests before walking its arm. MATERIALIZED keeps the
	 * sort in one place: SQLite would otherwise merge the ten arms, each with a sorter of
	 * its own (3 ms a page instead of 0.15). */
	static const char sql[] = "WITH page AS MATERIALIZED (" LIST_EVERY_STATUS ") "
	                          "SELECT * FROM page ORDER BY later, priority, id LIMIT ?7";
	int64_t phase = 0, due_from[2] = { INT64_MIN, INT64_MIN }, later_from[2] = { INT64_MIN, INT64_MIN };
	if (f->has_cursor) {
		phase = f->cursor_key[0];
		int64_t *from = phase == 0 ? due_from : later_from;
		from[0] = f->cursor_key[1];
		from[1] = f->cursor_key[2];
	}
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, f->status);
	db_bind_text(st, 2, f->touchpoint);
	sqlite3_bind_int64(st, 3, f->now);
	sqlite3_bind_int64(st, 4, phase);
	sqlite3_bind_int64(st, 5, due_from[0]);
	sqlite3_bind_int64(st, 6, due_from[1]);
	sqlite3_bind_int(st, 7, f->limit);
	sqlite3_bind_int64(st, 8, later_from[0]);
	sqlite3_bind_int64(st, 9, later_from[1]);
	return callback_rows(st, fn, arg);
}

int store_callback_event_add(struct db_conn *conn, int64_t callback_id, const char *customer_id, int64_t at,
                             const char *kind, const char *agent, const char *outcome, const char *notes)
{
	static const char sql[] =
	        "INSERT INTO callback_events (callback_id, customer_id, at, kind, agent, outcome, notes) "
	        "VALUES (?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, callback_id);
	db_bind_text(st, 2, customer_id);
	sqlite3_bind_int64(st, 3, at);
	db_bind_text(st, 4, kind);
	db_bind_text(st, 5, agent);
	db_bind_text(st, 6, outcome);
	db_bind_text(st, 7, notes);
	return store_step_done(st);
}

int store_improvement_add(struct db_conn *conn, int64_t callback_id, const char *touchpoint, const char *area,
                          const char *text, int64_t now)
{
	static const char sql[] = "INSERT INTO improvements (id, callback_id, touchpoint, area, text, "
	                          "created_at) VALUES (?, ?, ?, ?, ?, ?)";
	int r;
	sqlite3_stmt *st = store_prepare_insert(conn, "improvements", sql, &r);
	if (!st)
		return r;
	sqlite3_bind_int64(st, 2, callback_id);
	db_bind_text(st, 3, touchpoint);
	db_bind_text(st, 4, area);
	db_bind_text(st, 5, text);
	sqlite3_bind_int64(st, 6, now);
	return store_step_done(st);
}

int store_customer_callback_closed(struct db_conn *conn, const char *customer_id, int64_t reached_at,
                                   bool do_not_call)
{
	static const char sql[] =
	        "UPDATE customers SET open_callback_id = NULL, "
	        "last_reached_at = coalesce(?1, last_reached_at), do_not_call = max(do_not_call, ?2) "
	        "WHERE id = ?3";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	bind_optional_int64(st, 1, reached_at);
	sqlite3_bind_int(st, 2, do_not_call);
	db_bind_text(st, 3, customer_id);
	return store_step_done(st);
}

struct call_visit {
	int (*fn)(const struct call_event *ev, void *arg);
	void *arg;
};

static int visit_call(sqlite3_stmt *st, void *arg)
{
	struct call_visit *v = arg;
	struct call_event ev = {
		.callback_id = sqlite3_column_int64(st, 0),
		.at = sqlite3_column_int64(st, 1),
		.kind = db_column_text(st, 2),
		.agent = db_column_text(st, 3),
		.outcome = db_column_text(st, 4),
		.notes = db_column_text(st, 5),
	};
	return v->fn(&ev, v->arg);
}

int store_customer_calls(struct db_conn *conn, const char *customer_id, int limit,
                         int (*fn)(const struct call_event *ev, void *arg), void *arg)
{
	static const char sql[] =
	        "SELECT callback_id, at, kind, agent, outcome, notes FROM callback_events "
	        "WHERE customer_id = ? AND kind = 'outcome' ORDER BY at DESC, id DESC LIMIT ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, customer_id);
	sqlite3_bind_int(st, 2, limit);
	struct call_visit v = { fn, arg };
	return store_rows(st, visit_call, &v);
}

struct improvement_visit {
	int (*fn)(const char *area, const char *text, void *arg);
	void *arg;
};

static int visit_improvement(sqlite3_stmt *st, void *arg)
{
	struct improvement_visit *v = arg;
	return v->fn(db_column_text(st, 0), db_column_text(st, 1), v->arg);
}

int store_callback_improvements(struct db_conn *conn, int64_t callback_id,
                                int (*fn)(const char *area, const char *text, void *arg), void *arg)
{
	static const char sql[] = "SELECT area, text FROM improvements WHERE callback_id = ? ORDER BY id";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, callback_id);
	struct improvement_visit v = { fn, arg };
	return store_rows(st, visit_improvement, &v);
}

/* The scheduler's queries name their partial index: without statistics SQLite prefers
 * callbacks_queue (status = ?) and walks every queued callback, ~200 ms a tick with 270,000
 * queued, where the partial index answers in microseconds. INDEXED BY also makes a change
 * that stops the index from fitting fail at prepare time instead of silently scanning. */
/* Runs an UPDATE ... RETURNING of callbacks with ?1 = value; fn sees each row changed. */
static int callbacks_changed(struct db_conn *conn, const char *sql, int64_t value,
                             int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, value);
	return callback_rows(st, fn, arg);
}

int store_callbacks_expire_leases(struct db_conn *conn, int64_t now,
                                  int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	static const char sql[] =
	        "UPDATE callbacks INDEXED BY callbacks_lease SET status = 'queued', claimed_by = NULL, "
	        "claimed_key_id = NULL, lease_expires_at = NULL WHERE status = 'claimed' AND "
	        "lease_expires_at <= ? "
	        "RETURNING " CALLBACK_COLUMNS;
	return callbacks_changed(conn, sql, now, fn, arg);
}

int store_callbacks_release_key(struct db_conn *conn, int64_t key_id,
                                int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	/* The lease index holds the claimed callbacks alone: a few, however long the table. */
	static const char sql[] =
	        "UPDATE callbacks INDEXED BY callbacks_lease SET status = 'queued', claimed_by = NULL, "
	        "claimed_key_id = NULL, lease_expires_at = NULL WHERE status = 'claimed' AND "
	        "claimed_key_id = ? "
	        "RETURNING " CALLBACK_COLUMNS;
	return callbacks_changed(conn, sql, key_id, fn, arg);
}

int store_callbacks_breach_sla(struct db_conn *conn, int64_t now,
                               int (*fn)(const struct callback_row *row, void *arg), void *arg)
{
	static const char sql[] =
	        "UPDATE callbacks INDEXED BY callbacks_sla SET sla_breached = 1 WHERE sla_breached = 0 AND "
	        "first_attempt_at IS NULL "
	        "AND status IN ('queued', 'claimed') AND sla_deadline < ? RETURNING " CALLBACK_COLUMNS;
	return callbacks_changed(conn, sql, now, fn, arg);
}

int store_callbacks_next_deadline(struct db_conn *conn, int64_t *ret)
{
	static const char sql[] =
	        "SELECT min(coalesce((SELECT min(lease_expires_at) FROM callbacks INDEXED BY callbacks_lease "
	        "WHERE status = 'claimed'), 9223372036854775807), coalesce((SELECT min(sla_deadline) FROM "
	        "callbacks INDEXED BY callbacks_sla WHERE sla_breached = 0 "
	        "AND first_attempt_at IS NULL AND status IN ('queued', 'claimed')), 9223372036854775807))";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	db_done(st);
	if (rc != SQLITE_ROW)
		return db_errno(rc);
	*ret = v == INT64_MAX ? 0 : v;
	return 0;
}

/* The median of value over the callbacks created since ?1 that pass test: the middle value,
 * or the mean of the two middle ones. NULL when there are none. The index of creation
 * times is named: left to itself SQLite walks the status index of every closed callback
 * ever made instead. */
#define MEDIAN_SQL(value, test)                                                           \
	"WITH v AS (SELECT " value " AS d FROM callbacks INDEXED BY callbacks_created "   \
	"WHERE created_at >= ?1 AND " test "), n AS (SELECT count(*) AS c FROM v) "       \
	"SELECT avg(d) FROM (SELECT d FROM v ORDER BY d LIMIT 2 - (SELECT c FROM n) % 2 " \
	"OFFSET ((SELECT c FROM n) - 1) / 2)"

static double median_of(struct db_conn *conn, const char *sql, int64_t since)
{
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, since);
	double v = -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_double(st, 0);
	db_done(st);
	return v;
}

int store_callback_stats(struct db_conn *conn, int64_t now, struct callback_stats *ret)
{
	static const char sql_counts[] = "SELECT count(*) FILTER (WHERE status = 'queued'), "
	                                 "count(*) FILTER (WHERE status = 'queued' AND due_at <= ?1), "
	                                 "count(*) FILTER (WHERE status = 'claimed'), "
	                                 "min(due_at) FILTER (WHERE status = 'queued' AND due_at <= ?1) "
	                                 "FROM callbacks WHERE status IN ('queued', 'claimed')";
	/* The SLA counts a callback once its first call or its deadline has come; the reached
	 * share counts every call owed (a cancelled one was not: a test answer, say), reached
	 * or not yet, as a manager reads "low scores reached". */
	static const char sql_sla[] =
	        "SELECT count(*) FILTER (WHERE first_attempt_at IS NOT NULL OR sla_breached = 1), "
	        "count(*) FILTER (WHERE first_attempt_at <= sla_deadline), "
	        "count(*) FILTER (WHERE status <> 'cancelled'), "
	        "count(*) FILTER (WHERE status = 'done' AND outcome IN ('reached', 'declined', "
	        "'do_not_call')) "
	        "FROM callbacks INDEXED BY callbacks_created WHERE created_at >= ?1";
	static const char sql_first_call[] =
	        MEDIAN_SQL("first_attempt_at - created_at", "first_attempt_at IS NOT NULL");
	/* Closed by the loop: a cancelled callback (nobody called) is not one. */
	static const char sql_close[] =
	        MEDIAN_SQL("closed_at - created_at", "status IN ('done', 'unreachable')");
	/* A clock set wrong at the sender can put the answer after its own queueing: such a
	 * delay counts as none, not as a negative one that would pull the median down. */
	static const char sql_ingest[] =
	        MEDIAN_SQL("max(created_at - answered_at, 0)", "answered_at IS NOT NULL");
	struct callback_stats s = { 0 };
	int64_t since = now - 30 * 86400; /* the loop figures cover the last 30 days */
	sqlite3_stmt *st = db_prepare(conn, sql_counts);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		s.queued = sqlite3_column_int64(st, 0);
		s.due = sqlite3_column_int64(st, 1);
		s.claimed = sqlite3_column_int64(st, 2);
		s.oldest_due_age =
		        sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : now - sqlite3_column_int64(st, 3);
	}
	db_done(st);
	if (rc != SQLITE_ROW)
		return db_errno(rc);
	st = db_prepare(conn, sql_sla);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, since);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		s.sla_total = sqlite3_column_int64(st, 0);
		s.sla_met = sqlite3_column_int64(st, 1);
		s.low_scores = sqlite3_column_int64(st, 2);
		s.low_scores_reached = sqlite3_column_int64(st, 3);
	}
	db_done(st);
	if (rc != SQLITE_ROW)
		return db_errno(rc);
	s.median_seconds_to_first_call = median_of(conn, sql_first_call, since);
	s.median_seconds_to_close = median_of(conn, sql_close, since);
	s.median_seconds_ingest_to_queue = median_of(conn, sql_ingest, since);
	*ret = s;
	return 0;
}

int store_event_insert(struct db_conn *conn, const char *type, const char *payload, int64_t now,
                       int64_t *ret_id)
{
	static const char sql[] = "INSERT INTO events (id, type, payload, created_at) VALUES (?, ?, ?, ?)";
	int r;
	sqlite3_stmt *st = store_prepare_insert(conn, "events", sql, &r);
	if (!st)
		return r;
	db_bind_text(st, 2, type);
	db_bind_text(st, 3, payload);
	sqlite3_bind_int64(st, 4, now);
	int rc = sqlite3_step(st);
	db_done(st);
	if (rc != SQLITE_DONE)
		return db_errno(rc);
	if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	return 0;
}
