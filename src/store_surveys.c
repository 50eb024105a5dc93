#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/store.h"
#include "store_internal.h"

char *store_column_dup(sqlite3_stmt *st, int col, int *oom)
{
	const char *text = db_column_text(st, col);
	if (!text)
		return NULL;
	char *copy = strdup(text);
	if (!copy)
		*oom = 1;
	return copy;
}

int store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	db_done(st);
	return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

sqlite3_stmt *store_prepare_keyed(struct db_conn *conn, const char *sql, const char *text_key,
                                  int64_t int_key)
{
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return NULL;
	if (text_key)
		db_bind_text(st, 1, text_key);
	else
		sqlite3_bind_int64(st, 1, int_key);
	return st;
}

int store_rows(sqlite3_stmt *st, int (*visit)(sqlite3_stmt *st, void *arg), void *arg)
{
	int r = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((r = visit(st, arg)) != 0)
			break;
	if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = db_errno(rc);
	db_done(st);
	return r;
}

void customer_row_clear(struct customer_row *row)
{
	if (!row)
		return;
	free(row->id);
	free(row->name);
	free(row->phone);
	free(row->email);
	free(row->language);
	memset(row, 0, sizeof *row);
}

void survey_row_clear(struct survey_row *row)
{
	if (!row)
		return;
	free(row->response_id);
	free(row->source);
	free(row->customer_id);
	free(row->touchpoint);
	free(row->channel);
	free(row->comment);
	free(row->attributes);
	free(row->exclude_reason);
	memset(row, 0, sizeof *row);
}

#define CUSTOMER_COLUMNS "id, name, phone, email, language, do_not_call, last_reached_at, open_callback_id"

static int read_customer(sqlite3_stmt *st, struct customer_row *ret)
{
	int oom = 0;
	struct customer_row row = {
		.id = store_column_dup(st, 0, &oom),
		.name = store_column_dup(st, 1, &oom),
		.phone = store_column_dup(st, 2, &oom),
		.email = store_column_dup(st, 3, &oom),
		.language = store_column_dup(st, 4, &oom),
		.do_not_call = sqlite3_column_int(st, 5) != 0,
		.last_reached_at = sqlite3_column_int64(st, 6),
		.open_callback_id = sqlite3_column_int64(st, 7),
	};
	if (oom) {
		customer_row_clear(&row);
		return -ENOMEM;
	}
	*ret = row;
	return 0;
}

static void bind_customer(sqlite3_stmt *st, const struct customer_row *c, int64_t now)
{
	db_bind_text(st, 1, c->id);
	db_bind_text(st, 2, c->name);
	db_bind_text(st, 3, c->phone);
	db_bind_text(st, 4, c->email);
	db_bind_text(st, 5, c->language);
	if (c->open_callback_id)
		sqlite3_bind_int64(st, 6, c->open_callback_id);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_int64(st, 7, now);
}

int store_customer_insert(struct db_conn *conn, const struct customer_row *c, int64_t now)
{
	static const char sql[] =
	        "INSERT INTO customers (id, name, phone, email, language, open_callback_id, created_at, "
	        "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	bind_customer(st, c, now);
	return store_step_done(st);
}

int store_customer_update(struct db_conn *conn, const struct customer_row *c, int64_t now)
{
	static const char sql[] = "UPDATE customers SET name = ?2, phone = ?3, email = ?4, language = ?5, "
	                          "open_callback_id = ?6, updated_at = ?7 WHERE id = ?1";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	bind_customer(st, c, now);
	return store_step_done(st);
}

int store_customer_get(struct db_conn *conn, const char *id, struct customer_row *ret)
{
	static const char sql[] = "SELECT " CUSTOMER_COLUMNS " FROM customers WHERE id = ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, id);
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? read_customer(st, ret) : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	db_done(st);
	return r;
}

#define SURVEY_COLUMNS                                                                             \
	"id, response_id, source, customer_id, touchpoint, channel, score, comment, answered_at, " \
	"received_at, updated_at, consent, attributes, callback_id, excluded, exclude_reason"

