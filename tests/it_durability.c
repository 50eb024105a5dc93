/*
 * Durability and group commit, against the real daemon (issues 2 and 5):
 *  - kill -9 while 8 clients post: every acknowledged (201) answer is there after a restart;
 *  - SIGTERM with a request in flight, idle, and under load: exit 0, "stopped" logged, every
 *    201 stored;
 *  - concurrent duplicates, conflicts, invalid and unique answers each get their own right
 *    answer, and the stored count matches;
 *  - concurrent batches answer per item, in order;
 *  - a restart applies no migration twice;
 *  - a full disk: 503 with Retry-After, nothing of the refused write kept, every 201 kept
 *    (also after a restart);
 *  - a failed fdatasync: 503 from then on, exit status 1, every 201 kept after a restart.
 * Proof of storage is the idempotent retry: the identical body again must answer 200 with
 * the id the 201 gave (a lost answer would answer 201 again).
 */
#include <check.h>
#include <errno.h>
#include <curl/curl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define ANSWERED_AT "2026-11-01T10:00:00Z"
#define LOAD_THREADS 8
#define CLIENT_TIMEOUT_S 5L

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- a client that keeps its connection (one per thread) ---------- */

struct client {
	CURL *curl;
	struct curl_slist *headers;
	char url[128];
	struct growbuf resp;
};

static int client_init(struct client *c, const struct npsd_proc *p, const char *token)
{
	memset(c, 0, sizeof *c);
	c->curl = curl_easy_init();
	if (!c->curl)
		return -1;
	char authz[512];
	snprintf(authz, sizeof authz, "Authorization: Bearer %s", token);
	c->headers = curl_slist_append(c->headers, authz);
	c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	snprintf(c->url, sizeof c->url, "%s/v1/surveys", p->base_url);
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, growbuf_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->resp);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, CLIENT_TIMEOUT_S);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 2L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	return 0;
}

static void client_free(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->resp.data);
	memset(c, 0, sizeof *c);
}

/* POSTs body; returns the HTTP status, or -1 when no response came. *ret_json (may be NULL)
 * receives the parsed body. */
static long client_post(struct client *c, const char *body, json_t **ret_json)
{
	if (ret_json)
		*ret_json = NULL;
	c->resp.len = 0;
	if (c->resp.data)
		c->resp.data[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	if (curl_easy_perform(c->curl) != CURLE_OK)
		return -1;
	long status = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (ret_json && c->resp.len)
		*ret_json = json_loadb(c->resp.data, c->resp.len, 0, NULL);
	return status;
}

/* ---------- survey bodies ---------- */

/* The load answers: everything follows from (prefix, thread, n), so the identical body can
 * be rebuilt for the retry. A mix of scores 0-10, phones present, customers shared within a
 * thread so callbacks are opened and joined. */
static void load_body(char *out, size_t size, const char *prefix, int t, int n)
{
	int score = (t * 7 + n * 3) % 11;
	snprintf(out, size,
	         "{\"response_id\":\"%s-%d-%d\",\"customer\":{\"id\":\"C-%s-%d-%d\",\"name\":\"Load Test\","
	         "\"phone\":\"+3161%07d\"},\"touchpoint\":\"claim\",\"channel\":\"web\",\"score\":%d,"
	         "\"comment\":\"answer %d\",\"answered_at\":\"" ANSWERED_AT "\",\"contact_consent\":%s,"
	         "\"attributes\":{\"policy\":\"P-%d\",\"n\":%d}}",
	         prefix, t, n, prefix, t, n % 40, (t * 100000 + n % 40) % 10000000, score, n,
	         n % 5 ? "true" : "false", n, n);
}

/* ---------- load: N threads posting unique answers until told to stop ---------- */

struct acked {
	int n;
	int64_t id;
};

struct loader_thread {
	struct load *load;
	int t;
	struct acked *acked;
	size_t nacked, cap;
	size_t failures, other_status;
	long last_other_status;
	char last_other_body[512];
};

struct load {
	const struct npsd_proc *p;
	const char *token;
	const char *prefix;
	atomic_int stop;
	atomic_int started;
	pthread_t threads[LOAD_THREADS];
	struct loader_thread th[LOAD_THREADS];
};

static void *loader_main(void *arg)
{
	struct loader_thread *lt = arg;
	struct load *load = lt->load;
	struct client c;
	if (client_init(&c, load->p, load->token) < 0)
		return NULL;
	atomic_fetch_add(&load->started, 1);
	char body[1024];
	for (int n = 0; !atomic_load(&load->stop); n++) {
		load_body(body, sizeof body, load->prefix, lt->t, n);
		json_t *json = NULL;
		long status = client_post(&c, body, &json);
		if (status == 201) {
			if (lt->nacked == lt->cap) {
				lt->cap = lt->cap ? lt->cap * 2 : 1024;
				lt->acked = realloc(lt->acked, lt->cap * sizeof *lt->acked);
				if (!lt->acked)
					abort();
			}
			lt->acked[lt->nacked].n = n;
			lt->acked[lt->nacked].id = json_integer_value(json_object_get(json, "id"));
			lt->nacked++;
		} else if (status < 0) {
			lt->failures++;
			sleep_ms(5); /* the daemon is gone: no busy loop on refused connections */
		} else {
			lt->other_status++;
			lt->last_other_status = status;
			snprintf(lt->last_other_body, sizeof lt->last_other_body, "%s",
			         c.resp.data ? c.resp.data : "");
			if (status != 503)
				sleep_ms(1);
		}
		json_decref(json);
	}
	client_free(&c);
	return NULL;
}

static void load_start(struct load *load, const struct npsd_proc *p, const char *token, const char *prefix)
{
	memset(load, 0, sizeof *load);
	load->p = p;
	load->token = token;
	load->prefix = prefix;
	for (int t = 0; t < LOAD_THREADS; t++) {
		load->th[t].load = load;
		load->th[t].t = t;
		ck_assert_int_eq(pthread_create(&load->threads[t], NULL, loader_main, &load->th[t]), 0);
	}
	while (atomic_load(&load->started) < LOAD_THREADS)
		sleep_ms(1);
}

static size_t load_stop(struct load *load)
{
	atomic_store(&load->stop, 1);
	size_t total = 0;
	for (int t = 0; t < LOAD_THREADS; t++) {
		pthread_join(load->threads[t], NULL);
		total += load->th[t].nacked;
	}
	return total;
}

static void load_free(struct load *load)
{
	for (int t = 0; t < LOAD_THREADS; t++)
		free(load->th[t].acked);
}

/* Every acknowledged answer, posted again identically in batches of up to 500, must answer
 * 200 with the id its 201 gave. Returns how many were checked. */
static size_t verify_acked(const struct npsd_proc *p, const char *token, struct load *load)
{
	enum { CHUNK = 500 };
	struct client c;
	ck_assert_int_eq(client_init(&c, p, token), 0);
	curl_easy_setopt(c.curl, CURLOPT_TIMEOUT, 60L);
	size_t checked = 0, lost = 0, wrong_id = 0;
	char first_lost[128] = "";
	char *body = malloc((size_t)CHUNK * 1024 + 16);
	ck_assert_ptr_nonnull(body);
	for (int t = 0; t < LOAD_THREADS; t++) {
		struct loader_thread *lt = &load->th[t];
		for (size_t start = 0; start < lt->nacked; start += CHUNK) {
			size_t end = start + CHUNK < lt->nacked ? start + CHUNK : lt->nacked;
			size_t off = 0;
			body[off++] = '[';
			for (size_t i = start; i < end; i++) {
				if (i > start)
					body[off++] = ',';
				load_body(body + off, 1024, load->prefix, t, lt->acked[i].n);
				off += strlen(body + off);
			}
			body[off++] = ']';
			body[off] = '\0';
			json_t *json = NULL;
			long status = client_post(&c, body, &json);
			ck_assert_msg(status == 200, "retry batch answered %ld: %.300s", status,
			              c.resp.data ? c.resp.data : "(nothing)");
			ck_assert_msg(json_is_array(json) && json_array_size(json) == end - start,
			              "retry batch: expected an array of %zu results", end - start);
			for (size_t i = start; i < end; i++) {
				json_t *item = json_array_get(json, i - start);
				json_int_t st = json_integer_value(json_object_get(item, "status"));
				json_int_t id = json_integer_value(json_object_get(item, "id"));
				if (st != 200) {
					if (!lost++)
						snprintf(first_lost, sizeof first_lost,
						         "%s-%d-%d (status %lld)", load->prefix, t,
						         lt->acked[i].n, (long long)st);
				} else if (id != lt->acked[i].id) {
					wrong_id++;
				}
				checked++;
			}
			json_decref(json);
		}
	}
	free(body);
	client_free(&c);
	ck_assert_msg(lost == 0,
	              "%zu of %zu acknowledged answers were not stored after the restart; first: %s", lost,
	              checked, first_lost);
	ck_assert_msg(wrong_id == 0, "%zu acknowledged answers came back with another id", wrong_id);
	return checked;
}

/* Every stored survey, paged by the manager list: response_ids into *ret (malloc'ed). */
static size_t list_all(const struct npsd_proc *p, const char *manager, char ***ret)
{
	size_t n = 0, cap = 1024;
	char **ids = malloc(cap * sizeof *ids);
	char cursor[32] = "";
	for (int page = 0; page < 10000; page++) {
		char path[128];
		snprintf(path, sizeof path, "/v1/surveys?limit=500%s%s", cursor[0] ? "&cursor=" : "", cursor);
		struct http_result r;
		http_json(p, "GET", path, manager, NULL, &r);
		ck_assert_msg(r.status == 200, "GET %s answered %ld: %.300s", path, r.status, r.body);
		json_t *surveys = json_object_get(r.json, "surveys");
		ck_assert(json_is_array(surveys));
		size_t i;
		json_t *s;
		json_array_foreach (surveys, i, s) {
			if (n == cap) {
				cap *= 2;
				ids = realloc(ids, cap * sizeof *ids);
			}
			ids[n++] = strdup(json_string_value(json_object_get(s, "response_id")));
		}
		json_t *next = json_object_get(r.json, "next_cursor");
		if (!json_is_string(next)) {
			http_result_free(&r);
			break;
		}
		snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
		http_result_free(&r);
	}
	*ret = ids;
	return n;
}

static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool log_has(const struct npsd_proc *p, size_t from, const char *needle)
{
	char *log = npsd_log(p);
	bool found = log && strlen(log) >= from && strstr(log + from, needle);
	free(log);
	return found;
}

static size_t log_len(const struct npsd_proc *p)
{
	char *log = npsd_log(p);
	size_t n = log ? strlen(log) : 0;
	free(log);
	return n;
}

static size_t count_in(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *s = text; s && (s = strstr(s, needle)); s += strlen(needle))
		n++;
	return n;
}

