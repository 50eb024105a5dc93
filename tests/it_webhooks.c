/*
 * Webhooks against the real daemon (issue 4, SPEC "Webhooks" and the [webhooks] config), with a
 * real receiver inside the test (libmicrohttpd on 127.0.0.1, an ephemeral port) that records
 * every request and answers from a script (status, delay, Retry-After, Location, body):
 *  - the subscriptions API: create (secret shown once), list, get, patch, delete, validation
 *    400s naming the field, roles;
 *  - standard format: the envelope, webhook-id / webhook-timestamp, and webhook-signature
 *    verified here independently with nettle;
 *  - retries (503 then 200, the same webhook-id), Retry-After capped at twice the step,
 *    redirects not followed, every attempt logged (status, error, first 4 KiB of the answer);
 *  - 410 Gone disables the webhook and tells every other webhook; so does
 *    webhooks.disable_after of nothing but failures (fake clock);
 *  - a receiver that hangs past webhooks.timeout: a timed-out attempt, then a retry;
 *  - filters (max_score, min_score, touchpoints);
 *  - ntfy (plain text, Title, Priority, Tags, Click/Actions with server.public_url, auth as
 *    Authorization) and slack ({"text"}) shapes;
 *  - at least once across kill -9: between commit and send, and in the middle of a send;
 *  - the SSRF guard at create time and at connect time, and the proxy environment ignored;
 *  - through webhooks.proxy, a CONNECT the proxy refuses (even with a 410) is retried;
 *  - the test and retry endpoints.
 */
#include <check.h>
#include <sqlite3.h>
#include <ctype.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "npsd/validate.h"

#include "testutil.h"

#define WAIT_MS 8000   /* how long a delivery gets to arrive */
#define QUIET_MS 700   /* how long we watch for a request that must not come */
#define PHONE "+31612345678"

/* ---------- small helpers ---------- */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool contains_ci(const char *hay, const char *needle)
{
	return hay && strcasestr(hay, needle) != NULL;
}

/* ---------- the receiver ---------- */

#define RX_MAX_REQ 128
#define RX_MAX_HDR 48
#define RX_MAX_SCRIPT 32

struct rx_header {
	char *name, *value;
};

struct rx_req {
	char method[16];
	char path[128];
	struct rx_header h[RX_MAX_HDR];
	size_t nh;
	char *body;
	size_t len;
	double at;      /* monotonic seconds, when the whole request had arrived */
	int status;     /* what it was (or will be) answered */
};

/* One scripted answer for requests to path ("" = any path), count times (-1 = always). */
struct rx_answer {
	char path[128];
	int status;
	int count;
	int delay_ms;
	const char *retry_after;
	const char *location;
	const char *body;   /* NULL = "ok" */
	int drip_ms;        /* > 0: the body is DRIP_BYTES bytes, one every drip_ms */
};

enum { DRIP_BYTES = 100 };

struct rx_upload {
	char *data;
	size_t len;
};

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	struct rx_req req[RX_MAX_REQ];
	size_t n;
	struct rx_answer script[RX_MAX_SCRIPT];
	size_t nscript;
	int drip_ms; /* of the answer being dripped (one at a time) */
};

/* A body sent one byte every drip_ms: a receiver that answers 2xx and then stalls. */
static ssize_t rx_drip(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct receiver *rx = cls;
	(void)pos;
	for (int waited = 0; waited < rx->drip_ms; waited += 10) {
		if (__atomic_load_n(&rx->stopping, __ATOMIC_RELAXED))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		sleep_ms(10);
	}
	if (max < 1)
		return 0;
	buf[0] = 'x';
	return 1;
}

static enum MHD_Result rx_collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct rx_req *r = cls;
	(void)kind;
	if (r->nh < RX_MAX_HDR) {
		r->h[r->nh].name = strdup(key);
		r->h[r->nh].value = strdup(value ? value : "");
		r->nh++;
	}
	return MHD_YES;
}

static const char *rx_header(const struct rx_req *r, const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (strcasecmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

static enum MHD_Result rx_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct receiver *rx = cls;
	struct rx_upload *up = *con_cls;
	(void)version;
	if (!up) {
		up = calloc(1, sizeof *up);
		*con_cls = up;
		return up ? MHD_YES : MHD_NO;
	}
	if (*upload_size) {
		char *grown = realloc(up->data, up->len + *upload_size + 1);
		if (!grown)
			return MHD_NO;
		up->data = grown;
		memcpy(up->data + up->len, upload, *upload_size);
		up->len += *upload_size;
		up->data[up->len] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	/* The whole request is here: record it, pick the answer. */
	struct rx_answer answer = { .status = 200 };
	pthread_mutex_lock(&rx->mu);
	if (rx->n < RX_MAX_REQ) {
		struct rx_req *r = &rx->req[rx->n];
		snprintf(r->method, sizeof r->method, "%s", method);
		snprintf(r->path, sizeof r->path, "%s", url);
		MHD_get_connection_values(conn, MHD_HEADER_KIND, rx_collect_header, r);
		r->body = up->data ? up->data : strdup("");
		r->len = up->len;
		up->data = NULL;
		r->at = mono_s();
		for (size_t i = 0; i < rx->nscript; i++) {
			struct rx_answer *a = &rx->script[i];
			if (a->count == 0 || (a->path[0] && strcmp(a->path, url) != 0))
				continue;
			answer = *a;
			if (a->count > 0)
				a->count--;
			break;
		}
		r->status = answer.status;
		rx->n++;
	}
	pthread_cond_broadcast(&rx->cv);
	/* A receiver that is slow to answer: waits, but gives way when the test stops it. */
	double until = mono_s() + answer.delay_ms / 1000.0;
	while (!rx->stopping && mono_s() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rx->cv, &rx->mu, &ts);
	}
	pthread_mutex_unlock(&rx->mu);

	struct MHD_Response *resp;
	if (answer.drip_ms > 0) {
		rx->drip_ms = answer.drip_ms;
		resp = MHD_create_response_from_callback(DRIP_BYTES, 1, rx_drip, rx, NULL);
	} else {
		char *text = strdup(answer.body ? answer.body : "ok");
		resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	}
	if (answer.retry_after)
		MHD_add_response_header(resp, "Retry-After", answer.retry_after);
	if (answer.location)
		MHD_add_response_header(resp, "Location", answer.location);
	MHD_add_response_header(resp, "Content-Type", "text/plain");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)answer.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void rx_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct rx_upload *up = *con_cls;
	if (up) {
		free(up->data);
		free(up);
		*con_cls = NULL;
	}
}

/* A receiver on an ephemeral port of ipv4 (host order): INADDR_ANY listens as a database
 * or an admin port on the host does, on every address the host has. */
static struct receiver *rx_start_on(uint32_t ipv4)
{
	struct receiver *rx = calloc(1, sizeof *rx);
	ck_assert_ptr_nonnull(rx);
	pthread_mutex_init(&rx->mu, NULL);
	pthread_cond_init(&rx->cv, NULL);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
	addr.sin_addr.s_addr = htonl(ipv4);
	rx->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
	                         rx_handler, rx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	                         MHD_OPTION_NOTIFY_COMPLETED, rx_completed, rx, MHD_OPTION_END);
	ck_assert_msg(rx->d != NULL, "the receiver does not start");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(rx->d, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_msg(info && info->port, "the receiver has no port");
	rx->port = info->port;
	return rx;
}

static struct receiver *rx_start(void)
{
	return rx_start_on(INADDR_LOOPBACK);
}

static void rx_stop(struct receiver *rx)
{
	if (!rx)
		return;
	pthread_mutex_lock(&rx->mu);
	rx->stopping = true;
	pthread_cond_broadcast(&rx->cv);
	pthread_mutex_unlock(&rx->mu);
	MHD_stop_daemon(rx->d);
	for (size_t i = 0; i < rx->n; i++) {
		for (size_t j = 0; j < rx->req[i].nh; j++) {
			free(rx->req[i].h[j].name);
			free(rx->req[i].h[j].value);
		}
		free(rx->req[i].body);
	}
	pthread_mutex_destroy(&rx->mu);
	pthread_cond_destroy(&rx->cv);
	free(rx);
}

/* Adds an answer to the script: answers are taken in the order given, the first that
 * matches the path and is not used up. Without a match the answer is 200 "ok". */
static void rx_push(struct receiver *rx, struct rx_answer a)
{
	pthread_mutex_lock(&rx->mu);
	ck_assert_uint_lt(rx->nscript, RX_MAX_SCRIPT);
	rx->script[rx->nscript++] = a;
	pthread_mutex_unlock(&rx->mu);
}

static void rx_answer(struct receiver *rx, const char *path, int status, int count)
{
	struct rx_answer a = { .status = status, .count = count };
	snprintf(a.path, sizeof a.path, "%s", path ? path : "");
	rx_push(rx, a);
}

/* Forgets the script: from now on every request is answered 200. */
static void rx_clear_script(struct receiver *rx)
{
	pthread_mutex_lock(&rx->mu);
	rx->nscript = 0;
	pthread_mutex_unlock(&rx->mu);
}

static size_t rx_count_locked(struct receiver *rx, const char *path)
{
	size_t n = 0;
	for (size_t i = 0; i < rx->n; i++)
		if (!path || strcmp(rx->req[i].path, path) == 0)
			n++;
	return n;
}

static size_t rx_count(struct receiver *rx, const char *path)
{
	pthread_mutex_lock(&rx->mu);
	size_t n = rx_count_locked(rx, path);
	pthread_mutex_unlock(&rx->mu);
	return n;
}

/* Waits until path (NULL = any) got at least n requests; returns how many it got. */
static size_t rx_wait(struct receiver *rx, const char *path, size_t n, long ms)
{
	double until = mono_s() + ms / 1000.0;
	pthread_mutex_lock(&rx->mu);
	size_t got;
	while ((got = rx_count_locked(rx, path)) < n && mono_s() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rx->cv, &rx->mu, &ts);
	}
	pthread_mutex_unlock(&rx->mu);
	return got;
}

/* The i-th request to path (NULL = any). Recorded requests never change, so the pointer
 * stays good until rx_stop. */
static const struct rx_req *rx_get(struct receiver *rx, const char *path, size_t i)
{
	const struct rx_req *found = NULL;
	pthread_mutex_lock(&rx->mu);
	for (size_t k = 0, seen = 0; k < rx->n; k++) {
		if (path && strcmp(rx->req[k].path, path) != 0)
			continue;
		if (seen++ == i) {
			found = &rx->req[k];
			break;
		}
	}
	pthread_mutex_unlock(&rx->mu);
	return found;
}

/* The first request to path whose body contains text, or NULL. */
static const struct rx_req *rx_find(struct receiver *rx, const char *path, const char *text)
{
	const struct rx_req *found = NULL;
	pthread_mutex_lock(&rx->mu);
	for (size_t k = 0; k < rx->n && !found; k++)
		if ((!path || strcmp(rx->req[k].path, path) == 0) && strstr(rx->req[k].body, text))
			found = &rx->req[k];
	pthread_mutex_unlock(&rx->mu);
	return found;
}

static const struct rx_req *rx_wait_find(struct receiver *rx, const char *path, const char *text, long ms)
{
	double until = mono_s() + ms / 1000.0;
	const struct rx_req *r;
	while (!(r = rx_find(rx, path, text)) && mono_s() < until)
		sleep_ms(20);
	return r;
}

static char *rx_url(const struct receiver *rx, const char *path)
{
	char *url = malloc(256);
	snprintf(url, 256, "http://127.0.0.1:%u%s", rx->port, path);
	return url;
}

/* ---------- the daemon: tokens, webhooks, surveys, deliveries ---------- */

struct env {
	struct npsd_proc p;
	char *mgr, *ingest, *agent, *admin;
};

static void tokens(struct env *e)
{
	e->mgr = npsctl_key(&e->p, "manager", "boss");
	e->ingest = npsctl_key(&e->p, "ingest", "survey-tool");
	e->agent = npsctl_key(&e->p, "agent", "anna");
	e->admin = npsctl_key(&e->p, "admin", "ops");
	ck_assert_msg(e->mgr && e->ingest && e->agent && e->admin, "npsctl key create failed");
}

static void env_start(struct env *e, const char *extra_ini)
{
	memset(e, 0, sizeof *e);
	ck_assert_int_eq(npsd_start(&e->p, extra_ini), 0);
	tokens(e);
}

static void env_start_webhooks(struct env *e, const char *webhooks_ini, const char *extra_ini)
{
	memset(e, 0, sizeof *e);
	ck_assert_int_eq(npsd_start_webhooks(&e->p, webhooks_ini, extra_ini), 0);
	tokens(e);
}

/* Stops the daemon and removes its folder; fails when its log shows a sanitizer report
 * (SANITIZE=1 builds), with the end of that log. */
static void env_end(struct env *e)
{
	char *log = npsd_log(&e->p);
	const char *report = NULL;
	if (log) {
		const char *marks[] = { "AddressSanitizer", "LeakSanitizer", "runtime error:" };
		for (size_t i = 0; i < 3 && !report; i++)
			report = strstr(log, marks[i]);
	}
	char excerpt[3000] = "";
	if (report)
		snprintf(excerpt, sizeof excerpt, "%s", report);
	free(log);
	npsd_cleanup(&e->p);
	free(e->mgr);
	free(e->ingest);
	free(e->agent);
	free(e->admin);
	ck_assert_msg(!excerpt[0], "npsd reported a sanitizer error:\n%s", excerpt);
}

/* Asserts the status, with the body in the message. */
static void expect_status(const struct http_result *r, long want, const char *what)
{
	ck_assert_msg(r->status == want, "%s: status %ld, want %ld; body: %s", what, r->status, want,
	              r->body ? r->body : "(none)");
}

/* Asserts a 400 with error.code and error.field. */
static void expect_field_error(const struct http_result *r, const char *code, const char *field, const char *what)
{
	expect_status(r, 400, what);
	json_t *err = json_object_get(r->json, "error");
	ck_assert_msg(json_is_object(err), "%s: no error object in %s", what, r->body);
	ck_assert_msg(sget(err, "code") && strcmp(sget(err, "code"), code) == 0, "%s: code %s, want %s (%s)", what,
	              sget(err, "code"), code, r->body);
	ck_assert_msg(sget(err, "field") && strcmp(sget(err, "field"), field) == 0, "%s: field %s, want %s (%s)",
	              what, sget(err, "field"), field, r->body);
	ck_assert_msg(sget(err, "message") && *sget(err, "message"), "%s: no message", what);
}

/* Creates a webhook from a JSON text (with "%URL%" replaced by url); returns the 201 body. */
static json_t *create_webhook(struct env *e, const char *url, const char *fields)
{
	char body[2048];
	snprintf(body, sizeof body, "{\"url\":\"%s\",%s}", url, fields);
	struct http_result r;
	http_json(&e->p, "POST", "/v1/webhooks", e->mgr, body, &r);
	expect_status(&r, 201, "create webhook");
	ck_assert_ptr_nonnull(r.json);
	json_t *doc = json_incref(r.json);
	http_result_free(&r);
	return doc;
}

/* The secret of a 201 body, copied (the caller frees). */
static char *hook_secret(json_t *doc)
{
	const char *secret = sget(doc, "secret");
	ck_assert_msg(secret && strncmp(secret, "whsec_", 6) == 0, "no whsec_ secret in the 201 body");
	return strdup(secret);
}

/* The same for a path on the receiver. */
static json_t *create_webhook_to(struct env *e, struct receiver *rx, const char *path, const char *fields)
{
	char *url = rx_url(rx, path);
	json_t *doc = create_webhook(e, url, fields);
	free(url);
	return doc;
}

static json_int_t create_webhook_id(struct env *e, struct receiver *rx, const char *path, const char *fields)
{
	json_t *doc = create_webhook_to(e, rx, path, fields);
	json_int_t id = iget(doc, "id");
	json_decref(doc);
	return id;
}

/* Posts one answer; returns the 201 body. */
static json_t *post_survey(struct env *e, const char *rid, const char *customer, const char *touchpoint,
                           int score, const char *comment)
{
	char body[8192];
	snprintf(body, sizeof body,
	         "{\"response_id\":\"%s\",\"customer\":{\"id\":\"%s\",\"name\":\"Jan Jansen\",\"phone\":\"" PHONE
	         "\",\"email\":\"jan@example.nl\",\"language\":\"nl\"},\"touchpoint\":\"%s\",\"channel\":\"web\","
	         "\"score\":%d%s%s%s}",
	         rid, customer, touchpoint, score, comment ? ",\"comment\":\"" : "", comment ? comment : "",
	         comment ? "\"" : "");
	struct http_result r;
	http_json(&e->p, "POST", "/v1/surveys", e->ingest, body, &r);
	expect_status(&r, 201, "post survey");
	json_t *doc = json_incref(r.json);
	http_result_free(&r);
	return doc;
}

static void post_survey_quiet(struct env *e, const char *rid, const char *customer, const char *touchpoint,
                              int score, const char *comment)
{
	json_decref(post_survey(e, rid, customer, touchpoint, score, comment));
}

/* The webhook's deliveries log (newest first), owned by the caller. */
static json_t *deliveries(struct env *e, json_int_t wid)
{
	char path[96];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", (long long)wid);
	struct http_result r;
	http_json(&e->p, "GET", path, e->mgr, NULL, &r);
	expect_status(&r, 200, "deliveries");
	json_t *list = json_object_get(r.json, "deliveries");
	ck_assert_msg(json_is_array(list), "no deliveries array: %s", r.body);
	json_incref(list);
	http_result_free(&r);
	return list;
}

/* Waits until the webhook's delivery (did, or the newest when 0) has status and at least
 * min_attempts attempts; returns it (owned) or fails with the last seen state. */
static json_t *wait_delivery(struct env *e, json_int_t wid, json_int_t did, const char *status, int min_attempts,
                             long ms)
{
	double until = mono_s() + ms / 1000.0;
	char last[4096] = "(none)";
	for (;;) {
		json_t *list = deliveries(e, wid);
		size_t i;
		json_t *d;
		json_array_foreach(list, i, d) {
			if (did && iget(d, "id") != did)
				continue;
			if (!did && i > 0)
				break;
			char *text = json_dumps(d, JSON_COMPACT);
			snprintf(last, sizeof last, "%s", text ? text : "?");
			free(text);
			if ((!status || (sget(d, "status") && strcmp(sget(d, "status"), status) == 0)) &&
			    iget(d, "attempts") >= min_attempts) {
				json_incref(d);
				json_decref(list);
				return d;
			}
		}
		json_decref(list);
		ck_assert_msg(mono_s() < until, "webhook %lld: no delivery %s with %d attempts in time; last: %s",
		              (long long)wid, status ? status : "", min_attempts, last);
		sleep_ms(50);
	}
}

static json_t *get_webhook(struct env *e, json_int_t id)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)id);
	struct http_result r;
	http_json(&e->p, "GET", path, e->mgr, NULL, &r);
	expect_status(&r, 200, "get webhook");
	json_t *doc = json_incref(r.json);
	http_result_free(&r);
	return doc;
}

/* The HTTP statuses in a delivery's attempt_log, as "503,200" (0 for none). */
static void attempt_statuses(json_t *delivery, char *out, size_t size)
{
	json_t *log = json_object_get(delivery, "attempt_log");
	ck_assert_msg(json_is_array(log), "no attempt_log");
	out[0] = '\0';
	size_t i, len = 0;
	json_t *a;
	json_array_foreach(log, i, a) {
		json_t *s = json_object_get(a, "http_status");
		len += (size_t)snprintf(out + len, size - len, "%s%lld", i ? "," : "",
		                        json_is_integer(s) ? (long long)json_integer_value(s) : 0LL);
		if (len >= size)
			break;
	}
}

/* ---------- Standard Webhooks, checked independently ---------- */

/* Whether sig_header ("v1,BASE64 v1,BASE64 ...") holds the HMAC-SHA256 of id.ts.body keyed
 * with the base64-decoded part of the whsec_ secret. */
