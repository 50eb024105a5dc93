/* SQL for retention and erasure: what `npsctl purge` and `npsctl erase` delete, and the ids
 * their deletes must not free for reuse (store_prepare_insert). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/store.h"
#include "store_internal.h"

/* Runs a DELETE (or UPDATE) with ?1 bound to text (when not NULL) or else to n1, and ?2
 * to n2 (when the statement has it), adding the rows it changed to *count. */
static int change_rows(struct db_conn *conn, const char *sql, const char *text, int64_t n1, int64_t n2,
                       int64_t *count)
{
	sqlite3_stmt *st = store_prepare_keyed(conn, sql, text, n1);
	if (!st)
		return -EIO;
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, n2);
	int r = store_step_done(st);
	if (r == 0)
		*count += sqlite3_changes(db_handle(conn));
	return r;
}

/* ---- ids after deletes (sql/0010) ---- */

#define ID_TABLES 4

static const struct id_table {
	const char *name;
	const char *sql_top; /* the table's highest id */
} id_tables[ID_TABLES] = {
	{ "surveys", "SELECT max(id) FROM surveys" },
	{ "callbacks", "SELECT max(id) FROM callbacks" },
	{ "events", "SELECT max(id) FROM events" },
	{ "improvements", "SELECT max(id) FROM improvements" },
};

/* The table's highest id, 0 when it is empty. */
static int table_top(struct db_conn *conn, const struct id_table *t, int64_t *ret_top)
{
	sqlite3_stmt *st = db_prepare(conn, t->sql_top);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	*ret_top = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0; /* NULL reads as 0 */
	db_done(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

/* The id a new row of table must take (see store_prepare_insert): 0 for SQLite's choice. */
static int next_id(struct db_conn *conn, const char *table, int64_t *ret_id)
{
	/* Nearly always there is no note: one look into an empty table. (Not DELETE … RETURNING,
	 * which gathers its rows in a temporary table each time.) */
	static const char sql_note[] = "SELECT max_id FROM id_floors WHERE name = ?";
	static const char sql_drop[] = "DELETE FROM id_floors WHERE name = ?";
	*ret_id = 0;
	sqlite3_stmt *st = db_prepare(conn, sql_note);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, table);
	int rc = sqlite3_step(st);
	int64_t floor = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	db_done(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_errno(rc);
	const struct id_table *t = id_tables;
	while (strcmp(t->name, table) != 0)
		t++;
	int64_t top;
	int r = table_top(conn, t, &top);
	if (r < 0)
		return r;
	st = db_prepare(conn, sql_drop);
	if (!st)
		return -EIO;
	db_bind_text(st, 1, table);
	r = store_step_done(st);
	if (r < 0)
		return r;
	*ret_id = floor >= top ? floor + 1 : 0;
	return 0;
}

sqlite3_stmt *store_prepare_insert(struct db_conn *conn, const char *table, const char *sql, int *ret_error)
{
	int64_t id;
	*ret_error = next_id(conn, table, &id);
	if (*ret_error < 0)
		return NULL;
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st) {
		*ret_error = -EIO;
		return NULL;
	}
	if (id)
		sqlite3_bind_int64(st, 1, id);
	return st;
}

/* Each table's highest id, read before rows are deleted (see note_lowered_tops). */
static int read_tops(struct db_conn *conn, int64_t tops[ID_TABLES])
{
	int r = 0;
	for (size_t i = 0; i < ID_TABLES && r == 0; i++)
		r = table_top(conn, &id_tables[i], &tops[i]);
	return r;
}

/* After the deletes: notes the highest id each table had whose highest they lowered, so
 * that none of its ids is handed out again (see store_prepare_insert). Deletes that took
 * no table's newest row note nothing. */
static int note_lowered_tops(struct db_conn *conn, const int64_t before[ID_TABLES])
{
	static const char sql[] = "INSERT INTO id_floors (name, max_id) VALUES (?, ?) "
	                          "ON CONFLICT (name) DO UPDATE SET max_id = max(max_id, excluded.max_id)";
	for (size_t i = 0; i < ID_TABLES; i++) {
		int64_t now;
		int r = table_top(conn, &id_tables[i], &now);
		if (r < 0)
			return r;
		if (now >= before[i])
			continue;
		sqlite3_stmt *st = db_prepare(conn, sql);
		if (!st)
			return -EIO;
		db_bind_text(st, 1, id_tables[i].name);
		sqlite3_bind_int64(st, 2, before[i]);
		if ((r = store_step_done(st)) < 0)
			return r;
	}
	return 0;
}

/* ---- purge ---- */

/* An answer goes when it is older than the cutoff and so is its callback, closed: a call
 * still owed keeps the answers behind it. The walk goes on after the last answer a batch
 * deleted ((?3, ?4): answered_at, id), so the answers it keeps are passed over once, not
 * in every batch. */
#define PURGE_SURVEYS                                                                                     \
	"SELECT s.id FROM surveys s INDEXED BY surveys_answered WHERE s.answered_at < ?1 AND "            \
	"(s.answered_at, s.id) > (?3, ?4) AND (s.callback_id IS NULL OR EXISTS (SELECT 1 FROM callbacks " \
	"c WHERE c.id = s.callback_id AND c.status IN ('done', 'unreachable', 'cancelled') AND "          \
	"c.created_at < ?1)) ORDER BY s.answered_at, s.id LIMIT ?2"
/* A closed callback goes when it is older than the cutoff and no answer behind it is left
 * (answers are found by their customer's index, not a scan). Deterministic order: the
 * three statements that delete its parts must pick the same callbacks. */
#define PURGE_CALLBACKS                                                                                    \
	"SELECT id FROM callbacks INDEXED BY callbacks_created WHERE created_at < ?1 AND status IN "       \
	"('done', 'unreachable', 'cancelled') AND NOT EXISTS (SELECT 1 FROM surveys s WHERE "              \
	"s.customer_id = callbacks.customer_id AND s.callback_id = callbacks.id) ORDER BY created_at, id " \
	"LIMIT ?2"
/* Deliveries are made in the transaction of their event, so both age together. Ids grow
 * with time: the oldest ids are looked at, not every row for its age (a scan of the whole
 * table, in the writer's transaction, whenever nothing is old enough). */
#define OLDEST(table)                                                 \
	"SELECT id FROM " table " WHERE id IN (SELECT id FROM " table \
	" ORDER BY id LIMIT ?2) AND created_at < ?1"
#define PURGE_DELIVERIES OLDEST("deliveries")

struct customer_ids {
	char **ids;
	size_t n, cap;
	struct purge_cursor *cursor; /* moved past every answer deleted */
};

static void customer_ids_free(struct customer_ids *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->ids[i]);
	free(c->ids);
}