static void report_load(const char *what, struct load *load, size_t acked, double secs)
{
	size_t failures = 0, other = 0;
	for (int t = 0; t < LOAD_THREADS; t++) {
		failures += load->th[t].failures;
		other += load->th[t].other_status;
		if (load->th[t].other_status)
			fprintf(stderr, "  %s: thread %d: %zu non-201 answers, last %ld: %s\n", what, t,
			        load->th[t].other_status, load->th[t].last_other_status,
			        load->th[t].last_other_body);
	}
	fprintf(stderr, "%s: %zu acknowledged in %.2f s, %zu transport failures, %zu other answers\n", what,
	        acked, secs, failures, other);
}

/* ---------- 1. kill -9 under load ---------- */

START_TEST(kill9_under_load_loses_no_acknowledged_answer)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "k9-ingest");
	char *manager = npsctl_key(&p, "manager", "k9-manager");
	ck_assert_ptr_nonnull(ingest);
	ck_assert_ptr_nonnull(manager);

	struct load load;
	double t0 = now_s();
	load_start(&load, &p, ingest, "k9");
	sleep_ms(1500);
	int status = npsd_stop(&p, SIGKILL);
	size_t acked = load_stop(&load);
	report_load("kill -9", &load, acked, now_s() - t0);
	ck_assert_int_eq(status, 128 + SIGKILL);
	for (int t = 0; t < LOAD_THREADS; t++)
		ck_assert_msg(load.th[t].other_status == 0,
		              "thread %d got %zu answers other than 201 before the kill (last %ld: %s)", t,
		              load.th[t].other_status, load.th[t].last_other_status,
		              load.th[t].last_other_body);
	ck_assert_msg(acked >= 300, "only %zu answers acknowledged in 1.5 s: the test would prove little",
	              acked);

	ck_assert_int_eq(npsd_restart(&p), 0);
	size_t checked = verify_acked(&p, ingest, &load);
	ck_assert_uint_eq(checked, acked);

	/* The rows are really there for the reader too: at least every acknowledged one. */
	char **ids;
	size_t n = list_all(&p, manager, &ids);
	ck_assert_msg(n >= acked, "the list shows %zu surveys, fewer than the %zu acknowledged", n, acked);
	free_ids(ids, n);

	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	load_free(&load);
	free(ingest);
	free(manager);
	npsd_cleanup(&p);
}
END_TEST

/* ---------- 2. SIGTERM ---------- */

struct slow_post {
	const struct npsd_proc *p;
	const char *token;
	const char *body;
	size_t len, off;
	atomic_int half_sent;
	atomic_int go;
	long status;
	int curl_code;
	struct growbuf resp;
};

static size_t slow_read(char *out, size_t size, size_t nitems, void *userdata)
{
	struct slow_post *s = userdata;
	size_t room = size * nitems;
	if (s->off == 0) {
		size_t half = s->len / 2;
		if (half > room)
			half = room;
		memcpy(out, s->body, half);
		s->off = half;
		atomic_store(&s->half_sent, 1);
		return half;
	}
	while (!atomic_load(&s->go))
		sleep_ms(1);
	size_t n = s->len - s->off < room ? s->len - s->off : room;
	memcpy(out, s->body + s->off, n);
	s->off += n;
	return n;
}

/* One POST whose body arrives in two halves, the second only when told. */
static void *slow_post_main(void *arg)
{
	struct slow_post *s = arg;
	CURL *curl = curl_easy_init();
	char url[128], authz[512];
	snprintf(url, sizeof url, "%s/v1/surveys", s->p->base_url);
	snprintf(authz, sizeof authz, "Authorization: Bearer %s", s->token);
	struct curl_slist *headers = NULL;
	headers = curl_slist_append(headers, authz);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, slow_read);
	curl_easy_setopt(curl, CURLOPT_READDATA, s);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, growbuf_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s->resp);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	s->curl_code = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &s->status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	atomic_store(&s->half_sent, 1); /* also when it failed before sending anything */
	return NULL;
}

static bool wait_log(const struct npsd_proc *p, size_t from, const char *needle, long timeout_ms)
{
	for (long waited = 0; waited < timeout_ms; waited += 10) {
		if (log_has(p, from, needle))
			return true;
		sleep_ms(10);
	}
	return false;
}

START_TEST(sigterm_finishes_the_request_in_flight_and_exits_0)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "term-ingest");
	ck_assert_ptr_nonnull(ingest);

	static const char body[] = "{\"response_id\":\"term-inflight-1\",\"customer\":{\"id\":\"C-term-1\","
	                           "\"phone\":\"+31612345678\"},"
	                           "\"touchpoint\":\"claim\",\"score\":4,\"comment\":\"slow "
	                           "sender\",\"answered_at\":\"" ANSWERED_AT "\"}";
	struct slow_post s = { .p = &p, .token = ingest, .body = body, .len = sizeof body - 1 };
	pthread_t thread;
	ck_assert_int_eq(pthread_create(&thread, NULL, slow_post_main, &s), 0);
	while (!atomic_load(&s.half_sent))
		sleep_ms(1);
	sleep_ms(200); /* the headers and the first half are with the daemon */

	size_t before = log_len(&p);
	kill(p.pid, SIGTERM);
	bool draining = wait_log(&p, before, "draining", 5000);
	sleep_ms(200); /* the daemon is now waiting for the request in flight */
	atomic_store(&s.go, 1);
	pthread_join(thread, NULL);
	ck_assert_msg(draining, "npsd did not log that it is draining after SIGTERM");
	ck_assert_msg(s.curl_code == CURLE_OK && s.status == 201,
	              "the request in flight at SIGTERM got curl %d, status %ld: %s", s.curl_code, s.status,
	              s.resp.data ? s.resp.data : "(nothing)");
	json_t *reply = json_loads(s.resp.data, 0, NULL);
	json_int_t id = json_integer_value(json_object_get(reply, "id"));
	json_decref(reply);
	free(s.resp.data);

	int status = npsd_stop(&p, SIGTERM); /* the second SIGTERM only waits for the exit */
	ck_assert_int_eq(status, 0);
	char *log = npsd_log(&p);
	ck_assert_msg(strstr(log + before, "stopped"), "no \"stopped\" in the log:\n%s", log + before);
	ck_assert_msg(!strstr(log + before, "still in flight"), "the drain timed out:\n%s", log + before);
	free(log);

	/* Stored, and an idle daemon stops cleanly too. */
	ck_assert_int_eq(npsd_restart(&p), 0);
	struct http_result r;
	http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
	ck_assert_msg(r.status == 200, "the answer acknowledged at SIGTERM: retry answered %ld: %s", r.status,
	              r.body);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "id")), id);
	http_result_free(&r);
	before = log_len(&p);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	ck_assert(log_has(&p, before, "stopped"));

	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

