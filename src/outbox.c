#include "npsd/outbox.h"

#include <errno.h>
#include <stdlib.h>

#include "npsd/validate.h"

int outbox_emit(struct db_conn *conn, const char *type, json_t *data, int64_t now)
{
	if (!data)
		return -ENOMEM;
	char *payload = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!payload)
		return -ENOMEM;
	int r = store_event_insert(conn, type, payload, now, NULL);
	free(payload);
	return r;
}

json_t *outbox_customer(const char *id, const char *name, const char *language)
{
	return json_pack("{s:s, s:s?, s:s?}", "id", id, "name", name, "language", language);
}

json_t *outbox_callback(const struct callback_row *row)
{
	char due[21], sla[21];
	return json_pack("{s:I, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:s?, s:s?}", "id", (json_int_t)row->id,
	                 "status", row->status, "priority", row->priority, "touchpoint", row->touchpoint,
	                 "due_at", time_format_rfc3339(row->due_at, due), "sla_deadline",
	                 time_format_rfc3339(row->sla_deadline, sla), "attempts", row->attempts,
	                 "max_attempts", row->max_attempts, "claimed_by", row->claimed_by, "outcome",
	                 row->outcome);
}
