#include "npsd/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "npsd/app.h"
#include "npsd/clock.h"
#include "npsd/log.h"
#include "npsd/reports.h"
#include "npsd/store.h"

/* Who may do what: SPEC's roles per resource. admin passes every check in http.c.
 * ROUTE() is a route that the drain after SIGTERM answers with 503: every one but liveness,
 * whose entry says so (while_draining). */
#define ROUTE(method_, pattern_, roles_, body_, handle_, query_)                                \
	{                                                                                       \
		.method = (method_), .pattern = (pattern_), .roles = (roles_), .body = (body_), \
		.handle = (handle_), .query = (query_)                                          \
	}
const struct route api_routes[] = {
	{ .method = HTTP_GET,
	  .pattern = "/healthz",
	  .roles = 0,
	  .body = BODY_NONE,
	  .handle = api_healthz,
	  .query = NULL,
	  .while_draining = true },
	ROUTE(HTTP_GET, "/readyz", 0, BODY_NONE, api_readyz, NULL),
	ROUTE(HTTP_GET, "/metrics", 0, BODY_NONE, api_metrics, NULL),
	ROUTE(HTTP_GET, "/v1/me", ROLE_INGEST | ROLE_AGENT | ROLE_MANAGER, BODY_NONE, api_me, NULL),
	ROUTE(HTTP_POST, "/v1/surveys", ROLE_INGEST, BODY_REQUIRED, api_surveys_post, NULL),
	ROUTE(HTTP_GET, "/v1/surveys", ROLE_MANAGER, BODY_NONE, api_surveys_list,
	      "touchpoint channel customer_id min_score max_score from to limit cursor"),
	ROUTE(HTTP_GET, "/v1/surveys/:id", ROLE_MANAGER, BODY_NONE, api_surveys_get, NULL),
	ROUTE(HTTP_PATCH, "/v1/surveys/:id", ROLE_MANAGER, BODY_REQUIRED, api_surveys_patch, NULL),
	ROUTE(HTTP_GET, "/v1/callbacks", ROLE_AGENT | ROLE_MANAGER, BODY_NONE, api_callbacks_list,
	      "status touchpoint limit cursor"),
	ROUTE(HTTP_POST, "/v1/callbacks/claim", ROLE_AGENT, BODY_OPTIONAL, api_callbacks_claim, NULL),
	ROUTE(HTTP_GET, "/v1/callbacks/stats", ROLE_AGENT | ROLE_MANAGER, BODY_NONE, api_callbacks_stats,
	      NULL),
	ROUTE(HTTP_GET, "/v1/callbacks/:id", ROLE_AGENT | ROLE_MANAGER, BODY_NONE, api_callbacks_get, NULL),
	ROUTE(HTTP_POST, "/v1/callbacks/:id/heartbeat", ROLE_AGENT, BODY_NONE, api_callbacks_heartbeat, NULL),
	ROUTE(HTTP_POST, "/v1/callbacks/:id/release", ROLE_AGENT, BODY_NONE, api_callbacks_release, NULL),
	ROUTE(HTTP_POST, "/v1/callbacks/:id/complete", ROLE_AGENT, BODY_REQUIRED, api_callbacks_complete,
	      NULL),
	ROUTE(HTTP_POST, "/v1/callbacks/:id/cancel", ROLE_MANAGER, BODY_NONE, api_callbacks_cancel, NULL),
	ROUTE(HTTP_POST, "/v1/webhooks", ROLE_MANAGER, BODY_REQUIRED, api_webhooks_create, NULL),
	ROUTE(HTTP_GET, "/v1/webhooks", ROLE_MANAGER, BODY_NONE, api_webhooks_list, NULL),
	ROUTE(HTTP_GET, "/v1/webhooks/:id", ROLE_MANAGER, BODY_NONE, api_webhooks_get, NULL),
	ROUTE(HTTP_PATCH, "/v1/webhooks/:id", ROLE_MANAGER, BODY_REQUIRED, api_webhooks_patch, NULL),
	ROUTE(HTTP_DELETE, "/v1/webhooks/:id", ROLE_MANAGER, BODY_NONE, api_webhooks_delete, NULL),
	ROUTE(HTTP_POST, "/v1/webhooks/:id/test", ROLE_MANAGER, BODY_NONE, api_webhooks_test, NULL),
	ROUTE(HTTP_GET, "/v1/webhooks/:id/deliveries", ROLE_MANAGER, BODY_NONE, api_webhooks_deliveries,
	      "limit cursor"),
	ROUTE(HTTP_POST, "/v1/deliveries/:id/retry", ROLE_MANAGER, BODY_NONE, api_deliveries_retry, NULL),
	ROUTE(HTTP_GET, "/v1/nps", ROLE_MANAGER, BODY_NONE, api_reports_nps,
	      "from to touchpoint channel group_by"),
	ROUTE(HTTP_GET, "/v1/improvements", ROLE_MANAGER, BODY_NONE, api_reports_improvements,
	      "from to area touchpoint limit cursor"),
	ROUTE(HTTP_GET, "/ui", 0, BODY_NONE, api_ui_redirect, NULL),
	ROUTE(HTTP_GET, "/ui/", 0, BODY_NONE, api_ui_page, NULL),
	ROUTE(HTTP_GET, "/ui/app.js", 0, BODY_NONE, api_ui_script, NULL),
	ROUTE(HTTP_GET, "/ui/app.css", 0, BODY_NONE, api_ui_style, NULL),
	ROUTE(HTTP_GET, "/ui/lease-timer.js", 0, BODY_NONE, api_ui_lease_timer, NULL),
	{ 0 },
};
#undef ROUTE