static int read_survey(sqlite3_stmt *st, struct survey_row *ret)
{
	int oom = 0;
	struct survey_row row = {
		.id = sqlite3_column_int64(st, 0),
		.response_id = store_column_dup(st, 1, &oom),
		.source = store_column_dup(st, 2, &oom),
		.customer_id = store_column_dup(st, 3, &oom),
		.touchpoint = store_column_dup(st, 4, &oom),
		.channel = store_column_dup(st, 5, &oom),
		.score = sqlite3_column_int(st, 6),
		.comment = store_column_dup(st, 7, &oom),
		.answered_at = sqlite3_column_int64(st, 8),
		.received_at = sqlite3_column_int64(st, 9),
		.updated_at = sqlite3_column_int64(st, 10),
		.consent = sqlite3_column_int(st, 11) != 0,
		.attributes = store_column_dup(st, 12, &oom),
		.callback_id = sqlite3_column_int64(st, 13),
		.excluded = sqlite3_column_int(st, 14) != 0,
		.exclude_reason = store_column_dup(st, 15, &oom),
	};
	if (oom) {
		survey_row_clear(&row);
		return -ENOMEM;
	}
	*ret = row;
	return 0;
}

static int survey_one(struct db_conn *conn, const char *sql, const char *text_key, int64_t int_key,
                      struct survey_row *ret)
{
	sqlite3_stmt *st = store_prepare_keyed(conn, sql, text_key, int_key);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? read_survey(st, ret) : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	db_done(st);
	return r;
}

int store_survey_by_response_id(struct db_conn *conn, const char *response_id, struct survey_row *ret)
{
	static const char sql[] = "SELECT " SURVEY_COLUMNS " FROM surveys WHERE response_id = ?";
	return survey_one(conn, sql, response_id, 0, ret);
}

int store_survey_get(struct db_conn *conn, int64_t id, struct survey_row *ret)
{
	static const char sql[] = "SELECT " SURVEY_COLUMNS " FROM surveys WHERE id = ?";
	return survey_one(conn, sql, NULL, id, ret);
}

int store_survey_insert(struct db_conn *conn, const struct survey_input *in, const char *source,
                        const char *attributes, int64_t received_at, int64_t callback_id, int64_t *ret_id)
{
	static const char sql[] =
	        "INSERT INTO surveys (id, response_id, source, customer_id, touchpoint, channel, score, "
	        "comment, answered_at, received_at, consent, attributes, callback_id) "
	        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	int r;
	sqlite3_stmt *st = store_prepare_insert(conn, "surveys", sql, &r);
	if (!st)
		return r;
	db_bind_text(st, 2, in->response_id);
	db_bind_text(st, 3, source);
	db_bind_text(st, 4, in->customer_id);
	db_bind_text(st, 5, in->touchpoint);
	db_bind_text(st, 6, in->channel);
	sqlite3_bind_int(st, 7, in->score);
	db_bind_text(st, 8, in->comment);
	sqlite3_bind_int64(st, 9, in->answered_at);
	sqlite3_bind_int64(st, 10, received_at);
	sqlite3_bind_int(st, 11, in->consent);
	db_bind_text(st, 12, attributes);
	if (callback_id)
		sqlite3_bind_int64(st, 13, callback_id);
	int rc = sqlite3_step(st);
	db_done(st);
	if (rc != SQLITE_DONE)
		return db_errno(rc);
	*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	return 0;
}

int store_survey_complete(struct db_conn *conn, int64_t id, const char *comment, const char *attributes,
                          int64_t now)
{
	static const char sql[] =
	        "UPDATE surveys SET comment = coalesce(?1, comment), attributes = coalesce(?2, attributes), "
	        "updated_at = ?3 WHERE id = ?4";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, comment);
	db_bind_text(st, 2, attributes);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, id);
	return store_step_done(st);
}

static int survey_rows(sqlite3_stmt *st, int (*fn)(const struct survey_row *row, void *arg), void *arg);

/* The filters that narrow without an index of their own; a NULL parameter switches a test
 * off. */
