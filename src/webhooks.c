#include "npsd/webhooks.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "npsd/hostaddrs.h"
#include "npsd/webhook_format.h"

const char *const webhook_event_types[] = {
	"survey.received",
	"survey.updated",
	"callback.created",
	"callback.completed",
	"callback.sla_breached",
	"callback.unreachable",
	"webhook.disabled",
	"webhook.test",
	"loop.silent",
	"loop.nps_drop",
	NULL,
};

uint32_t webhook_event_bit(const char *type)
{
	for (size_t i = 0; webhook_event_types[i]; i++)
		if (strcmp(type, webhook_event_types[i]) == 0)
			return (uint32_t)1 << i;
	return 0;
}

#define URL_MAX 2048
#define AUTH_MAX 1024
#define DESCRIPTION_MAX 200
#define TOUCHPOINTS_MAX 64
#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x) /* a number written into a message */

static int fail(struct field_error *err, const char *code, const char *field, const char *message)
{
	field_error_set(err, code, field, message);
	return -1;
}

/* The SSRF guard's table: every address that is not globally reachable, after the IANA
 * IPv4 and IPv6 special-purpose address registries (RFC 6890 and what came since). IPv4
 * rows are written in their IPv4-mapped form (::ffff:0:0/96), so that one table and one
 * lookup serve both families and every IPv6 form that carries an IPv4 address. The first
 * row whose prefix matches decides: REFUSE (what says why), EMBEDS (the IPv4 address in
 * bytes v4_at to v4_at + 3 is where the packets end up: it is looked up in turn) or PUBLIC.
 * Rows that IANA marks globally reachable inside a refused block (the PCP and TURN anycast
 * addresses, AMT, AS112, ORCHIDv2) stay refused: they are answered by a router near the
 * sender, or are no web server's address. */
enum range_rule { REFUSE, EMBEDS, PUBLIC };
struct range {
	uint8_t prefix[16];
	uint8_t len; /* in bits */
	uint8_t v4_at;
	enum range_rule rule;
	const char *what;
};
/* clang-format off */
#define V4(a, b, c, d) { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }
/* clang-format on */
static const struct range ranges[] = {
	{ V4(0, 0, 0, 0), 96 + 8, 0, REFUSE, "0.0.0.0/8, this network (RFC 791)" },
	{ V4(10, 0, 0, 0), 96 + 8, 0, REFUSE, "10.0.0.0/8, private (RFC 1918)" },
	{ V4(100, 64, 0, 0), 96 + 10, 0, REFUSE, "100.64.0.0/10, shared CGNAT space (RFC 6598)" },
	{ V4(127, 0, 0, 0), 96 + 8, 0, REFUSE, "127.0.0.0/8, loopback (RFC 1122)" },
	{ V4(169, 254, 0, 0), 96 + 16, 0, REFUSE, "169.254.0.0/16, link-local (RFC 3927)" },
	{ V4(172, 16, 0, 0), 96 + 12, 0, REFUSE, "172.16.0.0/12, private (RFC 1918)" },
	{ V4(192, 0, 0, 0), 96 + 24, 0, REFUSE, "192.0.0.0/24, IETF protocol assignments (RFC 6890)" },
	{ V4(192, 0, 2, 0), 96 + 24, 0, REFUSE, "192.0.2.0/24, documentation (RFC 5737)" },
	{ V4(192, 88, 99, 0), 96 + 24, 0, REFUSE, "192.88.99.0/24, 6to4 relay anycast (RFC 7526)" },
	{ V4(192, 168, 0, 0), 96 + 16, 0, REFUSE, "192.168.0.0/16, private (RFC 1918)" },
	{ V4(198, 18, 0, 0), 96 + 15, 0, REFUSE, "198.18.0.0/15, benchmarking (RFC 2544)" },
	{ V4(198, 51, 100, 0), 96 + 24, 0, REFUSE, "198.51.100.0/24, documentation (RFC 5737)" },
	{ V4(203, 0, 113, 0), 96 + 24, 0, REFUSE, "203.0.113.0/24, documentation (RFC 5737)" },
	{ V4(224, 0, 0, 0), 96 + 4, 0, REFUSE, "224.0.0.0/4, multicast (RFC 5771)" },
	{ V4(255, 255, 255, 255), 96 + 32, 0, REFUSE, "255.255.255.255, broadcast (RFC 919)" },
	{ V4(240, 0, 0, 0), 96 + 4, 0, REFUSE, "240.0.0.0/4, reserved (RFC 1112)" },
	{ V4(0, 0, 0, 0), 96, 0, PUBLIC, "IPv4" },
	{ { 0 }, 128, 0, REFUSE, "::/128, unspecified (RFC 4291)" },
	{ { [15] = 1 }, 128, 0, REFUSE, "::1, loopback (RFC 4291)" },
	{ { 0 }, 96, 0, REFUSE, "::/96, IPv4-compatible, deprecated (RFC 4291)" },
	{ { 0, 0x64, 0xff, 0x9b }, 96, 12, EMBEDS, "64:ff9b::/96, NAT64 (RFC 6052)" },
	{ { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48, 0, REFUSE, "64:ff9b:1::/48, local NAT64 (RFC 8215)" },
	{ { 0x01 }, 64, 0, REFUSE, "100::/64, discard-only (RFC 6666)" },
	{ { 0x20, 0x01 }, 32, 0, REFUSE, "2001::/32, Teredo (RFC 4380)" },
	{ { 0x20, 0x01 }, 23, 0, REFUSE, "2001::/23, IETF protocol assignments (RFC 2928)" },
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, 0, REFUSE, "2001:db8::/32, documentation (RFC 3849)" },
	{ { 0x20, 0x02 }, 16, 2, EMBEDS, "2002::/16, 6to4 (RFC 3056)" },
	{ { 0x3f, 0xff }, 20, 0, REFUSE, "3fff::/20, documentation (RFC 9637)" },
	{ { 0x20 }, 3, 0, PUBLIC, "2000::/3, global unicast (RFC 4291)" },
	{ { 0xfc }, 7, 0, REFUSE, "fc00::/7, unique local (RFC 4193)" },
	{ { 0xfe, 0x80 }, 10, 0, REFUSE, "fe80::/10, link-local (RFC 4291)" },
	{ { 0xfe, 0xc0 }, 10, 0, REFUSE, "fec0::/10, site-local, deprecated (RFC 3879)" },
	{ { 0xff }, 8, 0, REFUSE, "ff00::/8, multicast (RFC 4291)" },
	/* Outside 2000::/3 IANA has allocated no global unicast space (5f00::/16 is SRv6's). */
	{ { 0 }, 0, 0, REFUSE, "outside 2000::/3, not global unicast (RFC 4291)" },
};
#undef V4

