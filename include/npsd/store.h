#ifndef NPSD_STORE_H
#define NPSD_STORE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/auth.h"
#include "npsd/db.h"
#include "npsd/reports.h"
#include "npsd/validate.h"

/*
 * The storage functions: every SQL statement of npsd lives behind these (store_*.c), so a
 * second backend can replace them. They return 0 or a negative errno; -ENOENT for "no such
 * row". Strings they return in structs are malloc'ed and owned by the struct (free with the
 * matching *_clear function); strings they take are borrowed for the call.
 */

/* ---- api keys ---- */
struct key_row {
	int64_t id;
	enum role role;
	char name[KEY_NAME_MAX + 1];
	uint8_t hash[TOKEN_HASH_LEN];
	int64_t created_at, revoked_at; /* revoked_at 0 when live */
};
int store_key_insert(struct db_conn *conn, const char *name, enum role role,
                     const uint8_t hash[TOKEN_HASH_LEN], int64_t now, int64_t *ret_id);
/* 0 when revoked now, -ENOENT when there is no such key, -EALREADY when it already was. */
int store_key_revoke(struct db_conn *conn, int64_t id, int64_t now);
/* The live key with this token hash: 0, or -ENOENT. */
int store_key_live(struct db_conn *conn, const uint8_t hash[TOKEN_HASH_LEN]);
/* Calls fn for every key (live keys only when live_only), in id order; stops early and
 * returns fn's value when it is nonzero. */
int store_key_each(struct db_conn *conn, bool live_only, int (*fn)(const struct key_row *row, void *arg),
                   void *arg);

/* ---- customers and surveys ---- */
struct customer_row {
	char *id, *name, *phone, *email, *language;
	bool do_not_call;
	int64_t last_reached_at;  /* 0 when never */
	int64_t open_callback_id; /* 0 when none is open */
};
void customer_row_clear(struct customer_row *row);

struct survey_row {
	int64_t id;
	char *response_id, *source, *customer_id, *touchpoint, *channel, *comment;
	int score;
	int64_t answered_at, received_at, updated_at;
	bool consent;
	char *attributes;    /* compact JSON object text, NULL when none */
	int64_t callback_id; /* 0 when none */
	bool excluded;
	char *exclude_reason;
};
void survey_row_clear(struct survey_row *row);

int store_customer_get(struct db_conn *conn, const char *id, struct customer_row *ret);

/* Writes one small row (the readiness probe): a commit that changes nothing writes no WAL
 * frame, and so cannot tell that the disk is full. */
int store_readiness_touch(struct db_conn *conn, int64_t now);
/* Writes the contact fields and open_callback_id of a customer that is new (insert) or
 * known (update). Ingest reads the row, merges the answer into it and calls this once:
 * cheaper than an upsert returning the row and a second update to link the callback. */
int store_customer_insert(struct db_conn *conn, const struct customer_row *c, int64_t now);
int store_customer_update(struct db_conn *conn, const struct customer_row *c, int64_t now);

/* When the newest answer was received (the highest id: ids follow receipt); 0 when there
 * is none. */
int store_newest_answer_received(struct db_conn *conn, int64_t *ret);
int store_survey_by_response_id(struct db_conn *conn, const char *response_id, struct survey_row *ret);
int store_survey_get(struct db_conn *conn, int64_t id, struct survey_row *ret);
/* Inserts a validated answer; attributes is its compact JSON text or NULL, callback_id 0
 * for none. */
int store_survey_insert(struct db_conn *conn, const struct survey_input *in, const char *source,
                        const char *attributes, int64_t received_at, int64_t callback_id, int64_t *ret_id);
/* Completes an answer with a comment and/or attributes (NULL leaves a field as is). */
int store_survey_complete(struct db_conn *conn, int64_t id, const char *comment, const char *attributes,
                          int64_t now);

/* Marks an answer excluded from every NPS figure (reason may be NULL) or puts it back
 * (excluded false clears the reason). -ENOENT when there is no such answer. */
int store_survey_set_excluded(struct db_conn *conn, int64_t id, bool excluded, const char *reason);

/* ---- reports ---- */
enum nps_rows_key {
	NPS_ROWS_TOTAL,        /* one row for every answer that passes */
	NPS_ROWS_TOUCHPOINT,   /* a row per touchpoint, in order */
	NPS_ROWS_CHANNEL,      /* a row per channel, in order, answers without one first */
	NPS_ROWS_QUARTER_HOUR, /* a row per quarter hour (of unix time) holding answers, in order */
};
struct nps_row {
	const char *key;          /* touchpoint or channel (NULL when none), valid during the call */
	int64_t bucket;           /* NPS_ROWS_QUARTER_HOUR: the quarter hour's first second */
	struct nps_counts counts; /* of the answers not excluded */
	int64_t excluded;         /* answers that passed the filter but are excluded */
};
/* The counts of the answers that pass f, summed per key; fn sees each row and stops the
 * walk by returning nonzero, which is returned. */
