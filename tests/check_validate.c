/*
 * Unit tests for src/validate.c: SPEC's Surveys rules, field by field, with their boundaries,
 * plus the malformed-body corpus in tests/corpus/malformed (run from the repository root).
 */
#include "npsd/validate.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* 2026-11-22T10:25:00Z: ten minutes after the SPEC example's answered_at. */
#define NOW INT64_C(1795343100)
#define SPEC_ANSWERED_AT INT64_C(1795342500)

#define CORPUS_DIR "tests/corpus/malformed"
#define CORPUS_MIN_FILES 36
#define CORPUS_MAX_BYTES (200 * 1024)

static const char spec_body[] =
	"{\"response_id\": \"allsecur-2026-000123\",\n"
	" \"customer\": {\"id\": \"C-1001\", \"name\": \"J. Jansen\", \"phone\": \"+31612345678\",\n"
	"              \"email\": \"j@example.nl\", \"language\": \"nl\"},\n"
	" \"touchpoint\": \"claim\", \"channel\": \"web\", \"score\": 7,\n"
	" \"comment\": \"Took three weeks to pay out\", \"answered_at\": \"2026-11-22T10:15:00Z\",\n"
	" \"contact_consent\": true, \"attributes\": {\"policy\": \"AUTO-88\", \"product\": \"car\"}}";

/* The SPEC example, parsed; the caller owns the reference. */
static json_t *spec_doc(void)
{
	json_error_t jerr;
	json_t *doc = json_loads(spec_body, 0, &jerr);

	ck_assert_msg(doc != NULL, "SPEC body does not parse: %s", jerr.text);
	return doc;
}

static json_t *parse_any(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

	ck_assert_msg(v != NULL, "test value %s does not parse: %s", text, jerr.text);
	return v;
}

/*
 * Sets (value != NULL) or deletes (value == NULL) the member at path, one level of nesting
 * ("customer.phone") at most. value is JSON text; the document keeps its own reference.
 */
static void set_path(json_t *doc, const char *path, const char *value)
{
	const char *dot = strchr(path, '.');
	json_t *obj = doc;
	char head[64];

	if (dot) {
		ck_assert_uint_lt((size_t)(dot - path), sizeof(head));
		memcpy(head, path, (size_t)(dot - path));
		head[dot - path] = '\0';
		obj = json_object_get(doc, head);
		ck_assert_ptr_nonnull(obj);
		path = dot + 1;
	}
	if (value)
		ck_assert_int_eq(json_object_set_new(obj, path, parse_any(value)), 0);
	else
		json_object_del(obj, path);
}

/* A string of n copies of unit (which may be multi-byte UTF-8), as a JSON value; caller owns. */
static json_t *repeat(const char *unit, size_t n)
{
	size_t ulen = strlen(unit);
	char *buf = malloc(ulen * n + 1);
	json_t *s;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * ulen, unit, ulen);
	buf[ulen * n] = '\0';
	s = json_string(buf);
	free(buf);
	ck_assert_ptr_nonnull(s);
	return s;
}

/*
 * Runs validate_survey and checks that a failure leaves *ret untouched. Steals doc, so the
 * borrowed pointers in *in dangle afterwards: only its scalars may be read.
 */
static int run(json_t *doc, int64_t now, struct survey_input *in, struct field_error *err)
{
	struct survey_input poison;
	int rc;

	memset(&poison, 0xA5, sizeof(poison));
	*in = poison;
	memset(err, 0, sizeof(*err));
	rc = validate_survey(doc, now, in, err);
	if (rc < 0) {
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(memcmp(in, &poison, sizeof(poison)) == 0, "ret written on failure");
		ck_assert_ptr_nonnull(err->code);
		ck_assert_msg(err->message[0] != '\0', "empty message for %s", err->field);
	} else {
		ck_assert_int_eq(rc, 0);
	}
	json_decref(doc);
	return rc;
}

/* Asserts at the caller's line that doc is refused with code for field. */
#define assert_refused(doc, now, ecode, efield)                                                    \
	do {                                                                                       \
		struct survey_input in_;                                                           \
		struct field_error err_;                                                           \
		ck_assert_int_eq(run((doc), (now), &in_, &err_), -1);                              \
		ck_assert_str_eq(err_.code, (ecode));                                              \
		ck_assert_str_eq(err_.field, (efield));                                            \
	} while (0)

#define assert_accepted(doc, now)                                                                  \
	do {                                                                                       \
		struct survey_input in_;                                                           \
		struct field_error err_;                                                           \
		int rc_ = run((doc), (now), &in_, &err_);                                          \
		ck_assert_msg(rc_ == 0, "refused: %s %s: %s", err_.code, err_.field, err_.message); \
	} while (0)

START_TEST(test_spec_example)
{
	json_t *doc = spec_doc();
	struct survey_input in;
	struct field_error err;

	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(validate_survey(doc, NOW, &in, &err), 0);
	ck_assert_str_eq(in.response_id, "allsecur-2026-000123");
	ck_assert_str_eq(in.customer_id, "C-1001");
	ck_assert_str_eq(in.customer_name, "J. Jansen");
	ck_assert_str_eq(in.customer_phone, "+31612345678");
	ck_assert_str_eq(in.customer_email, "j@example.nl");
	ck_assert_str_eq(in.customer_language, "nl");
	ck_assert_str_eq(in.touchpoint, "claim");
	ck_assert_str_eq(in.channel, "web");
	ck_assert_str_eq(in.comment, "Took three weeks to pay out");
	ck_assert_int_eq(in.score, 7);
	ck_assert_int_eq(in.answered_at, SPEC_ANSWERED_AT);
	ck_assert(in.answered_at_given);
	ck_assert(in.consent);
	ck_assert_ptr_eq(in.attributes, json_object_get(doc, "attributes"));
	ck_assert_str_eq(json_string_value(json_object_get(in.attributes, "policy")), "AUTO-88");
	ck_assert_str_eq(survey_category(in.score), "passive");
	json_decref(doc);
}
END_TEST

