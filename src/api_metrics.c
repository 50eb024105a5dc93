/* GET /metrics: Prometheus text exposition, no token (SPEC), no PII: counts only. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/api.h"
#include "npsd/app.h"
#include "npsd/clock.h"
#include "npsd/store.h"
#include "npsd/webhooks.h"

/* A fixed set of lines, and fifteen per route of the latency histogram (about 1.6 KiB
 * each, 50 KiB with every route answered): far less than this. */
#define METRICS_MAX (128 * 1024)

struct text {
	char buf[METRICS_MAX];
	size_t len;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
}

static void metric(struct text *t, const char *name, const char *type, const char *help, double value)
{
	add(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

static void answers_by_status(unsigned status, uint64_t count, void *arg)
{
	add(arg, "npsd_http_responses_total{code=\"%u\"} %llu\n", status, (unsigned long long)count);
}

static void latency_histogram(const struct http_latency *l, void *arg)
{
	struct text *t = arg;
	uint64_t below = 0;
	for (size_t i = 0; i < HTTP_LATENCY_BUCKETS; i++) {
		below += l->buckets[i];
		add(t,
		    "npsd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
		    l->method, l->route, http_latency_bounds_s[i], (unsigned long long)below);
	}
	/* The count was read before the buckets, and a request that finished in between is in a
	 * bucket already: +Inf and _count are never below the buckets (Prometheus would take a
	 * histogram that falls for a broken one). */
	uint64_t count = l->count > below ? l->count : below;
	add(t,
	    "npsd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n"
	    "npsd_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.9f\n"
	    "npsd_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n",
	    l->method, l->route, (unsigned long long)count, l->method, l->route, (double)l->sum_ns / 1e9,
	    l->method, l->route, (unsigned long long)count);
}

static void stage(struct text *t, const char *name, const char *stage, uint64_t ns, uint64_t count)
{
	add(t, "%s_sum{stage=\"%s\"} %.9f\n%s_count{stage=\"%s\"} %llu\n", name, stage, (double)ns / 1e9,
	    name, stage, (unsigned long long)count);
}

/* A scrape in flight: the figures read on the quick reports lane. */
struct metrics_request {
	struct api_read read; /* first: the reports lane hands it back */
	struct callback_stats cs;
	int64_t pending, delivered, failed;
	int result;
};

/* On the quick reports lane: the loop figures read 30 days of callbacks (50-80 ms at a
 * million), which an HTTP thread's other connections must not wait for at every scrape,
 * and the deliveries' counts are rows the triggers keep: bounded, whatever the tables
 * hold, so a scrape never waits behind a report over every answer (Prometheus gives up at
 * its scrape_timeout). */
static void metrics_run(struct api_read *r, struct db_conn *conn)
{
	struct metrics_request *mr = (struct metrics_request *)r;
	mr->result = store_callback_stats(conn, clock_now(), &mr->cs);
	if (mr->result == 0)
		mr->result = store_delivery_counts(conn, &mr->pending, &mr->delivered, &mr->failed);
}

static void metrics_resumed(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	struct metrics_request *mr = http_state(req);
	if (mr->result < 0) {
		http_reply_storage_error(req, mr->result);
		return;
	}
	struct text *t = calloc(1, sizeof *t);
	if (!t) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	struct db_write_stats ws;
	db_write_stats(app->db, &ws);
	metric(t, "npsd_db_writes_total", "counter", "Writes committed by the writer thread.",
	       (double)ws.writes);
	metric(t, "npsd_db_commits_total", "counter", "Transactions (group commits) that carried them.",
	       (double)ws.batches);
	metric(t, "npsd_db_checkpoints_total", "counter",
	       "WAL checkpoints run beside the writer, on a thread of their own.", (double)ws.checkpoints);
	metric(t, "npsd_db_checkpoint_seconds_total", "counter", "Time those checkpoints took.",
	       (double)ws.checkpoint_ns / 1e9);
	metric(t, "npsd_db_checkpoint_finishes_total", "counter",
	       "Checkpoints the writer ran after a commit to copy the frames a background one left.",
	       (double)ws.checkpoint_finishes);
	metric(t, "npsd_db_checkpoint_finish_seconds_total", "counter",
	       "Time those took: the writer's only wait for checkpoints.",
	       (double)ws.checkpoint_finish_ns / 1e9);
	/* Where a write's time goes, stage by stage: averages are _sum / _count. */
	add(t, "# HELP npsd_write_stage_seconds Time committed writes spent waiting for the writer "
	       "(queue), in their batch's statements and commit (batch), and in the fdatasync that made "
	       "them durable (sync).\n# TYPE npsd_write_stage_seconds summary\n");
	stage(t, "npsd_write_stage_seconds", "queue", ws.queue_ns, ws.writes);
	stage(t, "npsd_write_stage_seconds", "batch", ws.batch_ns, ws.writes);
	stage(t, "npsd_write_stage_seconds", "sync", ws.sync_ns, ws.writes);
	struct http_stage_stats hs;
	http_stage_stats(req, &hs);
	add(t, "# HELP npsd_http_stage_seconds Time requests that waited on storage spent after it: "
	       "from the write being durable to their handler running again (resume), and from the "
	       "reply being queued to its last byte sent (send).\n# TYPE npsd_http_stage_seconds "
	       "summary\n");
	stage(t, "npsd_http_stage_seconds", "resume", hs.resume_ns, hs.resumed);
	stage(t, "npsd_http_stage_seconds", "send", hs.send_ns, hs.sent);
	add(t, "# HELP npsd_http_request_duration_seconds Time from a request's first line to its "
	       "answer's last byte, by route (route \"\": requests no route took).\n# TYPE "
	       "npsd_http_request_duration_seconds histogram\n");
	http_latency_each(req, latency_histogram, t);
	add(t, "# HELP npsd_http_responses_total Answers sent, by status code (a code appears once "
	       "sent; libmicrohttpd's own refusals of malformed requests are not counted).\n# TYPE "
	       "npsd_http_responses_total counter\n");
	http_status_each(req, answers_by_status, t);
	metric(t, "npsd_http_connections_cut_total", "counter",
	       "Connections cut because a request had not arrived whole within four "
	       "server.connection_timeout (a client sending a byte now and then).",
	       (double)hs.cut);
	metric(t, "npsd_http_connections_refused_total", "counter",
	       "Connections closed unanswered as they opened: their client (an IPv4 address, an "
	       "IPv6 /64) held 1,000 connections already.",
	       (double)hs.refused);
	metric(t, "npsd_http_large_bodies_waited_total", "counter",
	       "Bodies over 16 KiB that waited, their connection paused, until bodies before them "
	       "had been answered: at most 4 MiB of such bodies are in memory at once.",
	       (double)hs.body_waits);
	metric(t, "npsd_http_dropped_total", "counter",
	       "Queued reads (reports, figures) not run and not answered because their client had "
	       "closed the connection while they waited.",
	       (double)hs.dropped);
	struct offload_stats os;
	offload_stats(app->offload, &os);
	add(t,
	    "# HELP npsd_reports_refused_total Long reports (/v1/nps, /v1/improvements, callbacks by "
	    "touchpoint) refused at once: 503 when their queue was full (queue_full: %d waiting), "
	    "429 when their key had %d of them waiting (key_share).\n# TYPE npsd_reports_refused_total "
	    "counter\n",
	    OFFLOAD_LONG_WAITING_MAX, OFFLOAD_LONG_WAITING_PER_OWNER);
	add(t, "npsd_reports_refused_total{reason=\"queue_full\"} %llu\n",
	    (unsigned long long)os.refused_full);
	add(t, "npsd_reports_refused_total{reason=\"key_share\"} %llu\n",
	    (unsigned long long)os.refused_owner_share);
	add(t,
	    "# HELP npsd_reports_waiting Long reports queued behind the one running, at most %d "
	    "(not those whose client was found gone).\n# TYPE npsd_reports_waiting gauge\n"
	    "npsd_reports_waiting %u\n",
	    OFFLOAD_LONG_WAITING_MAX, os.long_waiting);
	metric(t, "npsd_http_large_body_bytes", "gauge",
	       "Bytes of the 4 MiB budget of bodies over 16 KiB held by requests in flight.",
	       (double)hs.body_bytes);
	metric(t, "npsd_http_large_body_bytes_peak", "gauge",
	       "The most bytes of that budget held at once since start.", (double)hs.body_bytes_peak);
	const struct callback_stats cs = mr->cs;
	add(t, "# HELP npsd_callbacks Open callbacks by state.\n# TYPE npsd_callbacks gauge\n");
	add(t, "npsd_callbacks{state=\"queued\"} %lld\n", (long long)cs.queued);
	add(t, "npsd_callbacks{state=\"claimed\"} %lld\n", (long long)cs.claimed);
	/* Apart from the states: the due ones are queued ones, and a sum over the states must
	 * count each open callback once. */
	metric(t, "npsd_callbacks_due", "gauge", "Queued callbacks due for a call now.", (double)cs.due);
	metric(t, "npsd_callbacks_oldest_due_age_seconds", "gauge",
	       "How long the oldest due callback has waited for a call.", (double)cs.oldest_due_age);
	if (cs.sla_total)
		metric(t, "npsd_callbacks_sla_met_ratio", "gauge",
		       "Share of callbacks (last 30 days) first called within their SLA.",
		       (double)cs.sla_met / (double)cs.sla_total);
	/* In seconds, Prometheus' base unit; the API's stats speak minutes to people. */
	if (cs.median_seconds_to_first_call >= 0)
		metric(t, "npsd_callbacks_first_call_seconds", "gauge",
		       "Median seconds from queueing to the first call attempt (last 30 days).",
		       cs.median_seconds_to_first_call);
	if (cs.median_seconds_ingest_to_queue >= 0)
		metric(t, "npsd_callbacks_ingest_to_queue_seconds", "gauge",
		       "Median seconds from a low score's answer to its callback in the queue (last 30 "
		       "days).",
		       cs.median_seconds_ingest_to_queue);
	if (cs.median_seconds_to_close >= 0)
		metric(t, "npsd_callbacks_close_seconds", "gauge",
		       "Median seconds from queueing to closing (last 30 days).", cs.median_seconds_to_close);
	if (cs.low_scores)
		metric(t, "npsd_callbacks_reached_ratio", "gauge",
		       "Share of the callbacks queued in the last 30 days (not cancelled) whose customer "
		       "was reached.",
		       (double)cs.low_scores_reached / (double)cs.low_scores);
	const struct npsd_config *cfg = app_config(app);
	if (cfg->tls_cert)
		metric(t, "npsd_tls_certificate_expiry_timestamp_seconds", "gauge",
		       "When the TLS certificate in use stops being valid (unix time).",
		       (double)cfg->tls_not_after);
	add(t, "# HELP npsd_deliveries Webhook deliveries by status.\n# TYPE npsd_deliveries gauge\n");
	add(t, "npsd_deliveries{status=\"pending\"} %lld\n", (long long)mr->pending);
	add(t, "npsd_deliveries{status=\"delivered\"} %lld\n", (long long)mr->delivered);
	add(t, "npsd_deliveries{status=\"failed\"} %lld\n", (long long)mr->failed);
	char *body = malloc(t->len + 1);
	if (body) {
		memcpy(body, t->buf, t->len);
		body[t->len] = '\0';
	}
	free(t);
	if (!body) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
}

void api_metrics(struct http_request *req)
{
	struct metrics_request *mr = calloc(1, sizeof *mr);
	if (!mr) {
		http_reply_storage_error(req, -ENOMEM);
		return;
	}
	http_set_state(req, mr, free);
	api_offload(req, OFFLOAD_QUICK, &mr->read, metrics_run, metrics_resumed);
}
