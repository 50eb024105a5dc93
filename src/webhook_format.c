/*
 * What goes over the wire for one webhook delivery attempt: SPEC "Webhooks", formats
 * standard (Standard Webhooks, signed), ntfy (a phone push) and slack ({"text": ...}).
 *
 * Everything here is pure (no I/O but getrandom for new secrets, no globals), so tests check
 * requests byte for byte. Event payloads come from our own outbox, but they are read
 * defensively anyway: a field that is missing or of the wrong type is treated as absent,
 * because a delivery worker that crashes on one odd row stops every alert.
 *
 * The human texts (ntfy, slack) carry the customer's first name only, never a phone number
 * or email (those are not in payloads), and are always valid UTF-8 without control
 * characters: ntfy turns a body that is not UTF-8 into an attachment, and a raw CR/LF in a
 * header would let a comment inject headers.
 */
#include "npsd/webhook_format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <nettle/base64.h>
#include <nettle/hmac.h>

#include "npsd/validate.h"

#define SECRET_PREFIX "whsec_"
#define SECRET_PREFIX_LEN (sizeof SECRET_PREFIX - 1)
#define SECRET_NEW_BYTES 32
/* Standard Webhooks: "The secret key SHOULD be between 24 bytes and 64 bytes". */
#define SECRET_MIN_BYTES 24
#define SECRET_MAX_BYTES 64
#define SECRET_MAX_CHARS BASE64_ENCODE_RAW_LENGTH(SECRET_MAX_BYTES)
/* nettle writes up to BASE64_DECODE_LENGTH bytes whatever the padding says. */
#define SECRET_KEY_BUF BASE64_DECODE_LENGTH(SECRET_MAX_CHARS)
/* "v1," + base64 of a SHA-256 digest + NUL. */
#define SIGNATURE_SIZE (3 + BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE) + 1)

/* Lengths a phone lock screen can show: long enough to keep the point, short enough to read
 * at a glance. Characters are code points. */
#define COMMENT_MAX_CHARS 280
#define NOTES_MAX_CHARS 280
#define IMPROVEMENT_MAX_CHARS 140
#define NAME_MAX_CHARS 40
#define WORD_MAX_CHARS 64 /* touchpoint, status, outcome, area, agent */
#define REASON_MAX_CHARS 160
#define TITLE_MAX_BYTES 250
/* ntfy turns a longer message into an attachment. */
#define BODY_MAX_BYTES 4096
/* RFC 2047 words are at most 75 characters: "=?UTF-8?B?" + 60 base64 characters + "?=". */
#define RFC2047_CHUNK_BYTES 45

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 … */
#define MIDDOT "\xc2\xb7"       /* U+00B7 · */
#define DASH "\xe2\x80\x94"     /* U+2014 — */

int webhook_format_parse(const char *name, enum webhook_format_kind *ret)
{
	static const struct {
		const char *name;
		enum webhook_format_kind kind;
	} formats[] = {
		{ "standard", FORMAT_STANDARD },
		{ "ntfy", FORMAT_NTFY },
		{ "slack", FORMAT_SLACK },
	};
	if (!name || !ret)
		return -EINVAL;
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (strcmp(name, formats[i].name) == 0) {
			*ret = formats[i].kind;
			return 0;
		}
	return -EINVAL;
}

const char *webhook_format_name(enum webhook_format_kind kind)
{
	switch (kind) {
	case FORMAT_STANDARD:
		return "standard";
	case FORMAT_NTFY:
		return "ntfy";
	case FORMAT_SLACK:
		return "slack";
	}
	return "unknown";
}

/* --- a growing string; one allocation failure sticks, so callers check once at the end --- */

struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->data, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof small) {
		buf_add(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)n);
	free(big);
}

/* The string (never NULL on success: "" when nothing was added), or NULL after a failure. */
static char *buf_take(struct buf *b)
{
	if (!b->failed && !b->data)
		buf_add(b, "", 0);
	if (b->failed) {
		free(b->data);
		*b = (struct buf){ 0 };
		return NULL;
	}
	char *s = b->data;
	*b = (struct buf){ 0 };
	return s;
}

/* --- UTF-8 --- */

/* What a lock screen shows as a break or nothing at all: C0 and C1 controls, DEL, Unicode
 * spaces and line separators, the zero-width space, and the bidi embeddings, overrides
 * and isolates, with which a name could turn the rest of an alert's line around and make
 * it say something else. They become one plain space. (Not the joiners that emoji and
 * Persian words are made with, nor the marks that set one character's direction.) */