START_TEST(test_minimal_defaults)
{
	json_t *doc = parse_any("{\"response_id\":\"r\",\"customer\":{\"id\":\"c\"},"
				"\"touchpoint\":\"t\",\"score\":0}");
	struct survey_input in;
	struct field_error err;

	ck_assert_int_eq(validate_survey(doc, NOW, &in, &err), 0);
	ck_assert_str_eq(in.response_id, "r");
	ck_assert_int_eq(in.score, 0);
	ck_assert_ptr_null(in.customer_name);
	ck_assert_ptr_null(in.customer_phone);
	ck_assert_ptr_null(in.customer_email);
	ck_assert_ptr_null(in.customer_language);
	ck_assert_ptr_null(in.channel);
	ck_assert_ptr_null(in.comment);
	ck_assert_ptr_null(in.attributes);
	ck_assert_int_eq(in.answered_at, NOW);
	ck_assert(!in.answered_at_given);
	ck_assert(in.consent);
	json_decref(doc);
}
END_TEST

/* null is "absent" for every optional field, and "" / {} are absent for comment, name, attributes. */
START_TEST(test_null_and_empty_optionals)
{
	json_t *doc = spec_doc();
	struct survey_input in;
	struct field_error err;
	static const char *const nullable[] = {
		"customer.name", "customer.phone", "customer.email", "customer.language",
		"channel", "answered_at", "contact_consent", "attributes",
	};

	for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++)
		set_path(doc, nullable[i], "null");
	set_path(doc, "comment", "\"\"");
	ck_assert_int_eq(validate_survey(doc, NOW, &in, &err), 0);
	ck_assert_ptr_null(in.customer_name);
	ck_assert_ptr_null(in.customer_phone);
	ck_assert_ptr_null(in.customer_email);
	ck_assert_ptr_null(in.customer_language);
	ck_assert_ptr_null(in.channel);
	ck_assert_ptr_null(in.comment);
	ck_assert_ptr_null(in.attributes);
	ck_assert(!in.answered_at_given);
	ck_assert_int_eq(in.answered_at, NOW);
	ck_assert(in.consent);

	set_path(doc, "customer.name", "\"\"");
	set_path(doc, "attributes", "{}");
	set_path(doc, "contact_consent", "false");
	ck_assert_int_eq(validate_survey(doc, NOW, &in, &err), 0);
	ck_assert_ptr_null(in.customer_name);
	ck_assert_ptr_null(in.attributes);
	ck_assert(!in.consent);
	json_decref(doc);
}
END_TEST

/* One mutation of the SPEC example and the error it must produce. value NULL deletes. */
struct refusal {
	const char *path;
	const char *value;
	const char *code;
	const char *field;
};

