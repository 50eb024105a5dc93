/*
 * npsctl's operations commands against the real daemon and its database (SPEC "Operations"):
 *  - backup PATH while npsd runs: a copy that passes integrity_check, is in rollback-journal
 *    mode and is one file (no -wal, no .partial left), with every answer and key; taken
 *    while two clients keep posting, it holds every answer acknowledged before it started,
 *    nothing half-written (no answer without its customer or callback), and the clients
 *    get nothing but 201s; npsd started on the copy serves it; an existing file is refused
 *    and left as it was, a stale .partial replaced, a missing folder an error;
 *  - purge [--older-than D] on the fake clock, which npsctl reads like npsd
 *    (NPSD_FAKE_CLOCK_FILE): answers older than the cutoff go unless their callback is still
 *    open or was made at or after the cutoff; closed old callbacks with their improvements
 *    and call events; customers with their last answer, but a do-not-call customer keeps the
 *    row and the mark without contact details (their next low score opens no call); outbox
 *    events with their deliveries and attempts; the counts on stderr; an answer at the
 *    cutoff itself stays; the default is retention.days (730); a second run purges nothing;
 *    more than two batches of 500 rows, nothing left pointing at a row that went; npsd keeps
 *    serving and stops cleanly;
 *  - what purge deletes leaves no copy in the files: after npsctl purge while npsd runs, and
 *    after npsd's own daily run, a customer's name, phone, email, comment, notes and
 *    improvement are in neither the database file's bytes nor its WAL's (also after a clean
 *    stop), while every row of a customer within the period is as it was; a reader that
 *    holds the WAL past every try gets a warning in npsd's log, without the customer's
 *    details, and the next day's run truncates it;
 *  - erase --customer ID while npsd runs, for an id with a quote and non-ASCII letters:
 *    every answer, callback, improvement, call event, outbox event (found by its payload's
 *    customer.id), delivery and attempt about the customer, and the customer; nothing about
 *    anyone else (another customer's answer that names the id in its attributes stays); a
 *    second erase and an unknown id exit 1; after a clean stop the name, phone, email,
 *    comment, notes and improvement are nowhere in the database file's bytes (secure_delete),
 *    while the other customer's are (so the search does find text); a customer whose call
 *    an agent holds: the agent's next step is a 404, the lease and SLA timers find nothing,
 *    and their next low score is a new call;
 *  - lifecycle: a second npsd on a database another holds stops before it migrates it, and
 *    npsctl migrates nothing while an npsd holds the database; an npsd started while npsctl
 *    migrates waits for it and starts on the migrated database; a purge beside a held write
 *    lock says "try again" after its batch's 5 s wait, without the WAL's truncation tries;
 *    one whose storage fails (NPSD_TEST_FAIL_SYNC) before it deleted anything, or part-way,
 *    says so at once though a reader keeps the WAL busy, and one whose last batch's sync
 *    failed says that batch may or may not be gone, with its counts; npsd's own run that
 *    fails part-way on the storage says as much and warns of the WAL at once, without the
 *    truncation tries; a purge or erase that a trigger refuses says so in the trigger's
 *    words, not "File exists";
 *  - a sync that fails after the commit: an erase says it may or may not have taken and to
 *    run it again; a key create names the key that may be live, without its token, and how
 *    to be rid of it; a key revoke says it may or may not have taken and to run it again;
 *  - migrate: applies the pending migrations and names each, then says the schema is
 *    current; beside a running npsd of an older schema it migrates nothing;
 *  - usage: unknown commands and bad options exit 2, any command but `key create` on a
 *    missing database exits 1 with "no database", and neither creates a file; an option
 *    given twice, or without its value, exits 2 naming it.
 * What the API cannot show (the copy, a do-not-call customer's cleared details, how many
 * call events and attempts there were, whether deliveries are done) is read from the
 * database file with SQLite, read-only. Webhook deliveries go to a receiver inside the test
 * that answers 200 to everything.
 */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "npsd/migrations.h"
#include "npsd/retention.h"
#include "npsd/validate.h"

#include "testutil.h"

#define DAY INT64_C(86400)
/* 2021-01-10T12:00:00Z: the old answers. npsctl on the real clock (2026 or later) would
 * purge everything here, E's answer included, so what stays proves it read the fake one. */
#define T_OLD INT64_C(1610280000)
#define T_NEW (T_OLD + 800 * DAY) /* 2023-03-21T12:00:00Z */
#define RETENTION (730 * DAY)     /* retention.days' default */
#define WAIT_MS 20000             /* how long deliveries get to arrive */
#define PHONE "+31612345678"

/* Where backups are written: made in main, emptied and removed after the run, so a test
 * that fails half-way leaves nothing behind. */
static char scratch[64];

/* ---------- small helpers ---------- */

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* A new path in the scratch folder (malloc'ed); nothing is there yet. */
static char *scratch_path(const char *name)
{
	char *path = fmt("%s/%d-%s", scratch, (int)getpid(), name);
	unlink(path);
	return path;
}

/* Runs npsctl --db db with the arguments that follow (NULL-terminated): its exit code, with
 * what it wrote to stdout and stderr malloc'ed in *ret_out and *ret_err (either may be NULL).
 * npsctl inherits NPSD_FAKE_CLOCK_FILE from this process, as npsd does. A sanitizer's report
 * (SANITIZE=1 builds) fails the test: its exit code could pass for an expected 1. */
static int ctl(const char *db, char **ret_out, char **ret_err, ...)
{
	const char *argv[16];
	size_t n = 0;
	argv[n++] = npsctl_bin();
	argv[n++] = "--db";
	argv[n++] = db;
	va_list ap;
	va_start(ap, ret_err);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 15;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char *err = NULL;
	int status = run_program(argv, ret_out, &err);
	ck_assert_msg(!err || (!strstr(err, "Sanitizer") && !strstr(err, "runtime error:")), "npsctl %s: %s",
	              argv[3], err);
	if (ret_err)
		*ret_err = err;
	else
		free(err);
	return status;
}

/* ---------- what purge and erase report on stderr ---------- */

struct counts {
	long long surveys, callbacks, improvements, call_events, customers, events, deliveries, attempts;
	long long kept_do_not_call;
};

/* The counts of npsctl's "purged ..." or "erased ..." line. */
static struct counts counts_of(const char *err, const char *verb)
{
	struct counts c = { 0 };
	char head[16];
	snprintf(head, sizeof head, "%s ", verb);
	const char *at = err ? strstr(err, head) : NULL;
	ck_assert_msg(at != NULL, "no \"%s\" line on npsctl's stderr: %s", verb, err ? err : "(none)");
	int n = sscanf(at + strlen(head),
	               "%lld answers, %lld callbacks (%lld improvements, %lld call events), %lld customers, "
	               "%lld events (%lld deliveries, %lld attempts)",
	               &c.surveys, &c.callbacks, &c.improvements, &c.call_events, &c.customers, &c.events,
	               &c.deliveries, &c.attempts);
	ck_assert_msg(n == 8, "cannot read the counts in: %s", at);
	const char *kept = strstr(at, "; ");
	if (kept && (!strchr(at, '\n') || kept < strchr(at, '\n')))
		ck_assert_int_eq(sscanf(kept, "; %lld do-not-call", &c.kept_do_not_call), 1);
	return c;
}

static void assert_counts(struct counts got, struct counts want, const char *what)
{
	ck_assert_msg(memcmp(&got, &want, sizeof got) == 0,
	              "%s: got %lld answers, %lld callbacks, %lld improvements, %lld call events, %lld "
	              "customers, %lld events, %lld deliveries, %lld attempts, %lld kept; want %lld, %lld, "
	              "%lld, %lld, %lld, %lld, %lld, %lld, %lld",
	              what, got.surveys, got.callbacks, got.improvements, got.call_events, got.customers,
	              got.events, got.deliveries, got.attempts, got.kept_do_not_call, want.surveys,
	              want.callbacks, want.improvements, want.call_events, want.customers, want.events,
	              want.deliveries, want.attempts, want.kept_do_not_call);
}

/* ---------- the database file, read directly ---------- */

/* Read-only: a reader beside the running npsd, or a backup that must not be changed. */
static sqlite3 *sql_open(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	ck_assert_msg(rc == SQLITE_OK, "cannot open %s: %s", path,
	              db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql, const char *text)
{
	sqlite3_stmt *st = NULL;
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
	              sqlite3_errmsg(db));
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	return st;
}

/* The first column of the first row as text (malloc'ed; "(null)" for NULL, "(no row)"),
 * with ?1 bound to text when it is not NULL. */
static char *sql_text(sqlite3 *db, const char *sql, const char *text)
{
	sqlite3_stmt *st = sql_prepare(db, sql, text);
	int rc = sqlite3_step(st);
	ck_assert_msg(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	char *s = strdup(rc != SQLITE_ROW ? "(no row)" : v ? (const char *)v : "(null)");
	sqlite3_finalize(st);
	return s;
}

static long long sql_int(sqlite3 *db, const char *sql, const char *text)
{
	sqlite3_stmt *st = sql_prepare(db, sql, text);
	ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
	long long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* One query on a database file: opened, asked, closed. */
static long long file_int(const char *path, const char *sql, const char *text)
{
	sqlite3 *db = sql_open(path);
	long long n = sql_int(db, sql, text);
	sqlite3_close(db);
	return n;
}

/* Waits until every delivery in the database is delivered and there are want of them. */
static void wait_delivered(const char *db_path, long long want)
{
	long long done = 0, all = 0;
	for (int waited = 0; waited < WAIT_MS; waited += 50) {
		all = file_int(db_path, "SELECT count(*) FROM deliveries", NULL);
		done = file_int(db_path, "SELECT count(*) FROM deliveries WHERE status = 'delivered'", NULL);
		if (all == want && done == want)
			return;
		sleep_ms(50);
	}
	ck_abort_msg("%lld of %lld deliveries delivered after %d ms, want %lld", done, all, WAIT_MS, want);
}

/* Asserts that no row points at one that is not there: an answer without its customer or
 * callback, an improvement or call event without its callback, a delivery without its
 * event, an attempt without its delivery, a customer's open callback that is gone. */
static void assert_no_dangling(sqlite3 *db, const char *what)
{
	char *first =
	        sql_text(db,
	                 "SELECT \"table\" || ' row ' || coalesce(rowid, '?') || ' points at a missing ' || "
	                 "parent FROM pragma_foreign_key_check LIMIT 1",
	                 NULL);
	ck_assert_msg(strcmp(first, "(no row)") == 0, "%s: %s", what, first);
	free(first);
	ck_assert_msg(sql_int(db,
	                      "SELECT count(*) FROM customers WHERE open_callback_id IS NOT NULL AND "
	                      "open_callback_id NOT IN (SELECT id FROM callbacks)",
	                      NULL) == 0,
	              "%s: a customer's open callback is gone", what);
}

/* What a backup must be: sound, one file in rollback-journal mode, nothing half-written. */
static void assert_sound_copy(sqlite3 *db)
{
	char *check = sql_text(db, "PRAGMA integrity_check", NULL);
	ck_assert_msg(strcmp(check, "ok") == 0, "integrity_check: %s", check);
	free(check);
	char *mode = sql_text(db, "PRAGMA journal_mode", NULL);
	ck_assert_msg(strcmp(mode, "delete") == 0, "the copy's journal mode is %s, want delete", mode);
	free(mode);
	assert_no_dangling(db, "the copy");
}

/* Asserts that the file at path has no -wal, -shm, -journal or .partial beside it. */
static void assert_one_file(const char *path)
{
	static const char *const suffixes[] = { "-wal", "-shm", "-journal", ".partial" };
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char *side = fmt("%s%s", path, suffixes[i]);
		ck_assert_msg(!exists(side), "%s is there", side);
		free(side);
	}
	/* Every customer's data: for its owner alone, whatever the umask. */
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg((st.st_mode & 0777) == 0600, "%s has mode %o, want 600", path, (unsigned)(st.st_mode & 0777));
}

/* ---------- the webhook receiver: 200 to everything ---------- */

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
};

static enum MHD_Result rx_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls)
{
	static int seen; /* marks a request whose first call has been made */
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	if (!*con_cls) {
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	static char ok[] = "ok";
	struct MHD_Response *resp = MHD_create_response_from_buffer(2, ok, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct receiver *rx_start(void)
{
	struct receiver *rx = calloc(1, sizeof *rx);
	ck_assert_ptr_nonnull(rx);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rx->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
	                         NULL, rx_handler, rx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	                         MHD_OPTION_END);
	ck_assert_msg(rx->d != NULL, "the receiver does not start");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(rx->d, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_msg(info && info->port, "the receiver has no port");
	rx->port = info->port;
	return rx;
}

static void rx_stop(struct receiver *rx)
{
	if (!rx)
		return;
	MHD_stop_daemon(rx->d);
	free(rx);
}

/* ---------- the daemon ---------- */

struct fx {
	struct npsd_proc p;
	char *ingest, *agent, *manager;
	struct receiver *rx;
	json_int_t hook; /* the webhook, 0 when none */
	int seq;         /* response ids */
};

/* npsd's own retention keeps everything in the tests of npsctl, or it would purge first
 * whatever the fake clock ages while they look (it runs at start and daily). */
#define KEEP_ALL "[retention]\ndays = 36500\n"

/* Starts npsd (on the fake clock at t0 unless it is 0) with a token per role and extra_ini
 * in its config; with events (a JSON array's text), a standard webhook to the receiver that
 * subscribes to them. */
static void fx_start_with(struct fx *f, int64_t t0, const char *events, const char *extra_ini)
{
	memset(f, 0, sizeof *f);
	if (t0)
		fake_clock_start(t0);
	ck_assert_msg(npsd_start(&f->p, extra_ini) == 0, "npsd did not start (NPSD_BIN=%s)", npsd_bin());
	f->ingest = npsctl_key(&f->p, "ingest", "survey-platform");
	f->agent = npsctl_key(&f->p, "agent", "agent-anna");
	f->manager = npsctl_key(&f->p, "manager", "manager-mo");
	ck_assert_msg(f->ingest && f->agent && f->manager, "npsctl key create failed");
	if (!events)
		return;
	f->rx = rx_start();
	char *body = fmt("{\"url\":\"http://127.0.0.1:%u/hook\",\"format\":\"standard\",\"events\":%s}",
	                 f->rx->port, events);
	struct http_result r;
	http_json(&f->p, "POST", "/v1/webhooks", f->manager, body, &r);
	ck_assert_msg(r.status == 201, "create webhook: %ld %s", r.status, r.body);
	f->hook = iget(r.json, "id");
	http_result_free(&r);
	free(body);
}

static void fx_start(struct fx *f, int64_t t0, const char *events)
{
	fx_start_with(f, t0, events, KEEP_ALL);
}

/* Stops npsd with SIGTERM: it must exit 0, and its log must hold no sanitizer report. */
static void fx_stop(struct fx *f)
{
	int status = f->p.pid > 0 ? npsd_stop(&f->p, SIGTERM) : 0;
	char *log = npsd_log(&f->p);
	static const char *const marks[] = { "AddressSanitizer", "LeakSanitizer", "runtime error:" };
	const char *report = NULL;
	for (size_t i = 0; log && i < 3 && !report; i++)
		report = strstr(log, marks[i]);
	if (status != 0 || report) {
		size_t len = log ? strlen(log) : 0;
		fprintf(stderr, "it_operations: npsd exit %d; log tail:\n%s\n", status,
		        report ? report
		        : log  ? log + (len > 4000 ? len - 4000 : 0)
		               : "(none)");
	}
	bool reported = report != NULL;
	free(log);
	rx_stop(f->rx);
	f->rx = NULL;
	npsd_cleanup(&f->p);
	free(f->ingest);
	free(f->agent);
	free(f->manager);
	ck_assert_msg(status == 0, "npsd exited %d on SIGTERM", status);
	ck_assert_msg(!reported, "npsd's log has a sanitizer report");
}

/* One request that must get an answer below 500 (testutil's http_call). */
static long call(struct fx *f, const char *method, const char *path, const char *token, const char *body,
                 json_t **out)
{
	return http_call(&f->p, method, path, token, body, out);
}

/* A manager's GET of /v1/KIND/ID: the status, the body in *out (may be NULL; the caller
 * decrefs). */
static long get_id(struct fx *f, const char *kind, json_int_t id, json_t **out)
{
	char path[96];
	snprintf(path, sizeof path, "/v1/%s/%lld", kind, (long long)id);
	return call(f, "GET", path, f->manager, NULL, out);
}

static long get_status(struct fx *f, const char *kind, json_int_t id)
{
	return get_id(f, kind, id, NULL);
}

struct answer {
	const char *customer, *name, *phone, *email, *touchpoint, *comment;
	int score;
	int64_t answered_at; /* 0: not sent, npsd takes the time it receives it */
	json_t *attributes;  /* borrowed; NULL: none */
};

static json_t *answer_json(struct fx *f, const struct answer *a)
{
	json_t *customer = json_pack("{s:s}", "id", a->customer);
	if (a->name)
		json_object_set_new(customer, "name", json_string(a->name));
	if (a->phone)
		json_object_set_new(customer, "phone", json_string(a->phone));
	if (a->email)
		json_object_set_new(customer, "email", json_string(a->email));
	json_object_set_new(customer, "language", json_string("nl"));
	char rid[32];
	snprintf(rid, sizeof rid, "resp-%d", ++f->seq);
	json_t *doc =
	        json_pack("{s:s, s:o, s:s, s:s, s:i}", "response_id", rid, "customer", customer, "touchpoint",
	                  a->touchpoint ? a->touchpoint : "claim", "channel", "web", "score", a->score);
	ck_assert_ptr_nonnull(doc);
	if (a->comment)
		json_object_set_new(doc, "comment", json_string(a->comment));
	if (a->attributes)
		json_object_set(doc, "attributes", a->attributes);
	if (a->answered_at) {
		char when[32];
		json_object_set_new(doc, "answered_at", json_string(time_format_rfc3339(a->answered_at, when)));
	}
	return doc;
}

/* Posts one answer, asserting 201; returns the reply (the caller decrefs). */
static json_t *post(struct fx *f, const struct answer *a)
{
	json_t *doc = answer_json(f, a);
	char *text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	json_t *reply = NULL;
	long status = call(f, "POST", "/v1/surveys", f->ingest, text, &reply);
	ck_assert_msg(status == 201 && reply, "POST /v1/surveys answered %ld for %s", status, text);
	free(text);
	return reply;
}

/* The callback id of a POST /v1/surveys reply, 0 when "callback" is null. */
static json_int_t callback_of(json_t *reply)
{
	json_t *cb = json_object_get(reply, "callback");
	ck_assert_msg(cb != NULL, "the reply has no \"callback\" member");
	return json_is_null(cb) ? 0 : iget(cb, "id");
}

/* Posts an answer; its id, and its callback's in *ret_callback (may be NULL). */
static json_int_t post_id(struct fx *f, const struct answer *a, json_int_t *ret_callback)
{
	json_t *reply = post(f, a);
	json_int_t id = iget(reply, "id");
	if (ret_callback)
		*ret_callback = callback_of(reply);
	json_decref(reply);
	return id;
}

/* Posts count answers as JSON arrays of up to 1000 (npsd's most), each item a 201. */
static void post_many(struct fx *f, int count, struct answer (*make)(int i, char customer[64]))
{
	for (int first = 0; first < count; first += 1000) {
		json_t *batch = json_array();
		for (int i = first; i < count && i < first + 1000; i++) {
			char customer[64];
			struct answer a = make(i, customer);
			json_array_append_new(batch, answer_json(f, &a));
		}
		char *text = json_dumps(batch, JSON_COMPACT);
		size_t n = json_array_size(batch);
		json_decref(batch);
		json_t *reply = NULL;
		long status = call(f, "POST", "/v1/surveys", f->ingest, text, &reply);
		free(text);
		ck_assert_msg(status == 200 && json_array_size(reply) == n, "a batch of %zu answered %ld", n,
		              status);
		size_t bad = 0, i;
		json_t *item;
		json_array_foreach (reply, i, item)
			bad += iget(item, "status") != 201;
		ck_assert_msg(bad == 0, "%zu of a batch of %zu were not 201", bad, n);
		json_decref(reply);
	}
}

/* Claims the due callback of touchpoint (one is expected) and completes it with body. */
static void claim_and_complete(struct fx *f, const char *touchpoint, json_int_t want, const char *body)
{
	char *claim = fmt("{\"touchpoint\":\"%s\"}", touchpoint);
	json_t *cb = NULL;
	long status = call(f, "POST", "/v1/callbacks/claim", f->agent, claim, &cb);
	ck_assert_msg(status == 200, "claim on %s answered %ld", touchpoint, status);
	ck_assert_int_eq(iget(cb, "id"), want);
	json_decref(cb);
	free(claim);
	char *path = fmt("/v1/callbacks/%lld/complete", (long long)want);
	status = call(f, "POST", path, f->agent, body, NULL);
	ck_assert_msg(status == 200, "complete %lld with %s answered %ld", (long long)want, body, status);
	free(path);
}

/* The webhook's deliveries (at most 200: the tests make fewer): their ids into ids (at most
 * max), the count returned; created_at of each at or after since, when since is not 0. */
static size_t delivery_ids(struct fx *f, json_int_t *ids, size_t max, int64_t since)
{
	char path[96];
	snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries?limit=200", (long long)f->hook);
	json_t *body = NULL;
	ck_assert_int_eq(call(f, "GET", path, f->manager, NULL, &body), 200);
	json_t *list = json_object_get(body, "deliveries");
	ck_assert_msg(json_is_array(list), "no deliveries array");
	ck_assert_uint_le(json_array_size(list), max);
	size_t n = 0, i;
	json_t *d;
	char when[32];
	time_format_rfc3339(since, when);
	json_array_foreach (list, i, d) {
		ids[n++] = iget(d, "id");
		const char *created = sget(d, "created_at");
		/* RFC 3339 UTC strings of one width sort as the times do. */
		ck_assert_msg(!since || (created && strcmp(created, when) >= 0),
		              "delivery %lld was made at %s, before %s", (long long)ids[n - 1], created,
		              when);
	}
	json_decref(body);
	return n;
}

static bool has_id(const json_int_t *ids, size_t n, json_int_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* The texts of every improvement, joined by newlines (malloc'ed), and their total. */
static char *improvement_texts(struct fx *f, json_int_t *ret_total)
{
	json_t *body = NULL;
	ck_assert_int_eq(call(f, "GET", "/v1/improvements?limit=500", f->manager, NULL, &body), 200);
	size_t len = 0, i;
	char *texts = NULL;
	FILE *out = open_memstream(&texts, &len);
	json_t *item;
	json_array_foreach (json_object_get(body, "improvements"), i, item)
		fprintf(out, "%s\n", sget(item, "text"));
	fclose(out);
	*ret_total = iget(json_object_get(body, "counts"), "total");
	json_decref(body);
	return texts;
}

/* How many answers GET /v1/surveys?customer_id= lists for the customer. */
static size_t surveys_of(struct fx *f, const char *customer)
{
	CURL *curl = curl_easy_init();
	char *escaped = curl_easy_escape(curl, customer, 0);
	char *path = fmt("/v1/surveys?customer_id=%s&limit=500", escaped);
	curl_free(escaped);
	curl_easy_cleanup(curl);
	json_t *body = NULL;
	long status = call(f, "GET", path, f->manager, NULL, &body);
	ck_assert_msg(status == 200, "GET %s answered %ld", path, status);
	size_t n = json_array_size(json_object_get(body, "surveys"));
	json_decref(body);
	free(path);
	return n;
}

/* ---------- backup ---------- */

START_TEST(backup_is_a_sound_single_file_with_everything)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	json_int_t first = 0, callback = 0;
	for (int i = 0; i < 30; i++) {
		char customer[32];
		snprintf(customer, sizeof customer, "cust-%d", i);
		json_int_t id =
		        post_id(&f, &(struct answer){ .customer = customer, .phone = PHONE, .score = i % 11 },
		                i == 3 ? &callback : NULL);
		if (i == 3)
			first = id;
	}
	ck_assert_int_gt(callback, 0);

	char *out_path = scratch_path("backup.db");
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "backup", out_path, NULL), 0);
	/* stdout is for answers a script reads; a backup has none. */
	ck_assert_msg(out && !*out, "backup wrote to stdout: %s", out);
	ck_assert_msg(err && strstr(err, out_path), "no word of the backup on stderr: %s", err);
	free(out);
	free(err);
	assert_one_file(out_path);

	sqlite3 *copy = sql_open(out_path);
	assert_sound_copy(copy);
	ck_assert_int_eq(sql_int(copy, "SELECT count(*) FROM surveys", NULL), 30);
	ck_assert_int_eq(sql_int(copy, "SELECT count(*) FROM customers", NULL), 30);
	ck_assert_int_eq(sql_int(copy, "SELECT count(*) FROM api_keys", NULL), 3);
	char *sql = fmt("SELECT callback_id FROM surveys WHERE id = %lld", (long long)first);
	ck_assert_int_eq(sql_int(copy, sql, NULL), callback);
	free(sql);
	sqlite3_close(copy);

	/* A second backup to the same name is refused, and the first one stays as it was. */
	size_t len_before = 0, len_after = 0;
	char *before = read_all(out_path, &len_before);
	ck_assert_ptr_nonnull(before);
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "backup", out_path, NULL), 1);
	ck_assert_msg(err && strstr(err, "exists"), "the refusal does not say why: %s", err);
	ck_assert_msg(out && !*out, "a refused backup wrote to stdout: %s", out);
	free(out);
	free(err);
	char *after = read_all(out_path, &len_after);
	ck_assert_msg(after && len_after == len_before && memcmp(before, after, len_before) == 0,
	              "the existing file was changed");
	free(before);
	free(after);
	assert_one_file(out_path);