static bool is_blank(uint32_t cp)
{
	return cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200b) ||
	       cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202f) || cp == 0x205f ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x3000 || cp == 0xfeff;
}

/* The largest length <= max that does not split a character of the valid UTF-8 in s. */
static size_t utf8_boundary(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* Cuts the valid UTF-8 in b to at most max bytes, ending in "…" when anything was cut. */
static void buf_cut_bytes(struct buf *b, size_t max)
{
	if (b->failed || b->len <= max)
		return;
	size_t keep = utf8_boundary(b->data, b->len, max - (sizeof ELLIPSIS - 1));
	while (keep > 0 && (b->data[keep - 1] == ' ' || b->data[keep - 1] == '\n'))
		keep--;
	b->len = keep;
	b->data[keep] = '\0';
	buf_puts(b, ELLIPSIS);
}

/* Whether s has anything a person would see: blank or control-only text counts as absent. */
static bool has_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_decode(p + i, n - i, &cp);
		if (len == 0 || !is_blank(cp))
			return true;
		i += len;
	}
	return false;
}

/*
 * Appends untrusted text for a person to read: invalid UTF-8 becomes U+FFFD, every run of
 * blanks and controls one space (so a comment can neither break a line nor inject a header),
 * both ends trimmed, and more than max_chars code points cut to max_chars - 1 and "…".
 */
static void buf_add_clean(struct buf *b, const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	size_t start = b->len, chars = 0;
	bool space = false;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_decode(p + i, n - i, &cp);
		const char *bytes = (const char *)p + i;
		i += len ? len : 1;
		if (len == 0) {
			bytes = "\xef\xbf\xbd"; /* U+FFFD */
			cp = 0xfffd;
			len = 3;
		}
		if (is_blank(cp)) {
			space = chars > 0;
			continue;
		}
		if (space)
			buf_add(b, " ", 1);
		buf_add(b, bytes, len);
		chars += space ? 2 : 1;
		space = false;
		/* Only a little past the limit is ever needed to know a cut is due. */
		if (chars > max_chars)
			break;
	}
	if (b->failed || chars <= max_chars)
		return;
	/* Keep max_chars - 1 code points, then "…" (trailing space dropped first). */
	size_t at = start, kept = 0;
	while (at < b->len && kept + 1 < max_chars) {
		at++;
		while (at < b->len && ((unsigned char)b->data[at] & 0xc0) == 0x80)
			at++;
		kept++;
	}
	while (at > start && b->data[at - 1] == ' ')
		at--;
	b->len = at;
	b->data[at] = '\0';
	buf_puts(b, ELLIPSIS);
}

/* --- reading the payload: anything missing or of the wrong type is absent --- */

static json_t *member_object(json_t *parent, const char *key)
{
	json_t *v = json_object_get(parent, key);
	return json_is_object(v) ? v : NULL;
}

/* A string member with something visible in it, or NULL. */
static const char *member_text(json_t *parent, const char *key)
{
	const char *s = json_string_value(json_object_get(parent, key));
	return s && has_text(s) ? s : NULL;
}

static bool member_int(json_t *parent, const char *key, int64_t *ret)
{
	json_t *v = json_object_get(parent, key);
	if (!json_is_integer(v))
		return false;
	*ret = (int64_t)json_integer_value(v);
	return true;
}

/* An NPS score, 0 to 10, or -1. */
static int member_score(json_t *parent, const char *key)
{
	int64_t v;
	if (!member_int(parent, key, &v) || v < 0 || v > 10)
		return -1;
	return (int)v;
}

/* --- the human text --- */

enum priority { PRIORITY_DEFAULT, PRIORITY_HIGH, PRIORITY_URGENT };

static const char *const priority_names[] = { "default", "high", "urgent" };

/* SPEC: urgent for 0-4, high for 5-6, default else (and without a score). */
static enum priority score_priority(int score)
{
	if (score < 0)
		return PRIORITY_DEFAULT;
	return score <= 4 ? PRIORITY_URGENT : score <= 6 ? PRIORITY_HIGH : PRIORITY_DEFAULT;
}

/* ntfy tag names that render as emoji: the category at a glance. */
static const char *score_tags(int score)
{
	if (score < 0)
		return "speech_balloon";
	return score <= 6 ? "rotating_light" : score <= 8 ? "warning" : "star";
}

struct alert {
	struct buf title;
	struct buf body;
	enum priority priority;
	const char *tags;
};