static const struct refusal refusals[] = {
	/* required: missing, null, wrong */
	{"response_id", NULL, "missing_field", "response_id"},
	{"response_id", "null", "missing_field", "response_id"},
	{"response_id", "\"\"", "invalid_field", "response_id"},
	{"response_id", "42", "invalid_field", "response_id"},
	{"response_id", "[\"r\"]", "invalid_field", "response_id"},
	{"response_id", "\"a\\u0001b\"", "invalid_field", "response_id"},
	{"response_id", "\"a\\tb\"", "invalid_field", "response_id"},
	{"customer", NULL, "missing_field", "customer"},
	{"customer", "null", "missing_field", "customer"},
	{"customer", "\"C-1001\"", "invalid_field", "customer"},
	{"customer", "[]", "invalid_field", "customer"},
	{"customer.id", NULL, "missing_field", "customer.id"},
	{"customer.id", "null", "missing_field", "customer.id"},
	{"customer.id", "\"\"", "invalid_field", "customer.id"},
	{"customer.id", "1001", "invalid_field", "customer.id"},
	{"customer.id", "\"C\\n1\"", "invalid_field", "customer.id"},
	{"touchpoint", NULL, "missing_field", "touchpoint"},
	{"touchpoint", "null", "missing_field", "touchpoint"},
	{"touchpoint", "\"\"", "invalid_field", "touchpoint"},
	{"touchpoint", "\"Claim\"", "invalid_field", "touchpoint"},
	{"touchpoint", "\"new claim\"", "invalid_field", "touchpoint"},
	{"touchpoint", "\"claim/new\"", "invalid_field", "touchpoint"},
	{"touchpoint", "\"cl\\u00e9im\"", "invalid_field", "touchpoint"},
	{"touchpoint", "7", "invalid_field", "touchpoint"},
	{"score", NULL, "missing_field", "score"},
	{"score", "null", "missing_field", "score"},
	{"score", "-1", "invalid_field", "score"},
	{"score", "11", "invalid_field", "score"},
	{"score", "7.0", "invalid_field", "score"},
	{"score", "7.5", "invalid_field", "score"},
	{"score", "\"7\"", "invalid_field", "score"},
	{"score", "true", "invalid_field", "score"},
	{"score", "false", "invalid_field", "score"},
	{"score", "[7]", "invalid_field", "score"},
	{"score", "{}", "invalid_field", "score"},
	{"score", "9223372036854775807", "invalid_field", "score"},
	{"score", "-9223372036854775808", "invalid_field", "score"},
	/* optional */
	{"customer.name", "5", "invalid_field", "customer.name"},
	{"customer.name", "\"J.\\u0007Jansen\"", "invalid_field", "customer.name"},
	{"customer.name", "\"J.\\u007fJansen\"", "invalid_field", "customer.name"},
	{"customer.name", "\"J.\\u0085Jansen\"", "invalid_field", "customer.name"},
	{"customer.phone", "\"+31 612345678\"", "invalid_field", "customer.phone"},
	{"customer.phone", "\"+1234567\"", "invalid_field", "customer.phone"},
	{"customer.phone", "\"+1234567890123456\"", "invalid_field", "customer.phone"},
	{"customer.phone", "\"31612345678\"", "invalid_field", "customer.phone"},
	{"customer.phone", "\"+3161234567a\"", "invalid_field", "customer.phone"},
	{"customer.phone", "\"\"", "invalid_field", "customer.phone"},
	{"customer.phone", "31612345678", "invalid_field", "customer.phone"},
	{"customer.email", "\"j.example.nl\"", "invalid_field", "customer.email"},
	{"customer.email", "\"j@example\"", "invalid_field", "customer.email"},
	{"customer.email", "\"j @example.nl\"", "invalid_field", "customer.email"},
	{"customer.email", "\"\"", "invalid_field", "customer.email"},
	{"customer.email", "true", "invalid_field", "customer.email"},
	{"customer.language", "\"dutch\"", "invalid_field", "customer.language"},
	{"customer.language", "\"en_GB\"", "invalid_field", "customer.language"},
	{"customer.language", "\"\"", "invalid_field", "customer.language"},
	{"customer.language", "31", "invalid_field", "customer.language"},
	{"channel", "\"\"", "invalid_field", "channel"},
	{"channel", "\"Web\"", "invalid_field", "channel"},
	{"channel", "\"web form\"", "invalid_field", "channel"},
	{"channel", "1", "invalid_field", "channel"},
	{"comment", "1", "invalid_field", "comment"},
	{"comment", "[\"slow\"]", "invalid_field", "comment"},
	{"comment", "\"ring\\u0007\"", "invalid_field", "comment"},
	{"comment", "\"esc\\u001b[31m\"", "invalid_field", "comment"},
	{"comment", "\"del\\u007f\"", "invalid_field", "comment"},
	{"answered_at", "\"2026-11-22 10:15:00Z\"", "invalid_field", "answered_at"},
	{"answered_at", "\"2026-11-22T10:15:00\"", "invalid_field", "answered_at"},
	{"answered_at", "\"2026-02-30T10:00:00Z\"", "invalid_field", "answered_at"},
	{"answered_at", "\"1999-12-31T23:59:59Z\"", "invalid_field", "answered_at"},
	{"answered_at", "\"yesterday\"", "invalid_field", "answered_at"},
	{"answered_at", "\"\"", "invalid_field", "answered_at"},
	{"answered_at", "1795342500", "invalid_field", "answered_at"},
	{"contact_consent", "\"yes\"", "invalid_field", "contact_consent"},
	{"contact_consent", "1", "invalid_field", "contact_consent"},
	{"attributes", "[]", "invalid_field", "attributes"},
	{"attributes", "\"policy=AUTO-88\"", "invalid_field", "attributes"},
	{"attributes", "{\"a\":{}}", "invalid_field", "attributes.a"},
	{"attributes", "{\"a\":{\"b\":1}}", "invalid_field", "attributes.a"},
	{"attributes", "{\"ok\":1,\"b\":[]}", "invalid_field", "attributes.b"},
	{"attributes", "{\"ok\":true,\"c\":null}", "invalid_field", "attributes.c"},
	/* The longest key there may be, in two-byte characters: named whole. */
	{"attributes", "{\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\":null}", "invalid_field",
	 "attributes.\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"},
	{"attributes", "{\"\":\"x\"}", "invalid_field", "attributes."},
	{"attributes", "{\"k\\u0001\":\"x\"}", "invalid_field", "attributes.k\x01"},
	{"attributes", "{\"k\":\"a\\nb\"}", "invalid_field", "attributes.k"},
	/* Shown with 15 significant digits, it would read 1234.56789012346, and sent back as
	 * shown it would be a 409. */
	{"attributes", "{\"premium\":1234.5678901234567}", "invalid_field", "attributes.premium"},
	{"attributes", "{\"x\":0.1,\"r\":0.30000000000000004}", "invalid_field", "attributes.r"},
	/* unknown fields */
	{"nps", "7", "invalid_field", "nps"},
	{"Score", "7", "invalid_field", "Score"},
	{"extra", "null", "invalid_field", "extra"},
	{"customer.phone_number", "\"+31612345678\"", "invalid_field", "customer.phone_number"},
	{"customer.ID", "\"x\"", "invalid_field", "customer.ID"},
};

START_TEST(test_refusals)
{
	const struct refusal *r = &refusals[_i];
	json_t *doc = spec_doc();
	struct survey_input in;
	struct field_error err;

	set_path(doc, r->path, r->value);
	ck_assert_int_eq(run(doc, NOW, &in, &err), -1);
	ck_assert_msg(strcmp(err.code, r->code) == 0 && strcmp(err.field, r->field) == 0,
		      "%s = %s: expected %s %s, got %s %s (%s)", r->path,
		      r->value ? r->value : "(deleted)", r->code, r->field, err.code, err.field,
		      err.message);
}
END_TEST