	/* What an interrupted backup left is no obstacle: it is replaced. */
	char *second = scratch_path("second.db");
	char *partial = fmt("%s.partial", second);
	FILE *junk = fopen(partial, "w");
	ck_assert_ptr_nonnull(junk);
	fputs("half a backup", junk);
	fclose(junk);
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "backup", second, NULL), 0);
	assert_one_file(second);
	copy = sql_open(second);
	assert_sound_copy(copy);
	ck_assert_int_eq(sql_int(copy, "SELECT count(*) FROM surveys", NULL), 30);
	sqlite3_close(copy);

	/* A folder that is not there: an error, and nothing made. */
	char *nowhere = fmt("%s/no-such-folder/b.db", scratch);
	ck_assert_int_eq(ctl(f.p.db_path, NULL, &err, "backup", nowhere, NULL), 1);
	ck_assert_msg(err && *err, "a failed backup says nothing");
	free(err);
	ck_assert(!exists(nowhere));

	/* npsd went on as before. */
	ck_assert_int_eq(get_status(&f, "surveys", first), 200);
	unlink(out_path);
	unlink(second);
	free(out_path);
	free(second);
	free(partial);
	free(nowhere);
	fx_stop(&f);
}
END_TEST

/* A client posting one answer after another; each 201 moves acked on. */
struct feeder {
	struct fx *f;
	int k;            /* its ids: live-K-N */
	atomic_int acked; /* answers 1..acked were acknowledged */
	atomic_bool stop;
	long bad; /* the first status other than 201 (-1: no answer), 0 when none */
};

static void *feed(void *arg)
{
	struct feeder *fd = arg;
	for (int n = 1; !atomic_load(&fd->stop); n++) {
		/* Every customer new, so each low score opens a callback in the same transaction. */
		char body[512];
		snprintf(body, sizeof body,
		         "{\"response_id\":\"live-%d-%d\",\"customer\":{\"id\":\"live-%d-%d\","
		         "\"phone\":\"%s\"},\"touchpoint\":\"claim\",\"score\":%d,\"comment\":\"during\"}",
		         fd->k, n, fd->k, n, PHONE, n % 11);
		struct http_result r;
		int rc = http_json(&fd->f->p, "POST", "/v1/surveys", fd->f->ingest, body, &r);
		long status = rc == 0 ? r.status : -1;
		http_result_free(&r);
		if (status != 201) {
			fd->bad = status;
			break;
		}
		atomic_store(&fd->acked, n);
	}
	return NULL;
}

static struct answer bulk_answer(int i, char customer[64])
{
	/* Long comments make a database of some megabytes: a copy that takes a while. */
	static const char comment[] = "The claim took three weeks and nobody called back; the letters "
	                              "contradicted each other and the web form lost my photos twice. "
	                              "I would like someone to look at the whole process, start to end.";
	snprintf(customer, 64, "bulk-%d", i);
	return (struct answer){ .customer = customer, .phone = PHONE, .score = i % 11, .comment = comment };
}

START_TEST(backup_while_answers_arrive_holds_every_acknowledged_one)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	post_many(&f, 6000, bulk_answer);

	struct feeder feeders[2];
	pthread_t threads[2];
	for (int k = 0; k < 2; k++) {
		feeders[k] = (struct feeder){ .f = &f, .k = k };
		ck_assert_int_eq(pthread_create(&threads[k], NULL, feed, &feeders[k]), 0);
	}
	/* Both feeders under way before the backup starts. */
	for (int waited = 0;
	     (atomic_load(&feeders[0].acked) < 20 || atomic_load(&feeders[1].acked) < 20) && waited < 10000;
	     waited += 10)
		sleep_ms(10);
	int before[2], after[2];
	for (int k = 0; k < 2; k++)
		before[k] = atomic_load(&feeders[k].acked);
	char *out_path = scratch_path("live.db");
	char *err = NULL;
	int status = ctl(f.p.db_path, NULL, &err, "backup", out_path, NULL);
	for (int k = 0; k < 2; k++)
		after[k] = atomic_load(&feeders[k].acked);
	/* A few more after it: npsd still takes answers. */
	for (int waited = 0; atomic_load(&feeders[1].acked) < after[1] + 5 && waited < 10000; waited += 10)
		sleep_ms(10);
	for (int k = 0; k < 2; k++) {
		atomic_store(&feeders[k].stop, true);
		pthread_join(threads[k], NULL);
	}
	ck_assert_msg(status == 0, "backup exited %d: %s", status, err);
	free(err);
	for (int k = 0; k < 2; k++) {
		ck_assert_msg(before[k] >= 20, "feeder %d did not get going", k);
		ck_assert_msg(feeders[k].bad == 0, "feeder %d got %ld while the backup ran", k,
		              feeders[k].bad);
		ck_assert_int_gt(atomic_load(&feeders[k].acked), after[k]);
	}

	assert_one_file(out_path);
	sqlite3 *copy = sql_open(out_path);
	assert_sound_copy(copy);
	ck_assert_int_eq(sql_int(copy, "SELECT count(*) FROM surveys WHERE response_id LIKE 'resp-%'", NULL),
	                 6000);
	sqlite3_stmt *st = sql_prepare(copy, "SELECT count(*) FROM surveys WHERE response_id = ?1", NULL);
	for (int k = 0; k < 2; k++) {
		int missing = 0, first_missing = 0;
		for (int n = 1; n <= before[k]; n++) {
			char rid[32];
			snprintf(rid, sizeof rid, "live-%d-%d", k, n);
			sqlite3_bind_text(st, 1, rid, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) {
				if (!missing++)
					first_missing = n;
			}
			sqlite3_reset(st);
		}
		ck_assert_msg(missing == 0,
		              "feeder %d: %d of the %d answers acknowledged before the backup are not in "
		              "it, the first live-%d-%d",
		              k, missing, before[k], k, first_missing);
		/* Nothing from after it either: at most the one in flight when it ended. */
		char like[32];
		snprintf(like, sizeof like, "live-%d-%%", k);
		long long held =
		        sql_int(copy, "SELECT count(*) FROM surveys WHERE response_id LIKE ?1", like);
		ck_assert_msg(held >= before[k] && held <= after[k] + 1,
		              "feeder %d: %lld answers in the copy, %d acknowledged before and %d after", k,
		              held, before[k], after[k]);
	}
	sqlite3_finalize(st);
	sqlite3_close(copy);
	unlink(out_path);
	free(out_path);
	fx_stop(&f);
}
END_TEST

START_TEST(npsd_serves_a_backup_put_in_place)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	json_int_t kept_cb = 0;
	json_int_t kept = post_id(&f, &(struct answer){ .customer = "cust-kept", .phone = PHONE, .score = 2 },
	                          &kept_cb);
	ck_assert_int_gt(kept_cb, 0);
	char *out_path = scratch_path("restore.db");
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "backup", out_path, NULL), 0);
	json_int_t later = post_id(&f, &(struct answer){ .customer = "cust-later", .score = 9 }, NULL);

	/* The way ops restore: stop, put the copy in the database's place, start. */
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	char *side = fmt("%s-wal", f.p.db_path);
	unlink(side);
	free(side);
	side = fmt("%s-shm", f.p.db_path);
	unlink(side);
	free(side);
	ck_assert_int_eq(rename(out_path, f.p.db_path), 0);
	ck_assert_msg(npsd_restart(&f.p) == 0, "npsd did not start on the backup");

	/* The old tokens are in the copy; so is the answer before it, not the one after. */
	json_t *survey = NULL;
	ck_assert_int_eq(get_id(&f, "surveys", kept, &survey), 200);
	ck_assert_str_eq(sget(json_object_get(survey, "customer"), "id"), "cust-kept");
	json_decref(survey);
	ck_assert_int_eq(get_status(&f, "callbacks", kept_cb), 200);
	ck_assert_int_eq(get_status(&f, "surveys", later), 404);
	/* And it is a database npsd writes to again. */
	post_id(&f, &(struct answer){ .customer = "cust-after", .score = 10 }, NULL);
	ck_assert_uint_eq(surveys_of(&f, "cust-after"), 1);
	free(out_path);
	fx_stop(&f);
}
END_TEST

