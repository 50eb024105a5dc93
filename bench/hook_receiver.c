/* hook_receiver: the webhook target of `make bench` (alert latency and fan-out).
 *
 * A libmicrohttpd server on 127.0.0.1 with the same threading setup as npsd and the no-op
 * server (internal polling threads with epoll, one thread per core). Every POST is answered
 * 200 with an empty body once its body has arrived; at that moment the server notes
 *
 *     arrival_ns path webhook_id type response_id
 *
 * arrival_ns is CLOCK_REALTIME in nanoseconds (the load client stamps its sends with the same
 * clock, so the two can be subtracted), webhook_id the `webhook-id` header (one per delivery
 * in npsd, the same on a resend), type and response_id come from a Standard Webhooks body
 * {"type":…,"timestamp":…,"data":{"survey":{"response_id":…}}} ("-" when absent).
 * The lines go to LOGFILE, which is complete once the server has stopped.
 *
 * GET /count?prefix=/hook/fan  answers the number of POSTs so far whose path starts with the
 * prefix (all POSTs without one), as plain text, and flushes LOGFILE first: bench/npsload.c
 * polls it to know when every delivery is in.
 *
 * usage: hook_receiver PORT LOGFILE    (0 = any free port; the bound port is printed on stdout)
 * Runs until SIGTERM or SIGINT, then flushes LOGFILE and exits 0.
 */
#include <microhttpd.h>

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define MAX_BODY (256 * 1024) /* bigger bodies are cut: only the head is parsed */
#define MAX_PATHS 64           /* distinct paths counted */

struct body {
	char *buf;
	size_t len, cap;
	int is_post;
};

static struct {
	pthread_mutex_t lock;
	FILE *log;
	char paths[MAX_PATHS][128];
	unsigned long counts[MAX_PATHS];
	unsigned long other; /* posts to paths beyond MAX_PATHS */
	int npaths;
} st = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct MHD_Response *ok; /* one shared, empty 200 */

static int64_t now_real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copies s into out as one whitespace-free token ("-" when empty or absent). */
static void token(char *out, size_t size, const char *s)
{
	size_t i = 0;
	if (s)
		for (; s[i] && i + 1 < size; i++)
			out[i] = (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') ? '_' : s[i];
	if (i == 0 && size > 1)
		out[i++] = '-';
	out[i] = '\0';
}

static void note(const char *path, const char *webhook_id, const struct body *b, int64_t at)
{
	char type[64], rid[160], wid[64], p[128];
	const char *t = NULL, *r = NULL;
	json_t *doc = b->len ? json_loadb(b->buf, b->len, 0, NULL) : NULL;
	if (doc) {
		t = json_string_value(json_object_get(doc, "type"));
		json_t *survey = json_object_get(json_object_get(doc, "data"), "survey");
		r = json_string_value(json_object_get(survey, "response_id"));
	}
	token(type, sizeof type, t);
	token(rid, sizeof rid, r);
	token(wid, sizeof wid, webhook_id);
	token(p, sizeof p, path);
	json_decref(doc);

	pthread_mutex_lock(&st.lock);
	int i;
	for (i = 0; i < st.npaths; i++)
		if (strcmp(st.paths[i], p) == 0)
			break;
	if (i == st.npaths && st.npaths < MAX_PATHS) {
		snprintf(st.paths[i], sizeof st.paths[i], "%s", p);
		st.npaths++;
	}
	if (i < st.npaths)
		st.counts[i]++;
	else
		st.other++;
	fprintf(st.log, "%lld %s %s %s %s\n", (long long)at, p, wid, type, rid);
	pthread_mutex_unlock(&st.lock);
}

static enum MHD_Result reply_count(struct MHD_Connection *conn)
{
	const char *prefix = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "prefix");
	size_t plen = prefix ? strlen(prefix) : 0;
	unsigned long n = 0;
	pthread_mutex_lock(&st.lock);
	for (int i = 0; i < st.npaths; i++)
		if (strncmp(st.paths[i], prefix ? prefix : "", plen) == 0)
			n += st.counts[i];
	if (!prefix)
		n += st.other;
	fflush(st.log); /* so that LOGFILE holds every request counted so far */
	pthread_mutex_unlock(&st.lock);
	char text[32];
	int len = snprintf(text, sizeof text, "%lu\n", n);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer((size_t)len, text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
	(void)cls;
	(void)version;
	struct body *b = *req_cls;
	if (!b) { /* headers only: come back with the body */
		b = calloc(1, sizeof *b);
		if (!b)
			return MHD_NO;
		b->is_post = strcmp(method, "POST") == 0;
		*req_cls = b;
		return MHD_YES;
	}
	if (*upload_data_size != 0) { /* a piece of the body: keep it (up to MAX_BODY) */
		size_t n = *upload_data_size;
		if (b->len + n > MAX_BODY)
			n = MAX_BODY - b->len;
		if (n && b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 4096;
			while (cap < b->len + n)
				cap *= 2;
			char *p = realloc(b->buf, cap);
			if (!p)
				return MHD_NO;
			b->buf = p;
			b->cap = cap;
		}
		if (n)
			memcpy(b->buf + b->len, upload_data, n);
		b->len += n;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!b->is_post) {
		if (strcmp(url, "/count") == 0)
			return reply_count(conn);
		return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, ok);
	}
	int64_t at = now_real_ns();
	note(url, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id"), b, at);
	return MHD_queue_response(conn, MHD_HTTP_OK, ok);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct body *b = *req_cls;
	if (b) {
		free(b->buf);
		free(b);
		*req_cls = NULL;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PORT LOGFILE\n", argv[0]);
		return 2;
	}
	char *end = NULL;
	unsigned long port = strtoul(argv[1], &end, 10);
	if (!*argv[1] || *end || port > 65535) {
		fprintf(stderr, "%s: bad port %s\n", argv[0], argv[1]);
		return 2;
	}
	st.log = fopen(argv[2], "w");
	if (!st.log) {
		perror(argv[2]);
		return 1;
	}
	static char logbuf[1 << 20];
	setvbuf(st.log, logbuf, _IOFBF, sizeof logbuf);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores < 1)
		cores = 1;

	/* Block the stop signals before MHD starts its threads so they inherit the mask and
	 * only sigwait() below sees them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	ok = MHD_create_response_from_buffer(0, (void *)(uintptr_t) "", MHD_RESPMEM_PERSISTENT);
	if (!ok) {
		fprintf(stderr, "%s: cannot build the response\n", argv[0]);
		return 1;
	}

	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL, NULL,
	    on_request, NULL,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cores,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)10000,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1:%lu\n", argv[0], port);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("%u\n", info ? (unsigned)info->port : (unsigned)port);
	fflush(stdout);

	int sig = 0;
	sigwait(&stop, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(ok);
	pthread_mutex_lock(&st.lock);
	int rc = fclose(st.log) == 0 ? 0 : 1;
	pthread_mutex_unlock(&st.lock);
	return rc;
}
