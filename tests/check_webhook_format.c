/*
 * Unit tests for src/webhook_format.c: SPEC "Webhooks" formats byte for byte. Signatures are
 * recomputed here with nettle directly (never through webhook_sign), so a bug shared by the
 * signer and its check cannot hide.
 */
#include "npsd/webhook_format.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nettle/base64.h>
#include <nettle/hmac.h>

#include "testutil.h"

/* 2026-11-22T10:15:00Z, the SPEC example's answered_at. */
#define CREATED_AT INT64_C(1795342500)
#define NOW INT64_C(1795342512)
#define MSG_ID "msg_2Xk9Q7wLr3"

/* Key bytes 0, 1, ..., 31 as a secret, so the test knows the key without decoding. */
static char known_secret[64];
static uint8_t known_key[32];

static void make_known_secret(void)
{
	for (size_t i = 0; i < sizeof known_key; i++)
		known_key[i] = (uint8_t)i;
	memcpy(known_secret, "whsec_", 6);
	base64_encode_raw(known_secret + 6, sizeof known_key, known_key);
	known_secret[6 + BASE64_ENCODE_RAW_LENGTH(sizeof known_key)] = '\0';
}

/* "v1," + base64(HMAC-SHA256(key, id "." ts "." body)), computed independently. */
static void expected_signature(const uint8_t *key, size_t key_len, const char *id, int64_t ts,
                               const char *body, size_t body_len, char out[64])
{
	char signed_text[64];
	int n = snprintf(signed_text, sizeof signed_text, "%s.%" PRId64 ".", id, ts);
	ck_assert_int_gt(n, 0);
	struct hmac_sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	hmac_sha256_set_key(&ctx, key_len, key);
	hmac_sha256_update(&ctx, (size_t)n, (const uint8_t *)signed_text);
	hmac_sha256_update(&ctx, body_len, (const uint8_t *)body);
	hmac_sha256_digest(&ctx, sizeof digest, digest);
	memcpy(out, "v1,", 3);
	base64_encode_raw(out + 3, sizeof digest, digest);
	out[3 + BASE64_ENCODE_RAW_LENGTH(sizeof digest)] = '\0';
}

/* Strict UTF-8 check, written apart from the code under test. */
static bool valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* The value of header `name`, or NULL; fails the test when it appears twice. */
static const char *header(const struct webhook_request *req, const char *name)
{
	const char *found = NULL;
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *h = req->headers[i];
		if (strncasecmp(h, name, n) == 0 && h[n] == ':' && h[n + 1] == ' ') {
			ck_assert_msg(!found, "header %s twice", name);
			found = h + n + 2;
		}
	}
	return found;
}

/* Every header line is one line of printable ASCII: nothing a payload can inject. */
static void assert_headers_clean(const struct webhook_request *req)
{
	ck_assert_uint_le(req->nheaders, WEBHOOK_MAX_HEADERS);
	for (size_t i = 0; i < req->nheaders; i++)
		for (const unsigned char *p = (const unsigned char *)req->headers[i]; *p; p++)
			ck_assert_msg(*p >= 0x20 && *p < 0x7f, "header %zu has byte 0x%02x", i, *p);
}

/* Whether `needle` occurs anywhere in the request: body or any header. */
static bool request_contains(const struct webhook_request *req, const char *needle)
{
	if (req->body && strstr(req->body, needle))
		return true;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strstr(req->headers[i], needle))
			return true;
	return false;
}

static json_t *load(const char *text)
{
	json_error_t error;
	json_t *doc = json_loads(text, 0, &error);
	ck_assert_msg(doc != NULL, "bad test JSON: %s", error.text);
	return doc;
}

/* A survey.received payload as src/surveys.c writes it. */
static json_t *survey_data(int score, const char *name, const char *comment, bool callback)
{
	json_t *data = json_pack(
		"{s:{s:I, s:s, s:s, s:s, s:i, s:s, s:s?, s:s, s:{}}, s:{s:s, s:s?, s:s}, s:n}", "survey",
		"id", (json_int_t)42, "response_id", "allsecur-2026-000123", "touchpoint", "claim",
		"channel", "web", "score", score, "category",
		score <= 6 ? "detractor" : score <= 8 ? "passive" : "promoter", "comment", comment,
		"answered_at", "2026-11-22T10:15:00Z", "attributes", "customer", "id", "C-1001", "name",
		name, "language", "nl", "callback");
	ck_assert_ptr_nonnull(data);
	if (callback)
		json_object_set_new(data, "callback",
		                    json_pack("{s:i, s:s, s:s}", "id", 17, "status", "queued", "due_at",
		                              "2026-11-22T12:15:00Z"));
	return data;
}

