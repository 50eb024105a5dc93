#include "testutil.h"

#include "npsd/client_key.h"
#include "npsd/db.h"
#include "testcert.h"

#include <check.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin(const char *env, const char *fallback)
{
	const char *v = getenv(env);
	return v && *v ? v : fallback;
}

const char *npsd_bin(void)
{
	return bin("NPSD_BIN", "build/npsd");
}

char *read_all(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			char *grown = realloc(buf, cap * 2);
			if (!grown) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	if (ret_len)
		*ret_len = len;
	return buf;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int spawn(struct npsd_proc *p)
{
	char port_file[256], log_file[256];
	snprintf(port_file, sizeof port_file, "%s/port", p->dir);
	snprintf(log_file, sizeof log_file, "%s/npsd.log", p->dir);
	unlink(port_file);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* The daemon must not outlive a test that failed half-way. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		const char *npsd = npsd_bin();
		execl(npsd, npsd, "--config", p->config_path, "--port-file", port_file, "--log-level",
		      "debug", (char *)NULL);
		_exit(127);
	}
	p->pid = pid;
	for (int i = 0; i < 1000; i++) {
		char *text = read_all(port_file, NULL);
		if (text) {
			p->port = (uint16_t)strtoul(text, NULL, 10);
			free(text);
			snprintf(p->base_url, sizeof p->base_url, "%s://127.0.0.1:%u",
			         p->ca_file[0] ? "https" : "http", p->port);
			return 0;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			p->pid = 0;
			return -1;
		}
		sleep_ms(10);
	}
	return -1;
}

int npsd_start(struct npsd_proc *p, const char *extra_ini)
{
	return npsd_start_callbacks(p, "hours = always\n", extra_ini);
}

/* Ends a section body given as text with a newline when it lacks one. */
static const char *section_end(const char *body)
{
	return body && *body && body[strlen(body) - 1] != '\n' ? "\n" : "";
}

/* Where the daemons' folders are noted for run_suite() to remove: an unlinked file opened
 * O_APPEND, inherited by the forked test processes, so each note is one atomic write. */
static int started_dirs = -1;

static void note_started_dir(const char *dir)
{
	char line[sizeof((struct npsd_proc *)0)->dir + 1];
	int n = snprintf(line, sizeof line, "%s\n", dir);
	if (started_dirs >= 0 && write(started_dirs, line, (size_t)n) != n)
		fprintf(stderr, "testutil: cannot note %s for removal\n", dir);
}

static void remove_started_dirs(void)
{
	char buf[4096]; /* lines are shorter than a folder name */
	size_t have = 0;
	off_t at = 0;
	ssize_t got;
	while ((got = pread(started_dirs, buf + have, sizeof buf - have, at)) > 0) {
		at += got;
		have += (size_t)got;
		char *line = buf, *nl;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			*nl = '\0';
			struct npsd_proc left = { 0 };
			size_t n = strlen(line);
			if (n < sizeof left.dir) {
				memcpy(left.dir, line, n + 1);
				npsd_cleanup(&left); /* no pid: removes the folder if a test left it */
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
}

static char clock_path[64];

void fake_clock_set(int64_t t)
{
	ck_assert_msg(clock_path[0], "fake_clock_set before fake_clock_start");
	char tmp[sizeof clock_path + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", clock_path);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%lld\n", (long long)t);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, clock_path), 0);
}

void fake_clock_start(int64_t t)
{
	char dir[sizeof clock_path - 6] = "/tmp/npsd-clock-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	note_started_dir(dir);
	snprintf(clock_path, sizeof clock_path, "%s/clock", dir);
	fake_clock_set(t);
	ck_assert_int_eq(setenv("NPSD_FAKE_CLOCK_FILE", clock_path, 1), 0);
}

/* With https, a new certificate and key are written to the folder first. */
static int start_with(struct npsd_proc *p, bool https, const char *callbacks_ini,
                      const char *webhooks_ini, const char *extra_ini)
{
	char key[sizeof p->ca_file], server_ini[2 * sizeof p->ca_file + 32] = "";

	memset(p, 0, sizeof *p);
	snprintf(p->dir, sizeof p->dir, "/tmp/npsd-it-XXXXXX");
	if (!mkdtemp(p->dir))
		return -1;
	note_started_dir(p->dir);
	snprintf(p->db_path, sizeof p->db_path, "%s/npsd.db", p->dir);
	snprintf(p->config_path, sizeof p->config_path, "%s/npsd.conf", p->dir);
	if (https) {
		snprintf(p->ca_file, sizeof p->ca_file, "%s/cert.pem", p->dir);
		snprintf(key, sizeof key, "%s/key.pem", p->dir);
		if (testcert_write(p->ca_file, key, NULL) < 0)
			return -1;
		snprintf(server_ini, sizeof server_ini, "tls_cert = %s\ntls_key = %s\n", p->ca_file,
		         key);
	}
	FILE *f = fopen(p->config_path, "w");
	if (!f)
		return -1;
	fprintf(f,
	        "[server]\nlisten = 127.0.0.1:0\nthreads = 2\n%s"
	        "[database]\npath = %s\n"
	        "[callbacks]\n%s%s"
	        "[webhooks]\n%s%s",
	        server_ini, p->db_path, callbacks_ini ? callbacks_ini : "", section_end(callbacks_ini),
	        webhooks_ini ? webhooks_ini : "", section_end(webhooks_ini));
	if (extra_ini)
		fputs(extra_ini, f);
	fclose(f);
	return spawn(p);
}