static const struct range *range_of(const uint8_t a[16])
{
	size_t last = sizeof ranges / sizeof ranges[0] - 1;
	for (size_t i = 0; i < last; i++) {
		const struct range *r = &ranges[i];
		size_t bytes = r->len / 8;
		unsigned bits = r->len % 8;
		if (memcmp(a, r->prefix, bytes) == 0 &&
		    (bits == 0 || ((a[bytes] ^ r->prefix[bytes]) & (0xff00 >> bits) & 0xff) == 0))
			return r;
	}
	return &ranges[last]; /* ::/0 */
}

/* Why the guard refuses the IPv6 address a (IPv4 ones in their mapped form), or NULL. */
static const char *refusal(const uint8_t a[16])
{
	const struct range *r = range_of(a);
	struct in6_addr to;
	memcpy(to.s6_addr, a, 16);
	if (r->rule == EMBEDS) {
		ipv4_mapped(&to, &a[r->v4_at]);
		r = range_of(to.s6_addr); /* an IPv4 row: REFUSE or PUBLIC */
	}
	if (r->rule != PUBLIC)
		return r->what;
	/* Looked up last, and only for public addresses: the list may need reading again. */
	return hostaddrs_contains(&to) ? "an address of this host, where its local services listen" : NULL;
}

const char *webhooks_address_refusal(const struct sockaddr *addr)
{
	struct in6_addr a;
	if (addr->sa_family == AF_INET)
		ipv4_mapped(&a, &((const struct sockaddr_in *)(const void *)addr)->sin_addr);
	else if (addr->sa_family == AF_INET6)
		a = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
	else
		return "not an IP address";
	return refusal(a.s6_addr);
}

bool webhooks_address_blocked(const struct sockaddr *addr)
{
	return webhooks_address_refusal(addr) != NULL;
}

/* Whether the UTF-8 in s holds a C1 control (U+0080-U+009F): curl refuses C0 controls and
 * spaces in a URL, but sends a query's non-ASCII into the request line raw, and U+0085 is a
 * line break to some parsers. 0xc2 is only ever a lead byte. */
static bool has_c1_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return true;
	return false;
}

/* http(s), a host, no credentials in the URL; the host's addresses pass the SSRF guard.
 * A name that does not resolve now is accepted: the guard runs again at every connect. */