int store_nps_rows(struct db_conn *conn, const struct nps_filter *f, enum nps_rows_key key,
                   int (*fn)(const struct nps_row *row, void *arg), void *arg);

struct improvement_filter {
	int64_t from, to;              /* created_at: from inclusive, to exclusive; REPORT_TIME_OPEN = open */
	const char *area, *touchpoint; /* NULL = any */
	int64_t before_id;             /* cursor: only ids below this; 0 = from the newest */
	int limit;
};
struct improvement_row {
	int64_t id, callback_id, created_at;
	const char *touchpoint, *area, *text; /* valid during the call */
};
/* Newest first, at most f->limit; fn stops the walk by returning nonzero. */
int store_improvement_list(struct db_conn *conn, const struct improvement_filter *f,
                           int (*fn)(const struct improvement_row *row, void *arg), void *arg);
/* How many improvements pass f (its before_id and limit aside) per area and touchpoint, in
 * that order. */
int store_improvement_counts(struct db_conn *conn, const struct improvement_filter *f,
                             int (*fn)(const char *area, const char *touchpoint, int64_t count, void *arg),
                             void *arg);

#define SURVEY_TIME_OPEN INT64_MIN /* no bound: 0 is a time like any other (1970-01-01) */
struct survey_filter {
	const char *touchpoint, *customer_id, *channel; /* NULL = any */
	int min_score, max_score;                       /* -1 = any */
	int64_t from, to;  /* answered_at range, inclusive from, exclusive to; SURVEY_TIME_OPEN = open */
	int64_t before_id; /* cursor: only ids below this; 0 = from the newest */
	int limit;
	int64_t scan_ids; /* without customer_id: how many ids a call may pass over; 0 = all */
};
/* Newest first. Calls fn per row, at most filter->limit times; stops early when fn returns
 * nonzero. *ret_resume is the cursor to go on from when the walk's window of
 * filter->scan_ids ended before the oldest answer (older ones may match), else 0: a caller
 * that got fewer than limit rows goes on from there, one that got limit from its last row. */
int store_survey_list(struct db_conn *conn, const struct survey_filter *filter,
                      int (*fn)(const struct survey_row *row, void *arg), void *arg, int64_t *ret_resume);

/* ---- callbacks ---- */
struct callback_brief {
	int64_t id;
	char status[16];
	int64_t due_at;
	int priority;
};
int store_callback_brief(struct db_conn *conn, int64_t id, struct callback_brief *ret);
/* Inserts a queued callback for an answer given at answered_at. The caller records it as
 * the customer's open one. */
int store_callback_insert(struct db_conn *conn, const char *customer_id, int priority, const char *touchpoint,
                          int64_t due_at, int64_t sla_deadline, int max_attempts, int64_t answered_at,
                          int64_t now, int64_t *ret_id);
/* A new low score joins the open callback: when it is lower than the callback's priority,
 * it becomes the priority, and its touchpoint the callback's (the worst experience decides
 * which team's claims take it). */
int store_callback_join(struct db_conn *conn, int64_t id, int score, const char *touchpoint);

struct callback_row {
	int64_t id;
	char *customer_id, *touchpoint, *claimed_by, *outcome, *notes;
	char status[16];
	int priority, attempts, max_attempts;
	bool sla_breached;
	int64_t due_at, sla_deadline, claimed_key_id, lease_expires_at;
	int64_t created_at, first_attempt_at, closed_at; /* 0 when not yet */
};
void callback_row_clear(struct callback_row *row);

int store_callback_get(struct db_conn *conn, int64_t id, struct callback_row *ret);
/* Writes back the mutable state of row (status through closed_at). */
int store_callback_save(struct db_conn *conn, const struct callback_row *row);
/* Claims the first due callback in queue order (touchpoint NULL = any) for the agent
 * key_id, passing over those it released at or after skip_released_since unless nothing
 * else is due. Each try is one statement, so two claims never get the same one. -ENOENT
 * when none is due. */
int store_callback_claim(struct db_conn *conn, const char *touchpoint, const char *agent, int64_t key_id,
                         int64_t now, int64_t lease_until, int64_t skip_released_since, int64_t *ret_id);
/* Notes that agent key_id released callback id at now (until the next claim clears it). */
int store_callback_mark_released(struct db_conn *conn, int64_t id, int64_t key_id, int64_t now);

struct callback_filter {
	const char *status, *touchpoint; /* NULL = any */
	int64_t now;                     /* what "due" means */
	bool has_cursor;
	int64_t cursor_key[3]; /* (not due: 0 or 1, priority, id) of the last row seen */
	int limit;
};
/* In queue order: due ones first, then lower score, then older. */
int store_callback_list(struct db_conn *conn, const struct callback_filter *filter,
                        int (*fn)(const struct callback_row *row, void *arg), void *arg);

int store_callback_event_add(struct db_conn *conn, int64_t callback_id, const char *customer_id, int64_t at,
                             const char *kind, const char *agent, const char *outcome, const char *notes);