/* Values at the edge of a rule that must still pass. */
static const struct refusal acceptances[] = {
	{"score", "0", NULL, NULL},
	{"score", "10", NULL, NULL},
	{"score", "-0", NULL, NULL},
	{"customer.phone", "\"+12345678\"", NULL, NULL},
	{"customer.phone", "\"+123456789012345\"", NULL, NULL},
	{"customer.email", "\"j\\u00e9@ex\\u00e4mple.nl\"", NULL, NULL},
	{"customer.language", "\"en-GB\"", NULL, NULL},
	{"customer.language", "\"zh-Hant-TW\"", NULL, NULL},
	{"customer.name", "\"J\\u00f6rg \\u6771\\u4eac \\ud83d\\ude00\"", NULL, NULL},
	{"touchpoint", "\"claim.v2_new-1\"", NULL, NULL},
	{"channel", "\"0\"", NULL, NULL},
	{"comment", "\"line 1\\nline 2\\r\\n\\ttabbed\"", NULL, NULL},
	{"answered_at", "\"2026-11-22T11:15:00+01:00\"", NULL, NULL},
	{"answered_at", "\"2026-11-22t10:15:00.999999z\"", NULL, NULL},
	{"answered_at", "\"2000-01-01T00:00:00Z\"", NULL, NULL},
	{"attributes", "{\"n\":1.5,\"i\":-3,\"b\":false,\"s\":\"\",\"e\":1e10}", NULL, NULL},
	/* 15 significant digits read back whole; integers of any 64-bit size are exact. */
	{"attributes", "{\"p\":1234.56789012345,\"t\":0.1,\"big\":12345678901234567}", NULL, NULL},
	{"attributes", "{\"k.with dots and spaces\":\"v\"}", NULL, NULL},
};

START_TEST(test_acceptances)
{
	const struct refusal *a = &acceptances[_i];
	json_t *doc = spec_doc();
	struct survey_input in;
	struct field_error err;

	set_path(doc, a->path, a->value);
	ck_assert_msg(run(doc, NOW, &in, &err) == 0, "%s = %s refused: %s %s: %s", a->path,
		      a->value, err.code, err.field, err.message);
}
END_TEST

START_TEST(test_not_an_object)
{
	static const char *const docs[] = {"[]", "[{}]", "\"x\"", "7", "true", "null"};
	struct survey_input in;
	struct field_error err;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		ck_assert_int_eq(run(parse_any(docs[i]), NOW, &in, &err), -1);
		ck_assert_str_eq(err.code, "invalid_field");
		ck_assert_str_eq(err.field, "");
		ck_assert_ptr_nonnull(strstr(err.message, "object"));
	}
	ck_assert_int_eq(run(NULL, NOW, &in, &err), -1);
	ck_assert_str_eq(err.field, "");
}
END_TEST

START_TEST(test_messages)
{
	struct survey_input in;
	struct field_error err;
	json_t *doc;

	doc = spec_doc();
	set_path(doc, "score", "7.0");
	run(doc, NOW, &in, &err);
	ck_assert_str_eq(err.message, "score must be an integer from 0 to 10");

	doc = spec_doc();
	set_path(doc, "customer.phone", "\"+31 6\"");
	run(doc, NOW, &in, &err);
	ck_assert_str_eq(err.message, "customer.phone must be E.164: + and 8 to 15 digits");

	doc = spec_doc();
	set_path(doc, "score", NULL);
	run(doc, NOW, &in, &err);
	ck_assert_str_eq(err.message, "score is required");

	doc = spec_doc();
	set_path(doc, "customer.name", "\"a\\u0001\"");
	run(doc, NOW, &in, &err);
	ck_assert_ptr_nonnull(strstr(err.message, "control characters"));

	doc = spec_doc();
	set_path(doc, "comment", "\"a\\u0001\"");
	run(doc, NOW, &in, &err);
	ck_assert_ptr_nonnull(strstr(err.message, "other than newline"));
}
END_TEST

/* The first problem wins, in the documented order. */
START_TEST(test_order)
{
	json_t *doc;

	/* An unknown key late in the document beats a missing required field. */
	doc = spec_doc();
	set_path(doc, "response_id", NULL);
	set_path(doc, "zzz", "1");
	assert_refused(doc, NOW, "invalid_field", "zzz");

	/* Of two unknown keys, the first in document order. */
	doc = parse_any("{\"b_unknown\":1,\"a_unknown\":2}");
	assert_refused(doc, NOW, "invalid_field", "b_unknown");

	/* Required in order: response_id, customer, customer.id, touchpoint, score. */
	assert_refused(parse_any("{}"), NOW, "missing_field", "response_id");
	assert_refused(parse_any("{\"score\":99,\"response_id\":\"r\"}"), NOW, "missing_field",
		       "customer");
	assert_refused(parse_any("{\"score\":99,\"touchpoint\":\"X\",\"response_id\":\"r\","
				 "\"customer\":{}}"),
		       NOW, "missing_field", "customer.id");
	assert_refused(parse_any("{\"score\":99,\"response_id\":\"r\",\"customer\":{\"id\":\"c\"}}"),
		       NOW, "missing_field", "touchpoint");

	/* An unknown customer key comes before customer.id. */
	assert_refused(parse_any("{\"response_id\":\"r\",\"customer\":{\"x\":1}}"), NOW,
		       "invalid_field", "customer.x");

	/* Required before optional, even when the optional comes first in the document. */
	doc = parse_any("{\"channel\":\"BAD\",\"response_id\":\"r\",\"customer\":{\"id\":\"c\"},"
			"\"touchpoint\":\"t\",\"score\":11}");
	assert_refused(doc, NOW, "invalid_field", "score");

	/* Optional fields in SPEC order: customer.* before channel before comment ... */
	doc = spec_doc();
	set_path(doc, "attributes", "[]");
	set_path(doc, "answered_at", "\"x\"");
	set_path(doc, "channel", "\"X\"");
	set_path(doc, "customer.language", "\"x\"");
	assert_refused(doc, NOW, "invalid_field", "customer.language");
}
END_TEST