/* While npsd drains (a request still in flight after SIGTERM), liveness stays 200, so an
 * orchestrator does not kill it mid-drain, and readiness is a 503 unavailable with
 * Retry-After, so a load balancer sends elsewhere; both on new connections, which npsd still
 * accepts. /healthz was a 503 like every other request. */
START_TEST(while_draining_healthz_is_200_and_readyz_503)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "drain-probe");
	ck_assert_ptr_nonnull(ingest);
	static const char body[] = "{\"response_id\":\"drain-probe-1\",\"customer\":{\"id\":\"C-drain-1\"},"
	                           "\"touchpoint\":\"claim\",\"score\":9,\"answered_at\":\"" ANSWERED_AT "\"}";
	struct slow_post s = { .p = &p, .token = ingest, .body = body, .len = sizeof body - 1 };
	pthread_t thread;
	ck_assert_int_eq(pthread_create(&thread, NULL, slow_post_main, &s), 0);
	while (!atomic_load(&s.half_sent))
		sleep_ms(1);
	sleep_ms(200);

	size_t before = log_len(&p);
	kill(p.pid, SIGTERM);
	bool draining = wait_log(&p, before, "draining", 5000);
	struct http_result live, ready;
	int live_rc = http_do(&p, "GET", "/healthz", NULL, NULL, NULL, 0, &live);
	int ready_rc = http_do(&p, "GET", "/readyz", NULL, NULL, NULL, 0, &ready);
	atomic_store(&s.go, 1);
	pthread_join(thread, NULL);
	ck_assert_msg(draining, "npsd did not log that it is draining after SIGTERM");
	ck_assert_msg(live_rc == 0 && live.status == 200 && live.json &&
	                      strcmp(sget(live.json, "status"), "ok") == 0,
	              "/healthz while draining: curl %d, %ld %s", live.curl_code, live.status,
	              live.body ? live.body : "");
	char *retry = http_header(&ready, "Retry-After");
	json_t *error = json_object_get(ready.json, "error");
	ck_assert_msg(ready_rc == 0 && ready.status == 503 && error && strcmp(sget(error, "code"), "unavailable") == 0 &&
	                      retry && strtol(retry, NULL, 10) > 0,
	              "/readyz while draining: curl %d, %ld, Retry-After %s: %s", ready.curl_code, ready.status,
	              retry ? retry : "(none)", ready.body ? ready.body : "");
	free(retry);
	http_result_free(&live);
	http_result_free(&ready);
	ck_assert_msg(s.curl_code == CURLE_OK && s.status == 201, "the request in flight got curl %d, status %ld",
	              s.curl_code, s.status);
	free(s.resp.data);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

/* A client that sends its body a byte at a time (each resets connection_timeout) holds no
 * shutdown hostage: nothing of it is on storage, so once the drain's 10 s are up npsd cuts
 * it off and exits 0 (it used to wait for the client for as long as it kept sending). */
START_TEST(sigterm_does_not_wait_for_a_stalled_upload)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "stall-ingest");
	ck_assert_ptr_nonnull(ingest);
	int fd = raw_connect(&p);
	ck_assert_int_ge(fd, 0);
	char head[512];
	snprintf(head, sizeof head,
	         "POST /v1/surveys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
	         "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
	         ingest);
	ck_assert_int_eq(raw_send(fd, head), 0);
	sleep_ms(300);

	double t0 = now_s();
	kill(p.pid, SIGTERM);
	int status = -1;
	pid_t done = 0;
	while (done == 0 && now_s() - t0 < 40) {
		(void)raw_send(fd, " "); /* the stalled client goes on, a byte at a time */
		sleep_ms(500);
		done = waitpid(p.pid, &status, WNOHANG);
	}
	double took = now_s() - t0;
	close(fd);
	ck_assert_msg(done == p.pid, "npsd had not stopped %.0f s after SIGTERM", took);
	p.pid = 0;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "npsd's exit status %d", status);
	ck_assert_msg(took < 15, "npsd took %.1f s to stop (the drain is 10 s)", took);
	char *log = npsd_log(&p);
	ck_assert_msg(strstr(log, "closing 1 connections"), "the log does not say it cut the upload off:\n%s", log);
	free(log);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

START_TEST(sigterm_under_load_exits_0_and_keeps_every_201)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "term-load");
	ck_assert_ptr_nonnull(ingest);

	struct load load;
	double t0 = now_s();
	load_start(&load, &p, ingest, "tl");
	sleep_ms(1000);
	size_t before = log_len(&p);
	/* The clients keep posting through the shutdown, as a survey platform would: they stop
	 * only once npsd has exited. */
	double t_term = now_s();
	int status = npsd_stop(&p, SIGTERM);
	double stop_secs = now_s() - t_term;
	size_t acked = load_stop(&load);
	report_load("SIGTERM under load", &load, acked, now_s() - t0);
	fprintf(stderr, "SIGTERM under load: exit %d after %.2f s\n", status, stop_secs);
	char *log = npsd_log(&p);
	char *tail = strdup(log + before);
	free(log);
	ck_assert_msg(acked >= 300, "only %zu answers acknowledged: the test would prove little", acked);
	/* Anything else than 201 or a refused connection must be a 503 while shutting down. */
	for (int t = 0; t < LOAD_THREADS; t++)
		ck_assert_msg(load.th[t].other_status == 0 || load.th[t].last_other_status == 503,
		              "thread %d got %ld: %s", t, load.th[t].last_other_status,
		              load.th[t].last_other_body);

	/* Durability first (it holds even when the exit went wrong), then the clean exit. */
	ck_assert_int_eq(npsd_restart(&p), 0);
	ck_assert_uint_eq(verify_acked(&p, ingest, &load), acked);
	ck_assert_msg(status == 0, "npsd exited with %d after SIGTERM under load; its log since SIGTERM:\n%s",
	              status, tail);
	ck_assert_msg(strstr(tail, "stopped"), "no \"stopped\" in the log:\n%s", tail);
	free(tail);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	load_free(&load);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

/* ---------- 3. group commit correctness ---------- */

#define GC_THREADS 16
#define GC_ROUNDS 40

enum kind { K_UNIQUE, K_DUP, K_CONFLICT, K_INVALID, K_RETRY };

struct planned {
	enum kind kind;
	int group;                          /* dup/conflict group, or the unique answer a retry repeats */
	int variant;                        /* conflict: which content */
	const char *want_code, *want_field; /* invalid */
	char body[640];
	/* results */
	long status;
	json_t *json;
};

struct gc_thread {
	const struct npsd_proc *p;
	const char *token;
	pthread_barrier_t *barrier;
	struct planned *plan[GC_ROUNDS];
};

static void *gc_main(void *arg)
{
	struct gc_thread *g = arg;
	struct client c;
	int ok = client_init(&c, g->p, g->token);
	curl_easy_setopt(c.curl, CURLOPT_TIMEOUT, 30L);
	for (int r = 0; r < GC_ROUNDS; r++) {
		pthread_barrier_wait(g->barrier); /* each round's requests go out together */
		struct planned *pl = g->plan[r];
		pl->status = ok == 0 ? client_post(&c, pl->body, &pl->json) : -1;
	}
	client_free(&c);
	return NULL;
}

static void unique_body(char *out, size_t size, int u)
{
	snprintf(out, size,
	         "{\"response_id\":\"gc-u-%d\",\"customer\":{\"id\":\"C-gc-u-%d\",\"phone\":\"+3162%07d\"},"
	         "\"touchpoint\":\"purchase\",\"score\":%d,\"answered_at\":\"" ANSWERED_AT "\"}",
	         u, u % 37, u, u % 11);
}

static const struct invalid_case {
	const char *rest; /* what follows the unique response_id */
	const char *code, *field;
} invalid_cases[] = {
	{ "\"customer\":{\"id\":\"C-bad\"},\"touchpoint\":\"claim\",\"score\":11}", "invalid_field",
	  "score" },
	{ "\"customer\":{\"id\":\"C-bad\"},\"score\":5}", "missing_field", "touchpoint" },
	{ "\"customer\":{\"id\":\"C-bad\",\"phone\":\"0612\"},\"touchpoint\":\"claim\","
	  "\"score\":5}",
	  "invalid_field", "customer.phone" },
	{ "\"customer\":{\"id\":\"C-bad\"},\"touchpoint\":\"claim\",\"score\":5,"
	  "\"colour\":\"red\"}",
	  "invalid_field", "colour" },
	{ "\"touchpoint\":\"claim\",\"score\":5}", "missing_field", "customer" },
	{ "\"customer\":{\"id\":\"C-bad\"},\"touchpoint\":\"Claim!\",\"score\":5}", "invalid_field",
	  "touchpoint" },
	{ "\"customer\":{\"id\":\"C-bad\"},\"touchpoint\":\"claim\",\"score\":\"7\"}", "invalid_field",
	  "score" },
};
#define NINVALID (sizeof invalid_cases / sizeof invalid_cases[0])