int store_improvement_add(struct db_conn *conn, int64_t callback_id, const char *touchpoint, const char *area,
                          const char *text, int64_t now);
/* The customer's callback closed: forget it as the open one; reached_at (0 = keep) and
 * do_not_call (true sets it, never clears it) as given. */
int store_customer_callback_closed(struct db_conn *conn, const char *customer_id, int64_t reached_at,
                                   bool do_not_call);

/* The answers behind a callback, oldest first. */
int store_callback_surveys(struct db_conn *conn, const char *customer_id, int64_t callback_id,
                           int (*fn)(const struct survey_row *row, void *arg), void *arg);
/* A customer's answers not behind callback_id, newest first, at most limit. */
int store_customer_surveys(struct db_conn *conn, const char *customer_id, int64_t callback_id, int limit,
                           int (*fn)(const struct survey_row *row, void *arg), void *arg);

struct call_event {
	int64_t callback_id, at;
	const char *kind, *agent, *outcome, *notes;
};
/* A customer's calls (outcomes recorded by agents), newest first, at most limit. */
int store_customer_calls(struct db_conn *conn, const char *customer_id, int limit,
                         int (*fn)(const struct call_event *ev, void *arg), void *arg);
/* Improvements recorded on one callback, in order. */
int store_callback_improvements(struct db_conn *conn, int64_t callback_id,
                                int (*fn)(const char *area, const char *text, void *arg), void *arg);

/* Returns to the queue every callback the key holds; fn sees each as it was changed. */
int store_callbacks_release_key(struct db_conn *conn, int64_t key_id,
                                int (*fn)(const struct callback_row *row, void *arg), void *arg);
/* Claims whose lease ran out go back to the queue; fn sees each. */
int store_callbacks_expire_leases(struct db_conn *conn, int64_t now,
                                  int (*fn)(const struct callback_row *row, void *arg), void *arg);
/* Open callbacks not phoned by their SLA deadline are marked breached (once); fn sees each. */
int store_callbacks_breach_sla(struct db_conn *conn, int64_t now,
                               int (*fn)(const struct callback_row *row, void *arg), void *arg);
/* The earliest lease expiry or SLA deadline still ahead; 0 when there is none. */
int store_callbacks_next_deadline(struct db_conn *conn, int64_t *ret);

struct callback_stats {
	int64_t queued, due, claimed, oldest_due_age; /* seconds */
	int64_t sla_total, sla_met;                   /* callbacks with a first call or a breach */
	double median_seconds_to_first_call;          /* -1 when none yet */
	double median_seconds_to_close;               /* -1 when none yet */
	double median_seconds_ingest_to_queue;        /* answer to queued; -1 when none yet */
	int64_t low_scores, low_scores_reached;       /* calls owed (not cancelled), and those reached */
};
int store_callback_stats(struct db_conn *conn, int64_t now, struct callback_stats *ret);

/* ---- outbox ---- */
int store_event_insert(struct db_conn *conn, const char *type, const char *payload, int64_t now,
                       int64_t *ret_id);

/* ---- retention and erasure ---- */
struct purge_counts {
	int64_t surveys, callbacks, improvements, callback_events, customers;
	int64_t customers_kept_do_not_call; /* rows kept for their mark, contact details cleared */
	int64_t events, deliveries, attempts;
};
/* One batch of retention: deletes up to limit rows of each kind older than cutoff and adds
 * what it deleted to *c; a caller repeats it, a transaction each, with the same *cursor
 * (where the walk of answers goes on; moved only when the batch succeeds), until a batch
 * deletes nothing. Answers go with their closed callbacks (a call still owed keeps its answers),
 * callbacks with their improvements and call history, customers with their last answer
 * (one marked do-not-call keeps the mark, without contact details), events with their
 * deliveries and attempts. Its deletes run with SQLite's secure_delete on (the connection's
 * own setting back after, failed or not): what they free is zeroed; older copies in the
 * WAL stay until a TRUNCATE checkpoint (db_wal_truncate). When it fails, ret_why (why_len
 * bytes; NULL for none) gets SQLite's words for it (db_last_error), which the restored
 * setting would otherwise replace. */
struct purge_cursor {
	int64_t answered_at, survey_id; /* start with PURGE_CURSOR_START */
};
#define PURGE_CURSOR_START ((struct purge_cursor){ INT64_MIN, 0 })
int store_purge_batch(struct db_conn *conn, int64_t cutoff, int limit, struct purge_cursor *cursor,
                      struct purge_counts *c, char *ret_why, size_t why_len);
/* Deletes every row about the customer: answers, callbacks, their improvements and call
 * history, the outbox events that carry the customer with their deliveries and attempts,
 * and the customer, with SQLite's secure_delete on; adds the counts to *c.
 * customer_id_json is the id as a JSON string (quoted and escaped as the payloads have it). */
int store_erase_customer(struct db_conn *conn, const char *customer_id, const char *customer_id_json,
                         struct purge_counts *c);

#endif
