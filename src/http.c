#include "npsd/http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "npsd/app.h"
#include "npsd/client_key.h"
#include "npsd/clock.h"
#include "npsd/conn_limit.h"
#include "npsd/deadline.h"
#include "npsd/log.h"

#define MAX_PATH_SEGMENTS 8

/* libmicrohttpd's per-connection pool (default 32 KiB) holds the request line, headers and
 * read buffer, and is cleared for every request on a kept-alive connection; 16 KiB still
 * takes headers far beyond what survey platforms and browsers send. */
#define CONNECTION_MEMORY (16 * 1024)

/* A body past LARGE_BODY takes its share of BODY_BUDGET (its Content-Length, or max_body
 * when chunked) before it is read further, and keeps it until its request ends: a batch in
 * memory (text, parsed tree, results) takes about twelve times its size, and a hundred
 * 380 KB batches at once peaked at 233 MiB without it (README). A body that finds no room
 * waits, its connection suspended (TCP then slows its sender down), for its turn (see struct
 * body_host); one body larger than the whole budget goes when it is alone. Answers one at a
 * time stay far below LARGE_BODY and never touch the lock. */
#define LARGE_BODY (16u << 10)
#define BODY_BUDGET ((size_t)4 << 20)
/* A body holding a share must come at SHARE_RATE: whole within its size at that rate from
 * when it took the share, or SHARE_FLOOR_MS when that is longer, or its connection is cut
 * (the request's own time still cuts it first when that is sooner). A sender that trickled
 * a byte now and then held its share for four connection_timeouts, and four of them held
 * the whole budget while honest batches waited; cut, its share goes to the first waiter,
 * ahead of the sender's next connection. 64 KiB/s is 512 kbit/s: a batch of 1,000 answers
 * (about 400 KB) needs 6 s at that rate. */
#define SHARE_RATE ((uint64_t)64 << 10)
#define SHARE_FLOOR_MS 10000
/* How long no large body must have been in flight before a burst of them counts as over. */
#define BURST_QUIET_MS 5000
#define STORAGE_FAILURE_LOG_MS 60000

/*
 * A client (an IPv4 address, an IPv6 /64: see client_key) with large bodies holding shares
 * of BODY_BUDGET or waiting for them. A share that frees up goes to a body of the waiting
 * client that holds the fewest shares now: in arrival order within one client, and among
 * clients holding as many, to the one whose first body came first. In one queue in arrival
 * order, one host (or a platform retrying in a loop) with hundreds of connections queued
 * held the budget in its turn, each body for up to its SHARE_RATE time, and honest senders
 * from other addresses waited for minutes behind it; now they wait for the next share that
 * frees up. Behind a reverse proxy every body comes from one address: one queue in arrival
 * order, as before. Walking the clients costs a large body a step per client with a large
 * body in flight; answers below LARGE_BODY never come here.
 */
struct body_host {
	struct in6_addr addr;              /* its client_key(): one host, one entry */
	unsigned held;                     /* shares its bodies hold */
	struct http_request *first, *last; /* its bodies waiting, in arrival order */
	struct body_host *next;            /* in http_server.hosts */
};

struct http_server {
	struct MHD_Daemon *daemon;
	const struct route *routes;
	struct npsd_app *app;
	uint16_t port;
	int64_t request_time_max_ms;        /* see REQUEST_TIME_FACTOR */
	struct deadlines *deadlines;        /* cuts connections whose request takes longer */
	struct conn_limit *conn_limit;      /* connections per client: see PER_CLIENT_CONNECTIONS */
	atomic_uint_fast64_t conns_refused; /* connections closed at once: their client held its share */
	atomic_bool stopping;
	atomic_uint in_flight;
	bool started;          /* MHD_start_daemon returned: from then on its logs are about requests */
	char start_error[512]; /* libmicrohttpd's first message while starting (as long as a log line) */
	/* Past their body and not yet replied to: in a handler or waiting for storage. Once
	 * closing is set no more join them (http_finish_handling). */
	atomic_uint handling;
	atomic_bool closing;
	/* see struct http_stage_stats */
	atomic_uint_fast64_t resumed, resume_ns, sent, send_ns;
	atomic_uint_fast64_t answered[HTTP_STATUS_MAX + 1]; /* answers queued, by status code */
	pthread_mutex_t budget_lock;
	size_t budget_held, budget_held_peak; /* bytes of BODY_BUDGET taken, now and at most */
	bool burst;                /* a large body was taken since http_burst_over() said so last */
	int64_t budget_emptied_ms; /* when budget_held last fell to 0 */
	/* Addresses with large bodies in flight, malloc'ed; bodies whose address is unknown, or
	 * had no memory for an entry, count against unknown_host, never freed. */
	struct body_host *hosts, unknown_host;
	uint64_t arrivals;                 /* large bodies so far: their order across addresses */
	atomic_uint_fast64_t budget_waits; /* bodies that had to wait, since start */
	atomic_uint_fast64_t dropped;      /* see http_drop() */
	/* Per route, and one more for requests no route took (404, 405): see http_latency_each. */
	size_t nroutes;
	struct route_latency {
		atomic_uint_fast64_t buckets[HTTP_LATENCY_BUCKETS]; /* each its own range, not cumulative */
		atomic_uint_fast64_t count, sum_ns;
	} * latency;
};

const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

enum request_phase {
	PHASE_BODY,      /* reading the body */
	PHASE_SUSPENDED, /* waiting for the writer */
	PHASE_REPLIED,   /* a reply is queued or ready */
};

/* What npsd keeps of a connection, from its start to its close (socket_context). */
struct connection {
	struct deadline_watch *watch; /* NULL: unwatched (no memory), bound by the idle timeout */
	struct in6_addr key;          /* its client (client_key) */
	bool counted;                 /* in srv->conn_limit under key */
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const struct route *route;
	enum request_phase phase;
	struct principal principal;
	int64_t path_id;

	char *body;
	size_t body_len, body_cap;
	size_t max_body; /* server.max_body when the request began */
	bool body_too_large;
	uint64_t received;                /* body bytes seen, kept or dropped */
	size_t budget;                    /* its share of BODY_BUDGET, taken or waited for; 0 = none */
	int64_t share_ms;                 /* how long it may hold the share (see SHARE_RATE) */
	bool budget_waiting;              /* suspended until budget is free */
	struct http_request *next_waiter; /* in its host's queue */
	struct body_host *host;           /* whose shares it counts in, while budget is set */
	uint64_t arrival;                 /* when it asked for its share, in srv->arrivals */
	struct deadline_watch *watch;     /* the connection's (see on_connection); NULL: none */
	json_t *json;

	void (*resumed)(struct http_request *req);
	void *state;
	void (*state_free)(void *state);

	/* the reply, built by http_reply_*() and queued by the access handler */
	bool has_reply;
	unsigned status;
	char *reply_body;
	size_t reply_len;
	char allow[64];           /* methods for a 405; "" when none */
	const char *content_type; /* NULL = application/json */
	int retry_after;          /* seconds for a 429/503; 0 = none */
	bool dropped;             /* http_drop(): close, no answer */
	bool close_after;         /* shutting down: no keep-alive */
	int64_t begun_ns;         /* when its request line arrived */
	int64_t resumed_ns;       /* when storage answered a suspended request; 0 = never suspended */
	int64_t replied_ns;       /* when such a request's reply was queued */
	bool handling;            /* counted in srv->handling */
	bool started;             /* the access handler has seen it */
	bool path_unroutable;     /* the raw path holds %00 or %2F (see on_uri) */

	/* an asset's reply (http_reply_asset) */
	bool reply_borrowed;              /* reply_body is static: never freed */
	const char *const *extra_headers; /* static name, value pairs ending in NULL; or NULL */
};

/* ---------- replies ---------- */

