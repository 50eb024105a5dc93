/* npsload: the load client of `make bench` for the claim and webhook measurements.
 *
 *   npsload fill    BASE TOKEN TAG TOTAL BATCH INFLIGHT
 *       POSTs TOTAL surveys to BASE/v1/surveys as JSON arrays of BATCH answers, INFLIGHT
 *       batches at a time; every answer a customer of its own with a phone and a score of
 *       0-8 (owed a callback). Prints "FILL start_ns=… sent=… s201=… callbacks=… other=…
 *       http_errors=… seconds=… rate=…".
 *   npsload claim   BASE SECONDS PER_THREAD WARMUP TOKEN...
 *       One thread per TOKEN (an agent key each), each POSTing BASE/v1/callbacks/claim one
 *       after the other over one kept-alive connection: WARMUP unmeasured, then PER_THREAD
 *       measured, or until SECONDS have passed. Every request's latency is taken with
 *       clock_gettime(CLOCK_MONOTONIC) around curl_easy_perform. Prints "CLAIM threads=…
 *       requests=… s200=… s204=… s5xx=… other=… seconds=… rps=… p50_ms=… p99_ms=… max_ms=…".
 *   npsload webhook BASE TOKEN TARGET_URL
 *       Creates a survey.received webhook in the standard format; prints its id.
 *   npsload webhook-off BASE TOKEN ID
 *       Switches webhook ID off (PATCH {"active":false}): its deliveries stay in the database.
 *   npsload stream  BASE TOKEN TAG RATE SECONDS SENDLOG
 *       Open loop: one single-answer POST /v1/surveys every 1/RATE s for SECONDS (curl multi,
 *       as many in flight as needed, up to 512), whatever the answers' latency. The time a
 *       request is sent is taken with CLOCK_REALTIME in CURLOPT_PREREQFUNCTION (right before
 *       libcurl writes it). SENDLOG gets "response_id send_ns status latency_us answered_ns"
 *       per request (answered_ns: CLOCK_REALTIME when the answer had been read).
 *       Prints "STREAM sent=… s201=… non2xx=… errors=… seconds=… rate=… p50_ms=… p99_ms=…
 *       max_late_ms=…" (max_late: how far behind its schedule the worst send was).
 *   npsload wait    RECEIVER_BASE PREFIX EXPECTED TIMEOUT_S
 *       Polls RECEIVER_BASE/count?prefix=PREFIX every 20 ms until EXPECTED or TIMEOUT_S.
 *       Prints "WAIT count=… expected=… seconds=… ok=0|1".
 *   npsload alert-report SENDLOG RECVLOG PATH
 *       Joins the sends (status 201) with the receiver's arrivals on PATH by response_id:
 *       latency = first arrival - send. Prints "ALERT matched=… missing=… duplicates=…
 *       p50_ms=… p99_ms=… max_ms=… after201_p50_ms=… after201_p99_ms=…" (after201: first
 *       arrival - the time the 201 had been read, negative when the alert came first).
 *   npsload fanout-report RECVLOG PREFIX START_NS EXPECTED
 *       Arrivals on paths starting with PREFIX: prints "FANOUT deliveries=… unique=…
 *       expected=… missing=… recv_seconds=… recv_rate=… e2e_seconds=… e2e_rate=…"
 *       (recv: first to last arrival; e2e: from START_NS, the first POST, to the last arrival).
 *
 * BASE is http://127.0.0.1:PORT. Exit status 0, or 1 on a failure to run at all.
 */
