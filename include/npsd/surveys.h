#ifndef NPSD_SURVEYS_H
#define NPSD_SURVEYS_H
#include <stdbool.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/store.h"
#include "npsd/validate.h"

/* One answer to store, and what became of it. */
struct ingest_item {
	struct survey_input in; /* validated; borrows from the request's JSON */
	const char *source;     /* the ingest token's name */
	const struct npsd_config *cfg;
	/* filled by surveys_ingest() on the writer thread */
	unsigned status; /* 201 stored, 200 retry or completion, 409 conflict */
	int64_t survey_id;
	int score;
	bool has_callback;
	struct callback_brief callback;
};

/*
 * The ingest transaction for one answer, run by the writer inside its savepoint:
 * idempotency by response_id (the same content: 200; the same score with a comment or
 * attributes the stored answer lacked: completed, 200; else 409, nothing written), the
 * customer upserted, the callback owed opened or joined, the survey inserted.
 * Returns 0 (item->status says which) or a negative errno, which rolls the savepoint back.
 */
int surveys_ingest(struct db_conn *conn, struct ingest_item *item, int64_t now);

/* The decision behind the retry rules, exposed for tests: 200 when `in` says nothing the
 * stored row does not, 0 when it completes it (the caller then writes), 409 otherwise.
 * *ret_attributes gets the merged attributes JSON text to store (malloc'ed, caller frees)
 * when the attributes grow. */
unsigned surveys_compare(const struct survey_row *stored, const struct survey_input *in,
                         char **ret_attributes);

#endif
