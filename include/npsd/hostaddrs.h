#ifndef NPSD_HOSTADDRS_H
#define NPSD_HOSTADDRS_H
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

/*
 * The addresses assigned to this host's interfaces, for the SSRF guard: a connection to
 * any of them reaches every service on the host that listens on 0.0.0.0 or ::, however
 * public the address is.
 */

/* Interfaces change (DHCP, containers, VPNs): the list is read again when it is older than
 * this. Reading it is a netlink dump, too dear for every connection on a host with many. */
#define HOSTADDRS_MAX_AGE_MS 10000

/*
 * Whether addr (an IPv6 address, or an IPv4 one in its IPv4-mapped form ::ffff:a.b.c.d) is
 * assigned to one of the host's interfaces, up or down, as getifaddrs() listed them at most
 * HOSTADDRS_MAX_AGE_MS ago. Safe from any thread: the thread that finds the list stale
 * reads it again while the others go on with the old one. Until a first list could be
 * read, every address counts as the host's own (the guard fails closed).
 */
bool hostaddrs_contains(const struct in6_addr *addr);

/* The IPv4-mapped form of the IPv4 address at v4 (4 bytes, network order): the one form of
 * an IPv4 address hostaddrs_contains() and the SSRF guard's table take. */
static inline void ipv4_mapped(struct in6_addr *ret, const void *v4)
{
	memset(ret->s6_addr, 0, 10);
	ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
	memcpy(&ret->s6_addr[12], v4, 4);
}

#endif
