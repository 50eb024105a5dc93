/*
 * Fuzz target: every JSON body a client may send, parsed as http.c parses it and checked
 * by each validator that takes it (an answer, a batch, a call's outcome, a claim, an
 * exclusion, a webhook create and patch). A validator must answer 0 or -1 with a field
 * error, never crash, read out of bounds or leak; on -1 it must name a code.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "npsd/validate.h"
#include "npsd/webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-11-23T10:00:00Z: answered_at and retry_at are judged against a fixed now. */
#define FUZZ_NOW 1795428000

static void check(int r, const struct field_error *err)
{
	if (r != 0 && (r != -1 || !err->code || !err->code[0]))
		abort();
}

static void validate_every_way(json_t *doc)
{
	struct field_error err;
	struct survey_input survey;
	check(validate_survey(doc, FUZZ_NOW, &survey, &err), &err);
	struct complete_input complete;
	check(validate_complete(doc, FUZZ_NOW, &complete, &err), &err);
	const char *touchpoint;
	check(validate_claim(doc, &touchpoint, &err), &err);
	struct survey_patch patch;
	check(validate_survey_patch(doc, &patch, &err), &err);
	struct webhook_input hook;
	/* allow_private: no name is looked up, so that a run never waits on DNS. */
	check(webhooks_validate(doc, false, true, &hook, &err), &err);
	check(webhooks_validate(doc, true, true, &hook, &err), &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		return 0;
	if (json_is_array(doc)) {
		size_t i;
		json_t *item;
		json_array_foreach (doc, i, item)
			validate_every_way(item);
	} else {
		validate_every_way(doc);
	}
	json_decref(doc);
	return 0;
}