static void api_write_done(struct db_write *w)
{
	http_resume(((struct api_write *)w)->req);
}

void api_submit(struct http_request *req, struct api_write *w, int (*apply)(struct db_conn *conn, void *arg),
                void (*resumed)(struct http_request *req))
{
	w->req = req;
	w->write.apply = apply;
	w->write.done = api_write_done;
	w->write.arg = w;
	/* Suspend before submitting: the writer may finish before this function returns. */
	http_suspend(req, resumed);
	db_submit(http_app(req)->db, &w->write);
}

/* How often a long read asks whether its client is still there. The ask is a poll(), too
 * dear for every thousand steps (a clock read is not); a report runs 50 ms at most for
 * nobody. */
#define CLIENT_CHECK_MS 50

/* A report whose manager closed the tab mid-run stops there: the rest of it (up to a second
 * or more at two million answers) would hold up the reports queued behind it. */
static int yield_to_quick_reads(void *arg)
{
	struct api_read *r = arg;
	offload_yield(http_app(r->req)->offload);
	int64_t now = clock_mono_ms();
	if (!r->skipped && now - r->client_checked_ms >= CLIENT_CHECK_MS) {
		r->client_checked_ms = now;
		r->skipped = http_client_closed(r->req);
	}
	return r->skipped;
}

static void api_read_run(struct offload_job *job)
{
	struct api_read *r = (struct api_read *)job;
	/* Up to 32 long reports wait (and quick reads, bounded by the connections): those whose
	 * managers left must not cost one each. */
	if (http_client_closed(r->req)) {
		r->skipped = true;
		http_drop(r->req);
		http_resume(r->req);
		return;
	}
	struct npsd_app *app = http_app(r->req);
	struct db_conn *conn = db_reader(app->db);
	if (r->lane == OFFLOAD_LONG) {
		r->client_checked_ms = clock_mono_ms();
		db_reader_pause_hook(conn, yield_to_quick_reads, r);
	}
	r->run(r, conn);
	db_reader_put(app->db, conn);
	/* Stopped for a client gone: run's error (-ECANCELED) is no one's answer, nor a 503. */
	if (r->skipped)
		http_drop(r->req);
	http_resume(r->req);
}

/* A refusal is news to ops (journald shows nothing of /metrics), but a script in a loop is
 * refused hundreds of times a second: a line a minute for each reason, with how many more. */
#define REFUSAL_LOG_INTERVAL_MS 60000

/* Logs a refused report: the key's id (never its name, which may be a person's, nor its
 * token), the reason and the count left out since the reason's last line. */
static void log_refused(struct http_request *req, const struct offload_refusal *why)
{
	static struct log_limit full = LOG_LIMIT_INIT, share = LOG_LIMIT_INIT;
	if (LOG_LVL_WARN > log_threshold)
		return;
	uint64_t missed;
	if (!log_limit_pass(why->owner_share ? &share : &full, clock_mono_ms(), REFUSAL_LOG_INTERVAL_MS,
	                    &missed))
		return;
	char more[80] = "";
	if (missed)
		snprintf(more, sizeof more, "; %llu more refused for that since the last such line",
		         (unsigned long long)missed);
	long long key = (long long)http_principal(req)->key_id;
	if (why->owner_share)
		log_warn("reports: refused a report of key %lld with 429: %u of its reports are waiting, "
		         "its share of the queue (Retry-After %u s)%s",
		         key, why->waiting, why->retry_s, more);
	else
		log_warn("reports: refused a report of key %lld with 503: %u reports are waiting, the "
		         "queue is full (Retry-After %u s)%s",
		         key, why->waiting, why->retry_s, more);
}

/* Says what a manager can act on: how many reports are ahead, and when to come back. A key
 * over its own share asked too much (SPEC's 429, a limit per key, as server.rate_limit);
 * a full queue is npsd busy for everyone (503). */
