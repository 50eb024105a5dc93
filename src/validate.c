/*
 * Validation of what clients send: SPEC's Surveys section, field by field.
 *
 * Everything here is pure (no I/O, no globals, no allocation), so the checks run the same in
 * the daemon and in tests/check_validate.c. The first problem found is reported, in a fixed
 * order, so a client fixing one field at a time always converges and tests can pin errors.
 */
#include "npsd/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INVALID "invalid_field"
#define MISSING "missing_field"

#define NAME_MAX_CHARS 200
#define COMMENT_MAX_CHARS 4000
#define EMAIL_MAX_BYTES 254   /* the SMTP path limit (RFC 5321), in octets */
#define LANGUAGE_MAX_BYTES 35 /* RFC 5646 says 35 covers every tag a registry can produce */
#define TOKEN_MAX_BYTES 64
#define ATTR_KEY_MAX_CHARS 64
#define ATTR_VALUE_MAX_CHARS 1000
#define FUTURE_SLACK_SECONDS 300      /* client clocks drift; SPEC allows 5 minutes */
#define EPOCH_2000 INT64_C(946684800) /* 2000-01-01T00:00:00Z: older answers are typos */

/* The range time_format_rfc3339 can write in 20 characters: years 0000 to 9999. */
#define TIME_MIN INT64_C(-62167219200) /* 0000-01-01T00:00:00Z */
#define TIME_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

static const char *const survey_fields[] = {
	"response_id", "customer",    "touchpoint",      "channel",    "score",
	"comment",     "answered_at", "contact_consent", "attributes", NULL,
};
static const char *const customer_fields[] = {
	"id", "name", "phone", "email", "language", NULL,
};

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Cuts a trailing, incomplete UTF-8 sequence that snprintf truncation may have left, so the
 * HTTP layer can always put field and message into a JSON string (jansson refuses bad UTF-8).
 */
static void utf8_trim_tail(char *s)
{
	size_t len = strlen(s), i = len, cont = 0;
	unsigned char lead;
	size_t need;

	while (i > 0 && cont < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
		i--;
		cont++;
	}
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	if (lead < 0xC0) /* ASCII, or a stray continuation byte: nothing to complete */
		return;
	need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
	if (cont < need)
		s[i - 1] = '\0';
}

/*
 * Fills *err with code, the field path prefix + key (key may be NULL) and a formatted message;
 * both are truncated to their buffers at a UTF-8 boundary. Returns -1 so callers can
 * `return fail(...)`.
 */
static int fail(struct field_error *err, const char *code, const char *prefix, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(struct field_error *err, const char *code, const char *prefix, const char *key,
                const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	snprintf(err->field, sizeof(err->field), "%s%s", prefix, key ? key : "");
	utf8_trim_tail(err->field);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	utf8_trim_tail(err->message);
	return -1;
}

void field_error_set(struct field_error *err, const char *code, const char *field, const char *message)
{
	err->code = code;
	snprintf(err->field, sizeof err->field, "%s", field);
	utf8_trim_tail(err->field);
	snprintf(err->message, sizeof err->message, "%s", message);
	utf8_trim_tail(err->message);
}

static bool in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* The member named key, or NULL when it is absent or JSON null (SPEC treats both alike). */
static json_t *member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_null(v) ? NULL : v;
}

/*
 * True when s holds a control character: C0 (below 0x20), DEL, or C1 (U+0080..U+009F, which
 * UTF-8 writes as 0xC2 0x80..0x9F). keep_lines lets \n, \r and \t through for free text.
 * s is valid UTF-8, so a 0xC2 is always followed by a continuation byte.
 */
static bool has_control(const char *s, bool keep_lines)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20) {
			if (keep_lines && (*p == '\n' || *p == '\r' || *p == '\t'))
				continue;
			return true;
		}
		if (*p == 0x7F || (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
			return true;
	}
	return false;
}

/*
 * Checks that v is a string of min_chars to max_chars code points without control characters
 * (bar \n \r \t when keep_lines). rule is the message for a wrong type or length. A string with
 * an embedded NUL (only possible for documents built in code: the parser refuses \u0000)
 * counts as holding a control character. On success *ret borrows the string from v.
 */
