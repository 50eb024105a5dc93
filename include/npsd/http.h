#ifndef NPSD_HTTP_H
#define NPSD_HTTP_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "npsd/auth.h"
#include "npsd/validate.h"

/*
 * The HTTP server: libmicrohttpd with a thread pool, the router, bodies and their limits,
 * and SPEC's JSON replies and error body. Handlers (api_*.c) see only this header, never
 * MHD: they read the request through the accessors and answer with one http_reply_*().
 *
 * A handler that must wait for the writer calls http_suspend() before it submits: the
 * connection then sleeps without holding a pool thread, the write's done() calls
 * http_resume(), and the `resumed` function runs on a pool thread to send the reply.
 */

struct npsd_app;
struct http_server;
struct http_request;

enum http_method {
	HTTP_GET = 1 << 0,
	HTTP_POST = 1 << 1,
	HTTP_PUT = 1 << 2,
	HTTP_PATCH = 1 << 3,
	HTTP_DELETE = 1 << 4,
};

enum body_rule {
	BODY_NONE,     /* none, or {}: anything else is refused (415, 400) */
	BODY_OPTIONAL, /* JSON when present */
	BODY_REQUIRED, /* JSON, must be present */
};

struct route {
	unsigned method;
	const char *pattern; /* "/v1/surveys/:id": ":id" matches a positive integer */
	unsigned roles;      /* enum role bits allowed; 0 = public, no token needed */
	enum body_rule body;
	void (*handle)(struct http_request *req);
	/* The query parameters it takes, space-separated (at most 32: http_start refuses more;
	 * NULL: none); any other, or one given twice, is a 400. Public routes (roles 0) take
	 * any; a NUL in a name or value is a 400 everywhere. */
	const char *query;
	/* Answered while npsd drains on SIGTERM too, where every other route is a 503: liveness
	 * (an orchestrator that saw 503 would kill npsd mid-drain). For a handler that answers
	 * at once, without waiting for storage, which the drain would have to wait for. */
	bool while_draining;
};

struct http_options {
	int listen_fd;    /* from http_listen(); http_start closes it, whatever it returns */
	unsigned threads; /* 0 = one per core */
	unsigned connection_timeout;
	const char *tls_cert_pem, *tls_key_pem; /* file contents, or NULL for plain HTTP */
};

/* Binds host (numeric or a name; NULL or "" = every address) and port (0 = ephemeral) and
 * listens, before npsd touches its database: a taken port stops the start there. Returns 0
 * and *ret_fd, or a negative errno, with *ret_error malloc'ed (or NULL) when the address
 * does not resolve. */
int http_listen(const char *host, uint16_t port, int *ret_fd, char **ret_error);
/* Starts serving on opt->listen_fd. routes (ending with a zeroed entry) and app are
 * borrowed for the server's lifetime. Returns 0 and *ret_server, or a negative errno with
 * *ret_error (why, from libmicrohttpd when it refused: a bad key) malloc'ed for the caller
 * to free, or NULL. */
int http_start(const struct http_options *opt, const struct route *routes, struct npsd_app *app,
               struct http_server **ret_server, char **ret_error);
/* The port bound (useful with port 0). */
uint16_t http_port(const struct http_server *srv);
/* Stops taking new work: every new request is answered 503 (Retry-After, Connection:
 * close); in-flight requests go on. */
void http_quiesce(struct http_server *srv);
/* Waits until no request is in flight or timeout_ms passed; returns how many are left. */
unsigned http_drain(struct http_server *srv, int64_t timeout_ms);
/* After a drain that timed out: no request may start on its handler any more (503), and
 * this waits, however long, for those in one or waiting for storage (their writes may
 * commit; libmicrohttpd cannot stop with a connection suspended). Returns the requests left,
 * all still reading a body or sending a reply: http_stop() cuts them off. */
unsigned http_finish_handling(struct http_server *srv);
/* Stops the server (closing whatever is left), frees *srv and NULLs it. NULL is a no-op. */
void http_stop(struct http_server **srv);
/* Requests being handled now (for metrics and drain). */
unsigned http_in_flight(const struct http_server *srv);

/* ---- for handlers ---- */
struct npsd_app *http_app(struct http_request *req);
const struct principal *http_principal(struct http_request *req);
int64_t http_path_id(struct http_request *req);                    /* the :id, 0 when none */
const char *http_query(struct http_request *req, const char *key); /* NULL when absent */
/* The parsed JSON body (BODY_OPTIONAL: NULL when there was none); owned by the request. */
json_t *http_json(struct http_request *req);

/* Per-request state a handler keeps across suspension; free_fn (may be NULL) runs when
 * the request ends, whatever happened. */
void http_set_state(struct http_request *req, void *state, void (*free_fn)(void *state));
void *http_state(struct http_request *req);

/* Replies. Exactly one per request. body is stolen (freed by the server). */
void http_reply_json(struct http_request *req, unsigned status, json_t *body);
void http_reply_empty(struct http_request *req, unsigned status);
/* A fixed body that outlives the server (the console's files): neither copied nor freed.
 * headers: more response headers as static name, value pairs ending in NULL, or NULL. */