static bool signature_ok(const char *secret, const char *id, const char *ts, const char *body, size_t len,
                         const char *sig_header)
{
	if (!secret || strncmp(secret, "whsec_", 6) != 0 || !id || !ts || !sig_header)
		return false;
	const char *b64 = secret + 6;
	size_t b64_len = strlen(b64);
	uint8_t key[BASE64_DECODE_LENGTH(256)];
	if (b64_len > 256)
		return false;
	struct base64_decode_ctx dctx;
	size_t key_len = 0;
	base64_decode_init(&dctx);
	if (!base64_decode_update(&dctx, &key_len, key, b64_len, b64) || !base64_decode_final(&dctx))
		return false;
	struct hmac_sha256_ctx h;
	uint8_t digest[SHA256_DIGEST_SIZE];
	hmac_sha256_set_key(&h, key_len, key);
	hmac_sha256_update(&h, strlen(id), (const uint8_t *)id);
	hmac_sha256_update(&h, 1, (const uint8_t *)".");
	hmac_sha256_update(&h, strlen(ts), (const uint8_t *)ts);
	hmac_sha256_update(&h, 1, (const uint8_t *)".");
	hmac_sha256_update(&h, len, (const uint8_t *)body);
	hmac_sha256_digest(&h, sizeof digest, digest);
	char want[BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE) + 1];
	base64_encode_raw(want, sizeof digest, digest);
	want[sizeof want - 1] = '\0';
	/* Space-separated "version,signature" pairs; any v1 that matches will do. */
	for (const char *s = sig_header; *s;) {
		while (*s == ' ')
			s++;
		const char *end = strchr(s, ' ');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		if (n == 3 + strlen(want) && strncmp(s, "v1,", 3) == 0 && strncmp(s + 3, want, strlen(want)) == 0)
			return true;
		s += n;
	}
	return false;
}

/* Checks a standard-format request: headers, signature, envelope; returns the envelope. */
static json_t *check_standard(const struct rx_req *r, const char *secret, const char *want_type)
{
	ck_assert_str_eq(r->method, "POST");
	const char *ctype = rx_header(r, "Content-Type");
	ck_assert_msg(ctype && strncmp(ctype, "application/json", 16) == 0, "Content-Type %s", ctype);
	const char *id = rx_header(r, "webhook-id");
	const char *ts = rx_header(r, "webhook-timestamp");
	const char *sig = rx_header(r, "webhook-signature");
	ck_assert_msg(id && *id, "no webhook-id");
	ck_assert_msg(ts && *ts, "no webhook-timestamp");
	ck_assert_msg(sig && strncmp(sig, "v1,", 3) == 0, "webhook-signature %s", sig);
	for (const char *c = ts; *c; c++)
		ck_assert_msg(isdigit((unsigned char)*c), "webhook-timestamp is not unix seconds: %s", ts);
	ck_assert_msg(signature_ok(secret, id, ts, r->body, r->len, sig), "signature %s does not verify for id %s ts %s body %s",
	              sig, id, ts, r->body);
	json_error_t jerr;
	json_t *env = json_loadb(r->body, r->len, 0, &jerr);
	ck_assert_msg(json_is_object(env), "body is not a JSON object: %s", r->body);
	ck_assert_msg(json_object_size(env) == 3, "the envelope has other keys than type, timestamp, data: %s", r->body);
	ck_assert_msg(sget(env, "type") && strcmp(sget(env, "type"), want_type) == 0, "type %s, want %s",
	              sget(env, "type"), want_type);
	const char *stamp = sget(env, "timestamp");
	struct tm tm = { 0 };
	const char *end = stamp ? strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	ck_assert_msg(end && (*end == 'Z' || *end == '.'), "timestamp is not RFC 3339 UTC: %s", stamp);
	ck_assert_msg(json_is_object(json_object_get(env, "data")), "no data object: %s", r->body);
	return env;
}

/* ---------- ntfy helpers ---------- */

/* The Title header as text: RFC 2047 "=?UTF-8?B?...?=" words decoded, else as is. */
static char *decode_title(const char *title)
{
	if (!title)
		return NULL;
	if (!strstr(title, "=?"))
		return strdup(title);
	char *out = calloc(1, strlen(title) + 1);
	size_t len = 0;
	for (const char *s = title; (s = strstr(s, "=?UTF-8?B?")) != NULL;) {
		s += strlen("=?UTF-8?B?");
		const char *end = strstr(s, "?=");
		if (!end)
			break;
		struct base64_decode_ctx ctx;
		size_t n = 0;
		uint8_t buf[256];
		base64_decode_init(&ctx);
		if ((size_t)(end - s) < 300 && base64_decode_update(&ctx, &n, buf, (size_t)(end - s), s) &&
		    base64_decode_final(&ctx)) {
			memcpy(out + len, buf, n);
			len += n;
		}
		s = end + 2;
	}
	out[len] = '\0';
	return out;
}

/* ---------- the subscriptions API ---------- */

START_TEST(create_list_get_patch_delete)
{
	struct env e;
	env_start(&e, NULL);

	/* Create: 201 with the stored webhook and its secret, once. */
	json_t *doc = create_webhook(&e, "https://ntfy.example/nps-claims",
	                             "\"format\":\"ntfy\",\"events\":[\"callback.created\",\"survey.received\"],"
	                             "\"filter\":{\"max_score\":6,\"touchpoints\":[\"claim\"]},"
	                             "\"auth\":\"Bearer tk_supersecret\",\"description\":\"claims team\"");
	json_int_t id = iget(doc, "id");
	ck_assert_int_gt(id, 0);
	const char *secret = sget(doc, "secret");
	ck_assert_msg(secret && strncmp(secret, "whsec_", 6) == 0, "secret %s", secret);
	{
		struct base64_decode_ctx ctx;
		uint8_t key[256];
		size_t n = 0;
		const char *b64 = secret + 6;
		ck_assert_uint_lt(strlen(b64), 300);
		base64_decode_init(&ctx);
		ck_assert(base64_decode_update(&ctx, &n, key, strlen(b64), b64) && base64_decode_final(&ctx));
		ck_assert_msg(n >= 24, "the secret has %zu random bytes, want 24 or more", n);
	}
	char *secret_copy = strdup(secret);
	ck_assert_str_eq(sget(doc, "url"), "https://ntfy.example/nps-claims");
	ck_assert_str_eq(sget(doc, "format"), "ntfy");
	ck_assert_str_eq(sget(doc, "description"), "claims team");
	ck_assert(json_is_true(json_object_get(doc, "active")));
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "events")), 2);
	ck_assert_int_eq(iget(json_object_get(doc, "filter"), "max_score"), 6);
	ck_assert_msg(!json_object_get(doc, "auth"), "the auth value is shown back");
	{
		char *text = json_dumps(doc, JSON_COMPACT);
		ck_assert_msg(text && !strstr(text, "tk_supersecret"), "the auth value is shown back: %s", text);
		free(text);
	}
	json_decref(doc);

	/* The default format is standard. */
	doc = create_webhook(&e, "http://hooks.example/std", "\"events\":[\"survey.received\"]");
	json_int_t id2 = iget(doc, "id");
	ck_assert_str_eq(sget(doc, "format"), "standard");
	json_decref(doc);

	/* GET and the list never show the secret or the auth value. */
	struct http_result r;
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)id);
	http_json(&e.p, "GET", path, e.mgr, NULL, &r);
	expect_status(&r, 200, "get");
	ck_assert_int_eq(iget(r.json, "id"), id);
	ck_assert_msg(!json_object_get(r.json, "secret"), "GET shows the secret: %s", r.body);
	ck_assert_msg(!strstr(r.body, secret_copy), "GET shows the secret: %s", r.body);
	ck_assert_msg(!strstr(r.body, "tk_supersecret"), "GET shows the auth header: %s", r.body);
	ck_assert_str_eq(sget(r.json, "description"), "claims team");
	http_result_free(&r);

	http_json(&e.p, "GET", "/v1/webhooks", e.mgr, NULL, &r);
	expect_status(&r, 200, "list");
	json_t *list = json_object_get(r.json, "webhooks");
	ck_assert_msg(json_is_array(list) && json_array_size(list) == 2, "list: %s", r.body);
	size_t i;
	json_t *w;
	json_array_foreach(list, i, w)
		ck_assert_msg(!json_object_get(w, "secret"), "the list shows a secret: %s", r.body);
	ck_assert_msg(!strstr(r.body, secret_copy), "the list shows the secret: %s", r.body);
	ck_assert_msg(!strstr(r.body, "tk_supersecret"), "the list shows the auth header: %s", r.body);
	http_result_free(&r);

	/* PATCH changes what it names and nothing else. */
	http_json(&e.p, "PATCH", path, e.mgr,
	          "{\"description\":\"claims, nights\",\"filter\":{\"min_score\":0,\"max_score\":4},"
	          "\"events\":[\"survey.received\"]}",
	          &r);
	expect_status(&r, 200, "patch");
	ck_assert_str_eq(sget(r.json, "description"), "claims, nights");
	ck_assert_str_eq(sget(r.json, "url"), "https://ntfy.example/nps-claims");
	ck_assert_str_eq(sget(r.json, "format"), "ntfy");
	ck_assert_int_eq(iget(json_object_get(r.json, "filter"), "max_score"), 4);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "events")), 1);
	ck_assert_msg(!json_object_get(r.json, "secret"), "PATCH shows the secret");
	http_result_free(&r);

	http_json(&e.p, "PATCH", path, e.mgr, "{\"url\":\"https://ntfy.example/other\",\"active\":false}", &r);
	expect_status(&r, 200, "patch url and active");
	ck_assert_str_eq(sget(r.json, "url"), "https://ntfy.example/other");
	ck_assert(json_is_false(json_object_get(r.json, "active")));
	http_result_free(&r);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":true}", &r);
	expect_status(&r, 200, "patch active");
	ck_assert(json_is_true(json_object_get(r.json, "active")));
	ck_assert(json_is_true(json_object_get(r.json, "auth_set")));
	http_result_free(&r);
	/* An empty auth is none: "" clears it, as null does. */
	http_json(&e.p, "PATCH", path, e.mgr, "{\"auth\":\"\"}", &r);
	expect_status(&r, 200, "patch auth \"\"");
	ck_assert_msg(json_is_false(json_object_get(r.json, "auth_set")), "auth \"\" left auth set: %s", r.body);
	http_result_free(&r);

	/* PATCH validates like create. */
	http_json(&e.p, "PATCH", path, e.mgr, "{\"url\":\"gopher://x.example/\"}", &r);
	expect_field_error(&r, "invalid_field", "url", "patch bad url");
	http_result_free(&r);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"events\":[\"survey.received\",\"survey.deleted\"]}", &r);
	expect_field_error(&r, "invalid_field", "events.1", "patch unknown event");
	http_result_free(&r);
	http_json(&e.p, "PATCH", "/v1/webhooks/999999", e.mgr, "{\"active\":false}", &r);
	expect_status(&r, 404, "patch unknown");
	http_result_free(&r);

	/* DELETE: 204, then it is gone. */
	http_json(&e.p, "DELETE", path, e.mgr, NULL, &r);
	expect_status(&r, 204, "delete");
	http_result_free(&r);
	http_json(&e.p, "GET", path, e.mgr, NULL, &r);
	expect_status(&r, 404, "get deleted");
	ck_assert_str_eq(sget(json_object_get(r.json, "error"), "code"), "not_found");
	http_result_free(&r);
	http_json(&e.p, "DELETE", path, e.mgr, NULL, &r);
	expect_status(&r, 404, "delete twice");
	http_result_free(&r);
	http_json(&e.p, "GET", "/v1/webhooks", e.mgr, NULL, &r);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "webhooks")), 1);
	ck_assert_int_eq(iget(json_array_get(json_object_get(r.json, "webhooks"), 0), "id"), id2);
	http_result_free(&r);
	snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", (long long)id);
	http_json(&e.p, "GET", path, e.mgr, NULL, &r);
	expect_status(&r, 404, "deliveries of a deleted webhook");
	http_result_free(&r);

	free(secret_copy);
	env_end(&e);
}
END_TEST

/* A url sent as null is missing, as a required field's null is everywhere else in the API
 * (a survey's response_id, a callback's outcome), not a value of the wrong type. (events
 * differ: their null is "none", as [] is, which only a digest webhook may have.) */
START_TEST(a_url_sent_as_null_is_missing)
{
	struct env e;
	env_start(&e, NULL);
	static const struct {
		const char *body, *field;
	} cases[] = {
		{ "{\"url\":null,\"events\":[\"survey.received\"]}", "url" },
		{ "{\"url\":null,\"events\":[\"survey.received\"],\"format\":\"ntfy\"}", "url" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, cases[i].body, &r);
		expect_field_error(&r, "missing_field", cases[i].field, cases[i].body);
		http_result_free(&r);
	}
	/* A PATCH that would remove the url is a wrong value: a webhook keeps one. */
	json_int_t id = 0;
	{
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr,
		          "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"]}", &r);
		expect_status(&r, 201, "create");
		id = iget(r.json, "id");
		http_result_free(&r);
	}
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)id);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"url\":null}", &r);
	expect_field_error(&r, "invalid_field", "url", "PATCH url null");
	http_result_free(&r);
	env_end(&e);
}
END_TEST

START_TEST(validation_names_the_field)
{
	struct env e;
	env_start(&e, NULL);
	static const struct {
		const char *body, *code, *field;
	} cases[] = {
		{ "{\"url\":\"ftp://files.example/hook\",\"events\":[\"survey.received\"]}", "invalid_field", "url" },
		{ "{\"url\":\"not a url\",\"events\":[\"survey.received\"]}", "invalid_field", "url" },
		{ "{\"url\":\"http://\",\"events\":[\"survey.received\"]}", "invalid_field", "url" },
		{ "{\"url\":42,\"events\":[\"survey.received\"]}", "invalid_field", "url" },
		{ "{\"events\":[\"survey.received\"]}", "missing_field", "url" },
		{ "{\"url\":\"https://hooks.example/a\"}", "missing_field", "events" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[]}", "invalid_field", "events" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":\"survey.received\"}", "invalid_field", "events" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.exploded\"]}", "invalid_field", "events.0" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\",7]}", "invalid_field", "events.1" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\",\"survey.received\"]}",
		  "invalid_field", "events.1" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"filter\":{\"touchpoints\":[]}}",
		  "invalid_field", "filter.touchpoints" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"format\":\"xml\"}",
		  "invalid_field", "format" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"filter\":{\"max_score\":11}}",
		  "invalid_field", "filter.max_score" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"filter\":{\"min_score\":\"3\"}}",
		  "invalid_field", "filter.min_score" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"filter\":{\"colour\":\"red\"}}",
		  "invalid_field", "filter.colour" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],"
		  "\"filter\":{\"touchpoints\":\"claim\"}}",
		  "invalid_field", "filter.touchpoints" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],"
		  "\"filter\":{\"touchpoints\":[\"Claim Desk\"]}}",
		  "invalid_field", "filter.touchpoints" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"filter\":[6]}", "invalid_field",
		  "filter" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"active\":\"yes\"}",
		  "invalid_field", "active" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"colour\":\"red\"}",
		  "invalid_field", "colour" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"auth\":\"Bearer a\\r\\nX-Evil: 1\"}",
		  "invalid_field", "auth" },
		/* Any control character: it could not go out as a header, and every delivery failed. */
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"auth\":\"Bearer a\\u0001b\"}",
		  "invalid_field", "auth" },
		{ "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],"
		  "\"description\":\"claims\\u001b[31m team\"}",
		  "invalid_field", "description" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, cases[i].body, &r);
		expect_field_error(&r, cases[i].code, cases[i].field, cases[i].body);
		http_result_free(&r);
	}
	struct http_result r;
	http_json(&e.p, "POST", "/v1/webhooks", e.mgr, "{\"url\":", &r);
	expect_status(&r, 400, "broken JSON");
	ck_assert_str_eq(sget(json_object_get(r.json, "error"), "code"), "invalid_json");
	http_result_free(&r);
	/* Nothing was stored by any of them. */
	http_json(&e.p, "GET", "/v1/webhooks", e.mgr, NULL, &r);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "webhooks")), 0);
	http_result_free(&r);
	/* The description's limit counts characters, as its message says, not bytes. */
	char body[1024];
	int n = snprintf(body, sizeof body,
	                 "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"description\":\"");
	for (int i = 0; i < 200; i++)
		n += snprintf(body + n, sizeof body - (size_t)n, "\xc3\xa9");
	snprintf(body + n, sizeof body - (size_t)n, "\"}");
	http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
	expect_status(&r, 201, "a description of 200 characters, 400 bytes");
	http_result_free(&r);
	env_end(&e);
}
END_TEST

START_TEST(roles)
{
	struct env e;
	env_start(&e, NULL);
	json_t *doc = create_webhook(&e, "https://hooks.example/a", "\"events\":[\"survey.received\"]");
	json_int_t id = iget(doc, "id");
	json_decref(doc);
	char one[64], test[80], dels[80];
	snprintf(one, sizeof one, "/v1/webhooks/%lld", (long long)id);
	snprintf(test, sizeof test, "/v1/webhooks/%lld/test", (long long)id);
	snprintf(dels, sizeof dels, "/v1/webhooks/%lld/deliveries", (long long)id);
	static const char body[] = "{\"url\":\"https://hooks.example/b\",\"events\":[\"survey.received\"]}";
	const struct {
		const char *method, *path, *body;
	} calls[] = {
		{ "POST", "/v1/webhooks", body }, { "GET", "/v1/webhooks", NULL },   { "GET", one, NULL },
		{ "PATCH", one, "{\"active\":false}" }, { "DELETE", one, NULL },      { "POST", test, NULL },
		{ "GET", dels, NULL },                  { "POST", "/v1/deliveries/1/retry", NULL },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		const char *who[] = { e.agent, e.ingest };
		for (size_t k = 0; k < 2; k++) {
			struct http_result r;
			http_json(&e.p, calls[i].method, calls[i].path, who[k], calls[i].body, &r);
			char what[160];
			snprintf(what, sizeof what, "%s %s as %s", calls[i].method, calls[i].path, k ? "ingest" : "agent");
			expect_status(&r, 403, what);
			ck_assert_str_eq(sget(json_object_get(r.json, "error"), "code"), "forbidden");
			http_result_free(&r);
		}
		struct http_result r;
		http_json(&e.p, calls[i].method, calls[i].path, NULL, calls[i].body, &r);
		expect_status(&r, 401, "no token");
		http_result_free(&r);
	}
	/* An admin may do everything. */
	struct http_result r;
	http_json(&e.p, "POST", "/v1/webhooks", e.admin, body, &r);
	expect_status(&r, 201, "admin creates");
	http_result_free(&r);
	http_json(&e.p, "GET", one, e.admin, NULL, &r);
	expect_status(&r, 200, "admin reads");
	http_result_free(&r);
	env_end(&e);
}
END_TEST

/* ---------- delivery ---------- */

