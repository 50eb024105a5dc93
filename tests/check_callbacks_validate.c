/*
 * Unit tests for validate_complete and validate_claim (src/validate.c): what an agent sends
 * to close a call or to claim one, per SPEC "Callbacks" — outcomes, notes, improvement
 * areas, call_later's retry_at — and the error code and dotted field of every refusal.
 */
#include "npsd/validate.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

/* 2026-11-22T10:25:00Z */
#define NOW INT64_C(1795343100)
#define DAY 86400

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *doc = json_loads(text, JSON_DECODE_ANY, &jerr);
	ck_assert_msg(doc != NULL, "test body %s does not parse: %s", text, jerr.text);
	return doc;
}

/* Validates text; on success fills *ret and returns the document (caller decrefs). */
static json_t *complete_ok(const char *text, struct complete_input *ret)
{
	json_t *doc = parse(text);
	struct field_error err = { 0 };
	int r = validate_complete(doc, NOW, ret, &err);
	ck_assert_msg(r == 0, "%s refused: %s %s (%s)", text, err.code ? err.code : "?", err.field, err.message);
	return doc;
}

static void complete_bad(const char *text, const char *code, const char *field)
{
	json_t *doc = parse(text);
	struct field_error err = { 0 };
	struct complete_input in;
	int r = validate_complete(doc, NOW, &in, &err);
	ck_assert_msg(r == -1, "%s accepted", text);
	ck_assert_msg(err.code && strcmp(err.code, code) == 0, "%s: code %s, want %s", text,
	              err.code ? err.code : "(none)", code);
	ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\"", text, err.field, field);
	ck_assert_msg(err.message[0] != '\0', "%s: no message", text);
	json_decref(doc);
}

/* {"outcome": outcome, key: a string of n copies of unit}. */
static char *with_long(const char *outcome, const char *key, const char *unit, size_t n)
{
	size_t ulen = strlen(unit);
	char *s = malloc(ulen * n + 1);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * ulen, unit, ulen);
	s[ulen * n] = '\0';
	json_t *doc = json_pack("{s:s, s:s}", "outcome", outcome, key, s);
	free(s);
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return text;
}

