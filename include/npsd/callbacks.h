#ifndef NPSD_CALLBACKS_H
#define NPSD_CALLBACKS_H
#include <stdbool.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/store.h"

/*
 * Whether an answer owes a phone call, per SPEC: score <= callbacks.max_score, consent
 * given, a phone known, not do-not-call, not reached within callbacks.cooldown.
 */
bool callbacks_owed(const struct npsd_config *cfg, const struct customer_row *customer,
                    int score, bool consent, int64_t now);

/*
 * Opens a callback for the answer, or joins the customer's open one (its priority rises for
 * a lower score). Runs inside the ingest transaction. Fills *ret with the callback.
 */
int callbacks_open_or_join(struct db_conn *conn, const struct npsd_config *cfg,
                           const struct customer_row *customer, const char *touchpoint, int score,
                           int64_t now, struct callback_brief *ret);

#endif
