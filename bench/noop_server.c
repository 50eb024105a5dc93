/* noop_server: the ceiling for `make bench`.
 *
 * A libmicrohttpd server with the same threading setup as npsd (internal polling threads
 * with epoll, a pool of one thread per core, 10,000 connections) that reads each request's
 * body, throws it away and answers 201 with {"id":1}. Whatever npsd does beyond this is
 * its own cost; the ratio of the two is what bench/run.sh reports.
 *
 * usage: noop_server PORT     (0 = any free port; the bound port is printed on stdout)
 * Runs until SIGTERM or SIGINT.
 */
#include <microhttpd.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char BODY[] = "{\"id\":1}";
static struct MHD_Response *created; /* one shared, immutable response */
static int marker;                   /* *req_cls for a request whose headers were seen */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;
	if (*req_cls == NULL) { /* headers only: come back with the body */
		*req_cls = &marker;
		return MHD_YES;
	}
	if (*upload_data_size != 0) { /* a piece of the body: consume it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_CREATED, created);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	char *end = NULL;
	unsigned long port = strtoul(argv[1], &end, 10);
	if (!*argv[1] || *end || port > 65535) {
		fprintf(stderr, "%s: bad port %s\n", argv[0], argv[1]);
		return 2;
	}
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

	created = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)(uintptr_t)BODY,
	                                          MHD_RESPMEM_PERSISTENT);
	if (!created || MHD_add_response_header(created, MHD_HTTP_HEADER_CONTENT_TYPE,
	                                        "application/json") != MHD_YES) {
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
	MHD_destroy_response(created);
	return 0;
}