static const char *rfc3339(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static char *call_later_at(int64_t t)
{
	char when[32];
	char *text = malloc(96);
	ck_assert_ptr_nonnull(text);
	snprintf(text, 96, "{\"outcome\":\"call_later\",\"retry_at\":\"%s\"}", rfc3339(t, when));
	return text;
}

/* ---------- validate_complete ---------- */

START_TEST(every_spec_outcome_is_accepted)
{
	static const char *const outcomes[] = { "reached", "declined", "no_answer", "busy", "voicemail",
		                                "wrong_number", "do_not_call", NULL };
	for (size_t i = 0; outcomes[i]; i++) {
		char text[64];
		snprintf(text, sizeof text, "{\"outcome\":\"%s\"}", outcomes[i]);
		struct complete_input in;
		json_t *doc = complete_ok(text, &in);
		ck_assert_str_eq(in.outcome, outcomes[i]);
		ck_assert_ptr_null(in.notes);
		ck_assert_uint_eq(in.nimprovements, 0);
		ck_assert_int_eq(in.retry_at, 0);
		json_decref(doc);
	}
	char *text = call_later_at(NOW + DAY);
	struct complete_input in;
	json_t *doc = complete_ok(text, &in);
	ck_assert_str_eq(in.outcome, "call_later");
	ck_assert_int_eq(in.retry_at, NOW + DAY);
	json_decref(doc);
	free(text);
}
END_TEST

START_TEST(a_full_body_is_borrowed_in_order)
{
	struct complete_input in;
	json_t *doc = complete_ok("{\"outcome\":\"reached\",\"notes\":\"Payout was slow.\\nApologised.\","
	                          "\"improvements\":[{\"area\":\"process\",\"text\":\"Pay within a week\"},"
	                          "{\"text\":\"Say what happens next\",\"area\":\"communication\"},"
	                          "{\"area\":\"service\",\"text\":\"s\"},{\"area\":\"product\",\"text\":\"p\"},"
	                          "{\"area\":\"other\",\"text\":\"o\"}]}",
	                          &in);
	ck_assert_str_eq(in.outcome, "reached");
	ck_assert_str_eq(in.notes, "Payout was slow.\nApologised.");
	ck_assert_uint_eq(in.nimprovements, 5);
	ck_assert_str_eq(in.improvements[0].area, "process");
	ck_assert_str_eq(in.improvements[0].text, "Pay within a week");
	ck_assert_str_eq(in.improvements[1].area, "communication");
	ck_assert_str_eq(in.improvements[1].text, "Say what happens next");
	ck_assert_str_eq(in.improvements[4].area, "other");
	/* Borrowed from the document, not copied. */
	ck_assert_ptr_eq(in.notes, json_string_value(json_object_get(doc, "notes")));
	json_decref(doc);
}
END_TEST

START_TEST(null_and_empty_optional_fields_count_as_absent)
{
	struct complete_input in;
	json_t *doc = complete_ok("{\"outcome\":\"busy\",\"notes\":null,\"improvements\":null,\"retry_at\":null}", &in);
	ck_assert_ptr_null(in.notes);
	ck_assert_uint_eq(in.nimprovements, 0);
	ck_assert_int_eq(in.retry_at, 0);
	json_decref(doc);
	doc = complete_ok("{\"outcome\":\"busy\",\"notes\":\"\",\"improvements\":[]}", &in);
	ck_assert_ptr_null(in.notes);
	ck_assert_uint_eq(in.nimprovements, 0);
	json_decref(doc);
}
END_TEST

START_TEST(the_body_must_be_an_object_with_known_fields)
{
	complete_bad("[]", "invalid_field", "");
	complete_bad("\"reached\"", "invalid_field", "");
	complete_bad("null", "invalid_field", "");
	complete_bad("{\"outcome\":\"reached\",\"agent\":\"me\"}", "invalid_field", "agent");
	/* Unknown fields are reported before a missing outcome. */
	complete_bad("{\"result\":\"reached\"}", "invalid_field", "result");

	struct field_error err = { 0 };
	struct complete_input in;
	ck_assert_int_eq(validate_complete(NULL, NOW, &in, &err), -1);
	ck_assert_str_eq(err.code, "invalid_field");
}
END_TEST

START_TEST(outcome_is_required_and_one_of_spec)
{
	complete_bad("{}", "missing_field", "outcome");
	complete_bad("{\"outcome\":null}", "missing_field", "outcome");
	complete_bad("{\"notes\":\"x\"}", "missing_field", "outcome");
	complete_bad("{\"outcome\":\"maybe\"}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"Reached\"}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"reached \"}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"\"}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":1}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":true}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":[\"reached\"]}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"done\"}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"unreachable\"}", "invalid_field", "outcome");
}
END_TEST

START_TEST(notes_up_to_4000_characters_without_control_characters)
{
	struct complete_input in;
	char *text = with_long("reached", "notes", "x", 4000);
	json_t *doc = complete_ok(text, &in);
	ck_assert_uint_eq(strlen(in.notes), 4000);
	json_decref(doc);
	free(text);
	/* Characters, not bytes: 4000 two-byte characters are fine. */
	text = with_long("reached", "notes", "\xc3\xa9", 4000);
	doc = complete_ok(text, &in);
	json_decref(doc);
	free(text);
	text = with_long("reached", "notes", "x", 4001);
	complete_bad(text, "invalid_field", "notes");
	free(text);
	complete_bad("{\"outcome\":\"reached\",\"notes\":12}", "invalid_field", "notes");
	complete_bad("{\"outcome\":\"reached\",\"notes\":[\"a\"]}", "invalid_field", "notes");
	complete_bad("{\"outcome\":\"reached\",\"notes\":\"bell\\u0007\"}", "invalid_field", "notes");
	doc = complete_ok("{\"outcome\":\"reached\",\"notes\":\"line\\r\\nnext\\tcol\"}", &in);
	json_decref(doc);
}
END_TEST

START_TEST(improvements_name_the_item_and_field)
{
	complete_bad("{\"outcome\":\"reached\",\"improvements\":{}}", "invalid_field", "improvements");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":\"process\"}", "invalid_field", "improvements");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"billing\",\"text\":\"x\"}]}",
	             "invalid_field", "improvements.0.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"Process\",\"text\":\"x\"}]}",
	             "invalid_field", "improvements.0.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":3,\"text\":\"x\"}]}", "invalid_field",
	             "improvements.0.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"ok\"},"
	             "{\"area\":\"service\",\"text\":\"ok\"},{\"area\":\"sales\",\"text\":\"x\"}]}",
	             "invalid_field", "improvements.2.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"text\":\"x\"}]}", "missing_field",
	             "improvements.0.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":null,\"text\":\"x\"}]}", "missing_field",
	             "improvements.0.area");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\"}]}", "missing_field",
	             "improvements.0.text");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"\"}]}",
	             "invalid_field", "improvements.0.text");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\" \\n\\t \"}]}",
	             "invalid_field", "improvements.0.text");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":5}]}",
	             "invalid_field", "improvements.0.text");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"x\",\"by\":\"me\"}]}",
	             "invalid_field", "improvements.0.by");
}
END_TEST