static int check_url(const char *url, bool allow_private, struct field_error *err)
{
	if (strlen(url) > URL_MAX)
		return fail(err, "invalid_field", "url", "url must be at most 2048 characters");
	if (has_c1_control(url))
		return fail(err, "invalid_field", "url", "url must not contain control characters");
	/* libcurl reads "http:///x" as the host x, so the URL would not say where alerts go. */
	const char *authority = strstr(url, "://");
	if (!authority || strchr("/?#", authority[3]))
		return fail(err, "invalid_field", "url",
		            "url must be an absolute http or https URL with a host");
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL, *port = NULL;
	int r = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
		r = fail(err, "invalid_field", "url",
		         "url must be an absolute http or https URL with a host");
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		r = fail(err, "invalid_field", "url", "url must use http or https");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port && strcmp(port, "0") == 0) {
		r = fail(err, "invalid_field", "url", "url port must be from 1 to 65535");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
		r = fail(err, "invalid_field", "url", "put credentials in auth, not in the url");
		goto out;
	}
	if (!allow_private) {
		/* curl gives IPv6 hosts in brackets. */
		char bare[256];
		size_t len = strlen(host);
		if (host[0] == '[' && len > 2 && len - 2 < sizeof bare) {
			memcpy(bare, host + 1, len - 2);
			bare[len - 2] = '\0';
		} else {
			snprintf(bare, sizeof bare, "%s", host);
		}
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
		if (getaddrinfo(bare, NULL, &hints, &ai) == 0) {
			for (struct addrinfo *p = ai; p; p = p->ai_next) {
				const char *why = webhooks_address_refusal(p->ai_addr);
				if (why) {
					char message[sizeof err->message];
					snprintf(message, sizeof message,
					         "url points to an address that is not public (%s): set "
					         "webhooks.allow_private_targets to allow it",
					         why);
					r = fail(err, "invalid_field", "url", message);
					break;
				}
			}
			freeaddrinfo(ai);
		}
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

static int check_filter(json_t *filter, struct field_error *err)
{
	if (!json_is_object(filter))
		return fail(err, "invalid_field", "filter", "filter must be an object");
	const char *key;
	json_t *v;
	json_object_foreach (filter, key, v) {
		char field[sizeof err->field];
		snprintf(field, sizeof field, "filter.%s", key);
		if (strcmp(key, "max_score") == 0 || strcmp(key, "min_score") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10)
				return fail(err, "invalid_field", field,
				            "scores in a filter are integers from 0 to 10");
		} else if (strcmp(key, "touchpoints") == 0) {
			if (!json_is_array(v))
				return fail(err, "invalid_field", field,
				            "touchpoints must be an array of touchpoint names");
			if (json_array_size(v) > TOUCHPOINTS_MAX)
				return fail(
				        err, "invalid_field", field,
				        "a filter takes at most " TEXT_OF(TOUCHPOINTS_MAX) " touchpoints");
			if (json_array_size(v) == 0)
				return fail(err, "invalid_field", field,
				            "touchpoints is empty: no answer would ever match (leave it out "
				            "for every touchpoint)");
			size_t i;
			json_t *tp;
			json_array_foreach (v, i, tp) {
				if (!json_is_string(tp) || !valid_token_name(json_string_value(tp)))
					return fail(err, "invalid_field", field,
					            "each touchpoint must match [a-z0-9_.-]{1,64}");
				/* As with events: a name twice is a mistake (and a digest would count
				 * its answers twice). */
				for (size_t j = 0; j < i; j++)
					if (json_equal(json_array_get(v, j), tp))
						return fail(err, "invalid_field", field,
						            "a touchpoint listed twice");
			}
		} else {
			return fail(err, "invalid_field", field,
			            "unknown filter: use max_score, min_score or touchpoints");
		}
	}
	json_t *min = json_object_get(filter, "min_score"), *max = json_object_get(filter, "max_score");
	if (min && max && json_integer_value(min) > json_integer_value(max))
		return fail(err, "invalid_field", "filter.min_score",
		            "min_score is above max_score: no answer would ever match");
	return 0;
}

/* A string member that may be absent or null; ok() says what it may hold, rule says so. ""
 * counts as null: none (a PATCH with "" clears it). */
static int optional_string(json_t *doc, const char *key, bool (*ok)(const char *s), const char *rule,
                           const char **ret, bool *has, struct field_error *err)
{
	json_t *v = json_object_get(doc, key);
	if (!v)
		return 0;
	*has = true;
	if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
		*ret = NULL;
		return 0;
	}
	/* An embedded NUL would hide the rest of the string from ok(). */
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    !ok(json_string_value(v)))
		return fail(err, "invalid_field", key, rule);
	*ret = json_string_value(v);
	return 0;
}

/* Sent as the Authorization header: one header value (optional_string takes "" as none). */
static bool auth_ok(const char *s)
{
	return strlen(s) <= AUTH_MAX && webhook_auth_value_ok(s);
}

/* Shown in answers and in webhook.disabled alerts, which people read (optional_string
 * takes "" as none before it asks). */
static bool description_ok(const char *s)
{
	return valid_name(s, DESCRIPTION_MAX);
}

/* "HH:MM", 00:00 to 23:59. */
static bool clock_time_ok(const char *s)
{
	return strlen(s) == 5 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
	       s[2] == ':' && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]) &&
	       (s[0] - '0') * 10 + (s[1] - '0') < 24 && (s[3] - '0') < 6;
}