#define SURVEY_LIST_FILTERS                                                           \
	"(?1 IS NULL OR touchpoint = ?1) AND (?3 IS NULL OR score <= ?3) AND "        \
	"(?4 IS NULL OR answered_at >= ?4) AND (?5 IS NULL OR answered_at < ?5) AND " \
	"(?9 IS NULL OR channel = ?9) AND (?10 IS NULL OR score >= ?10) "

static int newest_survey_below(struct db_conn *conn, int64_t before_id, int64_t *ret_id)
{
	static const char sql[] = "SELECT max(id) FROM surveys WHERE id < ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, before_id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret_id = sqlite3_column_int64(st, 0); /* NULL, no survey below, reads as 0 */
	db_done(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

int store_survey_list(struct db_conn *conn, const struct survey_filter *f,
                      int (*fn)(const struct survey_row *row, void *arg), void *arg, int64_t *ret_resume)
{
	/* Two statements, so that each can use its index: "?2 IS NULL OR customer_id = ?2" would
	 * make SQLite read the whole table for every page (0.2 s at two million answers, on an
	 * HTTP thread that ingest shares). A customer's answers come from their index; the rest
	 * walk the ids down from the cursor, and stop at the page's end or at the end of the
	 * window of f->scan_ids ids, whichever comes first: a filter that few answers pass
	 * would otherwise read the whole table for one page just the same. */
	static const char sql_customer[] =
	        "SELECT " SURVEY_COLUMNS " FROM surveys INDEXED BY surveys_customer_time WHERE "
	        "customer_id = ?2 AND id < ?6 AND " SURVEY_LIST_FILTERS "ORDER BY id DESC LIMIT ?7";
	static const char sql_all[] =
	        "SELECT " SURVEY_COLUMNS " FROM surveys WHERE id < ?6 AND id >= ?8 AND " SURVEY_LIST_FILTERS
	        "ORDER BY id DESC LIMIT ?7";
	int64_t before = f->before_id ? f->before_id : INT64_MAX, window_end = 1;
	*ret_resume = 0;
	if (!f->customer_id) {
		int64_t newest = 0;
		int r = newest_survey_below(conn, before, &newest);
		if (r < 0 || newest == 0)
			return r;
		/* The window starts at the newest answer there is, not at the cursor: ids that
		 * were never used or are gone cost nothing to pass over. */
		if (f->scan_ids > 0 && newest > f->scan_ids)
			window_end = newest - f->scan_ids + 1;
	}
	sqlite3_stmt *st = db_prepare(conn, f->customer_id ? sql_customer : sql_all);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, f->touchpoint);
	db_bind_text(st, 2, f->customer_id);
	if (f->max_score >= 0)
		sqlite3_bind_int(st, 3, f->max_score);
	db_bind_text(st, 9, f->channel);
	if (f->min_score >= 0)
		sqlite3_bind_int(st, 10, f->min_score);
	if (f->from != SURVEY_TIME_OPEN)
		sqlite3_bind_int64(st, 4, f->from);
	if (f->to != SURVEY_TIME_OPEN)
		sqlite3_bind_int64(st, 5, f->to);
	sqlite3_bind_int64(st, 6, before);
	sqlite3_bind_int(st, 7, f->limit);
	if (!f->customer_id)
		sqlite3_bind_int64(st, 8, window_end);
	int r = survey_rows(st, fn, arg);
	if (r == 0 && window_end > 1)
		*ret_resume = window_end;
	return r;
}

static int read_brief(struct db_conn *conn, const char *sql, const char *text_key, int64_t int_key,
                      struct callback_brief *ret)
{
	sqlite3_stmt *st = store_prepare_keyed(conn, sql, text_key, int_key);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret->id = sqlite3_column_int64(st, 0);
		snprintf(ret->status, sizeof ret->status, "%s", db_column_text(st, 1));
		ret->due_at = sqlite3_column_int64(st, 2);
		ret->priority = sqlite3_column_int(st, 3);
	}
	db_done(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
}

int store_callback_brief(struct db_conn *conn, int64_t id, struct callback_brief *ret)
{
	static const char sql[] = "SELECT id, status, due_at, priority FROM callbacks WHERE id = ?";
	return read_brief(conn, sql, NULL, id, ret);
}

int store_callback_insert(struct db_conn *conn, const char *customer_id, int priority, const char *touchpoint,
                          int64_t due_at, int64_t sla_deadline, int max_attempts, int64_t answered_at,
                          int64_t now, int64_t *ret_id)
{
	static const char sql[] =
	        "INSERT INTO callbacks (id, customer_id, status, priority, touchpoint, due_at, sla_deadline, "
	        "max_attempts, answered_at, created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)";
	int r;
	sqlite3_stmt *st = store_prepare_insert(conn, "callbacks", sql, &r);
	if (!st)
		return r;
	db_bind_text(st, 2, customer_id);
	sqlite3_bind_int(st, 3, priority);
	db_bind_text(st, 4, touchpoint);
	sqlite3_bind_int64(st, 5, due_at);
	sqlite3_bind_int64(st, 6, sla_deadline);
	sqlite3_bind_int(st, 7, max_attempts);
	sqlite3_bind_int64(st, 8, answered_at);
	sqlite3_bind_int64(st, 9, now);
	int rc = sqlite3_step(st);
	db_done(st);
	if (rc != SQLITE_DONE)
		return db_errno(rc);
	*ret_id = sqlite3_last_insert_rowid(db_handle(conn));
	return 0;
}

int store_callback_join(struct db_conn *conn, int64_t id, int score, const char *touchpoint)
{
	static const char sql[] =
	        "UPDATE callbacks SET priority = ?1, touchpoint = ?2 WHERE id = ?3 AND priority > ?1";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, score);
	db_bind_text(st, 2, touchpoint);
	sqlite3_bind_int64(st, 3, id);
	return store_step_done(st);
}

