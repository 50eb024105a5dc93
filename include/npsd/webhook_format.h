#ifndef NPSD_WEBHOOK_FORMAT_H
#define NPSD_WEBHOOK_FORMAT_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What goes over the wire for one delivery attempt, per format (SPEC "Webhooks"):
 * pure functions, no I/O, so tests check them byte for byte.
 */

enum webhook_format_kind { FORMAT_STANDARD, FORMAT_NTFY, FORMAT_SLACK };

/* "standard", "ntfy", "slack" <-> enum; parse returns 0 or -EINVAL. */
int webhook_format_parse(const char *name, enum webhook_format_kind *ret);
/* Whether s can go out as one HTTP header value: printable ASCII and spaces only. */
bool webhook_header_value_ok(const char *s);
/* Whether s can go out as a webhook's Authorization value: printable UTF-8 and spaces (no
 * tab, control, DEL, C1 control, U+2028 or U+2029), not spaces alone. */
bool webhook_auth_value_ok(const char *s);
const char *webhook_format_name(enum webhook_format_kind kind);

/* The event being delivered. payload is the event's "data" object (borrowed). */
struct webhook_event {
	int64_t id;         /* events.id */
	const char *type;   /* "survey.received", ... */
	int64_t created_at; /* unix seconds */
	json_t *data;
};

struct webhook_target {
	enum webhook_format_kind format;
	const char *secret;     /* "whsec_" + base64 of the key bytes */
	const char *auth;       /* Authorization header value for the receiver, or NULL */
	const char *public_url; /* server.public_url without trailing slash, or NULL */
};

#define WEBHOOK_MAX_HEADERS 12

/* A request to send. Every string is malloc'ed and owned by the struct. */
struct webhook_request {
	char *body;
	size_t body_len;
	size_t nheaders;
	char *headers[WEBHOOK_MAX_HEADERS]; /* "Name: value" lines, as libcurl takes them */
};

/*
 * Builds the request for one attempt. message_id is the webhook-id (the same on every
 * retry of one delivery); now is the attempt's unix time (webhook-timestamp).
 * Returns 0, or a negative errno (-EINVAL for a malformed secret or an auth that is not one
 * header value, see webhook_header_value_ok; -ENOMEM).
 */
int webhook_format_build(const struct webhook_target *target, const struct webhook_event *event,
                         const char *message_id, int64_t now, struct webhook_request *ret);
void webhook_request_clear(struct webhook_request *req);

/* Standard Webhooks signature: "v1," + base64(HMAC-SHA256(secret bytes, id.timestamp.body)).
 * Writes a NUL-terminated string into out (at least 64 bytes). */
int webhook_sign(const char *secret, const char *message_id, int64_t timestamp, const char *body,
                 size_t body_len, char *out, size_t out_size);

/* A new secret: "whsec_" + base64 of 32 random bytes, into out (at least 64 bytes). */
int webhook_secret_generate(char *out, size_t out_size);

/* The one-line text a person reads on a phone lock screen, used by ntfy and slack.
 * malloc'ed, caller frees; NULL on out of memory. */
char *webhook_text(const struct webhook_event *event, char **ret_title, const char **ret_priority,
                   const char **ret_tags);

#endif