/* body is malloc'ed and stolen, or, when borrowed, static and never freed. */
static void set_reply_body(struct http_request *req, unsigned status, char *body, size_t len, bool borrowed)
{
	if (req->has_reply) {
		/* A handler bug: keep the first reply, drop this one. */
		log_error("http: second reply (%u) for one request ignored", status);
		if (!borrowed)
			free(body);
		return;
	}
	req->has_reply = true;
	req->status = status;
	req->reply_body = body;
	req->reply_len = len;
	req->reply_borrowed = borrowed;
}

static void set_reply(struct http_request *req, unsigned status, char *body, size_t len)
{
	set_reply_body(req, status, body, len, false);
}

/* Most answers are small: dumped into a stack buffer and copied once, instead of
 * json_dumps growing its buffer from 16 bytes. Returns NULL when out of memory. */
static char *dump_json(json_t *body, size_t *ret_len)
{
	/* 15 significant digits: a figure rounded to 81.3 reads 81.3, not 81.299999999999997. */
	const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
	char small[1024];
	size_t len = json_dumpb(body, small, sizeof small, flags);
	if (len == 0 || len > sizeof small) {
		char *text = json_dumps(body, flags);
		*ret_len = text ? strlen(text) : 0;
		return text;
	}
	char *text = malloc(len + 1);
	if (text) {
		memcpy(text, small, len);
		text[len] = '\0';
	}
	*ret_len = len;
	return text;
}

void http_reply_json(struct http_request *req, unsigned status, json_t *body)
{
	size_t len;
	char *text = dump_json(body, &len);
	json_decref(body);
	if (!text) {
		static const char oom[] =
		        "{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";
		req->retry_after = 1;
		set_reply(req, 503, strdup(oom), sizeof oom - 1);
		return;
	}
	set_reply(req, status, text, len);
}

void http_reply_text(struct http_request *req, unsigned status, const char *content_type, char *body)
{
	req->content_type = content_type;
	set_reply(req, status, body, body ? strlen(body) : 0);
}

void http_reply_asset(struct http_request *req, unsigned status, const char *content_type, const void *body,
                      size_t len, const char *const *headers)
{
	if (!req->has_reply) {
		req->content_type = content_type;
		req->extra_headers = headers;
	}
	set_reply_body(req, status, (char *)(uintptr_t)body, len, true);
}

void http_reply_empty(struct http_request *req, unsigned status)
{
	set_reply(req, status, NULL, 0);
}

json_t *http_error_object(const char *code, const char *field, const char *message)
{
	/* Always the three members, field null when the error is about no field in particular
	 * ("" names none either): clients read one shape. */
	json_t *named = field && *field ? json_string(field) : NULL; /* NULL too if not UTF-8 */
	return json_pack("{s:s, s:s, s:o}", "code", code, "message", message, "field",
	                 named ? named : json_null());
}

static void reply_error_text(struct http_request *req, unsigned status, const char *code, const char *field,
                             const char *message)
{
	json_t *body = json_object();
	json_object_set_new(body, "error", http_error_object(code, field, message));
	http_reply_json(req, status, body);
}

void http_reply_error(struct http_request *req, unsigned status, const char *code, const char *field,
                      const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	/* A message may quote the client (a method, a value) or be cut short mid-character:
	 * jansson refuses what is not UTF-8, and the error body must never come out empty. */
	utf8_scrub(message, strlen(message));
	reply_error_text(req, status, code, field, message);
}

/* 503 with Retry-After; close: no keep-alive either, the server is going away. */
static void reply_shutting_down(struct http_request *req, bool close)
{
	req->close_after = close;
	req->retry_after = 5;
	http_reply_error(req, 503, "unavailable", NULL, "npsd is shutting down; retry shortly");
}

void http_reply_field_error(struct http_request *req, const struct field_error *err)
{
	reply_error_text(req, 400, err->code, err->field, err->message);
}

/* A request that storage failed (a read as well as a write: a damaged page fails only
 * the queries that reach it) is logged, at most one line a minute with how many failed
 * since the last: ops must hear of it, and not a thousand times a second. */
static void storage_failure_told(struct http_request *req, int err)
{
	static _Atomic int64_t told_ms;
	static atomic_uint untold;
	int64_t now = clock_mono_ms(), last = atomic_load(&told_ms);
	if ((last && now - last < STORAGE_FAILURE_LOG_MS) ||
	    !atomic_compare_exchange_strong(&told_ms, &last, now)) {
		atomic_fetch_add(&untold, 1);
		return;
	}
	char more[64] = "";
	unsigned before = atomic_exchange(&untold, 0);
	if (before)
		snprintf(more, sizeof more, " (and %u requests since the last such line)", before);
	log_error("storage failed answering %s: %s%s", req->route ? req->route->pattern : "a request",
	          err == -EUCLEAN ? "the database file is damaged; stop npsd, keep a copy of its files and "
	                            "restore the last backup"
	                          : strerror(-err),
	          more);
}

void http_reply_storage_error(struct http_request *req, int err)
{
	switch (err) {
	case -ENOENT:
		http_reply_error(req, 404, "not_found", NULL, "no such object");
		return;
	case -EEXIST:
		http_reply_error(req, 409, "conflict", NULL, "the change conflicts with stored data");
		return;
	case -ESHUTDOWN:
		reply_shutting_down(req, false);
		return;
	case -ENOSPC:
		req->retry_after = 60;
		http_reply_error(req, 503, "unavailable", NULL, "storage is full; nothing was written");
		return;
	case -ECONNABORTED:
		/* What a client that closed its connection gets, should it read it after all. */
		req->retry_after = 1;
		http_reply_error(req, 503, "unavailable", NULL,
		                 "the connection closed before the read began; nothing was read");
		return;
	case -ENOTRECOVERABLE:
		req->retry_after = 5;
		http_reply_error(req, 503, "unavailable", NULL,
		                 "storage failed while making this durable: it may or may not be stored "
		                 "(a survey sent again with its response_id is a safe retry)");
		return;
	case -EBUSY:
		req->retry_after = 1;
		http_reply_error(req, 503, "unavailable", NULL, "storage is busy; nothing was written");
		return;
	default:
		storage_failure_told(req, err);
		req->retry_after = 1;
		http_reply_error(req, 503, "unavailable", NULL, "storage failed; nothing was written");
		return;
	}
}

void http_reply_unavailable(struct http_request *req, unsigned retry_s, const char *message)
{
	req->retry_after = retry_s ? (int)retry_s : 1;
	http_reply_error(req, 503, "unavailable", NULL, "%s", message);
}

void http_reply_rate_limited(struct http_request *req, unsigned retry_s, const char *fmt, ...)
{
	char message[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	req->retry_after = retry_s ? (int)retry_s : 1;
	http_reply_error(req, 429, "rate_limited", NULL, "%s", message);
}

/* ---------- accessors ---------- */

struct npsd_app *http_app(struct http_request *req)
{
	return req->srv->app;
}

const struct principal *http_principal(struct http_request *req)
{
	return &req->principal;
}

int64_t http_path_id(struct http_request *req)
{
	return req->path_id;
}

const char *http_query(struct http_request *req, const char *key)
{
	const char *value = NULL;
	if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value, NULL) !=
	    MHD_YES)
		return NULL;
	/* An empty value ("?touchpoint=", or "?touchpoint" alone) is no filter: SPEC writes its
	 * lists so (GET /v1/surveys?touchpoint=&customer_id=&…), and a form or a query
	 * builder sends its blank fields so. */
	return value && *value ? value : NULL;
}

json_t *http_json(struct http_request *req)
{
	return req->json;
}

void http_set_state(struct http_request *req, void *state, void (*free_fn)(void *state))
{
	req->state = state;
	req->state_free = free_fn;
}

void *http_state(struct http_request *req)
{
	return req->state;
}

void http_suspend(struct http_request *req, void (*resumed)(struct http_request *req))
{
	req->resumed = resumed;
	req->phase = PHASE_SUSPENDED;
	MHD_suspend_connection(req->conn);
}