static int string_field(json_t *v, const char *field, const char *rule, size_t min_chars, size_t max_chars,
                        bool keep_lines, const char **ret, struct field_error *err)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return fail(err, INVALID, field, NULL, "%s", rule);
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v) || has_control(s, keep_lines))
		return fail(err, INVALID, field, NULL, "%s must not contain control characters%s", field,
		            keep_lines ? " other than newline, carriage return and tab" : "");
	n = utf8_length(s);
	if (n < min_chars || n > max_chars)
		return fail(err, INVALID, field, NULL, "%s", rule);
	*ret = s;
	return 0;
}

/* Checks that v is a string that check() accepts; *ret borrows it. rule is the message. */
static int shaped_field(json_t *v, const char *field, bool (*check)(const char *), const char *rule,
                        const char **ret, struct field_error *err)
{
	const char *s;

	if (!json_is_string(v))
		return fail(err, INVALID, field, NULL, "%s", rule);
	s = json_string_value(v);
	/* An embedded NUL would hide the rest of the string from check(). */
	if (strlen(s) != json_string_length(v) || !check(s))
		return fail(err, INVALID, field, NULL, "%s", rule);
	*ret = s;
	return 0;
}

/* Rejects any key of obj not in allowed, naming it prefix + key, in document order. */
static int reject_unknown(json_t *obj, const char *const *allowed, const char *prefix, const char *message,
                          struct field_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach (obj, key, v) {
		if (!in_list(key, allowed))
			return fail(err, INVALID, prefix, key, "%s", message);
	}
	return 0;
}

/* Whether x reads back the same from 15 significant digits, the precision npsd writes
 * reals with (so that a figure rounded to 16.7 reads 16.7): a value that does not would be
 * shown as another number, and sent back as shown it would be a 409. */
static bool real_fits_15_digits(double x)
{
	char text[32];
	snprintf(text, sizeof text, "%.15g", x);
	return strtod(text, NULL) == x;
}

/* Flat object of at most 32 keys; values strings, numbers (reals of up to 15 significant
 * digits) or booleans. */
static int check_attributes(json_t *attrs, struct field_error *err)
{
	const char *key, *s;
	json_t *v;
	size_t n;

	if (!json_is_object(attrs))
		return fail(err, INVALID, "attributes", NULL,
		            "attributes must be an object with string, number or boolean values");
	if (json_object_size(attrs) > SURVEY_ATTRIBUTES_MAX)
		return fail(err, INVALID, "attributes", NULL, "attributes may have at most %d keys",
		            SURVEY_ATTRIBUTES_MAX);
	json_object_foreach (attrs, key, v) {
		n = utf8_length(key);
		if (n < 1 || n > ATTR_KEY_MAX_CHARS)
			return fail(err, INVALID, "attributes.", key,
			            "attribute names must be 1 to %d characters", ATTR_KEY_MAX_CHARS);
		if (has_control(key, false))
			return fail(err, INVALID, "attributes.", key,
			            "attribute names must not contain control characters");
		if (json_is_real(v) && !real_fits_15_digits(json_real_value(v)))
			return fail(err, INVALID, "attributes.", key,
			            "attribute numbers keep at most 15 significant digits (as answers show "
			            "them): send this one as a string");
		if (json_is_number(v) || json_is_boolean(v))
			continue;
		if (!json_is_string(v))
			return fail(err, INVALID, "attributes.", key,
			            "attribute values must be a string, number or boolean "
			            "(not null, an array or an object)");
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v) || has_control(s, false))
			return fail(err, INVALID, "attributes.", key,
			            "attribute values must not contain control characters");
		if (utf8_length(s) > ATTR_VALUE_MAX_CHARS)
			return fail(err, INVALID, "attributes.", key,
			            "attribute values must be at most %d characters", ATTR_VALUE_MAX_CHARS);
	}
	return 0;
}

