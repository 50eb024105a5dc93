#ifndef NPSD_OUTBOX_H
#define NPSD_OUTBOX_H
#include <jansson.h>
#include <stdint.h>

#include "npsd/db.h"
#include "npsd/store.h"

/*
 * The outbox: every event someone must hear about is written in the same transaction as
 * the change that caused it, so a crash can never lose it. The delivery thread reads it.
 */

/* Writes the event; data (the event's "data" object) is stolen. Runs on the writer. */
int outbox_emit(struct db_conn *conn, const char *type, json_t *data, int64_t now);

/* Pieces of event payloads, shared by the modules that emit them. Each returns a new
 * reference. Names are passed on because alerts greet the customer by first name; phone
 * numbers and emails never go into an event. */
json_t *outbox_customer(const char *id, const char *name, const char *language);
json_t *outbox_callback(const struct callback_row *row);

#endif