void http_stage_stats(struct http_request *req, struct http_stage_stats *ret)
{
	struct http_server *srv = req->srv;
	*ret = (struct http_stage_stats){
		.resumed = atomic_load(&srv->resumed),
		.resume_ns = atomic_load(&srv->resume_ns),
		.sent = atomic_load(&srv->sent),
		.send_ns = atomic_load(&srv->send_ns),
		.cut = deadlines_cut(srv->deadlines),
		.body_waits = atomic_load(&srv->budget_waits),
		.dropped = atomic_load(&srv->dropped),
		.refused = atomic_load(&srv->conns_refused),
	};
	pthread_mutex_lock(&srv->budget_lock);
	ret->body_bytes = srv->budget_held;
	ret->body_bytes_peak = srv->budget_held_peak;
	pthread_mutex_unlock(&srv->budget_lock);
}

void http_status_each(struct http_request *req, void (*fn)(unsigned status, uint64_t count, void *arg),
                      void *arg)
{
	for (unsigned status = 100; status <= HTTP_STATUS_MAX; status++) {
		uint64_t n = atomic_load(&req->srv->answered[status]);
		if (n)
			fn(status, n, arg);
	}
}

void http_resume(struct http_request *req)
{
	req->resumed_ns = clock_mono_ns();
	MHD_resume_connection(req->conn);
}

bool http_client_closed(struct http_request *req)
{
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info)
		return false;
	/* The kernel's word on the FIN, not a peek at the bytes: over HTTPS a client that leaves
	 * sends its close_notify before the FIN, and a peek sees that record's first byte, as
	 * it would a pipelined request, and took the connection for open. Nothing is read:
	 * what waits stays for MHD (or gnutls). */
	struct pollfd pfd = { .fd = info->connect_fd, .events = POLLRDHUP };
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void http_drop(struct http_request *req)
{
	req->dropped = true;
	atomic_fetch_add(&req->srv->dropped, 1);
}

int http_query_int(struct http_request *req, const char *key, int64_t min, int64_t max, int64_t *value)
{
	const char *text = http_query(req, key);
	if (!text)
		return 0;
	int64_t v;
	const char *end;
	if (parse_decimal(text, min < 0, &v, &end) < 0 || *end || v < min || v > max) {
		http_reply_error(req, 400, "invalid_field", key, "%s must be an integer from %lld to %lld",
		                 key, (long long)min, (long long)max);
		return -1;
	}
	*value = v;
	return 0;
}

int http_query_time(struct http_request *req, const char *key, int64_t *value)
{
	const char *text = http_query(req, key);
	if (!text)
		return 0;
	if (time_parse_rfc3339(text, value) < 0) {
		http_reply_error(req, 400, "invalid_field", key,
		                 "%s must be an RFC 3339 time such as 2026-11-22T10:15:00Z", key);
		return -1;
	}
	return 0;
}

int http_query_token(struct http_request *req, const char *key, const char **value)
{
	const char *text = http_query(req, key);
	if (!text)
		return 0;
	if (!valid_token_name(text)) {
		http_reply_error(req, 400, "invalid_field", key, "%s must match [a-z0-9_.-]{1,64}", key);
		return -1;
	}
	*value = text;
	return 0;
}

int http_query_name(struct http_request *req, const char *key, size_t max_chars, const char **value)
{
	const char *text = http_query(req, key);
	if (!text)
		return 0;
	if (!valid_name(text, max_chars)) {
		http_reply_error(req, 400, "invalid_field", key,
		                 "%s must be 1 to %zu characters of UTF-8 without control characters", key,
		                 max_chars);
		return -1;
	}
	*value = text;
	return 0;
}

/* ---------- routing ---------- */