static int check_answered_at(json_t *v, int64_t now, struct survey_input *in, struct field_error *err)
{
	int64_t t;

	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    time_parse_rfc3339(json_string_value(v), &t) < 0)
		return fail(err, INVALID, "answered_at", NULL,
		            "answered_at must be an RFC 3339 time such as 2026-11-22T10:15:00Z");
	if (t > now + FUTURE_SLACK_SECONDS)
		return fail(err, INVALID, "answered_at", NULL,
		            "answered_at must not be more than 5 minutes in the future");
	if (t < EPOCH_2000)
		return fail(err, INVALID, "answered_at", NULL, "answered_at must not be before 2000-01-01");
	in->answered_at = t;
	in->answered_at_given = true;
	return 0;
}

/*
 * Optional members of customer, in SPEC order. An empty name counts as absent: survey tools
 * send "" for "unknown", and a stored "" only makes the agent console show a blank.
 */
static int check_customer_optional(json_t *cust, struct survey_input *in, struct field_error *err)
{
	json_t *v;

	if ((v = member(cust, "name")) &&
	    string_field(v, "customer.name", "customer.name must be a string of at most 200 characters", 0,
	                 NAME_MAX_CHARS, false, &in->customer_name, err) < 0)
		return -1;
	if (in->customer_name && in->customer_name[0] == '\0')
		in->customer_name = NULL;
	if ((v = member(cust, "phone")) &&
	    shaped_field(v, "customer.phone", valid_e164,
	                 "customer.phone must be E.164: + and 8 to 15 digits", &in->customer_phone, err) < 0)
		return -1;
	if ((v = member(cust, "email")) &&
	    shaped_field(v, "customer.email", valid_email,
	                 "customer.email must be an email address such as name@example.com, "
	                 "at most 254 bytes, without spaces",
	                 &in->customer_email, err) < 0)
		return -1;
	if ((v = member(cust, "language")) &&
	    shaped_field(v, "customer.language", valid_language,
	                 "customer.language must be a BCP 47 language tag such as \"nl\" or \"en-GB\"",
	                 &in->customer_language, err) < 0)
		return -1;
	return 0;
}

int validate_survey(json_t *doc, int64_t now, struct survey_input *ret, struct field_error *err)
{
	struct survey_input in;
	json_t *v, *cust;
	json_int_t score;

	memset(&in, 0, sizeof(in));
	in.answered_at = now;
	in.consent = true;

	if (!json_is_object(doc))
		return fail(err, INVALID, "", NULL, "a survey answer must be a JSON object");
	if (reject_unknown(doc, survey_fields, "",
	                   "unknown field; a survey answer has only response_id, customer, "
	                   "touchpoint, channel, score, comment, answered_at, contact_consent "
	                   "and attributes",
	                   err) < 0)
		return -1;

	/* Required fields. */
	if (!(v = member(doc, "response_id")))
		return fail(err, MISSING, "response_id", NULL, "response_id is required");
	if (string_field(v, "response_id", "response_id must be a string of 1 to 128 characters", 1,
	                 ID_MAX_CHARS, false, &in.response_id, err) < 0)
		return -1;

	if (!(cust = member(doc, "customer")))
		return fail(err, MISSING, "customer", NULL, "customer is required");
	if (!json_is_object(cust))
		return fail(err, INVALID, "customer", NULL, "customer must be an object with at least an id");
	if (reject_unknown(cust, customer_fields, "customer.",
	                   "unknown field; customer has only id, name, phone, email and language", err) < 0)
		return -1;
	if (!(v = member(cust, "id")))
		return fail(err, MISSING, "customer.id", NULL, "customer.id is required");
	if (string_field(v, "customer.id", "customer.id must be a string of 1 to 128 characters", 1,
	                 ID_MAX_CHARS, false, &in.customer_id, err) < 0)
		return -1;

	if (!(v = member(doc, "touchpoint")))
		return fail(err, MISSING, "touchpoint", NULL, "touchpoint is required");
	if (shaped_field(v, "touchpoint", valid_token_name,
	                 "touchpoint must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'",
	                 &in.touchpoint, err) < 0)
		return -1;

	if (!(v = member(doc, "score")))
		return fail(err, MISSING, "score", NULL, "score is required");
	/* json_is_integer is false for 7.0, "7" and true: SPEC wants an integer, and
	 * silently rounding a real would store a score the customer never gave. */
	score = json_is_integer(v) ? json_integer_value(v) : -1;
	if (score < 0 || score > 10)
		return fail(err, INVALID, "score", NULL, "score must be an integer from 0 to 10");
	in.score = (int)score;

	/* Optional fields, in SPEC order. */
	if (check_customer_optional(cust, &in, err) < 0)
		return -1;
	if ((v = member(doc, "channel")) &&
	    shaped_field(v, "channel", valid_token_name,
	                 "channel must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'", &in.channel,
	                 err) < 0)
		return -1;
	if ((v = member(doc, "comment")) &&
	    string_field(v, "comment", "comment must be a string of at most 4000 characters", 0,
	                 COMMENT_MAX_CHARS, true, &in.comment, err) < 0)
		return -1;
	/* Survey tools send "" for "no comment"; storing NULL keeps "has a comment" one test,
	 * which the comment-completes-an-answer rule of idempotent retries relies on. */
	if (in.comment && in.comment[0] == '\0')
		in.comment = NULL;
	if ((v = member(doc, "answered_at")) && check_answered_at(v, now, &in, err) < 0)
		return -1;
	if ((v = member(doc, "contact_consent"))) {
		if (!json_is_boolean(v))
			return fail(err, INVALID, "contact_consent", NULL,
			            "contact_consent must be true or false");
		in.consent = json_is_true(v);
		in.consent_given = true;
	}
	if ((v = member(doc, "attributes"))) {
		if (check_attributes(v, err) < 0)
			return -1;
		if (json_object_size(v) > 0)
			in.attributes = v;
	}

	*ret = in;
	return 0;
}