/* A callback.completed payload as src/callbacks.c writes it. */
static json_t *completed_data(void)
{
	return load("{\"callback\":{\"id\":17,\"status\":\"done\",\"priority\":3,\"touchpoint\":\"claim\","
	            "\"due_at\":\"2026-11-22T12:15:00Z\",\"sla_deadline\":\"2026-11-22T14:15:00Z\","
	            "\"attempts\":1,\"max_attempts\":3,\"claimed_by\":\"anna\",\"outcome\":\"reached\"},"
	            "\"customer\":{\"id\":\"C-1001\",\"name\":\"Jan Jansen\",\"language\":\"nl\"},"
	            "\"notes\":\"Apologised, payment goes out Monday\","
	            "\"improvements\":[{\"area\":\"process\",\"text\":\"pay faster\"},"
	            "{\"area\":\"communication\",\"text\":\"say how long it takes\"}]}");
}

static int build(enum webhook_format_kind format, const char *auth, const char *public_url,
                 const char *type, json_t *data, struct webhook_request *req)
{
	struct webhook_target target = { .format = format, .secret = known_secret, .auth = auth,
		                         .public_url = public_url };
	struct webhook_event event = { .id = 7, .type = type, .created_at = CREATED_AT, .data = data };
	return webhook_format_build(&target, &event, MSG_ID, NOW, req);
}

START_TEST(test_format_names)
{
	enum webhook_format_kind kind;
	ck_assert_int_eq(webhook_format_parse("standard", &kind), 0);
	ck_assert_int_eq(kind, FORMAT_STANDARD);
	ck_assert_int_eq(webhook_format_parse("ntfy", &kind), 0);
	ck_assert_int_eq(kind, FORMAT_NTFY);
	ck_assert_int_eq(webhook_format_parse("slack", &kind), 0);
	ck_assert_int_eq(kind, FORMAT_SLACK);
	ck_assert_int_eq(webhook_format_parse("Slack", &kind), -EINVAL);
	ck_assert_int_eq(webhook_format_parse("", &kind), -EINVAL);
	ck_assert_int_eq(webhook_format_parse(NULL, &kind), -EINVAL);
	ck_assert_str_eq(webhook_format_name(FORMAT_STANDARD), "standard");
	ck_assert_str_eq(webhook_format_name(FORMAT_NTFY), "ntfy");
	ck_assert_str_eq(webhook_format_name(FORMAT_SLACK), "slack");
}
END_TEST

START_TEST(test_sign_known_vector)
{
	static const char body[] = "{\"type\":\"webhook.test\",\"data\":{}}";
	char want[64], got[64];
	expected_signature(known_key, sizeof known_key, MSG_ID, NOW, body, strlen(body), want);
	ck_assert_int_eq(webhook_sign(known_secret, MSG_ID, NOW, body, strlen(body), got, sizeof got), 0);
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(strlen(got), 3 + 44);
	/* Another timestamp signs differently: the receiver's replay check relies on it. */
	ck_assert_int_eq(webhook_sign(known_secret, MSG_ID, NOW + 1, body, strlen(body), got, sizeof got), 0);
	ck_assert_str_ne(got, want);
	/* Too small a buffer is refused, not truncated. */
	ck_assert_int_eq(webhook_sign(known_secret, MSG_ID, NOW, body, strlen(body), got, 20), -ENOSPC);
}
END_TEST

/* The example from the Standard Webhooks specification (verified with Python's hmac too). */
START_TEST(test_sign_standard_webhooks_example)
{
	static const char body[] = "{\"test\": 2432232314}";
	char got[64];
	ck_assert_int_eq(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	                              "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
	                              got, sizeof got),
	                 0);
	ck_assert_str_eq(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
END_TEST

START_TEST(test_standard_envelope)
{
	json_t *data = survey_data(3, "Jan Jansen", "Took three weeks to pay out", true);
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_STANDARD, NULL, NULL, "survey.received", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert_uint_eq(req.body_len, strlen(req.body));

	/* Key order type, timestamp, data; compact; data exactly as the outbox wrote it. */
	char *data_text = json_dumps(data, JSON_COMPACT);
	char want[4096];
	snprintf(want, sizeof want,
	         "{\"type\":\"survey.received\",\"timestamp\":\"2026-11-22T10:15:00Z\",\"data\":%s}",
	         data_text);
	free(data_text);
	ck_assert_str_eq(req.body, want);

	json_t *doc = load(req.body);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "type")), "survey.received");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "timestamp")), "2026-11-22T10:15:00Z");
	ck_assert(json_equal(json_object_get(doc, "data"), data));
	json_decref(doc);

	ck_assert_str_eq(header(&req, "Content-Type"), "application/json");
	ck_assert_str_eq(header(&req, "webhook-id"), MSG_ID);
	ck_assert_str_eq(header(&req, "webhook-timestamp"), "1795342512");
	char sig[64];
	expected_signature(known_key, sizeof known_key, MSG_ID, NOW, req.body, req.body_len, sig);
	ck_assert_str_eq(header(&req, "webhook-signature"), sig);
	ck_assert_ptr_null(header(&req, "Authorization"));

	/* A retry: same webhook-id, new timestamp, signature over the new timestamp. */
	struct webhook_request retry;
	ck_assert_int_eq(build(FORMAT_STANDARD, NULL, NULL, "survey.received", data, &retry), 0);
	ck_assert_str_eq(header(&retry, "webhook-id"), MSG_ID);
	ck_assert_str_eq(retry.body, req.body);
	webhook_request_clear(&retry);

	webhook_request_clear(&req);
	ck_assert_ptr_null(req.body);
	ck_assert_uint_eq(req.nheaders, 0);
	json_decref(data);
}
END_TEST

