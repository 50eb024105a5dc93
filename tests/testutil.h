#ifndef NPSD_TESTUTIL_H
#define NPSD_TESTUTIL_H
/*
 * Helpers for the integration tests: run the real build/npsd on an ephemeral loopback port
 * with a temporary database, make tokens with the real build/npsctl, talk HTTP with libcurl.
 * NPSD_BIN and NPSCTL_BIN (set by `make check`) name the binaries.
 */
#include <check.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct npsd_proc {
	pid_t pid;
	uint16_t port;
	char dir[128]; /* temporary folder: config, database, logs */
	char db_path[192];
	char config_path[192];
	char base_url[64]; /* "http://127.0.0.1:PORT", https when ca_file is set */
	char ca_file[192]; /* the certificate http_do trusts; "" for plain HTTP */
};

/* Makes the folder and config (extra_ini is appended to it, may be NULL) and starts npsd.
 * Returns 0 once it listens. The daemon dies with the calling process. */
int npsd_start(struct npsd_proc *p, const char *extra_ini);
/* The same, with callbacks_ini as the whole body of the [callbacks] section instead of the
 * default "hours = always" (the config parser rejects a key set twice, so a test of opening
 * hours replaces the section rather than appending to it). NULL or "" leaves the section
 * empty: the built-in defaults apply. */
int npsd_start_callbacks(struct npsd_proc *p, const char *callbacks_ini, const char *extra_ini);
/* The same, with webhooks_ini as the whole body of the [webhooks] section instead of the
 * default "allow_private_targets = true" ([callbacks] keeps "hours = always"). NULL or ""
 * leaves the section empty: the built-in defaults apply, so private targets are refused. */
int npsd_start_webhooks(struct npsd_proc *p, const char *webhooks_ini, const char *extra_ini);
/* npsd_start with HTTPS: a new certificate and key (testcert_write) in its folder,
 * cert.pem and key.pem, named by server.tls_cert and server.tls_key; http_do then speaks
 * HTTPS and trusts that certificate alone. */
int npsd_start_https(struct npsd_proc *p, const char *extra_ini);
/* Starts npsd again on the same folder and database (a new port). */
int npsd_restart(struct npsd_proc *p);
/* Sends sig, waits, returns the exit status (or 128+signal). */
int npsd_stop(struct npsd_proc *p, int sig);
/* Stops it if running and removes the folder. */
void npsd_cleanup(struct npsd_proc *p);
/* The daemon's stderr so far (malloc'ed, caller frees). */
char *npsd_log(const struct npsd_proc *p);

/* The daemon's fake clock (NPSD_FAKE_CLOCK_FILE: unix seconds in a file it re-reads).
 * fake_clock_start(t) makes a new clock at t and points NPSD_FAKE_CLOCK_FILE at it, for the
 * daemons started after it; fake_clock_set(t) moves that clock, whole (a rename: a daemon
 * never reads a half-written time). run_suite() removes the clocks after the run. */
void fake_clock_start(int64_t t);
void fake_clock_set(int64_t t);

/* Runs npsctl against p's database: a new key's token (malloc'ed), or NULL. */
char *npsctl_key(const struct npsd_proc *p, const char *role, const char *name);
/* Runs npsctl with args (NULL-terminated) and returns its exit status; stdout into *out
 * (malloc'ed) when out is not NULL. */
/* Runs argv[0] (a path) with argv and waits: its exit code (-1 when it did not exit), with
 * what it wrote to stdout and stderr malloc'ed in *ret_stdout and *ret_stderr (either may
 * be NULL to drop it). */
int run_program(const char *const argv[], char **ret_stdout, char **ret_stderr);
/* The daemon under test: $NPSD_BIN or build/npsd. */
const char *npsd_bin(void);
/* Replaces the first `from` in the daemon's config file with `to` (fails the test when it
 * is not there); takes effect at the next start or SIGHUP. */
void config_replace(const struct npsd_proc *p, const char *from, const char *to);
/* The admin CLI under test: $NPSCTL_BIN or build/npsctl. */
const char *npsctl_bin(void);
int npsctl_run(const struct npsd_proc *p, char **out, const char *arg, ...);

struct http_result {
	long status;
	char *body;
	size_t len;
	char *headers; /* raw response headers */
	json_t *json;  /* parsed body, or NULL */
	int curl_code;
};

/* One request. body may be NULL; content_type NULL means application/json when a body is
 * given. Returns 0 when a response arrived. */
