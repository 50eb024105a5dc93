#ifndef NPSD_API_H
#define NPSD_API_H

#include "npsd/http.h"

#include "npsd/db.h"
#include "npsd/offload.h"

/* A write a handler hands to the writer: the connection sleeps until it is durable, then
 * `resumed` runs on a pool thread and replies. Embed it first in the handler's state. */
struct api_write {
	struct db_write write;
	struct http_request *req;
};
void api_submit(struct http_request *req, struct api_write *w, int (*apply)(struct db_conn *conn, void *arg),
                void (*resumed)(struct http_request *req));

/* A slow read a handler hands to a reports lane (offload.h): the connection sleeps while
 * run works there with a reader connection of its own (it must not reply), then `resumed`
 * runs on a pool thread and replies. The long lane's reads pause while quick ones run. A
 * read whose client has closed its connection by its turn is not run (a manager who gave
 * up waiting costs no report), and a long one whose client closes while it runs is stopped
 * within about 50 ms: either way `resumed` is not called and the connection is closed with
 * no answer (http_drop). One the long lane has no room for (offload_submit's -EAGAIN: its
 * queue, or the token's share of it, is full) is answered 503 with Retry-After at once,
 * and neither run nor `resumed` is called. Embed it first in the handler's state, which
 * http_state() returns. */
struct api_read {
	struct offload_job job;
	struct http_request *req;
	void (*run)(struct api_read *r, struct db_conn *conn);
	void (*resumed)(struct http_request *req);
	enum offload_lane lane;
	bool skipped; /* its client had gone: run did not run, or was stopped */
	bool refused; /* the long lane had no room: see refusal */
	struct offload_refusal refusal;
	int64_t client_checked_ms; /* on the long lane: when run last asked about its client */
};
void api_offload(struct http_request *req, enum offload_lane lane, struct api_read *r,
                 void (*run)(struct api_read *r, struct db_conn *conn),
                 void (*resumed)(struct http_request *req));

/* A JSON string with the RFC 3339 form of t, or null for 0 (not yet). New reference. */
json_t *api_time(int64_t t);
/* A figure people read (an NPS, a share, minutes) as a JSON number to one decimal. */
json_t *api_figure(double x);

/* Reads the query's from and to (RFC 3339) into *from and *to, leaving an absent one as it
 * is (open, the caller's sentinel), and refuses with a 400 naming to a range that ends
 * before it begins: an empty list or report for a swapped pair would look like a quiet
 * week. 0, or -1 when a reply has been queued. */
int api_query_range(struct http_request *req, int64_t open, int64_t *from, int64_t *to);

/* Replies 200 with {"<name>": items, "next_cursor": next_cursor or null}; steals items. */
void api_reply_page(struct http_request *req, const char *name, json_t *items, const char *next_cursor);

/* For lists paged by id, newest first, read with one row more than limit (1 or more) to
 * tell whether a next page exists: drops that row, and writes the cursor of the next page
 * (the "id" of the last item kept) into next. Leaves next as it is when there is no extra
 * row. */
#define API_CURSOR_MAX 24
void api_page_cut(json_t *items, size_t limit, char next[static API_CURSOR_MAX]);

/* The handlers behind api_routes[] (api.c), one file per resource. */
void api_healthz(struct http_request *req);
void api_readyz(struct http_request *req);
void api_metrics(struct http_request *req);
void api_me(struct http_request *req);

void api_surveys_post(struct http_request *req);
void api_surveys_list(struct http_request *req);
void api_surveys_get(struct http_request *req);
void api_surveys_patch(struct http_request *req);

void api_callbacks_list(struct http_request *req);
void api_callbacks_claim(struct http_request *req);
void api_callbacks_get(struct http_request *req);
void api_callbacks_heartbeat(struct http_request *req);
void api_callbacks_release(struct http_request *req);
void api_callbacks_complete(struct http_request *req);
void api_callbacks_cancel(struct http_request *req);
void api_callbacks_stats(struct http_request *req);

void api_webhooks_create(struct http_request *req);
void api_webhooks_list(struct http_request *req);
void api_webhooks_get(struct http_request *req);
void api_webhooks_patch(struct http_request *req);
void api_webhooks_delete(struct http_request *req);
void api_webhooks_test(struct http_request *req);
void api_webhooks_deliveries(struct http_request *req);
void api_deliveries_retry(struct http_request *req);

void api_reports_nps(struct http_request *req);
void api_reports_improvements(struct http_request *req);

void api_ui_redirect(struct http_request *req);
void api_ui_page(struct http_request *req);
void api_ui_script(struct http_request *req);
void api_ui_style(struct http_request *req);
void api_ui_lease_timer(struct http_request *req);

#endif
