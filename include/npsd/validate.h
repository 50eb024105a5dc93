#ifndef NPSD_VALIDATE_H
#define NPSD_VALIDATE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Pure checks of what clients send: no I/O, no globals, so unit tests need no daemon.
 */

#define ID_MAX_CHARS 128         /* response_id, customer.id */
#define SURVEY_ATTRIBUTES_MAX 32 /* keys in a survey's attributes, also after a retry adds some */

/* A client error, rendered by the HTTP layer as SPEC's error body. code is a static string
 * ("invalid_field" or "missing_field"); field is the dotted JSON path ("customer.phone"). */
struct field_error {
	const char *code;
	char field[272]; /* "attributes." and a key of 64 characters of up to 4 bytes each */
	char message[192];
};

/* Fills err, cutting field and message at a character boundary where they are too long
 * (a client's own key names go into field). */
void field_error_set(struct field_error *err, const char *code, const char *field, const char *message);

/* One survey answer after validation. Every pointer borrows from the json_t it came from
 * and lives as long as that document. Absent optional strings are NULL. */
struct survey_input {
	const char *response_id;
	const char *customer_id;
	const char *customer_name;
	const char *customer_phone;
	const char *customer_email;
	const char *customer_language;
	const char *touchpoint;
	const char *channel;
	const char *comment;
	int score;
	int64_t answered_at; /* unix seconds, UTC; `now` when absent */
	bool answered_at_given;
	bool consent;       /* contact_consent, default true */
	bool consent_given; /* contact_consent was sent (a retry without it does not differ) */
	json_t *attributes; /* borrowed object, NULL when absent or empty */
};

/*
 * Checks one answer against every rule of SPEC's Surveys section. now is unix seconds.
 * Returns 0 and fills *ret, or -1 and fills *err (the first problem found, deterministic
 * order: top-level unknown fields, then required, then optional fields).
 */
int validate_survey(json_t *doc, int64_t now, struct survey_input *ret, struct field_error *err);

#define IMPROVEMENTS_MAX 20

/* What an agent sends to close a call. Strings borrow from the JSON document. */
struct complete_input {
	const char *outcome; /* one of the SPEC's outcomes */
	const char *notes;   /* NULL when absent */
	int64_t retry_at;    /* call_later only: when the customer asked to be called */
	size_t nimprovements;
	struct {
		const char *area; /* process, communication, service, product, other */
		const char *text;
	} improvements[IMPROVEMENTS_MAX];
};

/* POST /v1/callbacks/{id}/complete: outcome (required), notes (<= 4000), improvements
 * (<= 20 of {area, text <= 2000}), retry_at (required for call_later, in the future and
 * within 30 days). Same contract as validate_survey. */
int validate_complete(json_t *doc, int64_t now, struct complete_input *ret, struct field_error *err);

/* POST /v1/callbacks/claim: the optional body {"touchpoint": "..."}; doc may be NULL.
 * *ret_touchpoint is NULL when no filter was asked for. */
int validate_claim(json_t *doc, const char **ret_touchpoint, struct field_error *err);

/* PATCH /v1/surveys/{id}: whether the answer counts in the NPS figures. */
struct survey_patch {
	bool excluded;
	const char *reason; /* why it is left out (<= 500 characters); NULL when none or "" */
};
/* {"excluded": true|false (required), "reason": "..." (optional)}. Same contract as
 * validate_survey. */
int validate_survey_patch(json_t *doc, struct survey_patch *ret, struct field_error *err);

/* Where a page of GET /v1/callbacks goes on: after the row (not due, priority, id), with
 * due judged as at as_of. */
struct callback_cursor {
	int64_t key[3];
	int64_t as_of; /* 0: a cursor of three parts (from before), judged as now */
};
/* Reads a next_cursor of the callbacks list: "LATER.PRIORITY.ID.AS_OF" (or the three parts
 * of older ones), each plain digits that fit the part: LATER 0 or 1, PRIORITY a score, ID
 * and AS_OF positive 64-bit numbers. -1 for anything else, *ret untouched. */
int parse_callback_cursor(const char *text, struct callback_cursor *ret);

/* Reads the decimal integer text starts with: digits only, with a '-' first when negative
 * is true; no sign otherwise, no space, nothing that overflows 64 bits. Returns 0 with the
 * value and where the digits end, or -1 (both left as they are). */
int parse_decimal(const char *text, bool negative, int64_t *ret_value, const char **ret_end);

/* "promoter" (9-10), "passive" (7-8) or "detractor" (0-6). */
const char *survey_category(int score);

/* Field-level checks, exposed for reuse by other resources and for tests. */
size_t utf8_length(const char *s); /* code points; s is valid UTF-8 */
/* Decodes one code point from s (n > 0 bytes available): its length, or 0 when the bytes
 * are not well-formed UTF-8 (overlong forms and surrogates included). */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret);
/* Makes s valid UTF-8 in place: a NUL or a byte of a malformed sequence becomes '?'.
 * For text from outside (a receiver's answer) that must go into JSON. */
void utf8_scrub(char *s, size_t len);
/* A name people give (an API key's): UTF-8, 1 to max_chars code points, no control characters. */
bool valid_name(const char *s, size_t max_chars);
bool valid_token_name(const char *s); /* [a-z0-9_.-]{1,64} */
bool valid_area(const char *s);       /* an improvement's: process, communication, ... */
bool valid_e164(const char *s);       /* "+" and 8-15 digits */
bool valid_email(const char *s);
bool valid_language(const char *s); /* BCP 47 shape: "nl", "en-GB" */

/* RFC 3339 ("2026-11-22T10:15:00Z", "+01:00" offsets, fractions dropped) to unix seconds. */
int time_parse_rfc3339(const char *s, int64_t *ret_seconds);
/* Writes "2026-11-22T10:15:00Z" (21 bytes with NUL) into buf; returns buf. */
char *time_format_rfc3339(int64_t seconds, char buf[static 21]);

#endif
