#ifndef NPSD_CLIENT_KEY_H
#define NPSD_CLIENT_KEY_H
#include <netinet/in.h>
#include <stdbool.h>

struct sockaddr;

/*
 * Whose turn a large body from the client at sa waits in (see BODY_BUDGET in http.c): its
 * address, an IPv4 one in its IPv4-mapped form, so that one host is one key however it
 * came. Returns false, *ret untouched, when sa is NULL or neither IPv4 nor IPv6.
 */
bool client_key(const struct sockaddr *sa, struct in6_addr *ret);

#endif