/* A file-size limit (RLIMIT_FSIZE: what ulimit -f and systemd's LimitFSIZE= set) stands in
 * for a full disk: a write past it fails with EFBIG, where a full disk's fails with ENOSPC.
 * 16 pages: room for the -shm npsctl opens beside the database (32 KiB), not for a copy of
 * the database (35 pages before the first answer). */
#define ROOM_FOR_16_PAGES (16 * 4096)

/* Runs npsctl --db db backup path under a file-size limit of limit bytes, with SIGXFSZ
 * ignored (as a shell that ignores it passes on) or at its default, which kills: the exit
 * code (-1 when a signal ended it), stderr malloc'ed in *ret_err. */
static int backup_limited(const char *db, const char *path, rlim_t limit, bool ignore_sigxfsz,
                          char **ret_err)
{
	int err[2];
	ck_assert_int_eq(pipe(err), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { limit, limit };
		int null = open("/dev/null", O_WRONLY);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0 || null < 0)
			_exit(126);
		signal(SIGXFSZ, ignore_sigxfsz ? SIG_IGN : SIG_DFL);
		dup2(null, STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(err[0]);
		close(err[1]);
		execl(npsctl_bin(), npsctl_bin(), "--db", db, "backup", path, (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	size_t cap = 4096, len = 0;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	for (ssize_t got; len < cap - 1 && (got = read(err[0], text + len, cap - 1 - len)) > 0;)
		len += (size_t)got;
	text[len] = '\0';
	close(err[0]);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!strstr(text, "Sanitizer") && !strstr(text, "runtime error:"), "npsctl backup: %s", text);
	*ret_err = text;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Asserts that nothing of a failed backup to path is left: neither path nor its .partial,
 * nor the journal SQLite keeps beside the .partial while it writes. */
static void assert_no_backup_left(const char *path)
{
	static const char *const suffixes[] = { "", ".partial", ".partial-journal" };
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char *file = fmt("%s%s", path, suffixes[i]);
		ck_assert_msg(!exists(file), "%s is there", file);
		free(file);
	}
}

/* A backup that runs out of room names the file it could not write and what to do: it said
 * "database or disk is full" alone, which names neither. */
START_TEST(backup_out_of_room_names_the_path_and_what_to_do)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	post_id(&f, &(struct answer){ .customer = "cust-room", .phone = PHONE, .score = 4 }, NULL);
	char *out_path = scratch_path("full.db");
	char *err = NULL;
	int status = backup_limited(f.p.db_path, out_path, ROOM_FOR_16_PAGES, true, &err);
	ck_assert_msg(status == 1, "npsctl backup exited %d: %s", status, err);
	ck_assert_msg(strstr(err, out_path) && strstr(err, "free space") && strstr(err, "another disk"),
	              "the error does not name the path and what to do: %s", err);
	free(err);
	assert_no_backup_left(out_path);
	free(out_path);
	fx_stop(&f);
}
END_TEST

/* A path that exists is refused before the copy is made: it was refused only once the whole
 * copy was written (a second per 190 MB), and where the copy did not fit, for that. The
 * file-size limit shows which: a copy would run out of room. */
START_TEST(backup_to_an_existing_file_is_refused_before_the_copy)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	char *out_path = scratch_path("there.db");
	FILE *there = fopen(out_path, "w");
	ck_assert_ptr_nonnull(there);
	fputs("last night's backup", there);
	fclose(there);
	char *err = NULL;
	int status = backup_limited(f.p.db_path, out_path, ROOM_FOR_16_PAGES, true, &err);
	ck_assert_msg(status == 1, "npsctl backup exited %d: %s", status, err);
	ck_assert_msg(strstr(err, "exists") && !strstr(err, "room") && !strstr(err, "I/O"),
	              "not refused before the copy: %s", err);
	free(err);
	char *kept = read_all(out_path, NULL);
	ck_assert_msg(kept && strcmp(kept, "last night's backup") == 0, "the existing file was changed");
	free(kept);
	char *partial = fmt("%s.partial", out_path);
	ck_assert_msg(!exists(partial), "%s is there", partial);
	free(partial);
	unlink(out_path);
	free(out_path);
	fx_stop(&f);
}
END_TEST

/* Under a file-size limit with SIGXFSZ at its default (systemd's LimitFSIZE=, ulimit -f) a
 * backup fails with a message naming the path, and removes what it wrote: the signal
 * killed npsctl without a word and left PATH.partial behind. */
START_TEST(backup_past_a_file_size_limit_fails_and_cleans_up)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	char *out_path = scratch_path("limited.db");
	char *err = NULL;
	int status = backup_limited(f.p.db_path, out_path, ROOM_FOR_16_PAGES, false, &err);
	ck_assert_msg(status == 1, "npsctl backup exited %d (-1: killed by a signal): %s", status, err);
	ck_assert_msg(strstr(err, out_path) && strstr(err, "file-size limit"), "stderr: %s", err);
	free(err);
	assert_no_backup_left(out_path);
	/* The limit gone, the same path works: nothing in the way. */
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "backup", out_path, NULL), 0);
	assert_one_file(out_path);
	unlink(out_path);
	free(out_path);
	fx_stop(&f);
}
END_TEST

/* A backup whose copy cannot leave WAL mode (the copied header says WAL; here SQLite cannot
 * make PATH.partial-shm, a folder of that name is in the way) fails naming the file and
 * leaves nothing of its own behind: it left PATH.partial-wal. The folder, not the backup's,
 * stays; gone, the same path works. */
START_TEST(backup_that_cannot_leave_wal_mode_leaves_no_file_behind)
{
	struct fx f;
	fx_start(&f, 0, NULL);
	post_id(&f, &(struct answer){ .customer = "cust-shm", .phone = PHONE, .score = 9 }, NULL);
	char *out_path = scratch_path("no-shm.db");
	char *partial = fmt("%s.partial", out_path);
	char *in_the_way = fmt("%s-shm", partial);
	ck_assert_int_eq(mkdir(in_the_way, 0700), 0);
	char *err = NULL;
	int status = ctl(f.p.db_path, NULL, &err, "backup", out_path, NULL);
	ck_assert_msg(status == 1, "npsctl backup exited %d: %s", status, err);
	assert_no_backup_left(out_path);
	char *wal = fmt("%s-wal", partial);
	ck_assert_msg(!exists(wal), "%s is there", wal);
	free(wal);
	ck_assert_msg(err && strstr(err, partial), "the error does not name the file: %s", err);
	free(err);
	struct stat st;
	ck_assert_msg(stat(in_the_way, &st) == 0 && S_ISDIR(st.st_mode), "the folder %s went", in_the_way);
	ck_assert_int_eq(rmdir(in_the_way), 0);
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "backup", out_path, NULL), 0);
	assert_one_file(out_path);
	unlink(out_path);
	free(in_the_way);
	free(partial);
	free(out_path);
	fx_stop(&f);
}
END_TEST

/* A backup named as the database or one of SQLite's files beside it is refused, however the
 * path is spelled: as <db>-journal it is, to SQLite, a hot journal to roll back into the
 * database at the next open, and as <db>-wal or <db>-shm (not there while npsd is stopped)
 * a WAL or its index. Only the live database and, while npsd ran, its -wal and -shm were
 * refused, for being there. Another name in the same folder is fine. */
START_TEST(backup_under_a_name_sqlite_keeps_beside_the_database_is_refused)
{
	char *dir = scratch_path("beside");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *db = fmt("%s/npsd.db", dir);
	struct npsd_proc stopped = { 0 };
	snprintf(stopped.db_path, sizeof stopped.db_path, "%s", db);
	char *token = npsctl_key(&stopped, "admin", "ops");
	ck_assert_msg(token && *token, "key create made no database");
	free(token);
	const char *slash = strrchr(dir, '/');
	char *names[] = {
		fmt("%s-journal", db),
		fmt("%s-wal", db),
		fmt("%s-shm", db),
		fmt("%s/./npsd.db-journal", dir),
		fmt("%s/../%s/npsd.db-wal", dir, slash + 1),
		fmt("%s", db),
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *err = NULL;
		int status = ctl(db, NULL, &err, "backup", names[i], NULL);
		ck_assert_msg(status == 1, "backup to %s exited %d: %s", names[i], status, err);
		ck_assert_msg(err && strstr(err, names[i]) && strstr(err, "SQLite"), "backup to %s: %s", names[i],
		              err);
		free(err);
		if (i < 3)
			ck_assert_msg(!exists(names[i]), "%s was made", names[i]);
	}
	ck_assert_int_eq(ctl(db, NULL, NULL, "key", "list", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys", NULL), 1);
	char *beside = fmt("%s-copy", db);
	ck_assert_int_eq(ctl(db, NULL, NULL, "backup", beside, NULL), 0);
	assert_one_file(beside);
	unlink(beside);
	free(beside);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (i < 3)
			unlink(names[i]);
		free(names[i]);
	}
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* ---------- purge ---------- */

START_TEST(purge_keeps_what_is_owed_or_young_and_the_do_not_call_mark)
{
	struct fx f;
	fx_start(&f, T_OLD, "[\"survey.received\"]");
	char when[32];

	/* Two and a bit years ago. */
	json_int_t a1 = post_id(
	        &f, &(struct answer){ .customer = "cust-A", .name = "Anna Old", .phone = PHONE, .score = 10 },
	        NULL);
	json_int_t b_cb = 0, c_cb = 0, d_cb = 0;
	json_int_t b1 = post_id(
	        &f, &(struct answer){ .customer = "cust-B", .name = "Bert Old", .phone = PHONE, .score = 3 },
	        &b_cb);
	json_int_t c1 = post_id(&f,
	                        &(struct answer){ .customer = "cust-C",
	                                          .name = "Carla Owed",
	                                          .phone = PHONE,
	                                          .touchpoint = "purchase",
	                                          .score = 5 },
	                        &c_cb);
	json_int_t d1 = post_id(&f,
	                        &(struct answer){ .customer = "cust-D",
	                                          .name = "Dirk Nocall",
	                                          .phone = PHONE,
	                                          .email = "dirk@example.org",
	                                          .touchpoint = "renewal",
	                                          .score = 2 },
	                        &d_cb);
	ck_assert_msg(b_cb && c_cb && d_cb, "a low score opened no callback");
	claim_and_complete(&f, "claim", b_cb,
	                   "{\"outcome\":\"reached\",\"notes\":\"old call\",\"improvements\":[{\"area\":"
	                   "\"process\",\"text\":\"old improvement of B\"}]}");
	claim_and_complete(&f, "renewal", d_cb, "{\"outcome\":\"do_not_call\"}");
	wait_delivered(f.p.db_path, 4);
	json_int_t old[8];
	ck_assert_uint_eq(delivery_ids(&f, old, 8, 0), 4);

	/* Now: a new answer, and an old one that arrives late; its call is made now. */
	fake_clock_set(T_NEW);
	json_int_t e1 =
	        post_id(&f, &(struct answer){ .customer = "cust-E", .phone = PHONE, .score = 9 }, NULL);
	json_int_t f_cb = 0;
	json_int_t f1 = post_id(&f,
	                        &(struct answer){ .customer = "cust-F",
	                                          .phone = PHONE,
	                                          .touchpoint = "late",
	                                          .score = 4,
	                                          .answered_at = T_OLD },
	                        &f_cb);
	ck_assert_int_gt(f_cb, 0);
	claim_and_complete(&f, "late", f_cb,
	                   "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"service\",\"text\":\"new "
	                   "improvement of F\"}]}");
	wait_delivered(f.p.db_path, 6);

	/* What purge's counts must say, from the rows themselves. */
	char *sql = fmt("SELECT count(*) FROM callback_events WHERE callback_id IN (%lld, %lld)",
	                (long long)b_cb, (long long)d_cb);
	long long old_call_events = file_int(f.p.db_path, sql, NULL);
	free(sql);
	ck_assert_int_ge(old_call_events, 2);
	sql = fmt("SELECT count(*) FROM attempts WHERE delivery_id IN (%lld, %lld, %lld, %lld)",
	          (long long)old[0], (long long)old[1], (long long)old[2], (long long)old[3]);
	long long old_attempts = file_int(f.p.db_path, sql, NULL);
	free(sql);
	ck_assert_int_ge(old_attempts, 4);

	/* The cutoff is npsctl's now (the fake clock) less the age, and an answer at the cutoff
	 * itself is not older than it. */
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "purge", "--older-than", "800d", NULL), 0);
	ck_assert_msg(strstr(err, time_format_rfc3339(T_OLD, when)), "the cutoff is not %s: %s", when, err);
	ck_assert_msg(out && !*out, "purge wrote to stdout: %s", out);
	assert_counts(counts_of(err, "purged"), (struct counts){ 0 }, "purge at the old answers' second");
	free(out);
	free(err);

	/* retention.days, 730, when no age is given. */
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "purge", NULL), 0);
	ck_assert_msg(strstr(err, time_format_rfc3339(T_NEW - RETENTION, when)), "the cutoff is not %s: %s", when, err);
	ck_assert_msg(out && !*out, "purge wrote to stdout: %s", out);
	assert_counts(counts_of(err, "purged"),
	              (struct counts){ .surveys = 3,
	                               .callbacks = 2,
	                               .improvements = 1,
	                               .call_events = old_call_events,
	                               .customers = 2,
	                               .events = 4,
	                               .deliveries = 4,
	                               .attempts = old_attempts,
	                               .kept_do_not_call = 1 },
	              "purge of 730 days");
	free(out);
	free(err);

	/* A's promoter, B's answer and call, D's answer and call are gone. */
	ck_assert_int_eq(get_status(&f, "surveys", a1), 404);
	ck_assert_int_eq(get_status(&f, "surveys", b1), 404);
	ck_assert_int_eq(get_status(&f, "surveys", d1), 404);
	ck_assert_int_eq(get_status(&f, "callbacks", b_cb), 404);
	ck_assert_int_eq(get_status(&f, "callbacks", d_cb), 404);
	ck_assert_uint_eq(surveys_of(&f, "cust-A"), 0);
	ck_assert_uint_eq(surveys_of(&f, "cust-B"), 0);
	json_int_t total = 0;
	char *texts = improvement_texts(&f, &total);
	ck_assert_msg(!strstr(texts, "old improvement of B"), "B's improvement is still listed");
	ck_assert_msg(strstr(texts, "new improvement of F"), "F's improvement went: %s", texts);
	ck_assert_int_eq(total, 1);
	free(texts);

	/* C is still owed a call: the answer stays with it. E is young. F answered long ago, but
	 * its call was made within the period: both stay. */
	json_t *cb = NULL;
	ck_assert_int_eq(get_id(&f, "callbacks", c_cb, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	ck_assert_uint_eq(json_array_size(json_object_get(cb, "surveys")), 1);
	ck_assert_int_eq(iget(json_array_get(json_object_get(cb, "surveys"), 0), "id"), c1);
	json_decref(cb);
	ck_assert_int_eq(get_status(&f, "surveys", c1), 200);
	ck_assert_int_eq(get_status(&f, "surveys", e1), 200);
	ck_assert_int_eq(get_status(&f, "surveys", f1), 200);
	ck_assert_int_eq(get_status(&f, "callbacks", f_cb), 200);

	/* The old deliveries are gone from the webhook's log, the young ones are not. */
	json_int_t left[8];
	size_t n = delivery_ids(&f, left, 8, T_NEW - RETENTION);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < 4; i++)
		ck_assert_msg(!has_id(left, n, old[i]), "old delivery %lld is still listed",
		              (long long)old[i]);

	/* The customers: A and B gone, C kept whole, D kept for the mark alone. */
	sqlite3 *db = sql_open(f.p.db_path);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM customers WHERE id IN ('cust-A', 'cust-B')", NULL),
	                 0);
	char *name = sql_text(db, "SELECT name FROM customers WHERE id = 'cust-C'", NULL);
	ck_assert_str_eq(name, "Carla Owed");
	free(name);
	char *d_row =
	        sql_text(db,
	                 "SELECT do_not_call || '|' || coalesce(name, '-') || '|' || coalesce(phone, '-') || "
	                 "'|' || coalesce(email, '-') || '|' || coalesce(language, '-') FROM customers "
	                 "WHERE id = 'cust-D'",
	                 NULL);
	ck_assert_str_eq(d_row, "1|-|-|-|-");
	free(d_row);
	/* Nothing old is left in the outbox (the webhook's log would not show a delivery whose
	 * event went), and nothing left points at what went. */
	sql = fmt("SELECT (SELECT count(*) FROM events WHERE created_at < %lld) + (SELECT count(*) FROM "
	          "deliveries WHERE created_at < %lld)",
	          (long long)(T_NEW - RETENTION), (long long)(T_NEW - RETENTION));
	ck_assert_int_eq(sql_int(db, sql, NULL), 0);
	free(sql);
	assert_no_dangling(db, "after the purge");
	sqlite3_close(db);

	/* So D's next low score is stored and alerted but owes no call. */
	json_int_t d_again = 0;
	json_int_t d2 = post_id(&f,
	                        &(struct answer){ .customer = "cust-D",
	                                          .name = "Dirk Nocall",
	                                          .phone = PHONE,
	                                          .touchpoint = "renewal",
	                                          .score = 1 },
	                        &d_again);
	ck_assert_msg(d_again == 0, "D's new low score opened callback %lld: the do-not-call mark was lost",
	              (long long)d_again);
	ck_assert_int_eq(get_status(&f, "surveys", d2), 200);
	wait_delivered(f.p.db_path, 3);

	/* Nothing is left to purge, and saying the age gives the same cutoff. */
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "purge", "--older-than", "730d", NULL), 0);
	assert_counts(counts_of(err, "purged"), (struct counts){ 0 }, "the second purge");
	free(out);
	free(err);
	/* npsd served all along. */
	ck_assert_int_eq(get_status(&f, "surveys", e1), 200);
	fx_stop(&f);
}
END_TEST

