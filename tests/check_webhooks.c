/* The SSRF guard and the subscription validator: pure, so no daemon needed. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/deliver.h"
#include "npsd/webhooks.h"

#include "testutil.h"

static bool blocked(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	}
	return webhooks_address_blocked((struct sockaddr *)&ss);
}

START_TEST(guard_refuses_private_ranges)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1",
		"239.255.255.250", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1",
		"ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254",
		"64:ff9b::7f00:1", "64:ff9b::a01:203", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(blocked(refused[i]), "%s should be refused", refused[i]);
}
END_TEST

START_TEST(guard_allows_public_addresses)
{
	static const char *const allowed[] = {
		"1.1.1.1", "8.8.8.8", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
		"192.167.1.1", "169.253.1.1", "2001:4860:4860::8888", "2a00:1450::1", "::ffff:8.8.8.8",
		"64:ff9b::808:808",
		/* Just outside the special-purpose ranges. */
		"192.0.1.255", "192.0.3.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0",
		"198.17.255.255", "198.20.0.0", "192.88.98.255", "192.88.100.0", "223.255.255.255",
		"2001:200::1", "2001:db9::1", "2001:db7:ffff::1", "2002:808:808::1", "2606:4700:4700::1111",
		"2c0f:fb50::1", "3ffe:ffff::1", "64:ff9b::5db8:d822", "::ffff:93.184.216.34",
	};
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		ck_assert_msg(!blocked(allowed[i]), "%s should be allowed", allowed[i]);
}
END_TEST

/* The IANA special-purpose ranges that are not globally reachable, each at its edges, and
 * the IPv6 forms that carry an IPv4 address (review of the guard: the documentation ranges
 * and 6to4, Teredo, site-local and the rest went through). */
