#include "npsd/client_key.h"

#include <sys/socket.h>

#include "npsd/hostaddrs.h"

bool client_key(const struct sockaddr *sa, struct in6_addr *ret)
{
	if (sa && sa->sa_family == AF_INET) {
		ipv4_mapped(ret, &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
		return true;
	}
	if (sa && sa->sa_family == AF_INET6) {
		*ret = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		return true;
	}
	return false;
}