static struct answer old_answer(int i, char customer[64])
{
	snprintf(customer, 64, "old-%d", i);
	return (struct answer){ .customer = customer, .score = i % 11 };
}

START_TEST(purge_goes_on_batch_after_batch)
{
	/* 1234 answers, customers, events and deliveries: npsctl goes on, a transaction of up to
	 * 500 rows of each kind at a time, until a batch deletes nothing, and the events wait for
	 * their deliveries, so none is ever left pointing at a missing event. */
	struct fx f;
	fx_start(&f, T_OLD, "[\"survey.received\"]");
	post_many(&f, 1234, old_answer);
	wait_delivered(f.p.db_path, 1234);
	long long attempts = file_int(f.p.db_path, "SELECT count(*) FROM attempts", NULL);
	ck_assert_int_ge(attempts, 1234);
	fake_clock_set(T_NEW);
	json_int_t young = post_id(&f, &(struct answer){ .customer = "young", .score = 8 }, NULL);
	wait_delivered(f.p.db_path, 1235);
	long long young_attempts = file_int(f.p.db_path, "SELECT count(*) FROM attempts", NULL) - attempts;

	char *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, NULL, &err, "purge", "--older-than", "1000h", NULL), 0);
	assert_counts(counts_of(err, "purged"),
	              (struct counts){ .surveys = 1234,
	                               .customers = 1234,
	                               .events = 1234,
	                               .deliveries = 1234,
	                               .attempts = attempts },
	              "purge of 1234 old answers");
	free(err);
	sqlite3 *db = sql_open(f.p.db_path);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM surveys", NULL), 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM customers", NULL), 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM events", NULL), 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM deliveries", NULL), 1);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM attempts", NULL), young_attempts);
	assert_no_dangling(db, "after the purge");
	sqlite3_close(db);
	ck_assert_int_eq(get_status(&f, "surveys", young), 200);
	fx_stop(&f);
}
END_TEST

/* npsd purges by itself, at start and daily: a database left 800 days (here: the clock
 * moved on while npsd was down) loses what retention.days no longer keeps. */
START_TEST(npsd_purges_by_itself_at_start)
{
	struct fx f;
	fx_start_with(&f, T_OLD, NULL, NULL); /* retention.days: the default, 730 */
	post_id(&f, &(struct answer){ .customer = "aged", .score = 9 }, NULL);
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	fake_clock_set(T_NEW);
	ck_assert_int_eq(npsd_restart(&f.p), 0);
	post_id(&f, &(struct answer){ .customer = "young", .score = 9 }, NULL);
	/* The retention thread runs beside the HTTP threads: give it a moment. Answers are
	 * looked up by customer: an id freed by the purge may be the young answer's now. */
	for (int i = 0; surveys_of(&f, "aged") != 0; i++) {
		if (i == 200) {
			char *log = npsd_log(&f.p);
			ck_abort_msg("an answer 800 days old is still there 10 s after the start; log:\n%s",
			             log ? log : "(none)");
		}
		sleep_ms(50);
	}
	ck_assert_uint_eq(surveys_of(&f, "young"), 1);
	/* Logged once the WAL is truncated too, a moment after the rows went. */
	char *log = NULL;
	for (int i = 0; !(log = npsd_log(&f.p)) || !strstr(log, "retention: purged 1 answers"); i++) {
		ck_assert_msg(i < 200, "npsd's log: %s", log ? log : "(none)");
		free(log);
		sleep_ms(50);
	}
	free(log);
	fx_stop(&f);
}
END_TEST

/* And daily after that, by the clock npsd keeps: a day on, what has aged past
 * retention.days goes without a restart. */
START_TEST(npsd_purges_by_itself_every_day)
{
	struct fx f;
	fx_start_with(&f, T_OLD, NULL, NULL); /* retention.days: the default, 730 */
	post_id(&f, &(struct answer){ .customer = "aging", .score = 9 }, NULL);
	sleep_ms(300); /* the run at start has come and gone, with nothing to purge */
	ck_assert_uint_eq(surveys_of(&f, "aging"), 1);
	fake_clock_set(T_NEW);
	for (int i = 0; surveys_of(&f, "aging") != 0; i++) {
		if (i == 200)
			ck_abort_msg("an answer 800 days old is still there 10 s after the clock moved on");
		sleep_ms(50);
	}
	fx_stop(&f);
}
END_TEST

/* ---------- erase ---------- */

/* A quote and letters beyond ASCII: the outbox payloads hold the id JSON-escaped. */
#define X_ID "cust-7 \"\xc3\x86r\xc3\xb8\""
#define X_NAME "Xerxes Erasmus-Test"
#define X_PHONE "+31687654321"
#define X_EMAIL "xerxes.erasmus@example.org"
#define X_COMMENT "X-comment-7f3a: the adjuster never came"
#define X_NOTES "X-notes-7f3a"
#define X_IMPROVEMENT "X-improvement-7f3a"
#define Y_ID "cust-77"
#define Y_NAME "Yolanda Keep-Test"
#define Y_PHONE "+31611112222"
#define Y_COMMENT "Y-comment-keep"
#define Y_IMPROVEMENT "Y-improvement-keep"

/* The deliveries the last step added to the webhook's log (ids not in seen), appended to
 * mine; every id seen so far into seen. */
static void note_new_deliveries(struct fx *f, json_int_t *seen, size_t *nseen, json_int_t *mine,
                                size_t *nmine)
{
	json_int_t now[64];
	size_t n = delivery_ids(f, now, 64, 0);
	for (size_t i = 0; i < n; i++) {
		if (has_id(seen, *nseen, now[i]))
			continue;
		seen[(*nseen)++] = now[i];
		mine[(*nmine)++] = now[i];
	}
}

/* Whether needle occurs in the len bytes at hay. */
static bool bytes_have(const char *hay, size_t len, const char *needle)
{
	return hay && memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* Neither the database file nor its WAL holds any of the ngone texts gone, in any page,
 * freed or not, and the two together hold each of the nkept texts kept (a search that
 * finds nothing must be able to find something). */
static void assert_files_hold(struct fx *f, const char *when, const char *const *gone, size_t ngone,
                              const char *const *kept, size_t nkept)
{
	char *wal = fmt("%s-wal", f->p.db_path);
	size_t wal_len = 0, len = 0;
	char *wal_bytes = read_all(wal, &wal_len);
	char *bytes = read_all(f->p.db_path, &len);
	ck_assert_ptr_nonnull(bytes);
	for (size_t i = 0; i < ngone; i++) {
		ck_assert_msg(!bytes_have(bytes, len, gone[i]), "%s: \"%s\" is still in %s", when, gone[i],
		              f->p.db_path);
		ck_assert_msg(!bytes_have(wal_bytes, wal_len, gone[i]), "%s: \"%s\" is still in %s", when,
		              gone[i], wal);
	}
	for (size_t i = 0; i < nkept; i++)
		ck_assert_msg(bytes_have(bytes, len, kept[i]) || bytes_have(wal_bytes, wal_len, kept[i]),
		              "%s: \"%s\" is not in the files: the search is blind", when, kept[i]);
	free(bytes);
	free(wal_bytes);
	free(wal);
}

/* X's details are in neither file, Y's are. */
static void assert_erased_from_the_files(struct fx *f, const char *when)
{
	static const char *const gone[] = { X_NAME, X_PHONE, X_EMAIL, X_COMMENT, X_NOTES, X_IMPROVEMENT };
	static const char *const kept[] = { Y_NAME, Y_PHONE, Y_COMMENT, Y_IMPROVEMENT };
	assert_files_hold(f, when, gone, sizeof gone / sizeof gone[0], kept, sizeof kept / sizeof kept[0]);
}

START_TEST(erase_removes_every_row_about_the_customer_and_no_other)
{
	struct fx f;
	fx_start(&f, 0, "[\"survey.received\", \"callback.created\", \"callback.completed\"]");
	json_int_t seen[64], xs[64], ys[64];
	size_t nseen = 0, nx = 0, ny = 0;

	json_int_t x1 = post_id(&f,
	                        &(struct answer){ .customer = X_ID,
	                                          .name = X_NAME,
	                                          .phone = X_PHONE,
	                                          .email = X_EMAIL,
	                                          .score = 10,
	                                          .comment = X_COMMENT },
	                        NULL);
	note_new_deliveries(&f, seen, &nseen, xs, &nx);
	json_int_t x_cb = 0, y_cb = 0;
	json_int_t x2 = post_id(&f,
	                        &(struct answer){ .customer = X_ID,
	                                          .name = X_NAME,
	                                          .phone = X_PHONE,
	                                          .email = X_EMAIL,
	                                          .score = 4,
	                                          .comment = X_COMMENT },
	                        &x_cb);
	note_new_deliveries(&f, seen, &nseen, xs, &nx);
	/* Y's answer names X's id, as a referral might: it is about Y and stays. */
	json_t *attributes = json_pack("{s:s}", "referred_by", X_ID);
	json_int_t y1 = post_id(&f,
	                        &(struct answer){ .customer = Y_ID,
	                                          .name = Y_NAME,
	                                          .phone = Y_PHONE,
	                                          .touchpoint = "purchase",
	                                          .score = 3,
	                                          .comment = Y_COMMENT,
	                                          .attributes = attributes },
	                        &y_cb);
	json_decref(attributes);
	note_new_deliveries(&f, seen, &nseen, ys, &ny);
	ck_assert_msg(x_cb && y_cb, "a low score opened no callback");
	claim_and_complete(&f, "claim", x_cb,
	                   "{\"outcome\":\"reached\",\"notes\":\"" X_NOTES "\",\"improvements\":[{\"area\":"
	                   "\"process\",\"text\":\"" X_IMPROVEMENT "\"}]}");
	note_new_deliveries(&f, seen, &nseen, xs, &nx);
	claim_and_complete(
	        &f, "purchase", y_cb,
	        "{\"outcome\":\"reached\",\"improvements\":[{\"area\":\"service\",\"text\":\"" Y_IMPROVEMENT
	        "\"}]}");
	note_new_deliveries(&f, seen, &nseen, ys, &ny);
	/* survey.received twice, callback.created, callback.completed; for Y all but one. */
	ck_assert_uint_eq(nx, 4);
	ck_assert_uint_eq(ny, 3);
	wait_delivered(f.p.db_path, 7);

	sqlite3 *db = sql_open(f.p.db_path);
	long long x_call_events =
	        sql_int(db, "SELECT count(*) FROM callback_events WHERE customer_id = ?1", X_ID);
	long long x_attempts = sql_int(
	        db,
	        "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e "
	        "ON e.id = d.event_id WHERE json_extract(e.payload, '$.customer.id') = ?1",
	        X_ID);
	sqlite3_close(db);
	ck_assert_int_ge(x_call_events, 1);
	ck_assert_int_ge(x_attempts, 4);

	char *out = NULL, *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "erase", "--customer", X_ID, NULL), 0);
	ck_assert_msg(out && !*out, "erase wrote to stdout: %s", out);
	assert_counts(counts_of(err, "erased"),
	              (struct counts){ .surveys = 2,
	                               .callbacks = 1,
	                               .improvements = 1,
	                               .call_events = x_call_events,
	                               .customers = 1,
	                               .events = 4,
	                               .deliveries = 4,
	                               .attempts = x_attempts },
	              "erase of X");
	free(out);
	free(err);

	/* X is gone from every reply... */
	ck_assert_int_eq(get_status(&f, "surveys", x1), 404);
	ck_assert_int_eq(get_status(&f, "surveys", x2), 404);
	ck_assert_int_eq(get_status(&f, "callbacks", x_cb), 404);
	ck_assert_uint_eq(surveys_of(&f, X_ID), 0);
	json_int_t total = 0;
	char *texts = improvement_texts(&f, &total);
	ck_assert_msg(!strstr(texts, X_IMPROVEMENT), "X's improvement is still listed");
	ck_assert_msg(strstr(texts, Y_IMPROVEMENT), "Y's improvement went: %s", texts);
	ck_assert_int_eq(total, 1);
	free(texts);
	json_int_t left[64];
	size_t n = delivery_ids(&f, left, 64, 0);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < nx; i++)
		ck_assert_msg(!has_id(left, n, xs[i]), "X's delivery %lld is still listed", (long long)xs[i]);
	for (size_t i = 0; i < ny; i++)
		ck_assert_msg(has_id(left, n, ys[i]), "Y's delivery %lld went", (long long)ys[i]);

	/* ...while Y is whole. */
	json_t *survey = NULL;
	ck_assert_int_eq(get_id(&f, "surveys", y1, &survey), 200);
	ck_assert_str_eq(sget(json_object_get(survey, "customer"), "name"), Y_NAME);
	ck_assert_str_eq(sget(json_object_get(survey, "attributes"), "referred_by"), X_ID);
	json_decref(survey);
	json_t *cb = NULL;
	ck_assert_int_eq(get_id(&f, "callbacks", y_cb, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "done");
	json_decref(cb);
	ck_assert_uint_eq(surveys_of(&f, Y_ID), 1);
	db = sql_open(f.p.db_path);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM customers WHERE id = ?1", X_ID), 0);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM callback_events WHERE customer_id = ?1", X_ID), 0);
	ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM events", NULL), 3);
	assert_no_dangling(db, "after the erase");
	sqlite3_close(db);

	/* Erased before, or never there: 1, so a typo does not pass for a request carried out. */
	ck_assert_int_eq(ctl(f.p.db_path, &out, &err, "erase", "--customer", X_ID, NULL), 1);
	ck_assert_msg(err && *err, "a second erase says nothing");
	ck_assert_msg(out && !*out, "a second erase wrote to stdout: %s", out);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "erase", "--customer", "nobody-ever", NULL), 1);
	/* Part of X's id is no id. */
	ck_assert_int_eq(ctl(f.p.db_path, NULL, NULL, "erase", "--customer", "cust-7", NULL), 1);
	ck_assert_uint_eq(surveys_of(&f, Y_ID), 1);

	/* While npsd runs, and after a clean stop (which checkpoints the WAL into the file and
	 * removes it), X's details are in neither file's bytes, freed pages included. */
	assert_erased_from_the_files(&f, "while npsd runs");
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	assert_erased_from_the_files(&f, "after a clean stop");
	fx_stop(&f);
}
END_TEST