START_TEST(guard_refuses_every_range_that_is_not_global)
{
	static const char *const refused[] = {
		"0.255.255.255",                       /* this network */
		"100.64.0.0", "100.127.255.255",       /* shared address space */
		"192.0.0.0", "192.0.0.9", "192.0.0.170", "192.0.0.255", /* IETF protocol assignments */
		"192.0.2.0", "192.0.2.1", "192.0.2.255", /* TEST-NET-1 */
		"198.51.100.0", "198.51.100.255",       /* TEST-NET-2 */
		"203.0.113.0", "203.0.113.255",         /* TEST-NET-3 */
		"192.88.99.1",                          /* 6to4 relay anycast, deprecated */
		"198.18.0.0", "198.19.255.255",         /* benchmarking */
		"240.0.0.1", "255.255.255.254",         /* reserved */
		"255.255.255.255",                      /* broadcast */
		"::ffff:192.0.2.1", "::ffff:203.0.113.9", "::ffff:198.18.0.1", /* IPv4-mapped */
		"::192.0.2.1", "::127.0.0.1", "::8.8.8.8", /* IPv4-compatible: deprecated, all */
		"64:ff9b::c000:201", "64:ff9b::c633:6401", "64:ff9b::f000:1", /* NAT64 */
		"2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", "2002:c000:201::1", "2002:c0a8:101::1",
		"2002:6440:1::1", "2002:e000:1::1", /* 6to4 of refused IPv4 addresses */
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1", /* Teredo */
		"2001:1::1", "2001:2::1", "2001:10::1", "2001:1ff:ffff::1", /* IETF protocol assignments */
		"2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", /* documentation */
		"3fff::1", "3fff:fff::1",               /* documentation (RFC 9637) */
		"100::1", "100::ffff:ffff:ffff:ffff",   /* discard-only */
		"fec0::1", "feff::1",                   /* site-local */
		"fbff::1", "fe00::1",                   /* unassigned, beside unique local and link-local */
		"ff05::1", "ff0e::1",                   /* multicast */
		"5f00::1", "4000::1", "1::1", "::2", "::1:0:0:1", "e000::1", /* outside 2000::/3 */
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(blocked(refused[i]), "%s should be refused", refused[i]);
}
END_TEST

/* A refusal names the range (and the RFC), which goes into the attempt's error. */
START_TEST(guard_says_why)
{
	static const struct {
		const char *ip, *why;
	} cases[] = {
		{ "192.0.2.7", "192.0.2.0/24, documentation" },
		{ "::ffff:10.1.1.1", "10.0.0.0/8, private" },
		{ "64:ff9b::a9fe:a9fe", "169.254.0.0/16, link-local" },
		{ "2002:c633:6401::1", "198.51.100.0/24, documentation" },
		{ "2001:db8::1", "2001:db8::/32, documentation" },
		{ "2001::1", "Teredo" },
		{ "fec0::1", "site-local" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss = { 0 };
		if (strchr(cases[i].ip, ':')) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			in6->sin6_family = AF_INET6;
			ck_assert_int_eq(inet_pton(AF_INET6, cases[i].ip, &in6->sin6_addr), 1);
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			in->sin_family = AF_INET;
			ck_assert_int_eq(inet_pton(AF_INET, cases[i].ip, &in->sin_addr), 1);
		}
		const char *why = webhooks_address_refusal((struct sockaddr *)&ss);
		ck_assert_msg(why && strstr(why, cases[i].why), "%s: %s, want %s", cases[i].ip, why ? why : "(allowed)",
		              cases[i].why);
	}
}
END_TEST

/* A public address assigned to one of the host's interfaces reaches the host's own services
 * (a database on 0.0.0.0): refused, in every form that ends there. The test gives itself
 * such an address in a network namespace of its own. */
START_TEST(guard_refuses_the_hosts_own_addresses)
{
	/* In one process (CK_FORK=no) an earlier test has read the host's list already: wait
	 * until it is old enough to be read again. */
	const char *fork_mode = getenv("CK_FORK");
	if (fork_mode && strcmp(fork_mode, "no") == 0)
		sleep_ms(10100);
	netns_with_own_address("1.2.3.4");
	ck_assert_msg(blocked("1.2.3.4"), "the host's own 1.2.3.4 should be refused");
	ck_assert_msg(blocked("::ffff:1.2.3.4"), "::ffff:1.2.3.4 should be refused");
	ck_assert_msg(blocked("64:ff9b::102:304"), "NAT64 of 1.2.3.4 should be refused");
	ck_assert_msg(blocked("2002:102:304::1"), "6to4 of 1.2.3.4 should be refused");
	ck_assert_msg(!blocked("1.2.3.5"), "1.2.3.5 is not the host's");
}
END_TEST

static int validate_text(const char *text, bool patch, bool allow_private, struct webhook_input *in,
                         struct field_error *err, json_t **doc)
{
	*doc = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(*doc);
	return webhooks_validate(*doc, patch, allow_private, in, err);
}

static void expect_error(const char *text, bool allow_private, const char *code, const char *field)
{
	struct webhook_input in;
	struct field_error err;
	json_t *doc;
	ck_assert_int_eq(validate_text(text, false, allow_private, &in, &err, &doc), -1);
	ck_assert_str_eq(err.code, code);
	ck_assert_str_eq(err.field, field);
	json_decref(doc);
}

START_TEST(validator_accepts_a_full_subscription)
{
	struct webhook_input in;
	struct field_error err;
	json_t *doc;
	ck_assert_int_eq(validate_text("{\"url\":\"https://ntfy.example/nps\",\"format\":\"ntfy\","
	                               "\"events\":[\"callback.created\",\"survey.received\"],"
	                               "\"filter\":{\"max_score\":6,\"touchpoints\":[\"claim\"]},"
	                               "\"auth\":\"Bearer tk_x\",\"description\":\"claims team\"}",
	                               false, false, &in, &err, &doc),
	                 0);
	ck_assert_str_eq(in.url, "https://ntfy.example/nps");
	ck_assert_str_eq(in.format, "ntfy");
	ck_assert_uint_eq(in.events, webhook_event_bit("callback.created") | webhook_event_bit("survey.received"));
	ck_assert_str_eq(in.auth, "Bearer tk_x");
	ck_assert_int_eq(in.active, -1);
	json_decref(doc);
}
END_TEST

START_TEST(validator_names_the_field)
{
	expect_error("{\"events\":[\"survey.received\"]}", true, "missing_field", "url");
	expect_error("{\"url\":\"https://x.example/\"}", true, "missing_field", "events");
	expect_error("{\"url\":\"ftp://x.example/\",\"events\":[\"survey.received\"]}", true, "invalid_field", "url");
	expect_error("{\"url\":\"not a url\",\"events\":[\"survey.received\"]}", true, "invalid_field", "url");
	/* libcurl would take x for the host of these: the stored URL must say where alerts go. */
	expect_error("{\"url\":\"http:///x\",\"events\":[\"survey.received\"]}", true, "invalid_field", "url");
	expect_error("{\"url\":\"https://\",\"events\":[\"survey.received\"]}", true, "invalid_field", "url");
	expect_error("{\"url\":\"https://?x\",\"events\":[\"survey.received\"]}", true, "invalid_field", "url");
	expect_error("{\"url\":\"http://x.example:0/\",\"events\":[\"survey.received\"]}", true,
	             "invalid_field", "url");
	/* A filter nothing can pass. */
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],"
	             "\"filter\":{\"min_score\":8,\"max_score\":2}}",
	             true, "invalid_field", "filter.min_score");
	expect_error("{\"url\":\"https://u:p@x.example/\",\"events\":[\"survey.received\"]}", true,
	             "invalid_field", "url");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\",\"nope\"]}", true,
	             "invalid_field", "events.1");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[]}", true, "invalid_field", "events");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"format\":\"xml\"}", true,
	             "invalid_field", "format");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"filter\":{\"max_score\":11}}",
	             true, "invalid_field", "filter.max_score");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"filter\":{\"touchpoints\":[\"Claim!\"]}}",
	             true, "invalid_field", "filter.touchpoints");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"filter\":{\"colour\":1}}",
	             true, "invalid_field", "filter.colour");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"auth\":\"a\\r\\nX: y\"}",
	             true, "invalid_field", "auth");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"extra\":1}", true,
	             "invalid_field", "extra");
	/* A client's own key, too long to name whole: cut at a character, so it stays UTF-8. */
	char doc[2048];
	int len = snprintf(doc, sizeof doc, "{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"filter\":{\"x");
	for (int i = 0; i < 300; i++)
		len += snprintf(doc + len, sizeof doc - (size_t)len, "\\u00e9");
	snprintf(doc + len, sizeof doc - (size_t)len, "\":1}}");
	struct webhook_input in;
	struct field_error err;
	json_t *parsed;
	ck_assert_int_eq(validate_text(doc, false, true, &in, &err, &parsed), -1);
	ck_assert_msg(strncmp(err.field, "filter.x\xc3\xa9", 10) == 0, "field %s", err.field);
	json_t *field = json_string(err.field);
	ck_assert_msg(field, "the field is not UTF-8");
	json_decref(field);
	json_decref(parsed);
	expect_error("{\"url\":\"https://x.example/\",\"digest\":\"daily\",\"filter\":{\"touchpoints\":[\"claim\","
	             "\"claim\"]}}",
	             true, "invalid_field", "filter.touchpoints");
	expect_error("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"digest\":\"weekly\"}", true,
	             "invalid_field", "digest");
	expect_error("{\"url\":\"https://x.example/\",\"digest\":\"daily\",\"digest_at\":\"7:30\"}", true,
	             "invalid_field", "digest_at");

	/* 65 touchpoints: the message says what is wrong with a list of good names. */
	char many[2048];
	int n = snprintf(many, sizeof many,
	                 "{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],\"filter\":{\"touchpoints\":[");
	for (int i = 0; i < 65; i++)
		n += snprintf(many + n, sizeof many - (size_t)n, "%s\"t%d\"", i ? "," : "", i);
	snprintf(many + n, sizeof many - (size_t)n, "]}}");
	ck_assert_int_eq(validate_text(many, false, true, &in, &err, &parsed), -1);
	ck_assert_str_eq(err.field, "filter.touchpoints");
	ck_assert_msg(strstr(err.message, "at most 64 touchpoints"), "message: %s", err.message);
	json_decref(parsed);
	/* A digest_at of null beside no digest is no time at all, not a time without a digest. */
	ck_assert_int_eq(validate_text("{\"url\":\"https://x.example/\",\"events\":[\"survey.received\"],"
	                               "\"digest\":null,\"digest_at\":null}",
	                               false, true, &in, &err, &parsed),
	                 0);
	json_decref(parsed);
}
END_TEST