/* An item that is not an object is named by its index alone: "improvements.1", as SPEC's
 * dotted paths go, not "improvements.1." */
START_TEST(an_item_that_is_not_an_object_is_named_by_its_index)
{
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"process\",\"text\":\"ok\"},\"fast\"]}",
	             "invalid_field", "improvements.1");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[null]}", "invalid_field", "improvements.0");
	complete_bad("{\"outcome\":\"reached\",\"improvements\":[[\"process\",\"x\"]]}", "invalid_field",
	             "improvements.0");
}
END_TEST

START_TEST(improvement_text_and_count_limits)
{
	/* text: 1 to 2000 characters. */
	char *text2000 = malloc(2001);
	ck_assert_ptr_nonnull(text2000);
	memset(text2000, 'y', 2000);
	text2000[2000] = '\0';
	json_t *doc = json_pack("{s:s, s:[{s:s, s:s}]}", "outcome", "reached", "improvements", "area", "process", "text",
	                        text2000);
	char *body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	struct complete_input in;
	doc = complete_ok(body, &in);
	ck_assert_uint_eq(strlen(in.improvements[0].text), 2000);
	json_decref(doc);
	free(body);
	char *text2001 = malloc(2002);
	ck_assert_ptr_nonnull(text2001);
	memset(text2001, 'y', 2001);
	text2001[2001] = '\0';
	doc = json_pack("{s:s, s:[{s:s, s:s}]}", "outcome", "reached", "improvements", "area", "process", "text",
	                text2001);
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	complete_bad(body, "invalid_field", "improvements.0.text");
	free(body);
	free(text2000);
	free(text2001);

	/* At most IMPROVEMENTS_MAX (20) items. */
	json_t *list = json_array();
	for (int i = 0; i < IMPROVEMENTS_MAX; i++)
		json_array_append_new(list, json_pack("{s:s, s:s}", "area", "other", "text", "t"));
	doc = json_pack("{s:s, s:O}", "outcome", "reached", "improvements", list);
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	doc = complete_ok(body, &in);
	ck_assert_uint_eq(in.nimprovements, IMPROVEMENTS_MAX);
	json_decref(doc);
	free(body);
	json_array_append_new(list, json_pack("{s:s, s:s}", "area", "other", "text", "t"));
	doc = json_pack("{s:s, s:o}", "outcome", "reached", "improvements", list);
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	complete_bad(body, "invalid_field", "improvements");
	free(body);
}
END_TEST

START_TEST(call_later_needs_retry_at_within_30_days)
{
	complete_bad("{\"outcome\":\"call_later\"}", "missing_field", "retry_at");
	complete_bad("{\"outcome\":\"call_later\",\"retry_at\":null}", "missing_field", "retry_at");
	complete_bad("{\"outcome\":\"call_later\",\"retry_at\":\"tomorrow\"}", "invalid_field", "retry_at");
	complete_bad("{\"outcome\":\"call_later\",\"retry_at\":1795400000}", "invalid_field", "retry_at");
	complete_bad("{\"outcome\":\"call_later\",\"retry_at\":\"2026-11-23\"}", "invalid_field", "retry_at");
	char *text = call_later_at(NOW);
	complete_bad(text, "invalid_field", "retry_at");
	free(text);
	text = call_later_at(NOW - 1);
	complete_bad(text, "invalid_field", "retry_at");
	free(text);
	text = call_later_at(NOW + 30 * DAY + 1);
	complete_bad(text, "invalid_field", "retry_at");
	free(text);

	struct complete_input in;
	text = call_later_at(NOW + 1);
	json_t *doc = complete_ok(text, &in);
	ck_assert_int_eq(in.retry_at, NOW + 1);
	json_decref(doc);
	free(text);
	text = call_later_at(NOW + 30 * DAY);
	doc = complete_ok(text, &in);
	ck_assert_int_eq(in.retry_at, NOW + 30 * DAY);
	json_decref(doc);
	free(text);
	/* An offset is a time like any other. */
	doc = complete_ok("{\"outcome\":\"call_later\",\"retry_at\":\"2026-11-23T09:30:00+01:00\",\"notes\":\"after 9\"}",
	                  &in);
	ck_assert_int_eq(in.retry_at, INT64_C(1795422600)); /* 2026-11-23T08:30:00Z */
	ck_assert_str_eq(in.notes, "after 9");
	json_decref(doc);

	/* retry_at goes with call_later only. */
	complete_bad("{\"outcome\":\"reached\",\"retry_at\":\"2026-11-23T08:30:00Z\"}", "invalid_field", "retry_at");
	complete_bad("{\"outcome\":\"no_answer\",\"retry_at\":\"2026-11-23T08:30:00Z\"}", "invalid_field", "retry_at");
}
END_TEST