/* "Jan" for "Jan Jansen": the first word of customer.name only, so a lock screen that
 * strangers may see never shows a full name. Returns whether anything was added. */
static bool add_first_name(struct buf *b, json_t *customer)
{
	const char *name = member_text(customer, "name");
	if (!name)
		return false;
	struct buf all = { 0 };
	buf_add_clean(&all, name, SIZE_MAX);
	if (all.failed || !all.data) {
		b->failed |= all.failed;
		free(all.data);
		return false;
	}
	char *space = strchr(all.data, ' ');
	if (space)
		*space = '\0';
	buf_add_clean(b, all.data, NAME_MAX_CHARS);
	free(all.data);
	return true;
}

/* NPS 3 (detractor) */
static void add_score(struct buf *b, int score)
{
	if (score >= 0)
		buf_printf(b, "NPS %d (%s)", score, survey_category(score));
	else
		buf_puts(b, "NPS answer");
}

/* ` · claim` when the member is there. */
static void add_touchpoint(struct buf *b, const char *touchpoint)
{
	if (!touchpoint)
		return;
	buf_puts(b, " " MIDDOT " ");
	buf_add_clean(b, touchpoint, WORD_MAX_CHARS);
}

/* Jan: "Took three weeks to pay out" -- what the customer said, and who (first name). */
static void add_quote(struct buf *b, json_t *customer, const char *comment)
{
	bool named = add_first_name(b, customer);
	if (comment) {
		buf_puts(b, named ? ": \"" : "\"");
		buf_add_clean(b, comment, COMMENT_MAX_CHARS);
		buf_puts(b, "\"");
	} else {
		buf_puts(b, named ? ", no comment" : "No comment");
	}
}

/* "Callback 17" (or just "Callback" when the id is missing). */
static void add_callback_name(struct buf *b, json_t *callback)
{
	int64_t id;
	if (member_int(callback, "id", &id))
		buf_printf(b, "Callback %" PRId64, id);
	else
		buf_puts(b, "Callback");
}

static void survey_alert(struct alert *a, const char *type, json_t *data)
{
	json_t *survey = member_object(data, "survey");
	json_t *callback = member_object(data, "callback");
	int score = member_score(survey, "score");

	add_score(&a->title, score);
	add_touchpoint(&a->title, member_text(survey, "touchpoint"));
	if (strcmp(type, "survey.updated") == 0)
		buf_puts(&a->title, " " MIDDOT " updated");

	add_quote(&a->body, member_object(data, "customer"), member_text(survey, "comment"));
	if (callback) {
		/* Managers see at once that somebody will call: the loop is closing. */
		const char *status = member_text(callback, "status");
		buf_puts(&a->body, " " DASH " callback ");
		buf_add_clean(&a->body, status ? status : "queued", WORD_MAX_CHARS);
	}
	a->priority = score_priority(score);
	a->tags = score_tags(score);
}

static void callback_created_alert(struct alert *a, json_t *data)
{
	json_t *callback = member_object(data, "callback");
	json_t *survey = member_object(data, "survey");
	int score = member_score(survey, "score");
	int priority = member_score(callback, "priority");
	const char *touchpoint = member_text(callback, "touchpoint");

	add_callback_name(&a->title, callback);
	buf_puts(&a->title, " queued: ");
	add_score(&a->title, score >= 0 ? score : priority);
	add_touchpoint(&a->title, touchpoint ? touchpoint : member_text(survey, "touchpoint"));

	add_quote(&a->body, member_object(data, "customer"), member_text(survey, "comment"));
	/* callback.priority is the score that caused the call; the survey's score stands in. */
	a->priority = score_priority(priority >= 0 ? priority : score);
	a->tags = "telephone_receiver";
}

