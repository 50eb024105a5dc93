#ifndef NPSD_CLIENT_KEY_H
#define NPSD_CLIENT_KEY_H
#include <netinet/in.h>
#include <stdbool.h>

struct sockaddr;

/*
 * Whose turn a large body from the client at sa waits in (see BODY_BUDGET in http.c): an
 * IPv4 address in its IPv4-mapped form, so that one host is one key however it came; an
 * IPv6 address by its /64, the last 64 bits zero, as a host may use a fresh address of its
 * /64 for each connection; an IPv4-mapped address, or one in the NAT64 prefix 64:ff9b::/96,
 * whole, as the IPv4 address it stands for. Returns false, *ret untouched, when sa is NULL
 * or neither IPv4 nor IPv6.
 */
bool client_key(const struct sockaddr *sa, struct in6_addr *ret);

#endif