START_TEST(field_order_outcome_then_notes_then_improvements_then_retry_at)
{
	complete_bad("{\"outcome\":\"maybe\",\"notes\":1,\"improvements\":1}", "invalid_field", "outcome");
	complete_bad("{\"outcome\":\"call_later\",\"notes\":1}", "invalid_field", "notes");
	complete_bad("{\"outcome\":\"call_later\",\"improvements\":[{\"area\":\"x\",\"text\":\"y\"}]}",
	             "invalid_field", "improvements.0.area");
}
END_TEST

/* ---------- validate_claim ---------- */

START_TEST(claim_without_a_body_or_filter)
{
	const char *tp = "untouched";
	struct field_error err = { 0 };
	ck_assert_int_eq(validate_claim(NULL, &tp, &err), 0);
	ck_assert_ptr_null(tp);
	json_t *doc = parse("{}");
	tp = "untouched";
	ck_assert_int_eq(validate_claim(doc, &tp, &err), 0);
	ck_assert_ptr_null(tp);
	json_decref(doc);
	doc = parse("{\"touchpoint\":null}");
	tp = "untouched";
	ck_assert_int_eq(validate_claim(doc, &tp, &err), 0);
	ck_assert_ptr_null(tp);
	json_decref(doc);
}
END_TEST

START_TEST(claim_with_a_touchpoint)
{
	static const char *const good[] = { "claim", "a", "renewal.car", "policy_purchase-2", NULL };
	for (size_t i = 0; good[i]; i++) {
		json_t *doc = json_pack("{s:s}", "touchpoint", good[i]);
		const char *tp = NULL;
		struct field_error err = { 0 };
		ck_assert_msg(validate_claim(doc, &tp, &err) == 0, "touchpoint %s refused", good[i]);
		ck_assert_str_eq(tp, good[i]);
		ck_assert_ptr_eq(tp, json_string_value(json_object_get(doc, "touchpoint")));
		json_decref(doc);
	}
	char t64[65];
	memset(t64, 'a', 64);
	t64[64] = '\0';
	json_t *doc = json_pack("{s:s}", "touchpoint", t64);
	const char *tp = NULL;
	struct field_error err = { 0 };
	ck_assert_int_eq(validate_claim(doc, &tp, &err), 0);
	json_decref(doc);
}
END_TEST

static void claim_bad(const char *text, const char *field)
{
	json_t *doc = parse(text);
	const char *tp = NULL;
	struct field_error err = { 0 };
	ck_assert_msg(validate_claim(doc, &tp, &err) == -1, "%s accepted", text);
	ck_assert_msg(err.code && strcmp(err.code, "invalid_field") == 0, "%s: code %s", text,
	              err.code ? err.code : "(none)");
	ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\"", text, err.field, field);
	ck_assert_msg(err.message[0] != '\0', "%s: no message", text);
	json_decref(doc);
}