#define NOTES_MAX_CHARS 4000
#define IMPROVEMENT_MAX_CHARS 2000
#define CALL_LATER_MAX_SECONDS (30 * 86400)

static const char *const outcomes[] = {
	"reached",    "declined",     "no_answer",   "busy", "voicemail",
	"call_later", "wrong_number", "do_not_call", NULL,
};
static const char *const areas[] = {
	"process", "communication", "service", "product", "other", NULL,
};

static int check_improvements(json_t *list, struct complete_input *in, struct field_error *err)
{
	if (!json_is_array(list) || json_array_size(list) > IMPROVEMENTS_MAX)
		return fail(err, INVALID, "improvements", NULL,
		            "improvements must be an array of at most %d {\"area\", \"text\"} objects",
		            IMPROVEMENTS_MAX);
	size_t i;
	json_t *item;
	json_array_foreach (list, i, item) {
		char prefix[48];
		snprintf(prefix, sizeof prefix, "improvements.%zu.", i);
		if (!json_is_object(item)) {
			prefix[strlen(prefix) - 1] = '\0'; /* the item itself: no trailing dot */
			return fail(err, INVALID, prefix, NULL,
			            "each improvement must be an object with area and text");
		}
		static const char *const fields[] = { "area", "text", NULL };
		if (reject_unknown(item, fields, prefix, "an improvement has only area and text", err) < 0)
			return -1;
		json_t *area = member(item, "area"), *text = member(item, "text");
		if (!area)
			return fail(err, MISSING, prefix, "area", "area is required");
		if (!json_is_string(area) || !valid_area(json_string_value(area)))
			return fail(err, INVALID, prefix, "area",
			            "area must be process, communication, service, product or other");
		if (!text)
			return fail(err, MISSING, prefix, "text", "text is required");
		char field[64];
		snprintf(field, sizeof field, "%stext", prefix);
		if (string_field(text, field, "text must be a string of 1 to 2000 characters", 1,
		                 IMPROVEMENT_MAX_CHARS, true, &in->improvements[i].text, err) < 0)
			return -1;
		/* Spaces alone are no idea, and would stand in the improvements report as one. */
		if (!in->improvements[i].text[strspn(in->improvements[i].text, " \t\r\n")])
			return fail(err, INVALID, field, NULL, "text must not be blank");
		in->improvements[i].area = json_string_value(area);
	}
	in->nimprovements = json_array_size(list);
	return 0;
}