START_TEST(test_length_boundaries)
{
	static const struct {
		const char *path;
		size_t max;
	} limits[] = {
		{"response_id", 128}, {"customer.id", 128}, {"customer.name", 200},
		{"comment", 4000},
	};
	/* 1-, 2-, 3- and 4-byte UTF-8: the limits count code points, not bytes. */
	static const char *const units[] = {"x", "\xc3\xa9", "\xe6\x9d\xb1", "\xf0\x9f\x98\x80"};

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			const char *dot = strchr(limits[i].path, '.');
			const char *key = dot ? dot + 1 : limits[i].path;
			json_t *doc = spec_doc();
			json_t *obj = dot ? json_object_get(doc, "customer") : doc;

			json_object_set_new(obj, key, repeat(units[u], limits[i].max));
			assert_accepted(doc, NOW);

			doc = spec_doc();
			obj = dot ? json_object_get(doc, "customer") : doc;
			json_object_set_new(obj, key, repeat(units[u], limits[i].max + 1));
			assert_refused(doc, NOW, "invalid_field", limits[i].path);
		}
	}
}
END_TEST

START_TEST(test_token_boundaries)
{
	json_t *doc;

	doc = spec_doc();
	json_object_set_new(doc, "touchpoint", repeat("a", 64));
	json_object_set_new(doc, "channel", repeat("9", 64));
	assert_accepted(doc, NOW);

	doc = spec_doc();
	json_object_set_new(doc, "touchpoint", repeat("a", 65));
	assert_refused(doc, NOW, "invalid_field", "touchpoint");

	doc = spec_doc();
	json_object_set_new(doc, "channel", repeat("-", 65));
	assert_refused(doc, NOW, "invalid_field", "channel");
}
END_TEST

START_TEST(test_answered_at_window)
{
	json_t *doc;
	char buf[21];
	struct survey_input in;
	struct field_error err;

	doc = spec_doc();
	json_object_set_new(doc, "answered_at", json_string(time_format_rfc3339(NOW + 299, buf)));
	ck_assert_int_eq(run(doc, NOW, &in, &err), 0);
	ck_assert_int_eq(in.answered_at, NOW + 299);
	ck_assert(in.answered_at_given);

	doc = spec_doc();
	json_object_set_new(doc, "answered_at", json_string(time_format_rfc3339(NOW + 300, buf)));
	assert_accepted(doc, NOW);

	doc = spec_doc();
	json_object_set_new(doc, "answered_at", json_string(time_format_rfc3339(NOW + 301, buf)));
	assert_refused(doc, NOW, "invalid_field", "answered_at");

	/* Offsets count: 11:30:01+01:00 is 301 s after NOW, 05:29:59-05:00 is 299 s. */
	doc = spec_doc();
	set_path(doc, "answered_at", "\"2026-11-22T11:30:01+01:00\"");
	assert_refused(doc, NOW, "invalid_field", "answered_at");
	doc = spec_doc();
	set_path(doc, "answered_at", "\"2026-11-22T05:29:59-05:00\"");
	assert_accepted(doc, NOW);

	doc = spec_doc();
	set_path(doc, "answered_at", "\"1999-12-31T23:59:59Z\"");
	assert_refused(doc, NOW, "invalid_field", "answered_at");
}
END_TEST

START_TEST(test_attribute_limits)
{
	json_t *doc, *attrs;
	char key[16];
	struct survey_input in;
	struct field_error err;

	doc = spec_doc();
	attrs = json_object();
	for (int i = 0; i < 32; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		json_object_set_new(attrs, key, json_integer(i));
	}
	json_object_set_new(doc, "attributes", attrs);
	ck_assert_int_eq(validate_survey(doc, NOW, &in, &err), 0);
	ck_assert_ptr_eq(in.attributes, attrs);
	ck_assert_int_eq(json_object_size(in.attributes), 32);
	json_decref(doc);

	doc = spec_doc();
	attrs = json_object();
	for (int i = 0; i < 33; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		json_object_set_new(attrs, key, json_integer(i));
	}
	json_object_set_new(doc, "attributes", attrs);
	assert_refused(doc, NOW, "invalid_field", "attributes");

	/* Key length in code points: 64 "é" (128 bytes) pass, 65 "a" fail. */
	doc = spec_doc();
	attrs = json_object();
	{
		json_t *k = repeat("\xc3\xa9", 64);
		json_object_set_new(attrs, json_string_value(k), json_true());
		json_decref(k);
	}
	json_object_set_new(doc, "attributes", attrs);
	assert_accepted(doc, NOW);

	doc = spec_doc();
	attrs = json_object();
	{
		json_t *k = repeat("a", 65);
		json_object_set_new(attrs, json_string_value(k), json_true());
		json_decref(k);
	}
	json_object_set_new(doc, "attributes", attrs);
	ck_assert_int_eq(run(doc, NOW, &in, &err), -1);
	ck_assert_str_eq(err.code, "invalid_field");
	ck_assert_int_eq(strncmp(err.field, "attributes.aaaa", 15), 0);

	/* Value length: 1000 code points pass, 1001 fail. */
	doc = spec_doc();
	attrs = json_object();
	json_object_set_new(attrs, "v", repeat("\xe2\x82\xac", 1000));
	json_object_set_new(doc, "attributes", attrs);
	assert_accepted(doc, NOW);

	doc = spec_doc();
	attrs = json_object();
	json_object_set_new(attrs, "v", repeat("\xe2\x82\xac", 1001));
	json_object_set_new(doc, "attributes", attrs);
	assert_refused(doc, NOW, "invalid_field", "attributes.v");
}
END_TEST