static void dup_body(char *out, size_t size, int g)
{
	snprintf(out, size,
	         "{\"response_id\":\"gc-dup-%d\",\"customer\":{\"id\":\"C-gc-dup-%d\",\"name\":\"D\","
	         "\"phone\":\"+3163%07d\"},"
	         "\"touchpoint\":\"renewal\",\"channel\":\"app\",\"score\":%d,\"comment\":\"same\","
	         "\"answered_at\":\"" ANSWERED_AT "\",\"attributes\":{\"k\":\"v\"}}",
	         g, g, g, g % 11);
}

static const int conflict_scores[] = { 2, 9 };

static void conflict_body(char *out, size_t size, int g, int variant)
{
	snprintf(out, size,
	         "{\"response_id\":\"gc-cf-%d\",\"customer\":{\"id\":\"C-gc-cf-%d\",\"phone\":\"+3164%07d\"},"
	         "\"touchpoint\":\"claim\",\"score\":%d,\"answered_at\":\"" ANSWERED_AT "\"}",
	         g, g, g, conflict_scores[variant]);
}

static void shuffle(struct planned **a, size_t n, unsigned *seed)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand_r(seed) % (i + 1);
		struct planned *tmp = a[i];
		a[i] = a[j];
		a[j] = tmp;
	}
}

START_TEST(group_commit_gives_each_request_its_own_answer)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "gc-ingest");
	char *manager = npsctl_key(&p, "manager", "gc-manager");
	ck_assert_ptr_nonnull(ingest);
	ck_assert_ptr_nonnull(manager);

	/* Each round of 16: 4 copies of one answer, 4 posts of one response_id with two
	 * contents (2 + 2), 2 invalid, 5 unique, 1 identical retry of an earlier round's
	 * unique answer. Shuffled over the threads, sent together. */
	enum { PER_ROUND = GC_THREADS };
	static struct planned plan[GC_ROUNDS][PER_ROUND];
	memset(plan, 0, sizeof plan);
	unsigned seed = 12345;
	int unique = 0, bad = 0;
	int first_unique_of_round[GC_ROUNDS];
	for (int r = 0; r < GC_ROUNDS; r++) {
		struct planned *row = plan[r];
		int k = 0;
		for (int i = 0; i < 4; i++, k++) {
			row[k].kind = K_DUP;
			row[k].group = r;
			dup_body(row[k].body, sizeof row[k].body, r);
		}
		for (int i = 0; i < 4; i++, k++) {
			row[k].kind = K_CONFLICT;
			row[k].group = r;
			row[k].variant = i % 2;
			conflict_body(row[k].body, sizeof row[k].body, r, i % 2);
		}
		for (int i = 0; i < 2; i++, k++, bad++) {
			const struct invalid_case *ic = &invalid_cases[(size_t)bad % NINVALID];
			row[k].kind = K_INVALID;
			row[k].want_code = ic->code;
			row[k].want_field = ic->field;
			snprintf(row[k].body, sizeof row[k].body, "{\"response_id\":\"gc-bad-%d\",%s", bad,
			         ic->rest);
		}
		first_unique_of_round[r] = unique;
		for (int i = 0; i < 5; i++, k++, unique++) {
			row[k].kind = K_UNIQUE;
			row[k].group = unique;
			unique_body(row[k].body, sizeof row[k].body, unique);
		}
		row[k].kind = K_RETRY;
		if (r == 0) { /* nothing earlier to retry: one more unique */
			row[k].kind = K_UNIQUE;
			row[k].group = unique;
			unique_body(row[k].body, sizeof row[k].body, unique++);
		} else {
			row[k].group = first_unique_of_round[r - 1] + rand_r(&seed) % 5;
			unique_body(row[k].body, sizeof row[k].body, row[k].group);
		}
		k++;
		ck_assert_int_eq(k, PER_ROUND);
	}

	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, GC_THREADS);
	static struct gc_thread threads[GC_THREADS];
	pthread_t tids[GC_THREADS];
	for (int r = 0; r < GC_ROUNDS; r++) {
		struct planned *order[PER_ROUND];
		for (int i = 0; i < PER_ROUND; i++)
			order[i] = &plan[r][i];
		shuffle(order, PER_ROUND, &seed);
		for (int t = 0; t < GC_THREADS; t++)
			threads[t].plan[r] = order[t];
	}
	double t0 = now_s();
	for (int t = 0; t < GC_THREADS; t++) {
		threads[t].p = &p;
		threads[t].token = ingest;
		threads[t].barrier = &barrier;
		ck_assert_int_eq(pthread_create(&tids[t], NULL, gc_main, &threads[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(tids[t], NULL);
	pthread_barrier_destroy(&barrier);
	fprintf(stderr, "group commit: %d requests in %.2f s\n", GC_ROUNDS * PER_ROUND, now_s() - t0);

	/* Survey ids of the unique answers, for the retries. */
	int64_t *unique_id = calloc((size_t)unique, sizeof *unique_id);
	for (int r = 0; r < GC_ROUNDS; r++)
		for (int i = 0; i < PER_ROUND; i++)
			if (plan[r][i].kind == K_UNIQUE && plan[r][i].status == 201)
				unique_id[plan[r][i].group] =
				        json_integer_value(json_object_get(plan[r][i].json, "id"));

	int64_t conflict_id[GC_ROUNDS] = { 0 };
	int conflict_winner[GC_ROUNDS];
	for (int r = 0; r < GC_ROUNDS; r++) {
		struct planned *row = plan[r];
		/* No request goes unanswered and none gets a 5xx. */
		for (int i = 0; i < PER_ROUND; i++)
			ck_assert_msg(row[i].status > 0 && row[i].status < 500, "round %d: %s answered %ld",
			              r, row[i].body, row[i].status);

		/* Duplicates: exactly one 201, the others 200 with the very same body. */
		int created = 0;
		json_t *first = NULL;
		for (int i = 0; i < PER_ROUND; i++) {
			if (row[i].kind != K_DUP)
				continue;
			ck_assert_msg(row[i].status == 201 || row[i].status == 200,
			              "duplicate %d answered %ld", r, row[i].status);
			created += row[i].status == 201;
			if (!first)
				first = row[i].json;
			ck_assert_msg(json_equal(first, row[i].json),
			              "duplicates of gc-dup-%d got different bodies", r);
		}
		ck_assert_msg(created == 1, "gc-dup-%d: %d answers of 201 for 4 identical posts", r, created);

		/* Conflicts: one 201; the same content again 200 with the same id; the other 409. */
		created = 0;
		conflict_winner[r] = -1;
		for (int i = 0; i < PER_ROUND; i++)
			if (row[i].kind == K_CONFLICT && row[i].status == 201) {
				created++;
				conflict_winner[r] = row[i].variant;
				conflict_id[r] = json_integer_value(json_object_get(row[i].json, "id"));
			}
		ck_assert_msg(created == 1, "gc-cf-%d: %d answers of 201", r, created);
		for (int i = 0; i < PER_ROUND; i++) {
			if (row[i].kind != K_CONFLICT || row[i].status == 201)
				continue;
			if (row[i].variant == conflict_winner[r]) {
				ck_assert_msg(row[i].status == 200,
				              "gc-cf-%d: the winning content again answered %ld", r,
				              row[i].status);
				ck_assert_int_eq(json_integer_value(json_object_get(row[i].json, "id")),
				                 conflict_id[r]);
			} else {
				ck_assert_msg(row[i].status == 409,
				              "gc-cf-%d: the other content answered %ld", r, row[i].status);
				json_t *err = json_object_get(row[i].json, "error");
				ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "conflict");
			}
		}

		for (int i = 0; i < PER_ROUND; i++) {
			struct planned *pl = &row[i];
			if (pl->kind == K_INVALID) {
				ck_assert_msg(pl->status == 400, "%s answered %ld", pl->body, pl->status);
				json_t *err = json_object_get(pl->json, "error");
				ck_assert_msg(err, "400 without an error object for %s", pl->body);
				ck_assert_str_eq(json_string_value(json_object_get(err, "code")),
				                 pl->want_code);
				ck_assert_str_eq(json_string_value(json_object_get(err, "field")),
				                 pl->want_field);
			} else if (pl->kind == K_UNIQUE) {
				ck_assert_msg(pl->status == 201, "%s answered %ld", pl->body, pl->status);
				char want[32];
				snprintf(want, sizeof want, "gc-u-%d", pl->group);
				ck_assert_str_eq(json_string_value(json_object_get(pl->json, "response_id")),
				                 want);
			} else if (pl->kind == K_RETRY) {
				ck_assert_msg(pl->status == 200, "retry of gc-u-%d answered %ld", pl->group,
				              pl->status);
				ck_assert_int_eq(json_integer_value(json_object_get(pl->json, "id")),
				                 unique_id[pl->group]);
			}
		}
	}

	/* Stored: exactly the distinct response_ids that were accepted, each once. */
	char **ids;
	size_t n = list_all(&p, manager, &ids);
	size_t want = (size_t)unique + 2 * GC_ROUNDS;
	ck_assert_msg(n == want, "%zu surveys stored, expected %zu", n, want);
	qsort(ids, n, sizeof *ids, cmp_str);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "response_id %s listed twice", ids[i]);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strncmp(ids[i], "gc-bad-", 7) != 0, "invalid answer %s was stored", ids[i]);
	free_ids(ids, n);

	/* The conflicting answers kept the winner's score. */
	for (int r = 0; r < GC_ROUNDS; r += 7) {
		char path[64];
		snprintf(path, sizeof path, "/v1/surveys/%lld", (long long)conflict_id[r]);
		struct http_result res;
		http_json(&p, "GET", path, manager, NULL, &res);
		ck_assert_int_eq(res.status, 200);
		ck_assert_int_eq(json_integer_value(json_object_get(res.json, "score")),
		                 conflict_scores[conflict_winner[r]]);
		http_result_free(&res);
	}

	for (int r = 0; r < GC_ROUNDS; r++)
		for (int i = 0; i < PER_ROUND; i++)
			json_decref(plan[r][i].json);
	free(unique_id);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	free(ingest);
	free(manager);
	npsd_cleanup(&p);
}
END_TEST

