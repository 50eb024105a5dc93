#ifndef NPSD_CONN_LIMIT_H
#define NPSD_CONN_LIMIT_H
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Open connections counted per client key (client_key(): an IPv4 address, an IPv6 /64), so
 * that one client cannot hold every connection the server takes. A key has an entry only
 * while it holds a connection: the table never has more entries than connections counted.
 * Knows keys and counts, nothing of HTTP. Thread-safe.
 */
struct conn_limit;

/* A table that lets each key hold up to limit connections (at least 1). 0 and *ret, or
 * -ENOMEM with *ret untouched. */
int conn_limit_new(unsigned limit, struct conn_limit **ret);
/* Frees *cl and NULLs it, whatever is still counted; NULL and *cl == NULL are no-ops. */
void conn_limit_free(struct conn_limit **cl);

/* Whether key holds the limit now: a connection of it would not be counted. A hint for
 * refusing early (another thread may count or give back meanwhile); conn_limit_take
 * decides. */
bool conn_limit_full(struct conn_limit *cl, const struct in6_addr *key);
/* Counts a connection of key: 0; or, counting nothing, -EUSERS when key holds the limit
 * already and -ENOMEM when a first connection of key finds no memory for its entry. */
int conn_limit_take(struct conn_limit *cl, const struct in6_addr *key);
/* Gives back one connection of key that conn_limit_take counted; its entry goes with its
 * last. A key that holds none is a caller's bug: ignored (asserted in debug builds). */
void conn_limit_give_back(struct conn_limit *cl, const struct in6_addr *key);

/* Connections key holds now. */
unsigned conn_limit_held(struct conn_limit *cl, const struct in6_addr *key);
/* Keys holding a connection now (entries in the table). */
size_t conn_limit_keys(struct conn_limit *cl);

#endif
