#ifndef NPSD_WEBHOOKS_H
#define NPSD_WEBHOOKS_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "npsd/auth.h"
#include "npsd/db.h"
#include "npsd/validate.h"

/*
 * Webhook subscriptions: what managers send, the SSRF guard, and the rows behind them.
 * Deliveries are deliver.c's; the outbox fan-out is outbox.c's.
 */

/* Every event type a webhook may subscribe to (NULL-terminated). */
extern const char *const webhook_event_types[];
/* Its bit in a subscription mask, or 0 for an unknown type. */
uint32_t webhook_event_bit(const char *type);

/* A create or a patch, validated. Strings and JSON borrow from the request document. */
struct webhook_input {
	const char *url, *format, *auth, *description;
	uint32_t events;       /* mask of webhook_event_bit() */
	json_t *events_json;   /* the array as sent */
	json_t *filter;        /* object, or NULL */
	int active;            /* -1 when not given */
	const char *digest;    /* "hourly" or "daily"; NULL for none (has_digest: given as null) */
	const char *digest_at; /* "HH:MM" local time; NULL for the default (08:00, or :00 hourly) */
	bool has_url, has_events, has_filter, has_auth, has_description, has_format, has_digest,
	        has_digest_at;
};

/*
 * POST (patch false: url, and events unless a digest is asked for) or PATCH (every field
 * optional) body of
 * /v1/webhooks. URLs: http or https, a host, no user info; with allow_private false a host
 * that is (or resolves to) an address webhooks_address_refusal() refuses is refused.
 * Returns 0 or -1 with *err.
 */
int webhooks_validate(json_t *doc, bool patch, bool allow_private, struct webhook_input *ret,
                      struct field_error *err);

/*
 * The SSRF guard's test, for create time and for every connect: why addr may not be
 * connected to (a static string naming its range and the RFC, e.g. "192.0.2.0/24,
 * documentation (RFC 5737)"), or NULL when it may. Refused: every address the IANA
 * special-purpose registries do not mark globally reachable, every IPv6 address outside
 * 2000::/3, IPv4-compatible ones, IPv4-mapped, NAT64 and 6to4 ones whose IPv4 address is
 * refused, and the host's own addresses (hostaddrs.h). Any family but IPv4 and IPv6 too.
 */
const char *webhooks_address_refusal(const struct sockaddr *addr);
bool webhooks_address_blocked(const struct sockaddr *addr); /* a refusal, or not */

struct webhook_row {
	int64_t id;
	char *url, *format, *events, *filter, *auth, *secret, *description, *disabled_reason;
	char *digest, *digest_at; /* NULL when none / the default */
	bool active;
	int64_t created_at, updated_at, failing_since;
	int64_t digest_sent_until; /* the end of the last period told, or of the one before the
	                            * digest was set; 0 for none (set by an older npsd) */
	/* After a change of kind or time (digests.h, struct digest_marks): the old schedule
	 * while its ended periods are still to tell (NULL when none), and the first digest by
	 * the new one, [digest_first_from, digest_first_until); 0 when none is pending. */
	char *digest_was, *digest_was_at;
	int64_t digest_first_from, digest_first_until;
};
void webhook_row_clear(struct webhook_row *row);

int store_webhook_insert(struct db_conn *conn, const struct webhook_input *in, const char *secret,
                         int64_t now, int64_t *ret_id);
int store_webhook_get(struct db_conn *conn, int64_t id, struct webhook_row *ret);
int store_webhook_each(struct db_conn *conn, int (*fn)(const struct webhook_row *row, void *arg), void *arg);
/* Applies the fields a patch carries. -ENOENT when there is no such webhook. */
int store_webhook_update(struct db_conn *conn, int64_t id, const struct webhook_input *in, int64_t now);
/* Deletes the webhook with its deliveries and their attempts. */
int store_webhook_delete(struct db_conn *conn, int64_t id);
int store_webhook_disable(struct db_conn *conn, int64_t id, const char *reason, int64_t now);
/* Marks the digest of the period that ends at until as told, if the webhook is still an
 * active digest whose mark is was (0 for none) and whose pending first digest after a
 * change ends at first_until (0 for none): -ESTALE when it changed since it was read
 * (deleted, switched off, its digest changed or told), and then nothing is to be sent. A
 * mark at or past first_until ends the change (its first digest is told). */
