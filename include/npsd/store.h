#ifndef NPSD_STORE_H
#define NPSD_STORE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/auth.h"
#include "npsd/db.h"
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
/* Calls fn for every key (live keys only when live_only), in id order; stops early and
 * returns fn's value when it is nonzero. */
int store_key_each(struct db_conn *conn, bool live_only,
                   int (*fn)(const struct key_row *row, void *arg), void *arg);

/* ---- customers and surveys ---- */
struct customer_row {
	char *id, *name, *phone, *email, *language;
	bool do_not_call;
	int64_t last_reached_at; /* 0 when never */
	int64_t open_callback_id; /* 0 when none is open */
};
void customer_row_clear(struct customer_row *row);

struct survey_row {
	int64_t id;
	char *response_id, *source, *customer_id, *touchpoint, *channel, *comment;
	int score;
	int64_t answered_at, received_at, updated_at;
	bool consent;
	char *attributes; /* compact JSON object text, NULL when none */
	int64_t callback_id; /* 0 when none */
	bool excluded;
	char *exclude_reason;
};
void survey_row_clear(struct survey_row *row);

/* Upserts the customer: fields given (non-NULL) replace the stored ones, NULL keeps them.
 * Fills *ret with the row as stored afterwards. */
int store_customer_upsert(struct db_conn *conn, const char *id, const char *name,
                          const char *phone, const char *email, const char *language,
                          int64_t now, struct customer_row *ret);
int store_customer_get(struct db_conn *conn, const char *id, struct customer_row *ret);

int store_survey_by_response_id(struct db_conn *conn, const char *response_id, struct survey_row *ret);
int store_survey_get(struct db_conn *conn, int64_t id, struct survey_row *ret);
/* Inserts a validated answer; attributes is its compact JSON text or NULL, callback_id 0
 * for none. */
int store_survey_insert(struct db_conn *conn, const struct survey_input *in, const char *source,
                        const char *attributes, int64_t received_at, int64_t callback_id,
                        int64_t *ret_id);
/* Completes an answer with a comment and/or attributes (NULL leaves a field as is). */
int store_survey_complete(struct db_conn *conn, int64_t id, const char *comment,
                          const char *attributes, int64_t now);

struct survey_filter {
	const char *touchpoint, *customer_id;
	int max_score;          /* -1 = any */
	int64_t from, to;       /* answered_at range, inclusive from, exclusive to; 0 = open */
	int64_t before_id;      /* cursor: only ids below this; 0 = from the newest */
	int limit;
};
/* Newest first. Calls fn per row; stops early when fn returns nonzero. */
int store_survey_list(struct db_conn *conn, const struct survey_filter *filter,
                      int (*fn)(const struct survey_row *row, void *arg), void *arg);

/* ---- callbacks ---- */
struct callback_brief {
	int64_t id;
	char status[16];
	int64_t due_at;
	int priority;
};
int store_callback_brief(struct db_conn *conn, int64_t id, struct callback_brief *ret);
/* Inserts a queued callback and records it as the customer's open one. */
int store_callback_insert(struct db_conn *conn, const char *customer_id, int priority,
                          const char *touchpoint, int64_t due_at, int64_t sla_deadline,
                          int max_attempts, int64_t now, int64_t *ret_id);
/* A new low score joins the open callback: its priority becomes the lower of the two. */
int store_callback_join(struct db_conn *conn, int64_t id, int score);

#endif