/* completed, unreachable, sla_breached and any later callback.* event. */
static void callback_alert(struct alert *a, const char *type, json_t *data)
{
	json_t *callback = member_object(data, "callback");
	const char *what = type + strlen("callback.");
	const char *outcome = member_text(callback, "outcome");
	int64_t attempts;

	add_callback_name(&a->title, callback);
	a->tags = "telephone_receiver";
	if (strcmp(what, "completed") == 0) {
		buf_puts(&a->title, " completed");
		if (outcome) {
			buf_puts(&a->title, ": ");
			buf_add_clean(&a->title, outcome, WORD_MAX_CHARS);
		}
		a->tags = "telephone_receiver,white_check_mark";
	} else if (strcmp(what, "unreachable") == 0) {
		buf_puts(&a->title, " unreachable");
		if (member_int(callback, "attempts", &attempts) && attempts > 0)
			buf_printf(&a->title, " after %" PRId64 " attempt%s", attempts,
			           attempts == 1 ? "" : "s");
		a->tags = "telephone_receiver,x";
	} else if (strcmp(what, "sla_breached") == 0) {
		buf_puts(&a->title, " missed its SLA");
		a->tags = "telephone_receiver,alarm_clock";
	} else if (has_text(what)) {
		buf_puts(&a->title, " ");
		buf_add_clean(&a->title, what, WORD_MAX_CHARS);
	}

	/* Who and where: "Jan · claim". */
	size_t line = a->body.len;
	bool named = add_first_name(&a->body, member_object(data, "customer"));
	const char *touchpoint = member_text(callback, "touchpoint");
	if (touchpoint) {
		if (named)
			buf_puts(&a->body, " " MIDDOT " ");
		buf_add_clean(&a->body, touchpoint, WORD_MAX_CHARS);
	}
	if (strcmp(what, "sla_breached") == 0) {
		const char *status = member_text(callback, "status");
		const char *agent = member_text(callback, "claimed_by");
		/* Who holds it is who to ask; else it still waits for anyone. */
		if (agent) {
			buf_puts(&a->body, a->body.len > line ? "\n" : "");
			buf_puts(&a->body, "Claimed by ");
			buf_add_clean(&a->body, agent, WORD_MAX_CHARS);
		} else if (status) {
			buf_puts(&a->body, a->body.len > line ? "\n" : "");
			buf_puts(&a->body, "Status: ");
			buf_add_clean(&a->body, status, WORD_MAX_CHARS);
		}
	} else if (strcmp(what, "unreachable") == 0 && outcome) {
		buf_puts(&a->body, a->body.len > line ? "\n" : "");
		buf_puts(&a->body, "Last outcome: ");
		buf_add_clean(&a->body, outcome, WORD_MAX_CHARS);
	}

	/* What the organisation should change: the point of closing the loop. */
	json_t *improvements = json_object_get(data, "improvements");
	size_t i;
	json_t *item;
	json_array_foreach (improvements, i, item) {
		const char *area = member_text(item, "area");
		const char *text = member_text(item, "text");
		if (!text)
			continue;
		buf_puts(&a->body, a->body.len > line ? "\n" : "");
		if (area) {
			buf_add_clean(&a->body, area, WORD_MAX_CHARS);
			buf_puts(&a->body, ": ");
		}
		buf_add_clean(&a->body, text, IMPROVEMENT_MAX_CHARS);
	}
	const char *notes = member_text(data, "notes");
	if (notes) {
		buf_puts(&a->body, a->body.len > line ? "\n" : "");
		buf_puts(&a->body, "Notes: ");
		buf_add_clean(&a->body, notes, NOTES_MAX_CHARS);
	}
	if (a->body.len == line)
		buf_puts(&a->body, "No details recorded");

	a->priority = score_priority(member_score(callback, "priority"));
}

static void webhook_disabled_alert(struct alert *a, json_t *data)
{
	json_t *webhook = member_object(data, "webhook");
	const char *reason = member_text(webhook, "reason");
	int64_t id;
	bool has_id = member_int(webhook, "id", &id);

	if (has_id)
		buf_printf(&a->title, "Webhook %" PRId64 " disabled", id);
	else
		buf_puts(&a->title, "Webhook disabled");
	if (reason) {
		buf_puts(&a->title, ": ");
		buf_add_clean(&a->title, reason, REASON_MAX_CHARS);
	}
	/* Not the URL: a Slack or ntfy URL is itself the credential to post there. */
	if (has_id)
		buf_printf(&a->body,
		           "Alerts no longer go to webhook %" PRId64 ". A manager can turn it back on "
		           "with PATCH /v1/webhooks/%" PRId64 " {\"active\": true}.",
		           id, id);
	else
		buf_puts(&a->body, "Alerts no longer go to one of the webhooks. A manager can turn it "
		                   "back on with PATCH /v1/webhooks/ID {\"active\": true}.");
	a->tags = "no_entry";
}

/* npsd's own text of several lines (a digest's): each line cleaned as a customer's text is,
 * the line breaks kept; the body's cap cuts what is too long. */