int validate_complete(json_t *doc, int64_t now, struct complete_input *ret, struct field_error *err)
{
	static const char *const fields[] = { "outcome", "notes", "improvements", "retry_at", NULL };
	struct complete_input in = { 0 };
	if (!json_is_object(doc))
		return fail(err, INVALID, "", NULL, "the body must be a JSON object");
	if (reject_unknown(doc, fields, "",
	                   "unknown field: allowed are outcome, notes, improvements, retry_at", err) < 0)
		return -1;
	json_t *outcome = member(doc, "outcome");
	if (!outcome)
		return fail(err, MISSING, "outcome", NULL, "outcome is required");
	if (!json_is_string(outcome) || !in_list(json_string_value(outcome), outcomes))
		return fail(err, INVALID, "outcome", NULL,
		            "outcome must be one of reached, declined, no_answer, busy, voicemail, "
		            "call_later, wrong_number, do_not_call");
	in.outcome = json_string_value(outcome);
	json_t *notes = member(doc, "notes");
	if (notes && string_field(notes, "notes", "notes must be a string of at most 4000 characters", 0,
	                          NOTES_MAX_CHARS, true, &in.notes, err) < 0)
		return -1;
	if (in.notes && !*in.notes)
		in.notes = NULL;
	json_t *improvements = member(doc, "improvements");
	if (improvements && check_improvements(improvements, &in, err) < 0)
		return -1;
	json_t *retry_at = member(doc, "retry_at");
	if (strcmp(in.outcome, "call_later") == 0) {
		if (!retry_at)
			return fail(err, MISSING, "retry_at", NULL,
			            "call_later needs retry_at: when to call again");
		if (!json_is_string(retry_at) ||
		    time_parse_rfc3339(json_string_value(retry_at), &in.retry_at) < 0)
			return fail(err, INVALID, "retry_at", NULL, "retry_at must be an RFC 3339 time");
		if (in.retry_at <= now || in.retry_at > now + CALL_LATER_MAX_SECONDS)
			return fail(err, INVALID, "retry_at", NULL,
			            "retry_at must be in the future and within 30 days");
	} else if (retry_at) {
		return fail(err, INVALID, "retry_at", NULL, "retry_at goes only with the outcome call_later");
	}
	*ret = in;
	return 0;
}

int validate_claim(json_t *doc, const char **ret_touchpoint, struct field_error *err)
{
	static const char *const fields[] = { "touchpoint", NULL };
	const char *touchpoint = NULL;
	if (doc) {
		if (!json_is_object(doc))
			return fail(err, INVALID, "", NULL, "the body must be a JSON object");
		if (reject_unknown(doc, fields, "", "unknown field: the only filter is touchpoint", err) < 0)
			return -1;
		json_t *tp = member(doc, "touchpoint");
		if (tp && shaped_field(tp, "touchpoint", valid_token_name,
		                       "touchpoint must match [a-z0-9_.-]{1,64}", &touchpoint, err) < 0)
			return -1;
	}
	*ret_touchpoint = touchpoint;
	return 0;
}

#define EXCLUDE_REASON_MAX_CHARS 500

int validate_survey_patch(json_t *doc, struct survey_patch *ret, struct field_error *err)
{
	static const char *const fields[] = { "excluded", "reason", NULL };
	struct survey_patch in = { 0 };
	if (!json_is_object(doc))
		return fail(err, INVALID, "", NULL, "the body must be a JSON object");
	if (reject_unknown(doc, fields, "", "unknown field: allowed are excluded and reason", err) < 0)
		return -1;
	json_t *excluded = member(doc, "excluded");
	if (!excluded)
		return fail(err, MISSING, "excluded", NULL, "excluded is required: true or false");
	if (!json_is_boolean(excluded))
		return fail(err, INVALID, "excluded", NULL, "excluded must be true or false");
	in.excluded = json_is_true(excluded);
	json_t *reason = member(doc, "reason");
	if (reason && string_field(reason, "reason", "reason must be a string of at most 500 characters", 0,
	                           EXCLUDE_REASON_MAX_CHARS, false, &in.reason, err) < 0)
		return -1;
	if (in.reason && !*in.reason)
		in.reason = NULL;
	/* Putting an answer back clears its reason: one sent with it would be dropped unseen. */
	if (in.reason && !in.excluded)
		return fail(err, INVALID, "reason", NULL, "a reason goes with excluded: true only");
	*ret = in;
	return 0;
}