START_TEST(standard_format_is_signed_and_enveloped)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	char *url = rx_url(rx, "/hooks/std");
	json_t *hook = create_webhook(&e, url, "\"events\":[\"survey.received\"]");
	json_int_t wid = iget(hook, "id");
	char *secret = hook_secret(hook);
	json_decref(hook);

	time_t before = time(NULL);
	double posted = mono_s();
	json_t *survey = post_survey(&e, "std-1", "C-1", "claim", 3, "Took three weeks to pay out");
	ck_assert_uint_eq(rx_wait(rx, "/hooks/std", 1, WAIT_MS), 1);
	const struct rx_req *r = rx_get(rx, "/hooks/std", 0);
	/* The commit wakes the delivery thread: the push is there at once, not at its next poll. */
	ck_assert_msg(r->at - posted < 2.0, "the push came %.2fs after the answer was posted", r->at - posted);
	json_t *env = check_standard(r, secret, "survey.received");

	/* webhook-timestamp is now, in unix seconds. */
	long long ts = strtoll(rx_header(r, "webhook-timestamp"), NULL, 10);
	ck_assert_msg(ts >= (long long)before - 5 && ts <= (long long)time(NULL) + 5, "webhook-timestamp %lld", ts);
	/* data carries the answer. */
	json_t *data = json_object_get(env, "data");
	json_t *s = json_object_get(data, "survey");
	ck_assert_msg(json_is_object(s), "no data.survey: %s", r->body);
	ck_assert_int_eq(iget(s, "score"), 3);
	ck_assert_str_eq(sget(s, "response_id"), "std-1");
	ck_assert_str_eq(sget(s, "touchpoint"), "claim");
	ck_assert_int_eq(iget(s, "id"), iget(survey, "id"));
	ck_assert_str_eq(sget(json_object_get(data, "customer"), "id"), "C-1");

	/* The signature check is real: a changed body or another secret fails it. */
	char *tampered = strdup(r->body);
	char *digit = strstr(tampered, "\"score\":3");
	ck_assert_ptr_nonnull(digit);
	digit[8] = '4';
	ck_assert(!signature_ok(secret, rx_header(r, "webhook-id"), rx_header(r, "webhook-timestamp"), tampered, r->len,
	                        rx_header(r, "webhook-signature")));
	ck_assert(!signature_ok("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", rx_header(r, "webhook-id"),
	                        rx_header(r, "webhook-timestamp"), r->body, r->len, rx_header(r, "webhook-signature")));
	free(tampered);

	/* webhook-id is msg_<delivery id>, and the delivery is logged as delivered. */
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 1, WAIT_MS);
	char want_id[40];
	snprintf(want_id, sizeof want_id, "msg_%lld", (long long)iget(d, "id"));
	ck_assert_str_eq(rx_header(r, "webhook-id"), want_id);
	ck_assert_str_eq(sget(d, "event_type"), "survey.received");
	ck_assert_int_eq(iget(d, "attempts"), 1);
	ck_assert_int_eq(iget(d, "last_http_status"), 200);
	ck_assert_int_eq(iget(d, "webhook_id"), wid);
	json_t *log = json_object_get(d, "attempt_log");
	ck_assert_uint_eq(json_array_size(log), 1);
	ck_assert_int_eq(iget(json_array_get(log, 0), "http_status"), 200);
	ck_assert_str_eq(sget(json_array_get(log, 0), "response_head"), "ok");
	ck_assert(json_is_integer(json_object_get(json_array_get(log, 0), "duration_ms")));

	/* One answer, one push: nothing more arrives. */
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, NULL), 1);

	json_decref(d);
	json_decref(env);
	json_decref(survey);
	free(secret);
	free(url);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(retries_503_then_200_with_the_same_id)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	/* Three answers of 503 with a body longer than 4 KiB: only the first 4 KiB is kept. */
	char *big = malloc(6001);
	memset(big, 'x', 6000);
	big[6000] = '\0';
	struct rx_answer busy = { .path = "/hooks/flaky", .status = 503, .count = 3, .body = big };
	rx_push(rx, busy);
	char *url = rx_url(rx, "/hooks/flaky");
	json_t *hook = create_webhook(&e, url, "\"events\":[\"survey.received\"]");
	json_int_t wid = iget(hook, "id");
	char *secret = hook_secret(hook);
	json_decref(hook);

	post_survey_quiet(&e, "retry-1", "C-1", "claim", 5, "meh");
	/* Three waits of 0.8 to 1.2 s, each up to a second more for its whole second. */
	ck_assert_uint_eq(rx_wait(rx, "/hooks/flaky", 4, 2 * WAIT_MS), 4);
	const struct rx_req *first = rx_get(rx, "/hooks/flaky", 0), *second = rx_get(rx, "/hooks/flaky", 3);
	/* Each retry waited its 1 s step, less 20% at most (deliver_retry_at rounds the whole
	 * second a retry is kept in up: truncated, one came 0.01 s after a failure). */
	for (size_t i = 1; i < 4; i++) {
		double gap = rx_get(rx, "/hooks/flaky", i)->at - rx_get(rx, "/hooks/flaky", i - 1)->at;
		ck_assert_msg(gap >= 0.8, "retry %zu came %.3f s after the attempt before it", i, gap);
	}
	ck_assert_int_eq(first->status, 503);
	ck_assert_int_eq(second->status, 200);
	json_decref(check_standard(first, secret, "survey.received"));
	json_decref(check_standard(second, secret, "survey.received"));
	ck_assert_str_eq(rx_header(first, "webhook-id"), rx_header(second, "webhook-id"));
	ck_assert_msg(strcmp(first->body, second->body) == 0, "the retry sent another body:\n%s\n%s", first->body,
	              second->body);

	json_t *d = wait_delivery(&e, wid, 0, "delivered", 4, WAIT_MS);
	char statuses[64];
	attempt_statuses(d, statuses, sizeof statuses);
	ck_assert_str_eq(statuses, "503,503,503,200");
	ck_assert_int_eq(iget(d, "attempts"), 4);
	ck_assert_int_eq(iget(d, "last_http_status"), 200);
	json_t *a0 = json_array_get(json_object_get(d, "attempt_log"), 0);
	const char *head = sget(a0, "response_head");
	ck_assert_msg(head && strlen(head) == 4096 && head[0] == 'x', "response_head of %zu bytes, want 4096",
	              head ? strlen(head) : 0);
	ck_assert_msg(sget(a0, "at") != NULL, "an attempt without its time");
	char want_id[40];
	snprintf(want_id, sizeof want_id, "msg_%lld", (long long)iget(d, "id"));
	ck_assert_str_eq(rx_header(first, "webhook-id"), want_id);

	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/flaky"), 4);
	json_decref(d);
	free(secret);
	free(url);
	env_end(&e);
	rx_stop(rx);
	free(big);
}
END_TEST

/* What a receiver answers is not ours: bytes that are not UTF-8, or a 4 KiB cut through a
 * character, must not break the deliveries log. */
START_TEST(odd_answers_do_not_break_the_log)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	char *cut = malloc(4100);
	memset(cut, 'a', 4095);
	memcpy(cut + 4095, "\xc3\xa9", 3); /* "é" across the 4096th byte */
	struct rx_answer binary = { .path = "/hooks/odd", .status = 503, .count = 1, .body = "\xff\xfe\x01 not text" };
	struct rx_answer split = { .path = "/hooks/odd", .status = 500, .count = 1, .body = cut };
	rx_push(rx, binary);
	rx_push(rx, split);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/odd", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "odd-1", "C-1", "claim", 9, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/odd", 3, WAIT_MS), 3);
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 3, WAIT_MS);
	char statuses[64];
	attempt_statuses(d, statuses, sizeof statuses);
	char *text = json_dumps(d, JSON_COMPACT);
	ck_assert_msg(strcmp(statuses, "503,500,200") == 0, "attempt_log statuses %s, want 503,500,200: %.600s", statuses,
	              text);
	free(text);
	json_decref(d);
	env_end(&e);
	rx_stop(rx);
	free(cut);
}
END_TEST

START_TEST(retry_after_is_honoured_up_to_twice_the_step)
{
	struct receiver *rx = rx_start();
	struct env e;
	/* Steps of 2s (1.6 to 2.4 with jitter); Retry-After: 100 is capped at 4s, and so is one
	 * beyond 64 bits (in milliseconds it overflowed into a retry at once). */
	env_start(&e, "[webhooks]\nretry = 2s, 2s, 2s\n");
	struct rx_answer later = { .path = "/hooks/later", .status = 503, .count = 1, .retry_after = "100" };
	struct rx_answer much_later = { .path = "/hooks/later", .status = 503, .count = 1,
		                        .retry_after = "99999999999999999999" };
	rx_push(rx, later);
	rx_push(rx, much_later);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/later", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "ra-1", "C-1", "claim", 9, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/later", 3, 16000), 3);
	for (size_t i = 1; i < 3; i++) {
		double gap = rx_get(rx, "/hooks/later", i)->at - rx_get(rx, "/hooks/later", i - 1)->at;
		ck_assert_msg(gap >= 2.9, "retry %zu came %.2fs after a Retry-After: %s (step 2s): want about 4s", i,
		              gap, i == 1 ? later.retry_after : much_later.retry_after);
		ck_assert_msg(gap <= 6.5, "retry %zu came %.2fs after a Retry-After (step 2s): want at most 2x the step",
		              i, gap);
	}
	json_decref(wait_delivery(&e, wid, 0, "delivered", 3, WAIT_MS));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A Retry-After says how long to wait at the least: a shorter one than the step (0, 1 s, a
 * date that has passed) does not hurry the retry. Honoured as "now", a receiver that
 * answers so through an outage (a proxy's 503, a clock behind ours) spent all of a
 * delivery's steps, meant to span a day, in seconds, and the alert was failed for good. */
START_TEST(a_retry_after_shorter_than_the_step_does_not_hurry_the_retry)
{
	struct receiver *rx = rx_start();
	struct env e;
	/* Steps of 3 s: 2.4 to 3.6 s with jitter. */
	env_start(&e, "[webhooks]\nretry = 3s, 3s, 3s\n");
	static const char *const shorter[] = { "0", "1", "Wed, 21 Oct 2015 07:28:00 GMT" };
	for (size_t i = 0; i < 3; i++)
		rx_push(rx, (struct rx_answer){
		                    .path = "/hooks/now", .status = 503, .count = 1, .retry_after = shorter[i] });
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/now", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "ra-now-1", "C-1", "claim", 9, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/now", 4, 20000), 4);
	for (size_t i = 1; i < 4; i++) {
		double gap = rx_get(rx, "/hooks/now", i)->at - rx_get(rx, "/hooks/now", i - 1)->at;
		ck_assert_msg(gap >= 2.3, "retry %zu came %.2f s after a Retry-After: %s (step 3 s): want the step", i,
		              gap, shorter[i - 1]);
	}
	json_decref(wait_delivery(&e, wid, 0, "delivered", 4, WAIT_MS));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(redirects_are_not_followed)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s\n");
	char *moved = rx_url(rx, "/hooks/moved");
	struct rx_answer redirect = { .path = "/hooks/old", .status = 302, .count = 1, .location = moved };
	rx_push(rx, redirect);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/old", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "redir-1", "C-1", "claim", 9, NULL);
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 2, WAIT_MS);
	char statuses[64];
	attempt_statuses(d, statuses, sizeof statuses);
	ck_assert_str_eq(statuses, "302,200");
	ck_assert_uint_eq(rx_count(rx, "/hooks/moved"), 0);
	ck_assert_uint_eq(rx_count(rx, "/hooks/old"), 2);
	json_decref(d);
	free(moved);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(gone_disables_and_tells_the_others)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	rx_answer(rx, "/hooks/gone", 410, -1);
	/* Also subscribed to webhook.disabled: it must not be told of itself (it is off). */
	json_int_t gone = create_webhook_id(&e, rx, "/hooks/gone", "\"events\":[\"survey.received\",\"webhook.disabled\"]");
	json_int_t ops = create_webhook_id(&e, rx, "/hooks/ops", "\"events\":[\"webhook.disabled\"]");
	/* A second subscriber in the slack format: it hears of it too. */
	create_webhook_id(&e, rx, "/hooks/ops-slack", "\"format\":\"slack\",\"events\":[\"webhook.disabled\"]");
	/* One that did not list it hears of it as well. */
	create_webhook_id(&e, rx, "/hooks/team", "\"events\":[\"callback.completed\"]");

	post_survey_quiet(&e, "gone-1", "C-1", "claim", 2, "bad");
	ck_assert_uint_eq(rx_wait(rx, "/hooks/gone", 1, WAIT_MS), 1);
	json_t *d = wait_delivery(&e, gone, 0, "failed", 1, WAIT_MS);
	ck_assert_int_eq(iget(d, "attempts"), 1); /* no retry after a 410 */
	ck_assert_int_eq(iget(d, "last_http_status"), 410);
	json_decref(d);

	json_t *w = get_webhook(&e, gone);
	ck_assert_msg(json_is_false(json_object_get(w, "active")), "a webhook answered 410 is still active");
	ck_assert_msg(sget(w, "disabled_reason") && *sget(w, "disabled_reason"), "no disabled_reason");
	json_decref(w);

	/* The others hear of it. */
	ck_assert_uint_eq(rx_wait(rx, "/hooks/ops", 1, WAIT_MS), 1);
	const struct rx_req *r = rx_get(rx, "/hooks/ops", 0);
	json_t *env = json_loadb(r->body, r->len, 0, NULL);
	ck_assert_msg(env && sget(env, "type") && strcmp(sget(env, "type"), "webhook.disabled") == 0,
	              "the ops webhook got %s", r->body);
	json_t *data = json_object_get(env, "data");
	ck_assert_msg(json_is_integer(json_object_get(json_object_get(data, "webhook"), "id")) &&
	                  json_integer_value(json_object_get(json_object_get(data, "webhook"), "id")) == gone,
	              "webhook.disabled names another webhook: %s", r->body);
	json_decref(env);
	json_t *od = wait_delivery(&e, ops, 0, "delivered", 1, WAIT_MS);
	ck_assert_str_eq(sget(od, "event_type"), "webhook.disabled");
	json_decref(od);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/ops-slack", 1, WAIT_MS), 1);
	json_t *slack = json_loads(rx_get(rx, "/hooks/ops-slack", 0)->body, 0, NULL);
	ck_assert_msg(json_is_string(json_object_get(slack, "text")), "slack webhook.disabled without text");
	json_decref(slack);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/team", 1, WAIT_MS), 1);
	ck_assert_msg(rx_find(rx, "/hooks/team", "webhook.disabled"), "the team webhook got %s",
	              rx_get(rx, "/hooks/team", 0)->body);

	/* Disabled: the next answer is not sent there, and the ops hook got only the one event. */
	post_survey_quiet(&e, "gone-2", "C-2", "claim", 1, "worse");
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/gone"), 1);
	ck_assert_uint_eq(rx_count(rx, "/hooks/ops"), 1);
	ck_assert_ptr_null(rx_find(rx, "/hooks/ops", "survey.received"));
	ck_assert_uint_eq(rx_count(rx, "/hooks/team"), 1);
	json_t *list = deliveries(&e, gone);
	ck_assert_uint_eq(json_array_size(list), 1);
	json_decref(list);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A fake clock that starts at the real time, where the test moves it on. */
static int64_t fake_clock_now(void)
{
	int64_t t0 = (int64_t)time(NULL);
	fake_clock_start(t0);
	return t0;
}

/* A webhook at path on rx, which answers its every attempt 503, for survey.received, and
 * an answer (response_id rid) whose delivery to it has failed once. The webhook's id. */
static json_int_t webhook_failing_once(struct env *e, struct receiver *rx, const char *path, const char *rid)
{
	rx_answer(rx, path, 503, -1);
	json_int_t wid = create_webhook_id(e, rx, path, "\"events\":[\"survey.received\"]");
	post_survey_quiet(e, rid, "C-1", "claim", 9, NULL);
	json_decref(wait_delivery(e, wid, 0, "pending", 1, WAIT_MS));
	return wid;
}

/* How many lines of the daemon's log hold needle. */
static int log_lines_with(struct env *e, const char *needle)
{
	char *log = npsd_log(&e->p);
	int n = 0;
	for (const char *at = log; at && (at = strstr(at, needle)); at += strlen(needle))
		n++;
	free(log);
	return n;
}

static void set_file_limit(pid_t pid, rlim_t bytes)
{
	struct rlimit limit = { .rlim_cur = bytes, .rlim_max = RLIM_INFINITY };
	ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, &limit, NULL), 0);
}

/* A disk that fills up while a delivery is due: the delivery thread cannot write its round,
 * and tries again after a pause (1 s, then 2, 4 …), not in a loop where every try was a
 * failed commit and a log line; with room again the delivery goes on. A file size limit on
 * the running daemon stands in for the full disk (as in it_durability). */
START_TEST(a_full_disk_pauses_deliveries_instead_of_spinning)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 30s, 30s, 30s\n");
	json_int_t wid = webhook_failing_once(&e, rx, "/hooks/full", "full-1");

	char wal[256];
	snprintf(wal, sizeof wal, "%s-wal", e.p.db_path);
	struct stat sb;
	ck_assert_int_eq(stat(wal, &sb), 0);
	set_file_limit(e.p.pid, (rlim_t)sb.st_size + 4096);
	fake_clock_set(t0 + 40); /* the second attempt is due (30 s +-20%): its claim cannot be written */
	double until = mono_s() + WAIT_MS / 1000.0;
	while (log_lines_with(&e, "deliver: cannot write") == 0 && mono_s() < until)
		sleep_ms(50);
	sleep_ms(1500);
	/* One failed round; the next is a second away on npsd's (fake) clock, which stands still. */
	int failed = log_lines_with(&e, "deliver: cannot write");
	ck_assert_msg(failed == 1, "%d failed rounds logged", failed);

	set_file_limit(e.p.pid, RLIM_INFINITY);
	fake_clock_set(t0 + 42);
	json_decref(wait_delivery(&e, wid, 0, "pending", 2, WAIT_MS));
	ck_assert_int_eq(log_lines_with(&e, "deliver: writing again"), 1);
	ck_assert_int_eq(log_lines_with(&e, "deliver: cannot write"), 1);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* The spell of failures that disables a webhook is one without a pause: a delivery that
 * failed for good, days of nothing to send, then one failed attempt is a receiver that
 * failed twice, not for days. That one attempt disabled it (found by review). */
START_TEST(a_failure_after_a_quiet_spell_starts_a_new_spell)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 5s\ndisable_after = 1h\n");
	rx_answer(rx, "/hooks/down", 503, -1);
	json_int_t down = create_webhook_id(&e, rx, "/hooks/down", "\"events\":[\"survey.received\"]");

	post_survey_quiet(&e, "quiet-1", "C-1", "claim", 4, NULL);
	json_decref(wait_delivery(&e, down, 0, "pending", 1, WAIT_MS));
	fake_clock_set(t0 + 10);
	json_decref(wait_delivery(&e, down, 0, "failed", 2, WAIT_MS));
	/* Two hours without anything to send, then one more failure. */
	fake_clock_set(t0 + 2 * 3600);
	post_survey_quiet(&e, "quiet-2", "C-2", "claim", 4, NULL);
	json_decref(wait_delivery(&e, down, 0, "pending", 1, WAIT_MS));
	json_t *w = get_webhook(&e, down);
	ck_assert_msg(json_is_true(json_object_get(w, "active")),
	              "disabled by one failure two hours after the last: %s", sget(w, "disabled_reason"));
	char since[32];
	time_format_rfc3339(t0 + 2 * 3600, since);
	ck_assert_msg(sget(w, "failing_since") && strcmp(sget(w, "failing_since"), since) == 0,
	              "failing_since %s, want %s", sget(w, "failing_since"), since);
	json_decref(w);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(disable_after_only_failures_disables_and_tells)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 30s, 30s, 30s, 30s, 30s\ndisable_after = 1m\n");
	rx_answer(rx, "/hooks/down", 503, -1);
	json_int_t down = create_webhook_id(&e, rx, "/hooks/down", "\"events\":[\"survey.received\"]");
	json_int_t ops = create_webhook_id(&e, rx, "/hooks/ops", "\"events\":[\"webhook.disabled\"]");

	post_survey_quiet(&e, "down-1", "C-1", "claim", 4, NULL);
	json_decref(wait_delivery(&e, down, 0, "pending", 1, WAIT_MS));
	/* Each step is 30s +-20%: 40s later the next attempt is due. 40s of failures: still on. */
	fake_clock_set(t0 + 40);
	json_decref(wait_delivery(&e, down, 0, "pending", 2, WAIT_MS));
	json_t *w = get_webhook(&e, down);
	ck_assert_msg(json_is_true(json_object_get(w, "active")), "disabled after 40s of failures (disable_after 1m)");
	ck_assert_msg(json_is_string(json_object_get(w, "failing_since")) || !json_object_get(w, "failing_since"),
	              "failing_since is not a time");
	json_decref(w);
	/* "active": true to an active webhook (a client sending its whole state) switches
	 * nothing back on: the spell goes on (it was reset, and the webhook never disabled). */
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)down);
	struct http_result pr;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":true}", &pr);
	expect_status(&pr, 200, "patch active");
	ck_assert_msg(sget(pr.json, "failing_since"), "PATCH active:true cleared failing_since");
	http_result_free(&pr);
	ck_assert_uint_eq(rx_count(rx, "/hooks/ops"), 0);
	/* 80s of nothing but failures: disabled, and the ops webhook hears of it. */
	fake_clock_set(t0 + 80);
	json_decref(wait_delivery(&e, down, 0, NULL, 3, WAIT_MS));
	double until = mono_s() + WAIT_MS / 1000.0;
	for (;;) {
		w = get_webhook(&e, down);
		bool off = json_is_false(json_object_get(w, "active"));
		if (off) {
			ck_assert_msg(sget(w, "disabled_reason") && *sget(w, "disabled_reason"), "no disabled_reason");
			json_decref(w);
			break;
		}
		json_decref(w);
		ck_assert_msg(mono_s() < until, "still active after 80s of failures (disable_after 1m)");
		sleep_ms(50);
	}
	ck_assert_uint_eq(rx_wait(rx, "/hooks/ops", 1, WAIT_MS), 1);
	const struct rx_req *r = rx_get(rx, "/hooks/ops", 0);
	json_t *env = json_loadb(r->body, r->len, 0, NULL);
	ck_assert_msg(env && sget(env, "type") && strcmp(sget(env, "type"), "webhook.disabled") == 0, "ops got %s",
	              r->body);
	json_decref(env);
	json_decref(wait_delivery(&e, ops, 0, "delivered", 1, WAIT_MS));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* An answer given at answered_at (unix seconds), with a comment unless it is NULL: for the
 * NPS windows of loop.nps_drop and the periods of digests. */