int http_do(const struct npsd_proc *p, const char *method, const char *path, const char *token,
            const char *content_type, const char *body, size_t len, struct http_result *ret);
/* http_do that also sends the headers in extra (NULL-terminated, may be NULL) after the
 * token's; content_type "" sends no Content-Type of its own (extra may carry some). */
int http_do_headers(const struct npsd_proc *p, const char *method, const char *path, const char *token,
                    const char *content_type, const char *const *extra, const char *body, size_t len,
                    struct http_result *ret);
/* The same with a JSON body given as text. */
int http_json(const struct npsd_proc *p, const char *method, const char *path, const char *token,
              const char *body, struct http_result *ret);
void http_result_free(struct http_result *r);
/* http_json that must get an answer below 500 (fails the test otherwise): the status, the
 * parsed body in *out (may be NULL; the caller decrefs). */
long http_call(const struct npsd_proc *p, const char *method, const char *path, const char *token,
               const char *body, json_t **out);

/* A libcurl CURLOPT_WRITEFUNCTION that appends to a struct growbuf (CURLOPT_WRITEDATA),
 * keeping it NUL-terminated; the caller frees data. */
struct growbuf {
	char *data;
	size_t len;
};
size_t growbuf_write(char *ptr, size_t size, size_t nmemb, void *userdata);
/* The value of a response header (case-insensitive name), malloc'ed, or NULL. */
char *http_header(const struct http_result *r, const char *name);

/* A plain TCP connection to the daemon, for requests libcurl will not send (a body held
 * back, bytes that are not a request): the socket, or -1. */
int raw_connect(const struct npsd_proc *p);
/* The same from the local address source ("127.0.0.2": any of 127.0.0.0/8 is this host). */
int raw_connect_from(const struct npsd_proc *p, const char *source);
/* The same over IPv6, to [::1] (npsd listening there) from source, an address of this host
 * (see netns_add_ipv6). */
int raw_connect6_from(const struct npsd_proc *p, const char *source);
/* Removes dir and everything under it, symbolic links as links (never what they name). */
void remove_tree(const char *dir);
/* client_key() of the address in text (IPv4 or IPv6), asserted to be one. */
struct in6_addr client_key_of(const char *text);
/* Writes all of text; 0 or -1. */
int raw_send(int fd, const char *text);
/* Reads one reply (headers, then Content-Length bytes of body) within timeout_ms: the whole
 * reply as text (malloc'ed, caller frees), or NULL. */
char *raw_reply(int fd, int timeout_ms);

/* obj's string member key, or NULL. */
const char *sget(json_t *obj, const char *key);
/* obj's integer member key; fails the test when it is not an integer. */
json_int_t iget(json_t *obj, const char *key);

/* Sleeps ms milliseconds. */
void sleep_ms(long ms);
/* A formatted string, malloc'ed (the caller frees); fails the test when out of memory. */
char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file; NULL when it cannot. */
char *read_all(const char *path, size_t *ret_len);

/* Removes a database at db_path (with its -wal and -shm files) and then the folder dir. */
void remove_db_folder(const char *dir, const char *db_path);

struct npsd_db;
/* Makes the folder /tmp/npsd-check-TAG-XXXXXX and opens a new npsd database t.db in it
 * (migrations applied), writing both names into dir and path for remove_db_folder; fails
 * the test when it cannot. The caller closes the database with db_close. */
struct npsd_db *open_test_db(const char *tag, char dir[static 64], char path[static 128]);

/* Moves the calling thread, and every process and thread it starts from now on, into a
 * network namespace of its own (with a user namespace when not root), whose loopback
 * interface is up and also carries ipv4 ("a.b.c.d") as an address of this host: a host
 * with a public address of its own wherever the test runs, which no packet leaves. Fails
 * the test, saying why, when the kernel will not make one (the process is not root and
 * unprivileged user namespaces are off). In Check's fork mode it ends with the test. */
void netns_with_own_address(const char *ipv4);
/* After netns_with_own_address: ipv6 ("2001:db8::1") too is an address of this host, on
 * the loopback interface (no duplicate address detection there: usable at once). */
void netns_add_ipv6(const char *ipv6);

/* Runs the suite, each test in a process of its own (Check's default; CK_FORK=no runs them
 * in this one, for gdb), and returns main's exit status. A failed check ends a test's
 * process at once, past its cleanup: its daemons die with it (PR_SET_PDEATHSIG), and the
 * folder of every daemon the tests started is removed here afterwards. */
int run_suite(Suite *s);

#endif
