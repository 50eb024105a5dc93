/*
 * HTTPS (server.tls_cert, server.tls_key) against the real daemon:
 *  - with a certificate made for the test, npsd serves the API over TLS and a client that
 *    trusts that certificate alone stores an answer; plain HTTP to that port gets no answer;
 *  - a key that is not the certificate's, or a file that holds no certificate, is named
 *    with its line by `npsd --check-config` and stops the start (exit 2), before anything
 *    listens;
 *  - a certificate that ends within two weeks is warned of, and its end is on /metrics;
 *  - npsctl reads the database path from the same config without reading the TLS files
 *    (a LoadCredential= key exists only while the service runs);
 *  - a TLS handshake trickled a byte now and then is cut like a trickled request.
 */
#include <check.h>
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testcert.h"
#include "testutil.h"

#define SURVEY                                                                               \
	"{\"response_id\":\"tls-1\",\"customer\":{\"id\":\"C-1\",\"phone\":\"+31612345678\"},"  \
	"\"touchpoint\":\"claim\",\"score\":6}"

START_TEST(https_serves_the_api_with_the_configured_certificate)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start_https(&p, NULL), 0);
	ck_assert_msg(strncmp(p.base_url, "https://", 8) == 0, "base url %s", p.base_url);
	char *token = npsctl_key(&p, "admin", "tls-admin");
	ck_assert_ptr_nonnull(token);

	/* The client verifies the server against the test's certificate: a handshake with
	 * any other certificate or key would fail here. */
	struct http_result r;
	ck_assert_int_eq(http_json(&p, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	http_result_free(&r);
	ck_assert_int_eq(http_json(&p, "POST", "/v1/surveys", token, SURVEY, &r), 0);
	ck_assert_msg(r.status == 201, "POST over https: %ld %s", r.status, r.body);
	ck_assert_str_eq(sget(r.json, "category"), "detractor");
	json_int_t id = iget(r.json, "id");
	http_result_free(&r);
	char path[64];
	snprintf(path, sizeof path, "/v1/surveys/%lld", (long long)id);
	ck_assert_int_eq(http_json(&p, "GET", path, token, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(sget(r.json, "response_id"), "tls-1");
	http_result_free(&r);

	/* The same port in plain HTTP: no HTTP answer comes back, and nothing is stored. */
	struct npsd_proc plain = p;
	plain.ca_file[0] = '\0';
	snprintf(plain.base_url, sizeof plain.base_url, "http://127.0.0.1:%u", p.port);
	ck_assert_int_eq(http_json(&plain, "GET", "/healthz", NULL, NULL, &r), -1);
	ck_assert_int_eq(r.status, 0);
	http_result_free(&r);

	/* A client that does not trust the certificate is refused by its own TLS check: the
	 * daemon presents the configured certificate, not some default. */
	struct npsd_proc untrusting = p;
	snprintf(untrusting.ca_file, sizeof untrusting.ca_file, "/dev/null");
	ck_assert_int_eq(http_json(&untrusting, "GET", "/healthz", NULL, NULL, &r), -1);
	ck_assert_msg(r.curl_code == CURLE_PEER_FAILED_VERIFICATION ||
	                  r.curl_code == CURLE_SSL_CACERT_BADFILE,
	              "curl code %d", r.curl_code);
	http_result_free(&r);

	/* The certificate's end is on /metrics, and near enough (a day) to be warned of. */
	ck_assert_int_eq(http_json(&p, "GET", "/metrics", NULL, NULL, &r), 0);
	const char *gauge = strstr(r.body, "\nnpsd_tls_certificate_expiry_timestamp_seconds ");
	ck_assert_msg(gauge, "metrics: %s", r.body);
	double not_after = strtod(gauge + strlen("\nnpsd_tls_certificate_expiry_timestamp_seconds "), NULL);
	double day_ahead = (double)time(NULL) + 86400;
	ck_assert_msg(not_after <= day_ahead && not_after >= day_ahead - 120, "expiry %.0f, now + 1 day %.0f",
	              not_after, day_ahead);
	http_result_free(&r);
	char *log = npsd_log(&p);
	ck_assert_msg(log && strstr(log, "the TLS certificate") && strstr(log, "expires on"), "log: %s",
	              log ? log : "");
	free(log);

	free(token);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	npsd_cleanup(&p);
}
END_TEST

/* A report over every answer, timed from the start of its GET to its reply. */
struct timed_report {
	const struct npsd_proc *p;
	const char *token;
	long status;
	struct timespec done;
};

static void *timed_report(void *arg)
{
	struct timed_report *t = arg;
	struct http_result r;
	if (http_json(t->p, "GET", "/v1/nps?group_by=day", t->token, NULL, &r) == 0)
		t->status = r.status;
	http_result_free(&r);
	clock_gettime(CLOCK_MONOTONIC, &t->done);
	return NULL;
}

/* A GET of the report that gives up after 150 ms: curl then closes the TLS session as
 * clients do, a close_notify and then the FIN. */
static void *report_given_up(void *arg)
{
	struct timed_report *t = arg;
	CURL *c = curl_easy_init();
	char url[160], auth[160];
	snprintf(url, sizeof url, "%s/v1/nps?group_by=day", t->p->base_url);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->token);
	struct curl_slist *headers = curl_slist_append(NULL, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, t->p->ca_file);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 150L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	t->status = curl_easy_perform(c) == CURLE_OPERATION_TIMEDOUT ? 0 : -1;
	curl_easy_cleanup(c);
	curl_slist_free_all(headers);
	return NULL;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Over HTTPS too, a queued report whose client gave up is not read: four managers give up
 * while one report is read, and the report asked after them comes right after the first.
 * A client closing a TLS session sends a close_notify before its FIN, which a peek at the
 * socket took for more of the request, so those four were read for nobody. */
START_TEST(over_https_a_queued_report_whose_client_left_is_not_read)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start_https(&p, NULL), 0);
	char *token = npsctl_key(&p, "manager", "tls-manager");
	ck_assert_ptr_nonnull(token);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	config_replace(&p, "threads = 2", "threads = 1");
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(p.db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 10000);
	ck_assert_int_eq(
	        sqlite3_exec(db,
	                     "INSERT INTO customers (id, created_at, updated_at) VALUES ('bulk', 0, 0);"
	                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
	                     "400000) INSERT INTO surveys (response_id, source, customer_id, touchpoint, "
	                     "score, answered_at, received_at, consent) SELECT 'bulk-' || i, 's', 'bulk', "
	                     "'claim', i % 11, 1735689600 + i * 60, 1735689600, 1 FROM n",
	                     NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(npsd_restart(&p), 0);

	/* One report's time alone, the pages cached. */
	struct timed_report first = { .p = &p, .token = token }, last = first, alone = first, gone[4];
	struct timespec started;
	clock_gettime(CLOCK_MONOTONIC, &started);
	timed_report(&alone);
	ck_assert_int_eq(alone.status, 200);
	double one = seconds_between(&started, &alone.done);
	pthread_t first_t, last_t, gone_t[4];
	ck_assert_int_eq(pthread_create(&first_t, NULL, timed_report, &first), 0);
	sleep_ms(30); /* under way */
	for (size_t i = 0; i < 4; i++) {
		gone[i] = first;
		ck_assert_int_eq(pthread_create(&gone_t[i], NULL, report_given_up, &gone[i]), 0);
	}
	for (size_t i = 0; i < 4; i++) {
		pthread_join(gone_t[i], NULL);
		ck_assert_int_eq(gone[i].status, 0);
	}
	ck_assert_int_eq(pthread_create(&last_t, NULL, timed_report, &last), 0);
	pthread_join(first_t, NULL);
	pthread_join(last_t, NULL);
	ck_assert_int_eq(first.status, 200);
	ck_assert_int_eq(last.status, 200);
	double after = seconds_between(&first.done, &last.done);
	ck_assert_msg(after < 2 * one, "the last report took %.2f s after the first (one alone: %.2f s): the "
	              "reports of closed connections were read", after, one);
	free(token);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	npsd_cleanup(&p);
}
END_TEST

/* Writes a config in dir naming cert and key on lines 2 and 3; its path into path. */
static void write_tls_config(const char *dir, const char *cert, const char *key, char *path,
                             size_t size)
{
	snprintf(path, size, "%s/tls.conf", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\ntls_cert = %s\ntls_key = %s\nlisten = 127.0.0.1:0\n"
	           "[database]\npath = %s/tls.db\n",
	        cert, key, dir);
	ck_assert_int_eq(fclose(f), 0);
}

/* Runs npsd with the config and expects exit 2 and "CONFIG:LINE: KEY: ...WHAT" on stderr. */
static void expect_refused(const char *config, const char *flag, int line, const char *key,
                           const char *what)
{
	/* A NULL flag ends the list there: a plain start. */
	const char *const argv[] = { npsd_bin(), "--config", config, flag, NULL };
	char *err = NULL;
	int status = run_program(argv, NULL, &err);
	char want[512];
	snprintf(want, sizeof want, "%s:%d: %s: ", config, line, key);
	ck_assert_msg(status == 2, "npsd %s exited %d: %s", flag ? flag : "", status,
	              err ? err : "");
	ck_assert_msg(err && strstr(err, want) && strstr(err, what), "stderr: %s (want %s...%s)",
	              err ? err : "(none)", want, what);
	free(err);
}

START_TEST(a_wrong_tls_file_is_named_before_the_start)
{
	char dir[] = "/tmp/npsd-it-tls-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cert_a[128], key_a[128], cert_b[128], key_b[128], config[160], db[160];
	snprintf(cert_a, sizeof cert_a, "%s/a.crt", dir);
	snprintf(key_a, sizeof key_a, "%s/a.key", dir);
	snprintf(cert_b, sizeof cert_b, "%s/b.crt", dir);
	snprintf(key_b, sizeof key_b, "%s/b.key", dir);
	snprintf(db, sizeof db, "%s/tls.db", dir);
	ck_assert_int_eq(testcert_write(cert_a, key_a, NULL), 0);
	ck_assert_int_eq(testcert_write(cert_b, key_b, NULL), 0);

	write_tls_config(dir, cert_a, key_a, config, sizeof config);
	const char *const check[] = { npsd_bin(), "--config", config, "--check-config", NULL };
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(run_program(check, &out, &err), 0);
	ck_assert_msg(out && strstr(out, "configuration OK"), "stdout: %s", out ? out : "");
	/* Good, but valid for a day only: said, without failing the check. */
	ck_assert_msg(err && strstr(err, "warning: the TLS certificate") && strstr(err, "expires on"),
	              "stderr: %s", err ? err : "");
	free(out);
	free(err);

	/* Another certificate's key: named on its own line, by the check and by a start. */
	write_tls_config(dir, cert_a, key_b, config, sizeof config);
	expect_refused(config, "--check-config", 3, "tls_key", "is not the key of the certificate");
	expect_refused(config, NULL, 3, "tls_key", "is not the key of the certificate");
	/* The two files swapped: the certificate line is the one to fix. */
	write_tls_config(dir, key_a, cert_a, config, sizeof config);
	expect_refused(config, NULL, 2, "tls_cert", "holds no PEM certificate");
	ck_assert_msg(access(db, F_OK) < 0, "a refused start made the database");

	unlink(cert_a);
	unlink(key_a);
	unlink(cert_b);
	unlink(key_b);
	unlink(config);
	rmdir(dir);
}
END_TEST

START_TEST(npsctl_needs_no_tls_files)
{
	char dir[] = "/tmp/npsd-it-tls-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char config[160];
	/* Where systemd puts a LoadCredential= key: absent while the service is stopped. */
	write_tls_config(dir, "/run/credentials/npsd.service/tls.crt",
	                 "/run/credentials/npsd.service/tls.key", config, sizeof config);
	const char *const create[] = { npsctl_bin(), "--config", config, "key",  "create",
		                       "--role",     "admin",  "--name", "ops", NULL };
	char *out = NULL, *err = NULL;
	int status = run_program(create, &out, &err);
	ck_assert_msg(status == 0, "npsctl exited %d: %s", status, err ? err : "");
	ck_assert_msg(out && strncmp(out, "npsd_", 5) == 0, "stdout: %s", out ? out : "");
	free(out);
	free(err);
	/* The daemon itself does need them. */
	expect_refused(config, "--check-config", 2, "tls_cert",
	               "cannot read /run/credentials/npsd.service/tls.crt");

	char path[192];
	const char *const suffixes[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/tls.db%s", dir, suffixes[i]);
		unlink(path);
	}
	unlink(config);
	rmdir(dir);
}
END_TEST

/* Whether the server closed fd (or reset it) within ms; a byte it sent counts as open. */
static bool closed_within(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, ms) <= 0)
		return false;
	char c;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* server.connection_timeout counts idle time, and a client that opens a connection and sends
 * its TLS ClientHello a byte every half second is never idle between bytes: the handshake must
 * be over within the request's time (four connection_timeouts from the connection opening),
 * or it would hold a connection (and a TLS session) for as long as it liked. It is: npsd's
 * clock starts before the handshake, and libmicrohttpd 0.9.75 counts no handshake byte as
 * activity, so its idle timeout closes a handshake not done within one connection_timeout
 * of the opening, however it trickles. */
START_TEST(a_trickled_tls_handshake_is_cut_off)
{
	struct npsd_proc p;
	ck_assert_int_eq(npsd_start_https(&p, NULL), 0);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	config_replace(&p, "threads = 2\n", "threads = 2\nconnection_timeout = 1s\n");
	ck_assert_int_eq(npsd_restart(&p), 0);
	int fd = raw_connect(&p);
	ck_assert_int_ge(fd, 0);
	/* A handshake record of 512 bytes holding a ClientHello: TLS 1.2, then its random, which
	 * never ends in time; the server can only wait for the rest of the record. */
	static const unsigned char head[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool cut = false;
	double s = 0;
	for (size_t i = 0; !cut && s < 20; i++) {
		unsigned char byte = i < sizeof head ? head[i] : (unsigned char)(0x5a ^ i);
		cut = send(fd, &byte, 1, MSG_NOSIGNAL) != 1 || closed_within(fd, 500);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	close(fd);
	ck_assert_msg(cut, "a handshake trickled for %.1f s was not cut (connection_timeout = 1s)", s);
	/* Not refused at its first bytes: the server waited for the rest. At the latest the
	 * request's 4 s, a second for the sweep, and the last half-second's wait. */
	ck_assert_msg(s >= 0.9 && s < 6.5, "cut after %.1f s, not within the request's time (4 s)", s);
	/* It was cut, not the server stuck: the next client's handshake and request go through. */
	struct http_result r;
	ck_assert_int_eq(http_json(&p, "GET", "/healthz", NULL, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	http_result_free(&r);
	ck_assert_int_eq(npsd_stop(&p, SIGTERM), 0);
	npsd_cleanup(&p);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, https_serves_the_api_with_the_configured_certificate);
	tcase_add_test(tc, over_https_a_queued_report_whose_client_left_is_not_read);
	tcase_add_test(tc, a_wrong_tls_file_is_named_before_the_start);
	tcase_add_test(tc, npsctl_needs_no_tls_files);
	tcase_add_test(tc, a_trickled_tls_handshake_is_cut_off);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	int status = run_suite(tls_suite());
	curl_global_cleanup();
	return status;
}
