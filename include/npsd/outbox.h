#ifndef NPSD_OUTBOX_H
#define NPSD_OUTBOX_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "npsd/db.h"
#include "npsd/store.h"

/*
 * The outbox: every event someone must hear about is written in the same transaction as
 * the change that caused it, so a crash can never lose it. The delivery thread reads it.
 */

/* What webhook filters look at: the score (-1 when the event has none) and touchpoint. */
struct event_facts {
	int score;
	const char *touchpoint;
};
#define NO_FACTS ((struct event_facts){ .score = -1, .touchpoint = NULL })

/*
 * Writes the event and one pending delivery per active webhook that subscribes to its type
 * and whose filter it passes; data (the event's "data" object) is stolen. Runs on the
 * writer thread only: the subscriptions are cached there.
 */
int outbox_emit(struct db_conn *conn, const char *type, json_t *data, struct event_facts facts, int64_t now);
/* Whether any active webhook subscribes to type: an event nobody hears of is not written
 * (ingest at full speed pays for no outbox rows), so callers ask before building one. */
bool outbox_wanted(struct db_conn *conn, const char *type);

/* The same for one webhook only, whatever it subscribes to (webhook.test); the delivery's
 * id in *ret_delivery_id. */
int outbox_emit_to(struct db_conn *conn, const char *type, json_t *data, int64_t webhook_id, int64_t now,
                   int64_t *ret_delivery_id);
/* Counts delivery rows written so far (they may still roll back). The delivery thread
 * looks for work only when it moved, not at every commit. */
uint64_t outbox_deliveries_written(void);
/* A delivery was made due again (a manual retry): counts as one written. */
void outbox_delivery_requeued(void);

/* Webhooks were created, changed or deleted: the cache is read again at the next event.
 * Writer thread only. */
void outbox_webhooks_changed(void);

/* Pieces of event payloads, shared by the modules that emit them. Each returns a new
 * reference. Names are passed on because alerts greet the customer by first name; phone
 * numbers and emails never go into an event. */
json_t *outbox_customer(const char *id, const char *name, const char *language);
json_t *outbox_callback(const struct callback_row *row);
/* Appends {"area", "text"} to the JSON array improvements (a store_callback_improvements
 * callback); 0. */
int outbox_improvement_add(const char *area, const char *text, void *improvements);

#endif