static void post_commented(struct env *e, const char *rid, const char *touchpoint, int score, const char *comment,
                           int64_t answered_at)
{
	char when[32], body[2048];
	time_format_rfc3339(answered_at, when);
	snprintf(body, sizeof body,
	         "{\"response_id\":\"%s\",\"customer\":{\"id\":\"C-%s\"},\"touchpoint\":\"%s\",\"score\":%d%s%s%s,"
	         "\"answered_at\":\"%s\"}",
	         rid, rid, touchpoint, score, comment ? ",\"comment\":\"" : "", comment ? comment : "",
	         comment ? "\"" : "", when);
	struct http_result r;
	http_json(&e->p, "POST", "/v1/surveys", e->ingest, body, &r);
	expect_status(&r, 201, body);
	http_result_free(&r);
}

static void post_answered(struct env *e, const char *rid, const char *touchpoint, int score, int64_t answered_at)
{
	post_commented(e, rid, touchpoint, score, NULL, answered_at);
}

/* Waits long enough for the alerts thread (it looks every 100 ms on a fake clock) to have
 * sent what it would, and says how many requests path has had. */
static size_t rx_count_after_a_look(struct receiver *rx, const char *path)
{
	sleep_ms(600);
	return rx_count(rx, path);
}

START_TEST(loop_silent_when_answers_stop_coming)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[alerts]\nsilence_after = 1h\n");
	json_t *hook = create_webhook_to(&e, rx, "/hooks/silent", "\"events\":[\"loop.silent\"]");
	char *secret = hook_secret(hook);
	json_decref(hook);
	post_survey_quiet(&e, "silent-1", "C-1", "claim", 9, NULL);
	fake_clock_set(t0 + 3599);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/silent"), 0);
	/* An hour without an answer, the centre open ("always"): the feed may be broken. */
	fake_clock_set(t0 + 3600);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/silent", 1, WAIT_MS), 1);
	json_t *env = check_standard(rx_get(rx, "/hooks/silent", 0), secret, "loop.silent");
	json_t *data = json_object_get(env, "data");
	char want[32];
	time_format_rfc3339(t0, want);
	ck_assert_str_eq(sget(data, "last_answer_at"), want);
	ck_assert_int_eq(iget(data, "silent_minutes"), 60);
	ck_assert_int_eq(iget(data, "silence_after_minutes"), 60);
	ck_assert_int_eq(iget(data, "open_minutes"), 60);
	ck_assert_msg(sget(data, "message") && strstr(sget(data, "message"), "1 h 0 min"), "message: %s",
	              sget(data, "message"));
	json_decref(env);
	/* The same silence is told once, however long it lasts. */
	fake_clock_set(t0 + 3 * 3600);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/silent"), 1);
	/* An answer ends it; the next silence is news again. */
	post_survey_quiet(&e, "silent-2", "C-2", "claim", 9, NULL);
	fake_clock_set(t0 + 4 * 3600);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/silent", 2, WAIT_MS), 2);
	free(secret);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A closed call centre hears of no silence: nobody could act on it. */
START_TEST(loop_silent_waits_for_opening_hours)
{
	/* 2026-11-21T12:00:00Z is a Saturday; the hours below open on weekdays only. */
	fake_clock_start(INT64_C(1795262400));
	struct receiver *rx = rx_start();
	struct env e;
	memset(&e, 0, sizeof e);
	ck_assert_int_eq(npsd_start_callbacks(&e.p, "hours = mon-fri 08:00-20:00\n", "[alerts]\nsilence_after = 1h\n"),
	                 0);
	tokens(&e);
	json_decref(create_webhook_to(&e, rx, "/hooks/silent", "\"events\":[\"loop.silent\"]"));
	fake_clock_set(INT64_C(1795262400) + 6 * 3600);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/silent"), 0);
	/* Monday 08:00 in Amsterdam (07:00Z): open, silent since npsd started, but the weekend
	 * does not count: only opening hours do. */
	fake_clock_set(INT64_C(1795417200));
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/silent"), 0);
	fake_clock_set(INT64_C(1795417200) + 3599);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/silent"), 0);
	/* 09:00: an hour of opening without an answer. */
	fake_clock_set(INT64_C(1795417200) + 3600);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/silent", 1, WAIT_MS), 1);
	const struct rx_req *r = rx_get(rx, "/hooks/silent", 0);
	ck_assert_msg(strstr(r->body, "\"open_minutes\":60") && strstr(r->body, "\"last_answer_at\":null"),
	              "loop.silent: %s", r->body);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(loop_nps_drop_per_touchpoint)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[alerts]\nwindow = 1d\nnps_drop = 15\nmin_responses = 5\n");
	json_t *hook = create_webhook_to(&e, rx, "/hooks/claim",
	                              "\"events\":[\"loop.nps_drop\"],\"filter\":{\"touchpoints\":[\"claim\"]}");
	char *secret = hook_secret(hook);
	json_decref(hook);
	json_decref(create_webhook_to(&e, rx, "/hooks/all", "\"events\":[\"loop.nps_drop\"]"));
	/* The day before: promoters everywhere. The last day: claim's answers turned bad, and a
	 * renewal fell too, but with too few answers to tell. */
	char rid[32];
	for (int i = 0; i < 6; i++) {
		snprintf(rid, sizeof rid, "before-claim-%d", i);
		post_answered(&e, rid, "claim", 10, t0 - 36 * 3600);
		snprintf(rid, sizeof rid, "before-purchase-%d", i);
		post_answered(&e, rid, "purchase", 10, t0 - 36 * 3600);
		snprintf(rid, sizeof rid, "now-claim-%d", i);
		post_answered(&e, rid, "claim", i < 5 ? 2 : 10, t0 - 12 * 3600);
		snprintf(rid, sizeof rid, "now-purchase-%d", i);
		post_answered(&e, rid, "purchase", 9, t0 - 12 * 3600);
		snprintf(rid, sizeof rid, "before-renewal-%d", i);
		post_answered(&e, rid, "renewal", 10, t0 - 36 * 3600);
	}
	for (int i = 0; i < 4; i++) {
		snprintf(rid, sizeof rid, "now-renewal-%d", i);
		post_answered(&e, rid, "renewal", 0, t0 - 12 * 3600);
	}
	/* The NPS is looked at every ten minutes. */
	fake_clock_set(t0 + 600);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/claim", 1, WAIT_MS), 1);
	/* Figures as people read them, also in the JSON: -66.7, not -66.700000000000003. */
	ck_assert_msg(strstr(rx_get(rx, "/hooks/claim", 0)->body, "\"nps\":-66.7,"), "loop.nps_drop: %s",
	              rx_get(rx, "/hooks/claim", 0)->body);
	json_t *env = check_standard(rx_get(rx, "/hooks/claim", 0), secret, "loop.nps_drop");
	json_t *data = json_object_get(env, "data");
	ck_assert_str_eq(sget(data, "touchpoint"), "claim");
	ck_assert_double_eq_tol(json_number_value(json_object_get(data, "nps")), -66.7, 0.051);
	ck_assert_double_eq_tol(json_number_value(json_object_get(data, "previous_nps")), 100.0, 0.051);
	ck_assert_double_eq_tol(json_number_value(json_object_get(data, "drop")), 166.7, 0.051);
	ck_assert_int_eq(iget(data, "responses"), 6);
	ck_assert_int_eq(iget(data, "previous_responses"), 6);
	ck_assert_int_eq(iget(data, "window_hours"), 24);
	json_decref(env);
	/* The unfiltered webhook hears the same one drop: purchase fell by 0, renewal lacks
	 * answers. */
	ck_assert_uint_eq(rx_wait(rx, "/hooks/all", 1, WAIT_MS), 1);
	ck_assert_msg(rx_find(rx, "/hooks/all", "\"touchpoint\":\"claim\"") != NULL, "all got %s",
	              rx_get(rx, "/hooks/all", 0)->body);
	/* Ten minutes on the fall is the same: not told again within the window. */
	fake_clock_set(t0 + 1200);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/all"), 1);
	free(secret);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(digest_fields_are_checked_and_shown)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	char *url = rx_url(rx, "/hooks/digest");
	static const struct {
		const char *fields, *code, *field;
	} bad[] = {
		{ "\"digest\":\"weekly\"", "invalid_field", "digest" },
		{ "\"digest\":7", "invalid_field", "digest" },
		{ "\"digest\":\"daily\",\"digest_at\":\"24:00\"", "invalid_field", "digest_at" },
		{ "\"digest\":\"daily\",\"digest_at\":\"8:00\"", "invalid_field", "digest_at" },
		{ "\"digest\":\"daily\",\"digest_at\":\"08:60\"", "invalid_field", "digest_at" },
		{ "\"events\":[\"survey.received\"],\"digest_at\":\"08:00\"", "invalid_field", "digest_at" },
		{ "\"format\":\"slack\"", "missing_field", "events" },
		{ "\"events\":[]", "invalid_field", "events" },
		{ "\"events\":null", "invalid_field", "events" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[512];
		snprintf(body, sizeof body, "{\"url\":\"%s\",%s}", url, bad[i].fields);
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
		expect_field_error(&r, bad[i].code, bad[i].field, body);
		http_result_free(&r);
	}
	/* A digest needs no events; an hourly one may say at which minute. One without a time
	 * shows the time it goes by (it showed null). */
	json_t *w = create_webhook(&e, url, "\"digest\":\"daily\"");
	ck_assert_str_eq(sget(w, "digest"), "daily");
	ck_assert_str_eq(sget(w, "digest_at"), "08:00");
	ck_assert_uint_eq(json_array_size(json_object_get(w, "events")), 0);
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)iget(w, "id"));
	json_decref(w);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"digest\":\"hourly\",\"digest_at\":\"00:15\"}", &r);
	expect_status(&r, 200, "patch digest");
	ck_assert_str_eq(sget(r.json, "digest"), "hourly");
	ck_assert_str_eq(sget(r.json, "digest_at"), "00:15");
	http_result_free(&r);
	/* A patch is judged by what it leaves: without events, no digest can go. */
	http_json(&e.p, "PATCH", path, e.mgr, "{\"digest\":null}", &r);
	expect_field_error(&r, "invalid_field", "events", "a webhook left with nothing");
	http_result_free(&r);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"digest\":null,\"events\":[\"survey.received\"]}", &r);
	expect_status(&r, 200, "patch the digest away");
	ck_assert(json_is_null(json_object_get(r.json, "digest")));
	ck_assert(json_is_null(json_object_get(r.json, "digest_at"))); /* went with it */
	http_result_free(&r);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"digest_at\":\"09:00\"}", &r);
	expect_field_error(&r, "invalid_field", "digest_at", "digest_at without a digest");
	http_result_free(&r);
	/* Events and a digest both; then the digest alone again: events [] (as GET shows it). */
	http_json(&e.p, "PATCH", path, e.mgr, "{\"digest\":\"daily\"}", &r);
	expect_status(&r, 200, "a digest beside the events");
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "events")), 1);
	http_result_free(&r);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"events\":[]}", &r);
	expect_status(&r, 200, "the digest alone");
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "events")), 0);
	ck_assert_str_eq(sget(r.json, "digest"), "daily");
	http_result_free(&r);
	/* Created so at once, events [] or null. */
	json_decref(create_webhook(&e, url, "\"digest\":\"hourly\",\"events\":[]"));
	json_decref(create_webhook(&e, url, "\"digest\":\"hourly\",\"events\":null"));
	free(url);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A daily digest at 08:00 Amsterdam time: the period's figures against the day before,
 * the lowest scores with comments, the open queue; of the filtered touchpoints only, once. */
/* A digest quotes 160 characters of a comment, cut at a character. A comment whose 160th
 * character ended 2 bytes before the quote's buffer did (158 emoji of 4 bytes, two euro
 * signs of 3) left a broken ellipsis behind: that period's digest was never sent, and the
 * log said "Cannot allocate memory" every ten seconds. */
START_TEST(a_digest_cuts_a_long_comment_at_a_character)
{
	const int64_t t0 = INT64_C(1795413600), hour = 3600; /* 2026-11-23 06:00Z */
	fake_clock_start(t0 + 60);
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_decref(create_webhook_to(&e, rx, "/hooks/phone", "\"format\":\"ntfy\",\"digest\":\"hourly\""));
	char comment[1024], shown[1100];
	size_t n = 0;
	for (int i = 0; i < 158; i++)
		n += (size_t)snprintf(comment + n, sizeof comment - n, "\xF0\x9F\x98\x80"); /* U+1F600 */
	/* Two euro signs: the 160th character ends 2 bytes before the quote's 640 did. */
	snprintf(comment + n, sizeof comment - n, "\xE2\x82\xAC\xE2\x82\xAC");
	snprintf(shown, sizeof shown, "\n2 on claim: \"%s\xE2\x80\xA6\"", comment);
	snprintf(comment + n + 6, sizeof comment - n - 6, "abcdef");
	post_commented(&e, "emoji-1", "claim", 2, comment, t0 + 100);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/phone"), 0);
	fake_clock_set(t0 + hour + 30);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/phone", 1, WAIT_MS), 1);
	const struct rx_req *push = rx_get(rx, "/hooks/phone", 0);
	ck_assert_msg(strstr(push->body, shown), "push body: %s", push->body);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(daily_digest_tells_the_day_once)
{
	/* Monday 2026-11-23 07:00 in Amsterdam (06:00Z). */
	const int64_t t0 = INT64_C(1795413600), hour = 3600;
	fake_clock_start(t0);
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_t *hook = create_webhook_to(&e, rx, "/hooks/digest",
	                              "\"digest\":\"daily\",\"digest_at\":\"08:00\",\"filter\":{\"touchpoints\":[\"claim\"]}");
	char *secret = hook_secret(hook);
	json_decref(hook);
	json_decref(create_webhook_to(&e, rx, "/hooks/phone", "\"format\":\"ntfy\",\"digest\":\"daily\""));
	/* The day before the period (Saturday 08:00 to Sunday 08:00): two promoters on claim. */
	post_commented(&e, "sat-1", "claim", 10, "Fine", t0 - 30 * hour);
	post_commented(&e, "sat-2", "claim", 10, "Fine", t0 - 28 * hour);
	/* The period (Sunday 08:00 to Monday 08:00). */
	post_commented(&e, "sun-1", "claim", 9, "Quick", t0 - 20 * hour);
	post_commented(&e, "sun-2", "claim", 10, "Great", t0 - 10 * hour);
	post_commented(&e, "mon-1", "claim", 3, "Took three weeks", t0 - hour);
	post_commented(&e, "mon-2", "purchase", 0, "Other team", t0 - hour);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/digest"), 0);
	/* 08:00:30: the period is over. */
	fake_clock_set(t0 + hour + 30);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/digest", 1, WAIT_MS), 1);
	ck_assert_msg(strstr(rx_get(rx, "/hooks/digest", 0)->body, "\"nps\":33.3,"), "digest: %s",
	              rx_get(rx, "/hooks/digest", 0)->body);
	json_t *env = check_standard(rx_get(rx, "/hooks/digest", 0), secret, "digest");
	json_t *data = json_object_get(env, "data");
	ck_assert_str_eq(sget(data, "period"), "daily");
	ck_assert_str_eq(sget(data, "from"), "2026-11-22T07:00:00Z");
	ck_assert_str_eq(sget(data, "to"), "2026-11-23T07:00:00Z");
	ck_assert_int_eq(iget(data, "responses"), 3);
	ck_assert_int_eq(iget(data, "promoters"), 2);
	ck_assert_int_eq(iget(data, "detractors"), 1);
	ck_assert_double_eq_tol(json_number_value(json_object_get(data, "nps")), 33.3, 0.051);
	ck_assert_double_eq_tol(json_number_value(json_object_get(json_object_get(data, "previous"), "nps")), 100.0,
	                        0.051);
	ck_assert_double_eq_tol(json_number_value(json_object_get(data, "change")), -66.7, 0.051);
	json_t *lowest = json_object_get(data, "lowest");
	ck_assert_uint_eq(json_array_size(lowest), 3);
	ck_assert_int_eq(iget(json_array_get(lowest, 0), "score"), 3);
	ck_assert_str_eq(sget(json_array_get(lowest, 0), "comment"), "Took three weeks");
	ck_assert_int_eq(iget(json_object_get(data, "queue"), "queued"), 0);
	json_decref(env);
	/* The unfiltered one on a phone: every touchpoint, a few lines a person reads. */
	ck_assert_uint_eq(rx_wait(rx, "/hooks/phone", 1, WAIT_MS), 1);
	const struct rx_req *push = rx_get(rx, "/hooks/phone", 0);
	char *title = decode_title(rx_header(push, "Title"));
	ck_assert_msg(title && strstr(title, "NPS, the last day"), "Title %s", title);
	free(title);
	ck_assert_msg(strstr(push->body, "4 answers") && strstr(push->body, "\n0 on purchase: \"Other team\"") &&
	                      strstr(push->body, "\nOpen queue:"),
	              "push body: %s", push->body);
	/* Later the same day: nothing more. Delivery is at least once: an attempt that timed out
	 * on a loaded machine comes again with the same webhook-id, which is the same digest. */
	fake_clock_set(t0 + 5 * hour);
	size_t requests = rx_count_after_a_look(rx, "/hooks/digest");
	const char *first_id = rx_header(rx_get(rx, "/hooks/digest", 0), "webhook-id");
	ck_assert_ptr_nonnull(first_id);
	for (size_t i = 1; i < requests; i++) {
		const struct rx_req *again = rx_get(rx, "/hooks/digest", i);
		const char *id = rx_header(again, "webhook-id");
		ck_assert_msg(id && strcmp(id, first_id) == 0, "a second digest (%s after %s): %s", id ? id : "no id",
		              first_id, again->body);
	}
	free(secret);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* The distinct digests path got, oldest period first (a delivery sent again on a loaded
 * machine comes with the same webhook-id, and two deliveries may overtake each other): a
 * JSON array of their data, which the caller decrefs. */
static json_t *digests_received(struct receiver *rx, const char *path)
{
	json_t *seen = json_object(), *list = json_array();
	size_t n = rx_count(rx, path);
	for (size_t i = 0; i < n; i++) {
		const struct rx_req *r = rx_get(rx, path, i);
		const char *id = rx_header(r, "webhook-id");
		ck_assert_msg(id != NULL, "a digest without a webhook-id: %s", r->body);
		if (json_object_get(seen, id))
			continue;
		json_object_set_new(seen, id, json_true());
		json_t *env = json_loadb(r->body, r->len, 0, NULL);
		json_t *data = json_object_get(env, "data");
		ck_assert_msg(sget(data, "from") != NULL, "not a digest: %s", r->body);
		size_t at = json_array_size(list);
		while (at > 0 && strcmp(sget(json_array_get(list, at - 1), "from"), sget(data, "from")) > 0)
			at--;
		json_array_insert(list, at, data);
		json_decref(env);
	}
	json_decref(seen);
	return list;
}

/* npsd down from Monday 07:00 to Thursday 09:00 in Amsterdam: on its return each daily
 * period that ended meanwhile is told once, oldest first, each with its own figures; an
 * hourly digest tells only its last seven hours and says how many it left out. Only the
 * last day was told, and the days before were lost. A webhook switched off over the same
 * days is told none of them when it is switched on again: its first digest is the day
 * under way then. */
START_TEST(digests_after_downtime_tell_each_missed_period)
{
	const int64_t t0 = INT64_C(1795413600), hour = 3600; /* Monday 2026-11-23 06:00Z */
	fake_clock_start(t0);
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_decref(create_webhook_to(&e, rx, "/hooks/daily", "\"digest\":\"daily\",\"digest_at\":\"08:00\""));
	json_decref(create_webhook_to(&e, rx, "/hooks/hourly", "\"digest\":\"hourly\""));
	json_int_t off = create_webhook_id(&e, rx, "/hooks/off", "\"digest\":\"daily\"");
	/* Sunday 08:00 to Monday 08:00, the period under way: a promoter and a detractor. */
	post_commented(&e, "sun-1", "claim", 9, "Quick", t0 - 10 * hour);
	post_commented(&e, "mon-1", "claim", 3, "Slow", t0 - hour);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/daily"), 0);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/hourly"), 0);
	char *path = fmt("/v1/webhooks/%lld", (long long)off);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":false}", &r);
	expect_status(&r, 200, "switch off");
	http_result_free(&r);
	ck_assert_int_eq(npsd_stop(&e.p, SIGTERM), 0);

	/* Thursday 2026-11-26 09:00:30 in Amsterdam: four daily periods and 74 hours ended. */
	const int64_t back = t0 + 74 * hour + 30;
	fake_clock_set(back);
	ck_assert_int_eq(npsd_restart(&e.p), 0);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/daily", 4, WAIT_MS), 4);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/hourly", 7, WAIT_MS), 7);
	sleep_ms(QUIET_MS);
	json_t *days = digests_received(rx, "/hooks/daily");
	ck_assert_uint_eq(json_array_size(days), 4);
	const char *days_from[] = { "2026-11-22T07:00:00Z", "2026-11-23T07:00:00Z", "2026-11-24T07:00:00Z",
		                    "2026-11-25T07:00:00Z", "2026-11-26T07:00:00Z" };
	for (size_t i = 0; i < 4; i++) {
		json_t *d = json_array_get(days, i);
		ck_assert_str_eq(sget(d, "from"), days_from[i]);
		ck_assert_str_eq(sget(d, "to"), days_from[i + 1]);
		ck_assert_int_eq(iget(d, "responses"), i == 0 ? 2 : 0);
		ck_assert_int_eq(iget(json_object_get(d, "previous"), "responses"), i == 1 ? 2 : 0);
		ck_assert_int_eq(iget(d, "skipped_periods"), 0);
	}
	ck_assert_double_eq_tol(json_number_value(json_object_get(json_array_get(days, 0), "nps")), 0.0, 0.051);
	json_decref(days);

	json_t *hours = digests_received(rx, "/hooks/hourly");
	ck_assert_uint_eq(json_array_size(hours), 7);
	char want[32];
	for (size_t i = 0; i < 7; i++) {
		json_t *h = json_array_get(hours, i);
		time_format_rfc3339(back - 30 - (int64_t)(7 - i) * hour, want);
		ck_assert_str_eq(sget(h, "from"), want);
		ck_assert_int_eq(iget(h, "skipped_periods"), i == 0 ? 67 : 0);
	}
	const char *first = sget(json_array_get(hours, 0), "message");
	ck_assert_msg(first && strstr(first, "\nNot told: the 67 hours before this one (npsd was down)."),
	              "message: %s", first ? first : "(none)");
	json_decref(hours);
	char *log = npsd_log(&e.p);
	ck_assert_msg(log && strstr(log, "67 periods that ended while npsd was down not told"), "log: %s",
	              log ? log : "(none)");
	free(log);

	/* Switched off, it hears nothing; switched on, nothing of the days it was off: its
	 * first digest is the day under way, at Friday 08:00. */
	ck_assert_uint_eq(rx_count(rx, "/hooks/off"), 0);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":true}", &r);
	expect_status(&r, 200, "switch on");
	http_result_free(&r);
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/off"), 0);
	fake_clock_set(t0 + 97 * hour + 30);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/off", 1, WAIT_MS), 1);
	sleep_ms(QUIET_MS);
	json_t *last = digests_received(rx, "/hooks/off");
	ck_assert_uint_eq(json_array_size(last), 1);
	ck_assert_str_eq(sget(json_array_get(last, 0), "from"), "2026-11-26T07:00:00Z");
	json_decref(last);
	free(path);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* Whether the text (a title or message) of one of want[0..n) is where text begins: the index
 * of the first that is, or -1. */
