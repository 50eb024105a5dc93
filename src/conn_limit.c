/* Connections per client key (include/npsd/conn_limit.h). */
#include "npsd/conn_limit.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A power of two. Up to 10,000 connections in all: a few entries a bucket at worst when
 * each is its own client. */
#define BUCKETS 4096u

struct conn_key {
	struct in6_addr key;
	unsigned held;
	struct conn_key *next; /* in its bucket */
};

struct conn_limit {
	pthread_mutex_t lock;
	unsigned limit;
	size_t nkeys;
	/* Random per table: a client choosing its /64s (a /48 has 65,536 of them) cannot aim
	 * them all at one bucket and make every accept walk its connections. */
	uint64_t seed;
	struct conn_key *buckets[BUCKETS];
};

static size_t bucket_of(const struct conn_limit *cl, const struct in6_addr *key)
{
	uint64_t hi, lo;
	memcpy(&hi, key->s6_addr, 8);
	memcpy(&lo, key->s6_addr + 8, 8);
	uint64_t h = (hi ^ cl->seed) * 0x9e3779b97f4a7c15u;
	h = (h ^ (h >> 29) ^ lo) * 0xbf58476d1ce4e5b9u;
	h ^= h >> 32;
	return (size_t)(h & (BUCKETS - 1));
}

/* Called with lock held: where key's entry is linked (*slot is NULL when it has none). */
static struct conn_key **slot_of(struct conn_limit *cl, const struct in6_addr *key)
{
	struct conn_key **slot = &cl->buckets[bucket_of(cl, key)];
	while (*slot && memcmp(&(*slot)->key, key, sizeof *key) != 0)
		slot = &(*slot)->next;
	return slot;
}

int conn_limit_new(unsigned limit, struct conn_limit **ret)
{
	struct conn_limit *cl = calloc(1, sizeof *cl);
	if (!cl)
		return -ENOMEM;
	pthread_mutex_init(&cl->lock, NULL);
	cl->limit = limit ? limit : 1;
	/* Without randomness the table still works, only guessable. */
	if (getrandom(&cl->seed, sizeof cl->seed, GRND_NONBLOCK) != (ssize_t)sizeof cl->seed)
		cl->seed = (uint64_t)(uintptr_t)cl;
	*ret = cl;
	return 0;
}

void conn_limit_free(struct conn_limit **cl)
{
	if (!cl || !*cl)
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct conn_key *k = (*cl)->buckets[i], *next; k; k = next) {
			next = k->next;
			free(k);
		}
	pthread_mutex_destroy(&(*cl)->lock);
	free(*cl);
	*cl = NULL;
}

bool conn_limit_full(struct conn_limit *cl, const struct in6_addr *key)
{
	pthread_mutex_lock(&cl->lock);
	struct conn_key *k = *slot_of(cl, key);
	bool full = k && k->held >= cl->limit;
	pthread_mutex_unlock(&cl->lock);
	return full;
}

int conn_limit_take(struct conn_limit *cl, const struct in6_addr *key)
{
	int r = 0;
	pthread_mutex_lock(&cl->lock);
	struct conn_key **slot = slot_of(cl, key);
	if (!*slot) {
		*slot = calloc(1, sizeof **slot);
		if (!*slot) {
			r = -ENOMEM;
			goto out;
		}
		(*slot)->key = *key;
		cl->nkeys++;
	}
	if ((*slot)->held >= cl->limit)
		r = -EUSERS;
	else
		(*slot)->held++;
out:
	pthread_mutex_unlock(&cl->lock);
	return r;
}

void conn_limit_give_back(struct conn_limit *cl, const struct in6_addr *key)
{
	pthread_mutex_lock(&cl->lock);
	struct conn_key **slot = slot_of(cl, key);
	struct conn_key *k = *slot;
	assert(k && k->held > 0);
	if (k && --k->held == 0) {
		*slot = k->next;
		free(k);
		cl->nkeys--;
	}
	pthread_mutex_unlock(&cl->lock);
}

unsigned conn_limit_held(struct conn_limit *cl, const struct in6_addr *key)
{
	pthread_mutex_lock(&cl->lock);
	struct conn_key *k = *slot_of(cl, key);
	unsigned held = k ? k->held : 0;
	pthread_mutex_unlock(&cl->lock);
	return held;
}

size_t conn_limit_keys(struct conn_limit *cl)
{
	pthread_mutex_lock(&cl->lock);
	size_t n = cl->nkeys;
	pthread_mutex_unlock(&cl->lock);
	return n;
}