struct survey_visit {
	int (*fn)(const struct survey_row *row, void *arg);
	void *arg;
};

static int visit_survey(sqlite3_stmt *st, void *arg)
{
	struct survey_visit *v = arg;
	struct survey_row row;
	int r = read_survey(st, &row);
	if (r == 0) {
		r = v->fn(&row, v->arg);
		survey_row_clear(&row);
	}
	return r;
}

static int survey_rows(sqlite3_stmt *st, int (*fn)(const struct survey_row *row, void *arg), void *arg)
{
	struct survey_visit v = { fn, arg };
	return store_rows(st, visit_survey, &v);
}

int store_callback_surveys(struct db_conn *conn, const char *customer_id, int64_t callback_id,
                           int (*fn)(const struct survey_row *row, void *arg), void *arg)
{
	/* Through the customer's index: a callback's answers are all its customer's. */
	static const char sql[] = "SELECT " SURVEY_COLUMNS " FROM surveys "
	                          "WHERE customer_id = ? AND callback_id = ? ORDER BY answered_at, id";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, customer_id);
	sqlite3_bind_int64(st, 2, callback_id);
	return survey_rows(st, fn, arg);
}

int store_customer_surveys(struct db_conn *conn, const char *customer_id, int64_t callback_id, int limit,
                           int (*fn)(const struct survey_row *row, void *arg), void *arg)
{
	static const char sql[] = "SELECT " SURVEY_COLUMNS " FROM surveys "
	                          "WHERE customer_id = ? AND callback_id IS NOT ? "
	                          "ORDER BY answered_at DESC, id DESC LIMIT ?";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, customer_id);
	sqlite3_bind_int64(st, 2, callback_id);
	sqlite3_bind_int(st, 3, limit);
	return survey_rows(st, fn, arg);
}

int store_survey_set_excluded(struct db_conn *conn, int64_t id, bool excluded, const char *reason)
{
	static const char sql[] = "UPDATE surveys SET excluded = ?1, exclude_reason = ?2 WHERE id = ?3";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	sqlite3_bind_int(st, 1, excluded);
	db_bind_text(st, 2, excluded ? reason : NULL);
	sqlite3_bind_int64(st, 3, id);
	int r = store_step_done(st);
	if (r == 0 && sqlite3_changes(db_handle(conn)) == 0)
		r = -ENOENT;
	return r;
}

int store_newest_answer_received(struct db_conn *conn, int64_t *ret)
{
	static const char sql[] = "SELECT received_at FROM surveys ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	*ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	db_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
}