static int starts_with_one_of(const char *text, const char *const *want, size_t n)
{
	for (size_t i = 0; text && i < n; i++)
		if (strncmp(text, want[i], strlen(want[i])) == 0)
			return (int)i;
	return -1;
}

/* After a time npsd was down, an older period's digest names its period in its title and
 * first line, in callbacks.timezone (Amsterdam): a day by the date its middle falls on, an
 * hour by its start; the newest says "the last day" or "the last hour" as before. Every
 * one of them was "NPS, the last day" and began "The last day, ...": a phone showed four
 * alike, and the standard payload's message said "the last day" of a day three days gone.
 * Standard (data.title and data.message), ntfy (Title and body) and Slack (text) alike. */
START_TEST(older_digests_name_their_period)
{
	const int64_t t0 = INT64_C(1795413600), hour = 3600; /* Monday 2026-11-23 06:00Z */
	fake_clock_start(t0);
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_decref(create_webhook_to(&e, rx, "/hooks/daily", "\"digest\":\"daily\""));
	json_decref(create_webhook_to(&e, rx, "/hooks/hourly", "\"digest\":\"hourly\""));
	json_decref(create_webhook_to(&e, rx, "/hooks/phone", "\"format\":\"ntfy\",\"digest\":\"daily\""));
	json_decref(create_webhook_to(&e, rx, "/hooks/slack", "\"format\":\"slack\",\"digest\":\"daily\""));
	ck_assert_uint_eq(rx_count_after_a_look(rx, "/hooks/daily"), 0);
	ck_assert_int_eq(npsd_stop(&e.p, SIGTERM), 0);
	/* Thursday 2026-11-26 09:00:30 in Amsterdam: four days (from Sunday 08:00) ended. */
	const int64_t back = t0 + 74 * hour + 30;
	fake_clock_set(back);
	ck_assert_int_eq(npsd_restart(&e.p), 0);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/daily", 4, WAIT_MS), 4);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/hourly", 7, WAIT_MS), 7);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/phone", 4, WAIT_MS), 4);
	ck_assert_uint_ge(rx_wait(rx, "/hooks/slack", 4, WAIT_MS), 4);
	sleep_ms(QUIET_MS);

	static const char *const days[] = { "Sunday 22 Nov", "Monday 23 Nov", "Tuesday 24 Nov", "the last day" };
	static const char *const lines[] = { "Sunday 22 Nov, 2026-11-22 08:00 to 2026-11-23 08:00: ",
		                             "Monday 23 Nov, 2026-11-23 08:00 to 2026-11-24 08:00: ",
		                             "Tuesday 24 Nov, 2026-11-24 08:00 to 2026-11-25 08:00: ",
		                             "The last day, 2026-11-25 08:00 to 2026-11-26 08:00: " };
	json_t *daily = digests_received(rx, "/hooks/daily");
	ck_assert_uint_eq(json_array_size(daily), 4);
	for (size_t i = 0; i < 4; i++) {
		json_t *d = json_array_get(daily, i);
		char title[64];
		snprintf(title, sizeof title, "NPS, %s", days[i]);
		ck_assert_str_eq(sget(d, "title"), title);
		const char *message = sget(d, "message");
		ck_assert_msg(message && strncmp(message, lines[i], strlen(lines[i])) == 0,
		              "digest %zu's message: %s", i, message ? message : "(none)");
	}
	json_decref(daily);

	/* The hours 02:00 to 08:00 by their start; 08:00 to 09:00 is the last hour. */
	json_t *hours = digests_received(rx, "/hooks/hourly");
	ck_assert_uint_eq(json_array_size(hours), 7);
	for (size_t i = 0; i < 7; i++) {
		json_t *h = json_array_get(hours, i);
		char title[64], line[80];
		if (i < 6) {
			snprintf(title, sizeof title, "NPS, Thursday 26 Nov %02zu:00", i + 2);
			snprintf(line, sizeof line, "Thursday 26 Nov %02zu:00, 2026-11-26 %02zu:00 to 2026-11-26 %02zu:00: ",
			         i + 2, i + 2, i + 3);
		} else {
			snprintf(title, sizeof title, "NPS, the last hour");
			snprintf(line, sizeof line, "The last hour, 2026-11-26 08:00 to 2026-11-26 09:00: ");
		}
		ck_assert_str_eq(sget(h, "title"), title);
		const char *message = sget(h, "message");
		ck_assert_msg(message && strncmp(message, line, strlen(line)) == 0, "hour %zu's message: %s", i,
		              message ? message : "(none)");
	}
	json_decref(hours);

	/* On a phone and in Slack: each of the four once (a push sent again is the same one). */
	bool seen[2][4] = { { false } };
	for (int k = 0; k < 2; k++) {
		const char *path = k == 0 ? "/hooks/phone" : "/hooks/slack";
		for (size_t i = 0; i < rx_count(rx, path); i++) {
			const struct rx_req *r = rx_get(rx, path, i);
			char *title = NULL, *body = NULL;
			json_t *doc = NULL;
			if (k == 0) {
				title = decode_title(rx_header(r, "Title"));
				body = strndup(r->body, r->len);
			} else {
				/* "*title*\nmessage" */
				doc = json_loadb(r->body, r->len, 0, NULL);
				const char *text = json_string_value(json_object_get(doc, "text"));
				const char *nl = text ? strchr(text, '\n') : NULL;
				ck_assert_msg(nl && text[0] == '*' && nl[-1] == '*', "slack text: %s", r->body);
				title = strndup(text + 1, (size_t)(nl - text - 2));
				body = strdup(nl + 1);
			}
			ck_assert_msg(title && strncmp(title, "NPS, ", 5) == 0, "%s title: %s", path,
			              title ? title : "(none)");
			int which = starts_with_one_of(title + 5, days, 4);
			ck_assert_msg(which >= 0 && strcmp(title + 5, days[which]) == 0, "%s title: %s", path, title);
			ck_assert_msg(starts_with_one_of(body, lines, 4) == which, "%s, %s: %s", path, title, body);
			seen[k][which] = true;
			free(title);
			free(body);
			json_decref(doc);
		}
		for (int i = 0; i < 4; i++)
			ck_assert_msg(seen[k][i], "%s: no digest titled NPS, %s", path, days[i]);
	}
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A 2xx whose body comes slower than webhooks.timeout was taken by the receiver: it is
 * delivered, with its status, not sent again (it was a failure without a status, and
 * the receiver heard it twice; found by QA). */
START_TEST(a_2xx_with_a_slow_body_is_delivered_once)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\ntimeout = 1s\nretry = 1s, 1s, 1s\n");
	struct rx_answer drip = { .path = "/hooks/drip", .status = 200, .count = 1, .drip_ms = 100 };
	rx_push(rx, drip);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/drip", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "drip-1", "C-1", "claim", 7, NULL);
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 1, WAIT_MS);
	json_t *a0 = json_array_get(json_object_get(d, "attempt_log"), 0);
	ck_assert_int_eq(iget(a0, "http_status"), 200);
	ck_assert_int_eq(iget(d, "attempts"), 1);
	json_decref(d);
	sleep_ms(QUIET_MS + 1000);
	ck_assert_uint_eq(rx_count(rx, "/hooks/drip"), 1);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(a_receiver_that_hangs_times_out_and_is_retried)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\ntimeout = 1s\nretry = 1s, 1s, 1s\n");
	struct rx_answer hang = { .path = "/hooks/slow", .status = 200, .count = 1, .delay_ms = 4000 };
	rx_push(rx, hang);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/slow", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "slow-1", "C-1", "claim", 7, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/slow", 2, WAIT_MS), 2);
	ck_assert_str_eq(rx_header(rx_get(rx, "/hooks/slow", 0), "webhook-id"),
	                 rx_header(rx_get(rx, "/hooks/slow", 1), "webhook-id"));
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 2, WAIT_MS);
	json_t *a0 = json_array_get(json_object_get(d, "attempt_log"), 0);
	ck_assert_msg(a0 && json_is_null(json_object_get(a0, "http_status")), "the timed-out attempt has a status");
	const char *err = sget(a0, "error");
	ck_assert_msg(contains_ci(err, "timed out") || contains_ci(err, "timeout"), "the attempt's error is %s",
	              err ? err : "(null)");
	json_int_t ms = iget(a0, "duration_ms");
	ck_assert_msg(ms >= 900 && ms < 3500, "the timed-out attempt took %lld ms, webhooks.timeout is 1s", (long long)ms);
	ck_assert_int_eq(iget(json_array_get(json_object_get(d, "attempt_log"), 1), "http_status"), 200);
	json_decref(d);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A listening socket nobody accepts on: connections complete, requests go out, no answer
 * ever comes (a firewalled or switched-off receiver). Returns the socket; *ret_port its port. */
static int black_hole(unsigned *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 1024), 0);
	socklen_t len = sizeof a;
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

/* npsd_deliveries{status="delivered"} from /metrics. */
static long delivered_count(struct env *e)
{
	struct http_result r;
	http_json(&e->p, "GET", "/metrics", NULL, NULL, &r);
	const char *line = r.body ? strstr(r.body, "npsd_deliveries{status=\"delivered\"} ") : NULL;
	long n = line ? strtol(strchr(line, ' ') + 1, NULL, 10) : -1;
	http_result_free(&r);
	return n;
}

/* One receiver that never answers keeps its transfers for the whole timeout. It must not
 * take every transfer slot: another webhook's alerts go out at once all the same. */
START_TEST(a_receiver_that_never_answers_does_not_hold_up_the_others)
{
	struct receiver *rx = rx_start();
	unsigned port;
	int hole = black_hole(&port);
	struct env e;
	env_start(&e, "[webhooks]\ntimeout = 60s\n");
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/hooks/hole", port);
	json_decref(create_webhook(&e, url, "\"events\":[\"survey.received\"]"));
	create_webhook_id(&e, rx, "/hooks/ok", "\"events\":[\"survey.received\"]");
	/* More answers than transfers may run at once (256): the hole's share fills first. */
	enum { BATCHES = 3, PER_BATCH = 100 };
	for (int b = 0; b < BATCHES; b++) {
		char *body = malloc(PER_BATCH * 200 + 2);
		ck_assert_ptr_nonnull(body);
		size_t len = 0;
		body[len++] = '[';
		for (int i = 0; i < PER_BATCH; i++)
			len += (size_t)snprintf(body + len, 200,
			                        "%s{\"response_id\":\"hole-%d-%d\",\"customer\":{\"id\":\"C-%d-%d\"},"
			                        "\"touchpoint\":\"claim\",\"score\":9}",
			                        i ? "," : "", b, i, b, i);
		body[len++] = ']';
		body[len] = '\0';
		struct http_result r;
		http_json(&e.p, "POST", "/v1/surveys", e.ingest, body, &r);
		expect_status(&r, 200, "a batch of answers");
		http_result_free(&r);
		free(body);
	}
	/* The hole gets nothing through, so every delivered one is the other webhook's. */
	long delivered = 0;
	for (double t0 = mono_s(); mono_s() - t0 < 15 && delivered < BATCHES * PER_BATCH; sleep_ms(100))
		delivered = delivered_count(&e);
	ck_assert_msg(delivered == BATCHES * PER_BATCH,
	              "the answering receiver had %ld of %d alerts after 15 s", delivered, BATCHES * PER_BATCH);
	ck_assert_uint_eq(rx_count(rx, "/hooks/ok"), RX_MAX_REQ); /* as many as it keeps */
	env_end(&e);
	close(hole);
	rx_stop(rx);
}
END_TEST

START_TEST(a_deleted_webhook_gets_nothing_more)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s, 1s\n");
	json_int_t wid = webhook_failing_once(&e, rx, "/hooks/bye", "bye-1");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)wid);
	struct http_result r;
	http_json(&e.p, "DELETE", path, e.mgr, NULL, &r);
	expect_status(&r, 204, "delete");
	http_result_free(&r);
	size_t n = rx_count(rx, "/hooks/bye");
	sleep_ms(2500); /* two retry steps */
	ck_assert_msg(rx_count(rx, "/hooks/bye") <= n + 1, "a deleted webhook got %zu more requests",
	              rx_count(rx, "/hooks/bye") - n);
	post_survey_quiet(&e, "bye-2", "C-2", "claim", 9, NULL);
	sleep_ms(QUIET_MS);
	ck_assert_ptr_null(rx_find(rx, "/hooks/bye", "\"bye-2\""));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* An answer that no webhook's filter lets through leaves no event behind: it would keep the
 * customer's name and comment in the outbox until retention, for nobody. */