/* ---------- 4. concurrent batches ---------- */

#define BATCH_THREADS 6
#define BATCHES_PER_THREAD 4
#define BATCH_ITEMS 50

static bool batch_item_invalid(int i)
{
	return i % 13 == 5;
}

static char *batch_body(int t, int b)
{
	size_t cap = BATCH_ITEMS * 512 + 16, off = 0;
	char *body = malloc(cap);
	body[off++] = '[';
	for (int i = 0; i < BATCH_ITEMS; i++) {
		if (i)
			body[off++] = ',';
		int score = (t + b + i) % 11;
		if (batch_item_invalid(i)) /* alternately a bad score and a bad phone */
			off += (size_t)snprintf(body + off, cap - off,
			                        "{\"response_id\":\"bt-%d-%d-%d\",\"customer\":{\"id\":\"C-"
			                        "bt-%d\",\"phone\":\"%s\"},"
			                        "\"touchpoint\":\"claim\",\"score\":%d}",
			                        t, b, i, i, (i / 13) % 2 ? "+31 6 12" : "+31612345678",
			                        (i / 13) % 2 ? 5 : -1);
		else
			off += (size_t)snprintf(
			        body + off, cap - off,
			        "{\"response_id\":\"bt-%d-%d-%d\",\"customer\":{\"id\":\"C-bt-%d-%d\","
			        "\"phone\":\"+3165%07d\"},\"touchpoint\":\"claim\",\"score\":%d,"
			        "\"answered_at\":\"" ANSWERED_AT "\"}",
			        t, b, i, t, i % 9, t * 1000 + i, score);
	}
	body[off++] = ']';
	body[off] = '\0';
	return body;
}

struct batch_thread {
	const struct npsd_proc *p;
	const char *token;
	pthread_barrier_t *barrier;
	int t;
	long status[BATCHES_PER_THREAD];
	json_t *json[BATCHES_PER_THREAD];
};

static void *batch_main(void *arg)
{
	struct batch_thread *bt = arg;
	struct client c;
	int ok = client_init(&c, bt->p, bt->token);
	curl_easy_setopt(c.curl, CURLOPT_TIMEOUT, 30L);
	pthread_barrier_wait(bt->barrier);
	for (int b = 0; b < BATCHES_PER_THREAD; b++) {
		char *body = batch_body(bt->t, b);
		bt->status[b] = ok == 0 ? client_post(&c, body, &bt->json[b]) : -1;
		free(body);
	}
	client_free(&c);
	return NULL;
}

/* Checks one batch's results; want_status is 201 the first time, 200 for a retry. Fills
 * ids (may be NULL) or compares with them. */
static void check_batch(int t, int b, long status, json_t *json, int want_status, int64_t *ids)
{
	ck_assert_msg(status == 200, "batch %d/%d answered %ld", t, b, status);
	ck_assert_msg(json_is_array(json) && json_array_size(json) == BATCH_ITEMS,
	              "batch %d/%d: not %d results", t, b, BATCH_ITEMS);
	for (int i = 0; i < BATCH_ITEMS; i++) {
		json_t *item = json_array_get(json, (size_t)i);
		json_int_t st = json_integer_value(json_object_get(item, "status"));
		if (batch_item_invalid(i)) {
			ck_assert_msg(st == 400, "batch %d/%d item %d: status %lld, expected 400", t, b, i,
			              (long long)st);
			json_t *err = json_object_get(item, "error");
			const char *field = json_string_value(json_object_get(err, "field"));
			ck_assert_str_eq(field ? field : "(none)", (i / 13) % 2 ? "customer.phone" : "score");
			continue;
		}
		ck_assert_msg(st == want_status, "batch %d/%d item %d: status %lld, expected %d", t, b, i,
		              (long long)st, want_status);
		char want[48];
		snprintf(want, sizeof want, "bt-%d-%d-%d", t, b, i);
		const char *rid = json_string_value(json_object_get(item, "response_id"));
		ck_assert_str_eq(rid ? rid : "(none)", want);
		int64_t id = json_integer_value(json_object_get(item, "id"));
		ck_assert_msg(id > 0, "batch %d/%d item %d: no id", t, b, i);
		if (want_status == 201)
			ids[i] = id;
		else
			ck_assert_int_eq(id, ids[i]);
	}
}

START_TEST(concurrent_batches_answer_per_item_in_order)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "bt-ingest");
	char *manager = npsctl_key(&p, "manager", "bt-manager");
	ck_assert_ptr_nonnull(ingest);
	ck_assert_ptr_nonnull(manager);

	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, BATCH_THREADS);
	static struct batch_thread threads[BATCH_THREADS];
	pthread_t tids[BATCH_THREADS];
	for (int t = 0; t < BATCH_THREADS; t++) {
		threads[t] = (struct batch_thread){ .p = &p, .token = ingest, .barrier = &barrier, .t = t };
		ck_assert_int_eq(pthread_create(&tids[t], NULL, batch_main, &threads[t]), 0);
	}
	for (int t = 0; t < BATCH_THREADS; t++)
		pthread_join(tids[t], NULL);
	pthread_barrier_destroy(&barrier);

	static int64_t ids[BATCH_THREADS][BATCHES_PER_THREAD][BATCH_ITEMS];
	int valid_per_batch = 0;
	for (int i = 0; i < BATCH_ITEMS; i++)
		valid_per_batch += !batch_item_invalid(i);
	for (int t = 0; t < BATCH_THREADS; t++)
		for (int b = 0; b < BATCHES_PER_THREAD; b++) {
			check_batch(t, b, threads[t].status[b], threads[t].json[b], 201, ids[t][b]);
			json_decref(threads[t].json[b]);
		}

	/* A batch sent again: every valid item 200 with its id, the invalid ones 400 again. */
	char *body = batch_body(2, 1);
	struct http_result r;
	http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
	free(body);
	check_batch(2, 1, r.status, r.json, 200, ids[2][1]);
	http_result_free(&r);

	char **list;
	size_t n = list_all(&p, manager, &list);
	ck_assert_uint_eq(n, (size_t)(BATCH_THREADS * BATCHES_PER_THREAD * valid_per_batch));
	free_ids(list, n);

	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	free(ingest);
	free(manager);
	npsd_cleanup(&p);
}
END_TEST

/* ---------- 5. restart: migrations once, data kept ---------- */

/* ---------- a full disk ---------- */

#define FULL_BATCH 40
#define FULL_MAX_ROUNDS 40
#define FULL_MAX_ITEMS (FULL_BATCH * (FULL_MAX_ROUNDS + 4))