START_TEST(validator_applies_the_ssrf_guard_unless_allowed)
{
	static const char *const urls[] = {
		"http://127.0.0.1:9/", "http://10.0.0.1/", "http://169.254.169.254/latest", "http://[::1]:80/",
		"http://100.64.0.1/", "http://224.0.0.1/", "http://0.0.0.0/",
	};
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "{\"url\":\"%s\",\"events\":[\"survey.received\"]}", urls[i]);
		expect_error(text, false, "invalid_field", "url");
		struct webhook_input in;
		struct field_error err;
		json_t *doc;
		ck_assert_int_eq(validate_text(text, false, true, &in, &err, &doc), 0);
		json_decref(doc);
	}
}
END_TEST

START_TEST(patch_takes_any_subset)
{
	struct webhook_input in;
	struct field_error err;
	json_t *doc;
	ck_assert_int_eq(validate_text("{\"active\":false}", true, false, &in, &err, &doc), 0);
	ck_assert_int_eq(in.active, 0);
	ck_assert(!in.has_url && !in.has_events && !in.has_filter);
	json_decref(doc);
	ck_assert_int_eq(validate_text("{\"filter\":null,\"auth\":null}", true, false, &in, &err, &doc), 0);
	ck_assert(in.has_filter && in.filter == NULL && in.has_auth && in.auth == NULL);
	json_decref(doc);
}
END_TEST

