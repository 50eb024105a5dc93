#include "npsd/client_key.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "npsd/hostaddrs.h"

bool client_key(const struct sockaddr *sa, struct in6_addr *ret)
{
	if (sa && sa->sa_family == AF_INET) {
		ipv4_mapped(ret, &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
		return true;
	}
	if (!sa || sa->sa_family != AF_INET6)
		return false;
	struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	/* An IPv6 host has a whole /64 to itself, as a rule (a subnet is a /64, RFC 4291), and
	 * may take a fresh address in it for each connection (privacy addresses, or any it
	 * likes): counted by address, each would come holding no share and go first. IPv4 in an
	 * IPv6 form stays one address, one host: IPv4-mapped, and the NAT64 prefix 64:ff9b::/96
	 * (RFC 6052), which a translator in front of an IPv6-only npsd gives every IPv4 client,
	 * who would all share one turn by their /64. */
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	if (!IN6_IS_ADDR_V4MAPPED(&a) && memcmp(a.s6_addr, nat64, sizeof nat64) != 0)
		memset(&a.s6_addr[8], 0, 8);
	*ret = a;
	return true;
}