/* One answer of round r, item i, as its own JSON text (a retry posts it again as it was). */
static char *full_item(int round, int i)
{
	char comment[3001];
	memset(comment, 'x', sizeof comment - 1);
	comment[sizeof comment - 1] = '\0';
	char *text = NULL;
	ck_assert_int_ge(asprintf(&text,
	                          "{\"response_id\":\"full-%d-%d\",\"customer\":{\"id\":\"C-full-%d-%d\"},"
	                          "\"touchpoint\":\"claim\",\"score\":9,\"comment\":\"%s\",\"answered_at\":"
	                          "\"" ANSWERED_AT "\"}",
	                          round, i, round, i, comment),
	                 0);
	return text;
}

struct full_state {
	char *items[FULL_MAX_ITEMS]; /* acknowledged answers, as posted */
	json_int_t ids[FULL_MAX_ITEMS];
	int n;
};

/* Posts round r as one batch; returns the HTTP status. On 200 every item must be a 201,
 * and each is noted as acknowledged. *refused receives the items of a batch that was not
 * stored (caller frees them). */
static long post_full_round(const struct npsd_proc *p, const char *token, int round, struct full_state *st,
                            char **refused)
{
	char *items[FULL_BATCH];
	size_t total = 2;
	for (int i = 0; i < FULL_BATCH; i++) {
		items[i] = full_item(round, i);
		total += strlen(items[i]) + 1;
	}
	char *body = malloc(total + 1), *at = body;
	*at++ = '[';
	for (int i = 0; i < FULL_BATCH; i++) {
		if (i)
			*at++ = ',';
		size_t len = strlen(items[i]);
		memcpy(at, items[i], len);
		at += len;
	}
	*at++ = ']';
	*at = '\0';
	struct http_result r;
	ck_assert_int_eq(http_json(p, "POST", "/v1/surveys", token, body, &r), 0);
	free(body);
	long status = r.status;
	if (status == 200) {
		ck_assert_uint_eq(json_array_size(r.json), FULL_BATCH);
		for (int i = 0; i < FULL_BATCH; i++) {
			json_t *item = json_array_get(r.json, (size_t)i);
			ck_assert_int_eq(iget(item, "status"), 201);
			ck_assert_int_lt(st->n, FULL_MAX_ITEMS);
			st->ids[st->n] = iget(item, "id");
			st->items[st->n++] = items[i];
		}
	} else {
		ck_assert_msg(status == 503, "a batch on a full disk answered %ld: %s", status, r.body);
		json_t *err = json_object_get(r.json, "error");
		ck_assert_str_eq(sget(err, "code"), "unavailable");
		char *retry = http_header(&r, "Retry-After");
		ck_assert_msg(retry && strtol(retry, NULL, 10) > 0, "a 503 without Retry-After");
		free(retry);
		for (int i = 0; i < FULL_BATCH; i++)
			refused[i] = items[i];
	}
	http_result_free(&r);
	return status;
}

/* Every acknowledged answer is stored: its identical retry answers 200 with its id. */
static void assert_all_stored(const struct npsd_proc *p, const char *token, char *const *bodies,
                              const json_int_t *ids, int n)
{
	for (int i = 0; i < n; i++) {
		struct http_result r;
		ck_assert_int_eq(http_json(p, "POST", "/v1/surveys", token, bodies[i], &r), 0);
		ck_assert_msg(r.status == 200, "acknowledged answer %d: its retry answered %ld", i, r.status);
		ck_assert_int_eq(iget(r.json, "id"), ids[i]);
		http_result_free(&r);
	}
}

static void set_file_limit(pid_t pid, rlim_t bytes)
{
	struct rlimit limit = { .rlim_cur = bytes, .rlim_max = RLIM_INFINITY };
	ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, &limit, NULL), 0);
}

/* A disk that fills up: writes get 503 with Retry-After and nothing of them is kept; every
 * answer acknowledged before and after is there, also after a restart. A file size limit,
 * put on the running daemon, stands in for the full disk. */
START_TEST(a_full_disk_answers_503_and_keeps_every_201)
{
	/* SIGXFSZ is left to npsd: with its default action the limit killed it (exit 153). */
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "full-ingest");
	ck_assert_ptr_nonnull(ingest);
	static struct full_state st;
	char *refused[FULL_BATCH] = { 0 };
	int round = 0;
	for (; round < 3; round++)
		ck_assert_int_eq(post_full_round(&p, ingest, round, &st, refused), 200);

	char wal[256];
	snprintf(wal, sizeof wal, "%s-wal", p.db_path);
	struct stat sb;
	ck_assert_int_eq(stat(wal, &sb), 0);
	set_file_limit(p.pid, (rlim_t)sb.st_size + 256 * 1024);
	long status = 200;
	while (status == 200 && round < FULL_MAX_ROUNDS)
		status = post_full_round(&p, ingest, round++, &st, refused);
	ck_assert_msg(status == 503, "the disk never filled up in %d rounds", round);
	/* Full for a while: each round's commits fail, and the log says so once, not per commit. */
	for (int more = 0; more < 3; more++) {
		for (int i = 0; i < FULL_BATCH; i++) {
			free(refused[i]);
			refused[i] = NULL;
		}
		ck_assert_int_eq(post_full_round(&p, ingest, round++, &st, refused), 503);
	}
	char *log = npsd_log(&p);
	const char *first = strstr(log, "db: COMMIT: ");
	ck_assert_msg(first && !strstr(first + 1, "db: COMMIT: "), "the failed commits in the log: %s", log);
	free(log);
	/* Not ready while writes fail: a load balancer sends the answers elsewhere. */
	struct http_result ready;
	ck_assert_int_eq(http_json(&p, "GET", "/readyz", NULL, NULL, &ready), 0);
	ck_assert_msg(ready.status == 503, "/readyz on a full disk: %ld %s", ready.status,
	              ready.body ? ready.body : "");
	http_result_free(&ready);
	set_file_limit(p.pid, RLIM_INFINITY);
	/* Ready again a few seconds after the last refused write. */
	long ready_status = 503;
	for (int i = 0; i < 100 && ready_status != 200; i++) {
		if (i)
			usleep(100 * 1000);
		ck_assert_int_eq(http_json(&p, "GET", "/readyz", NULL, NULL, &ready), 0);
		ready_status = ready.status;
		http_result_free(&ready);
	}
	ck_assert_int_eq(ready_status, 200);

	/* Room again: the daemon goes on, nothing acknowledged is lost, nothing refused kept. */
	ck_assert_int_eq(post_full_round(&p, ingest, round++, &st, refused), 200);
	log = npsd_log(&p);
	ck_assert_msg(strstr(log, "db: commits go through again"), "no word of the commits going through again");
	free(log);
	assert_all_stored(&p, ingest, st.items, st.ids, st.n);
	for (int i = 0; i < FULL_BATCH; i++) {
		struct http_result r;
		ck_assert_int_eq(http_json(&p, "POST", "/v1/surveys", ingest, refused[i], &r), 0);
		ck_assert_msg(r.status == 201, "a refused answer had been stored: its retry answered %ld",
		              r.status);
		http_result_free(&r);
		free(refused[i]);
	}
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	ck_assert_int_eq(npsd_restart(&p), 0);
	assert_all_stored(&p, ingest, st.items, st.ids, st.n);
	for (int i = 0; i < st.n; i++)
		free(st.items[i]);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

/* A readiness probe waits for the writer like any write, with its connection suspended:
 * while the database is locked from outside (here another connection's transaction), the
 * probe waits, and the HTTP thread it came in on still serves everyone else. */