/* +-20% around the step, whole units, both ends reached and the middle in the middle. */
START_TEST(retry_jitter_spans_the_whole_range)
{
	ck_assert_int_eq(deliver_jitter(5, 0), 4);
	ck_assert_int_eq(deliver_jitter(5, UINT32_MAX), 6);
	ck_assert_int_eq(deliver_jitter(5, UINT32_MAX / 2), 5);
	ck_assert_int_eq(deliver_jitter(3600, 0), 2880);
	ck_assert_int_eq(deliver_jitter(3600, UINT32_MAX), 4320);
	ck_assert_int_eq(deliver_jitter(1, 0), 1); /* never 0 */
	/* Over an even spread of random values the mean wait is the step. */
	int64_t sum = 0;
	const int n = 1000;
	for (int i = 0; i < n; i++)
		sum += deliver_jitter(5, (uint32_t)((uint64_t)UINT32_MAX * (uint64_t)i / (uint64_t)(n - 1)));
	ck_assert_msg(sum >= 4950 && sum <= 5050, "mean wait %.3f s for a 5 s step", (double)sum / n);
}
END_TEST

/* Deliveries are kept in whole seconds: a retry's second is rounded up, never before its wait. */
START_TEST(a_retry_never_comes_before_its_wait)
{
	ck_assert_int_eq(deliver_retry_at(10000, 1000), 11);
	ck_assert_int_eq(deliver_retry_at(10001, 1000), 12);
	ck_assert_int_eq(deliver_retry_at(10900, 1000), 12); /* truncated: 11, 0.1 s after */
	ck_assert_int_eq(deliver_retry_at(10999, 800), 12);
	ck_assert_int_eq(deliver_retry_at(1795462684000, 4320000), 1795467004);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("webhooks");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, guard_refuses_private_ranges);
	tcase_add_test(tc, guard_allows_public_addresses);
	tcase_add_test(tc, guard_refuses_every_range_that_is_not_global);
	tcase_add_test(tc, guard_says_why);
	tcase_add_test(tc, guard_refuses_the_hosts_own_addresses);
	tcase_add_test(tc, validator_accepts_a_full_subscription);
	tcase_add_test(tc, validator_names_the_field);
	tcase_add_test(tc, validator_applies_the_ssrf_guard_unless_allowed);
	tcase_add_test(tc, patch_takes_any_subset);
	tcase_add_test(tc, retry_jitter_spans_the_whole_range);
	tcase_add_test(tc, a_retry_never_comes_before_its_wait);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