int store_webhook_digest_sent(struct db_conn *conn, int64_t id, int64_t was, int64_t first_until,
                              int64_t until);

/* The lowest scores given in [from, to), excluded answers left out, lowest first (then the
 * newest), at most limit; touchpoints_json (a JSON array of names, or NULL for all) narrows
 * them. Strings fn sees live for its call. */
struct lowest_answer {
	int64_t id, answered_at;
	int score;
	const char *customer_id, *touchpoint, *comment;
};
int store_lowest_answers(struct db_conn *conn, int64_t from, int64_t to, const char *touchpoints_json,
                         int limit, int (*fn)(const struct lowest_answer *a, void *arg), void *arg);

/* A failed attempt at failed_at starts the webhook's spell of failures (failing_since),
 * unless one is running: one whose last failure is at most spell_gap seconds before. 0 for
 * failed_at ends the spell (a success). */
int store_webhook_failing(struct db_conn *conn, int64_t id, int64_t failed_at, int64_t spell_gap);

struct delivery_row {
	int64_t id, event_id, webhook_id;
	char status[16];
	int attempts;
	int64_t next_attempt_at, lease_until, created_at, updated_at;
	int last_http_status;
	char *last_error, *event_type;
};
void delivery_row_clear(struct delivery_row *row);

int store_delivery_insert(struct db_conn *conn, int64_t event_id, int64_t webhook_id, int64_t now,
                          int64_t *ret_id);
int store_delivery_get(struct db_conn *conn, int64_t id, struct delivery_row *ret);
/* Newest first, ids below before_id (0 = from the newest). */
int store_delivery_list(struct db_conn *conn, int64_t webhook_id, int64_t before_id, int limit,
                        int (*fn)(const struct delivery_row *row, void *arg), void *arg);
/* The failed or pending delivery row (as just read in this transaction) is due again now.
 * -EALREADY when it was delivered, -EBUSY while it is being sent. */
int store_delivery_retry(struct db_conn *conn, const struct delivery_row *row, int64_t now);

struct attempt_row {
	int64_t at;
	int http_status, duration_ms;
	const char *error, *response_head;
};
/* The newest limit attempts of one delivery, oldest first. */
int store_attempt_list(struct db_conn *conn, int64_t delivery_id, int limit,
                       int (*fn)(const struct attempt_row *row, void *arg), void *arg);

/* Leases up to limit of one webhook's due deliveries, the longest due first, until
 * lease_until; fn sees each claimed one. */
int store_deliveries_claim(struct db_conn *conn, int64_t webhook_id, int64_t now, int64_t lease_until,
                           int limit, int (*fn)(const struct delivery_row *row, void *arg), void *arg);
/* Every webhook's id, active or not (a disabled one's pending deliveries still end), in
 * id order. */
int store_webhook_ids(struct db_conn *conn, int (*fn)(int64_t id, void *arg), void *arg);
/* Records an attempt and the delivery's new state, only while lease_until is still ours.
 * Returns 0, or -ESTALE when the lease was lost (nothing written). */
int store_delivery_finish(struct db_conn *conn, int64_t id, int64_t lease_until, const char *status,
                          int attempts, int64_t next_attempt_at, const struct attempt_row *attempt,
                          int64_t now);
/* When the next pending delivery may be claimed (its next_attempt_at, or its lease's end
 * while one is held); 0 when none is pending. */
int store_deliveries_next_due(struct db_conn *conn, int64_t *ret);
/* Deliveries by status: pending, delivered, failed. */
int store_delivery_counts(struct db_conn *conn, int64_t *ret_pending, int64_t *ret_delivered,
                          int64_t *ret_failed);
/* An event's type, payload (malloc'ed, caller frees) and time. */
int store_event_get(struct db_conn *conn, int64_t id, char **ret_type, char **ret_payload,
                    int64_t *ret_created_at);

#endif