START_TEST(an_event_no_filter_passes_is_not_kept)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_int_t low = create_webhook_id(&e, rx, "/low", "\"events\":[\"survey.received\"],\"filter\":{\"max_score\":6}");
	for (int i = 0; i < 3; i++) {
		char rid[32];
		snprintf(rid, sizeof rid, "unseen-%d", i);
		post_survey_quiet(&e, rid, rid, "claim", 10, NULL);
	}
	post_survey_quiet(&e, "seen-1", "C-seen", "claim", 3, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/low", 1, WAIT_MS), 1);
	json_t *list = deliveries(&e, low);
	ck_assert_uint_eq(json_array_size(list), 1);
	json_decref(list);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(e.p.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int events = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	ck_assert_msg(events == 1, "%d events in the outbox for the one answer a webhook gets", events);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(filters_pick_the_answers)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_int_t low = create_webhook_id(&e, rx, "/low", "\"events\":[\"survey.received\"],\"filter\":{\"max_score\":6}");
	json_int_t high = create_webhook_id(&e, rx, "/high", "\"events\":[\"survey.received\"],\"filter\":{\"min_score\":9}");
	json_int_t claims = create_webhook_id(&e, rx, "/claims",
	                                      "\"events\":[\"survey.received\"],\"filter\":{\"touchpoints\":[\"claim\",\"renewal\"]}");
	json_int_t both = create_webhook_id(
		&e, rx, "/both", "\"events\":[\"survey.received\"],\"filter\":{\"max_score\":6,\"touchpoints\":[\"claim\"]}");
	json_int_t all = create_webhook_id(&e, rx, "/all", "\"events\":[\"survey.received\"]");
	json_int_t other = create_webhook_id(&e, rx, "/callbacks-only", "\"events\":[\"callback.completed\"]");

	post_survey_quiet(&e, "f-3-purchase", "C-1", "purchase", 3, NULL);
	post_survey_quiet(&e, "f-9-claim", "C-2", "claim", 9, NULL);
	post_survey_quiet(&e, "f-6-claim", "C-3", "claim", 6, NULL);
	post_survey_quiet(&e, "f-7-renewal", "C-4", "renewal", 7, NULL);

	/* The delivery rows are written with the answer, so the log knows at once. */
	struct {
		json_int_t id;
		const char *path;
		size_t n;
		const char *got[4];
	} want[] = {
		{ low, "/low", 2, { "f-3-purchase", "f-6-claim" } },
		{ high, "/high", 1, { "f-9-claim" } },
		{ claims, "/claims", 3, { "f-9-claim", "f-6-claim", "f-7-renewal" } },
		{ both, "/both", 1, { "f-6-claim" } },
		{ all, "/all", 4, { "f-3-purchase", "f-9-claim", "f-6-claim", "f-7-renewal" } },
		{ other, "/callbacks-only", 0, { NULL } },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		json_t *list = deliveries(&e, want[i].id);
		ck_assert_msg(json_array_size(list) == want[i].n, "%s: %zu deliveries, want %zu", want[i].path,
		              json_array_size(list), want[i].n);
		json_decref(list);
	}
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		ck_assert_msg(rx_wait(rx, want[i].path, want[i].n, WAIT_MS) >= want[i].n, "%s got %zu of %zu", want[i].path,
		              rx_count(rx, want[i].path), want[i].n);
		for (size_t k = 0; k < want[i].n; k++) {
			char quoted[64];
			snprintf(quoted, sizeof quoted, "\"%s\"", want[i].got[k]);
			ck_assert_msg(rx_find(rx, want[i].path, quoted), "%s did not get %s", want[i].path, want[i].got[k]);
		}
	}
	sleep_ms(QUIET_MS);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_msg(rx_count(rx, want[i].path) == want[i].n, "%s got %zu requests, want %zu", want[i].path,
		              rx_count(rx, want[i].path), want[i].n);
	/* max_score 6 got the 3 but not the 9. */
	ck_assert_ptr_null(rx_find(rx, "/low", "\"f-9-claim\""));

	/* An inactive webhook gets nothing. */
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)all);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":false}", &r);
	expect_status(&r, 200, "deactivate");
	http_result_free(&r);
	post_survey_quiet(&e, "f-10-claim", "C-5", "claim", 10, NULL);
	json_t *list = deliveries(&e, all);
	ck_assert_uint_eq(json_array_size(list), 4);
	json_decref(list);
	ck_assert_uint_eq(rx_wait(rx, "/high", 2, WAIT_MS), 2);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/all"), 4);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* ---------- ntfy and slack ---------- */

static const struct rx_req *ntfy_for(struct receiver *rx, const char *path, const char *comment)
{
	const struct rx_req *r = rx_wait_find(rx, path, comment, WAIT_MS);
	ck_assert_msg(r != NULL, "%s got no push with \"%s\"", path, comment);
	return r;
}

static void check_ntfy(const struct rx_req *r, const char *priority, const char *score)
{
	ck_assert_str_eq(r->method, "POST");
	const char *ctype = rx_header(r, "Content-Type");
	ck_assert_msg(ctype && strncmp(ctype, "text/plain", 10) == 0, "ntfy Content-Type %s", ctype);
	ck_assert_msg(r->len > 0 && r->len <= 4096, "ntfy body of %zu bytes", r->len);
	json_t *maybe = json_loadb(r->body, r->len, 0, NULL);
	ck_assert_msg(!maybe, "the ntfy body is JSON, not text for a person: %s", r->body);
	ck_assert_msg(!strchr(r->body, '{'), "the ntfy body looks like JSON: %s", r->body);
	/* The customer's first name only; no phone or email on a lock screen. */
	ck_assert_msg(strstr(r->body, "Jan"), "the push does not name the customer: %s", r->body);
	ck_assert_msg(!strstr(r->body, "Jansen"), "the push shows the full name: %s", r->body);
	ck_assert_msg(!strstr(r->body, PHONE) && !strstr(r->body, "jan@example.nl"), "the push shows contact data: %s",
	              r->body);
	char *title = decode_title(rx_header(r, "Title"));
	ck_assert_msg(title && *title, "no Title");
	ck_assert_msg(strstr(title, score), "the Title does not show the score %s: %s", score, title);
	char both[8192];
	snprintf(both, sizeof both, "%s\n%s", title, r->body);
	ck_assert_msg(strstr(both, "claim"), "neither Title nor body shows the touchpoint: %s", both);
	free(title);
	const char *prio = rx_header(r, "Priority");
	ck_assert_msg(prio && strcmp(prio, priority) == 0, "Priority %s, want %s", prio, priority);
	const char *tags = rx_header(r, "Tags");
	ck_assert_msg(tags && *tags, "no Tags");
}

START_TEST(ntfy_shape_with_public_url_and_auth)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[server]\npublic_url = https://nps.example.com\n");
	json_int_t nid = create_webhook_id(&e, rx, "/nps-claims",
	                                   "\"format\":\"ntfy\",\"events\":[\"survey.received\"],"
	                                   "\"auth\":\"Bearer tk_ntfy_123\"");
	char long_comment[3201];
	for (size_t i = 0; i < 3200; i++)
		long_comment[i] = "Slow and unclear "[i % 17];
	long_comment[3200] = '\0';
	memcpy(long_comment, "Okay5 ", 6);

	json_t *s3 = post_survey(&e, "n-3", "C-3", "claim", 3, "Took three weeks to pay out");
	json_t *s5 = post_survey(&e, "n-5", "C-5", "claim", 5, long_comment);
	json_t *s9 = post_survey(&e, "n-9", "C-9", "claim", 9, "Great service");

	const struct rx_req *r3 = ntfy_for(rx, "/nps-claims", "Took three weeks to pay out");
	check_ntfy(r3, "urgent", "3");
	const struct rx_req *r5 = ntfy_for(rx, "/nps-claims", "Okay5");
	check_ntfy(r5, "high", "5");
	ck_assert_msg(r5->len < 3200, "a 3200-character comment was not cut (%zu bytes)", r5->len);
	const struct rx_req *r9 = ntfy_for(rx, "/nps-claims", "Great service");
	check_ntfy(r9, "default", "9");

	/* auth goes out as Authorization, on every push. */
	const struct rx_req *all[] = { r3, r5, r9 };
	for (size_t i = 0; i < 3; i++) {
		const char *authz = rx_header(all[i], "Authorization");
		ck_assert_msg(authz && strcmp(authz, "Bearer tk_ntfy_123") == 0, "Authorization %s", authz);
	}
	/* With server.public_url: Click and an Actions view button to that callback's page. */
	json_t *cb = json_object_get(s3, "callback");
	ck_assert_msg(json_is_object(cb), "a score of 3 with a phone queued no callback");
	char cb_id[32];
	snprintf(cb_id, sizeof cb_id, "%lld", (long long)iget(cb, "id"));
	const char *click = rx_header(r3, "Click");
	ck_assert_msg(click && strncmp(click, "https://nps.example.com/", 24) == 0 && strstr(click, cb_id),
	              "Click %s for callback %s", click, cb_id);
	const char *actions = rx_header(r3, "Actions");
	ck_assert_msg(actions && strstr(actions, "view") && strstr(actions, "https://nps.example.com/") &&
	                  strstr(actions, cb_id),
	              "Actions %s", actions);

	json_t *d = wait_delivery(&e, nid, 0, "delivered", 1, WAIT_MS);
	json_decref(d);
	json_decref(s3);
	json_decref(s5);
	json_decref(s9);
	env_end(&e);

	/* Without server.public_url: no links; without auth: no Authorization. */
	env_start(&e, NULL);
	create_webhook_id(&e, rx, "/nps-plain", "\"format\":\"ntfy\",\"events\":[\"survey.received\"]");
	json_t *s = post_survey(&e, "p-3", "C-3", "claim", 3, "Nobody called back");
	ck_assert_msg(json_is_object(json_object_get(s, "callback")), "no callback queued");
	json_decref(s);
	const struct rx_req *rp = ntfy_for(rx, "/nps-plain", "Nobody called back");
	check_ntfy(rp, "urgent", "3");
	ck_assert_msg(!rx_header(rp, "Click"), "Click without server.public_url: %s", rx_header(rp, "Click"));
	ck_assert_msg(!rx_header(rp, "Actions"), "Actions without server.public_url: %s", rx_header(rp, "Actions"));
	ck_assert_msg(!rx_header(rp, "Authorization"), "Authorization without auth: %s", rx_header(rp, "Authorization"));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(slack_shape)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	json_int_t sid = create_webhook_id(&e, rx, "/slack", "\"format\":\"slack\",\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "s-2", "C-2", "claim", 2, "Three weeks <waiting> & nothing");
	ck_assert_uint_eq(rx_wait(rx, "/slack", 1, WAIT_MS), 1);
	const struct rx_req *r = rx_get(rx, "/slack", 0);
	const char *ctype = rx_header(r, "Content-Type");
	ck_assert_msg(ctype && strncmp(ctype, "application/json", 16) == 0, "slack Content-Type %s", ctype);
	json_t *doc = json_loadb(r->body, r->len, 0, NULL);
	ck_assert_msg(json_is_object(doc), "slack body is not a JSON object: %s", r->body);
	const char *text = sget(doc, "text");
	ck_assert_msg(text && *text, "no text: %s", r->body);
	ck_assert_msg(strstr(text, "2"), "the text has no score: %s", text);
	ck_assert_msg(strstr(text, "Three weeks"), "the text has no comment: %s", text);
	ck_assert_msg(strstr(text, "Jan") && !strstr(text, "Jansen"), "the text should have the first name only: %s",
	              text);
	ck_assert_msg(strstr(text, "claim"), "the text has no touchpoint: %s", text);
	/* Slack reads <...> as links and mentions: the comment's are escaped as Slack asks. */
	ck_assert_msg(!strstr(text, "<waiting>") && strstr(text, "&lt;waiting&gt;"), "unescaped for Slack: %s", text);
	json_decref(doc);
	json_decref(wait_delivery(&e, sid, 0, "delivered", 1, WAIT_MS));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(survey_updated_goes_out)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	char *url = rx_url(rx, "/hooks/upd");
	json_t *hook = create_webhook(&e, url, "\"events\":[\"survey.updated\"]");
	char *secret = hook_secret(hook);
	json_decref(hook);
	/* The score first, the comment a minute later: 200, and survey.updated goes out. */
	post_survey_quiet(&e, "upd-1", "C-1", "claim", 6, NULL);
	const char *body = "{\"response_id\":\"upd-1\",\"customer\":{\"id\":\"C-1\",\"name\":\"Jan Jansen\","
	                   "\"phone\":\"" PHONE "\",\"email\":\"jan@example.nl\",\"language\":\"nl\"},"
	                   "\"touchpoint\":\"claim\",\"channel\":\"web\",\"score\":6,\"comment\":\"Added later\"}";
	struct http_result r;
	http_json(&e.p, "POST", "/v1/surveys", e.ingest, body, &r);
	expect_status(&r, 200, "completing an answer");
	http_result_free(&r);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/upd", 1, WAIT_MS), 1);
	json_t *env = check_standard(rx_get(rx, "/hooks/upd", 0), secret, "survey.updated");
	json_t *sv = json_object_get(json_object_get(env, "data"), "survey");
	ck_assert_msg(sget(sv, "comment") && strcmp(sget(sv, "comment"), "Added later") == 0, "survey.updated: %s",
	              rx_get(rx, "/hooks/upd", 0)->body);
	json_decref(env);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/upd"), 1);
	free(secret);
	free(url);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(callback_events_in_ntfy)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[server]\npublic_url = https://nps.example.com/\n");
	create_webhook_id(&e, rx, "/cb",
	                  "\"format\":\"ntfy\",\"events\":[\"callback.created\",\"callback.completed\"]");
	json_t *s = post_survey(&e, "cb-4", "C-4", "claim", 4, "Nobody told me anything");
	json_t *cb = json_object_get(s, "callback");
	ck_assert_msg(json_is_object(cb), "no callback for a 4");
	json_int_t cb_id = iget(cb, "id");
	json_decref(s);
	char cb_text[32];
	snprintf(cb_text, sizeof cb_text, "%lld", (long long)cb_id);

	/* callback.created: loud for a 4, with a link to the callback. */
	const struct rx_req *created = ntfy_for(rx, "/cb", "Nobody told me anything");
	check_ntfy(created, "urgent", "4");
	const char *click = rx_header(created, "Click");
	ck_assert_msg(click && strncmp(click, "https://nps.example.com/", 24) == 0 && !strstr(click, ".com//") &&
	                  strstr(click, cb_text),
	              "Click %s for callback %s", click, cb_text);

	/* An agent reaches the customer and records what to improve. */
	struct http_result r;
	http_json(&e.p, "POST", "/v1/callbacks/claim", e.agent, NULL, &r);
	expect_status(&r, 200, "claim");
	ck_assert_int_eq(iget(r.json, "id"), cb_id);
	http_result_free(&r);
	char path[96];
	snprintf(path, sizeof path, "/v1/callbacks/%lld/complete", (long long)cb_id);
	http_json(&e.p, "POST", path, e.agent,
	          "{\"outcome\":\"reached\",\"notes\":\"Apologised for the wait\","
	          "\"improvements\":[{\"area\":\"process\",\"text\":\"Pay claims within a week\"}]}",
	          &r);
	expect_status(&r, 200, "complete");
	http_result_free(&r);
	const struct rx_req *done = ntfy_for(rx, "/cb", "Pay claims within a week");
	char *title = decode_title(rx_header(done, "Title"));
	char both[8192];
	snprintf(both, sizeof both, "%s\n%s", title ? title : "", done->body);
	free(title);
	ck_assert_msg(strstr(both, "reached"), "callback.completed push without the outcome: %s", both);
	ck_assert_msg(strstr(both, "Jan") && !strstr(both, "Jansen"), "callback.completed push: %s", both);
	ck_assert_msg(rx_header(done, "Priority") && rx_header(done, "Tags"), "callback.completed without Priority/Tags");
	click = rx_header(done, "Click");
	ck_assert_msg(click && strstr(click, cb_text), "callback.completed Click %s", click);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* ---------- at least once across kill -9 ---------- */

START_TEST(kill_9_between_commit_and_send_still_delivers)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	rx_answer(rx, "/hooks/crash", 503, -1);
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/crash", "\"events\":[\"survey.received\"]");

	json_t *s = post_survey(&e, "crash-1", "C-1", "claim", 4, "lost?");
	json_int_t survey_id = iget(s, "id");
	json_decref(s);
	ck_assert_int_eq(npsd_stop(&e.p, SIGKILL), 128 + SIGKILL);

	/* Whatever the daemon had done (nothing, a 503, or a send cut short), after the restart,
	 * with a clock past any retry or lease, the receiver answering 200 gets it. */
	rx_clear_script(rx);
	size_t before = rx_count(rx, "/hooks/crash");
	fake_clock_set(t0 + 600);
	ck_assert_int_eq(npsd_restart(&e.p), 0);
	ck_assert_uint_gt(rx_wait(rx, "/hooks/crash", before + 1, WAIT_MS), before);
	const struct rx_req *r = rx_wait_find(rx, "/hooks/crash", "\"crash-1\"", WAIT_MS);
	ck_assert_ptr_nonnull(r);
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 1, WAIT_MS);
	char want_id[40];
	snprintf(want_id, sizeof want_id, "msg_%lld", (long long)iget(d, "id"));
	for (size_t i = 0; i < rx_count(rx, "/hooks/crash"); i++)
		ck_assert_str_eq(rx_header(rx_get(rx, "/hooks/crash", i), "webhook-id"), want_id);
	ck_assert_int_eq(rx_get(rx, "/hooks/crash", rx_count(rx, "/hooks/crash") - 1)->status, 200);
	json_decref(d);

	/* The answer itself survived too. */
	char path[64];
	snprintf(path, sizeof path, "/v1/surveys/%lld", (long long)survey_id);
	struct http_result hr;
	http_json(&e.p, "GET", path, e.mgr, NULL, &hr);
	expect_status(&hr, 200, "survey after kill -9");
	http_result_free(&hr);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(kill_9_in_the_middle_of_a_send_resends)
{
	int64_t t0 = fake_clock_now();
	struct receiver *rx = rx_start();
	/* The first request hangs: npsd is killed while it waits for the answer. */
	struct rx_answer hang = { .path = "/hooks/mid", .status = 200, .count = 1, .delay_ms = 3000 };
	rx_push(rx, hang);
	struct env e;
	env_start(&e, "[webhooks]\ntimeout = 10s\nretry = 1s, 1s, 1s\n");
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/mid", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "mid-1", "C-1", "claim", 6, "half sent");
	ck_assert_uint_eq(rx_wait(rx, "/hooks/mid", 1, WAIT_MS), 1);
	ck_assert_int_eq(npsd_stop(&e.p, SIGKILL), 128 + SIGKILL);

	/* Past any lease: the delivery is claimed again and resent with the same webhook-id. */
	fake_clock_set(t0 + 600);
	ck_assert_int_eq(npsd_restart(&e.p), 0);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/mid", 2, WAIT_MS), 2);
	const struct rx_req *a = rx_get(rx, "/hooks/mid", 0), *b = rx_get(rx, "/hooks/mid", 1);
	ck_assert_str_eq(rx_header(a, "webhook-id"), rx_header(b, "webhook-id"));
	ck_assert_msg(strstr(b->body, "\"mid-1\""), "the resend is another event: %s", b->body);
	json_t *d = wait_delivery(&e, wid, 0, "delivered", 1, WAIT_MS);
	json_decref(d);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/mid"), 2);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* ---------- the SSRF guard ---------- */

START_TEST(ssrf_guard_at_create_time)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start_webhooks(&e, "allow_private_targets = false\n", NULL);
	char loopback[96];
	snprintf(loopback, sizeof loopback, "http://127.0.0.1:%u/hooks", rx->port);
	const char *refused[] = {
		loopback,
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
		"http://0.0.0.0/",
		"http://192.168.1.10/",
		"http://172.16.5.4:8080/",
		"http://[fd00::1]/",
		"http://[fe80::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://localhost:9/",
		"http://2130706433/",
		"http://127.1/",
		"http://0x7f.0.0.1/",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"survey.received\"]}", refused[i]);
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
		expect_field_error(&r, "invalid_field", "url", refused[i]);
		http_result_free(&r);
	}
	/* A public address is fine, and PATCH cannot point it at a private one. */
	json_t *doc = create_webhook(&e, "https://93.184.216.34/hook", "\"events\":[\"survey.received\"]");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)iget(doc, "id"));
	json_decref(doc);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"url\":\"http://10.1.2.3/\"}", &r);
	expect_field_error(&r, "invalid_field", "url", "patch to a private address");
	http_result_free(&r);
	ck_assert_uint_eq(rx_count(rx, NULL), 0);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* Replaces the first from in p's config file with to. */