bool valid_area(const char *s)
{
	return in_list(s, areas);
}

int parse_decimal(const char *text, bool negative, int64_t *ret_value, const char **ret_end)
{
	/* strtoll alone would take spaces, a '+', a '-' where none is wanted, and cap what
	 * overflows. */
	const char *digits = negative && text[0] == '-' ? text + 1 : text;
	if (!isdigit((unsigned char)digits[0]))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno)
		return -1;
	*ret_value = v;
	*ret_end = end;
	return 0;
}

int parse_callback_cursor(const char *text, struct callback_cursor *ret)
{
	static const int64_t max[4] = { 1, 10, INT64_MAX, INT64_MAX };
	int64_t parts[4] = { 0 };
	int n = 0;
	const char *p = text;
	for (;; n++) {
		const char *end;
		if (n == 4 || parse_decimal(p, false, &parts[n], &end) < 0 || parts[n] > max[n] ||
		    (n >= 2 && parts[n] < 1))
			return -1;
		if (*end == '\0')
			break;
		if (*end != '.')
			return -1;
		p = end + 1;
	}
	if (n < 2)
		return -1;
	memcpy(ret->key, parts, sizeof ret->key);
	ret->as_of = parts[3];
	return 0;
}

const char *survey_category(int score)
{
	if (score >= 9)
		return "promoter";
	if (score >= 7)
		return "passive";
	return "detractor";
}

/* Decodes one code point from s (n > 0 bytes available). Returns its length, or 0 when the
 * bytes are not well-formed UTF-8 (overlong forms and surrogates included). */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret)
{
	uint32_t cp;
	size_t len;
	if (s[0] < 0x80) {
		*ret = s[0];
		return 1;
	} else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		cp = s[0] & 0x1f;
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		cp = s[0] & 0x0f;
		len = 3;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		cp = s[0] & 0x07;
		len = 4;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret = cp;
	return len;
}

void utf8_scrub(char *s, size_t len)
{
	unsigned char *p = (unsigned char *)s;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = p[i] ? utf8_decode(p + i, len - i, &cp) : 0;
		if (n == 0) {
			p[i++] = '?';
			continue;
		}
		i += n;
	}
}

size_t utf8_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

bool valid_name(const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), chars = 0;
	while (left > 0) {
		uint32_t cp;
		size_t n = utf8_decode(p, left, &cp);
		if (n == 0)
			return false;
		p += n;
		left -= n;
		chars++;
	}
	return chars >= 1 && chars <= max_chars && !has_control(s, false);
}

bool valid_token_name(const char *s)
{
	size_t n = 0;
	unsigned char c;

	for (; (c = (unsigned char)s[n]); n++) {
		if (n >= TOKEN_MAX_BYTES)
			return false;
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return n > 0;
}

bool valid_e164(const char *s)
{
	size_t n = 0;

	if (*s++ != '+')
		return false;
	for (; s[n]; n++)
		if (!is_digit((unsigned char)s[n]) || n >= 15)
			return false;
	return n >= 8;
}

/*
 * A deliberately loose shape check: one '@', a non-empty local part, a domain with a dot that
 * neither starts nor ends it and no empty labels, no spaces or control characters, at most
 * 254 bytes. Whether the mailbox exists is for the mail server to say; internationalised
 * addresses (UTF-8 letters) pass.
 */
bool valid_email(const char *s)
{
	const char *at = strchr(s, '@'), *dom;
	size_t len = strlen(s), dlen;

	if (len == 0 || len > EMAIL_MAX_BYTES || !at || at == s || strchr(at + 1, '@'))
		return false;
	if (has_control(s, false))
		return false;
	for (const char *p = s; *p; p++)
		if (*p == ' ')
			return false;
	dom = at + 1;
	dlen = strlen(dom);
	if (dlen < 3 || !strchr(dom, '.') || dom[0] == '.' || dom[dlen - 1] == '.' || strstr(dom, ".."))
		return false;
	return true;
}

/*
 * The shape of a BCP 47 tag, not its registry: a 2-3 letter primary language, then subtags of
 * 2 to 8 letters or digits ("en-GB", "zh-Hant-TW", "es-419"), at most 35 characters. Single
 * character subtags (extensions, "x-" private use) are refused; no survey tool sends them.
 */
bool valid_language(const char *s)
{
	size_t i = 0, n;

	if (strlen(s) > LANGUAGE_MAX_BYTES)
		return false;
	while (is_alpha((unsigned char)s[i]))
		i++;
	if (i < 2 || i > 3)
		return false;
	while (s[i] == '-') {
		i++;
		for (n = 0; is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]); n++)
			i++;
		if (n < 2 || n > 8)
			return false;
	}
	return s[i] == '\0';
}