static int collect_customer(sqlite3_stmt *st, void *arg)
{
	struct customer_ids *c = arg;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		char **ids = realloc(c->ids, cap * sizeof *ids);
		if (!ids)
			return -ENOMEM;
		c->ids = ids;
		c->cap = cap;
	}
	int oom = 0;
	char *id = store_column_dup(st, 0, &oom);
	if (oom || !id)
		return -ENOMEM;
	c->ids[c->n++] = id;
	int64_t at = sqlite3_column_int64(st, 1), survey_id = sqlite3_column_int64(st, 2);
	if (at > c->cursor->answered_at ||
	    (at == c->cursor->answered_at && survey_id > c->cursor->survey_id)) {
		c->cursor->answered_at = at;
		c->cursor->survey_id = survey_id;
	}
	return 0;
}

/* Customers whose last answer went, and whom no open call needs: gone, but one who asked
 * not to be called keeps the row and its mark (without contact details), or their next
 * answer would queue a call again. */
static int purge_customers(struct db_conn *conn, const struct customer_ids *ids, struct purge_counts *c)
{
	static const char sql_delete[] =
	        "DELETE FROM customers WHERE id = ?1 AND do_not_call = 0 AND open_callback_id IS NULL "
	        "AND NOT EXISTS (SELECT 1 FROM surveys WHERE customer_id = ?1)";
	static const char sql_scrub[] =
	        "UPDATE customers SET name = NULL, phone = NULL, email = NULL, language = NULL WHERE id = ?1 "
	        "AND do_not_call = 1 AND open_callback_id IS NULL AND NOT EXISTS (SELECT 1 FROM surveys "
	        "WHERE customer_id = ?1) AND coalesce(name, phone, email, language) IS NOT NULL";
	for (size_t i = 0; i < ids->n; i++) {
		int r = change_rows(conn, sql_delete, ids->ids[i], 0, 0, &c->customers);
		if (r == 0)
			r = change_rows(conn, sql_scrub, ids->ids[i], 0, 0, &c->customers_kept_do_not_call);
		if (r < 0)
			return r;
	}
	return 0;
}