static void add_lines(struct buf *b, const char *text)
{
	char *copy = strdup(text);
	if (!copy) {
		b->failed = true;
		return;
	}
	for (char *line = copy, *end; line; line = end) {
		end = strchr(line, '\n');
		if (end)
			*end++ = '\0';
		buf_add_clean(b, line, BODY_MAX_BYTES);
		if (end)
			buf_puts(b, "\n");
	}
	free(copy);
}

/* webhook.test, loop.*, digest and types added later: a title and, when given, data.message. */
static void plain_alert(struct alert *a, const char *type, json_t *data)
{
	const char *message = member_text(data, "message");
	const char *fallback;
	if (strcmp(type, "webhook.test") == 0) {
		buf_puts(&a->title, "npsd test alert");
		fallback = "This webhook works: npsd can reach it.";
		a->tags = "test_tube";
	} else if (strcmp(type, "loop.silent") == 0) {
		buf_puts(&a->title, "No NPS answers coming in");
		fallback = "No survey answer has arrived for a while: the survey feed may be broken.";
		a->tags = "mute";
	} else if (strcmp(type, "digest") == 0) {
		/* The title names the period, which only the digest knows as newest or older; a
		 * digest written before it had one (still in the outbox after an upgrade) has not. */
		const char *title = member_text(data, "title");
		const char *period = member_text(data, "period");
		if (title && has_text(title))
			buf_add_clean(&a->title, title, REASON_MAX_CHARS);
		else
			buf_puts(&a->title, period && strcmp(period, "hourly") == 0 ? "NPS, the last hour"
			                                                            : "NPS, the last day");
		fallback = "The NPS digest of the last period.";
		a->tags = "bar_chart";
	} else if (strcmp(type, "loop.nps_drop") == 0) {
		buf_puts(&a->title, "NPS dropped");
		add_touchpoint(&a->title, member_text(data, "touchpoint"));
		fallback = "NPS fell well below its previous window.";
		a->tags = "chart_with_downwards_trend";
	} else {
		buf_puts(&a->title, "npsd: ");
		buf_add_clean(&a->title, has_text(type) ? type : "event", WORD_MAX_CHARS);
		fallback = "An npsd event without a text of its own.";
		a->tags = "bell";
	}
	if (message && strcmp(type, "digest") == 0)
		add_lines(&a->body, message);
	else if (message)
		buf_add_clean(&a->body, message, COMMENT_MAX_CHARS);
	else
		buf_puts(&a->body, fallback);
}

char *webhook_text(const struct webhook_event *event, char **ret_title, const char **ret_priority,
                   const char **ret_tags)
{
	const char *type = event && event->type ? event->type : "";
	json_t *data = event ? event->data : NULL;
	struct alert a = { .priority = PRIORITY_DEFAULT, .tags = "bell" };

	if (strcmp(type, "survey.received") == 0 || strcmp(type, "survey.updated") == 0)
		survey_alert(&a, type, data);
	else if (strcmp(type, "callback.created") == 0)
		callback_created_alert(&a, data);
	else if (strncmp(type, "callback.", strlen("callback.")) == 0)
		callback_alert(&a, type, data);
	else if (strcmp(type, "webhook.disabled") == 0)
		webhook_disabled_alert(&a, data);
	else
		plain_alert(&a, type, data);

	buf_cut_bytes(&a.title, TITLE_MAX_BYTES);
	buf_cut_bytes(&a.body, BODY_MAX_BYTES);
	char *title = buf_take(&a.title);
	char *body = buf_take(&a.body);
	if (!title || !body) {
		free(title);
		free(body);
		if (ret_title)
			*ret_title = NULL;
		return NULL;
	}
	if (ret_title)
		*ret_title = title;
	else
		free(title);
	if (ret_priority)
		*ret_priority = priority_names[a.priority];
	if (ret_tags)
		*ret_tags = a.tags;
	return body;
}

/* --- secrets and signatures --- */

static bool is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

/*
 * The key bytes of "whsec_" + standard base64 (with its padding, as we write it). Anything
 * else is -EINVAL: nettle's decoder alone would skip spaces and accept odd forms, and a
 * secret that decodes "somehow" signs with a key the receiver does not have.
 */
static int secret_decode(const char *secret, uint8_t key[static SECRET_KEY_BUF], size_t *ret_len)
{
	if (!secret || strncmp(secret, SECRET_PREFIX, SECRET_PREFIX_LEN) != 0)
		return -EINVAL;
	const char *s = secret + SECRET_PREFIX_LEN;
	size_t n = strlen(s);
	if (n == 0 || n % 4 != 0 || n > SECRET_MAX_CHARS)
		return -EINVAL;
	size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < n - pad; i++)
		if (!is_base64_char(s[i]))
			return -EINVAL;

	struct base64_decode_ctx ctx;
	size_t len = 0;
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &len, key, n, s) || !base64_decode_final(&ctx) ||
	    len < SECRET_MIN_BYTES || len > SECRET_MAX_BYTES) {
		explicit_bzero(key, SECRET_KEY_BUF);
		return -EINVAL;
	}
	*ret_len = len;
	return 0;
}

