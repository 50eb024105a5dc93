#ifndef NPSD_AUTH_H
#define NPSD_AUTH_H
#include <stddef.h>
#include <stdint.h>

#include "npsd/db.h"

/* Roles as bits, so a route lists who may call it in one mask. admin may do everything. */
enum role {
	ROLE_INGEST = 1 << 0,
	ROLE_AGENT = 1 << 1,
	ROLE_MANAGER = 1 << 2,
	ROLE_ADMIN = 1 << 3,
};
#define ROLE_ANY (ROLE_INGEST | ROLE_AGENT | ROLE_MANAGER | ROLE_ADMIN)

#define KEY_NAME_MAX 128
#define TOKEN_HASH_LEN 32
/* The longest token auth_check() looks up; a longer one is refused unhashed. */
#define AUTH_TOKEN_MAX 256

/* Who called: copied out of the key cache, so it stays valid after a revocation. */
struct principal {
	int64_t key_id;
	enum role role;
	char name[KEY_NAME_MAX + 1];
};

struct auth; /* the token cache */

/* Returns "ingest" … "admin", or NULL for a value that is not exactly one role. */
const char *role_name(enum role role);
/* 0 and *ret_role for a known role name, else -EINVAL. */
int role_parse(const char *name, enum role *ret_role);

/* A new token, "npsd_" and 43 base64url characters (256 random bits), NUL-terminated in buf
 * of at least 64 bytes. Returns 0 or a negative errno when the system has no randomness. */
int auth_token_generate(char *buf, size_t size);
/* SHA-256 of the token: what the database stores. */
void auth_token_hash(const char *token, uint8_t ret_hash[TOKEN_HASH_LEN]);

/*
 * The cache of API keys. A known token costs a hash and a lookup in memory, not a query:
 * the keys are reloaded from the database once a second, so a revoked one stops within a
 * second. A token not in the cache is looked up in the database, so a new key works at
 * once. Owned by the caller, freed with auth_free().
 */
int auth_new(struct npsd_db *db, struct auth **ret_auth);
void auth_free(struct auth **auth);

/* 0 with *ret filled for a live token; -EACCES for an unknown or revoked one; another
 * negative errno when the keys cannot be read (storage trouble: nothing is let in, not
 * even a key the cache still holds, which may have been revoked since). */
int auth_check(struct auth *auth, const char *token, struct principal *ret);

#endif