START_TEST(test_secret_round_trip)
{
	char a[64], b[64];
	ck_assert_int_eq(webhook_secret_generate(a, sizeof a), 0);
	ck_assert_int_eq(webhook_secret_generate(b, sizeof b), 0);
	ck_assert_str_ne(a, b);
	ck_assert(strncmp(a, "whsec_", 6) == 0);
	ck_assert_uint_eq(strlen(a), 6 + 44);

	struct base64_decode_ctx ctx;
	uint8_t key[BASE64_DECODE_LENGTH(44)];
	size_t len = 0;
	base64_decode_init(&ctx);
	ck_assert(base64_decode_update(&ctx, &len, key, strlen(a + 6), a + 6));
	ck_assert(base64_decode_final(&ctx));
	ck_assert_uint_eq(len, 32);

	/* The generated secret signs with exactly those bytes. */
	char want[64], got[64];
	expected_signature(key, len, MSG_ID, NOW, "{}", 2, want);
	ck_assert_int_eq(webhook_sign(a, MSG_ID, NOW, "{}", 2, got, sizeof got), 0);
	ck_assert_str_eq(got, want);

	ck_assert_int_eq(webhook_secret_generate(a, 40), -ENOSPC);
}
END_TEST

START_TEST(test_malformed_secret)
{
	static const char *const bad[] = {
		"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w",
		"whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
		"whsec_AAAA", /* 3 bytes: too short a key */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw", NULL,
	};
	char out[64];
	struct webhook_request req;
	for (size_t i = 0; bad[i]; i++) {
		ck_assert_msg(webhook_sign(bad[i], MSG_ID, NOW, "{}", 2, out, sizeof out) == -EINVAL,
		              "secret %zu accepted", i);
		struct webhook_target target = { .format = FORMAT_STANDARD, .secret = bad[i] };
		struct webhook_event event = { .type = "webhook.test", .created_at = CREATED_AT };
		ck_assert_int_eq(webhook_format_build(&target, &event, MSG_ID, NOW, &req), -EINVAL);
		ck_assert_ptr_null(req.body);
		ck_assert_uint_eq(req.nheaders, 0);
	}
	ck_assert_int_eq(webhook_sign(NULL, MSG_ID, NOW, "{}", 2, out, sizeof out), -EINVAL);
	struct webhook_target target = { .format = FORMAT_STANDARD, .secret = NULL };
	struct webhook_event event = { .type = "webhook.test", .created_at = CREATED_AT };
	ck_assert_int_eq(webhook_format_build(&target, &event, MSG_ID, NOW, &req), -EINVAL);
}
END_TEST