/* secure_delete zeroes what a delete frees, in the page and in the pages it frees whole,
 * so the words of a purged row cannot be read back from the file. On around a purge's
 * deletes only, then back to what the connection had: the writer's other work is ingest,
 * which keeps the library's default (Debian builds SQLite with it on, upstream's is off),
 * not a cost this adds to every answer. */
static int secure_delete_get(struct db_conn *conn, bool *ret_on)
{
	static const char sql[] = "PRAGMA secure_delete";
	sqlite3_stmt *st = db_prepare(conn, sql);
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	*ret_on = rc == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
	db_done(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

static int secure_delete_set(struct db_conn *conn, bool on)
{
	const char *sql = on ? "PRAGMA secure_delete = ON" : "PRAGMA secure_delete = OFF";
	return sqlite3_exec(db_handle(conn), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int purge_batch(struct db_conn *conn, int64_t cutoff, int limit, struct purge_cursor *cursor,
                       struct purge_counts *c)
{
	static const char sql_surveys[] =
	        "DELETE FROM surveys WHERE id IN (" PURGE_SURVEYS ") RETURNING customer_id, answered_at, id";
	static const char sql_improvements[] =
	        "DELETE FROM improvements WHERE callback_id IN (" PURGE_CALLBACKS ")";
	static const char sql_callback_events[] =
	        "DELETE FROM callback_events WHERE callback_id IN (" PURGE_CALLBACKS ")";
	static const char sql_callbacks[] = "DELETE FROM callbacks WHERE id IN (" PURGE_CALLBACKS ")";
	static const char sql_attempts[] = "DELETE FROM attempts WHERE delivery_id IN (" PURGE_DELIVERIES ")";
	static const char sql_deliveries[] = "DELETE FROM deliveries WHERE id IN (" PURGE_DELIVERIES ")";
	static const char sql_events[] = "DELETE FROM events WHERE id IN (" OLDEST("events") ")";
	struct purge_cursor moved = *cursor;
	struct customer_ids customers = { .cursor = &moved };
	int64_t tops[ID_TABLES];
	int r = read_tops(conn, tops);
	if (r < 0)
		return r;
	sqlite3_stmt *st = db_prepare(conn, sql_surveys);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, cutoff);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int64(st, 3, cursor->answered_at);
	sqlite3_bind_int64(st, 4, cursor->survey_id);
	r = store_rows(st, collect_customer, &customers);
	if (r == 0)
		c->surveys += (int64_t)customers.n;
	if (r == 0)
		r = change_rows(conn, sql_improvements, NULL, cutoff, limit, &c->improvements);
	if (r == 0)
		r = change_rows(conn, sql_callback_events, NULL, cutoff, limit, &c->callback_events);
	if (r == 0)
		r = change_rows(conn, sql_callbacks, NULL, cutoff, limit, &c->callbacks);
	if (r == 0)
		r = purge_customers(conn, &customers, c);
	int64_t deliveries = 0;
	if (r == 0)
		r = change_rows(conn, sql_attempts, NULL, cutoff, limit, &c->attempts);
	if (r == 0)
		r = change_rows(conn, sql_deliveries, NULL, cutoff, limit, &deliveries);
	c->deliveries += deliveries;
	/* An event goes only once every old delivery has: none may point at a missing event. */
	if (r == 0 && deliveries < limit)
		r = change_rows(conn, sql_events, NULL, cutoff, limit, &c->events);
	customer_ids_free(&customers);
	if (r == 0)
		r = note_lowered_tops(conn, tops);
	if (r == 0)
		*cursor = moved; /* a batch rolled back deleted nothing: its walk starts again */
	return r;
}

int store_purge_batch(struct db_conn *conn, int64_t cutoff, int limit, struct purge_cursor *cursor,
                      struct purge_counts *c, char *ret_why, size_t why_len)
{
	bool was;
	int r = secure_delete_get(conn, &was);
	if (r == 0 && !was)
		r = secure_delete_set(conn, true);
	if (r < 0)
		return r;
	r = purge_batch(conn, cutoff, limit, cursor, c);
	if (r < 0 && ret_why)
		db_last_error(conn, ret_why, why_len);
	int restored = was ? 0 : secure_delete_set(conn, false);
	return r < 0 ? r : restored;
}

/* ---- erase ---- */

/* The events that carry the customer: by their payload's customer.id, and the digests
 * that quote one of their answers among the lowest scores (a digest goes whole: it would
 * otherwise keep their words). instr() first skips most payloads without parsing them. */
#define ERASE_EVENTS                                                                             \
	"SELECT id FROM events WHERE instr(payload, ?2) > 0 AND json_valid(payload) AND "        \
	"(json_extract(payload, '$.customer.id') = ?1 OR (type = 'digest' AND EXISTS (SELECT 1 " \
	"FROM json_each(payload, '$.lowest') WHERE json_extract(value, '$.customer_id') = ?1)))"

int store_erase_customer(struct db_conn *conn, const char *customer_id, const char *customer_id_json,
                         struct purge_counts *c)
{
	static const char sql_attempts[] = "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM "
	                                   "deliveries WHERE event_id IN (" ERASE_EVENTS "))";
	static const char sql_deliveries[] = "DELETE FROM deliveries WHERE event_id IN (" ERASE_EVENTS ")";
	static const char sql_events[] = "DELETE FROM events WHERE id IN (" ERASE_EVENTS ")";
	static const char sql_improvements[] = "DELETE FROM improvements WHERE callback_id IN (SELECT id "
	                                       "FROM callbacks WHERE customer_id = ?1)";
	static const char sql_callback_events[] = "DELETE FROM callback_events WHERE customer_id = ?1";
	static const char sql_surveys[] = "DELETE FROM surveys WHERE customer_id = ?1";
	static const char sql_callbacks[] = "DELETE FROM callbacks WHERE customer_id = ?1";
	static const char sql_customer[] = "DELETE FROM customers WHERE id = ?1";
	static const struct {
		const char *sql;
		size_t count; /* offset in struct purge_counts */
	} steps[] = {
		{ sql_attempts, offsetof(struct purge_counts, attempts) },
		{ sql_deliveries, offsetof(struct purge_counts, deliveries) },
		{ sql_events, offsetof(struct purge_counts, events) },
		{ sql_improvements, offsetof(struct purge_counts, improvements) },
		{ sql_callback_events, offsetof(struct purge_counts, callback_events) },
		{ sql_surveys, offsetof(struct purge_counts, surveys) },
		{ sql_callbacks, offsetof(struct purge_counts, callbacks) },
		{ sql_customer, offsetof(struct purge_counts, customers) },
	};
	/* Erased means unreadable in the file too: freed pages are overwritten with zeros. */
	int r = secure_delete_set(conn, true);
	if (r < 0)
		return r;
	int64_t tops[ID_TABLES];
	r = read_tops(conn, tops);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		sqlite3_stmt *st = db_prepare(conn, steps[i].sql);
		if (!st)
			return -EIO;
		db_bind_text(st, 1, customer_id);
		if (sqlite3_bind_parameter_count(st) >= 2)
			db_bind_text(st, 2, customer_id_json);
		r = store_step_done(st);
		if (r < 0)
			return r;
		*(int64_t *)((char *)c + steps[i].count) += sqlite3_changes(db_handle(conn));
	}
	return note_lowered_tops(conn, tops);
}