static void reply_refused(struct http_request *req, const struct offload_refusal *why)
{
	log_refused(req, why);
	if (why->owner_share) {
		http_reply_rate_limited(req, why->retry_s,
		                        "%u reports of this key are waiting to run; try again in %u s",
		                        why->waiting, why->retry_s);
		return;
	}
	char message[160];
	snprintf(message, sizeof message, "%u reports are waiting to run; try again in %u s", why->waiting,
	         why->retry_s);
	http_reply_unavailable(req, why->retry_s, message);
}

static bool api_read_gone(struct offload_job *job)
{
	return http_client_closed(((struct api_read *)job)->req);
}

static void api_read_resumed(struct http_request *req)
{
	struct api_read *r = http_state(req);
	if (r->skipped)
		return; /* http_drop()ped */
	if (r->refused) {
		reply_refused(req, &r->refusal);
		return;
	}
	r->resumed(req);
}

void api_offload(struct http_request *req, enum offload_lane lane, struct api_read *r,
                 void (*run)(struct api_read *r, struct db_conn *conn),
                 void (*resumed)(struct http_request *req))
{
	r->req = req;
	r->run = run;
	r->lane = lane;
	r->resumed = resumed;
	r->skipped = false;
	r->refused = false;
	r->job.run = api_read_run;
	r->job.owner = http_principal(req)->key_id;
	r->job.gone = api_read_gone;
	/* Suspend before submitting: the read may be done before this function returns. A
	 * refusal resumes at once, to reply on the way every read does. */
	http_suspend(req, api_read_resumed);
	if (offload_submit(http_app(req)->offload, lane, &r->job, &r->refusal) < 0) {
		r->refused = true;
		http_resume(req);
	}
}

json_t *api_time(int64_t t)
{
	char buf[21];
	return t ? json_string(time_format_rfc3339(t, buf)) : json_null();
}

json_t *api_figure(double x)
{
	return json_real(report_figure(x));
}

int api_query_range(struct http_request *req, int64_t open, int64_t *from, int64_t *to)
{
	if (http_query_time(req, "from", from) < 0 || http_query_time(req, "to", to) < 0)
		return -1;
	if (*from != open && *to != open && *from > *to) {
		http_reply_error(req, 400, "invalid_field", "to", "to must not be before from");
		return -1;
	}
	return 0;
}

void api_reply_page(struct http_request *req, const char *name, json_t *items, const char *next_cursor)
{
	http_reply_json(req, 200,
	                json_pack("{s:o, s:o}", name, items, "next_cursor",
	                          next_cursor ? json_string(next_cursor) : json_null()));
}

void api_page_cut(json_t *items, size_t limit, char next[static API_CURSOR_MAX])
{
	if (json_array_size(items) <= limit)
		return;
	json_array_remove(items, limit);
	json_int_t last = json_integer_value(json_object_get(json_array_get(items, limit - 1), "id"));
	snprintf(next, API_CURSOR_MAX, "%lld", (long long)last);
}

void api_healthz(struct http_request *req)
{
	http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* Who the token is: the console shows its user's name and offers only what the role may do. */
void api_me(struct http_request *req)
{
	const struct principal *who = http_principal(req);
	http_reply_json(req, 200,
	                json_pack("{s:I, s:s, s:s}", "key_id", (json_int_t)who->key_id, "name", who->name,
	                          "role", role_name(who->role)));
}

static int probe_write(struct db_conn *conn, void *arg)
{
	(void)arg;
	return store_readiness_touch(conn, clock_now());
}

/* After a write failed for the disk (full, or an I/O error), not ready for this long, even
 * when the probe's one small row still fits: a load balancer then sends answers elsewhere
 * for a while, and the probe says again whether the disk has room. */
#define STORAGE_FAILED_NOT_READY_NS (5 * 1000000000LL)

static void readyz_resumed(struct http_request *req)
{
	struct api_write *w = http_state(req);
	int r = w->write.result;
	if (r == 0 && db_storage_failed_lately(http_app(req)->db, STORAGE_FAILED_NOT_READY_NS))
		r = -EIO;
	if (r < 0) {
		http_reply_storage_error(req, r);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

/* Ready means a change can be committed and made durable now: the writer and the sync
 * thread are alive, the disk takes the write, and it took every write of the last seconds.
 * The probe waits like any write, with its connection suspended: a blocked HTTP thread
 * would stall every connection it serves. */
void api_readyz(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	if (app->shutting_down) {
		http_reply_storage_error(req, -ESHUTDOWN);
		return;
	}
	struct api_write *w = calloc(1, sizeof *w);
	if (!w) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_set_state(req, w, free);
	api_submit(req, w, probe_write, readyz_resumed);
}
