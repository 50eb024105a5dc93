#include "npsd/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

struct bucket {
	int64_t key_id; /* 0 = empty slot (key ids start at 1) */
	double tokens;
	int64_t at_ms; /* when tokens was last brought up to date */
};

struct ratelimit {
	pthread_mutex_t lock;
	double rate, burst;
	struct bucket *slots;
	size_t cap, used;
};

int ratelimit_new(double rate, struct ratelimit **ret)
{
	struct ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		return -ENOMEM;
	pthread_mutex_init(&rl->lock, NULL);
	rl->cap = 64;
	rl->slots = calloc(rl->cap, sizeof *rl->slots);
	if (!rl->slots) {
		pthread_mutex_destroy(&rl->lock);
		free(rl);
		return -ENOMEM;
	}
	ratelimit_set_rate(rl, rate);
	*ret = rl;
	return 0;
}

void ratelimit_set_rate(struct ratelimit *rl, double rate)
{
	pthread_mutex_lock(&rl->lock);
	rl->rate = rate;
	rl->burst = 2 * rate < 1 ? 1 : 2 * rate; /* a rate below 0.5/s still lets one through */
	pthread_mutex_unlock(&rl->lock);
}

void ratelimit_free(struct ratelimit **rl)
{
	if (!rl || !*rl)
		return;
	pthread_mutex_destroy(&(*rl)->lock);
	free((*rl)->slots);
	free(*rl);
	*rl = NULL;
}

static struct bucket *slot_for(struct bucket *slots, size_t cap, int64_t key_id)
{
	size_t i = (size_t)((uint64_t)key_id * 0x9E3779B97F4A7C15ull) % cap;
	while (slots[i].key_id && slots[i].key_id != key_id)
		i = (i + 1) % cap;
	return &slots[i];
}

/* Keys are few (one per integration, agent, manager), so the table only ever grows. */
static int grow(struct ratelimit *rl)
{
	size_t cap = rl->cap * 2;
	struct bucket *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < rl->cap; i++)
		if (rl->slots[i].key_id)
			*slot_for(slots, cap, rl->slots[i].key_id) = rl->slots[i];
	free(rl->slots);
	rl->slots = slots;
	rl->cap = cap;
	return 0;
}

int ratelimit_take(struct ratelimit *rl, int64_t key_id, int64_t now_ms)
{
	int wait = 0;
	pthread_mutex_lock(&rl->lock);
	if (rl->rate <= 0)
		goto out;
	if (rl->used * 2 >= rl->cap && grow(rl) < 0)
		goto out; /* out of memory: let the request through rather than refuse everyone */
	struct bucket *b = slot_for(rl->slots, rl->cap, key_id);
	if (!b->key_id) {
		*b = (struct bucket){ .key_id = key_id, .tokens = rl->burst, .at_ms = now_ms };
		rl->used++;
	}
	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) / 1000.0 * rl->rate;
		b->at_ms = now_ms;
	}
	if (b->tokens > rl->burst) /* also right after a reload lowered the rate */
		b->tokens = rl->burst;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
	} else {
		/* In double until clamped: a rate of one a century would overflow an int. */
		double secs = ceil((1.0 - b->tokens) / rl->rate);
		wait = secs < 1 ? 1 : secs > RATELIMIT_WAIT_MAX ? RATELIMIT_WAIT_MAX : (int)secs;
	}
out:
	pthread_mutex_unlock(&rl->lock);
	return wait;
}