/* A long unknown key is cut to the field buffer at a character boundary, never mid-sequence. */
START_TEST(test_long_field_names_truncated)
{
	struct survey_input in;
	struct field_error err;
	json_t *doc = spec_doc();
	json_t *k = repeat("\xe2\x82\xac", 500);

	json_object_set_new(doc, json_string_value(k), json_true());
	json_decref(k);
	ck_assert_int_eq(run(doc, NOW, &in, &err), -1);
	ck_assert_uint_lt(strlen(err.field), sizeof(err.field));
	ck_assert_uint_eq(strlen(err.field) % 3, 0);
	k = json_string(err.field); /* NULL if err.field were not valid UTF-8 */
	ck_assert_ptr_nonnull(k);
	json_decref(k);

	doc = spec_doc();
	json_object_set_new(json_object_get(doc, "customer"), "\xc3\xa9\xc3\xa9", json_true());
	assert_refused(doc, NOW, "invalid_field", "customer.\xc3\xa9\xc3\xa9");
}
END_TEST

/* Documents built in code (not parsed) can hold a NUL inside a string; it must not hide text. */
START_TEST(test_embedded_nul)
{
	json_t *doc = spec_doc();

	json_object_set_new(doc, "response_id", json_stringn("ab\0cd", 5));
	assert_refused(doc, NOW, "invalid_field", "response_id");

	doc = spec_doc();
	json_object_set_new(json_object_get(doc, "customer"), "phone",
			    json_stringn("+31612345678\0x", 14));
	assert_refused(doc, NOW, "invalid_field", "customer.phone");
}
END_TEST

START_TEST(test_category)
{
	ck_assert_str_eq(survey_category(0), "detractor");
	ck_assert_str_eq(survey_category(6), "detractor");
	ck_assert_str_eq(survey_category(7), "passive");
	ck_assert_str_eq(survey_category(8), "passive");
	ck_assert_str_eq(survey_category(9), "promoter");
	ck_assert_str_eq(survey_category(10), "promoter");
}
END_TEST

START_TEST(test_utf8_length)
{
	ck_assert_uint_eq(utf8_length(""), 0);
	ck_assert_uint_eq(utf8_length("abc"), 3);
	ck_assert_uint_eq(utf8_length("\xc3\xa9t\xc3\xa9"), 3);
	ck_assert_uint_eq(utf8_length("\xe6\x9d\xb1\xe4\xba\xac"), 2);
	ck_assert_uint_eq(utf8_length("\xf0\x9f\x98\x80!"), 2);
}
END_TEST

struct shape_case {
	const char *s;
	bool ok;
};

