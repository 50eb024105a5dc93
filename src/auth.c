#include "npsd/auth.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "npsd/clock.h"
#include "npsd/log.h"
#include "npsd/store.h"

#define RELOAD_EVERY_MS 1000
/* After a failed reload, requests are refused this long before one tries again: each try
 * holds the lock, and a storage in trouble would have every request wait for its own. */
#define RETRY_AFTER_FAILURE_MS 250

static const char *const role_names[] = { "ingest", "agent", "manager", "admin" };

const char *role_name(enum role role)
{
	for (size_t i = 0; i < 4; i++)
		if (role == (enum role)(1 << i))
			return role_names[i];
	return NULL;
}

int role_parse(const char *name, enum role *ret_role)
{
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(name, role_names[i]) == 0) {
			*ret_role = (enum role)(1 << i);
			return 0;
		}
	}
	return -EINVAL;
}

int auth_token_generate(char *buf, size_t size)
{
	uint8_t raw[32];
	if (size < 64)
		return -EINVAL;
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return -EIO;
	struct base64_encode_ctx ctx;
	base64url_encode_init(&ctx);
	memcpy(buf, "npsd_", 5);
	char *out = buf + 5;
	size_t n = base64_encode_update(&ctx, out, sizeof raw, raw);
	n += base64_encode_final(&ctx, out + n);
	/* Padding carries nothing and needs quoting in shells and headers. */
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	return 0;
}

void auth_token_hash(const char *token, uint8_t ret_hash[TOKEN_HASH_LEN])
{
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, strlen(token), (const uint8_t *)token);
	sha256_digest(&ctx, TOKEN_HASH_LEN, ret_hash);
}

struct auth {
	struct npsd_db *db;
	pthread_mutex_t lock;
	struct key_row *keys; /* live keys, sorted by hash */
	size_t nkeys;
	int64_t loaded_ms; /* monotonic; 0 = never, or the last reload failed */
	int64_t failed_ms; /* monotonic; when the last reload failed, 0 once one succeeds */
};

struct key_list {
	struct key_row *rows;
	size_t n, cap;
};

static int collect_key(const struct key_row *row, void *arg)
{
	struct key_list *list = arg;
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		struct key_row *rows = realloc(list->rows, cap * sizeof *rows);
		if (!rows)
			return -ENOMEM;
		list->rows = rows;
		list->cap = cap;
	}
	list->rows[list->n++] = *row;
	return 0;
}

static int compare_hash(const void *a, const void *b)
{
	return memcmp(((const struct key_row *)a)->hash, ((const struct key_row *)b)->hash, TOKEN_HASH_LEN);
}

/* Called with the lock held. Returns 0, or a negative errno: then the cache is stale and
 * the next request tries again. The old keys are not used meanwhile: they may hold one
 * revoked since, and a revocation must not wait for storage to recover. */
static int reload(struct auth *auth)
{
	struct key_list list = { 0 };
	struct db_conn *conn = db_reader(auth->db);
	int r = store_key_each(conn, true, collect_key, &list);
	db_reader_put(auth->db, conn);
	if (r != 0) {
		log_warn("auth: cannot reload keys: %s", strerror(-r));
		free(list.rows);
		auth->loaded_ms = 0;
		auth->failed_ms = clock_mono_ms();
		return r < 0 ? r : -EIO;
	}
	auth->loaded_ms = clock_mono_ms();
	auth->failed_ms = 0;
	qsort(list.rows, list.n, sizeof *list.rows, compare_hash);
	free(auth->keys);
	auth->keys = list.rows;
	auth->nkeys = list.n;
	return 0;
}

int auth_new(struct npsd_db *db, struct auth **ret_auth)
{
	struct auth *auth = calloc(1, sizeof *auth);
	if (!auth)
		return -ENOMEM;
	auth->db = db;
	pthread_mutex_init(&auth->lock, NULL);
	*ret_auth = auth;
	return 0;
}

void auth_free(struct auth **auth)
{
	if (!auth || !*auth)
		return;
	pthread_mutex_destroy(&(*auth)->lock);
	free((*auth)->keys);
	free(*auth);
	*auth = NULL;
}

/* Constant time over the whole hash, so timing tells nothing about how much matched. */
static int hash_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;
	for (size_t i = 0; i < TOKEN_HASH_LEN; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}

static const struct key_row *find(const struct auth *auth, const uint8_t *hash)
{
	size_t lo = 0, hi = auth->nkeys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(auth->keys[mid].hash, hash, TOKEN_HASH_LEN);
		if (c == 0)
			return hash_equal(auth->keys[mid].hash, hash) ? &auth->keys[mid] : NULL;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int auth_check(struct auth *auth, const char *token, struct principal *ret)
{
	if (!token || strlen(token) > AUTH_TOKEN_MAX)
		return -EACCES;
	uint8_t hash[TOKEN_HASH_LEN];
	auth_token_hash(token, hash);
	pthread_mutex_lock(&auth->lock);
	int64_t now = clock_mono_ms();
	int r = 0;
	if (auth->failed_ms && now - auth->failed_ms < RETRY_AFTER_FAILURE_MS)
		r = -EIO;
	else if (auth->loaded_ms == 0 || now - auth->loaded_ms >= RELOAD_EVERY_MS)
		r = reload(auth);
	const struct key_row *key = r == 0 ? find(auth, hash) : NULL;
	if (r == 0 && !key) {
		/* Not cached: perhaps a key created since the last reload. One indexed lookup
		 * tells; only a hit pays for a reload, so unknown tokens cannot force reloads. It
		 * runs without the lock: a stream of made-up tokens must not queue every known
		 * one behind its reads. */
		pthread_mutex_unlock(&auth->lock);
		struct db_conn *conn = db_reader(auth->db);
		int live = store_key_live(conn, hash);
		db_reader_put(auth->db, conn);
		pthread_mutex_lock(&auth->lock);
		if (live == 0 && (r = reload(auth)) == 0)
			key = find(auth, hash);
		else if (live < 0 && live != -ENOENT)
			r = live; /* storage trouble is not the client's: no 401 for it */
	}
	if (key) {
		ret->key_id = key->id;
		ret->role = key->role;
		memcpy(ret->name, key->name, sizeof ret->name);
	}
	pthread_mutex_unlock(&auth->lock);
	return r < 0 ? r : key ? 0 : -EACCES;
}