START_TEST(readyz_waits_without_holding_up_other_requests)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	config_replace(&p, "threads = 2", "threads = 1"); /* one HTTP thread for everyone */
	ck_assert_int_eq(npsd_restart(&p), 0);
	sqlite3 *outside = NULL;
	ck_assert_int_eq(sqlite3_open(p.db_path, &outside), SQLITE_OK);
	/* npsd's own background work (the retention run at start) may hold the lock a moment. */
	sqlite3_busy_timeout(outside, 10000);
	ck_assert_int_eq(sqlite3_exec(outside, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	int fds[2]; /* two probes, as a load balancer and systemd might send */
	for (int i = 0; i < 2; i++) {
		fds[i] = raw_connect(&p);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_int_eq(raw_send(fds[i], "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 0);
	}
	usleep(200 * 1000); /* the probes are with the writer, which waits for the lock */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct http_result r;
	ck_assert_int_eq(http_json(&p, "GET", "/healthz", NULL, NULL, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_eq(r.status, 200);
	http_result_free(&r);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	ck_assert_msg(ms < 1000, "/healthz took %.0f ms behind a waiting /readyz", ms);
	ck_assert_int_eq(sqlite3_exec(outside, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 2; i++) {
		char *reply = raw_reply(fds[i], 10000);
		close(fds[i]);
		ck_assert_msg(reply && strncmp(reply, "HTTP/1.1 200", 12) == 0, "/readyz: %.200s",
		              reply ? reply : "(no reply)");
		ck_assert_ptr_nonnull(strstr(reply, "\"ready\""));
		free(reply);
	}
	sqlite3_close(outside);
	npsd_cleanup(&p);
}
END_TEST

/* A datagram socket at a new path (written to path) that NOTIFY_SOCKET now names, as
 * systemd's for sd_notify: the next npsd started tells it what it does. */
static int notify_socket(char *path, size_t size)
{
	snprintf(path, size, "/tmp/npsd-notify-%d", (int)getpid());
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	return fd;
}

/* Reads the next datagram on fd into msg (NUL-terminated) if one comes before ms
 * milliseconds since t0 are over; false when they are. */
static bool next_notice(int fd, const struct timespec *t0, long ms, char *msg, size_t size)
{
	for (;;) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = ms - ((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
		if (left <= 0)
			return false;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t n = recv(fd, msg, size - 1, 0);
		if (n > 0) {
			msg[n] = '\0';
			return true;
		}
	}
}

/* Counts the datagrams holding "WATCHDOG=1" that arrive on fd within ms milliseconds. */
static int watchdog_pings(int fd, long ms)
{
	int pings = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char msg[512];
	while (next_notice(fd, &t0, ms, msg, sizeof msg))
		pings += strstr(msg, "WATCHDOG=1") != NULL;
	return pings;
}

/* WATCHDOG=1 vouches for the storage pipeline, not only for the main thread: while the
 * writer cannot get on (here a transaction of another process holds the database), the
 * pings stop, so systemd would restart a wedged npsd; they come back once it moves. */
START_TEST(the_watchdog_pings_only_while_the_writer_moves)
{
	char sock_path[108];
	int fd = notify_socket(sock_path, sizeof sock_path);
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "2000000", 1), 0); /* a ping a second */
	struct npsd_proc p;
	int started = npsd_start(&p, NULL);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	ck_assert_int_eq(started, 0);
	ck_assert_int_ge(watchdog_pings(fd, 2500), 1);

	sqlite3 *outside = NULL;
	ck_assert_int_eq(sqlite3_open(p.db_path, &outside), SQLITE_OK);
	sqlite3_busy_timeout(outside, 10000); /* npsd's background writes hold the lock at times */
	ck_assert_int_eq(sqlite3_exec(outside, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	watchdog_pings(fd, 2200); /* the probe asked meanwhile waits; its grace runs out */
	int while_stuck = watchdog_pings(fd, 2000);
	ck_assert_int_eq(sqlite3_exec(outside, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(outside);
	ck_assert_msg(while_stuck == 0, "%d watchdog pings while the writer could not get on", while_stuck);
	ck_assert_int_ge(watchdog_pings(fd, 3000), 1);
	npsd_cleanup(&p);
	close(fd);
	unlink(sock_path);
}
END_TEST

/* Waits up to ms for a datagram on fd that holds needle; returns it (malloc'ed), or NULL. */
static char *notice_with(int fd, const char *needle, long ms)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char msg[512];
	while (next_notice(fd, &t0, ms, msg, sizeof msg))
		if (strstr(msg, needle))
			return strdup(msg);
	return NULL;
}

/* A reload is told to systemd: RELOADING=1 (with the monotonic time systemd ties it to the
 * signal by) when SIGHUP comes, READY=1 once the file is read; `systemctl reload` showed
 * nothing of it. */
START_TEST(a_reload_is_told_to_systemd)
{
	char sock_path[108];
	int fd = notify_socket(sock_path, sizeof sock_path);
	struct npsd_proc p;
	int started = npsd_start(&p, NULL);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(started, 0);
	char *ready = notice_with(fd, "READY=1", 5000);
	ck_assert_msg(ready, "no READY=1 at the start");
	free(ready);

	struct timespec before;
	clock_gettime(CLOCK_MONOTONIC, &before);
	kill(p.pid, SIGHUP);
	char *reloading = notice_with(fd, "RELOADING=1", 5000);
	ck_assert_msg(reloading, "no RELOADING=1 after SIGHUP");
	const char *usec = strstr(reloading, "MONOTONIC_USEC=");
	ck_assert_msg(usec, "RELOADING=1 without MONOTONIC_USEC: %s", reloading);
	unsigned long long at = strtoull(usec + strlen("MONOTONIC_USEC="), NULL, 10);
	ck_assert_msg(at >= (unsigned long long)before.tv_sec * 1000000ULL + (unsigned long long)before.tv_nsec / 1000,
	              "MONOTONIC_USEC=%llu is before the signal", at);
	free(reloading);
	ready = notice_with(fd, "READY=1", 5000);
	ck_assert_msg(ready, "no READY=1 after the reload");
	free(ready);
	npsd_cleanup(&p);
	close(fd);
	unlink(sock_path);
}
END_TEST

/* A failing disk: the test hook NPSD_TEST_FAIL_SYNC makes the 30th fdatasync fail with EIO.
 * The answer it carried gets 503, so does every write after it (a later fsync could succeed
 * over pages the kernel dropped), and npsd stops with exit status 1 for systemd to restart
 * it; after the restart every 201 is there. */
START_TEST(a_failed_fdatasync_stops_npsd_and_keeps_every_201)
{
	enum { MAX = 100 };
	ck_assert_int_eq(setenv("NPSD_TEST_FAIL_SYNC", "30", 1), 0);
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	ck_assert_int_eq(unsetenv("NPSD_TEST_FAIL_SYNC"), 0); /* not for npsctl, nor the restart */
	char *ingest = npsctl_key(&p, "ingest", "sync-ingest");
	ck_assert_ptr_nonnull(ingest);
	char *bodies[MAX];
	json_int_t ids[MAX];
	int acknowledged = 0, refused = 0, sent = 0;
	for (; sent < MAX && refused < 5; sent++) {
		ck_assert_int_ge(
		        asprintf(&bodies[sent],
		                 "{\"response_id\":\"sync-%d\",\"customer\":{\"id\":\"C-sync-%d\"},"
		                 "\"touchpoint\":\"claim\",\"score\":9,\"answered_at\":\"" ANSWERED_AT "\"}",
		                 sent, sent),
		        0);
		struct http_result r;
		int rc = http_json(&p, "POST", "/v1/surveys", ingest, bodies[sent], &r);
		if (rc == 0 && r.status == 201) {
			ck_assert_msg(refused == 0, "a 201 after the failed sync");
			ids[acknowledged] = iget(r.json, "id");
			char *body = bodies[acknowledged];
			bodies[acknowledged] = bodies[sent];
			bodies[sent] = body;
			acknowledged++;
		} else {
			/* After the failure: 503, or no answer once npsd has stopped. */
			ck_assert_msg(rc != 0 || r.status == 503, "answered %ld after the failed sync",
			              r.status);
			/* The answer whose sync failed was committed: it may be there after the
			 * restart, and its 503 must not say that nothing was written. The ones
			 * after it were refused before their statements ran. */
			const char *why = rc == 0 ? sget(json_object_get(r.json, "error"), "message") : NULL;
			if (rc == 0)
				ck_assert_msg(why && strstr(why, refused == 0 ? "may or may not be stored"
				                                              : "nothing was written"),
				              "503 number %d says: %s", refused + 1, why ? why : r.body);
			refused++;
		}
		if (rc == 0)
			http_result_free(&r);
	}
	ck_assert_int_eq(acknowledged, 29);
	ck_assert_int_eq(npsd_stop(&p, 0), 1); /* it stops by itself, with status 1 */
	char *log = npsd_log(&p);
	ck_assert_msg(strstr(log, "storage failed: stopping"), "no \"storage failed\" in the log");
	free(log);
	ck_assert_int_eq(npsd_restart(&p), 0);
	assert_all_stored(&p, ingest, bodies, ids, acknowledged);
	for (int i = 0; i < sent; i++)
		free(bodies[i]);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

/* A WAL or database deleted (or replaced by a rename) while npsd runs takes what is written
 * to it along: the next answer gets no 201 but the 503 of a write that may or may not be
 * stored, and npsd stops with status 1, saying why. It used to go on answering 201. */
static void deleting_stops_the_201s(const char *suffix)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "gone-ingest");
	ck_assert_ptr_nonnull(ingest);
	struct http_result r;
	const char *first = "{\"response_id\":\"gone-1\",\"customer\":{\"id\":\"C-gone-1\"},"
	                    "\"touchpoint\":\"claim\",\"score\":9}";
	ck_assert_int_eq(http_json(&p, "POST", "/v1/surveys", ingest, first, &r), 0);
	ck_assert_int_eq(r.status, 201);
	http_result_free(&r);
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s%s", p.db_path, suffix), 0);
	ck_assert_msg(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
	free(path);
	const char *second = "{\"response_id\":\"gone-2\",\"customer\":{\"id\":\"C-gone-2\"},"
	                     "\"touchpoint\":\"claim\",\"score\":9}";
	int rc = http_json(&p, "POST", "/v1/surveys", ingest, second, &r);
	ck_assert_msg(rc != 0 || r.status == 503, "answered %ld with the file gone: %s", r.status, r.body);
	if (rc == 0) {
		const char *why = sget(json_object_get(r.json, "error"), "message");
		ck_assert_msg(why && strstr(why, "may or may not be stored"), "503 says: %s", r.body);
		http_result_free(&r);
	}
	ck_assert_int_eq(npsd_stop(&p, 0), 1); /* it stops by itself, with status 1 */
	char *log = npsd_log(&p);
	ck_assert_msg(strstr(log, "was deleted or replaced while npsd ran"), "log: %s", log);
	free(log);
	free(ingest);
	npsd_cleanup(&p);
}

START_TEST(a_deleted_wal_gets_no_201)
{
	deleting_stops_the_201s("-wal");
}
END_TEST

START_TEST(a_deleted_database_gets_no_201)
{
	deleting_stops_the_201s("");
}
END_TEST

/* A damaged page (a disk or a copy gone wrong) fails the queries that reach it: each is a
 * 503, and the log says what is wrong and what to do, once a minute at most. It said
 * nothing: every read of the answers was a 503 for ever, and ops had no line to go by. */
START_TEST(a_damaged_page_is_told_in_the_log)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "damage-ingest");
	char *manager = npsctl_key(&p, "manager", "damage-manager");
	ck_assert(ingest && manager);
	for (int b = 0; b < 4; b++) {
		char *body = batch_body(7, b);
		struct http_result r;
		http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
		ck_assert_msg(r.status == 200, "batch %d: %ld", b, r.status);
		http_result_free(&r);
		free(body);
	}
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0); /* the WAL is in the file now */

	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(p.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = 'surveys'", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	long root = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	long page_size = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	ck_assert_int_gt(root, 1);
	char garbage[512];
	memset(garbage, 0xA5, sizeof garbage);
	FILE *f = fopen(p.db_path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, (root - 1) * page_size, SEEK_SET), 0);
	ck_assert_uint_eq(fwrite(garbage, 1, sizeof garbage, f), sizeof garbage);
	fclose(f);

	size_t from = log_len(&p);
	ck_assert_int_eq(npsd_restart(&p), 0);
	for (int i = 0; i < 3; i++) {
		struct http_result r;
		http_json(&p, "GET", "/v1/surveys", manager, NULL, &r);
		ck_assert_msg(r.status == 503, "GET /v1/surveys over a damaged page: %ld %s", r.status, r.body);
		http_result_free(&r);
	}
	ck_assert_msg(wait_log(&p, from, "the database file is damaged", 5000), "the log does not tell the damage");
	char *log = npsd_log(&p);
	ck_assert_uint_eq(count_in(log + from, "the database file is damaged"), 1);
	free(log);
	free(ingest);
	free(manager);
	npsd_cleanup(&p);
}
END_TEST

/* A database path that is a symbolic link (the data on another disk) works: SQLite keeps
 * the WAL beside the file the link names, and npsd synced "PATH-wal" beside the link, which
 * did not exist: the first write failed, and every one after it. */
START_TEST(a_database_behind_a_symbolic_link_takes_writes)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "link-ingest");
	ck_assert_ptr_nonnull(ingest);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	char data[256], real[320];
	snprintf(data, sizeof data, "%s/data", p.dir);
	snprintf(real, sizeof real, "%s/real.db", data);
	ck_assert_int_eq(mkdir(data, 0700), 0);
	ck_assert_int_eq(rename(p.db_path, real), 0);
	ck_assert_int_eq(symlink("data/real.db", p.db_path), 0);

	ck_assert_int_eq(npsd_restart(&p), 0);
	static const char body[] = "{\"response_id\":\"link-1\",\"customer\":{\"id\":\"C-link\"},"
	                           "\"touchpoint\":\"claim\",\"score\":9,\"answered_at\":\"" ANSWERED_AT "\"}";
	struct http_result r;
	http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
	ck_assert_msg(r.status == 201, "a survey into a linked database: %ld %s", r.status, r.body);
	http_result_free(&r);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);

	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(real, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM surveys", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(ingest);
	npsd_cleanup(&p);
}
END_TEST

START_TEST(restart_applies_no_migration_twice_and_keeps_data)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start(&p, NULL), 0);
	char *ingest = npsctl_key(&p, "ingest", "mig-ingest");
	char *manager = npsctl_key(&p, "manager", "mig-manager");
	ck_assert_ptr_nonnull(ingest);
	ck_assert_ptr_nonnull(manager);
	static const char body[] =
	        "{\"response_id\":\"mig-1\",\"customer\":{\"id\":\"C-mig\",\"phone\":\"+31612345670\"},"
	        "\"touchpoint\":\"claim\",\"score\":3,\"comment\":\"kept\",\"answered_at\":\"" ANSWERED_AT
	        "\"}";
	struct http_result r;
	http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
	ck_assert_msg(r.status == 201, "answered %ld: %s", r.status, r.body);
	json_int_t id = json_integer_value(json_object_get(r.json, "id"));
	http_result_free(&r);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);

	char *log = npsd_log(&p);
	size_t first_run = strlen(log);
	size_t applied = count_in(log, "applied migration");
	free(log);
	ck_assert_msg(applied >= 1, "the first start logged no \"applied migration\"");

	for (int run = 0; run < 2; run++) {
		size_t before = log_len(&p);
		ck_assert_int_eq(npsd_restart(&p), 0);
		http_json(&p, "POST", "/v1/surveys", ingest, body, &r);
		ck_assert_msg(r.status == 200, "after restart %d the retry answered %ld: %s", run + 1,
		              r.status, r.body);
		ck_assert_int_eq(json_integer_value(json_object_get(r.json, "id")), id);
		http_result_free(&r);
		char path[64];
		snprintf(path, sizeof path, "/v1/surveys/%lld", (long long)id);
		http_json(&p, "GET", path, manager, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "comment")), "kept");
		http_result_free(&r);
		ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
		log = npsd_log(&p);
		ck_assert_msg(!strstr(log + before, "applied migration"),
		              "restart %d applied a migration again:\n%s", run + 1, log + before);
		ck_assert(strstr(log + before, "stopped"));
		free(log);
	}
	(void)first_run;
	free(ingest);
	free(manager);
	npsd_cleanup(&p);
}
END_TEST

