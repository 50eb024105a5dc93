#ifndef NPSD_CALLBACKS_H
#define NPSD_CALLBACKS_H
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/auth.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/store.h"
#include "npsd/validate.h"

/*
 * The callback queue's rules: who is owed a call, opening and joining, claims and leases,
 * outcomes, retries in business hours, SLA. Every function that changes state runs on the
 * writer thread inside the caller's savepoint and writes its outbox events there too.
 */

/* Errors beyond the storage ones, for the API to answer 409. */
#define CALLBACK_NOT_YOURS (-EPERM)      /* claimed by another agent */
#define CALLBACK_WRONG_STATE (-EALREADY) /* e.g. completing a callback nobody claimed */
#define CALLBACK_LEASE_EXPIRED (-ETIME)  /* the caller's lease ran out: the callback is queued again */

/*
 * Whether an answer owes a phone call, per SPEC: score <= callbacks.max_score, consent
 * given, a phone known, not do-not-call, not reached within callbacks.cooldown.
 */
bool callbacks_owed(const struct npsd_config *cfg, const struct customer_row *customer, int score,
                    bool consent, int64_t now);

/*
 * Opens a callback for the answer given at answered_at, or joins the customer's open one
 * (its priority rises for a lower score). Fills *ret; *ret_created tells whether it is new. A new callback
 * becomes customer->open_callback_id; the caller writes the customer row afterwards.
 */
int callbacks_open_or_join(struct db_conn *conn, const struct npsd_config *cfg, struct customer_row *customer,
                           const char *touchpoint, int score, int64_t answered_at, int64_t now,
                           struct callback_brief *ret, bool *ret_created);

/* Writes callback.created for a new callback; survey is the event's survey object (stolen). */
int callbacks_emit_created(struct db_conn *conn, int64_t id, const struct customer_row *customer,
                           json_t *survey, int64_t now);

/* Claims the first due callback for the agent, with a lease of callbacks.lease.
 * -ENOENT when nothing is due. */
int callbacks_claim(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                    const char *touchpoint, int64_t now, int64_t *ret_id);
/* Renews the agent's lease. */
int callbacks_heartbeat(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                        int64_t id, int64_t now);
/* Back to the queue, no attempt counted. */
int callbacks_release(struct db_conn *conn, const struct principal *agent, int64_t id, int64_t now);
/* Records the outcome: done, a retry in business hours, unreachable, call later. */
int callbacks_complete(struct db_conn *conn, const struct npsd_config *cfg, const struct principal *agent,
                       int64_t id, const struct complete_input *in, int64_t now);
/* A manager takes an open callback off the queue. */
int callbacks_cancel(struct db_conn *conn, const struct principal *who, int64_t id, int64_t now);

/* A revoked key's calls in progress back to the queue at once, rather than when their
 * leases run out (an agent who left holds no call for another quarter of an hour). Returns
 * how many, or a negative errno. */
int callbacks_release_key(struct db_conn *conn, int64_t key_id, int64_t now);

/* The timers: expired leases back to the queue, SLA breaches marked and announced once.
 * Returns the number of callbacks changed, or a negative errno. */
int callbacks_tick(struct db_conn *conn, int64_t now);

#endif