START_TEST(test_ntfy_priority)
{
	static const struct {
		int score;
		const char *priority;
	} cases[] = { { 0, "urgent" }, { 4, "urgent" }, { 5, "high" },
		      { 6, "high" }, { 7, "default" }, { 10, "default" } };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *data = survey_data(cases[i].score, "Jan Jansen", NULL, false);
		struct webhook_request req;
		ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
		ck_assert_msg(strcmp(header(&req, "Priority"), cases[i].priority) == 0,
		              "score %d: %s", cases[i].score, header(&req, "Priority"));
		webhook_request_clear(&req);

		/* Callback events take callback.priority (the score behind the call). */
		json_t *cb = completed_data();
		json_object_set_new(json_object_get(cb, "callback"), "priority",
		                    json_integer(cases[i].score));
		ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "callback.completed", cb, &req), 0);
		ck_assert_str_eq(header(&req, "Priority"), cases[i].priority);
		webhook_request_clear(&req);
		json_decref(cb);
		json_decref(data);
	}

	struct webhook_request req;
	json_t *data = load("{\"webhook\":{\"id\":3,\"url\":\"https://hooks.example/T0/B0/secret\","
	                    "\"reason\":\"410 Gone\"}}");
	/* SPEC's mapping is by score alone: "default" for every other event, these included. */
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "webhook.disabled", data, &req), 0);
	ck_assert_str_eq(header(&req, "Priority"), "default");
	webhook_request_clear(&req);
	json_decref(data);

	data = load("{\"callback\":{\"id\":17}}");
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "callback.sla_breached", data, &req), 0);
	ck_assert_str_eq(header(&req, "Priority"), "default");
	webhook_request_clear(&req);
	json_object_set_new(json_object_get(data, "callback"), "priority", json_integer(8));
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "callback.sla_breached", data, &req), 0);
	ck_assert_str_eq(header(&req, "Priority"), "default");
	webhook_request_clear(&req);
	json_object_set_new(json_object_get(data, "callback"), "priority", json_integer(2));
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "callback.sla_breached", data, &req), 0);
	ck_assert_str_eq(header(&req, "Priority"), "urgent");
	webhook_request_clear(&req);
	json_decref(data);

	data = load("{\"message\":\"hello\"}");
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "webhook.test", data, &req), 0);
	ck_assert_str_eq(header(&req, "Priority"), "default");
	ck_assert_str_eq(header(&req, "Title"), "npsd test alert");
	ck_assert_str_eq(req.body, "hello");
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_ntfy_shape)
{
	json_t *data = survey_data(3, "Jan Jansen", "Took three weeks to pay out", true);
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert_str_eq(req.body, "Jan: \"Took three weeks to pay out\" \xe2\x80\x94 callback queued");
	ck_assert_str_eq(header(&req, "Content-Type"), "text/plain; charset=utf-8");
	ck_assert_str_eq(header(&req, "Tags"), "rotating_light");
	ck_assert_ptr_null(header(&req, "webhook-signature"));

	/* The title has a "·", so it travels RFC 2047 encoded; it decodes to the plain text. */
	const char *title = header(&req, "Title");
	ck_assert(strncmp(title, "=?UTF-8?B?", 10) == 0);
	const char *end = strstr(title, "?=");
	ck_assert_ptr_nonnull(end);
	ck_assert_str_eq(end, "?=");
	char decoded[128];
	size_t len = 0;
	struct base64_decode_ctx ctx;
	base64_decode_init(&ctx);
	ck_assert(base64_decode_update(&ctx, &len, (uint8_t *)decoded, (size_t)(end - title - 10),
	                               title + 10));
	ck_assert(base64_decode_final(&ctx));
	decoded[len] = '\0';
	ck_assert_str_eq(decoded, "NPS 3 (detractor) \xc2\xb7 claim");
	webhook_request_clear(&req);

	char *text_title = NULL;
	const char *priority = NULL, *tags = NULL;
	struct webhook_event event = { .type = "survey.received", .created_at = CREATED_AT, .data = data };
	char *body = webhook_text(&event, &text_title, &priority, &tags);
	ck_assert_str_eq(text_title, "NPS 3 (detractor) \xc2\xb7 claim");
	ck_assert_str_eq(priority, "urgent");
	ck_assert_str_eq(tags, "rotating_light");
	free(body);
	free(text_title);
	json_decref(data);

	/* Promoter without a comment or callback. */
	data = survey_data(10, "Jan Jansen", NULL, false);
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	ck_assert_str_eq(req.body, "Jan, no comment");
	ck_assert_str_eq(header(&req, "Tags"), "star");
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_callback_texts)
{
	json_t *data = completed_data();
	struct webhook_event event = { .type = "callback.completed", .created_at = CREATED_AT, .data = data };
	char *title = NULL;
	const char *priority, *tags;
	char *body = webhook_text(&event, &title, &priority, &tags);
	ck_assert_str_eq(title, "Callback 17 completed: reached");
	ck_assert_str_eq(body, "Jan \xc2\xb7 claim\nprocess: pay faster\ncommunication: say how long it "
	                       "takes\nNotes: Apologised, payment goes out Monday");
	ck_assert(strstr(tags, "telephone_receiver") != NULL);
	free(title);
	free(body);

	event.type = "callback.sla_breached";
	body = webhook_text(&event, &title, &priority, &tags);
	ck_assert_str_eq(title, "Callback 17 missed its SLA");
	free(title);
	free(body);

	event.type = "callback.unreachable";
	body = webhook_text(&event, &title, NULL, NULL);
	ck_assert_str_eq(title, "Callback 17 unreachable after 1 attempt");
	free(title);
	free(body);
	json_decref(data);

	data = load("{\"webhook\":{\"id\":3,\"url\":\"https://hooks.example/T0/B0/secret\","
	            "\"reason\":\"410 Gone\"}}");
	event = (struct webhook_event){ .type = "webhook.disabled", .data = data };
	body = webhook_text(&event, &title, NULL, NULL);
	ck_assert_str_eq(title, "Webhook 3 disabled: 410 Gone");
	/* The URL is a credential for Slack-style receivers: never forwarded to others. */
	ck_assert(strstr(body, "hooks.example") == NULL);
	free(title);
	free(body);
	json_decref(data);
}
END_TEST

/* n code points cycling through 1-, 2-, 3- and 4-byte characters. */
static char *mixed_text(size_t n, size_t shift)
{
	static const char *const chars[] = { "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
	char *s = malloc(n * 4 + 1);
	ck_assert_ptr_nonnull(s);
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		const char *c = chars[(i + shift) % 4];
		memcpy(s + len, c, strlen(c));
		len += strlen(c);
	}
	s[len] = '\0';
	return s;
}