/* Reads exactly n ASCII digits; stops at the first non-digit, so never reads past a NUL. */
static bool read_digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

static int days_in_month(int year, int month)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

/*
 * Parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM); 'T' and 'Z' may be lowercase (RFC
 * 3339 section 5.6), "-00:00" means UTC. The calendar is checked (no February 30th). The
 * fraction is dropped, rounding down. A leap second (":60") is one only in the last minute of
 * June 30th or December 31st UTC, the only places one is ever inserted; it counts as :59 of
 * that minute, so a stored time never moves to the next day. Any other ":60" is no time.
 * Returns 0 and sets *ret_seconds, or -EINVAL and leaves it alone.
 */
int time_parse_rfc3339(const char *s, int64_t *ret_seconds)
{
	int year, mon, day, hour, min, sec, off_h = 0, off_m = 0, sign = 0;
	struct tm tm;
	const char *p;

	if (!read_digits(s, 4, &year) || s[4] != '-' || !read_digits(s + 5, 2, &mon) || s[7] != '-' ||
	    !read_digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
	    !read_digits(s + 11, 2, &hour) || s[13] != ':' || !read_digits(s + 14, 2, &min) || s[16] != ':' ||
	    !read_digits(s + 17, 2, &sec))
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		if (!is_digit((unsigned char)*++p))
			return -EINVAL;
		while (is_digit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!read_digits(p + 1, 2, &off_h) || p[3] != ':' || !read_digits(p + 4, 2, &off_m))
			return -EINVAL;
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
	    sec > 60 || off_h > 23 || off_m > 59)
		return -EINVAL;
	bool leap_second = sec == 60;
	if (leap_second)
		sec = 59;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	/* Years 0000-9999 always fit a 64-bit time_t, so timegm cannot fail here; its -1 is
	 * 1969-12-31T23:59:59Z, a real time. */
	int64_t t = (int64_t)timegm(&tm) - sign * (off_h * 3600 + off_m * 60);
	if (leap_second) {
		time_t utc = (time_t)t;
		struct tm u;
		if (!gmtime_r(&utc, &u) || u.tm_hour != 23 || u.tm_min != 59 ||
		    !((u.tm_mon == 5 && u.tm_mday == 30) || (u.tm_mon == 11 && u.tm_mday == 31)))
			return -EINVAL;
	}
	*ret_seconds = t;
	return 0;
}

/* Writes v (0 <= v < 10^n) as exactly n digits, zero-padded. */
static char *put_digits(char *p, int v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

/*
 * Times outside 0000-01-01T00:00:00Z..9999-12-31T23:59:59Z are clamped to those bounds, so
 * the output is always exactly 20 characters and a NUL. Digits are written by hand because
 * gcc cannot prove that snprintf's "%04d" of a struct tm field fits 4 characters.
 */
char *time_format_rfc3339(int64_t seconds, char buf[static 21])
{
	time_t t = (time_t)(seconds < TIME_MIN ? TIME_MIN : seconds > TIME_MAX ? TIME_MAX : seconds);
	struct tm tm;
	char *p = buf;

	gmtime_r(&t, &tm);
	p = put_digits(p, tm.tm_year + 1900, 4);
	*p++ = '-';
	p = put_digits(p, tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_digits(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, tm.tm_sec, 2);
	*p++ = 'Z';
	*p = '\0';
	return buf;
}