static unsigned method_bit(const char *method)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		/* HEAD is a GET whose body MHD leaves out. */
		{ "GET", HTTP_GET }, { "HEAD", HTTP_GET },    { "POST", HTTP_POST },
		{ "PUT", HTTP_PUT }, { "PATCH", HTTP_PATCH }, { "DELETE", HTTP_DELETE },
	};
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(method, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

/* Matches path against pattern; ":id" takes a positive integer into *ret_id. */
static bool path_matches(const char *pattern, const char *path, int64_t *ret_id)
{
	int64_t id = 0;
	while (*pattern && *path) {
		if (pattern[0] == ':') {
			const char *seg_end = strchr(path, '/');
			size_t len = seg_end ? (size_t)(seg_end - path) : strlen(path);
			if (len == 0 || len > 18 || path[0] == '0')
				return false;
			id = 0;
			for (size_t i = 0; i < len; i++) {
				if (path[i] < '0' || path[i] > '9')
					return false;
				id = id * 10 + (path[i] - '0');
			}
			path += len;
			pattern = strchr(pattern, '/');
			if (!pattern)
				pattern = "";
			continue;
		}
		if (*pattern != *path)
			return false;
		pattern++;
		path++;
	}
	if (*pattern || *path)
		return false;
	*ret_id = id;
	return true;
}

/* Finds the route; for a path known under other methods fills allow and returns NULL. */
static const struct route *route_find(const struct route *routes, unsigned method, const char *path,
                                      int64_t *ret_id, char *allow, size_t allow_size)
{
	unsigned allowed = 0;
	for (const struct route *r = routes; r->pattern; r++) {
		int64_t id;
		if (!path_matches(r->pattern, path, &id))
			continue;
		if (method && (r->method & method)) {
			*ret_id = id;
			return r;
		}
		allowed |= r->method;
	}
	allow[0] = '\0';
	static const char *const names[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
	size_t off = 0;
	for (unsigned i = 0; i < 5; i++) {
		if (!(allowed & (1u << i)))
			continue;
		int n = snprintf(allow + off, allow_size - off, "%s%s", off ? ", " : "", names[i]);
		if (n < 0 || (size_t)n >= allow_size - off)
			break;
		off += (size_t)n;
	}
	return NULL;
}

/* ---------- the MHD side ---------- */

static enum MHD_Result queue_reply(struct http_request *req)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	        req->reply_len, req->reply_body,
	        req->reply_borrowed ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	req->reply_body = NULL; /* the response owns it now */
	/* An asset's headers are its safety (the console's CSP): none missing, or no answer. */
	for (const char *const *h = req->extra_headers; h && h[0]; h += 2) {
		if (MHD_add_response_header(resp, h[0], h[1]) != MHD_YES) {
			MHD_destroy_response(resp);
			return MHD_NO;
		}
	}
	if (req->reply_len)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        req->content_type ? req->content_type : "application/json");
	if (req->allow[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->allow);
	if (req->close_after || atomic_load(&req->srv->stopping))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (req->retry_after > 0) {
		char secs[16];
		snprintf(secs, sizeof secs, "%d", req->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
	}
	if (req->resumed_ns)
		req->replied_ns = clock_mono_ns();
	atomic_fetch_add(&req->srv->answered[req->status <= HTTP_STATUS_MAX ? req->status : 0], 1);
	enum MHD_Result ret = MHD_queue_response(req->conn, req->status, resp);
	MHD_destroy_response(resp);
	req->phase = PHASE_REPLIED;
	return ret;
}

static bool is_utf8_charset(const char *value, size_t len)
{
	if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
		value++;
		len -= 2;
	}
	return (len == 5 && strncasecmp(value, "utf-8", 5) == 0) ||
	       (len == 4 && strncasecmp(value, "utf8", 4) == 0);
}

/* application/json in any case, with parameters after a ';' (RFC 9110: spaces or tabs
 * around it); a charset other than UTF-8 is refused, as SPEC's bodies are UTF-8. */
static bool is_json_type(const char *type)
{
	static const char blank[] = " \t";
	if (!type)
		return false;
	type += strspn(type, blank);
	static const char want[] = "application/json";
	if (strncasecmp(type, want, sizeof want - 1) != 0)
		return false;
	const char *p = type + sizeof want - 1;
	p += strspn(p, blank);
	while (*p == ';') {
		p++;
		p += strspn(p, blank);
		size_t len = strcspn(p, ";");
		static const char charset[] = "charset=";
		if (strncasecmp(p, charset, sizeof charset - 1) == 0) {
			const char *value = p + sizeof charset - 1;
			size_t value_len = len - (sizeof charset - 1);
			while (value_len > 0 && strchr(blank, value[value_len - 1]))
				value_len--;
			if (!is_utf8_charset(value, value_len))
				return false;
		}
		p += len;
	}
	return *p == '\0';
}

/* No Content-Encoding, or identity: npsd reads bodies as they are. */
static bool is_plain_encoding(const char *encoding)
{
	if (!encoding)
		return true;
	encoding += strspn(encoding, " \t");
	size_t len = strcspn(encoding, " \t");
	return (len == 0 || (len == 8 && strncasecmp(encoding, "identity", 8) == 0)) &&
	       encoding[len + strspn(encoding + len, " \t")] == '\0';
}

/* The query parameters of a request against what its route takes. */
struct query_check {
	const char *takes; /* the route's names, space-separated; NULL: any name (only NULs checked) */
	unsigned seen;     /* bit i: the i-th name in takes has come */
	const char *bad_key;
	enum { QUERY_NUL, QUERY_UNKNOWN, QUERY_TWICE } problem;
};

/* The place of key among the space-separated names, or -1. */
static int query_name_index(const char *names, const char *key, size_t key_size)
{
	int i = 0;
	for (const char *p = names; *p; i++) {
		size_t len = strcspn(p, " ");
		if (len == key_size && memcmp(p, key, len) == 0)
			return i;
		p += len + (p[len] == ' ');
	}
	return -1;
}

/* A parameter with a NUL in its name or value (MHD hands values out as C strings, so
 * "customer_id=a%00zzz" would reach a handler as "a"), one the call does not take (a typo
 * such as "customer=" would otherwise list everything), or one given twice (only the first
 * would count, the second unread). */
static enum MHD_Result check_query_param(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                         const char *value, size_t value_size)
{
	(void)kind;
	struct query_check *q = cls;
	bool whole = strlen(key) == key_size && (!value || strlen(value) == value_size);
	if ((whole && !q->takes) || (key_size == 0 && !value))
		return MHD_YES; /* a probe's parameter, or an empty segment ("?&limit=5") */
	int i = whole ? query_name_index(q->takes, key, key_size) : -2;
	if (i >= 0 && !(q->seen & (1u << i))) {
		q->seen |= 1u << i;
		return MHD_YES;
	}
	q->bad_key = key;
	q->problem = i == -2 ? QUERY_NUL : i == -1 ? QUERY_UNKNOWN : QUERY_TWICE;
	return MHD_NO;
}

static void reply_query_problem(struct http_request *req, const struct query_check *q)
{
	const char *key = q->bad_key;
	/* The name is the client's: a field must be UTF-8 to go out in JSON. */
	const char *field = valid_name(key, 128) ? key : NULL;
	if (q->problem == QUERY_NUL)
		http_reply_error(req, 400, "invalid_field", field, "%s must not contain a NUL (%%00)", key);
	else if (q->problem == QUERY_TWICE)
		http_reply_error(req, 400, "invalid_field", field, "%s is given twice", key);
	else if (*q->takes)
		http_reply_error(req, 400, "invalid_field", field,
		                 "unknown query parameter %s: this call takes %s", key, q->takes);
	else
		http_reply_error(req, 400, "invalid_field", field,
		                 "unknown query parameter %s: this call takes none", key);
}

/* One header's copies in a request: libmicrohttpd's lookup gives the first alone. With
 * accept, also whether it refuses any copy: copies that it takes all mean the same to npsd
 * whichever one a proxy goes by, however they are spelled (case, blanks, a charset). */
struct header_copies {
	const char *name;
	bool (*accept)(const char *value); /* NULL: none judged */
	unsigned count;
	const char *first;
	bool differ;
	bool refused; /* accept refused a copy */
};

/* The headers start_request judges by every copy, gathered in one walk of the request's. */
struct judged_headers {
	struct header_copies length, coding, authz, type, encoding;
};

static enum MHD_Result count_copies(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct judged_headers *j = cls;
	struct header_copies *all[] = { &j->length, &j->coding, &j->authz, &j->type, &j->encoding };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		struct header_copies *h = all[i];
		if (strcasecmp(key, h->name) != 0)
			continue;
		if (h->count++ == 0)
			h->first = value;
		else if (strcmp(h->first, value) != 0)
			h->differ = true;
		if (h->accept && !h->accept(value))
			h->refused = true;
		break;
	}
	return MHD_YES;
}

static void judged_headers(struct http_request *req, struct judged_headers *ret)
{
	*ret = (struct judged_headers){
		.length = { .name = MHD_HTTP_HEADER_CONTENT_LENGTH },
		.coding = { .name = MHD_HTTP_HEADER_TRANSFER_ENCODING },
		.authz = { .name = MHD_HTTP_HEADER_AUTHORIZATION },
		.type = { .name = MHD_HTTP_HEADER_CONTENT_TYPE, .accept = is_json_type },
		.encoding = { .name = MHD_HTTP_HEADER_CONTENT_ENCODING, .accept = is_plain_encoding },
	};
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_copies, ret);
}

/*
 * A body whose end libmicrohttpd and a proxy in front of npsd could place differently, or
 * that libmicrohttpd cannot find at all, refused with the connection closed (RFC 9112, 6.1
 * and 6.3): two Content-Lengths that differ (libmicrohttpd takes the first, a proxy may
 * take the other: request smuggling), Content-Length beside Transfer-Encoding, a
 * transfer coding other than chunked (libmicrohttpd would read to the connection's end),
 * and Transfer-Encoding twice (libmicrohttpd reads the first alone, a proxy joins them
 * into one list, "chunked, gzip", whose last coding is not chunked).
 * True when it replied.
 */
static bool refuse_unclear_framing(struct http_request *req, const struct judged_headers *j)
{
	const struct header_copies *lengths = &j->length, *codings = &j->coding;
	const char *coding = codings->first;
	if (lengths->differ)
		http_reply_error(req, 400, "invalid_field", NULL,
		                 "the request has Content-Length headers that differ");
	else if (coding && lengths->count)
		http_reply_error(req, 400, "invalid_field", NULL,
		                 "the request has both Content-Length and Transfer-Encoding");
	else if (codings->count > 1)
		http_reply_error(req, 400, "invalid_field", NULL,
		                 "the request has more than one Transfer-Encoding header");
	else if (coding && strcasecmp(coding, "chunked") != 0)
		http_reply_error(
		        req, 415, "unsupported_media_type", NULL,
		        "the body must be sent as it is or chunked, without another Transfer-Encoding");
	else
		return false;
	req->close_after = true;
	return true;
}

/* Whether the request is for a route that stays open while npsd drains (liveness). */
static bool answered_while_draining(const struct http_request *req, const char *url, const char *method)
{
	int64_t id;
	char allow[sizeof req->allow];
	const struct route *route = req->path_unroutable ? NULL
	                                                 : route_find(req->srv->routes, method_bit(method),
	                                                              url, &id, allow, sizeof allow);
	return route && route->while_draining;
}

