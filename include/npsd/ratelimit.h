#ifndef NPSD_RATELIMIT_H
#define NPSD_RATELIMIT_H
#include <stdint.h>

/*
 * server.rate_limit: a token bucket per API key, refilled at `rate` requests a second and
 * holding at most twice that (the burst SPEC allows). Thread-safe.
 */
struct ratelimit;

/* rate 0 lets everything through (server.rate_limit = 0). Returns 0 and *ret, or -ENOMEM.
 * Free with ratelimit_free(). */
int ratelimit_new(double rate, struct ratelimit **ret);
void ratelimit_free(struct ratelimit **rl);
/* A new rate (a config reload); buckets keep their tokens, capped at the new burst. */
void ratelimit_set_rate(struct ratelimit *rl, double rate);

/* Takes one request for key_id at now_ms (monotonic). Returns 0 when it may go ahead, else
 * the whole seconds to wait before the next one would (1 to RATELIMIT_WAIT_MAX), for
 * Retry-After. */
#define RATELIMIT_WAIT_MAX 86400

int ratelimit_take(struct ratelimit *rl, int64_t key_id, int64_t now_ms);

#endif