START_TEST(test_ntfy_body_cut)
{
	/* A 10,000-character comment: cut to about 280 characters, on a character boundary. */
	for (size_t shift = 0; shift < 4; shift++) {
		char *comment = mixed_text(10000, shift);
		json_t *data = survey_data(2, "Jan Jansen", comment, true);
		struct webhook_request req;
		ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
		ck_assert_uint_le(req.body_len, 4096);
		ck_assert_uint_eq(req.body_len, strlen(req.body));
		ck_assert(valid_utf8(req.body, req.body_len));
		const char *end = strstr(req.body, "\xe2\x80\xa6\" \xe2\x80\x94 callback queued");
		ck_assert_ptr_nonnull(end);
		/* "Jan: \"" then the comment's first 279 characters, then "…". */
		ck_assert(strncmp(req.body, "Jan: \"", 6) == 0);
		size_t chars = 0;
		for (const char *p = req.body + 6; p < end; p++)
			chars += ((unsigned char)*p & 0xc0) != 0x80;
		ck_assert_uint_eq(chars, 279);
		ck_assert(strncmp(req.body + 6, comment, (size_t)(end - req.body - 6)) == 0);
		webhook_request_clear(&req);
		json_decref(data);
		free(comment);
	}

	/* Improvements and notes that together pass 4,096 bytes: the body itself is cut, at a
	 * character boundary, whatever the alignment of the multi-byte characters. */
	for (size_t shift = 0; shift < 8; shift++) {
		json_t *data = completed_data();
		json_t *list = json_array();
		for (size_t i = 0; i < 20; i++) {
			char *text = mixed_text(2000, shift + i);
			json_array_append_new(list, json_pack("{s:s, s:s}", "area", "process", "text", text));
			free(text);
		}
		json_object_set_new(data, "improvements", list);
		struct webhook_request req;
		ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "callback.completed", data, &req), 0);
		ck_assert_uint_le(req.body_len, 4096);
		ck_assert_uint_ge(req.body_len, 4096 - 8);
		ck_assert(valid_utf8(req.body, req.body_len));
		ck_assert_str_eq(req.body + req.body_len - 3, "\xe2\x80\xa6");
		webhook_request_clear(&req);
		json_decref(data);
	}
}
END_TEST