int npsd_start_callbacks(struct npsd_proc *p, const char *callbacks_ini, const char *extra_ini)
{
	return start_with(p, false, callbacks_ini, "allow_private_targets = true\n", extra_ini);
}

int npsd_start_webhooks(struct npsd_proc *p, const char *webhooks_ini, const char *extra_ini)
{
	return start_with(p, false, "hours = always\n", webhooks_ini, extra_ini);
}

int npsd_start_https(struct npsd_proc *p, const char *extra_ini)
{
	return start_with(p, true, "hours = always\n", "allow_private_targets = true\n", extra_ini);
}

int npsd_restart(struct npsd_proc *p)
{
	return spawn(p);
}

int npsd_stop(struct npsd_proc *p, int sig)
{
	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	int status = 0;
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

void npsd_cleanup(struct npsd_proc *p)
{
	if (p->pid > 0)
		npsd_stop(p, SIGKILL);
	if (!p->dir[0])
		return;
	/* The whole folder: tests leave more in it than npsd makes (a second database, a folder
	 * behind a link), and each left /tmp/npsd-it-* behind at every run. */
	remove_tree(p->dir);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *at)
{
	(void)st;
	(void)at;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *npsd_log(const struct npsd_proc *p)
{
	char path[256];
	snprintf(path, sizeof path, "%s/npsd.log", p->dir);
	return read_all(path, NULL);
}

/* Reads fd to its end into a malloc'ed string (NULL when out of memory). */
static char *read_fd(int fd)
{
	size_t cap = 1024, len = 0;
	char *buf = malloc(cap);
	ssize_t got;
	while (buf && (got = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)got;
		if (cap - len < 2) {
			cap *= 2;
			char *grown = realloc(buf, cap);
			if (!grown)
				free(buf);
			buf = grown;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

int run_program(const char *const argv[], char **ret_stdout, char **ret_stderr)
{
	int out[2], err[2];
	if (pipe(out) < 0)
		return -1;
	if (pipe(err) < 0) {
		close(out[0]);
		close(out[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	/* stderr first: the programs run here write little, far below a pipe's buffer. */
	char *errtext = read_fd(err[0]);
	char *outtext = read_fd(out[0]);
	close(out[0]);
	close(err[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (ret_stdout)
		*ret_stdout = outtext;
	else
		free(outtext);
	if (ret_stderr)
		*ret_stderr = errtext;
	else
		free(errtext);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void config_replace(const struct npsd_proc *p, const char *from, const char *to)
{
	char *text = read_all(p->config_path, NULL);
	ck_assert_ptr_nonnull(text);
	char *at = strstr(text, from);
	ck_assert_msg(at != NULL, "%s not in the config:\n%s", from, text);
	FILE *f = fopen(p->config_path, "w");
	ck_assert_ptr_nonnull(f);
	fwrite(text, 1, (size_t)(at - text), f);
	fputs(to, f);
	fputs(at + strlen(from), f);
	fclose(f);
	free(text);
}

const char *npsctl_bin(void)
{
	return bin("NPSCTL_BIN", "build/npsctl");
}

int npsctl_run(const struct npsd_proc *p, char **out, const char *arg, ...)
{
	const char *argv[32];
	size_t n = 0;
	argv[n++] = npsctl_bin();
	argv[n++] = "--db";
	argv[n++] = p->db_path;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return run_program(argv, out, NULL);
}

char *npsctl_key(const struct npsd_proc *p, const char *role, const char *name)
{
	char *out = NULL;
	if (npsctl_run(p, &out, "key", "create", "--role", role, "--name", name, (char *)NULL) != 0) {
		free(out);
		return NULL;
	}
	char *nl = out ? strchr(out, '\n') : NULL;
	if (nl)
		*nl = '\0';
	return out;
}

size_t growbuf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct growbuf *b = userdata;
	size_t n = size * nmemb;
	char *grown = realloc(b->data, b->len + n + 1);
	if (!grown)
		return 0;
	b->data = grown;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

int http_do(const struct npsd_proc *p, const char *method, const char *path, const char *token,
            const char *content_type, const char *body, size_t len, struct http_result *ret)
{
	return http_do_headers(p, method, path, token, content_type, NULL, body, len, ret);
}

int http_do_headers(const struct npsd_proc *p, const char *method, const char *path, const char *token,
                    const char *content_type, const char *const *extra, const char *body, size_t len,
                    struct http_result *ret)
{
	memset(ret, 0, sizeof *ret);
	CURL *curl = curl_easy_init();
	if (!curl)
		return -1;
	char url[512], authz[512], ctype[256];
	snprintf(url, sizeof url, "%s%s", p->base_url, path);
	struct curl_slist *headers = NULL;
	if (token) {
		snprintf(authz, sizeof authz, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, authz);
	}
	if (body) {
		if (!content_type || *content_type) {
			snprintf(ctype, sizeof ctype, "Content-Type: %s",
			         content_type ? content_type : "application/json");
			headers = curl_slist_append(headers, ctype);
		}
		headers = curl_slist_append(headers, "Expect:");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	for (const char *const *e = extra; e && *e; e++)
		headers = curl_slist_append(headers, *e);
	struct growbuf resp = { 0 }, head = { 0 };
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, growbuf_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, growbuf_write);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (p->ca_file[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, p->ca_file);
	ret->curl_code = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ret->status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	ret->body = resp.data ? resp.data : strdup("");
	ret->len = resp.len;
	ret->headers = head.data ? head.data : strdup("");
	if (ret->len)
		ret->json = json_loadb(ret->body, ret->len, 0, NULL);
	return ret->curl_code == CURLE_OK ? 0 : -1;
}

int http_json(const struct npsd_proc *p, const char *method, const char *path, const char *token,
              const char *body, struct http_result *ret)
{
	return http_do(p, method, path, token, NULL, body, body ? strlen(body) : 0, ret);
}

void http_result_free(struct http_result *r)
{
	free(r->body);
	free(r->headers);
	json_decref(r->json);
	memset(r, 0, sizeof *r);
}

char *http_header(const struct http_result *r, const char *name)
{
	size_t nlen = strlen(name);
	for (const char *line = r->headers; line && *line;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			return strndup(v, len - (size_t)(v - line));
		}
		line = end ? end + 2 : NULL;
	}
	return NULL;
}

const char *sget(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

json_int_t iget(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	ck_assert_msg(json_is_integer(v), "\"%s\" is not an integer", key);
	return json_integer_value(v);
}

int raw_connect(const struct npsd_proc *p)
{
	return raw_connect_from(p, NULL);
}

/* A connection to the daemon's loopback address of family, bound to source first when given. */
static int connect_loopback(const struct npsd_proc *p, int family, const char *source)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} to = { 0 }, from = { 0 };
	socklen_t len;
	void *source_addr;
	if (family == AF_INET) {
		to.v4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(p->port) };
		to.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		from.v4.sin_family = AF_INET;
		source_addr = &from.v4.sin_addr;
		len = sizeof to.v4;
	} else {
		to.v6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_port = htons(p->port) };
		to.v6.sin6_addr = in6addr_loopback;
		from.v6.sin6_family = AF_INET6;
		source_addr = &from.v6.sin6_addr;
		len = sizeof to.v6;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && source &&
	    (inet_pton(family, source, source_addr) != 1 || bind(fd, &from.sa, len) < 0)) {
		close(fd);
		return -1;
	}
	if (fd >= 0 && connect(fd, &to.sa, len) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

int raw_connect_from(const struct npsd_proc *p, const char *source)
{
	return connect_loopback(p, AF_INET, source);
}

int raw_connect6_from(const struct npsd_proc *p, const char *source)
{
	return connect_loopback(p, AF_INET6, source);
}

struct in6_addr client_key_of(const char *text)
{
	struct in6_addr key;
	memset(&key, 0xa5, sizeof key); /* bytes client_key() left alone would show */
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	if (inet_pton(AF_INET, text, &v4.sin_addr) == 1)
		ck_assert(client_key((const struct sockaddr *)&v4, &key));
	else if (inet_pton(AF_INET6, text, &v6.sin6_addr) == 1)
		ck_assert(client_key((const struct sockaddr *)&v6, &key));
	else
		ck_abort_msg("not an address: %s", text);
	return key;
}

int raw_send(int fd, const char *text)
{
	size_t len = strlen(text);
	while (len > 0) {
		ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

char *raw_reply(int fd, int timeout_ms)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	while (buf && len < cap - 1) {
		buf[len] = '\0';
		const char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
			if (len >= (size_t)(end + 4 - buf) + body)
				return buf;
		}
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	free(buf);
	return NULL;
}

void remove_db_folder(const char *dir, const char *db_path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char file[512];
		snprintf(file, sizeof file, "%s%s", db_path, suffixes[i]);
		unlink(file);
	}
	rmdir(dir);
}

struct npsd_db *open_test_db(const char *tag, char dir[static 64], char path[static 128])
{
	snprintf(dir, 64, "/tmp/npsd-check-%s-XXXXXX", tag);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, 128, "%s/t.db", dir);
	struct npsd_db *db = NULL;
	char *error = NULL;
	int r = db_open(path, &db, &error);
	ck_assert_msg(r == 0, "cannot open %s: %s", path, error ? error : "");
	free(error);
	return db;
}

int run_suite(Suite *s)
{
	char path[] = "/tmp/npsd-test-dirs-XXXXXX";
	started_dirs = mkostemp(path, O_APPEND | O_CLOEXEC);
	if (started_dirs >= 0)
		unlink(path);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (started_dirs >= 0) {
		remove_started_dirs();
		close(started_dirs);
		started_dirs = -1;
	}
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *fmt(const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	char *s = NULL;
	int n = vasprintf(&s, format, ap);
	va_end(ap);
	ck_assert_msg(n >= 0 && s, "out of memory");
	return s;
}

long http_call(const struct npsd_proc *p, const char *method, const char *path, const char *token,
               const char *body, json_t **out)
{
	struct http_result r;
	int rc = http_json(p, method, path, token, body, &r);
	ck_assert_msg(rc == 0, "%s %s: no answer (curl %d)", method, path, r.curl_code);
	ck_assert_msg(r.status < 500, "%s %s answered %ld: %s", method, path, r.status, r.body);
	long status = r.status;
	if (out)
		*out = json_incref(r.json);
	http_result_free(&r);
	return status;
}

/* Writes text to the /proc file path; 0 or -errno. */
static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int r = n == (ssize_t)strlen(text) ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return r;
}

void netns_with_own_address(const char *ipv4)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (uid == 0) {
		ck_assert_msg(unshare(CLONE_NEWNET) == 0, "cannot make a network namespace: %s", strerror(errno));
	} else {
		ck_assert_msg(unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0,
		              "cannot make a network namespace (%s): this test needs root or unprivileged user "
		              "namespaces (sysctl kernel.unprivileged_userns_clone=1)",
		              strerror(errno));
		char map[64];
		snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
		ck_assert_int_eq(write_proc("/proc/self/setgroups", "deny"), 0);
		ck_assert_int_eq(write_proc("/proc/self/uid_map", map), 0);
		snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
		ck_assert_int_eq(write_proc("/proc/self/gid_map", map), 0);
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	ck_assert_msg(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0, "lo: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	ck_assert_msg(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0, "lo up: %s", strerror(errno));
	struct ifreq alias = { 0 };
	snprintf(alias.ifr_name, sizeof alias.ifr_name, "lo:1");
	struct sockaddr_in *in = (struct sockaddr_in *)&alias.ifr_addr;
	in->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, ipv4, &in->sin_addr), 1);
	ck_assert_msg(ioctl(fd, SIOCSIFADDR, &alias) == 0, "%s on lo: %s", ipv4, strerror(errno));
	struct sockaddr_in *mask = (struct sockaddr_in *)&alias.ifr_netmask;
	mask->sin_family = AF_INET;
	mask->sin_addr.s_addr = htonl(0xffffffffu);
	ck_assert_msg(ioctl(fd, SIOCSIFNETMASK, &alias) == 0, "%s/32: %s", ipv4, strerror(errno));
	close(fd);
}

void netns_add_ipv6(const char *ipv6)
{
	/* struct in6_ifreq of <linux/ipv6.h>, which clashes with <netinet/in.h> */
	struct {
		struct in6_addr addr;
		uint32_t prefixlen;
		int ifindex;
	} req = { .prefixlen = 128 };
	ck_assert_int_eq(inet_pton(AF_INET6, ipv6, &req.addr), 1);
	req.ifindex = (int)if_nametoindex("lo");
	ck_assert_int_gt(req.ifindex, 0);
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "no IPv6 here: %s", strerror(errno));
	ck_assert_msg(ioctl(fd, SIOCSIFADDR, &req) == 0, "%s on lo: %s", ipv6, strerror(errno));
	close(fd);
}