START_TEST(ssrf_guard_at_connect_time)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/inside", "\"events\":[\"survey.received\"]");
	/* The same webhook, now with the guard on: it was created while allowed. */
	ck_assert_int_eq(npsd_stop(&e.p, SIGTERM), 0);
	config_replace(&e.p, "allow_private_targets = true", "allow_private_targets = false");
	ck_assert_int_eq(npsd_restart(&e.p), 0);

	post_survey_quiet(&e, "ssrf-1", "C-1", "claim", 3, NULL);
	json_t *d = wait_delivery(&e, wid, 0, NULL, 1, WAIT_MS);
	json_t *a0 = json_array_get(json_object_get(d, "attempt_log"), 0);
	ck_assert_msg(a0 != NULL, "no attempt logged");
	ck_assert_msg(json_is_null(json_object_get(a0, "http_status")), "the refused attempt has an HTTP status");
	const char *err = sget(a0, "error");
	ck_assert_msg(contains_ci(err, "refus"), "the attempt's error does not say it was refused: %s",
	              err ? err : "(null)");
	ck_assert_msg(contains_ci(sget(d, "last_error"), "refus"), "last_error %s", sget(d, "last_error"));
	json_decref(d);
	/* Also the test call. */
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)wid);
	struct http_result r;
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "test call");
	json_int_t tid = iget(r.json, "id");
	http_result_free(&r);
	d = wait_delivery(&e, wid, tid, NULL, 1, WAIT_MS);
	ck_assert_msg(contains_ci(sget(d, "last_error"), "refus"), "test call: last_error %s", sget(d, "last_error"));
	json_decref(d);
	sleep_ms(QUIET_MS);
	ck_assert_msg(rx_count(rx, NULL) == 0, "the guarded receiver got %zu requests", rx_count(rx, NULL));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A reload that turns the guard on holds for connections kept alive from before it: libcurl
 * reuses them without opening a socket, where the guard looked, and went on delivering to
 * the loopback receiver for minutes (found by QA). */
START_TEST(a_reload_that_turns_the_guard_on_holds_for_kept_alive_connections)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/inside", "\"events\":[\"survey.received\"]");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)wid);
	struct http_result r;
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "test call while allowed");
	json_int_t allowed = iget(r.json, "id");
	http_result_free(&r);
	json_decref(wait_delivery(&e, wid, allowed, "delivered", 1, WAIT_MS));

	config_replace(&e.p, "allow_private_targets = true", "allow_private_targets = false");
	kill(e.p.pid, SIGHUP);
	for (int i = 0; i < 300 && log_lines_with(&e, "reload: configuration applied") == 0; i++)
		sleep_ms(10);
	ck_assert_int_eq(log_lines_with(&e, "reload: configuration applied"), 1);
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "test call after the reload");
	json_int_t guarded = iget(r.json, "id");
	http_result_free(&r);
	json_t *d = wait_delivery(&e, wid, guarded, NULL, 1, WAIT_MS);
	ck_assert_msg(contains_ci(sget(d, "last_error"), "refus"), "after the reload: %s, last_error %s", sget(d, "status"),
	              sget(d, "last_error"));
	json_decref(d);
	ck_assert_uint_eq(rx_count(rx, NULL), 1);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A stand-in for an egress proxy (a corporate one, named by http_proxy): counts the
 * connections it accepts and keeps the first request line of each (an absolute-form POST,
 * or a CONNECT), answering each with its answer (a 502 unless told). */
struct proxy {
	const char *answer;
	int fd;
	uint16_t port;
	pthread_t thread;
	pthread_mutex_t lock;
	atomic_bool stop;
	size_t connections;
	char lines[8][256]; /* of the first connections */
};

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	while (!atomic_load(&px->stop)) {
		struct pollfd pfd = { .fd = px->fd, .events = POLLIN };
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		int c = accept(px->fd, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = { .tv_sec = 1 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		char buf[512];
		ssize_t got = recv(c, buf, sizeof buf - 1, 0);
		pthread_mutex_lock(&px->lock);
		px->connections++;
		if (got > 0 && px->connections <= 8) {
			buf[got] = '\0';
			buf[strcspn(buf, "\r\n")] = '\0';
			snprintf(px->lines[px->connections - 1], sizeof px->lines[0], "%.255s", buf);
		}
		pthread_mutex_unlock(&px->lock);
		(void)!send(c, px->answer, strlen(px->answer), MSG_NOSIGNAL);
		close(c);
	}
	return NULL;
}

/* answer: the whole HTTP answer it gives every request, static. */
static struct proxy *proxy_start_answering(const char *answer)
{
	struct proxy *px = calloc(1, sizeof *px);
	ck_assert_ptr_nonnull(px);
	px->answer = answer;
	px->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(px->fd, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(bind(px->fd, (struct sockaddr *)&addr, sizeof addr), 0);
	ck_assert_int_eq(listen(px->fd, 16), 0);
	socklen_t len = sizeof addr;
	ck_assert_int_eq(getsockname(px->fd, (struct sockaddr *)&addr, &len), 0);
	px->port = ntohs(addr.sin_port);
	pthread_mutex_init(&px->lock, NULL);
	ck_assert_int_eq(pthread_create(&px->thread, NULL, proxy_main, px), 0);
	return px;
}

static struct proxy *proxy_start(void)
{
	return proxy_start_answering("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/* How many connections it accepted; their first request lines (up to 8), one a line, into
 * lines. */
static size_t proxy_connections(struct proxy *px, char lines[static 8 * 257])
{
	pthread_mutex_lock(&px->lock);
	size_t n = px->connections, at = 0;
	lines[0] = '\0';
	for (size_t i = 0; i < n && i < 8; i++)
		at += (size_t)snprintf(lines + at, 8 * 257 - at, "%s\n", px->lines[i]);
	pthread_mutex_unlock(&px->lock);
	return n;
}

/* Waits up to ms for the proxy to have accepted want connections; how many it has. */
static size_t proxy_wait(struct proxy *px, size_t want, long ms, char lines[static 8 * 257])
{
	size_t n = 0;
	for (long waited = 0; (n = proxy_connections(px, lines)) < want && waited < ms; waited += 20)
		sleep_ms(20);
	return n;
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, true);
	pthread_join(px->thread, NULL);
	close(px->fd);
	pthread_mutex_destroy(&px->lock);
	free(px);
}

/* Reloads the daemon with allow_private_targets = false instead of true. */
static void guard_on(struct env *e)
{
	config_replace(&e->p, "allow_private_targets = true", "allow_private_targets = false");
	kill(e->p.pid, SIGHUP);
	for (int i = 0; i < 300 && log_lines_with(e, "reload: configuration applied") == 0; i++)
		sleep_ms(10);
	ck_assert_int_eq(log_lines_with(e, "reload: configuration applied"), 1);
}

/* POST /v1/webhooks/{wid}/test: the new delivery's id. */
static json_int_t test_call(struct env *e, json_int_t wid)
{
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)wid);
	struct http_result r;
	http_json(&e->p, "POST", path, e->mgr, NULL, &r);
	expect_status(&r, 202, "test call");
	json_int_t id = iget(r.json, "id");
	http_result_free(&r);
	return id;
}

/* A public address of the npsd host's own (its eth0 on a server) reaches every service on
 * the host that listens on 0.0.0.0, a database or an admin port: the guard refused
 * loopback and private addresses but let this one through. The test gives itself a host
 * with a public address (1.2.3.4, in a network namespace of its own, so that it has one
 * wherever it runs and nothing leaves), shows that a delivery there reaches a receiver on
 * 0.0.0.0 while the guard is off, then turns the guard on. */
START_TEST(ssrf_guard_refuses_the_hosts_own_address)
{
	netns_with_own_address("1.2.3.4");
	struct receiver *rx = rx_start_on(INADDR_ANY);
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	char url[96];
	snprintf(url, sizeof url, "http://1.2.3.4:%u/hooks/own", rx->port);
	json_t *doc = create_webhook(&e, url, "\"events\":[\"survey.received\"]");
	json_int_t wid = iget(doc, "id");
	json_decref(doc);
	json_int_t allowed = test_call(&e, wid);
	json_decref(wait_delivery(&e, wid, allowed, "delivered", 1, WAIT_MS));
	ck_assert_uint_eq(rx_count(rx, "/hooks/own"), 1);

	guard_on(&e);
	json_int_t guarded = test_call(&e, wid);
	json_t *d = wait_delivery(&e, wid, guarded, NULL, 1, WAIT_MS);
	ck_assert_msg(contains_ci(sget(d, "last_error"), "refus") && contains_ci(sget(d, "last_error"), "this host"),
	              "with the guard on: %s, last_error %s", sget(d, "status"), sget(d, "last_error"));
	json_decref(d);
	/* Nor can a new webhook point there. */
	char body[256];
	snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"survey.received\"]}", url);
	struct http_result r;
	http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
	expect_field_error(&r, "invalid_field", "url", url);
	http_result_free(&r);
	sleep_ms(QUIET_MS);
	ck_assert_msg(rx_count(rx, NULL) == 1, "the receiver on the host's own address got %zu requests",
	              rx_count(rx, NULL));
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* npsd started with the proxy environment set (systemd Environment=, a corporate egress
 * proxy): libcurl sent every delivery to that proxy, so the guard saw the proxy's address and
 * never the target's, and a webhook to http://169.254.169.254/ would go out through it
 * unchecked. npsd ignores that environment: deliveries go straight to their target, and with
 * the guard on a private target is refused before anything is sent anywhere. */
START_TEST(deliveries_ignore_the_proxy_environment)
{
	struct receiver *rx = rx_start();
	struct proxy *px = proxy_start();
	char proxy_url[64];
	snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%u", px->port);
	const char *vars[] = { "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	size_t nvars = sizeof vars / sizeof vars[0];
	for (size_t i = 0; i < nvars; i++)
		ck_assert_int_eq(setenv(vars[i], proxy_url, 1), 0);
	ck_assert_int_eq(unsetenv("no_proxy"), 0);
	ck_assert_int_eq(unsetenv("NO_PROXY"), 0);
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s, 1s, 1s\n");
	/* The daemon has its copy; this test's own requests to it must not go through the proxy. */
	for (size_t i = 0; i < nvars; i++)
		ck_assert_int_eq(unsetenv(vars[i]), 0);

	json_int_t plain = create_webhook_id(&e, rx, "/hooks/direct", "\"events\":[\"survey.received\"]");
	/* An https target (plain HTTP answers its handshake, so the attempt fails): through the
	 * proxy it would be a CONNECT tunnel. */
	char tls_url[96];
	snprintf(tls_url, sizeof tls_url, "https://127.0.0.1:%u/hooks/tls", rx->port);
	json_t *doc = create_webhook(&e, tls_url, "\"events\":[\"survey.received\"]");
	json_int_t tls = iget(doc, "id");
	json_decref(doc);

	char line[8 * 257];
	json_int_t did = test_call(&e, plain);
	json_t *d = wait_delivery(&e, plain, did, NULL, 1, WAIT_MS);
	size_t n = proxy_connections(px, line);
	ck_assert_msg(n == 0, "the proxy was asked %zu times:\n%s", n, line);
	ck_assert_str_eq(sget(d, "status"), "delivered");
	json_decref(d);
	ck_assert_uint_eq(rx_count(rx, "/hooks/direct"), 1);
	did = test_call(&e, tls);
	json_decref(wait_delivery(&e, tls, did, NULL, 1, WAIT_MS));
	n = proxy_connections(px, line);
	ck_assert_msg(n == 0, "https: the proxy was asked %zu times:\n%s", n, line);

	/* The guard on: both are refused, and the proxy still hears nothing. */
	guard_on(&e);
	json_int_t hooks[] = { plain, tls };
	for (size_t i = 0; i < 2; i++) {
		did = test_call(&e, hooks[i]);
		d = wait_delivery(&e, hooks[i], did, NULL, 1, WAIT_MS);
		ck_assert_msg(contains_ci(sget(d, "last_error"), "refus"), "webhook %lld with the guard on: %s, last_error %s",
		              (long long)hooks[i], sget(d, "status"), sget(d, "last_error"));
		json_decref(d);
	}
	sleep_ms(QUIET_MS);
	n = proxy_connections(px, line);
	ck_assert_msg(n == 0, "with the guard on, the proxy was asked %zu times:\n%s", n, line);
	ck_assert_uint_eq(rx_count(rx, "/hooks/direct"), 1);
	env_end(&e);
	proxy_stop(px);
	rx_stop(rx);
}
END_TEST

/* webhooks.proxy, for a host whose egress goes only through a proxy: the guard cannot see
 * the target's address in the connection (it is the proxy's), so npsd resolves the target
 * itself first and refuses a private one before anything goes to the proxy; a public one
 * goes through it, https as a CONNECT tunnel. */
START_TEST(the_proxy_key_checks_the_target_before_the_proxy)
{
	struct receiver *rx = rx_start();
	struct proxy *px = proxy_start();
	char ini[128];
	snprintf(ini, sizeof ini, "[webhooks]\nretry = 1m\nproxy = http://127.0.0.1:%u/\n", px->port);
	struct env e;
	env_start(&e, ini);
	const char *events = "\"events\":[\"survey.received\"]";
	/* Created while allowed; the guard is on before anything is sent. */
	json_int_t inside = create_webhook_id(&e, rx, "/hooks/inside", events);
	char url[96];
	snprintf(url, sizeof url, "https://127.0.0.1:%u/hooks/inside-tls", rx->port);
	json_t *doc = create_webhook(&e, url, events);
	json_int_t inside_tls = iget(doc, "id");
	json_decref(doc);
	doc = create_webhook(&e, "http://localhost:9/hooks/by-name", events);
	json_int_t by_name = iget(doc, "id");
	json_decref(doc);
	guard_on(&e);

	json_int_t refused[] = { inside, inside_tls, by_name };
	for (size_t i = 0; i < 3; i++) {
		json_int_t did = test_call(&e, refused[i]);
		json_t *d = wait_delivery(&e, refused[i], did, NULL, 1, WAIT_MS);
		ck_assert_msg(contains_ci(sget(d, "last_error"), "refus"), "webhook %lld: %s, last_error %s",
		              (long long)refused[i], sget(d, "status"), sget(d, "last_error"));
		json_decref(d);
	}
	char lines[8 * 257];
	size_t n = proxy_connections(px, lines);
	ck_assert_msg(n == 0, "private targets: the proxy was asked %zu times:\n%s", n, lines);
	ck_assert_uint_eq(rx_count(rx, NULL), 0);

	/* Public addresses pass, and go to the proxy alone (there is no route to them here). */
	doc = create_webhook(&e, "http://93.184.216.34/hooks/public", events);
	json_int_t public = iget(doc, "id");
	json_decref(doc);
	json_int_t did = test_call(&e, public);
	ck_assert_uint_eq(proxy_wait(px, 1, WAIT_MS, lines), 1);
	ck_assert_msg(strstr(lines, "POST http://93.184.216.34/hooks/public HTTP/1.1"), "the proxy was asked:\n%s",
	              lines);
	json_t *d = wait_delivery(&e, public, did, NULL, 1, WAIT_MS);
	ck_assert_int_eq(iget(json_array_get(json_object_get(d, "attempt_log"), 0), "http_status"), 502);
	json_decref(d);
	doc = create_webhook(&e, "https://93.184.216.34/hooks/public-tls", events);
	json_int_t public_tls = iget(doc, "id");
	json_decref(doc);
	did = test_call(&e, public_tls);
	ck_assert_uint_eq(proxy_wait(px, 2, WAIT_MS, lines), 2);
	ck_assert_msg(strstr(lines, "CONNECT 93.184.216.34:443 HTTP/1.1"), "the proxy was asked:\n%s", lines);
	d = wait_delivery(&e, public_tls, did, NULL, 1, WAIT_MS);
	/* Not the guard's refusal: the proxy was asked, and its refused tunnel is an error of its own. */
	ck_assert_msg(!contains_ci(sget(d, "last_error"), "not public"), "public https: last_error %s",
	              sget(d, "last_error"));
	/* The proxy's 502 to the CONNECT is no answer of the receiver's. */
	ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(d, "attempt_log"), 0), "http_status")));
	json_decref(d);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(proxy_connections(px, lines), 2);
	ck_assert_uint_eq(rx_count(rx, NULL), 0);
	env_end(&e);
	proxy_stop(px);
	rx_stop(rx);
}
END_TEST

/* A proxy that refuses the CONNECT for an https target (a 410 here; a 403 of a policy is
 * the same) has said nothing about the target, which it never reached: the 410 was taken
 * for the target's Gone and switched the webhook off for good. It is a failed attempt that
 * retries, whose error says the proxy refused; with the guard on (the target checked first)
 * and off alike. */
START_TEST(a_proxys_own_410_does_not_disable_the_webhook)
{
	struct proxy *px =
	        proxy_start_answering("HTTP/1.1 410 Gone\r\nContent-Length: 4\r\nConnection: close\r\n\r\ngone");
	char ini[128];
	snprintf(ini, sizeof ini, "[webhooks]\nretry = 1m\nproxy = http://127.0.0.1:%u/\n", px->port);
	struct env e;
	env_start(&e, ini);
	json_t *doc = create_webhook(&e, "https://93.184.216.34/hooks/refused", "\"events\":[\"survey.received\"]");
	json_int_t wid = iget(doc, "id");
	json_decref(doc);
	char lines[8 * 257];
	for (int guarded = 0; guarded < 2; guarded++) {
		if (guarded)
			guard_on(&e);
		json_int_t did = test_call(&e, wid);
		ck_assert_uint_eq(proxy_wait(px, (size_t)guarded + 1, WAIT_MS, lines), (size_t)guarded + 1);
		ck_assert_msg(strstr(lines, "CONNECT 93.184.216.34:443 HTTP/1.1"), "the proxy was asked:\n%s", lines);
		json_t *d = wait_delivery(&e, wid, did, NULL, 1, WAIT_MS);
		ck_assert_msg(strcmp(sget(d, "status"), "pending") == 0, "guard %d: the delivery is %s, want pending (a retry)",
		              guarded, sget(d, "status"));
		ck_assert_msg(contains_ci(sget(d, "last_error"), "proxy") && contains_ci(sget(d, "last_error"), "refused") &&
		                  contains_ci(sget(d, "last_error"), "410"),
		              "guard %d: last_error %s", guarded, sget(d, "last_error"));
		ck_assert(json_is_null(json_object_get(json_array_get(json_object_get(d, "attempt_log"), 0), "http_status")));
		json_decref(d);
		json_t *w = get_webhook(&e, wid);
		ck_assert_msg(json_is_true(json_object_get(w, "active")), "guard %d: the proxy's 410 switched the webhook off (%s)",
		              guarded, sget(w, "disabled_reason"));
		json_decref(w);
	}
	env_end(&e);
	proxy_stop(px);
}
END_TEST

/* auth goes out as it is, as the Authorization header: a tab, a C1 control (U+0085, a line
 * break to some parsers) or a line separator passed the API (it refused the other C0
 * controls only) and went out in the header. The API refuses them now, and one stored
 * before is not sent: the delivery fails and says why. */
START_TEST(auth_is_one_header_value_without_controls)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	static const char *const bad[] = { "Bearer\\ttk_1", "Bearer tk_1\\u0085X-Evil: 1", "Bearer tk_1\\u2028X-Evil: 1" };
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/auth", "\"events\":[\"survey.received\"],\"auth\":\"Bearer tk_1\"");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)wid);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"auth\":\"%s\"}",
		         bad[i]);
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
		expect_field_error(&r, "invalid_field", "auth", body);
		http_result_free(&r);
		snprintf(body, sizeof body, "{\"auth\":\"%s\"}", bad[i]);
		http_json(&e.p, "PATCH", path, e.mgr, body, &r);
		expect_field_error(&r, "invalid_field", "auth", body);
		http_result_free(&r);
	}

	/* One stored before the API refused it. */
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(e.p.db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "UPDATE webhooks SET auth = ? WHERE id = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, "Bearer\ttk_1", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, wid);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	json_int_t did = test_call(&e, wid);
	json_t *d = wait_delivery(&e, wid, did, NULL, 1, WAIT_MS);
	ck_assert_msg(strcmp(sget(d, "status"), "failed") == 0 && contains_ci(sget(d, "last_error"), "auth"),
	              "a stored auth with a tab: %s, last_error %s", sget(d, "status"), sget(d, "last_error"));
	json_decref(d);
	sleep_ms(QUIET_MS);
	const struct rx_req *got = rx_count(rx, "/hooks/auth") ? rx_get(rx, "/hooks/auth", 0) : NULL;
	ck_assert_msg(!got, "sent with Authorization [%s]", got ? rx_header(got, "Authorization") : "");
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* libcurl takes an "Authorization:" line with nothing but blanks after the colon as "send no
 * Authorization header": an auth of blanks alone was taken (auth_set true) and every
 * delivery went out without one, to be refused by the receiver. */
START_TEST(auth_of_blanks_alone_is_refused)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	struct http_result r;
	const char *body = "{\"url\":\"https://hooks.example/a\",\"events\":[\"survey.received\"],\"auth\":\"   \"}";
	http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
	expect_field_error(&r, "invalid_field", "auth", body);
	http_result_free(&r);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/blank", "\"events\":[\"survey.received\"]");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)wid);
	http_json(&e.p, "PATCH", path, e.mgr, "{\"auth\":\" \"}", &r);
	expect_field_error(&r, "invalid_field", "auth", "{\"auth\":\" \"}");
	http_result_free(&r);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* SPEC's example of a webhook, sent word for word, was a 400: its "auth":"Bearer tk_…" held
 * a non-ASCII character, which the API refused. RFC 9110 lets a header value carry such
 * bytes; they go out as given. */