/* Everything decided before the body arrives: route, token, role, declared size and type. */
static void start_request(struct http_request *req, const char *url, const char *method)
{
	struct http_server *srv = req->srv;
	req->max_body = app_config(srv->app)->max_body;
	if (atomic_load(&srv->stopping) && !answered_while_draining(req, url, method)) {
		/* Draining: a keep-alive connection must not start new work, or the drain never
		 * ends and MHD would stop with a connection still suspended. */
		reply_shutting_down(req, true);
		return;
	}
	struct judged_headers headers;
	judged_headers(req, &headers);
	if (refuse_unclear_framing(req, &headers))
		return;
	unsigned bit = method_bit(method);
	/* An unknown method (OPTIONS, TRACE ...) still learns which ones the path takes. */
	req->route = req->path_unroutable ? NULL
	                                  : route_find(srv->routes, bit, url, &req->path_id, req->allow,
	                                               sizeof req->allow);
	if (!req->route) {
		if (req->allow[0]) {
			http_reply_error(req, 405, "method_not_allowed", NULL,
			                 "%s is not allowed here; use %s", method, req->allow);
		} else {
			http_reply_error(req, 404, "not_found", NULL, "no such path");
		}
		return;
	}
	if (req->route->roles) {
		/* Two that differ leave the caller to a guess: libmicrohttpd's lookup gives the
		 * first, a proxy or a server behind one may go by the last. */
		if (headers.authz.differ) {
			http_reply_error(req, 400, "invalid_field", "authorization",
			                 "the request has Authorization headers that differ; send one");
			return;
		}
		const char *authz = headers.authz.first;
		const char *token = NULL;
		/* Blanks after the value are not part of it (RFC 9110, 5.5), but libmicrohttpd
		 * 0.9.75 keeps them: a client that sent "Bearer TOKEN " had its valid token
		 * refused. One too long to look up is left as it is, refused all the same. */
		char trimmed[AUTH_TOKEN_MAX + 1];
		if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
			token = authz + 7;
			while (*token == ' ')
				token++;
			size_t len = strlen(token);
			while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
				len--;
			if (len <= AUTH_TOKEN_MAX && token[len] != '\0') {
				memcpy(trimmed, token, len);
				trimmed[len] = '\0';
				token = trimmed;
			}
		}
		int denied = token && *token ? auth_check(srv->app->auth, token, &req->principal) : -EACCES;
		if (denied == -EACCES) {
			http_reply_error(req, 401, "unauthorized", NULL,
			                 token ? "unknown or revoked token"
			                       : "an Authorization: Bearer token is required");
			return;
		}
		if (denied < 0) { /* the keys could not be read */
			http_reply_storage_error(req, -EIO);
			return;
		}
		if (!(req->principal.role & (req->route->roles | ROLE_ADMIN))) {
			http_reply_error(req, 403, "forbidden", NULL, "the %s role may not do this",
			                 role_name(req->principal.role));
			return;
		}
		int wait = srv->app->ratelimit ? ratelimit_take(srv->app->ratelimit, req->principal.key_id,
		                                                clock_mono_ms())
		                               : 0;
		if (wait > 0) {
			http_reply_rate_limited(
			        req, (unsigned)wait,
			        "more than server.rate_limit requests a second for this key; retry in %d s",
			        wait);
			return;
		}
	}
	/* The public probes take any names their callers add (a load balancer's marker). */
	struct query_check query = { .takes = !req->route->roles  ? NULL
		                              : req->route->query ? req->route->query
		                                                  : "" };
	MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, check_query_param, &query);
	if (query.bad_key) {
		reply_query_problem(req, &query);
		return;
	}
	const char *length = headers.length.first;
	if (length && strtoull(length, NULL, 10) > req->max_body) {
		http_reply_error(req, 413, "payload_too_large", NULL, "the body is larger than %zu bytes",
		                 req->max_body);
		return;
	}
	bool has_body = (length && strtoull(length, NULL, 10) > 0) || headers.coding.first;
	if (!has_body)
		return;
	/* Every copy is judged: libmicrohttpd's lookup gives the first, a proxy may go by the
	 * last, and only when each says JSON is the body's type no guess. */
	const struct header_copies *types = &headers.type;
	if (types->count == 0 || types->refused) {
		http_reply_error(req, 415, "unsupported_media_type", "content-type",
		                 types->differ
		                         ? "the request has Content-Type headers that differ; send one: "
		                           "application/json (UTF-8)"
		                         : "the body must be sent as Content-Type: application/json (UTF-8)");
		return;
	}
	if (headers.encoding.refused) {
		http_reply_error(req, 415, "unsupported_media_type", "content-encoding",
		                 "the body must be sent without a Content-Encoding");
		return;
	}
}

static void take_body(struct http_request *req, const char *data, size_t size)
{
	if (req->body_too_large)
		return;
	if (req->body_len + size > req->max_body) {
		/* Chunked bodies have no length up front: drop what came, keep reading to the
		 * end without storing it, then answer 413. */
		req->body_too_large = true;
		free(req->body);
		req->body = NULL;
		req->body_len = req->body_cap = 0;
		return;
	}
	if (req->body_len + size > req->body_cap) {
		/* Most bodies arrive whole in one piece: start at their size (a small-bin
		 * allocation, which does not make glibc consolidate its fast bins), then double. */
		size_t cap = req->body_cap ? req->body_cap : (size < 256 ? 256 : size);
		while (cap < req->body_len + size)
			cap *= 2;
		if (cap > req->max_body)
			cap = req->max_body;
		char *body = realloc(req->body, cap);
		if (!body) {
			req->body_too_large = true; /* treated as too large: we cannot hold it */
			return;
		}
		req->body = body;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, size);
	req->body_len += size;
}

/* ---------- the budget of large bodies (see BODY_BUDGET) ---------- */

/* The turn key of the connection's client (see client_key): false when libmicrohttpd has no
 * address for it. */
static bool connection_key(struct MHD_Connection *conn, struct in6_addr *ret)
{
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return client_key(info ? info->client_addr : NULL, ret);
}

/* Called with budget_lock held. The entry of addr (NULL: unknown), made when it has none;
 * srv->unknown_host when out of memory: those bodies share one turn, never fail. */
static struct body_host *body_host_of(struct http_server *srv, const struct in6_addr *addr)
{
	if (!addr)
		return &srv->unknown_host;
	for (struct body_host *h = srv->hosts; h; h = h->next)
		if (memcmp(&h->addr, addr, sizeof *addr) == 0)
			return h;
	struct body_host *h = calloc(1, sizeof *h);
	if (!h)
		return &srv->unknown_host;
	h->addr = *addr;
	h->next = srv->hosts;
	srv->hosts = h;
	return h;
}

/* Called with budget_lock held. Frees h once no body of it holds a share or waits. */
static void body_host_release(struct http_server *srv, struct body_host *h)
{
	if (h == &srv->unknown_host || h->held || h->first)
		return;
	struct body_host **p = &srv->hosts;
	while (*p != h)
		p = &(*p)->next;
	*p = h->next;
	free(h);
}

/* Called with budget_lock held. The body a share that frees up goes to (see struct
 * body_host), or NULL when none waits. */
static struct http_request *budget_next(struct http_server *srv)
{
	struct body_host *best = srv->unknown_host.first ? &srv->unknown_host : NULL;
	for (struct body_host *h = srv->hosts; h; h = h->next)
		if (h->first && (!best || h->held < best->held ||
		                 (h->held == best->held && h->first->arrival < best->first->arrival)))
			best = h;
	return best ? best->first : NULL;
}

/* Called with budget_lock held. */
static bool budget_fits(const struct http_server *srv, size_t bytes)
{
	return srv->budget_held == 0 || srv->budget_held + bytes <= BODY_BUDGET;
}

/* Called with budget_lock held: req's share is taken, counted against its host. */
static void budget_add(struct http_server *srv, struct http_request *req)
{
	srv->budget_held += req->budget;
	req->host->held++;
	srv->burst = true;
	if (srv->budget_held > srv->budget_held_peak)
		srv->budget_held_peak = srv->budget_held;
}

/* Called with budget_lock held: req joins the end of its host's queue. */
static void budget_queue(struct http_request *req)
{
	struct body_host *h = req->host;
	req->budget_waiting = true;
	req->next_waiter = NULL;
	if (h->last)
		h->last->next_waiter = req;
	else
		h->first = req;
	h->last = req;
}