START_TEST(test_token_table)
{
	static const struct shape_case cases[] = {
		{"claim", true}, {"a", true}, {"renewal_2026.q1-web", true}, {"0", true},
		{"", false}, {"Claim", false}, {"a b", false}, {"a/b", false}, {"caf\xc3\xa9", false},
		{"a\tb", false}, {"claim!", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(valid_token_name(cases[i].s) == cases[i].ok, "token \"%s\"",
			      cases[i].s);
}
END_TEST

START_TEST(test_e164_table)
{
	static const struct shape_case cases[] = {
		{"+31612345678", true}, {"+12345678", true}, {"+123456789012345", true},
		{"+1234567", false}, {"+1234567890123456", false}, {"31612345678", false},
		{"+31 612345678", false}, {"+31-6-12345678", false}, {"+3161234567a", false},
		{"++31612345678", false}, {"+", false}, {"", false}, {"+31612345678 ", false},
		{" +31612345678", false}, {"+31612345678\n", false}, {"+\xd9\xa3\xd9\xa1\xd9\xa6\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(valid_e164(cases[i].s) == cases[i].ok, "phone \"%s\"", cases[i].s);
}
END_TEST

START_TEST(test_email_table)
{
	static const struct shape_case cases[] = {
		{"j@example.nl", true}, {"j.jansen+nps@mail.example.co.uk", true},
		{"j\xc3\xa9@\xc3\xa9xample.nl", true}, {"a@b.c", true},
		{"", false}, {"j.example.nl", false}, {"@example.nl", false}, {"j@", false},
		{"j@example", false}, {"j@@example.nl", false}, {"j@x@example.nl", false},
		{"j @example.nl", false}, {"j@exa mple.nl", false}, {"j@example.nl\n", false},
		{"j\x01@example.nl", false}, {"j@.example.nl", false}, {"j@example.nl.", false},
		{"j@example..nl", false}, {"j@\xc2\x85x.nl", false},
	};
	char big[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(valid_email(cases[i].s) == cases[i].ok, "email \"%s\"", cases[i].s);

	/* 254 bytes pass, 255 fail. */
	memset(big, 'a', sizeof(big));
	memcpy(big + 254 - 12, "@example.com", 12);
	big[254] = '\0';
	ck_assert(valid_email(big));
	memset(big, 'a', sizeof(big));
	memcpy(big + 255 - 12, "@example.com", 12);
	big[255] = '\0';
	ck_assert(!valid_email(big));
}
END_TEST

START_TEST(test_language_table)
{
	static const struct shape_case cases[] = {
		{"nl", true}, {"en-GB", true}, {"nds", true}, {"zh-Hant-TW", true},
		{"es-419", true}, {"sl-rozaj-biske", true}, {"de-CH-1901", true},
		{"", false}, {"n", false}, {"dutc", false}, {"en_GB", false}, {"en-", false},
		{"-GB", false}, {"en-G", false}, {"en-abcdefghi", false}, {"en--GB", false},
		{"en GB", false}, {"e1", false}, {"en-GB ", false}, {"en-x-private", false},
		{"\xc3\xa9n", false},
		{"en-abcdefgh-abcdefgh-abcdefgh-abcd", true},   /* 34 */
		{"en-abcdefgh-abcdefgh-abcdefgh-abcde", true},  /* 35 */
		{"en-abcdefgh-abcdefgh-abcdefgh-abcdef", false}, /* 36 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(valid_language(cases[i].s) == cases[i].ok, "language \"%s\"",
			      cases[i].s);
}
END_TEST

START_TEST(test_time_parse_good)
{
	static const struct {
		const char *s;
		int64_t t;
	} cases[] = {
		{"1970-01-01T00:00:00Z", 0},
		{"1969-12-31T23:59:59Z", -1},
		{"2000-01-01T00:00:00Z", INT64_C(946684800)},
		{"2026-11-22T10:15:00Z", SPEC_ANSWERED_AT},
		{"2026-11-22t10:15:00z", SPEC_ANSWERED_AT},
		{"2026-11-22T10:15:00.5Z", SPEC_ANSWERED_AT},
		{"2026-11-22T10:15:00.999999999Z", SPEC_ANSWERED_AT},
		{"2026-11-22T11:15:00+01:00", SPEC_ANSWERED_AT},
		{"2026-11-22T05:15:00-05:00", SPEC_ANSWERED_AT},
		{"2026-11-22T15:45:00+05:30", SPEC_ANSWERED_AT},
		{"2026-11-22T10:15:00+00:00", SPEC_ANSWERED_AT},
		{"2026-11-22T10:15:00-00:00", SPEC_ANSWERED_AT},
		{"2026-11-23T00:14:00+13:59", SPEC_ANSWERED_AT},
		{"2024-02-29T00:00:00Z", INT64_C(1709164800)},
		{"2000-02-29T12:00:00Z", INT64_C(951825600)},
		{"2016-12-31T23:59:60Z", INT64_C(1483228799)}, /* leap second counts as :59 */
		{"2015-06-30T23:59:60Z", INT64_C(1435708799)},
		{"2017-01-01T00:59:60+01:00", INT64_C(1483228799)}, /* the same one, in CET */
		{"9999-12-31T23:59:59Z", INT64_C(253402300799)},
		{"0000-01-01T00:00:00Z", INT64_C(-62167219200)},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = 12345;

		ck_assert_msg(time_parse_rfc3339(cases[i].s, &t) == 0, "refused %s", cases[i].s);
		ck_assert_msg(t == cases[i].t, "%s: got %lld, want %lld", cases[i].s, (long long)t,
			      (long long)cases[i].t);
	}
}
END_TEST

START_TEST(test_time_parse_bad)
{
	static const char *const cases[] = {
		"", "2026", "2026-11-22", "2026-11-22T10:15Z", "2026-11-22T10:15:00",
		"2026-11-22 10:15:00Z", "2026-11-22T10:15:00ZZ", "2026-11-22T10:15:00Z ",
		" 2026-11-22T10:15:00Z", "2026-11-22T10:15:00.Z", "2026-11-22T10:15:00,5Z",
		"2026-11-22T10:15:00+0100", "2026-11-22T10:15:00+01", "2026-11-22T10:15:00+24:00",
		"2026-11-22T10:15:00+01:60", "2026-11-22T10:15:00UTC", "2026-11-22T10:15:00GMT+1",
		"26-11-22T10:15:00Z", "+2026-11-22T10:15:00Z", "20261122T101500Z",
		"2026-1-22T10:15:00Z", "2026-11-2T10:15:00Z", "2026-11-22T1:15:00Z",
		"2026-00-10T10:15:00Z", "2026-13-10T10:15:00Z", "2026-11-00T10:15:00Z",
		"2026-11-31T10:15:00Z", "2026-01-32T10:15:00Z", "2026-02-29T10:15:00Z",
		"2026-02-30T10:15:00Z", "1900-02-29T10:15:00Z", "2026-11-22T24:00:00Z",
		"2026-11-22T10:60:00Z", "2026-11-22T10:15:61Z", "2026-01-01T12:00:60Z", "2026-12-31T22:59:60Z",
		"2016-12-31T23:58:60Z", "2016-12-30T23:59:60Z", "2017-01-01T00:59:60Z", "2026-11-22T-1:15:00Z",
		"2026-11-22T10:15:00.123", "2026/11/22T10:15:00Z", "2026-11-22X10:15:00Z",
		"\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96-11-22T10:15:00Z",
	};
	int64_t t = 777;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(time_parse_rfc3339(cases[i], &t) < 0, "accepted \"%s\"", cases[i]);
		ck_assert_int_eq(t, 777);
	}
}
END_TEST

/* The digits rule every number npsd reads from text (query parameters, cursors) follows. */
START_TEST(test_parse_decimal)
{
	int64_t v = 7;
	const char *end = NULL;
	ck_assert_int_eq(parse_decimal("12x", false, &v, &end), 0);
	ck_assert_int_eq(v, 12);
	ck_assert_str_eq(end, "x");
	ck_assert_int_eq(parse_decimal("9223372036854775807", false, &v, &end), 0);
	ck_assert_int_eq(v, INT64_MAX);
	ck_assert_int_eq(parse_decimal("-5", true, &v, &end), 0);
	ck_assert_int_eq(v, -5);
	ck_assert_int_eq(parse_decimal("-0", true, &v, &end), 0);
	ck_assert_int_eq(v, 0);
	static const char *const refused[] = { "", "-5", "+5", " 5", "x1", "9223372036854775808", "-" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		v = 7;
		end = NULL;
		ck_assert_msg(parse_decimal(refused[i], false, &v, &end) == -1, "took \"%s\"", refused[i]);
		ck_assert_int_eq(v, 7);
		ck_assert_ptr_null(end);
	}
	ck_assert_int_eq(parse_decimal("--5", true, &v, &end), -1);
	ck_assert_int_eq(parse_decimal("-+5", true, &v, &end), -1);
	ck_assert_int_eq(parse_decimal("-9223372036854775809", true, &v, &end), -1);
}
END_TEST

START_TEST(test_time_format)
{
	char buf[21];
	int64_t back;

	ck_assert_str_eq(time_format_rfc3339(0, buf), "1970-01-01T00:00:00Z");
	ck_assert_str_eq(time_format_rfc3339(SPEC_ANSWERED_AT, buf), "2026-11-22T10:15:00Z");
	ck_assert_str_eq(time_format_rfc3339(-1, buf), "1969-12-31T23:59:59Z");
	ck_assert_str_eq(time_format_rfc3339(INT64_C(1709164800), buf), "2024-02-29T00:00:00Z");
	/* Out of range clamps to the 4-digit years the format can hold. */
	ck_assert_str_eq(time_format_rfc3339(INT64_MAX, buf), "9999-12-31T23:59:59Z");
	ck_assert_str_eq(time_format_rfc3339(INT64_MIN, buf), "0000-01-01T00:00:00Z");
	ck_assert_ptr_eq(time_format_rfc3339(1, buf), buf);

	/* Round trips across leap years and centuries, 1970 to 2100. */
	for (int64_t t = 0; t < INT64_C(4102444800); t += INT64_C(7654321)) {
		ck_assert_int_eq(time_parse_rfc3339(time_format_rfc3339(t, buf), &back), 0);
		ck_assert_int_eq(back, t);
		ck_assert_uint_eq(strlen(buf), 20);
	}
}
END_TEST

/* Reads path whole, up to CORPUS_MAX_BYTES; returns a malloc'd buffer (caller frees). */
static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(CORPUS_MAX_BYTES + 1);
	size_t n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, CORPUS_MAX_BYTES + 1, f);
	ck_assert_msg(!ferror(f), "cannot read %s", path);
	fclose(f);
	ck_assert_msg(n <= CORPUS_MAX_BYTES, "%s is over %d bytes", path, CORPUS_MAX_BYTES);
	*ret_len = n;
	return buf;
}

/*
 * Every corpus file must fail to parse (400 invalid_json) or be an object that
 * validate_survey refuses (400 invalid_field / missing_field). A top-level array would be a
 * batch, answered with 200, so none may parse as one.
 */
START_TEST(test_malformed_corpus)
{
	DIR *dir = opendir(CORPUS_DIR);
	struct dirent *de;
	int nfiles = 0;

	ck_assert_msg(dir != NULL, "cannot open %s (run from the repository root)", CORPUS_DIR);
	while ((de = readdir(dir))) {
		size_t nlen = strlen(de->d_name), len;
		char path[512];
		char *buf;
		json_error_t jerr;
		json_t *doc;

		if (nlen < 5 || strcmp(de->d_name + nlen - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, de->d_name);
		buf = read_file(path, &len);
		ck_assert_msg(len > 0, "%s is empty", path);
		doc = json_loadb(buf, len, 0, &jerr);
		free(buf);
		nfiles++;
		if (!doc)
			continue;
		ck_assert_msg(!json_is_array(doc), "%s parses as a batch array", path);
		{
			struct survey_input in;
			struct field_error err;

			ck_assert_msg(validate_survey(doc, NOW, &in, &err) == -1,
				      "%s was accepted", path);
			ck_assert_msg(err.field[0] != '\0' || !json_is_object(doc),
				      "%s: error names no field", path);
		}
		json_decref(doc);
	}
	closedir(dir);
	ck_assert_msg(nfiles >= CORPUS_MIN_FILES, "only %d corpus files", nfiles);
}
END_TEST

static Suite *validate_suite(void)
{
	Suite *s = suite_create("validate");
	TCase *tc;

	tc = tcase_create("survey");
	tcase_add_test(tc, test_spec_example);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_null_and_empty_optionals);
	tcase_add_loop_test(tc, test_refusals, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_loop_test(tc, test_acceptances, 0,
			    (int)(sizeof(acceptances) / sizeof(acceptances[0])));
	tcase_add_test(tc, test_not_an_object);
	tcase_add_test(tc, test_messages);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_length_boundaries);
	tcase_add_test(tc, test_token_boundaries);
	tcase_add_test(tc, test_answered_at_window);
	tcase_add_test(tc, test_attribute_limits);
	tcase_add_test(tc, test_long_field_names_truncated);
	tcase_add_test(tc, test_embedded_nul);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_test(tc, test_category);
	tcase_add_test(tc, test_utf8_length);
	tcase_add_test(tc, test_token_table);
	tcase_add_test(tc, test_e164_table);
	tcase_add_test(tc, test_email_table);
	tcase_add_test(tc, test_language_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("time");
	tcase_add_test(tc, test_time_parse_good);
	tcase_add_test(tc, test_time_parse_bad);
	tcase_add_test(tc, test_time_format);
	tcase_add_test(tc, test_parse_decimal);
	suite_add_tcase(s, tc);

	tc = tcase_create("corpus");
	tcase_add_test(tc, test_malformed_corpus);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(validate_suite());
}