START_TEST(test_first_name_only)
{
	static const char *const names[] = { "Jan Jansen", "  Jan\r\nJansen", "Jan\tJansen", NULL };
	static const char *const types[] = { "survey.received", "survey.updated", "callback.created",
		                             "callback.completed", "callback.unreachable",
		                             "callback.sla_breached", NULL };
	for (size_t n = 0; names[n]; n++)
		for (size_t t = 0; types[t]; t++)
			for (int format = FORMAT_NTFY; format <= FORMAT_SLACK; format++) {
				json_t *data = strncmp(types[t], "survey", 6) == 0
					               ? survey_data(3, names[n], "slow", true)
					               : completed_data();
				if (strcmp(types[t], "callback.created") == 0)
					json_object_set_new(data, "survey",
					                    json_pack("{s:i, s:s, s:s}", "score", 3,
					                              "touchpoint", "claim", "comment", "slow"));
				json_object_set_new(json_object_get(data, "customer"), "name",
				                    json_string(names[n]));
				struct webhook_request req;
				ck_assert_int_eq(build((enum webhook_format_kind)format, NULL, NULL,
				                       types[t], data, &req),
				                 0);
				ck_assert_msg(!request_contains(&req, "Jansen"), "%s %s leaks the last name",
				              types[t], webhook_format_name((enum webhook_format_kind)format));
				ck_assert_msg(request_contains(&req, "Jan"), "%s has no first name", types[t]);
				webhook_request_clear(&req);
				json_decref(data);
			}

	/* No name at all: no "null", no stray separator. */
	json_t *data = survey_data(3, NULL, "slow", false);
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	ck_assert_str_eq(req.body, "\"slow\"");
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_click_only_with_public_url)
{
	json_t *data = survey_data(3, "Jan Jansen", "slow", true);
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "https://nps.example", "survey.received", data, &req), 0);
	ck_assert_str_eq(header(&req, "Click"), "https://nps.example/ui/#/callbacks/17");
	ck_assert_str_eq(header(&req, "Actions"),
	                 "view, Open callback, https://nps.example/ui/#/callbacks/17");
	webhook_request_clear(&req);

	/* A trailing slash in the configuration does not double up. */
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "https://nps.example/", "survey.received", data, &req), 0);
	ck_assert_str_eq(header(&req, "Click"), "https://nps.example/ui/#/callbacks/17");
	webhook_request_clear(&req);

	/* ntfy's action syntax splits on "," and ";": such a URL is quoted. */
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "https://nps.example/a,b", "survey.received", data,
	                       &req),
	                 0);
	ck_assert_str_eq(header(&req, "Actions"),
	                 "view, Open callback, \"https://nps.example/a,b/ui/#/callbacks/17\"");
	webhook_request_clear(&req);

	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	ck_assert_ptr_null(header(&req, "Click"));
	ck_assert_ptr_null(header(&req, "Actions"));
	webhook_request_clear(&req);

	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "", "survey.received", data, &req), 0);
	ck_assert_ptr_null(header(&req, "Click"));
	webhook_request_clear(&req);
	json_decref(data);

	/* No callback, no link: there is no page to open. */
	data = survey_data(9, "Jan Jansen", "fine", false);
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "https://nps.example", "survey.received", data, &req), 0);
	ck_assert_ptr_null(header(&req, "Click"));
	ck_assert_ptr_null(header(&req, "Actions"));
	webhook_request_clear(&req);
	json_decref(data);

	data = completed_data();
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, "https://nps.example", "callback.completed", data, &req), 0);
	ck_assert_str_eq(header(&req, "Click"), "https://nps.example/ui/#/callbacks/17");
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_slack_shape)
{
	json_t *data = survey_data(3, "Jan Jansen", "Took three weeks <!channel> & more @all", true);
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_SLACK, NULL, NULL, "survey.received", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert_str_eq(header(&req, "Content-Type"), "application/json");
	json_t *doc = load(req.body);
	ck_assert_uint_eq(json_object_size(doc), 1);
	const char *text = json_string_value(json_object_get(doc, "text"));
	ck_assert_ptr_nonnull(text);
	/* "@all" pages no Mattermost channel: a word joiner follows the "@". */
	ck_assert_str_eq(text, "*NPS 3 (detractor) \xc2\xb7 claim*\nJan: \"Took three weeks &lt;!channel&gt; "
	                       "&amp; more @\xe2\x81\xa0" "all\" \xe2\x80\x94 callback queued");
	json_decref(doc);
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

/* A digest's title is its data's: an older period's, told after a time npsd was down, names
 * the period ("NPS, Sunday 22 Nov"), where every digest was titled "NPS, the last day". One
 * written before digests had a title keeps the old one. */
START_TEST(test_digest_title_names_its_period)
{
	json_t *data = load("{\"period\":\"daily\",\"from\":\"2026-11-22T07:00:00Z\","
	                    "\"to\":\"2026-11-23T07:00:00Z\",\"title\":\"NPS, Sunday 22 Nov\","
	                    "\"message\":\"Sunday 22 Nov, 2026-11-22 08:00 to 2026-11-23 08:00: no "
	                    "answers.\\nOpen queue: 0 callbacks.\"}");
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "digest", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert_str_eq(header(&req, "Title"), "NPS, Sunday 22 Nov");
	ck_assert_str_eq(req.body, "Sunday 22 Nov, 2026-11-22 08:00 to 2026-11-23 08:00: no answers.\n"
	                           "Open queue: 0 callbacks.");
	webhook_request_clear(&req);

	ck_assert_int_eq(build(FORMAT_SLACK, NULL, NULL, "digest", data, &req), 0);
	json_t *doc = load(req.body);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "text")),
	                 "*NPS, Sunday 22 Nov*\nSunday 22 Nov, 2026-11-22 08:00 to 2026-11-23 08:00: no "
	                 "answers.\nOpen queue: 0 callbacks.");
	json_decref(doc);
	webhook_request_clear(&req);

	/* Without a title (a digest already in the outbox before an upgrade): as before. */
	json_object_del(data, "title");
	json_object_set_new(data, "period", json_string("hourly"));
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "digest", data, &req), 0);
	ck_assert_str_eq(header(&req, "Title"), "NPS, the last hour");
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_authorization_only_when_set)
{
	json_t *data = survey_data(3, "Jan Jansen", "slow", true);
	for (int format = FORMAT_STANDARD; format <= FORMAT_SLACK; format++) {
		struct webhook_request req;
		enum webhook_format_kind kind = (enum webhook_format_kind)format;
		ck_assert_int_eq(build(kind, "Bearer tk_123", NULL, "survey.received", data, &req), 0);
		ck_assert_str_eq(header(&req, "Authorization"), "Bearer tk_123");
		webhook_request_clear(&req);
		ck_assert_int_eq(build(kind, NULL, NULL, "survey.received", data, &req), 0);
		ck_assert_ptr_null(header(&req, "Authorization"));
		webhook_request_clear(&req);
		ck_assert_int_eq(build(kind, "", NULL, "survey.received", data, &req), 0);
		ck_assert_ptr_null(header(&req, "Authorization"));
		webhook_request_clear(&req);
		/* A value that would add a header of its own is refused. */
		ck_assert_int_eq(build(kind, "Bearer x\r\nX-Evil: 1", NULL, "survey.received", data, &req),
		                 -EINVAL);
		ck_assert_ptr_null(req.body);
		ck_assert_uint_eq(req.nheaders, 0);
	}
	json_decref(data);
}
END_TEST

/* auth is the one header value a person types: a tab, a C1 control (U+0085, a line break
 * to some parsers), DEL or a line separator went into the Authorization header as is. */