START_TEST(claim_refusals_name_the_field)
{
	claim_bad("[]", "");
	claim_bad("\"claim\"", "");
	claim_bad("7", "");
	claim_bad("{\"touchpoint\":\"Claim\"}", "touchpoint");
	claim_bad("{\"touchpoint\":\"\"}", "touchpoint");
	claim_bad("{\"touchpoint\":\"has space\"}", "touchpoint");
	claim_bad("{\"touchpoint\":\"a/b\"}", "touchpoint");
	claim_bad("{\"touchpoint\":5}", "touchpoint");
	claim_bad("{\"touchpoint\":[\"claim\"]}", "touchpoint");
	claim_bad("{\"touchpoint\":\"claim\",\"score\":3}", "score");
	claim_bad("{\"agent\":\"me\"}", "agent");
	char t65[66];
	memset(t65, 'a', 65);
	t65[65] = '\0';
	char text[96];
	snprintf(text, sizeof text, "{\"touchpoint\":\"%s\"}", t65);
	claim_bad(text, "touchpoint");
}
END_TEST

/* ---------- the list's cursor ---------- */

START_TEST(a_cursor_is_what_next_cursor_gives)
{
	struct callback_cursor c;
	ck_assert_int_eq(parse_callback_cursor("0.3.17.1795462684", &c), 0);
	ck_assert(c.key[0] == 0 && c.key[1] == 3 && c.key[2] == 17 && c.as_of == 1795462684);
	ck_assert_int_eq(parse_callback_cursor("1.10.9223372036854775807.1", &c), 0);
	ck_assert(c.key[0] == 1 && c.key[1] == 10 && c.key[2] == INT64_MAX && c.as_of == 1);
	/* Three parts: a cursor from before the listing's time was kept, judged as now. */
	ck_assert_int_eq(parse_callback_cursor("1.0.4", &c), 0);
	ck_assert(c.key[0] == 1 && c.key[1] == 0 && c.key[2] == 4 && c.as_of == 0);
}
END_TEST

START_TEST(a_forged_or_overflowing_cursor_is_refused)
{
	static const char *const bad[] = {
		"",
		"zzz",
		"0",
		"0.3",
		"0.3.7.",
		".0.3.7",
		"0..3.7",
		"0.3.7.1795000000.1",
		"0.3.7x",
		" 0.3.7",
		"+0.3.7",
		"-1.0.3",
		"0.-3.7",
		"0.3.+7",
		"0.3. 7",
		"2.0.35.1795000000", /* neither due nor not yet due */
		"9.9.9.9",
		"0.11.3.1795000000", /* no score above 10 */
		"0.3.0.1795000000",
		"0.3.7.0",                    /* ids and times start at 1 */
		"18446744073709551616.0.0.0", /* more than 64 bits: capped by strtoll */
		"0.0.35.99999999999999999999",
		"0.0.9223372036854775808.1",
		"0.99999999999999999999.1.1",
	};
	struct callback_cursor c = { .key = { 5, 5, 5 }, .as_of = 5 };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_msg(parse_callback_cursor(bad[i], &c) < 0, "\"%s\" was taken", bad[i]);
		ck_assert(c.key[0] == 5 && c.key[1] == 5 && c.key[2] == 5 && c.as_of == 5);
	}
}
END_TEST

static Suite *callbacks_validate_suite(void)
{
	Suite *s = suite_create("callbacks_validate");
	TCase *tc = tcase_create("complete");
	tcase_add_test(tc, every_spec_outcome_is_accepted);
	tcase_add_test(tc, a_full_body_is_borrowed_in_order);
	tcase_add_test(tc, null_and_empty_optional_fields_count_as_absent);
	tcase_add_test(tc, the_body_must_be_an_object_with_known_fields);
	tcase_add_test(tc, outcome_is_required_and_one_of_spec);
	tcase_add_test(tc, notes_up_to_4000_characters_without_control_characters);
	tcase_add_test(tc, improvements_name_the_item_and_field);
	tcase_add_test(tc, an_item_that_is_not_an_object_is_named_by_its_index);
	tcase_add_test(tc, improvement_text_and_count_limits);
	tcase_add_test(tc, call_later_needs_retry_at_within_30_days);
	tcase_add_test(tc, field_order_outcome_then_notes_then_improvements_then_retry_at);
	suite_add_tcase(s, tc);
	tc = tcase_create("claim");
	tcase_add_test(tc, claim_without_a_body_or_filter);
	tcase_add_test(tc, claim_with_a_touchpoint);
	tcase_add_test(tc, claim_refusals_name_the_field);
	tcase_add_test(tc, a_cursor_is_what_next_cursor_gives);
	tcase_add_test(tc, a_forged_or_overflowing_cursor_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(callbacks_validate_suite());
}