static Suite *durability_suite(void)
{
	Suite *s = suite_create("durability");
	TCase *tc = tcase_create("durability");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, kill9_under_load_loses_no_acknowledged_answer);
	tcase_add_test(tc, sigterm_finishes_the_request_in_flight_and_exits_0);
	tcase_add_test(tc, while_draining_healthz_is_200_and_readyz_503);
	tcase_add_test(tc, sigterm_under_load_exits_0_and_keeps_every_201);
	tcase_add_test(tc, sigterm_does_not_wait_for_a_stalled_upload);
	tcase_add_test(tc, group_commit_gives_each_request_its_own_answer);
	tcase_add_test(tc, concurrent_batches_answer_per_item_in_order);
	tcase_add_test(tc, restart_applies_no_migration_twice_and_keeps_data);
	tcase_add_test(tc, a_damaged_page_is_told_in_the_log);
	tcase_add_test(tc, a_database_behind_a_symbolic_link_takes_writes);
	tcase_add_test(tc, a_full_disk_answers_503_and_keeps_every_201);
	tcase_add_test(tc, readyz_waits_without_holding_up_other_requests);
	tcase_add_test(tc, the_watchdog_pings_only_while_the_writer_moves);
	tcase_add_test(tc, a_reload_is_told_to_systemd);
	tcase_add_test(tc, a_failed_fdatasync_stops_npsd_and_keeps_every_201);
	tcase_add_test(tc, a_deleted_wal_gets_no_201);
	tcase_add_test(tc, a_deleted_database_gets_no_201);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(durability_suite());
	curl_global_cleanup();
	return status;
}