START_TEST(specs_example_webhook_is_made_and_its_auth_goes_out_as_given)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	static const char spec_example[] =
	    "{\"url\":\"https://ntfy.example/nps-claims\",\"format\":\"ntfy\",\"events\":[\"callback.created\"],\n"
	    "  \"filter\":{\"max_score\":6,\"touchpoints\":[\"claim\"]},\"auth\":\"Bearer tk_\xe2\x80\xa6\","
	    "\"description\":\"claims team\"}";
	struct http_result r;
	http_json(&e.p, "POST", "/v1/webhooks", e.mgr, spec_example, &r);
	expect_status(&r, 201, "SPEC's example");
	ck_assert_msg(iget(r.json, "id") > 0, "no id: %s", r.body);
	free(hook_secret(r.json));
	http_result_free(&r);

	json_int_t wid = create_webhook_id(&e, rx, "/hooks/spec-auth",
	                                   "\"events\":[\"survey.received\"],\"auth\":\"Bearer tk_caf\u00e9\u2026\"");
	json_int_t did = test_call(&e, wid);
	json_decref(wait_delivery(&e, wid, did, "delivered", 1, WAIT_MS));
	ck_assert_uint_ge(rx_wait(rx, "/hooks/spec-auth", 1, WAIT_MS), 1);
	const char *got = rx_header(rx_get(rx, "/hooks/spec-auth", 0), "Authorization");
	ck_assert_msg(got && strcmp(got, "Bearer tk_caf\xc3\xa9\xe2\x80\xa6") == 0, "Authorization [%s]",
	              got ? got : "(none)");
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A webhook's URL goes into the request line: curl refuses C0 controls and spaces in it,
 * but a C1 control (U+0085 is a line break to some parsers) in the query went out raw. */
START_TEST(a_url_with_a_c1_control_is_refused)
{
	struct env e;
	env_start(&e, NULL);
	static const char *const bad[] = { "https://hooks.example/a?x=1\\u0085X-Evil:1", "https://hooks.example/a\\u009bb" };
	/* Other non-ASCII stays allowed (curl sends it percent-encoded in the path). */
	json_t *doc = create_webhook(&e, "https://hooks.example/caf\\u00e9", "\"events\":[\"survey.received\"]");
	json_int_t wid = iget(doc, "id");
	json_decref(doc);
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)wid);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"survey.received\"]}", bad[i]);
		struct http_result r;
		http_json(&e.p, "POST", "/v1/webhooks", e.mgr, body, &r);
		expect_field_error(&r, "invalid_field", "url", body);
		http_result_free(&r);
		snprintf(body, sizeof body, "{\"url\":\"%s\"}", bad[i]);
		http_json(&e.p, "PATCH", path, e.mgr, body, &r);
		expect_field_error(&r, "invalid_field", "url", body);
		http_result_free(&r);
	}
	env_end(&e);
}
END_TEST

/* ---------- the test and retry endpoints ---------- */

START_TEST(test_endpoint_sends_webhook_test)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	char *url = rx_url(rx, "/hooks/t");
	/* Subscribed to something else: the test call is sent anyway. */
	json_t *hook = create_webhook(&e, url, "\"events\":[\"callback.completed\"]");
	json_int_t wid = iget(hook, "id");
	char *secret = hook_secret(hook);
	json_decref(hook);

	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)wid);
	struct http_result r;
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "test");
	json_int_t did = iget(r.json, "id");
	ck_assert_str_eq(sget(r.json, "event_type"), "webhook.test");
	ck_assert_int_eq(iget(r.json, "webhook_id"), wid);
	http_result_free(&r);

	ck_assert_uint_eq(rx_wait(rx, "/hooks/t", 1, WAIT_MS), 1);
	const struct rx_req *req = rx_get(rx, "/hooks/t", 0);
	json_decref(check_standard(req, secret, "webhook.test"));
	char want_id[40];
	snprintf(want_id, sizeof want_id, "msg_%lld", (long long)did);
	ck_assert_str_eq(rx_header(req, "webhook-id"), want_id);
	json_decref(wait_delivery(&e, wid, did, "delivered", 1, WAIT_MS));

	/* ntfy: a readable test push. */
	json_int_t nid = create_webhook_id(&e, rx, "/hooks/t-ntfy", "\"format\":\"ntfy\",\"events\":[\"survey.received\"]");
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)nid);
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "ntfy test");
	http_result_free(&r);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/t-ntfy", 1, WAIT_MS), 1);
	req = rx_get(rx, "/hooks/t-ntfy", 0);
	ck_assert_msg(req->len > 0 && rx_header(req, "Title"), "ntfy test push without text or Title");

	http_json(&e.p, "POST", "/v1/webhooks/987654/test", e.mgr, NULL, &r);
	expect_status(&r, 404, "test of an unknown webhook");
	http_result_free(&r);
	free(secret);
	free(url);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

START_TEST(retry_endpoint_resends_a_failed_delivery)
{
	struct receiver *rx = rx_start();
	struct env e;
	/* One retry step: two attempts, then failed. */
	env_start(&e, "[webhooks]\nretry = 1s\n");
	rx_answer(rx, "/hooks/r", 503, 2);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/r", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "rt-1", "C-1", "claim", 8, NULL);
	json_t *d = wait_delivery(&e, wid, 0, "failed", 2, WAIT_MS);
	json_int_t did = iget(d, "id");
	ck_assert_int_eq(iget(d, "attempts"), 2);
	ck_assert_int_eq(iget(d, "last_http_status"), 503);
	ck_assert_msg(json_is_null(json_object_get(d, "next_attempt_at")) || !json_object_get(d, "next_attempt_at"),
	              "a failed delivery has a next attempt");
	json_decref(d);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/r"), 2);

	/* The receiver is fixed; a manager retries. */
	char path[64];
	snprintf(path, sizeof path, "/v1/deliveries/%lld/retry", (long long)did);
	struct http_result r;
	http_json(&e.p, "POST", path, e.agent, NULL, &r);
	expect_status(&r, 403, "agent retries");
	http_result_free(&r);
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 202, "retry");
	ck_assert_int_eq(iget(r.json, "id"), did);
	http_result_free(&r);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/r", 3, WAIT_MS), 3);
	ck_assert_str_eq(rx_header(rx_get(rx, "/hooks/r", 0), "webhook-id"),
	                 rx_header(rx_get(rx, "/hooks/r", 2), "webhook-id"));
	d = wait_delivery(&e, wid, did, "delivered", 3, WAIT_MS);
	char statuses[64];
	attempt_statuses(d, statuses, sizeof statuses);
	ck_assert_str_eq(statuses, "503,503,200");
	json_decref(d);

	/* A delivered one is not sent again; an unknown one is 404. */
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 409, "retry of a delivered delivery");
	http_result_free(&r);
	http_json(&e.p, "POST", "/v1/deliveries/987654/retry", e.mgr, NULL, &r);
	expect_status(&r, 404, "retry of an unknown delivery");
	http_result_free(&r);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/r"), 3);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A delivery retried by hand again and again keeps every attempt; its log shows the newest
 * ones, the attempt a manager just asked for among them. */
START_TEST(attempt_log_shows_the_newest_attempts)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s\n");
	rx_answer(rx, "/hooks/many", 503, 20);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/many", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "many-1", "C-1", "claim", 8, NULL);
	json_t *d = wait_delivery(&e, wid, 0, "failed", 2, WAIT_MS);
	json_int_t did = iget(d, "id");
	json_decref(d);
	char path[64];
	snprintf(path, sizeof path, "/v1/deliveries/%lld/retry", (long long)did);
	for (int attempts = 3; attempts <= 21; attempts++) {
		struct http_result r;
		http_json(&e.p, "POST", path, e.mgr, NULL, &r);
		expect_status(&r, 202, "retry");
		http_result_free(&r);
		d = wait_delivery(&e, wid, did, attempts < 21 ? "failed" : "delivered", attempts, WAIT_MS);
		json_decref(d);
	}
	d = wait_delivery(&e, wid, did, "delivered", 21, WAIT_MS);
	ck_assert_int_eq(iget(d, "attempts"), 21);
	json_t *log = json_object_get(d, "attempt_log");
	ck_assert_int_eq(json_array_size(log), 20);
	char statuses[256];
	attempt_statuses(d, statuses, sizeof statuses);
	ck_assert_msg(strcmp(statuses + strlen(statuses) - 4, ",200") == 0,
	              "the log does not end with the newest attempt (200): %s", statuses);
	ck_assert_msg(strcmp(sget(json_array_get(log, 0), "at"), sget(json_array_get(log, 19), "at")) <= 0,
	              "the log is not oldest first");
	json_decref(d);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A retry that cannot be sent (its webhook was switched off) fails at once, and counts as
 * the one attempt it was, not as the whole retry schedule. */
START_TEST(test_and_retry_wait_for_a_switched_off_webhook)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, "[webhooks]\nretry = 1s\n");
	rx_answer(rx, "/hooks/off", 503, 2);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/off", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "off-1", "C-1", "claim", 8, NULL);
	json_t *d = wait_delivery(&e, wid, 0, "failed", 2, WAIT_MS);
	json_int_t did = iget(d, "id");
	json_decref(d);
	char path[64], retry[64], test[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)wid);
	snprintf(retry, sizeof retry, "/v1/deliveries/%lld/retry", (long long)did);
	snprintf(test, sizeof test, "/v1/webhooks/%lld/test", (long long)wid);
	struct http_result r;
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":false}", &r);
	expect_status(&r, 200, "switch the webhook off");
	http_result_free(&r);
	/* Switched off, nothing could be sent: a 409 that says so, and nothing happens. */
	const char *const calls[] = { retry, test };
	for (size_t i = 0; i < 2; i++) {
		http_json(&e.p, "POST", calls[i], e.mgr, NULL, &r);
		expect_status(&r, 409, calls[i]);
		ck_assert_str_eq(sget(json_object_get(r.json, "error"), "code"), "conflict");
		const char *why = sget(json_object_get(r.json, "error"), "message");
		ck_assert_msg(why && strstr(why, "switched off"), "%s: %s", calls[i], r.body);
		http_result_free(&r);
	}
	sleep_ms(QUIET_MS);
	d = wait_delivery(&e, wid, did, "failed", 2, WAIT_MS);
	ck_assert_int_eq(iget(d, "attempts"), 2);
	json_decref(d);
	ck_assert_uint_eq(rx_count(rx, "/hooks/off"), 2);
	/* Switched on again, the retry goes out (the receiver answers 200 now). */
	http_json(&e.p, "PATCH", path, e.mgr, "{\"active\":true}", &r);
	expect_status(&r, 200, "switch the webhook on");
	http_result_free(&r);
	http_json(&e.p, "POST", retry, e.mgr, NULL, &r);
	expect_status(&r, 202, "retry");
	http_result_free(&r);
	d = wait_delivery(&e, wid, did, "delivered", 3, WAIT_MS);
	json_decref(d);
	ck_assert_uint_eq(rx_count(rx, "/hooks/off"), 3);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* The test call to a new webhook: its webhook id, and the webhook-id header the receiver got
 * (a copy, malloc'ed). */
static json_int_t test_new_webhook(struct env *e, struct receiver *rx, const char *rx_path, char **ret_msg_id)
{
	json_int_t wid = create_webhook_id(e, rx, rx_path, "\"events\":[\"survey.received\"]");
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/test", (long long)wid);
	/* Counted before the call: the delivery may arrive before its 202 does. */
	size_t before = rx_count(rx, rx_path);
	struct http_result r;
	http_json(&e->p, "POST", path, e->mgr, NULL, &r);
	expect_status(&r, 202, "test call");
	http_result_free(&r);
	ck_assert_uint_eq(rx_wait(rx, rx_path, before + 1, WAIT_MS), before + 1);
	*ret_msg_id = strdup(rx_header(rx_get(rx, rx_path, before), "webhook-id"));
	return wid;
}

/* A receiver deduplicates on webhook-id: a new message must never carry an old one's, also
 * after the webhook that had the newest deliveries was deleted and another one made (as a
 * manager does to change a webhook's secret). Webhook ids are not handed out twice either. */
START_TEST(ids_are_never_used_twice)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	char *first_msg, *second_msg;
	json_int_t first = test_new_webhook(&e, rx, "/hooks/same", &first_msg);
	char path[64];
	snprintf(path, sizeof path, "/v1/webhooks/%lld", (long long)first);
	struct http_result r;
	http_json(&e.p, "DELETE", path, e.mgr, NULL, &r);
	expect_status(&r, 204, "delete");
	http_result_free(&r);
	json_int_t second = test_new_webhook(&e, rx, "/hooks/same", &second_msg);
	ck_assert_msg(second != first, "webhook id %lld was handed out again", (long long)second);
	ck_assert_msg(strcmp(first_msg, second_msg) != 0, "webhook-id %s was used for two messages", first_msg);
	free(first_msg);
	free(second_msg);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

/* A retry of a delivery that is being sent right now would send it twice, and the log
 * would show only one of the two: it is a conflict until that attempt has finished. */
START_TEST(retry_of_a_delivery_in_flight_is_a_conflict)
{
	struct receiver *rx = rx_start();
	struct env e;
	env_start(&e, NULL);
	struct rx_answer slow = { .path = "/hooks/busy", .status = 200, .count = 1, .delay_ms = 2000 };
	rx_push(rx, slow);
	json_int_t wid = create_webhook_id(&e, rx, "/hooks/busy", "\"events\":[\"survey.received\"]");
	post_survey_quiet(&e, "busy-1", "C-1", "claim", 8, NULL);
	ck_assert_uint_eq(rx_wait(rx, "/hooks/busy", 1, WAIT_MS), 1); /* the receiver holds it */
	json_t *d = wait_delivery(&e, wid, 0, "pending", 0, WAIT_MS);
	json_int_t did = iget(d, "id");
	json_decref(d);
	char path[64];
	snprintf(path, sizeof path, "/v1/deliveries/%lld/retry", (long long)did);
	struct http_result r;
	http_json(&e.p, "POST", path, e.mgr, NULL, &r);
	expect_status(&r, 409, "retry while the delivery is being sent");
	http_result_free(&r);
	d = wait_delivery(&e, wid, did, "delivered", 1, WAIT_MS);
	ck_assert_int_eq(iget(d, "attempts"), 1);
	ck_assert_int_eq(json_array_size(json_object_get(d, "attempt_log")), 1);
	json_decref(d);
	sleep_ms(QUIET_MS);
	ck_assert_uint_eq(rx_count(rx, "/hooks/busy"), 1);
	env_end(&e);
	rx_stop(rx);
}
END_TEST

static Suite *webhooks_suite(void)
{
	Suite *s = suite_create("webhooks");
	TCase *tc = tcase_create("webhooks");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, create_list_get_patch_delete);
	tcase_add_test(tc, validation_names_the_field);
	tcase_add_test(tc, a_url_sent_as_null_is_missing);
	tcase_add_test(tc, roles);
	tcase_add_test(tc, standard_format_is_signed_and_enveloped);
	tcase_add_test(tc, retries_503_then_200_with_the_same_id);
	tcase_add_test(tc, odd_answers_do_not_break_the_log);
	tcase_add_test(tc, retry_after_is_honoured_up_to_twice_the_step);
	tcase_add_test(tc, a_retry_after_shorter_than_the_step_does_not_hurry_the_retry);
	tcase_add_test(tc, redirects_are_not_followed);
	tcase_add_test(tc, gone_disables_and_tells_the_others);
	tcase_add_test(tc, disable_after_only_failures_disables_and_tells);
	tcase_add_test(tc, a_failure_after_a_quiet_spell_starts_a_new_spell);
	tcase_add_test(tc, a_full_disk_pauses_deliveries_instead_of_spinning);
	tcase_add_test(tc, loop_silent_when_answers_stop_coming);
	tcase_add_test(tc, loop_silent_waits_for_opening_hours);
	tcase_add_test(tc, loop_nps_drop_per_touchpoint);
	tcase_add_test(tc, digest_fields_are_checked_and_shown);
	tcase_add_test(tc, daily_digest_tells_the_day_once);
	tcase_add_test(tc, a_digest_cuts_a_long_comment_at_a_character);
	tcase_add_test(tc, digests_after_downtime_tell_each_missed_period);
	tcase_add_test(tc, older_digests_name_their_period);
	tcase_add_test(tc, a_receiver_that_hangs_times_out_and_is_retried);
	tcase_add_test(tc, a_2xx_with_a_slow_body_is_delivered_once);
	tcase_add_test(tc, a_receiver_that_never_answers_does_not_hold_up_the_others);
	tcase_add_test(tc, a_deleted_webhook_gets_nothing_more);
	tcase_add_test(tc, retry_of_a_delivery_in_flight_is_a_conflict);
	tcase_add_test(tc, ids_are_never_used_twice);
	tcase_add_test(tc, filters_pick_the_answers);
	tcase_add_test(tc, an_event_no_filter_passes_is_not_kept);
	tcase_add_test(tc, ntfy_shape_with_public_url_and_auth);
	tcase_add_test(tc, slack_shape);
	tcase_add_test(tc, survey_updated_goes_out);
	tcase_add_test(tc, callback_events_in_ntfy);
	tcase_add_test(tc, kill_9_between_commit_and_send_still_delivers);
	tcase_add_test(tc, kill_9_in_the_middle_of_a_send_resends);
	tcase_add_test(tc, ssrf_guard_at_create_time);
	tcase_add_test(tc, ssrf_guard_at_connect_time);
	tcase_add_test(tc, a_reload_that_turns_the_guard_on_holds_for_kept_alive_connections);
	tcase_add_test(tc, ssrf_guard_refuses_the_hosts_own_address);
	tcase_add_test(tc, deliveries_ignore_the_proxy_environment);
	tcase_add_test(tc, the_proxy_key_checks_the_target_before_the_proxy);
	tcase_add_test(tc, test_endpoint_sends_webhook_test);
	tcase_add_test(tc, retry_endpoint_resends_a_failed_delivery);
	tcase_add_test(tc, attempt_log_shows_the_newest_attempts);
	tcase_add_test(tc, test_and_retry_wait_for_a_switched_off_webhook);
	suite_add_tcase(s, tc);
	/* Of its own, so that CK_RUN_CASE=edges runs them alone. */
	TCase *edges = tcase_create("edges");
	tcase_set_timeout(edges, 120);
	tcase_add_test(edges, a_proxys_own_410_does_not_disable_the_webhook);
	tcase_add_test(edges, auth_is_one_header_value_without_controls);
	tcase_add_test(edges, auth_of_blanks_alone_is_refused);
	tcase_add_test(edges, specs_example_webhook_is_made_and_its_auth_goes_out_as_given);
	tcase_add_test(edges, a_url_with_a_c1_control_is_refused);
	suite_add_tcase(s, edges);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(webhooks_suite());
	curl_global_cleanup();
	return status;
}