/* Called with budget_lock held: req leaves its host's queue, wherever it is in it. */
static void budget_unqueue(struct http_request *req)
{
	struct body_host *h = req->host;
	struct http_request **p = &h->first, *prev = NULL;
	while (*p != req) {
		prev = *p;
		p = &(*p)->next_waiter;
	}
	*p = req->next_waiter;
	if (h->last == req)
		h->last = prev;
	req->next_waiter = NULL;
	req->budget_waiting = false;
}

/* Called with budget_lock held. Wakes waiters in their turn while the next one fits; all of
 * them once the server is closing, as libmicrohttpd cannot stop with a connection
 * suspended (the stop cuts them, or they get the 503 of a request that ends then). */
static void budget_wake_waiters(struct http_server *srv)
{
	struct http_request *w;
	while ((w = budget_next(srv)) && (budget_fits(srv, w->budget) || atomic_load(&srv->closing))) {
		budget_unqueue(w);
		budget_add(srv, w);
		/* The wait was npsd's: the client's time for the rest of its body starts now. */
		deadline_set(w->watch, clock_mono_ms() + (w->share_ms < srv->request_time_max_ms
		                                                  ? w->share_ms
		                                                  : srv->request_time_max_ms));
		MHD_resume_connection(w->conn);
	}
}

/* Takes the request's share of the budget, or queues it and suspends its connection, whose
 * access handler libmicrohttpd then calls again only after the resume. */
static void budget_take(struct http_request *req)
{
	struct http_server *srv = req->srv;
	const char *length =
	        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	/* No length: chunked (a length beside Transfer-Encoding was refused at the start). */
	size_t expected = length ? (size_t)strtoull(length, NULL, 10) : req->max_body;
	if (expected < req->body_len) /* never 0, which would mean no share */
		expected = req->body_len;
	req->budget = expected < BODY_BUDGET ? expected : BODY_BUDGET;
	/* By the body's size, not its share: a body larger than the budget takes longer. */
	int64_t at_rate = (int64_t)((uint64_t)expected * 1000 / SHARE_RATE);
	req->share_ms = at_rate > SHARE_FLOOR_MS ? at_rate : SHARE_FLOOR_MS;
	struct in6_addr addr;
	bool known = connection_key(req->conn, &addr);
	pthread_mutex_lock(&srv->budget_lock);
	req->host = body_host_of(srv, known ? &addr : NULL);
	req->arrival = srv->arrivals++;
	/* Once closing, nothing wakes a waiter any more (see budget_wake_waiters): a request that
	 * gets this far during the stop goes on, and is answered 503 or cut like the others.
	 * Else it goes now only when it is the body a share would go to, and there is room. */
	bool now = atomic_load(&srv->closing);
	if (!now) {
		budget_queue(req);
		now = budget_next(srv) == req && budget_fits(srv, req->budget);
		if (now)
			budget_unqueue(req);
	}
	if (now) {
		budget_add(srv, req);
		deadline_sooner(req->watch, clock_mono_ms() + req->share_ms);
	} else {
		atomic_fetch_add(&srv->budget_waits, 1);
		deadline_set(req->watch, 0);
		/* Under the lock: whoever frees the budget resumes only what is suspended. */
		MHD_suspend_connection(req->conn);
	}
	pthread_mutex_unlock(&srv->budget_lock);
}

bool http_burst_over(struct http_server *srv, int64_t now_ms)
{
	pthread_mutex_lock(&srv->budget_lock);
	bool over = srv->burst && srv->budget_held == 0 && now_ms - srv->budget_emptied_ms >= BURST_QUIET_MS;
	if (over)
		srv->burst = false;
	pthread_mutex_unlock(&srv->budget_lock);
	return over;
}

/* Gives the request's share back (or leaves the queue) and wakes who now fits. */
static void budget_give_back(struct http_request *req)
{
	struct http_server *srv = req->srv;
	pthread_mutex_lock(&srv->budget_lock);
	if (req->budget_waiting) {
		budget_unqueue(req);
	} else {
		srv->budget_held -= req->budget;
		req->host->held--;
		if (srv->budget_held == 0)
			srv->budget_emptied_ms = clock_mono_ms();
	}
	req->budget = 0;
	body_host_release(srv, req->host);
	req->host = NULL;
	budget_wake_waiters(srv);
	pthread_mutex_unlock(&srv->budget_lock);
}

static void dispatch(struct http_request *req)
{
	const struct route *route = req->route;
	if (req->body_too_large) {
		http_reply_error(req, 413, "payload_too_large", NULL, "the body is larger than %zu bytes",
		                 req->max_body);
		return;
	}
	if (req->body_len > 0) {
		json_error_t jerr;
		req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
		if (!req->json) {
			http_reply_error(req, 400, "invalid_json", NULL,
			                 "the body is not valid JSON: %s at line %d column %d", jerr.text,
			                 jerr.line, jerr.column);
			return;
		}
		/* A call that takes no body still reads one, so that what a client sent by
		 * mistake is refused rather than ignored while the call goes ahead. */
		if (route->body == BODY_NONE && !json_is_object(req->json)) {
			http_reply_error(req, 400, "invalid_field", NULL,
			                 "this call takes no body: send none, or {}");
			return;
		}
		if (route->body == BODY_NONE && json_object_size(req->json) > 0) {
			const char *field = json_object_iter_key(json_object_iter(req->json));
			http_reply_error(req, 400, "invalid_field", field, "%s: this call takes no fields",
			                 field);
			return;
		}
	} else if (route->body == BODY_REQUIRED) {
		http_reply_error(req, 400, "invalid_json", NULL, "a JSON body is required");
		return;
	}
	route->handle(req);
}

#define DRAIN_MAX (64u << 20) /* read and drop at most this much of a refused body */
/* A request (line, headers and body) must arrive within this many server.connection_timeout
 * of its connection opening or of the answer before it: that timeout counts idle time only,
 * so a client sending a byte now and then would hold its connection (and its memory) for
 * ever. */
#define REQUEST_TIME_FACTOR 4
/* Of the 10,000 connections, one client (client_key: an IPv4 address, an IPv6 /64) may hold
 * this many: a survey platform needs tens, and one client cannot take them all. Not
 * libmicrohttpd's per-IP limit: it counts by address, and an IPv6 host that opens each
 * connection from another address of its /64 would never meet it. */
#define PER_CLIENT_CONNECTIONS 1000u
#define MAX_CONNECTIONS 10000u

static bool body_too_large_to_drain(struct http_request *req)
{
	const char *length =
	        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	/* chunked: its size is unknown; take_body drops it piece by piece */
	return length && strtoull(length, NULL, 10) > DRAIN_MAX;
}