START_TEST(test_auth_is_printable_utf8)
{
	static const char *const bad[] = { "Bearer\ttk_1",      "Bearer tk_1\xc2\x85X-Evil: 1", "Bearer tk_1\x7f",
		                           "Bearer tk_1\x1b[0m", "Bearer tk_1\xe2\x80\xa8X-Evil: 1", "Bearer tk_\xff",
		                           "Bearer tk_\xc0\xa0" };
	json_t *data = survey_data(3, "Jan Jansen", "slow", true);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(!webhook_header_value_ok(bad[i]), "case %zu passes as a header value", i);
		for (int format = FORMAT_STANDARD; format <= FORMAT_SLACK; format++) {
			struct webhook_request req;
			int r = build((enum webhook_format_kind)format, bad[i], NULL, "survey.received", data, &req);
			ck_assert_msg(r == -EINVAL, "case %zu, format %d: %d, Authorization [%s]", i, format, r,
			              r == 0 ? header(&req, "Authorization") : "");
			ck_assert_ptr_null(req.body);
			ck_assert_uint_eq(req.nheaders, 0);
		}
	}
	ck_assert(webhook_header_value_ok("Bearer tk_1 ~!#$%&'*+-.^_`|=/\"\\"));
	ck_assert(webhook_auth_value_ok("Bearer tk_1 ~!#$%&'*+-.^_`|=/\"\\"));
	/* SPEC's own example, and a credential in a person's own letters, go out as given. */
	static const char *const good[] = { "Bearer tk_\xe2\x80\xa6", "Bearer tk_caf\xc3\xa9" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ck_assert_msg(webhook_auth_value_ok(good[i]), "case %zu is refused", i);
		for (int format = FORMAT_STANDARD; format <= FORMAT_SLACK; format++) {
			struct webhook_request req;
			ck_assert_int_eq(build((enum webhook_format_kind)format, good[i], NULL, "survey.received", data, &req), 0);
			ck_assert_str_eq(header(&req, "Authorization"), good[i]);
			webhook_request_clear(&req);
		}
	}
	json_decref(data);
}
END_TEST

/* libcurl sends no Authorization header for an "Authorization:" line of blanks alone: an
 * auth of blanks (stored before the API refused it) is not a header value it sends. */
START_TEST(test_auth_of_blanks_alone_is_refused)
{
	json_t *data = survey_data(3, "Jan Jansen", "slow", true);
	static const char *const blank[] = { " ", "   " };
	for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
		ck_assert_msg(!webhook_auth_value_ok(blank[i]), "case %zu passes as an auth", i);
		struct webhook_request req;
		ck_assert_int_eq(build(FORMAT_STANDARD, blank[i], NULL, "survey.received", data, &req), -EINVAL);
	}
	ck_assert(webhook_auth_value_ok(" Bearer tk_1 "));
	json_decref(data);
}
END_TEST

START_TEST(test_injection_and_controls)
{
	json_t *data = survey_data(3, "Jan\r\nX-Evil: 1", "line one\r\nX-Evil: 2\n\n\tline two\x7f", true);
	json_object_set_new(json_object_get(data, "survey"), "touchpoint",
	                    json_string("claim\r\nX-Evil: 3"));
	struct webhook_request req;
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert_ptr_null(header(&req, "X-Evil"));
	ck_assert(strchr(req.body, '\r') == NULL && strchr(req.body, '\n') == NULL);
	ck_assert_str_eq(req.body, "Jan: \"line one X-Evil: 2 line two\" \xe2\x80\x94 callback queued");
	webhook_request_clear(&req);
	json_decref(data);

	/* A right-to-left override in a name would turn the rest of the line around; an
	 * isolate and a zero-width space hide what follows. A joiner in an emoji stays. */
	data = survey_data(3, "Zo\xc3\xab\xe2\x80\xae" "evil", "a\xe2\x81\xa6" "b\xe2\x80\x8b" "c \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", true);
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "survey.received", data, &req), 0);
	ck_assert_msg(!strstr(req.body, "\xe2\x80\xae") && !strstr(req.body, "\xe2\x81\xa6") && !strstr(req.body, "\xe2\x80\x8b"),
	              "bidi or zero-width characters passed: %s", req.body);
	ck_assert_msg(strstr(req.body, "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"), "the emoji's joiner went: %s", req.body);
	webhook_request_clear(&req);
	json_decref(data);

	/* A reason that looks like an encoded-word is encoded, not passed on to be decoded. */
	data = load("{\"webhook\":{\"id\":3,\"reason\":\"=?UTF-8?B?SGk=?=\\r\\nX-Evil: 4\"}}");
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "webhook.disabled", data, &req), 0);
	assert_headers_clean(&req);
	ck_assert(strncmp(header(&req, "Title"), "=?UTF-8?B?", 10) == 0);
	webhook_request_clear(&req);
	json_decref(data);

	/* A long non-ASCII title splits into encoded-words of at most 75 characters. */
	char *reason = mixed_text(400, 1);
	data = json_pack("{s:{s:i, s:s}}", "webhook", "id", 3, "reason", reason);
	free(reason);
	ck_assert_int_eq(build(FORMAT_NTFY, NULL, NULL, "webhook.disabled", data, &req), 0);
	assert_headers_clean(&req);
	size_t nwords = 0;
	for (const char *w = header(&req, "Title"); w; nwords++) {
		const char *space = strchr(w, ' ');
		size_t len = space ? (size_t)(space - w) : strlen(w);
		ck_assert_uint_le(len, 75);
		ck_assert(strncmp(w, "=?UTF-8?B?", 10) == 0 && strncmp(w + len - 2, "?=", 2) == 0);
		w = space ? space + 1 : NULL;
	}
	ck_assert_uint_gt(nwords, 1);
	webhook_request_clear(&req);
	json_decref(data);
}
END_TEST