void http_reply_asset(struct http_request *req, unsigned status, const char *content_type, const void *body,
                      size_t len, const char *const *headers);
/* A body already written as text (malloc'ed), stolen: Prometheus text, or JSON when
 * content_type is NULL. */
void http_reply_text(struct http_request *req, unsigned status, const char *content_type, char *body);
void http_reply_error(struct http_request *req, unsigned status, const char *code, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void http_reply_field_error(struct http_request *req, const struct field_error *err);
/* 503 unavailable with Retry-After, or the right 4xx, for a storage error (negative errno). */
void http_reply_storage_error(struct http_request *req, int err);
/* 503 unavailable for work refused before it began, nothing done, with Retry-After retry_s
 * (whole seconds; 0 is taken as 1) and message (copied) for the person who asked. */
void http_reply_unavailable(struct http_request *req, unsigned retry_s, const char *message);
/* 429 rate_limited for a key that asked more than its share, with Retry-After retry_s (0 is
 * taken as 1) and a message from fmt. */
void http_reply_rate_limited(struct http_request *req, unsigned retry_s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The SPEC error object alone, for per-item results in batch replies. */
json_t *http_error_object(const char *code, const char *field, const char *message);

/* Suspends the connection; `resumed` will run (on a pool thread) after http_resume(). */
void http_suspend(struct http_request *req, void (*resumed)(struct http_request *req));
/* Safe from any thread, once per suspension. */
void http_resume(struct http_request *req);
/* Whether the client of a suspended request has closed its connection (a FIN or a reset),
 * looked at without reading: libmicrohttpd watches no suspended connection, so it cannot
 * tell. A client that only shut down its sending side after the request looks closed too;
 * HTTP clients wait for the reply with both sides open. Safe from any thread while the
 * request is suspended. */
bool http_client_closed(struct http_request *req);
/* Instead of a reply, for a suspended request whose client has left (http_client_closed),
 * before http_resume(), from any thread: counted as dropped, not in the answers by status
 * (a 503 for nobody there reads as storage trouble), and once resumed its connection is
 * closed with no answer. libmicrohttpd may close it without resuming the handler at all. */
void http_drop(struct http_request *req);

/* Since start, for requests that waited on storage: how many were resumed and the time from
 * storage answering to their handler running again (resume), and how many replies went out
 * whole and the time from queueing each to its last byte sent (send). For /metrics. */
struct http_stage_stats {
	uint64_t resumed, resume_ns;
	uint64_t sent, send_ns;
	uint64_t cut; /* connections cut: a request not whole within four connection timeouts */
	/* Large bodies (see BODY_BUDGET in http.c): how many had to wait for others to end, and
	 * the bytes of the budget taken now and at most since start. */
	uint64_t body_waits, body_bytes, body_bytes_peak;
	uint64_t dropped; /* requests not answered because their client had left (http_drop) */
	uint64_t refused; /* connections closed at once: their client held its share of them */
};
void http_stage_stats(struct http_request *req, struct http_stage_stats *ret);

/* True once after each burst of large bodies (batches), when none has been in flight for a
 * few seconds: the moment to hand what they took back to the system (main.c). */
bool http_burst_over(struct http_server *srv, int64_t now_ms);

/* Since start, how many answers npsd queued with each status code: fn sees each code that
 * has been sent, in order. libmicrohttpd's own refusals of a malformed request (its HTML
 * 400, 431, 505) never reach npsd and are not among them. For /metrics. */
#define HTTP_STATUS_MAX 599
void http_status_each(struct http_request *req, void (*fn)(unsigned status, uint64_t count, void *arg),
                      void *arg);

/* Since start, per route: how long requests took from their request line to their answer's
 * last byte, in buckets up to http_latency_bounds_s[i] seconds (each bucket counts only its
 * own range; a request slower than the last bound is in count alone). fn sees each route
 * that has answered, and then, with method and route "", the requests no route took (404,
 * 405, refused before routing). For /metrics. */
#define HTTP_LATENCY_BUCKETS 12
extern const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS];
struct http_latency {
	const char *method, *route;
	uint64_t buckets[HTTP_LATENCY_BUCKETS];
	uint64_t count, sum_ns;
};
void http_latency_each(struct http_request *req, void (*fn)(const struct http_latency *l, void *arg),
                       void *arg);

/* Helpers for handlers: query parameters. Each returns 0 (value written, or left as is when
 * absent) or replies 400 naming the parameter and returns -1. */
int http_query_int(struct http_request *req, const char *key, int64_t min, int64_t max, int64_t *value);
int http_query_time(struct http_request *req, const char *key, int64_t *value);
int http_query_token(struct http_request *req, const char *key, const char **value);
/* A name or id as clients send them in bodies: UTF-8, 1 to max_chars code points, no
 * control characters. One that could never match is a 400, not an empty answer. */
int http_query_name(struct http_request *req, const char *key, size_t max_chars, const char **value);

#endif