START_TEST(erase_of_a_customer_whose_call_is_under_way)
{
	/* The agent is on the phone when the request to erase arrives: the call and its lease
	 * go with the rest, the agent's next step is a 404, and the lease and SLA timers that
	 * would have fired find nothing to act on. */
	struct fx f;
	fx_start(&f, T_NEW, NULL);
	json_int_t q_cb = 0, other_cb = 0;
	post_id(&f,
	        &(struct answer){
	                .customer = "cust-R", .phone = PHONE, .touchpoint = "purchase", .score = 6 },
	        &other_cb);
	/* Q's answer and call are the newest: their ids are the ones SQLite would hand out again. */
	json_int_t q1 =
	        post_id(&f, &(struct answer){ .customer = "cust-Q", .phone = PHONE, .score = 1 }, &q_cb);
	ck_assert_msg(q_cb && other_cb, "a low score opened no callback");
	json_t *claimed = NULL;
	ck_assert_int_eq(
	        call(&f, "POST", "/v1/callbacks/claim", f.agent, "{\"touchpoint\":\"claim\"}", &claimed),
	        200);
	ck_assert_int_eq(iget(claimed, "id"), q_cb);
	json_decref(claimed);

	char *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, NULL, &err, "erase", "--customer", "cust-Q", NULL), 0);
	struct counts c = counts_of(err, "erased");
	free(err);
	ck_assert_int_eq(c.surveys, 1);
	ck_assert_int_eq(c.callbacks, 1);
	ck_assert_int_eq(c.customers, 1);

	char path[96];
	snprintf(path, sizeof path, "/v1/callbacks/%lld/heartbeat", (long long)q_cb);
	ck_assert_int_eq(call(&f, "POST", path, f.agent, NULL, NULL), 404);
	snprintf(path, sizeof path, "/v1/callbacks/%lld/complete", (long long)q_cb);
	ck_assert_int_eq(call(&f, "POST", path, f.agent, "{\"outcome\":\"reached\"}", NULL), 404);
	ck_assert_int_eq(get_status(&f, "surveys", q1), 404);
	json_t *queue = NULL;
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks", f.manager, NULL, &queue), 200);
	json_t *items = json_object_get(queue, "callbacks");
	ck_assert_uint_eq(json_array_size(items), 1);
	ck_assert_int_eq(iget(json_array_get(items, 0), "id"), other_cb);
	json_decref(queue);

	/* Past the lease and the SLA deadline: the scheduler runs over where the call was. */
	fake_clock_set(T_NEW + 2 * 3600);
	sleep_ms(500);
	ck_assert_int_eq(call(&f, "GET", "/v1/callbacks/stats", f.manager, NULL, NULL), 200);
	json_t *cb = NULL;
	ck_assert_int_eq(get_id(&f, "callbacks", other_cb, &cb), 200);
	ck_assert_str_eq(sget(cb, "status"), "queued");
	json_decref(cb);

	/* Q is a stranger now: a new low score is a new customer with a new call, under ids that
	 * no link to the erased ones can reach. */
	json_int_t again = 0;
	json_int_t q2 = post_id(&f, &(struct answer){ .customer = "cust-Q", .phone = PHONE, .score = 2 }, &again);
	ck_assert_msg(again > q_cb, "Q's new low score opened callback %lld after %lld", (long long)again,
	              (long long)q_cb);
	ck_assert_msg(q2 > q1, "Q's new answer is %lld after %lld", (long long)q2, (long long)q1);
	ck_assert_int_eq(
	        call(&f, "POST", "/v1/callbacks/claim", f.agent, "{\"touchpoint\":\"claim\"}", &claimed),
	        200);
	ck_assert_int_eq(iget(claimed, "id"), again);
	json_decref(claimed);
	fx_stop(&f);
}
END_TEST

/* ---------- lifecycle ---------- */

/* Stands for an npsd of an older release holding its database: a folder named name with a
 * database of schema version 0 (a table of its own, in WAL mode) open in *ret_older, and
 * npsd's flock on it held by the descriptor returned. */