START_TEST(test_missing_fields)
{
	static const char *const types[] = {
		"survey.received", "survey.updated", "callback.created", "callback.completed",
		"callback.unreachable", "callback.sla_breached", "callback.", "webhook.disabled",
		"webhook.test", "loop.silent", "loop.nps_drop", "something.new", "", NULL,
	};
	static const char *const payloads[] = {
		NULL, "{}", "[]", "null", "42",
		"{\"survey\":null,\"customer\":null,\"callback\":null,\"webhook\":null,\"notes\":null}",
		"{\"survey\":5,\"customer\":\"x\",\"callback\":[],\"webhook\":true,\"notes\":7,"
		"\"improvements\":{}}",
		"{\"survey\":{\"score\":\"3\",\"comment\":7,\"touchpoint\":[]},\"customer\":{\"name\":5},"
		"\"callback\":{\"id\":\"17\",\"priority\":99,\"attempts\":-1}}",
		"{\"survey\":{\"score\":11},\"customer\":{\"name\":\"   \"},\"callback\":{\"id\":0},"
		"\"improvements\":[null,5,{\"area\":1},{\"text\":\"only text\"}],"
		"\"webhook\":{\"id\":-1,\"reason\":\"\"}}",
		"{\"survey\":{\"score\":-1,\"comment\":\"\"},\"customer\":{\"name\":\"\\u00a0Jan\"},"
		"\"callback\":{\"id\":9223372036854775807,\"status\":\"\"}}",
		NULL,
	};
	for (size_t t = 0; types[t]; t++)
		for (size_t p = 0; p == 0 || payloads[p]; p++) {
			json_t *data = payloads[p] ? json_loads(payloads[p], JSON_DECODE_ANY, NULL) : NULL;
			for (int format = FORMAT_STANDARD; format <= FORMAT_SLACK; format++) {
				struct webhook_request req;
				ck_assert_int_eq(build((enum webhook_format_kind)format, "Bearer x",
				                       "https://nps.example", types[t], data, &req),
				                 0);
				ck_assert_ptr_nonnull(req.body);
				ck_assert(req.body_len > 0);
				ck_assert(valid_utf8(req.body, req.body_len));
				assert_headers_clean(&req);
				webhook_request_clear(&req);
			}
			char *title = NULL;
			struct webhook_event event = { .type = types[t], .data = data };
			char *body = webhook_text(&event, &title, NULL, NULL);
			ck_assert_ptr_nonnull(body);
			ck_assert_ptr_nonnull(title);
			ck_assert(title[0] != '\0' && body[0] != '\0');
			free(title);
			free(body);
			json_decref(data);
		}

	/* No event type or message id at all is the caller's bug, reported, not a crash. */
	struct webhook_target target = { .format = FORMAT_NTFY, .secret = known_secret };
	struct webhook_event event = { .type = NULL };
	struct webhook_request req;
	ck_assert_int_eq(webhook_format_build(&target, &event, MSG_ID, NOW, &req), -EINVAL);
	event.type = "webhook.test";
	ck_assert_int_eq(webhook_format_build(&target, &event, NULL, NOW, &req), -EINVAL);
	ck_assert_int_eq(webhook_format_build(&target, &event, "id\r\nX: 1", NOW, &req), -EINVAL);
	ck_assert_int_eq(webhook_format_build(NULL, &event, MSG_ID, NOW, &req), -EINVAL);
	webhook_request_clear(&req);
	webhook_request_clear(NULL);
}
END_TEST

static Suite *webhook_format_suite(void)
{
	Suite *s = suite_create("webhook_format");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, make_known_secret, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_format_names);
	tcase_add_test(tc, test_sign_known_vector);
	tcase_add_test(tc, test_sign_standard_webhooks_example);
	tcase_add_test(tc, test_standard_envelope);
	tcase_add_test(tc, test_secret_round_trip);
	tcase_add_test(tc, test_malformed_secret);
	tcase_add_test(tc, test_ntfy_priority);
	tcase_add_test(tc, test_ntfy_shape);
	tcase_add_test(tc, test_callback_texts);
	tcase_add_test(tc, test_ntfy_body_cut);
	tcase_add_test(tc, test_first_name_only);
	tcase_add_test(tc, test_click_only_with_public_url);
	tcase_add_test(tc, test_slack_shape);
	tcase_add_test(tc, test_digest_title_names_its_period);
	tcase_add_test(tc, test_authorization_only_when_set);
	tcase_add_test(tc, test_auth_is_printable_utf8);
	tcase_add_test(tc, test_auth_of_blanks_alone_is_refused);
	tcase_add_test(tc, test_injection_and_controls);
	tcase_add_test(tc, test_missing_fields);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(webhook_format_suite());
}