int webhook_sign(const char *secret, const char *message_id, int64_t timestamp, const char *body,
                 size_t body_len, char *out, size_t out_size)
{
	uint8_t key[SECRET_KEY_BUF];
	size_t key_len;
	if (!message_id || (!body && body_len > 0) || !out)
		return -EINVAL;
	if (out_size < SIGNATURE_SIZE)
		return -ENOSPC;
	int r = secret_decode(secret, key, &key_len);
	if (r < 0)
		return r;

	char ts[24];
	int ts_len = snprintf(ts, sizeof ts, "%" PRId64, timestamp);
	struct hmac_sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	hmac_sha256_set_key(&ctx, key_len, key);
	hmac_sha256_update(&ctx, strlen(message_id), (const uint8_t *)message_id);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	hmac_sha256_update(&ctx, (size_t)ts_len, (const uint8_t *)ts);
	hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
	if (body_len > 0)
		hmac_sha256_update(&ctx, body_len, (const uint8_t *)body);
	hmac_sha256_digest(&ctx, sizeof digest, digest);

	memcpy(out, "v1,", 3);
	base64_encode_raw(out + 3, sizeof digest, digest);
	out[SIGNATURE_SIZE - 1] = '\0';
	/* The key must not linger on the stack of a long-running worker thread. */
	explicit_bzero(key, sizeof key);
	explicit_bzero(&ctx, sizeof ctx);
	return 0;
}

int webhook_secret_generate(char *out, size_t out_size)
{
	uint8_t key[SECRET_NEW_BYTES];
	size_t need = SECRET_PREFIX_LEN + BASE64_ENCODE_RAW_LENGTH(SECRET_NEW_BYTES) + 1;
	if (!out)
		return -EINVAL;
	if (out_size < need)
		return -ENOSPC;
	for (size_t got = 0; got < sizeof key;) {
		ssize_t n = getrandom(key + got, sizeof key - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			explicit_bzero(key, sizeof key);
			return r;
		}
		got += (size_t)n;
	}
	memcpy(out, SECRET_PREFIX, SECRET_PREFIX_LEN);
	base64_encode_raw(out + SECRET_PREFIX_LEN, sizeof key, key);
	out[need - 1] = '\0';
	explicit_bzero(key, sizeof key);
	return 0;
}

/* --- the request --- */

void webhook_request_clear(struct webhook_request *req)
{
	if (!req)
		return;
	free(req->body);
	for (size_t i = 0; i < req->nheaders && i < WEBHOOK_MAX_HEADERS; i++)
		free(req->headers[i]);
	*req = (struct webhook_request){ 0 };
}

/* Whether all of s is well-formed UTF-8 (jansson refuses anything else). */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_decode(p + i, n - i, &cp);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* A header value npsd builds or names (a message id, a title, a link) must not smuggle
 * another header in: a CR or LF would start one, a tab or a C1 control (U+0085 reads as a
 * line break to some parsers) could, and npsd's own values need no byte above 0x7e. */
bool webhook_header_value_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return false;
	return true;
}

/* auth is a person's: SPEC's own example is "Bearer tk_…", and RFC 9110 lets a field value
 * carry bytes above 0x7e (obs-text), which receivers take as opaque. So printable UTF-8 goes
 * out as given; what could end the line or read as a break still does not: C0 and C1
 * controls, DEL, U+2028 and U+2029, and bytes that are not UTF-8. Nor do blanks alone:
 * libcurl reads "Authorization:" with nothing after it as "send no such header", so the
 * webhook would show an auth that never went out. */
bool webhook_auth_value_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	if (s[strspn(s, " ")] == '\0')
		return false;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_decode(p + i, n - i, &cp);
		if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029)
			return false;
		i += len;
	}
	return true;
}

/* The Authorization line, past add_header's ASCII-only rule: its value was checked above. */
static int add_auth_header(struct webhook_request *req, const char *auth)
{
	if (req->nheaders >= WEBHOOK_MAX_HEADERS)
		return -ENOSPC;
	char *line = NULL;
	if (asprintf(&line, "Authorization: %s", auth) < 0)
		return -ENOMEM;
	req->headers[req->nheaders++] = line;
	return 0;
}