#include <curl/curl.h>
#include <jansson.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const touchpoints[] = { "claim", "purchase", "renewal" };
static const char *const channels[] = { "web", "app", "email" };
static const char *const comments[] = {
	"Took three weeks to pay out",  "Friendly on the phone, slow by mail",
	"Easy to buy online",           "Had to explain my case twice",
	"Renewal price went up without notice",
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("npsload: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long arg_long(const char *s, const char *what)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0)
		die("bad %s: %s", what, s);
	return v;
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

/* ---------- buffers ---------- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		die("out of memory");
	b->p = p;
	b->cap = cap;
}

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf failed");
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		buf_reserve(b, (size_t)n);
	}
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	buf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data;
	(void)arg;
	return size * nmemb;
}

/* One survey answer, as bench/ingest.lua builds them: a customer of its own with a phone.
 * low: a score of 0-8 (owed a callback); else 8 answers in 10 low, the rest 9 or 10. */
static void survey_json(struct buf *b, const char *tag, long n, bool low)
{
	int score;
	if (low || n % 10 < 8)
		score = (int)((n * 7) % 9);
	else
		score = 9 + (int)(n % 2);
	buf_printf(b,
	           "{\"response_id\":\"%s-%ld\",\"customer\":{\"id\":\"C-%s-%ld\",\"phone\":\"+316%08ld\","
	           "\"language\":\"nl\"},\"touchpoint\":\"%s\",\"channel\":\"%s\",\"score\":%d,"
	           "\"comment\":\"%s\",\"contact_consent\":true}",
	           tag, n, tag, n, (n * 7919 + 12345) % 100000000, touchpoints[n % 3], channels[n % 3],
	           score, comments[n % 5]);
}

static struct curl_slist *auth_headers(const char *token)
{
	char auth[512];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	struct curl_slist *h = curl_slist_append(NULL, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip for big bodies */
	if (!h)
		die("out of memory");
	return h;
}

static void common_opts(CURL *e)
{
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
}

/* ---------- percentiles ---------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank over sorted v[n]: the smallest value with at least p% at or below it. */
static double pct_ms(const int64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e6;
}

/* ---------- fill: batches of surveys ---------- */

struct fill_slot {
	CURL *e;
	struct buf req, resp;
	bool busy;
};

static void fill_account(struct fill_slot *s, CURLcode rc, long *s201, long *callbacks,
                         long *other, long *http_errors)
{
	long status = 0;
	curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status != 200) {
		fprintf(stderr, "npsload fill: batch failed: %s, HTTP %ld: %.300s\n",
		        rc != CURLE_OK ? curl_easy_strerror(rc) : "ok", status, s->resp.p ? s->resp.p : "");
		(*http_errors)++;
		return;
	}
	json_error_t err;
	json_t *doc = json_loadb(s->resp.p, s->resp.len, 0, &err);
	if (!json_is_array(doc)) {
		fprintf(stderr, "npsload fill: not a JSON array: %.300s\n", s->resp.p);
		(*http_errors)++;
		json_decref(doc);
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(doc, i, item)
	{
		json_int_t st = json_integer_value(json_object_get(item, "status"));
		if (st == 201) {
			(*s201)++;
			if (json_is_object(json_object_get(item, "callback")))
				(*callbacks)++;
		} else {
			if (*other < 5)
				fprintf(stderr, "npsload fill: item status %lld\n", (long long)st);
			(*other)++;
		}
	}
	json_decref(doc);
}

static int cmd_fill(int argc, char **argv)
{
	if (argc != 8)
		die("usage: fill BASE TOKEN TAG TOTAL BATCH INFLIGHT");
	const char *base = argv[2], *token = argv[3], *tag = argv[4];
	long total = arg_long(argv[5], "TOTAL"), batch = arg_long(argv[6], "BATCH");
	long inflight = arg_long(argv[7], "INFLIGHT");
	if (batch < 1 || inflight < 1)
		die("BATCH and INFLIGHT must be at least 1");
	char url[512];
	snprintf(url, sizeof url, "%s/v1/surveys", base);
	struct curl_slist *hdr = auth_headers(token);
	CURLM *m = curl_multi_init();
	struct fill_slot *slots = xmalloc(sizeof *slots * (size_t)inflight);
	for (long i = 0; i < inflight; i++) {
		slots[i].e = curl_easy_init();
		if (!slots[i].e)
			die("curl_easy_init failed");
		common_opts(slots[i].e);
		curl_easy_setopt(slots[i].e, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].e, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(slots[i].e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(slots[i].e, CURLOPT_WRITEDATA, &slots[i].resp);
		curl_easy_setopt(slots[i].e, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(slots[i].e, CURLOPT_TIMEOUT, 120L);
	}
	long next = 1, s201 = 0, callbacks = 0, other = 0, http_errors = 0, sent = 0;
	int64_t start_real = now_ns(CLOCK_REALTIME), start = now_ns(CLOCK_MONOTONIC);
	int running = 0;
	for (;;) {
		for (long i = 0; i < inflight && next <= total; i++) {
			struct fill_slot *s = &slots[i];
			if (s->busy)
				continue;
			s->req.len = 0;
			s->resp.len = 0;
			buf_printf(&s->req, "[");
			for (long k = 0; k < batch && next <= total; k++, next++, sent++) {
				if (k)
					buf_printf(&s->req, ",");
				survey_json(&s->req, tag, next, true);
			}
			buf_printf(&s->req, "]");
			curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
			curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->req.p);
			s->busy = true;
			curl_multi_add_handle(m, s->e);
		}
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct fill_slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			CURLcode rc = msg->data.result;
			curl_multi_remove_handle(m, s->e);
			fill_account(s, rc, &s201, &callbacks, &other, &http_errors);
			s->busy = false;
		}
		if (running == 0 && next > total)
			break;
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double secs = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
	printf("FILL start_ns=%" PRId64 " sent=%ld s201=%ld callbacks=%ld other=%ld http_errors=%ld "
	       "seconds=%.3f rate=%.0f\n",
	       start_real, sent, s201, callbacks, other, http_errors, secs, (double)s201 / secs);
	for (long i = 0; i < inflight; i++) {
		curl_easy_cleanup(slots[i].e);
		free(slots[i].req.p);
		free(slots[i].resp.p);
	}
	free(slots);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdr);
	return 0;
}

/* ---------- claim: agents taking the next callback ---------- */

struct claimer {
	pthread_t thread;
	const char *url, *token;
	long per_thread, warmup;
	int64_t deadline; /* CLOCK_MONOTONIC */
	int64_t *lat, *began; /* latency and start (ns since the run began) of each measured claim */
	int64_t start;
	long n, s200, s204, s5xx, other, failed;
	char first_error[256];
};

static void *claim_thread(void *arg)
{
	struct claimer *c = arg;
	CURL *e = curl_easy_init();
	if (!e)
		die("curl_easy_init failed");
	struct curl_slist *hdr = auth_headers(c->token);
	struct buf resp = { 0 };
	common_opts(e);
	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 2L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
	for (long i = 0; i < c->warmup + c->per_thread; i++) {
		if (now_ns(CLOCK_MONOTONIC) > c->deadline)
			break;
		resp.len = 0;
		int64_t t0 = now_ns(CLOCK_MONOTONIC);
		CURLcode rc = curl_easy_perform(e);
		int64_t t1 = now_ns(CLOCK_MONOTONIC);
		long status = 0;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (i < c->warmup)
			continue;
		c->began[c->n] = t0 - c->start;
		c->lat[c->n++] = t1 - t0;
		if (rc != CURLE_OK) {
			c->failed++;
			if (!c->first_error[0])
				snprintf(c->first_error, sizeof c->first_error, "%s", curl_easy_strerror(rc));
		} else if (status == 200) {
			c->s200++;
		} else if (status == 204) {
			c->s204++;
		} else {
			if (status >= 500)
				c->s5xx++;
			else
				c->other++;
			if (!c->first_error[0])
				snprintf(c->first_error, sizeof c->first_error, "HTTP %ld: %.200s", status,
				         resp.p ? resp.p : "");
		}
	}
	free(resp.p);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(e);
	return NULL;
}

static int cmd_claim(int argc, char **argv)
{
	if (argc < 7)
		die("usage: claim BASE SECONDS PER_THREAD WARMUP TOKEN...");
	const char *base = argv[2];
	long secs = arg_long(argv[3], "SECONDS"), per_thread = arg_long(argv[4], "PER_THREAD");
	long warmup = arg_long(argv[5], "WARMUP");
	int nthreads = argc - 6;
	char url[512];
	snprintf(url, sizeof url, "%s/v1/callbacks/claim", base);
	struct claimer *c = xmalloc(sizeof *c * (size_t)nthreads);
	int64_t start = now_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < nthreads; i++) {
		c[i].url = url;
		c[i].token = argv[6 + i];
		c[i].per_thread = per_thread;
		c[i].warmup = warmup;
		c[i].deadline = start + secs * 1000000000LL;
		c[i].lat = xmalloc(sizeof(int64_t) * (size_t)(per_thread + 1));
		c[i].began = xmalloc(sizeof(int64_t) * (size_t)(per_thread + 1));
		c[i].start = start;
		if (pthread_create(&c[i].thread, NULL, claim_thread, &c[i]) != 0)
			die("pthread_create failed");
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(c[i].thread, NULL);
	double wall = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
	long n = 0, s200 = 0, s204 = 0, s5xx = 0, other = 0, failed = 0;
	for (int i = 0; i < nthreads; i++) {
		n += c[i].n;
		s200 += c[i].s200;
		s204 += c[i].s204;
		s5xx += c[i].s5xx;
		other += c[i].other;
		failed += c[i].failed;
		if (c[i].first_error[0])
			fprintf(stderr, "npsload claim: thread %d: %s\n", i, c[i].first_error);
	}
	/* Every claim's start and latency, so a slow tail can be told apart: clustered in time
	 * (something stalled them all) or spread (each waited for a CPU on its own). */
	const char *log_path = getenv("NPSLOAD_CLAIM_LOG");
	FILE *log = log_path ? fopen(log_path, "w") : NULL;
	if (log_path && !log)
		die("cannot write NPSLOAD_CLAIM_LOG");
	int64_t *all = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
	size_t k = 0;
	for (int i = 0; i < nthreads; i++) {
		memcpy(all + k, c[i].lat, sizeof(int64_t) * (size_t)c[i].n);
		k += (size_t)c[i].n;
		for (long j = 0; log && j < c[i].n; j++)
			fprintf(log, "%d %.3f %.3f\n", i, (double)c[i].began[j] / 1e6, (double)c[i].lat[j] / 1e6);
		free(c[i].lat);
		free(c[i].began);
	}
	if (log)
		fclose(log);
	qsort(all, k, sizeof *all, cmp_i64);
	printf("CLAIM threads=%d requests=%ld s200=%ld s204=%ld s5xx=%ld other=%ld failed=%ld "
	       "seconds=%.3f rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
	       nthreads, n, s200, s204, s5xx, other, failed, wall, (double)n / wall,
	       pct_ms(all, k, 50), pct_ms(all, k, 99), k ? (double)all[k - 1] / 1e6 : 0.0);
	free(all);
	free(c);
	return 0;
}

/* ---------- webhook: create one subscription ---------- */

static int cmd_webhook(int argc, char **argv)
{
	if (argc != 5)
		die("usage: webhook BASE TOKEN TARGET_URL");
	char url[512];
	snprintf(url, sizeof url, "%s/v1/webhooks", argv[2]);
	json_t *req = json_pack("{s:s, s:s, s:[s], s:s}", "url", argv[4], "format", "standard",
	                        "events", "survey.received", "description", "make bench");
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	struct curl_slist *hdr = auth_headers(argv[3]);
	struct buf resp = { 0 };
	CURL *e = curl_easy_init();
	if (!e || !body)
		die("out of memory");
	common_opts(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
	CURLcode rc = curl_easy_perform(e);
	long status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status != 201)
		die("POST /v1/webhooks: %s, HTTP %ld: %s", curl_easy_strerror(rc), status,
		    resp.p ? resp.p : "");
	json_t *doc = json_loadb(resp.p, resp.len, 0, NULL);
	json_int_t id = json_integer_value(json_object_get(doc, "id"));
	if (id <= 0)
		die("POST /v1/webhooks: no id in %s", resp.p);
	printf("%lld\n", (long long)id);
	json_decref(doc);
	free(resp.p);
	free(body);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(e);
	return 0;
}

static int cmd_webhook_off(int argc, char **argv)
{
	if (argc != 5)
		die("usage: webhook-off BASE TOKEN ID");
	char url[512];
	snprintf(url, sizeof url, "%s/v1/webhooks/%ld", argv[2], arg_long(argv[4], "ID"));
	struct curl_slist *hdr = auth_headers(argv[3]);
	CURL *e = curl_easy_init();
	if (!e)
		die("out of memory");
	common_opts(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{\"active\":false}");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	CURLcode rc = curl_easy_perform(e);
	long status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status < 200 || status > 299)
		die("PATCH %s: %s, HTTP %ld", url, curl_easy_strerror(rc), status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(e);
	return 0;
}

/* ---------- stream: surveys at a fixed rate ---------- */

#define STREAM_SLOTS 512

struct send {
	int64_t scheduled_ns, sent_ns, done_ns; /* sent_ns: CLOCK_REALTIME, others monotonic */
	int64_t answered_ns;                     /* CLOCK_REALTIME when the answer was read */
	long status;
	bool failed;
};

struct stream_slot {
	CURL *e;
	struct buf req;
	struct send *rec;
	bool busy;
};

static int on_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	struct stream_slot *s = arg;
	s->rec->sent_ns = now_ns(CLOCK_REALTIME);
	return CURL_PREREQFUNC_OK;
}

static int cmd_stream(int argc, char **argv)
{
	if (argc != 8)
		die("usage: stream BASE TOKEN TAG RATE SECONDS SENDLOG");
	const char *base = argv[2], *token = argv[3], *tag = argv[4], *logpath = argv[7];
	long rate = arg_long(argv[5], "RATE"), secs = arg_long(argv[6], "SECONDS");
	if (rate < 1)
		die("RATE must be at least 1");
	long total = rate * secs;
	char url[512];
	snprintf(url, sizeof url, "%s/v1/surveys", base);
	struct curl_slist *hdr = auth_headers(token);
	struct send *recs = xmalloc(sizeof *recs * (size_t)(total + 1));
	struct stream_slot *slots = xmalloc(sizeof *slots * STREAM_SLOTS);
	struct stream_slot *free_list[STREAM_SLOTS];
	int nfree = 0;
	for (int i = STREAM_SLOTS - 1; i >= 0; i--) {
		slots[i].e = curl_easy_init();
		if (!slots[i].e)
			die("curl_easy_init failed");
		common_opts(slots[i].e);
		curl_easy_setopt(slots[i].e, CURLOPT_URL, url);
		curl_easy_setopt(slots[i].e, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(slots[i].e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(slots[i].e, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(slots[i].e, CURLOPT_PREREQFUNCTION, on_prereq);
		curl_easy_setopt(slots[i].e, CURLOPT_PREREQDATA, &slots[i]);
		free_list[nfree++] = &slots[i];
	}
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)STREAM_SLOTS);
	const int64_t interval = 1000000000LL / rate;
	const int64_t start = now_ns(CLOCK_MONOTONIC);
	const int64_t hard_stop = start + (secs + 30) * 1000000000LL;
	long next = 0, done = 0;
	int64_t max_late = 0;
	int running = 0;
	while (done < total) {
		int64_t now = now_ns(CLOCK_MONOTONIC);
		if (now > hard_stop) {
			fprintf(stderr, "npsload stream: gave up waiting for %ld answers\n", total - done);
			break;
		}
		while (next < total && now >= start + next * interval && nfree > 0) {
			struct stream_slot *s = free_list[--nfree];
			s->rec = &recs[next];
			s->rec->scheduled_ns = start + next * interval;
			int64_t late = now - s->rec->scheduled_ns;
			if (late > max_late)
				max_late = late;
			s->req.len = 0;
			survey_json(&s->req, tag, next + 1, false);
			curl_easy_setopt(s->e, CURLOPT_POSTFIELDSIZE, (long)s->req.len);
			curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, s->req.p);
			s->busy = true;
			curl_multi_add_handle(m, s->e);
			next++;
		}
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct stream_slot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			s->rec->done_ns = now_ns(CLOCK_MONOTONIC);
			s->rec->answered_ns = now_ns(CLOCK_REALTIME);
			s->rec->failed = msg->data.result != CURLE_OK;
			curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &s->rec->status);
			curl_multi_remove_handle(m, s->e);
			s->busy = false;
			free_list[nfree++] = s;
			done++;
		}
		int wait_ms = 100;
		if (next < total && nfree > 0) {
			int64_t due = start + next * interval - now_ns(CLOCK_MONOTONIC);
			wait_ms = due <= 0 ? 0 : (int)((due + 999999) / 1000000);
		}
		if (wait_ms > 0)
			curl_multi_poll(m, NULL, 0, wait_ms, NULL);
	}
	double wall = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
	FILE *f = fopen(logpath, "w");
	if (!f)
		die("cannot write %s", logpath);
	long s201 = 0, non2xx = 0, errors = 0;
	int64_t *lat = xmalloc(sizeof(int64_t) * (size_t)(next + 1));
	size_t nlat = 0;
	int64_t first = 0, last = 0;
	for (long i = 0; i < next; i++) {
		struct send *r = &recs[i];
		if (!r->done_ns) {
			errors++;
			continue;
		}
		int64_t l = r->done_ns - r->scheduled_ns;
		lat[nlat++] = l;
		if (r->failed)
			errors++;
		else if (r->status == 201)
			s201++;
		else if (r->status < 200 || r->status > 299)
			non2xx++;
		if (!first || r->scheduled_ns < first)
			first = r->scheduled_ns;
		if (r->done_ns > last)
			last = r->done_ns;
		fprintf(f, "%s-%ld %" PRId64 " %ld %" PRId64 " %" PRId64 "\n", tag, i + 1, r->sent_ns,
		        r->failed ? 0L : r->status, l / 1000, r->answered_ns);
	}
	if (fclose(f) != 0)
		die("cannot write %s", logpath);
	qsort(lat, nlat, sizeof *lat, cmp_i64);
	printf("STREAM sent=%ld s201=%ld non2xx=%ld errors=%ld seconds=%.3f rate=%.0f p50_ms=%.2f "
	       "p99_ms=%.2f max_late_ms=%.2f\n",
	       next, s201, non2xx, errors, wall, secs ? (double)next / (double)secs : 0.0,
	       pct_ms(lat, nlat, 50), pct_ms(lat, nlat, 99), (double)max_late / 1e6);
	(void)first;
	(void)last;
	for (int i = 0; i < STREAM_SLOTS; i++) {
		if (slots[i].busy)
			curl_multi_remove_handle(m, slots[i].e);
		curl_easy_cleanup(slots[i].e);
		free(slots[i].req.p);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdr);
	free(slots);
	free(recs);
	free(lat);
	return 0;
}

/* ---------- wait: until the receiver has them all ---------- */

static int cmd_wait(int argc, char **argv)
{
	if (argc != 6)
		die("usage: wait RECEIVER_BASE PREFIX EXPECTED TIMEOUT_S");
	long expected = arg_long(argv[4], "EXPECTED"), timeout = arg_long(argv[5], "TIMEOUT_S");
	CURL *e = curl_easy_init();
	if (!e)
		die("curl_easy_init failed");
	char *prefix = curl_easy_escape(e, argv[3], 0);
	char url[1024];
	snprintf(url, sizeof url, "%s/count?prefix=%s", argv[2], prefix);
	curl_free(prefix);
	struct buf resp = { 0 };
	common_opts(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
	int64_t start = now_ns(CLOCK_MONOTONIC);
	long count = -1;
	for (;;) {
		resp.len = 0;
		if (curl_easy_perform(e) == CURLE_OK && resp.p)
			count = strtol(resp.p, NULL, 10);
		if (count >= expected)
			break;
		if (now_ns(CLOCK_MONOTONIC) - start > timeout * 1000000000LL)
			break;
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	printf("WAIT count=%ld expected=%ld seconds=%.3f ok=%d\n", count, expected,
	       (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9, count >= expected);
	free(resp.p);
	curl_easy_cleanup(e);
	return 0;
}

/* ---------- reports over the receiver's log ---------- */

struct arrival {
	int64_t at;
	char path[128], wid[64], type[64], rid[160];
};

static bool read_arrival(FILE *f, struct arrival *a)
{
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		long long at;
		if (sscanf(line, "%lld %127s %63s %63s %159s", &at, a->path, a->wid, a->type, a->rid) == 5) {
			a->at = at;
			return true;
		}
	}
	return false;
}

struct sent_rec {
	char rid[160];
	int64_t sent_ns, answered_ns, first_ns;
	int arrivals;
};

static int cmp_sent(const void *a, const void *b)
{
	return strcmp(((const struct sent_rec *)a)->rid, ((const struct sent_rec *)b)->rid);
}

static int cmd_alert_report(int argc, char **argv)
{
	if (argc != 5)
		die("usage: alert-report SENDLOG RECVLOG PATH");
	FILE *f = fopen(argv[2], "r");
	if (!f)
		die("cannot read %s", argv[2]);
	size_t n = 0, cap = 1024;
	struct sent_rec *s = xmalloc(sizeof *s * cap);
	char line[512];
	while (fgets(line, sizeof line, f)) {
		char rid[160];
		long long sent, lat_us, answered = 0;
		long status;
		if (sscanf(line, "%159s %lld %ld %lld %lld", rid, &sent, &status, &lat_us, &answered) < 3 ||
		    status != 201)
			continue;
		if (n == cap) {
			cap *= 2;
			s = realloc(s, sizeof *s * cap);
			if (!s)
				die("out of memory");
		}
		memset(&s[n], 0, sizeof s[n]);
		snprintf(s[n].rid, sizeof s[n].rid, "%s", rid);
		s[n].sent_ns = sent;
		s[n].answered_ns = answered;
		n++;
	}
	fclose(f);
	qsort(s, n, sizeof *s, cmp_sent);
	f = fopen(argv[3], "r");
	if (!f)
		die("cannot read %s", argv[3]);
	struct arrival a;
	long unknown = 0, duplicates = 0;
	while (read_arrival(f, &a)) {
		if (strcmp(a.path, argv[4]) != 0)
			continue;
		struct sent_rec key;
		snprintf(key.rid, sizeof key.rid, "%s", a.rid);
		struct sent_rec *hit = bsearch(&key, s, n, sizeof *s, cmp_sent);
		if (!hit) {
			unknown++;
			continue;
		}
		if (hit->arrivals == 0 || a.at < hit->first_ns)
			hit->first_ns = a.at;
		if (hit->arrivals++ > 0)
			duplicates++; /* a resend: at least once, so allowed, but counted */
	}
	fclose(f);
	int64_t *lat = xmalloc(sizeof(int64_t) * (n + 1));
	int64_t *after = xmalloc(sizeof(int64_t) * (n + 1));
	size_t k = 0, ka = 0;
	long missing = 0, negative = 0;
	for (size_t i = 0; i < n; i++) {
		if (!s[i].arrivals) {
			missing++;
			continue;
		}
		int64_t l = s[i].first_ns - s[i].sent_ns;
		if (l < 0)
			negative++;
		lat[k++] = l;
		if (s[i].answered_ns)
			after[ka++] = s[i].first_ns - s[i].answered_ns;
	}
	qsort(lat, k, sizeof *lat, cmp_i64);
	qsort(after, ka, sizeof *after, cmp_i64);
	printf("ALERT sent201=%zu matched=%zu missing=%ld duplicates=%ld unknown=%ld negative=%ld "
	       "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f after201_p50_ms=%.2f "
	       "after201_p99_ms=%.2f\n",
	       n, k, missing, duplicates, unknown, negative, pct_ms(lat, k, 50), pct_ms(lat, k, 90),
	       pct_ms(lat, k, 99), k ? (double)lat[k - 1] / 1e6 : 0.0, pct_ms(after, ka, 50),
	       pct_ms(after, ka, 99));
	free(lat);
	free(after);
	free(s);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_fanout_report(int argc, char **argv)
{
	if (argc != 6)
		die("usage: fanout-report RECVLOG PREFIX START_NS EXPECTED");
	const char *prefix = argv[3];
	size_t plen = strlen(prefix);
	long long start = strtoll(argv[4], NULL, 10);
	long expected = arg_long(argv[5], "EXPECTED");
	FILE *f = fopen(argv[2], "r");
	if (!f)
		die("cannot read %s", argv[2]);
	size_t n = 0, cap = 1024;
	char **ids = xmalloc(sizeof *ids * cap);
	int64_t first = 0, last = 0;
	struct arrival a;
	while (read_arrival(f, &a)) {
		if (strncmp(a.path, prefix, plen) != 0)
			continue;
		if (n == cap) {
			cap *= 2;
			ids = realloc(ids, sizeof *ids * cap);
			if (!ids)
				die("out of memory");
		}
		size_t len = strlen(a.path) + strlen(a.wid) + 2;
		ids[n] = xmalloc(len);
		snprintf(ids[n], len, "%s %s", a.path, a.wid);
		n++;
		if (!first || a.at < first)
			first = a.at;
		if (a.at > last)
			last = a.at;
	}
	fclose(f);
	qsort(ids, n, sizeof *ids, cmp_str);
	size_t unique = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
			unique++;
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	double recv_s = n > 1 ? (double)(last - first) / 1e9 : 0;
	double e2e_s = n ? (double)(last - start) / 1e9 : 0;
	printf("FANOUT deliveries=%zu unique=%zu expected=%ld missing=%ld recv_seconds=%.3f "
	       "recv_rate=%.0f e2e_seconds=%.3f e2e_rate=%.0f\n",
	       n, unique, expected, expected > (long)unique ? expected - (long)unique : 0L, recv_s,
	       recv_s > 0 ? (double)unique / recv_s : 0.0, e2e_s, e2e_s > 0 ? (double)unique / e2e_s : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: npsload fill|claim|webhook|webhook-off|stream|wait|alert-report|fanout-report ...");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		die("curl_global_init failed");
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *cmd = argv[1];
	int rc;
	if (strcmp(cmd, "fill") == 0)
		rc = cmd_fill(argc, argv);
	else if (strcmp(cmd, "claim") == 0)
		rc = cmd_claim(argc, argv);
	else if (strcmp(cmd, "webhook") == 0)
		rc = cmd_webhook(argc, argv);
	else if (strcmp(cmd, "webhook-off") == 0)
		rc = cmd_webhook_off(argc, argv);
	else if (strcmp(cmd, "stream") == 0)
		rc = cmd_stream(argc, argv);
	else if (strcmp(cmd, "wait") == 0)
		rc = cmd_wait(argc, argv);
	else if (strcmp(cmd, "alert-report") == 0)
		rc = cmd_alert_report(argc, argv);
	else if (strcmp(cmd, "fanout-report") == 0)
		rc = cmd_fanout_report(argc, argv);
	else
		die("unknown command %s", cmd);
	curl_global_cleanup();
	return rc;
}