static int hold_older_npsd(const char *name, char **ret_dir, char **ret_db, sqlite3 **ret_older)
{
	*ret_dir = scratch_path(name);
	ck_assert_int_eq(mkdir(*ret_dir, 0700), 0);
	*ret_db = fmt("%s/npsd.db", *ret_dir);
	*ret_older = NULL;
	ck_assert_int_eq(sqlite3_open(*ret_db, ret_older), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(*ret_older, "PRAGMA journal_mode = WAL; CREATE TABLE older_npsd (x);",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	int fd = open(*ret_db, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	return fd;
}

/* A second npsd on a database another one serves stops before it changes anything: the
 * lock is taken before the migrations. A newer npsd started by hand beside the running
 * service (after an upgrade, before the restart) migrated the schema under the older one,
 * which then ran on tables it does not know. The test holds the lock itself, as the older
 * npsd would, on a database whose schema is older than this npsd's (version 0, a table of
 * its own). */
START_TEST(a_second_npsd_migrates_nothing_under_the_first)
{
	char *dir, *db;
	sqlite3 *older;
	int fd = hold_older_npsd("in-use", &dir, &db, &older);

	const char *const argv[] = { "/usr/bin/timeout", "10", npsd_bin(), "--db", db, "--listen", "127.0.0.1:0", NULL };
	char *err = NULL;
	int status = run_program(argv, NULL, &err);
	ck_assert_msg(status == 1, "a second npsd exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "is in use by another npsd"), "stderr: %s", err ? err : "(none)");
	ck_assert_msg(!strstr(err, "migration"), "stderr: %s", err);
	ck_assert_int_eq(file_int(db, "PRAGMA user_version", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM sqlite_master WHERE name <> 'older_npsd'", NULL), 0);
	free(err);

	close(fd);
	sqlite3_close(older);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* npsctl of a newer release beside a running npsd of an older one (upgraded, not yet
 * restarted: a nightly backup) leaves the schema alone and says to restart npsd; it
 * migrated the database under the running npsd. Without npsd it migrates (a stopped
 * service, or the first key of a new install). The test holds npsd's lock itself on a
 * database of schema version 0. */
START_TEST(npsctl_migrates_nothing_under_a_running_npsd)
{
	char *dir, *db;
	sqlite3 *older;
	int fd = hold_older_npsd("older", &dir, &db, &older);
	char *copy = fmt("%s/copy.db", dir);

	char *out = NULL, *err = NULL;
	int status = ctl(db, &out, &err, "backup", copy, NULL);
	ck_assert_msg(status == 1, "npsctl backup exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "restart npsd"), "stderr: %s", err ? err : "(none)");
	ck_assert_int_eq(file_int(db, "PRAGMA user_version", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM sqlite_master WHERE name <> 'older_npsd'", NULL), 0);
	ck_assert(!exists(copy));
	free(out);
	free(err);

	/* npsd stopped: npsctl brings the schema up to date itself. */
	close(fd);
	ck_assert_int_eq(ctl(db, NULL, NULL, "key", "list", NULL), 0);
	ck_assert_int_gt(file_int(db, "PRAGMA user_version", NULL), 0);
	sqlite3_close(older);
	remove_db_folder(dir, db);
	free(copy);
	free(db);
	free(dir);
}
END_TEST

/* npsctl migrate applies the pending migrations, naming each in order, and says so (exit 0);
 * run again, it says the schema is current (exit 0): an upgrade migrates before it starts
 * the new npsd, where only another command migrated, as a side effect. Beside a running npsd
 * of the older schema it migrates nothing and says to restart npsd; on a missing database it
 * exits 1 and makes none; an argument is a usage error. */
START_TEST(npsctl_migrate_applies_the_migrations_and_says_which)
{
	char *dir, *db;
	sqlite3 *older;
	int fd = hold_older_npsd("migrate", &dir, &db, &older);
	char *out = NULL, *err = NULL;
	int status = ctl(db, &out, &err, "migrate", NULL);
	ck_assert_msg(status == 1 && err && strstr(err, "restart npsd"), "migrate beside npsd exited %d: %s", status,
	              err ? err : "");
	ck_assert_int_eq(file_int(db, "PRAGMA user_version", NULL), 0);
	free(out);
	free(err);

	close(fd); /* npsd stopped */
	char want[4096] = "";
	size_t used = 0;
	for (size_t i = 0; i < migrations_count; i++)
		used += (size_t)snprintf(want + used, sizeof want - used, "applied migration %s\n", migrations[i].name);
	int newest = migrations[migrations_count - 1].version;
	snprintf(want + used, sizeof want - used, "the schema is at version %d (it was at 0)\n", newest);
	out = err = NULL;
	status = ctl(db, &out, &err, "migrate", NULL);
	ck_assert_msg(status == 0, "migrate exited %d: %s", status, err ? err : "");
	ck_assert_msg(out && !*out, "migrate wrote to stdout: %s", out);
	ck_assert_msg(err && strcmp(err, want) == 0, "migrate said:\n%s\nwant:\n%s", err ? err : "(none)", want);
	ck_assert_int_eq(file_int(db, "PRAGMA user_version", NULL), newest);
	free(out);
	free(err);

	out = err = NULL;
	status = ctl(db, &out, &err, "migrate", NULL);
	char *current = fmt("the schema is current (version %d): no migration to apply\n", newest);
	ck_assert_msg(status == 0 && err && strcmp(err, current) == 0, "migrate again exited %d: %s", status,
	              err ? err : "(none)");
	free(current);
	free(out);
	free(err);

	err = NULL;
	ck_assert_int_eq(ctl(db, NULL, &err, "migrate", "now", NULL), 2);
	free(err);
	char *missing = fmt("%s/none.db", dir);
	err = NULL;
	status = ctl(missing, NULL, &err, "migrate", NULL);
	ck_assert_msg(status == 1 && err && strstr(err, "no database"), "migrate on a missing database exited %d: %s",
	              status, err ? err : "");
	ck_assert(!exists(missing));
	free(err);
	free(missing);

	sqlite3_close(older);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What an npsctl migrating the database holds until its commit: the flock shared, and
 * SQLite's write lock (here on hold_older_npsd's database, at schema version 0). */
struct migrating_npsctl {
	int fd;
	sqlite3 *conn;
	int after_ms; /* when it commits and lets go */
};

static void *migration_ends(void *arg)
{
	struct migrating_npsctl *m = arg;
	sleep_ms(m->after_ms);
	ck_assert_int_eq(sqlite3_exec(m->conn, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(flock(m->fd, LOCK_UN), 0);
	return NULL;
}

/* npsd started while an npsctl migrates the database (systemd's start right after an
 * upgrade whose npsctl run migrates it) waits for the migration and then starts on the
 * migrated database: it stopped at once, saying "in use by another npsd", which no npsd
 * was. The test holds what npsctl's migration holds for a second, then lets go; npsd runs
 * until timeout(1) stops it (124). */
START_TEST(npsd_started_while_npsctl_migrates_waits_for_it)
{
	char *dir, *db;
	struct migrating_npsctl m = { .after_ms = 1000 };
	m.fd = hold_older_npsd("migrating", &dir, &db, &m.conn);
	ck_assert_int_eq(flock(m.fd, LOCK_SH | LOCK_NB), 0); /* npsctl's lock is a shared one */
	ck_assert_int_eq(sqlite3_exec(m.conn, "BEGIN IMMEDIATE; INSERT INTO older_npsd VALUES (1);", NULL, NULL,
	                              NULL),
	                 SQLITE_OK);
	pthread_t ends;
	ck_assert_int_eq(pthread_create(&ends, NULL, migration_ends, &m), 0);

	const char *const argv[] = { "/usr/bin/timeout", "4", npsd_bin(), "--db", db, "--listen", "127.0.0.1:0", NULL };
	char *err = NULL;
	int status = run_program(argv, NULL, &err);
	pthread_join(ends, NULL);
	ck_assert_msg(status == 124, "npsd exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "npsctl is migrating") && strstr(err, "listening on") &&
	                      !strstr(err, "in use by another npsd"),
	              "npsd's log: %s", err ? err : "(none)");
	ck_assert_int_gt(file_int(db, "PRAGMA user_version", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM older_npsd", NULL), 1);
	free(err);

	close(m.fd);
	sqlite3_close(m.conn);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* npsctl of a newer release beside an older npsd that is busy writing (it holds SQLite's
 * write lock, and its flock) says at once to restart npsd, for every command: it asked for
 * the write lock first, and said "database is locked" after 5 s when the writes kept it. The
 * test holds both locks itself, on a database of schema version 0. */
START_TEST(npsctl_beside_a_busy_older_npsd_says_restart_npsd_at_once)
{
	char *dir, *db;
	sqlite3 *older;
	int fd = hold_older_npsd("busy-older", &dir, &db, &older);
	char *copy = fmt("%s/copy.db", dir);
	ck_assert_int_eq(sqlite3_exec(older, "BEGIN IMMEDIATE; INSERT INTO older_npsd VALUES (1);", NULL, NULL,
	                              NULL),
	                 SQLITE_OK);

	const char *const commands[][6] = {
		{ "key", "list" },
		{ "key", "create", "--role", "admin", "--name", "ops" },
		{ "backup", copy },
		{ "purge" },
		{ "erase", "--customer", "cust-1" },
	};
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		const char *const *c = commands[i];
		char *err = NULL;
		double t0 = mono_s();
		int status = ctl(db, NULL, &err, c[0], c[1], c[2], c[3], c[4], c[5], NULL);
		double took = mono_s() - t0;
		ck_assert_msg(status == 1, "npsctl %s exited %d: %s", c[0], status, err ? err : "");
		ck_assert_msg(err && strstr(err, "restart npsd") && !strstr(err, "locked"), "npsctl %s: %s", c[0],
		              err ? err : "(none)");
		ck_assert_msg(took < 2, "npsctl %s took %.1f s to say so", c[0], took);
		free(err);
	}
	ck_assert(!exists(copy));
	ck_assert_int_eq(sqlite3_exec(older, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(file_int(db, "PRAGMA user_version", NULL), 0);

	close(fd);
	sqlite3_close(older);
	remove_db_folder(dir, db);
	free(copy);
	free(db);
	free(dir);
}
END_TEST

/* Stands for an npsd holding SQLite's write lock (a slow disk under its commit): a folder
 * named name with a database of the current schema (made by npsctl key create), and the
 * connection returned in an open write transaction. */
static sqlite3 *hold_write_lock(const char *name, char **ret_dir, char **ret_db)
{
	*ret_dir = scratch_path(name);
	ck_assert_int_eq(mkdir(*ret_dir, 0700), 0);
	*ret_db = fmt("%s/npsd.db", *ret_dir);
	struct npsd_proc stopped = { 0 };
	snprintf(stopped.db_path, sizeof stopped.db_path, "%s", *ret_db);
	char *token = npsctl_key(&stopped, "admin", "ops");
	ck_assert_msg(token && *token, "key create made no database");
	free(token);
	sqlite3 *npsd = NULL;
	ck_assert_int_eq(sqlite3_open(*ret_db, &npsd), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(npsd, "BEGIN IMMEDIATE; UPDATE api_keys SET name = name;", NULL, NULL,
	                              NULL),
	                 SQLITE_OK);
	return npsd;
}

/* Beside an npsd that holds SQLite's write lock (a slow disk under its commit, a long write),
 * what only reads goes through: key list and backup said "database is locked" after 5 s,
 * for a schema that needed no migration. A write waits for the lock up to 5 s and then
 * says who holds it and what to do, not "Device or resource busy"; once the lock is free
 * it goes through. The test holds the lock itself on a database of the current schema. */
START_TEST(npsctl_beside_an_npsd_holding_the_write_lock)
{
	char *dir, *db;
	sqlite3 *npsd = hold_write_lock("write-locked", &dir, &db);
	char *copy = fmt("%s/copy.db", dir);

	char *out = NULL, *err = NULL;
	double t0 = mono_s();
	int status = ctl(db, &out, &err, "key", "list", NULL);
	ck_assert_msg(status == 0 && out && strstr(out, "ops"), "key list exited %d after %.1f s: %s%s", status,
	              mono_s() - t0, out ? out : "", err ? err : "");
	free(out);
	free(err);
	err = NULL;
	status = ctl(db, NULL, &err, "backup", copy, NULL);
	ck_assert_msg(status == 0, "backup exited %d: %s", status, err ? err : "");
	free(err);
	assert_one_file(copy);
	ck_assert_int_eq(file_int(copy, "SELECT count(*) FROM api_keys", NULL), 1);

	err = NULL;
	status = ctl(db, NULL, &err, "key", "create", "--role", "agent", "--name", "later", NULL);
	ck_assert_msg(status == 1, "key create exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "locked") && strstr(err, "try again") && !strstr(err, "database is locked") &&
	                      !strstr(err, "busy"),
	              "key create beside the lock: %s", err ? err : "(none)");
	free(err);

	ck_assert_int_eq(sqlite3_exec(npsd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(ctl(db, NULL, NULL, "key", "create", "--role", "agent", "--name", "later", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys", NULL), 2);

	sqlite3_close(npsd);
	unlink(copy);
	remove_db_folder(dir, db);
	free(copy);
	free(db);
	free(dir);
}
END_TEST

/* A purge beside a held write lock that deleted nothing says "try again" once its batch has
 * waited the 5 s for the lock: it went on to the WAL's truncation tries, about ten seconds
 * more that the same lock made fail, and only then said so, with a warning about copies it
 * had not made. Once the lock is free, the purge goes through. */
START_TEST(purge_beside_a_held_write_lock_says_try_again_after_its_wait)
{
	char *dir, *db;
	sqlite3 *npsd = hold_write_lock("purge-locked", &dir, &db);

	char *err = NULL;
	double t0 = mono_s();
	int status = ctl(db, NULL, &err, "purge", NULL);
	double took = mono_s() - t0;
	ck_assert_msg(status == 1, "purge exited %d after %.1f s: %s", status, took, err ? err : "");
	ck_assert_msg(took > 4 && took < 7, "purge beside the lock took %.1f s to fail", took);
	ck_assert_msg(err && strstr(err, "locked for 5 s; try again") && !strstr(err, "warning"),
	              "purge beside the lock: %s", err ? err : "(none)");
	free(err);

	ck_assert_int_eq(sqlite3_exec(npsd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	err = NULL;
	status = ctl(db, NULL, &err, "purge", NULL);
	ck_assert_msg(status == 0 && err && !strstr(err, "warning"), "purge after the lock exited %d: %s", status,
	              err ? err : "");
	free(err);

	sqlite3_close(npsd);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* A reader that keeps the WAL from being truncated (a long report, a backup), holding a
 * snapshot from before the purge: the checkpoint after it finds the WAL busy every try. */
static sqlite3 *hold_wal(const char *db_path, long long surveys)
{
	sqlite3 *reader = sql_open(db_path);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sql_int(reader, "SELECT count(*) FROM surveys", NULL), surveys);
	return reader;
}

/* Runs npsctl purge with NPSD_TEST_FAIL_SYNC=fail_sync (its Nth sync of the WAL fails, as on
 * a disk that fails): its exit code, stderr in *ret_err, and its time in *ret_took. */
static int purge_failing_sync(const char *db_path, const char *fail_sync, char **ret_err, double *ret_took)
{
	ck_assert_int_eq(setenv("NPSD_TEST_FAIL_SYNC", fail_sync, 1), 0);
	double t0 = mono_s();
	int status = ctl(db_path, NULL, ret_err, "purge", NULL);
	*ret_took = mono_s() - t0;
	unsetenv("NPSD_TEST_FAIL_SYNC");
	return status;
}

/* A purge that fails before it deletes anything for another reason than the write lock
 * (here an I/O error: the sync of its first batch fails) says so at once: it went on to the
 * WAL's truncation tries, ten seconds while a reader kept the WAL busy, and then warned of
 * copies it had not made. */
START_TEST(purge_that_fails_before_deleting_anything_says_so_at_once)
{
	struct fx f;
	fx_start(&f, T_OLD, NULL);
	post_many(&f, 3, old_answer);
	fake_clock_set(T_NEW);
	sqlite3 *reader = hold_wal(f.p.db_path, 3);

	char *err = NULL;
	double took;
	int status = purge_failing_sync(f.p.db_path, "1", &err, &took);
	ck_assert_msg(status == 1, "purge exited %d after %.1f s: %s", status, took, err ? err : "");
	ck_assert_msg(took < 2, "the failed purge took %.1f s to say so: %s", took, err ? err : "");
	ck_assert_msg(err && strstr(err, "purge failed") && !strstr(err, "warning"), "the failed purge: %s",
	              err ? err : "(none)");
	assert_counts(counts_of(err, "failure:"), (struct counts){ 0 }, "the failed purge");
	free(err);

	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);
	fx_stop(&f);
}
END_TEST

/* One that fails part-way because the storage failed (the sync of its second batch) reports
 * at once too, with what it purged before and the warning that their copies may stay in
 * the WAL: the truncation writes to the storage that just failed, and made its ten seconds
 * of tries while a reader kept the WAL busy. */
START_TEST(purge_that_fails_part_way_on_the_storage_says_so_at_once)
{
	struct fx f;
	fx_start(&f, T_OLD, NULL);
	post_many(&f, RETENTION_BATCH + 1, old_answer);
	fake_clock_set(T_NEW);
	sqlite3 *reader = hold_wal(f.p.db_path, RETENTION_BATCH + 1);

	char *err = NULL;
	double took;
	int status = purge_failing_sync(f.p.db_path, "2", &err, &took);
	ck_assert_msg(status == 1, "purge exited %d after %.1f s: %s", status, took, err ? err : "");
	ck_assert_msg(took < 2, "the failed purge took %.1f s to say so: %s", took, err ? err : "");
	ck_assert_msg(err && strstr(err, "purge failed") &&
	                      strstr(err, "warning: the purged rows are gone from the database, but older copies"),
	              "the failed purge: %s", err ? err : "(none)");
	assert_counts(counts_of(err, "failure:"),
	              (struct counts){ .surveys = RETENTION_BATCH, .customers = RETENTION_BATCH },
	              "the purge that failed part-way");
	free(err);

	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);
	fx_stop(&f);
}
END_TEST

/* A purge whose last batch was committed but whose sync failed says that batch may or may
 * not be gone, with its counts, and to run it again: it said "purged before the failure" of
 * the batches before alone, as if the last one had deleted nothing, while after the restart
 * its rows may well be gone. */
START_TEST(purge_whose_last_batch_may_not_be_on_disk_says_so)
{
	struct fx f;
	fx_start(&f, T_OLD, NULL);
	post_many(&f, RETENTION_BATCH + 1, old_answer);
	fake_clock_set(T_NEW);

	char *err = NULL;
	double took;
	int status = purge_failing_sync(f.p.db_path, "2", &err, &took);
	ck_assert_msg(status == 1, "purge exited %d after %.1f s: %s", status, took, err ? err : "");
	assert_counts(counts_of(err, "failure:"),
	              (struct counts){ .surveys = RETENTION_BATCH, .customers = RETENTION_BATCH },
	              "what the purge knows it purged");
	assert_counts(counts_of(err, "written:"), (struct counts){ .surveys = 1, .customers = 1 },
	              "the batch in doubt");
	ck_assert_msg(strstr(err, "may or may not have been purged, the disk failed while their batch was "
	                          "written: ") &&
	                      strstr(err, "purge failed; run it again: the disk failed while the change was "
	                                  "written"),
	              "the purge whose last sync failed: %s", err);
	free(err);
	fx_stop(&f);
}
END_TEST

/* A purge or an erase that a trigger refuses (here a legal hold on answers) says so, with
 * the trigger's words: SQLite's constraint code became -EEXIST at the db edge, and both
 * printed its strerror, "File exists". */
START_TEST(purge_and_erase_refused_by_a_trigger_say_why)
{
	struct fx f;
	fx_start(&f, T_OLD, NULL);
	post_many(&f, 3, old_answer);
	fake_clock_set(T_NEW);
	sqlite3 *admin = NULL;
	ck_assert_int_eq(sqlite3_open_v2(f.p.db_path, &admin, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(admin, 5000);
	ck_assert_int_eq(sqlite3_exec(admin,
	                              "CREATE TRIGGER legal_hold BEFORE DELETE ON surveys BEGIN "
	                              "SELECT RAISE(ABORT, 'answers are on legal hold'); END",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);

	char *err = NULL;
	int status = ctl(f.p.db_path, NULL, &err, "purge", NULL);
	ck_assert_msg(status == 1, "purge exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "npsctl: purge failed: the database refused the change (a constraint "
	                                 "or a trigger): answers are on legal hold\n") &&
	                      !strstr(err, "File exists"),
	              "the refused purge: %s", err ? err : "(none)");
	assert_counts(counts_of(err, "failure:"), (struct counts){ 0 }, "the refused purge");
	free(err);

	err = NULL;
	status = ctl(f.p.db_path, NULL, &err, "erase", "--customer", "old-1", NULL);
	ck_assert_msg(status == 1, "erase exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "npsctl: erase failed, nothing was erased: the database refused the "
	                                 "change (a constraint or a trigger): answers are on legal hold\n") &&
	                      !strstr(err, "File exists"),
	              "the refused erase: %s", err ? err : "(none)");
	free(err);
	ck_assert_int_eq(file_int(f.p.db_path, "SELECT count(*) FROM surveys", NULL), 3);

	ck_assert_int_eq(sqlite3_exec(admin, "DROP TRIGGER legal_hold", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(admin);
	fx_stop(&f);
}
END_TEST

/* Runs npsctl with NPSD_TEST_FAIL_SYNC=1 (its first sync of the WAL fails, as on a disk that
 * fails, after the commit) and the arguments that follow: its exit code, with stdout and
 * stderr in *ret_out and *ret_err. */
static int ctl_failing_sync(const char *db, char **ret_out, char **ret_err, const char *a1, const char *a2,
                            const char *a3, const char *a4, const char *a5, const char *a6)
{
	ck_assert_int_eq(setenv("NPSD_TEST_FAIL_SYNC", "1", 1), 0);
	int status = ctl(db, ret_out, ret_err, a1, a2, a3, a4, a5, a6, NULL);
	unsetenv("NPSD_TEST_FAIL_SYNC");
	return status;
}

/* An erase committed but whose sync failed says that it may or may not have taken and to run
 * it again: it said "erase failed; run it again: ... it may or may not have been stored",
 * which read as if the customer's rows might have been stored. Run again, it finds nothing
 * (the commit did take here). */
START_TEST(erase_whose_sync_failed_says_it_may_or_may_not_have_taken)
{
	struct fx f;
	fx_start(&f, T_OLD, NULL);
	post_many(&f, 2, old_answer);
	post_id(&f,
	        &(struct answer){
	                .customer = X_ID, .name = X_NAME, .phone = X_PHONE, .email = X_EMAIL, .score = 10, .comment = X_COMMENT },
	        NULL);
	post_id(&f, &(struct answer){ .customer = Y_ID, .name = Y_NAME, .phone = Y_PHONE, .score = 10, .comment = Y_COMMENT },
	        NULL);

	char *out = NULL, *err = NULL;
	int status = ctl_failing_sync(f.p.db_path, &out, &err, "erase", "--customer", X_ID, NULL, NULL, NULL);
	ck_assert_msg(status == 1, "erase exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "npsctl: erase failed; run it again: the disk failed while the erase was "
	                                 "written: it may or may not have taken\n") &&
	                      !strstr(err, "been stored") && !strstr(err, "nothing was erased"),
	              "the erase whose sync failed: %s", err ? err : "(none)");
	ck_assert_msg(out && !*out, "erase wrote to stdout: %s", out);
	free(out);
	free(err);

	err = NULL;
	status = ctl(f.p.db_path, NULL, &err, "erase", "--customer", X_ID, NULL);
	ck_assert_msg(status == 1 && err && strstr(err, "nothing about customer " X_ID), "erase again exited %d: %s",
	              status, err ? err : "");
	free(err);
	ck_assert_int_eq(file_int(f.p.db_path, "SELECT count(*) FROM surveys", NULL), 3);
	/* The erase had taken, but the copies of X's rows in the WAL stayed, the first run
	 * having stopped at its failed sync: the run again, finding nothing, clears them, as
	 * a purge that finds nothing does. */
	static const char *const gone[] = { X_NAME, X_PHONE, X_EMAIL, X_COMMENT };
	static const char *const kept[] = { Y_NAME, Y_PHONE, Y_COMMENT };
	assert_files_hold(&f, "after the erase run again", gone, sizeof gone / sizeof gone[0], kept,
	                  sizeof kept / sizeof kept[0]);
	fx_stop(&f);
}
END_TEST

/* A key create committed but whose sync failed names the key that may be live, with no token
 * shown, and how to be rid of it: it said "cannot store the key: ... it may or may not have
 * been stored", and the key stood in key list, live, under a token no one had. A revocation
 * whose sync failed says it may or may not have taken and to run it again, not "cannot
 * revoke". */
START_TEST(key_create_and_revoke_whose_sync_failed_say_what_to_do)
{
	char *dir = scratch_path("key-sync");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *db = fmt("%s/npsd.db", dir);
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(ctl(db, NULL, NULL, "key", "create", "--role", "admin", "--name", "ops", NULL), 0);

	int status = ctl_failing_sync(db, &out, &err, "key", "create", "--role", "agent", "--name", "anna");
	ck_assert_msg(status == 1, "key create exited %d: %s", status, err ? err : "");
	ck_assert_msg(out && !*out, "a token on stdout: %s", out);
	ck_assert_msg(err && strstr(err, "npsctl: key 2 (agent, anna) may or may not have been stored, the disk "
	                                 "failed while it was written; its token is not shown: once the disk is "
	                                 "fixed, revoke key 2 if key list shows it with that name, and create "
	                                 "another\n") &&
	                      !strstr(err, "cannot store the key"),
	              "the key create whose sync failed: %s", err ? err : "(none)");
	free(out);
	free(err);
	/* Here the commit took: what it said to do is what works. */
	out = NULL;
	ck_assert_int_eq(ctl(db, &out, NULL, "key", "list", NULL), 0);
	ck_assert_msg(out && strstr(out, "anna"), "key list: %s", out ? out : "");
	free(out);
	ck_assert_int_eq(ctl(db, NULL, NULL, "key", "revoke", "2", NULL), 0);

	out = err = NULL;
	status = ctl_failing_sync(db, &out, &err, "key", "revoke", "1", NULL, NULL, NULL);
	ck_assert_msg(status == 1, "key revoke exited %d: %s", status, err ? err : "");
	ck_assert_msg(err && strstr(err, "npsctl: the revocation of key 1 may or may not have taken, the disk failed "
	                                 "while it was written: run it again\n") &&
	                      !strstr(err, "cannot revoke"),
	              "the key revoke whose sync failed: %s", err ? err : "(none)");
	free(out);
	free(err);
	err = NULL;
	status = ctl(db, NULL, &err, "key", "revoke", "1", NULL);
	ck_assert_msg(status == 0 && err && strstr(err, "key 1 was already revoked"), "revoke again exited %d: %s",
	              status, err ? err : "");
	free(err);

	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* npsd's own run refused by a trigger says so in the log, with the trigger's words, as
 * npsctl purge does: it logged strerror's "File exists". */
START_TEST(npsd_retention_refused_by_a_trigger_says_why)
{
	struct fx f;
	fx_start_with(&f, T_OLD, NULL, NULL);
	post_many(&f, 3, old_answer);
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	sqlite3 *admin = NULL;
	ck_assert_int_eq(sqlite3_open_v2(f.p.db_path, &admin, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(admin,
	                              "CREATE TRIGGER legal_hold BEFORE DELETE ON surveys BEGIN "
	                              "SELECT RAISE(ABORT, 'answers are on legal hold'); END",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(admin);
	fake_clock_set(T_NEW);
	ck_assert_int_eq(npsd_restart(&f.p), 0);
	char *log = NULL;
	for (int i = 0; !(log = npsd_log(&f.p)) || !strstr(log, "retention: purge of what is older than"); i++) {
		ck_assert_msg(i < 200, "no word of the refused run 10 s after the start; log:\n%s", log ? log : "(none)");
		free(log);
		sleep_ms(50);
	}
	ck_assert_msg(strstr(log, "stopped: the database refused the change (a constraint or a trigger): answers "
	                          "are on legal hold") &&
	                      !strstr(log, "File exists"),
	              "log:\n%s", log);
	free(log);
	ck_assert_int_eq(file_int(f.p.db_path, "SELECT count(*) FROM surveys", NULL), 3);
	fx_stop(&f);
}
END_TEST

/* npsd's own run follows npsctl purge's rule: after batches it finished, a storage failure
 * (the sync of its second batch) warns at once that their copies may stay in the WAL, and
 * says the last batch may or may not be gone. It went on to the WAL's truncation tries
 * instead, a checkpoint on the storage that had just failed, until npsd stopped for that
 * failure, and neither warned nor said so. npsd then stops with status 1, as for any failed
 * sync. */
START_TEST(npsd_retention_that_fails_part_way_on_the_storage_says_so_at_once)
{
	struct fx f;
	fx_start_with(&f, T_OLD, NULL, NULL); /* retention.days: the default, 730 */
	post_many(&f, RETENTION_BATCH + 1, old_answer);
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	fake_clock_set(T_NEW);
	/* The run at start comes before any other write: its second batch's sync is the second. */
	ck_assert_int_eq(setenv("NPSD_TEST_FAIL_SYNC", "2", 1), 0);
	npsd_restart(&f.p); /* it may stop before it is up */
	unsetenv("NPSD_TEST_FAIL_SYNC");
	char *log = NULL;
	for (int i = 0; !(log = npsd_log(&f.p)) || !strstr(log, "storage failed: stopping"); i++) {
		ck_assert_msg(i < 400, "npsd did not stop 20 s after the failed sync; log:\n%s", log ? log : "(none)");
		free(log);
		sleep_ms(50);
	}
	int status = npsd_stop(&f.p, SIGTERM);
	free(log);
	log = npsd_log(&f.p);
	ck_assert_msg(status == 1, "npsd exited %d after the failed sync; log:\n%s", status, log);
	ck_assert_msg(strstr(log, "retention: the disk failed while a batch was written: 1 answers, 0 callbacks, "
	                          "1 customers, 0 events may or may not have been purged"),
	              "no word of the batch in doubt; log:\n%s", log);
	ck_assert_msg(strstr(log, "retention: the purged rows are gone from the database, but older copies may "
	                          "stay in its WAL until npsd reuses it or stops (a sync of the WAL failed: "
	                          "not truncated on the storage that failed)"),
	              "no warning that the WAL was left as it was; log:\n%s", log);
	free(log);
	fx_stop(&f);
}
END_TEST

/* ---------- purged rows leave no copy in the files ---------- */

/* P answered long ago (retention takes it all), K within the period (all of it stays). */
#define P_ID "cust-P"
#define P_NAME "Pieter Purge-Test"
#define P_PHONE "+31699887766"
#define P_EMAIL "pieter.purge@example.org"
#define P_COMMENT "P-comment-91c2: the claim took half a year"
#define P_NOTES "P-notes-91c2"
#define P_IMPROVEMENT "P-improvement-91c2"
#define K_ID "cust-K"
#define K_NAME "Karin Keep-Test"
#define K_PHONE "+31655443322"
#define K_EMAIL "karin.keep@example.org"
#define K_COMMENT "K-comment-keep"
#define K_NOTES "K-notes-keep"
#define K_IMPROVEMENT "K-improvement-keep"
#define T_K (T_OLD + 100 * DAY) /* within 730 days of T_NEW */

/* Every row about a customer (customer, answers, callbacks, call events, improvements,
 * outbox events), every column, as text (malloc'ed): equal before and after means untouched. */
static char *rows_about(const char *db_path, const char *customer)
{
	static const char *const queries[] = {
		"SELECT * FROM customers WHERE id = ?1",
		"SELECT * FROM surveys WHERE customer_id = ?1 ORDER BY id",
		"SELECT * FROM callbacks WHERE customer_id = ?1 ORDER BY id",
		"SELECT * FROM callback_events WHERE customer_id = ?1 ORDER BY id",
		"SELECT * FROM improvements WHERE callback_id IN (SELECT id FROM callbacks WHERE customer_id = "
		"?1) ORDER BY id",
		"SELECT * FROM events WHERE json_extract(payload, '$.customer.id') = ?1 ORDER BY id",
	};
	sqlite3 *db = sql_open(db_path);
	size_t len = 0;
	char *text = NULL;
	FILE *out = open_memstream(&text, &len);
	for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
		sqlite3_stmt *st = sql_prepare(db, queries[q], customer);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(st); c++) {
				const unsigned char *v = sqlite3_column_text(st, c);
				fprintf(out, "%s|", v ? (const char *)v : "NULL");
			}
			fputc('\n', out);
		}
		ck_assert_msg(rc == SQLITE_DONE, "%s: %s", queries[q], sqlite3_errmsg(db));
		sqlite3_finalize(st);
		fprintf(out, "--\n");
	}
	fclose(out);
	sqlite3_close(db);
	return text;
}

/* Two answers of one customer, the low one's call completed with notes and an improvement:
 * every kind of row that holds their words, outbox events included. */
static void post_customer(struct fx *f, const char *id, const char *name, const char *phone,
                          const char *email, const char *comment, const char *touchpoint,
                          const char *completion)
{
	post_id(f,
	        &(struct answer){ .customer = id,
	                          .name = name,
	                          .phone = phone,
	                          .email = email,
	                          .touchpoint = touchpoint,
	                          .score = 10,
	                          .comment = comment },
	        NULL);
	json_int_t cb = 0;
	post_id(f,
	        &(struct answer){ .customer = id,
	                          .name = name,
	                          .phone = phone,
	                          .email = email,
	                          .touchpoint = touchpoint,
	                          .score = 2,
	                          .comment = comment },
	        &cb);
	ck_assert_msg(cb > 0, "a low score opened no callback");
	claim_and_complete(f, touchpoint, cb, completion);
}

/* P's rows at T_OLD, K's at T_K, each with their outbox events delivered (at T_NEW P's are
 * past 730 days and K's are not). K's rows as they are then in *ret_k_rows (malloc'ed). */
static void post_old_and_young(struct fx *f, char **ret_k_rows)
{
	post_customer(f, P_ID, P_NAME, P_PHONE, P_EMAIL, P_COMMENT, "claim",
	              "{\"outcome\":\"reached\",\"notes\":\"" P_NOTES "\",\"improvements\":[{\"area\":"
	              "\"process\",\"text\":\"" P_IMPROVEMENT "\"}]}");
	wait_delivered(f->p.db_path, 4);
	fake_clock_set(T_K);
	post_customer(f, K_ID, K_NAME, K_PHONE, K_EMAIL, K_COMMENT, "purchase",
	              "{\"outcome\":\"reached\",\"notes\":\"" K_NOTES "\",\"improvements\":[{\"area\":"
	              "\"service\",\"text\":\"" K_IMPROVEMENT "\"}]}");
	wait_delivered(f->p.db_path, 8);
	*ret_k_rows = rows_about(f->p.db_path, K_ID);
}

static const char *const p_texts[] = { P_NAME, P_PHONE, P_EMAIL, P_COMMENT, P_NOTES, P_IMPROVEMENT };
static const char *const k_texts[] = { K_NAME, K_PHONE, K_EMAIL, K_COMMENT, K_NOTES, K_IMPROVEMENT };
#define NTEXTS (sizeof p_texts / sizeof p_texts[0])

/* P is gone from the rows and from both files' bytes, freed pages and old WAL frames
 * included; K's rows are as they were (k_rows), and K's words still in the files. */
static void assert_purged_from_the_files(struct fx *f, const char *k_rows, const char *when)
{
	char *after = rows_about(f->p.db_path, P_ID);
	ck_assert_msg(strcmp(after, "--\n--\n--\n--\n--\n--\n") == 0, "%s: rows about P are left:\n%s", when,
	              after);
	free(after);
	after = rows_about(f->p.db_path, K_ID);
	ck_assert_msg(strcmp(after, k_rows) == 0, "%s: K's rows changed:\n%s\nwere:\n%s", when, after, k_rows);
	free(after);
	assert_files_hold(f, when, p_texts, NTEXTS, k_texts, NTEXTS);
}

/* Retention is a promise that the data is gone: npsctl purge, while npsd runs, leaves no
 * copy of what it deleted in the free space of the database file or in older WAL frames. */
START_TEST(purge_leaves_no_copy_in_the_files)
{
	struct fx f;
	fx_start(&f, T_OLD, "[\"survey.received\", \"callback.created\", \"callback.completed\"]");
	char *k_rows = NULL;
	post_old_and_young(&f, &k_rows);
	fake_clock_set(T_NEW);
	char *err = NULL;
	ck_assert_int_eq(ctl(f.p.db_path, NULL, &err, "purge", NULL), 0);
	struct counts c = counts_of(err, "purged");
	ck_assert_msg(!strstr(err, "warning"), "purge warned: %s", err);
	free(err);
	ck_assert_int_eq(c.surveys, 2);
	ck_assert_int_eq(c.callbacks, 1);
	ck_assert_int_eq(c.improvements, 1);
	ck_assert_int_eq(c.customers, 1);
	ck_assert_int_eq(c.events, 4);
	assert_purged_from_the_files(&f, k_rows, "after npsctl purge, while npsd runs");
	ck_assert_uint_eq(surveys_of(&f, K_ID), 2);
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	assert_purged_from_the_files(&f, k_rows, "after npsctl purge and a clean stop");
	free(k_rows);
	fx_stop(&f);
}
END_TEST

/* The same of npsd's own daily run, which logs what it purged once the files are clean. */
START_TEST(npsd_retention_leaves_no_copy_in_the_files)
{
	struct fx f;
	fx_start_with(&f, T_OLD, "[\"survey.received\", \"callback.created\", \"callback.completed\"]",
	              NULL); /* retention.days: the default, 730 */
	char *k_rows = NULL;
	post_old_and_young(&f, &k_rows);
	fake_clock_set(T_NEW);
	char *log = NULL;
	for (int i = 0; !(log = npsd_log(&f.p)) || !strstr(log, "retention: purged 2 answers"); i++) {
		ck_assert_msg(i < 200, "no purge 10 s after the clock moved on; log:\n%s", log ? log : "(none)");
		free(log);
		sleep_ms(50);
	}
	ck_assert_msg(!strstr(log, P_ID) && !strstr(log, P_NAME) && !strstr(log, P_PHONE),
	              "npsd logged P's details:\n%s", log);
	free(log);
	assert_purged_from_the_files(&f, k_rows, "after npsd's retention run, while it runs");
	ck_assert_uint_eq(surveys_of(&f, K_ID), 2);
	ck_assert_int_eq(npsd_stop(&f.p, SIGTERM), 0);
	assert_purged_from_the_files(&f, k_rows, "after npsd's retention run and a clean stop");
	free(k_rows);
	fx_stop(&f);
}
END_TEST

/* Whether the database file or its WAL holds any of the n texts. */
static bool files_have_any(struct fx *f, const char *const *texts, size_t n)
{
	char *wal = fmt("%s-wal", f->p.db_path);
	size_t wal_len = 0, len = 0;
	char *wal_bytes = read_all(wal, &wal_len);
	char *bytes = read_all(f->p.db_path, &len);
	bool found = false;
	for (size_t i = 0; i < n && !found; i++)
		found = bytes_have(bytes, len, texts[i]) || bytes_have(wal_bytes, wal_len, texts[i]);
	free(bytes);
	free(wal_bytes);
	free(wal);
	return found;
}

/* A reader that keeps its snapshot past every try (a long report, a backup) leaves the WAL
 * untruncated: npsd warns, without a word of the customer's, and its next run truncates it,
 * though that run finds nothing more to purge. */
START_TEST(npsd_retention_truncates_later_what_a_reader_held_up)
{
	struct fx f;
	fx_start_with(&f, T_OLD, "[\"survey.received\", \"callback.created\", \"callback.completed\"]",
	              NULL); /* retention.days: the default, 730 */
	char *k_rows = NULL;
	post_old_and_young(&f, &k_rows);
	sqlite3 *reader = sql_open(f.p.db_path);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sql_int(reader, "SELECT count(*) FROM surveys", NULL), 4);
	fake_clock_set(T_NEW);
	char *log = NULL;
	for (int i = 0; !(log = npsd_log(&f.p)) || !strstr(log, "retention: purged 2 answers"); i++) {
		/* The line comes after the tries to truncate (about 10 s); under ASan on a
		 * loaded machine 30 s was once not enough. */
		ck_assert_msg(i < 1200, "no purge 60 s after the clock moved on; log:\n%s", log ? log : "(none)");
		free(log);
		sleep_ms(50);
	}
	ck_assert_msg(strstr(log, "retention: the purged rows are gone from the database, but older copies"),
	              "no warning while a reader held the WAL; log:\n%s", log);
	for (size_t i = 0; i < NTEXTS; i++)
		ck_assert_msg(!strstr(log, p_texts[i]), "npsd logged \"%s\":\n%s", p_texts[i], log);
	ck_assert_msg(!strstr(log, P_ID), "npsd logged P's id:\n%s", log);
	free(log);
	ck_assert_msg(files_have_any(&f, p_texts, NTEXTS), "P's words are gone from the WAL while a reader "
	                                                  "held it: the test holds nothing up");
	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);

	fake_clock_set(T_NEW + DAY);
	for (int i = 0; files_have_any(&f, p_texts, NTEXTS); i++) {
		ck_assert_msg(i < 200, "P's words are still in the files 10 s after the next day's run");
		sleep_ms(50);
	}
	assert_purged_from_the_files(&f, k_rows, "after the next day's run");
	free(k_rows);
	fx_stop(&f);
}
END_TEST

/* The next daily run is due a day after the last one began: it was due a day after the
 * last one ended, so a clock that moved on while a run went on (npsd's test clock, moved on
 * while a run was under way) pushed the next one back by as much, and the run the test
 * waited for never came (now and then, in the tests that wait for it). The test holds a
 * reader so that the run at T_NEW tries to truncate the WAL for seconds, and moves the
 * clock past the day after it meanwhile: K's answers must go in the next run. */
START_TEST(a_clock_moved_on_during_a_run_skips_no_run)
{
	struct fx f;
	fx_start_with(&f, T_OLD, "[\"survey.received\", \"callback.created\", \"callback.completed\"]",
	              NULL); /* retention.days: the default, 730 */
	char *k_rows = NULL;
	post_old_and_young(&f, &k_rows);
	free(k_rows);
	sqlite3 *reader = sql_open(f.p.db_path);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sql_int(reader, "SELECT count(*) FROM surveys", NULL), 4);
	fake_clock_set(T_NEW);
	for (int i = 0; surveys_of(&f, P_ID) > 0; i++) {
		ck_assert_msg(i < 200, "P's answers are still there 10 s after the clock moved on");
		sleep_ms(50);
	}
	/* The run is in its tries to truncate now: K's answers are past 730 days once it ends. */
	fake_clock_set(T_K + 731 * DAY);
	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);
	for (int i = 0; surveys_of(&f, K_ID) > 0; i++) {
		/* The code before never takes them: a minute leaves room for a loaded machine. */
		ck_assert_msg(i < 1200, "K's answers are still there 60 s after the run that took P's");
		sleep_ms(50);
	}
	fx_stop(&f);
}
END_TEST

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The truncation's checkpoint holds SQLite's write lock while it waits for readers, and
 * every write of npsd waits with it: a wait of a second per try held every answer up for a
 * second, five times over, while a report ran through the tries. The test holds a reader
 * through all of them and looks every 10 ms whether a write could begin at once. */
START_TEST(a_reader_holding_up_the_truncation_holds_writes_up_briefly)
{
	struct fx f;
	fx_start_with(&f, T_OLD, "[\"survey.received\", \"callback.created\", \"callback.completed\"]",
	              NULL); /* retention.days: the default, 730 */
	char *k_rows = NULL;
	post_old_and_young(&f, &k_rows);
	free(k_rows);
	sqlite3 *reader = sql_open(f.p.db_path);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sql_int(reader, "SELECT count(*) FROM surveys", NULL), 4);
	sqlite3 *probe = NULL; /* no busy timeout: BEGIN IMMEDIATE fails while another writes */
	ck_assert_int_eq(sqlite3_open_v2(f.p.db_path, &probe, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	fake_clock_set(T_NEW);
	int64_t began = mono_ms(), kept_out_since = -1, longest = 0;
	char *log = NULL;
	while (!(log = npsd_log(&f.p)) || !strstr(log, "retention: purged 2 answers")) {
		ck_assert_msg(mono_ms() - began < 60000, "no purge 60 s after the clock moved on; log:\n%s",
		              log ? log : "(none)");
		free(log);
		int rc = sqlite3_exec(probe, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		int64_t now = mono_ms();
		if (rc == SQLITE_OK) {
			ck_assert_int_eq(sqlite3_exec(probe, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
			kept_out_since = -1;
		} else {
			ck_assert_msg(rc == SQLITE_BUSY, "BEGIN IMMEDIATE: %s", sqlite3_errmsg(probe));
			if (kept_out_since < 0)
				kept_out_since = now;
			if (now - kept_out_since > longest)
				longest = now - kept_out_since;
		}
		sleep_ms(10);
	}
	ck_assert_msg(strstr(log, "retention: the purged rows are gone from the database, but older copies"),
	              "no warning while a reader held the WAL: the test held nothing up; log:\n%s", log);
	free(log);
	ck_assert_msg(longest < 500, "writes were kept out for %lld ms in a row while the WAL was truncated",
	              (long long)longest);
	sqlite3_close(probe);
	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(reader);
	fx_stop(&f);
}
END_TEST

/* ---------- usage ---------- */

/* GET /v1/me: the key's own name and role, for the console; any live key may ask. */
START_TEST(me_names_the_key_and_its_role)
{
	struct fx f;
	fx_start_with(&f, 0, NULL, NULL);
	char *admin = npsctl_key(&f.p, "admin", "ops-olga");
	const char *tokens[] = { f.ingest, f.agent, f.manager, admin };
	static const char *const names[] = { "survey-platform", "agent-anna", "manager-mo", "ops-olga" };
	static const char *const roles[] = { "ingest", "agent", "manager", "admin" };
	for (size_t i = 0; i < 4; i++) {
		json_t *me = NULL;
		ck_assert_int_eq(call(&f, "GET", "/v1/me", tokens[i], NULL, &me), 200);
		ck_assert_str_eq(sget(me, "name"), names[i]);
		ck_assert_str_eq(sget(me, "role"), roles[i]);
		ck_assert_int_gt(iget(me, "key_id"), 0);
		json_decref(me);
	}
	ck_assert_int_eq(call(&f, "GET", "/v1/me", NULL, NULL, NULL), 401);
	ck_assert_int_eq(call(&f, "GET", "/v1/me", "tk_not_a_key", NULL, NULL), 401);
	ck_assert_int_eq(call(&f, "POST", "/v1/me", f.agent, NULL, NULL), 405);
	free(admin);
	fx_stop(&f);
}
END_TEST

START_TEST(usage_errors_exit_2_and_no_command_makes_a_database)
{
	char *dir = scratch_path("usage");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *missing = fmt("%s/none.db", dir);
	char *backup = fmt("%s/out.db", dir);
	struct {
		const char *args[5];
		int want;
	} cases[] = {
		{ { "frobnicate" }, 2 },
		{ { "erase" }, 2 },
		{ { "erase", "--customer" }, 2 },
		{ { "erase", "--customer", "" }, 2 },
		{ { "erase", "--client", "C-1" }, 2 },
		{ { "erase", "--customer", "C-1", "C-2" }, 2 },
		{ { "erase", "--customer", "bad\x01id" }, 2 },
		{ { "purge", "--older-than", "x" }, 2 },
		{ { "purge", "--older-than", "0" }, 2 },
		{ { "purge", "--older-than", "0d" }, 2 },
		{ { "purge", "--older-than", "-5d" }, 2 },
		{ { "purge", "--older-than", "730y" }, 2 },
		{ { "purge", "--older-than", "36501d" }, 2 }, /* past retention.days' bound */
		{ { "purge", "--older-than", "23h" }, 2 }, /* less than a day: alerts still retried */
		{ { "purge", "--older-than" }, 2 },
		{ { "purge", "730d" }, 2 },
		{ { "backup" }, 2 },
		{ { "backup", "" }, 2 },
		{ { "backup", backup, "again" }, 2 },
		{ { "key", "revoke", "zero" }, 2 },
		/* Well formed, but there is no database: nothing to do, and nothing made. */
		{ { "purge" }, 1 },
		{ { "purge", "--older-than", "730d" }, 1 },
		{ { "erase", "--customer", "C-1" }, 1 },
		{ { "backup", backup }, 1 },
		{ { "key", "list" }, 1 },
		{ { "key", "revoke", "1" }, 1 },
	};
	char failures[4096] = "";
	size_t used = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *const *a = cases[i].args;
		char *out = NULL, *err = NULL;
		int status = ctl(missing, &out, &err, a[0], a[1], a[2], a[3], a[4], NULL);
		const char *wrong = NULL;
		if (status != cases[i].want)
			wrong = "exit";
		else if (!out || *out)
			wrong = "stdout";
		else if (!err || !*err)
			wrong = "stderr empty";
		else if (cases[i].want == 1 && !strstr(err, "no database"))
			wrong = "no \"no database\"";
		else if (exists(missing) || exists(backup))
			wrong = "a file was made";
		if (wrong && used < sizeof failures - 1)
			used += (size_t)snprintf(failures + used, sizeof failures - used,
			                         "\n  %s %s %s %s: exit %d (want %d), %s; stderr: %s", a[0],
			                         a[1] ? a[1] : "", a[2] ? a[2] : "", a[3] ? a[3] : "", status,
			                         cases[i].want, wrong, err ? err : "(none)");
		unlink(missing);
		unlink(backup);
		free(out);
		free(err);
	}
	ck_assert_msg(!failures[0], "npsctl on a missing database:%s", failures);

	/* The same mistakes on a database that is there exit 2 and leave it alone. */
	struct npsd_proc fake = { 0 };
	snprintf(fake.db_path, sizeof fake.db_path, "%s", missing);
	char *token = npsctl_key(&fake, "admin", "ops");
	ck_assert_msg(token && *token, "key create made no database");
	free(token);
	for (size_t i = 0; cases[i].want == 2; i++) {
		const char *const *a = cases[i].args;
		int status = ctl(missing, NULL, NULL, a[0], a[1], a[2], a[3], a[4], NULL);
		if (status != 2 && used < sizeof failures - 1)
			used += (size_t)snprintf(failures + used, sizeof failures - used,
			                         "\n  %s %s %s: exit %d", a[0], a[1] ? a[1] : "",
			                         a[2] ? a[2] : "", status);
	}
	ck_assert_msg(!failures[0], "npsctl on a database:%s", failures);
	ck_assert_int_eq(file_int(missing, "SELECT count(*) FROM api_keys", NULL), 1);
	ck_assert(!exists(backup));
	remove_db_folder(dir, missing);
	free(missing);
	free(backup);
	free(dir);
}
END_TEST

/* A command line that says a thing twice, or an option without its value, is refused
 * (exit 2), naming what is wrong, and nothing is made: the last --role won without a word,
 * so "--role agent ... --role admin" made an admin key, and the last --db chose the
 * database. */
START_TEST(options_given_twice_are_refused)
{
	char *dir = scratch_path("twice");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *db = fmt("%s/npsd.db", dir);
	char *other = fmt("%s/other.db", dir);
	struct {
		const char *args[9];
		const char *says;
	} cases[] = {
		{ { "--db", db, "key", "create", "--role", "agent", "--role", "admin", "--name" }, "--role given twice" },
		{ { "--db", db, "key", "create", "--name", "a", "--role", "agent", "--name" }, "--name given twice" },
		{ { "--db", db, "--db", other, "key", "create", "--role", "agent", "--name" }, "--db given twice" },
		{ { "--config", "/dev/null", "--config", "/dev/null", "key", "list" }, "--config given twice" },
		{ { "--db" }, "--db takes a path" },
		{ { "--bogus", "key", "list" }, "unknown option --bogus" },
		{ { "--db", db }, "no command" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *argv[12] = { npsctl_bin() };
		size_t n = 1;
		for (size_t j = 0; j < 9 && cases[i].args[j]; j++)
			argv[n++] = cases[i].args[j];
		if (n == 10) /* the name the last option of the long lines takes */
			argv[n++] = "x";
		argv[n] = NULL;
		char *out = NULL, *err = NULL;
		int status = run_program(argv, &out, &err);
		ck_assert_msg(status == 2, "case %zu exited %d: %s", i, status, err ? err : "");
		ck_assert_msg(err && strstr(err, cases[i].says), "case %zu: want \"%s\" in: %s", i, cases[i].says,
		              err ? err : "(none)");
		ck_assert_msg(out && !*out, "case %zu wrote to stdout: %s", i, out ? out : "(none)");
		ck_assert(!exists(db) && !exists(other));
		free(out);
		free(err);
	}
	rmdir(dir);
	free(other);
	free(db);
	free(dir);
}
END_TEST

/* npsctl with its stdout where the words cannot go: a full disk behind the redirect
 * (/dev/full), or no stdout at all (closed, as `>&-` leaves it). */
static int ctl_stdout_to(const char *db, bool closed, char **ret_err, const char *a1, const char *a2,
                         const char *a3, const char *a4, const char *a5, const char *a6)
{
	char *err_path = fmt("%s.err", db);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (err_fd < 0 || dup2(err_fd, 2) < 0)
			_exit(126);
		if (closed) {
			close(1);
		} else {
			int full = open("/dev/full", O_WRONLY);
			if (full < 0 || dup2(full, 1) < 0)
				_exit(126);
		}
		execl(npsctl_bin(), npsctl_bin(), "--db", db, a1, a2, a3, a4, a5, a6, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	FILE *f = fopen(err_path, "r");
	char buf[1024] = "";
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
	unlink(err_path);
	free(err_path);
	*ret_err = strdup(buf);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SPEC: key create prints the token on stdout. When it cannot (a full disk, a closed
 * stdout), it exited 0 and left a live key whose token nobody had: it must fail, and the
 * key it made must not work. key list that cannot print fails too. */
START_TEST(key_create_whose_token_cannot_be_printed_fails_and_leaves_no_live_key)
{
	char *dir = scratch_path("lost-token");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *db = fmt("%s/npsd.db", dir);
	static const bool closed[] = { false, true };
	for (size_t i = 0; i < 2; i++) {
		char *err = NULL;
		int status = ctl_stdout_to(db, closed[i], &err, "key", "create", "--role", "admin", "--name",
		                           closed[i] ? "closed-stdout" : "full-disk");
		ck_assert_msg(status == 1, "%s stdout: exit %d (want 1); stderr: %s", closed[i] ? "closed" : "full",
		              status, err);
		ck_assert_msg(strstr(err, "token") && strstr(err, "revoked"), "stderr says nothing of the token: %s",
		              err);
		free(err);
	}
	/* With stdout closed the database may get its descriptor: no token went into the file. */
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM pragma_quick_check WHERE quick_check <> 'ok'", NULL), 0);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys", NULL), 2);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", NULL), 0);

	char *err = NULL;
	int status = ctl_stdout_to(db, false, &err, "key", "list", NULL, NULL, NULL, NULL);
	ck_assert_msg(status == 1, "key list to a full disk: exit %d (want 1); stderr: %s", status, err);
	free(err);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* SPEC: key create prints the token on stdout. Into a pipe whose reader is gone (`npsctl key
 * create ... | tool` where tool failed, or exited before reading), the write raised SIGPIPE,
 * whose default killed npsctl before it could revoke: a live key nobody holds the token of. */
START_TEST(key_create_into_a_pipe_with_no_reader_fails_and_leaves_no_live_key)
{
	char *dir = scratch_path("no-reader");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	char *db = fmt("%s/npsd.db", dir);
	char *err_path = fmt("%s.err", db);
	int pipe_fd[2];
	ck_assert_int_eq(pipe(pipe_fd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* As a shell starts it: SIGPIPE at its default, whatever this test process does. */
		signal(SIGPIPE, SIG_DFL);
		int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (err_fd < 0 || dup2(err_fd, 2) < 0 || dup2(pipe_fd[1], 1) < 0)
			_exit(126);
		close(pipe_fd[0]);
		close(pipe_fd[1]);
		execl(npsctl_bin(), npsctl_bin(), "--db", db, "key", "create", "--role", "admin", "--name",
		      "no-reader", (char *)NULL);
		_exit(127);
	}
	close(pipe_fd[0]); /* the reader is gone before the token is written */
	close(pipe_fd[1]);
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	FILE *f = fopen(err_path, "r");
	char err[1024] = "";
	size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
	err[n] = '\0';
	if (f)
		fclose(f);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	              "npsctl %s %d (want exit 1); stderr: %s", WIFEXITED(status) ? "exited" : "killed by signal",
	              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), err);
	ck_assert_msg(strstr(err, "token") && strstr(err, "revoked"), "stderr says nothing of the token: %s", err);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys", NULL), 1);
	ck_assert_int_eq(file_int(db, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", NULL), 0);
	unlink(err_path);
	free(err_path);
	remove_db_folder(dir, db);
	free(db);
	free(dir);
}
END_TEST

/* ---------- the suite ---------- */

static Suite *operations_suite(void)
{
	Suite *s = suite_create("operations");
	TCase *backup = tcase_create("backup");
	tcase_set_timeout(backup, 120);
	tcase_add_test(backup, backup_is_a_sound_single_file_with_everything);
	tcase_add_test(backup, backup_while_answers_arrive_holds_every_acknowledged_one);
	tcase_add_test(backup, npsd_serves_a_backup_put_in_place);
	tcase_add_test(backup, backup_out_of_room_names_the_path_and_what_to_do);
	tcase_add_test(backup, backup_to_an_existing_file_is_refused_before_the_copy);
	tcase_add_test(backup, backup_past_a_file_size_limit_fails_and_cleans_up);
	tcase_add_test(backup, backup_under_a_name_sqlite_keeps_beside_the_database_is_refused);
	tcase_add_test(backup, backup_that_cannot_leave_wal_mode_leaves_no_file_behind);
	suite_add_tcase(s, backup);

	TCase *purge = tcase_create("purge");
	tcase_set_timeout(purge, 120);
	tcase_add_test(purge, purge_keeps_what_is_owed_or_young_and_the_do_not_call_mark);
	tcase_add_test(purge, purge_goes_on_batch_after_batch);
	tcase_add_test(purge, npsd_purges_by_itself_at_start);
	tcase_add_test(purge, npsd_purges_by_itself_every_day);
	tcase_add_test(purge, purge_leaves_no_copy_in_the_files);
	tcase_add_test(purge, npsd_retention_leaves_no_copy_in_the_files);
	tcase_add_test(purge, npsd_retention_truncates_later_what_a_reader_held_up);
	tcase_add_test(purge, a_reader_holding_up_the_truncation_holds_writes_up_briefly);
	tcase_add_test(purge, a_clock_moved_on_during_a_run_skips_no_run);
	suite_add_tcase(s, purge);

	TCase *erase = tcase_create("erase");
	tcase_set_timeout(erase, 60);
	tcase_add_test(erase, erase_removes_every_row_about_the_customer_and_no_other);
	tcase_add_test(erase, erase_of_a_customer_whose_call_is_under_way);
	suite_add_tcase(s, erase);

	TCase *lifecycle = tcase_create("lifecycle");
	tcase_set_timeout(lifecycle, 60);
	tcase_add_test(lifecycle, a_second_npsd_migrates_nothing_under_the_first);
	tcase_add_test(lifecycle, npsd_started_while_npsctl_migrates_waits_for_it);
	tcase_add_test(lifecycle, npsctl_migrates_nothing_under_a_running_npsd);
	tcase_add_test(lifecycle, npsctl_beside_a_busy_older_npsd_says_restart_npsd_at_once);
	tcase_add_test(lifecycle, npsctl_beside_an_npsd_holding_the_write_lock);
	tcase_add_test(lifecycle, purge_beside_a_held_write_lock_says_try_again_after_its_wait);
	tcase_add_test(lifecycle, purge_that_fails_before_deleting_anything_says_so_at_once);
	tcase_add_test(lifecycle, purge_that_fails_part_way_on_the_storage_says_so_at_once);
	tcase_add_test(lifecycle, purge_whose_last_batch_may_not_be_on_disk_says_so);
	tcase_add_test(lifecycle, purge_and_erase_refused_by_a_trigger_say_why);
	tcase_add_test(lifecycle, npsd_retention_refused_by_a_trigger_says_why);
	tcase_add_test(lifecycle, npsd_retention_that_fails_part_way_on_the_storage_says_so_at_once);
	suite_add_tcase(s, lifecycle);

	TCase *sync_failed = tcase_create("sync_failed");
	tcase_set_timeout(sync_failed, 60);
	tcase_add_test(sync_failed, erase_whose_sync_failed_says_it_may_or_may_not_have_taken);
	tcase_add_test(sync_failed, key_create_and_revoke_whose_sync_failed_say_what_to_do);
	suite_add_tcase(s, sync_failed);

	TCase *migrate = tcase_create("migrate");
	tcase_set_timeout(migrate, 60);
	tcase_add_test(migrate, npsctl_migrate_applies_the_migrations_and_says_which);
	suite_add_tcase(s, migrate);

	TCase *usage = tcase_create("usage");
	tcase_set_timeout(usage, 60);
	tcase_add_test(usage, usage_errors_exit_2_and_no_command_makes_a_database);
	tcase_add_test(usage, me_names_the_key_and_its_role);
	tcase_add_test(usage, options_given_twice_are_refused);
	tcase_add_test(usage, key_create_whose_token_cannot_be_printed_fails_and_leaves_no_live_key);
	tcase_add_test(usage, key_create_into_a_pipe_with_no_reader_fails_and_leaves_no_live_key);
	suite_add_tcase(s, usage);
	return s;
}

int main(void)
{
	snprintf(scratch, sizeof scratch, "/tmp/npsd-it-ops-XXXXXX");
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(operations_suite());
	curl_global_cleanup();
	remove_tree(scratch);
	return status;
}