__attribute__((format(printf, 2, 3))) static int add_header(struct webhook_request *req, const char *fmt, ...)
{
	if (req->nheaders >= WEBHOOK_MAX_HEADERS)
		return -ENOSPC;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	char *line = malloc((size_t)n + 1);
	if (!line)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(line, (size_t)n + 1, fmt, ap);
	va_end(ap);
	/* The last word on every header, whatever a caller built it from (a title, a link, a
	 * value we were given): a line with a control character or a byte above 0x7e is not
	 * sent, rather than trusting each caller to have cleaned its data. */
	if (!webhook_header_value_ok(line)) {
		free(line);
		return -EINVAL;
	}
	req->headers[req->nheaders++] = line;
	return 0;
}

/* The body as a string the request owns. */
static int set_body(struct webhook_request *req, char *body)
{
	if (!body)
		return -ENOMEM;
	req->body = body;
	req->body_len = strlen(body);
	return 0;
}

static int build_standard(const struct webhook_target *target, const struct webhook_event *event,
                          const char *message_id, int64_t now, struct webhook_request *req)
{
	char stamp[21];
	char sig[SIGNATURE_SIZE];
	uint8_t key[SECRET_KEY_BUF];
	size_t key_len;
	/* Checked before anything is built, so a bad secret reads as -EINVAL, not a later error. */
	int r = secret_decode(target->secret, key, &key_len);
	explicit_bzero(key, sizeof key);
	if (r < 0)
		return r;

	json_t *empty = NULL;
	json_t *data = event->data;
	if (!data)
		data = empty = json_object();
	json_t *envelope = data ? json_pack("{s:s, s:s, s:O}", "type", event->type, "timestamp",
	                                    time_format_rfc3339(event->created_at, stamp), "data", data)
	                        : NULL;
	json_decref(empty);
	if (!envelope)
		return -ENOMEM;
	r = set_body(req, json_dumps(envelope, JSON_COMPACT | JSON_REAL_PRECISION(15)));
	json_decref(envelope);
	if (r < 0)
		return r;

	r = webhook_sign(target->secret, message_id, now, req->body, req->body_len, sig, sizeof sig);
	if (r < 0)
		return r;
	if ((r = add_header(req, "Content-Type: application/json")) < 0 ||
	    (r = add_header(req, "webhook-id: %s", message_id)) < 0 ||
	    (r = add_header(req, "webhook-timestamp: %" PRId64, now)) < 0 ||
	    (r = add_header(req, "webhook-signature: %s", sig)) < 0)
		return r;
	return 0;
}

/*
 * The Title header: as is when it is plain ASCII, else RFC 2047 encoded-words ntfy decodes
 * (Go's mime.WordDecoder), each at most 75 characters and holding whole characters, joined
 * by spaces (ignored between encoded-words). Also encoded when the text itself contains "=?",
 * which ntfy would otherwise try to decode.
 */
static char *header_title(const char *title)
{
	struct buf b = { 0 };
	bool plain = strstr(title, "=?") == NULL;
	for (const unsigned char *p = (const unsigned char *)title; plain && *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			plain = false;
	if (plain) {
		buf_puts(&b, title);
		return buf_take(&b);
	}
	size_t len = strlen(title);
	for (size_t at = 0; at < len;) {
		size_t chunk = utf8_boundary(title + at, len - at, RFC2047_CHUNK_BYTES);
		if (chunk == 0)
			chunk = len - at < RFC2047_CHUNK_BYTES ? len - at : RFC2047_CHUNK_BYTES;
		char word[BASE64_ENCODE_RAW_LENGTH(RFC2047_CHUNK_BYTES) + 1];
		base64_encode_raw(word, chunk, (const uint8_t *)title + at);
		word[BASE64_ENCODE_RAW_LENGTH(chunk)] = '\0';
		buf_puts(&b, at ? " =?UTF-8?B?" : "=?UTF-8?B?");
		buf_puts(&b, word);
		buf_puts(&b, "?=");
		at += chunk;
	}
	return buf_take(&b);
}

/* The console page of the callback this event is about, or no link (-1). */
static int64_t event_callback_id(json_t *data)
{
	int64_t id;
	if (!member_int(member_object(data, "callback"), "id", &id) || id <= 0)
		return -1;
	return id;
}

/* public_url as the link base: printable ASCII without spaces or quotes (it goes into
 * headers and ntfy's action syntax), trailing slashes dropped; 0 means no links. */
static size_t link_base(const char *public_url)
{
	if (!public_url)
		return 0;
	size_t n = strlen(public_url);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)public_url[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'')
			return 0;
	}
	while (n > 0 && public_url[n - 1] == '/')
		n--;
	return n;
}

