#include "npsd/hostaddrs.h"

#include <ifaddrs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "npsd/clock.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct in6_addr *addrs; /* IPv4 addresses in their IPv4-mapped form */
static size_t naddrs;
static bool have_list;  /* a first list was read */
static bool reading;    /* a thread is reading a new one, without the lock */
static int64_t read_at; /* clock_mono_ms() of the last read, failed or not */

/* Every IPv4 and IPv6 address of every interface, in *ret (malloc'ed, the caller frees;
 * NULL when there are none). 0, or -1 when getifaddrs() or malloc() failed (*ret untouched). */
static int read_list(struct in6_addr **ret, size_t *ret_n)
{
	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0)
		return -1;
	size_t n = 0;
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next)
		if (p->ifa_addr && (p->ifa_addr->sa_family == AF_INET || p->ifa_addr->sa_family == AF_INET6))
			n++;
	struct in6_addr *list = n ? calloc(n, sizeof *list) : NULL;
	if (n && !list) {
		freeifaddrs(ifa);
		return -1;
	}
	size_t i = 0;
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_addr)
			continue;
		if (p->ifa_addr->sa_family == AF_INET) {
			ipv4_mapped(&list[i++],
			            &((const struct sockaddr_in *)(const void *)p->ifa_addr)->sin_addr);
		} else if (p->ifa_addr->sa_family == AF_INET6) {
			list[i++] = ((const struct sockaddr_in6 *)(const void *)p->ifa_addr)->sin6_addr;
		}
	}
	freeifaddrs(ifa);
	*ret = list;
	*ret_n = n;
	return 0;
}

bool hostaddrs_contains(const struct in6_addr *addr)
{
	pthread_mutex_lock(&lock);
	int64_t now = clock_mono_ms();
	if (!have_list || (now - read_at >= HOSTADDRS_MAX_AGE_MS && !reading)) {
		/* With no list yet there is nothing to answer with: read it under the lock. */
		bool wait = !have_list;
		reading = true;
		if (!wait)
			pthread_mutex_unlock(&lock);
		struct in6_addr *fresh = NULL;
		size_t n = 0;
		int r = read_list(&fresh, &n);
		if (!wait)
			pthread_mutex_lock(&lock);
		reading = false;
		read_at = now;
		if (r == 0) {
			free(addrs);
			addrs = fresh;
			naddrs = n;
			have_list = true;
		}
	}
	bool found = !have_list;
	for (size_t i = 0; i < naddrs && !found; i++)
		found = memcmp(&addrs[i], addr, sizeof *addr) == 0;
	pthread_mutex_unlock(&lock);
	return found;
}