/* digest: "hourly", "daily" or null (none); digest_at: "HH:MM" or null (the default). */
static int check_digest(json_t *doc, bool patch, struct webhook_input *in, struct field_error *err)
{
	json_t *v = json_object_get(doc, "digest");
	if (v) {
		const char *d = json_string_value(v);
		if (!json_is_null(v) && (!d || (strcmp(d, "hourly") != 0 && strcmp(d, "daily") != 0)))
			return fail(err, "invalid_field", "digest", "digest must be hourly, daily or null");
		in->digest = d;
		in->has_digest = true;
	}
	v = json_object_get(doc, "digest_at");
	if (v) {
		const char *at = json_string_value(v);
		if (!json_is_null(v) && (!at || !clock_time_ok(at)))
			return fail(err, "invalid_field", "digest_at",
			            "digest_at must be a local time HH:MM (00:00 to 23:59), or null");
		if (!patch && !in->digest && at)
			return fail(err, "invalid_field", "digest_at", "digest_at goes with a digest");
		in->digest_at = at;
		in->has_digest_at = true;
	}
	return 0;
}

int webhooks_validate(json_t *doc, bool patch, bool allow_private, struct webhook_input *ret,
                      struct field_error *err)
{
	static const char *const allowed[] = { "url",         "format", "events", "filter",    "auth",
		                               "description", "active", "digest", "digest_at", NULL };
	struct webhook_input in = { .active = -1 };
	if (!json_is_object(doc))
		return fail(err, "invalid_field", "", "the body must be a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach (doc, key, v) {
		bool known = false;
		for (size_t i = 0; allowed[i]; i++)
			known = known || strcmp(key, allowed[i]) == 0;
		if (!known)
			return fail(err, "invalid_field", key, "unknown field");
	}
	if (check_digest(doc, patch, &in, err) < 0)
		return -1;
	v = json_object_get(doc, "url");
	if (!patch && json_is_null(v))
		v = NULL; /* a required field sent as null is missing, as everywhere in the API */
	if (v) {
		if (!json_is_string(v))
			return fail(err, "invalid_field", "url", "url must be a string");
		in.url = json_string_value(v);
		in.has_url = true;
		if (check_url(in.url, allow_private, err) < 0)
			return -1;
	} else if (!patch) {
		return fail(err, "missing_field", "url", "url is required");
	}
	v = json_object_get(doc, "format");
	if (v) {
		enum webhook_format_kind kind;
		if (!json_is_string(v) || webhook_format_parse(json_string_value(v), &kind) < 0)
			return fail(err, "invalid_field", "format", "format must be standard, ntfy or slack");
		in.format = json_string_value(v);
		in.has_format = true;
	}
	v = json_object_get(doc, "events");
	if (v) {
		/* A digest needs no events: [] (as GET shows it) or null say so. Whether a PATCH
		 * leaves the webhook something to get is judged with the stored row. */
		bool none = json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0);
		if (!none && !json_is_array(v))
			return fail(err, "invalid_field", "events", "events must be an array of event types");
		if (none && !patch && !in.digest)
			return fail(err, "invalid_field", "events",
			            "events must be a non-empty array of event types (or ask for a digest)");
		size_t i;
		json_t *e;
		json_array_foreach (v, i, e) {
			uint32_t bit = json_is_string(e) ? webhook_event_bit(json_string_value(e)) : 0;
			if (!bit || (in.events & bit)) {
				char field[32];
				snprintf(field, sizeof field, "events.%zu", i);
				return fail(err, "invalid_field", field,
				            bit ? "event type listed twice" : "unknown event type");
			}
			in.events |= bit;
		}
		in.events_json = json_is_null(v) ? NULL : v;
		in.has_events = true;
	} else if (!patch && !in.digest) {
		return fail(err, "missing_field", "events", "events is required (or a digest)");
	}
	v = json_object_get(doc, "filter");
	if (v && !json_is_null(v)) {
		if (check_filter(v, err) < 0)
			return -1;
		in.filter = v;
	}
	in.has_filter = v != NULL;
	if (optional_string(doc, "auth", auth_ok,
	                    "auth must be one header value of at most 1024 bytes, not blanks alone, without "
	                    "tabs, control characters or line separators",
	                    &in.auth, &in.has_auth, err) < 0 ||
	    optional_string(doc, "description", description_ok,
	                    "description must be a string of at most 200 characters, without control "
	                    "characters",
	                    &in.description, &in.has_description, err) < 0)
		return -1;
	v = json_object_get(doc, "active");
	if (v) {
		if (!json_is_boolean(v))
			return fail(err, "invalid_field", "active", "active must be true or false");
		in.active = json_is_true(v);
	}
	*ret = in;
	return 0;
}