static int build_ntfy(const struct webhook_target *target, const struct webhook_event *event,
                      struct webhook_request *req)
{
	char *title = NULL;
	const char *priority, *tags;
	int r = set_body(req, webhook_text(event, &title, &priority, &tags));
	if (r < 0)
		return r;
	char *encoded = header_title(title);
	free(title);
	if (!encoded)
		return -ENOMEM;
	r = add_header(req, "Title: %s", encoded);
	free(encoded);
	if (r < 0)
		return r;
	if ((r = add_header(req, "Priority: %s", priority)) < 0 ||
	    (r = add_header(req, "Tags: %s", tags)) < 0 ||
	    (r = add_header(req, "Content-Type: text/plain; charset=utf-8")) < 0)
		return r;

	size_t base = link_base(target->public_url);
	int64_t id = event_callback_id(event->data);
	if (base > 0 && id > 0) {
		/* ntfy's action syntax splits on "," and ";": such a URL goes in quotes. */
		const char *q = strpbrk(target->public_url, ",;") ? "\"" : "";
		if ((r = add_header(req, "Click: %.*s/ui/#/callbacks/%" PRId64, (int)base, target->public_url,
		                    id)) < 0 ||
		    (r = add_header(req, "Actions: view, Open callback, %s%.*s/ui/#/callbacks/%" PRId64 "%s",
		                    q, (int)base, target->public_url, id, q)) < 0)
			return r;
	}
	return 0;
}

/* Slack's mrkdwn treats <...> as links and mentions (<!channel> would page everyone), so
 * &, < and > are escaped as Slack asks; the rest is shown as written. */
static void add_slack_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			buf_puts(b, "&amp;");
		else if (*s == '<')
			buf_puts(b, "&lt;");
		else if (*s == '>')
			buf_puts(b, "&gt;");
		else if (*s == '@')
			/* Mattermost and Rocket.Chat page a whole channel for "@all" or "@channel" in
			 * a webhook's text: a word joiner after the "@" (invisible) keeps a customer's
			 * comment from doing so. Slack needs <!channel>, escaped above. */
			buf_puts(b, "@\xe2\x81\xa0");
		else
			buf_add(b, s, 1);
	}
}

static int build_slack(const struct webhook_event *event, struct webhook_request *req)
{
	char *title = NULL;
	char *body = webhook_text(event, &title, NULL, NULL);
	if (!body)
		return -ENOMEM;
	struct buf text = { 0 };
	buf_puts(&text, "*");
	add_slack_escaped(&text, title);
	buf_puts(&text, "*\n");
	add_slack_escaped(&text, body);
	free(title);
	free(body);
	char *s = buf_take(&text);
	if (!s)
		return -ENOMEM;
	json_t *doc = json_pack("{s:s}", "text", s);
	free(s);
	if (!doc)
		return -ENOMEM;
	int r = set_body(req, json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15)));
	json_decref(doc);
	if (r < 0)
		return r;
	return add_header(req, "Content-Type: application/json");
}

int webhook_format_build(const struct webhook_target *target, const struct webhook_event *event,
                         const char *message_id, int64_t now, struct webhook_request *ret)
{
	if (!ret)
		return -EINVAL;
	*ret = (struct webhook_request){ 0 };
	if (!target || !event || !event->type || !utf8_valid(event->type) || !message_id ||
	    !webhook_header_value_ok(message_id))
		return -EINVAL;
	/* "" is treated as no auth: PATCH may blank it rather than null it. */
	const char *auth = target->auth && target->auth[0] ? target->auth : NULL;
	if (auth && !webhook_auth_value_ok(auth))
		return -EINVAL;

	int r;
	switch (target->format) {
	case FORMAT_STANDARD:
		r = build_standard(target, event, message_id, now, ret);
		break;
	case FORMAT_NTFY:
		r = build_ntfy(target, event, ret);
		break;
	case FORMAT_SLACK:
		r = build_slack(event, ret);
		break;
	default:
		r = -EINVAL;
		break;
	}
	if (r == 0 && auth)
		r = add_auth_header(ret, auth);
	if (r < 0)
		webhook_request_clear(ret);
	return r;
}