/* HTTP/1.0 has no 100 Continue: a client of that version sends its body at once. */
static bool expects_continue(struct http_request *req, const char *version)
{
	if (strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
		return false;
	const char *expect = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	return expect && strcasecmp(expect, "100-continue") == 0;
}

/* The path of a request target. A client may send the absolute form ("POST
 * http://host/v1/surveys"), which a server must accept (RFC 9112, 3.2.2); libmicrohttpd
 * passes it on as it came. */
static const char *origin_path(const char *url)
{
	size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
	                : strncasecmp(url, "https://", 8) == 0 ? 8
	                                                       : 0;
	if (!scheme)
		return url;
	const char *path = strchr(url + scheme, '/');
	return path ? path : "/";
}

/* libmicrohttpd decodes the path before the access handler sees it, and hands it out as a C
 * string: "/v1/webhooks/1%00xyz" would be routed as "/v1/webhooks/1", and "%2F" would
 * become a separator. Only the raw target, given here once per request, shows them. The
 * request's context starts here, and on_completed frees it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_request *req = calloc(1, sizeof *req);
	if (!req)
		return NULL; /* on_request then refuses the request */
	req->srv = cls;
	req->conn = conn;
	req->begun_ns = clock_mono_ns();
	const union MHD_ConnectionInfo *info =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const struct connection *c = info ? info->socket_context : NULL;
	req->watch = c ? c->watch : NULL;
	size_t path_len = strcspn(uri, "?");
	for (const char *p = uri; (p = memchr(p, '%', path_len - (size_t)(p - uri))); p++) {
		bool whole = (size_t)(p - uri) + 2 < path_len; /* both hex digits in the path */
		if (whole && (memcmp(p, "%00", 3) == 0 || strncasecmp(p, "%2f", 3) == 0))
			req->path_unroutable = true;
	}
	return req;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	(void)conn;
	if (!req)
		return MHD_NO; /* on_uri had no memory for it */
	if (!req->started) {
		req->started = true;
		atomic_fetch_add(&srv->in_flight, 1);
		start_request(req, origin_path(url), method);
		/* An early answer (404, 401, 413 ...) waits until the body the client is sending has
		 * been read and dropped: answering mid-upload makes clients see a broken pipe instead
		 * of the answer. Only a body too large to be worth reading is cut off, and one that
		 * has not been sent: a client that sent "Expect: 100-continue" waits for a word
		 * before it uploads, and an answer now (instead of libmicrohttpd's "100 Continue")
		 * spares it the upload. Without a body it waits for the next call too: a reply
		 * queued in the first call makes libmicrohttpd close the connection, and a
		 * rate-limited client would pay a new connection for every 429. A body whose end is
		 * unclear (refuse_unclear_framing) is not read at all: the connection closes. */
		if (req->has_reply &&
		    (body_too_large_to_drain(req) || expects_continue(req, version) || req->close_after))
			return queue_reply(req);
		return MHD_YES;
	}
	switch (req->phase) {
	case PHASE_BODY:
		if (*upload_data_size) {
			req->received += *upload_data_size;
			if (req->received > DRAIN_MAX && (req->has_reply || req->body_too_large))
				return MHD_NO; /* an endless refused or ignored upload: cut the connection */
			if (!req->has_reply)
				take_body(req, upload_data, *upload_data_size);
			*upload_data_size = 0;
			if (!req->has_reply && !req->body_too_large && !req->budget &&
			    req->body_len > LARGE_BODY)
				budget_take(req);
			return MHD_YES;
		}
		/* Whole: what follows is npsd's time, not the client's. (An early reply queued in the
		 * first call leaves the deadline on: libmicrohttpd closes that connection after it.) */
		deadline_set(req->watch, 0);
		if (!req->has_reply) {
			/* Counted before closing is looked at, as http_finish_handling sets closing
			 * before it counts: one of the two always sees the other. */
			atomic_fetch_add(&req->srv->handling, 1);
			req->handling = true;
			if (atomic_load(&req->srv->closing) && !req->route->while_draining) {
				reply_shutting_down(req, true);
			} else {
				dispatch(req);
			}
		}
		break;
	case PHASE_SUSPENDED:
		atomic_fetch_add(&req->srv->resume_ns, (uint64_t)(clock_mono_ns() - req->resumed_ns));
		atomic_fetch_add(&req->srv->resumed, 1);
		req->phase = PHASE_BODY; /* resumed: the handler's second half replies */
		req->resumed(req);
		break;
	case PHASE_REPLIED:
		return MHD_YES;
	}
	if (req->phase == PHASE_SUSPENDED)
		return MHD_YES;
	if (req->handling) {
		req->handling = false;
		atomic_fetch_sub(&req->srv->handling, 1);
	}
	if (req->dropped)
		return MHD_NO; /* libmicrohttpd closes the connection */
	if (!req->has_reply) {
		log_error("http: handler for %s gave no reply", req->route ? req->route->pattern : url);
		http_reply_error(req, 500, "internal", NULL, "the server gave no answer");
	}
	return queue_reply(req);
}

/* The time from the request line to the answer's last byte, into its route's histogram. */
static void note_latency(struct http_server *srv, const struct http_request *req)
{
	size_t slot = req->route ? (size_t)(req->route - srv->routes) : srv->nroutes;
	struct route_latency *l = &srv->latency[slot];
	int64_t ns = clock_mono_ns() - req->begun_ns;
	for (size_t i = 0; i < HTTP_LATENCY_BUCKETS; i++)
		if ((double)ns <= http_latency_bounds_s[i] * 1e9) {
			atomic_fetch_add_explicit(&l->buckets[i], 1, memory_order_relaxed);
			break;
		}
	atomic_fetch_add_explicit(&l->sum_ns, (uint64_t)ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&l->count, 1, memory_order_relaxed);
}

static const char *method_name(unsigned bit)
{
	return bit == HTTP_GET      ? "GET"
	       : bit == HTTP_POST   ? "POST"
	       : bit == HTTP_PUT    ? "PUT"
	       : bit == HTTP_PATCH  ? "PATCH"
	       : bit == HTTP_DELETE ? "DELETE"
	                            : "OTHER";
}

void http_latency_each(struct http_request *req, void (*fn)(const struct http_latency *l, void *arg),
                       void *arg)
{
	struct http_server *srv = req->srv;
	for (size_t slot = 0; slot <= srv->nroutes; slot++) {
		struct route_latency *rl = &srv->latency[slot];
		struct http_latency l = { .count = atomic_load(&rl->count) };
		if (l.count == 0)
			continue;
		bool routed = slot < srv->nroutes;
		l.method = routed ? method_name(srv->routes[slot].method) : "";
		l.route = routed ? srv->routes[slot].pattern : "";
		l.sum_ns = atomic_load(&rl->sum_ns);
		for (size_t i = 0; i < HTTP_LATENCY_BUCKETS; i++)
			l.buckets[i] = atomic_load(&rl->buckets[i]);
		fn(&l, arg);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	if (!req)
		return;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		if (req->started)
			note_latency(srv, req);
		if (req->replied_ns) {
			atomic_fetch_add(&srv->send_ns, (uint64_t)(clock_mono_ns() - req->replied_ns));
			atomic_fetch_add(&srv->sent, 1);
		}
		/* The connection stays open for the next request, whose time starts now. */
		deadline_set(req->watch, clock_mono_ms() + srv->request_time_max_ms);
	}
	if (req->state_free)
		req->state_free(req->state);
	json_decref(req->json);
	free(req->body);
	if (!req->reply_borrowed)
		free(req->reply_body);
	if (req->budget) /* after what it paid for is freed */
		budget_give_back(req);
	if (req->handling)
		atomic_fetch_sub(&srv->handling, 1);
	/* A request libmicrohttpd refused itself (a bad header) never reached on_request. */
	if (req->started)
		atomic_fetch_sub(&srv->in_flight, 1);
	free(req);
	*con_cls = NULL;
}

/* libmicrohttpd's accept policy: a client that holds its share of the connections is closed
 * at once, before a TLS handshake or any memory is spent on it. Nothing is counted here:
 * libmicrohttpd may still drop a connection it let through (no memory, its own limit)
 * without a word, and such a count would never be given back. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addrlen;
	struct http_server *srv = cls;
	struct in6_addr key;
	if (!client_key(addr, &key) || !conn_limit_full(srv->conn_limit, &key))
		return MHD_YES;
	atomic_fetch_add(&srv->conns_refused, 1);
	return MHD_NO;
}

/* Every connection is watched from its start to its close: its first request's time starts
 * when it opens, before a TLS handshake, which a client could otherwise trickle for ever.
 * And it counts against its client's share from here, where libmicrohttpd has taken it and
 * will tell of its close (with poll() and a thread pool it drops none after telling of its
 * start). Two threads may both have let a client through on_accept with one connection of
 * its share left: the second is cut here. libmicrohttpd tells of the close before it closes
 * the socket, so the watch never outlives the descriptor it names. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd_info =
		        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *addr_info =
		        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		struct connection *c = calloc(1, sizeof *c);
		*socket_context = c;
		/* A connection whose client is not known (not IP) counts against nobody. */
		bool known = c && client_key(addr_info ? addr_info->client_addr : NULL, &c->key);
		int r = !c ? -ENOMEM : known ? conn_limit_take(srv->conn_limit, &c->key) : 0;
		if (c)
			c->counted = known && r == 0;
		if (!fd_info)
			return; /* nothing to watch or cut: not seen with TCP */
		if (r < 0) {
			/* Out of memory (for c or its client's entry) as well: uncounted, it would
			 * escape the limit. */
			if (r == -EUSERS)
				atomic_fetch_add(&srv->conns_refused, 1);
			shutdown(fd_info->connect_fd, SHUT_RDWR);
			return;
		}
		c->watch = deadlines_add(srv->deadlines, fd_info->connect_fd,
		                         clock_mono_ms() + srv->request_time_max_ms);
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct connection *c = *socket_context;
		if (c) {
			deadlines_remove(srv->deadlines, c->watch);
			if (c->counted)
				conn_limit_give_back(srv->conn_limit, &c->key);
			free(c);
		}
		*socket_context = NULL;
	}
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *srv = cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	/* While starting, libmicrohttpd's first complaint is why the start failed (a bad key,
	 * an address in use); afterwards its messages are about single connections. */
	if (!srv->started && !srv->start_error[0])
		snprintf(srv->start_error, sizeof srv->start_error, "%s", line);
	log_debug("mhd: %s", line);
}

/* check_query_param keeps the names a request has given in the bits of an unsigned. */
static bool route_queries_fit(const struct route *routes)
{
	for (const struct route *r = routes; r->pattern; r++) {
		size_t names = 0;
		for (const char *p = r->query; p && *p; p += strcspn(p, " "), p += *p == ' ')
			names++;
		if (names > sizeof(unsigned) * 8)
			return false;
	}
	return true;
}

static void server_free(struct http_server *srv)
{
	conn_limit_free(&srv->conn_limit);
	pthread_mutex_destroy(&srv->budget_lock);
	free(srv->latency);
	free(srv);
}

int http_listen(const char *host, uint16_t port, int *ret_fd, char **ret_error)
{
	*ret_error = NULL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	char service[8];
	snprintf(service, sizeof service, "%u", port);
	int gai = getaddrinfo(host && *host ? host : NULL, service, &hints, &ai);
	if (gai != 0) {
		if (asprintf(ret_error, "cannot resolve the address: %s", gai_strerror(gai)) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : 0;
	/* SO_REUSEADDR lets a restart bind while the old connections sit in TIME_WAIT; not
	 * SO_REUSEPORT, which would let a second npsd share the port (and split the traffic)
	 * instead of failing to start. An IPv6 address is that address only, as it is written. */
	int on = 1;
	if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
		r = -errno;
	if (r == 0 && ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)
		r = -errno;
	if (r == 0 && (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0))
		r = -errno;
	freeaddrinfo(ai);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int http_start(const struct http_options *opt, const struct route *routes, struct npsd_app *app,
               struct http_server **ret_server, char **ret_error)
{
	*ret_error = NULL;
	if (!route_queries_fit(routes)) {
		*ret_error = strdup("a route takes more query parameters than http.c can tell apart");
		close(opt->listen_fd);
		return -EINVAL;
	}
	struct http_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		close(opt->listen_fd);
		return -ENOMEM;
	}
	srv->routes = routes;
	srv->app = app;
	pthread_mutex_init(&srv->budget_lock, NULL);
	while (routes[srv->nroutes].pattern)
		srv->nroutes++;
	srv->latency = calloc(srv->nroutes + 1, sizeof *srv->latency);
	if (!srv->latency) {
		server_free(srv);
		close(opt->listen_fd);
		return -ENOMEM;
	}
	srv->request_time_max_ms = (int64_t)opt->connection_timeout * 1000 * REQUEST_TIME_FACTOR;
	int r = conn_limit_new(PER_CLIENT_CONNECTIONS, &srv->conn_limit);
	if (r == 0)
		r = deadlines_start(&srv->deadlines);
	if (r < 0) {
		server_free(srv);
		close(opt->listen_fd);
		return r;
	}

	struct sockaddr_storage bound;
	socklen_t bound_len = sizeof bound;
	if (getsockname(opt->listen_fd, (struct sockaddr *)&bound, &bound_len) < 0) {
		r = -errno;
		deadlines_stop(&srv->deadlines);
		server_free(srv);
		close(opt->listen_fd);
		return r;
	}
	unsigned threads = opt->threads;
	if (threads == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cores > 0 ? (unsigned)cores : 1;
	}
	/* poll(), not epoll: every write suspends its connection until the commit is durable, and
	 * libmicrohttpd takes a suspended socket out of its epoll set and puts it back on resume,
	 * two epoll_ctl calls per request; poll() over a worker's connections costs less at the
	 * connection counts npsd serves (bench/README.md). */
	unsigned flags =
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (bound.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (opt->tls_cert_pem && opt->tls_key_pem)
		flags |= MHD_USE_TLS;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)(uintptr_t)opt->tls_cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)(uintptr_t)opt->tls_key_pem },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* The logger first, so that it hears about the options after it too. libmicrohttpd
	 * gets a copy of the socket: whether it closes the one it was given when it fails to
	 * start is not documented, and ours is closed here either way. */
	int mhd_fd = fcntl(opt->listen_fd, F_DUPFD_CLOEXEC, 0);
	srv->daemon = mhd_fd < 0
	                      ? NULL
	                      : MHD_start_daemon(
	                                flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
	                                on_mhd_log, srv, MHD_OPTION_LISTEN_SOCKET, mhd_fd,
	                                MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT,
	                                opt->connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	                                srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
	                                MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_CONNECTION_LIMIT,
	                                MAX_CONNECTIONS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	                                (size_t)CONNECTION_MEMORY, MHD_OPTION_ARRAY,
	                                (flags & MHD_USE_TLS) ? tls_opts : tls_opts + 2, MHD_OPTION_END);
	close(opt->listen_fd);
	if (!srv->daemon) {
		*ret_error = strdup(srv->start_error[0] ? srv->start_error : "libmicrohttpd did not start");
		deadlines_stop(&srv->deadlines);
		server_free(srv);
		return -EIO;
	}
	srv->started = true;
	srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
	                                              : ((struct sockaddr_in *)&bound)->sin_port);
	*ret_server = srv;
	return 0;
}

uint16_t http_port(const struct http_server *srv)
{
	return srv->port;
}

unsigned http_in_flight(const struct http_server *srv)
{
	return atomic_load(&((struct http_server *)(uintptr_t)srv)->in_flight);
}

void http_quiesce(struct http_server *srv)
{
	/* Not MHD_quiesce_daemon(): in libmicrohttpd 0.9.75 it races with the worker threads
	 * removing the same listen socket and aborted the process now and then (seen with epoll). New
	 * requests, on new connections or kept-alive ones, get a 503 with Connection: close instead. */
	atomic_store(&srv->stopping, true);
}

unsigned http_drain(struct http_server *srv, int64_t timeout_ms)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	for (int64_t waited = 0; waited < timeout_ms; waited += 10) {
		if (atomic_load(&srv->in_flight) == 0)
			return 0;
		nanosleep(&pause, NULL);
	}
	return atomic_load(&srv->in_flight);
}

unsigned http_finish_handling(struct http_server *srv)
{
	atomic_store(&srv->closing, true);
	pthread_mutex_lock(&srv->budget_lock);
	budget_wake_waiters(srv);
	pthread_mutex_unlock(&srv->budget_lock);
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	while (atomic_load(&srv->handling) > 0)
		nanosleep(&pause, NULL);
	return atomic_load(&srv->in_flight);
}

void http_stop(struct http_server **srv)
{
	if (!srv || !*srv)
		return;
	MHD_stop_daemon((*srv)->daemon);
	deadlines_stop(&(*srv)->deadlines); /* after: libmicrohttpd has let go of every watch */
	server_free(*srv);
	*srv = NULL;
}
