/* The key cache: a token works at once, a revoked one within a second, and nothing is let
 * in on keys that cannot be read. */
#include <check.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npsd/auth.h"
#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/store.h"

#include "testutil.h"

static char dir[64];
static char path[128];
static struct npsd_db *db;

static void setup(void)
{
	db = open_test_db("auth", dir, path);
}

static void teardown(void)
{
	db_close(&db);
	remove_db_folder(dir, path);
}

struct new_key {
	const char *token, *name;
	enum role role;
};

static int insert_key(struct db_conn *conn, void *arg)
{
	const struct new_key *k = arg;
	uint8_t hash[TOKEN_HASH_LEN];
	auth_token_hash(k->token, hash);
	int64_t id;
	return store_key_insert(conn, k->name, k->role, hash, 1, &id);
}

static int exec_sql(struct db_conn *conn, void *arg)
{
	return sqlite3_exec(db_handle(conn), arg, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

START_TEST(known_unknown_and_new_tokens)
{
	struct new_key k = { "tk_agent_one", "agent one", ROLE_AGENT };
	ck_assert_int_eq(db_write_sync(db, insert_key, &k), 0);
	struct auth *auth = NULL;
	ck_assert_int_eq(auth_new(db, &auth), 0);
	struct principal p;
	ck_assert_int_eq(auth_check(auth, "tk_agent_one", &p), 0);
	ck_assert_int_eq(p.role, ROLE_AGENT);
	ck_assert_str_eq(p.name, "agent one");
	ck_assert_int_eq(auth_check(auth, "tk_nobody", &p), -EACCES);
	ck_assert_int_eq(auth_check(auth, NULL, &p), -EACCES);
	/* Created after the cache was loaded: works at once. */
	struct new_key k2 = { "tk_manager", "boss", ROLE_MANAGER };
	ck_assert_int_eq(db_write_sync(db, insert_key, &k2), 0);
	ck_assert_int_eq(auth_check(auth, "tk_manager", &p), 0);
	ck_assert_int_eq(p.role, ROLE_MANAGER);
	auth_free(&auth);
	ck_assert_ptr_null(auth);
	auth_free(&auth);
}
END_TEST

/* Keys that cannot be read let nobody in, not even a key still in the cache: it may have
 * been revoked meanwhile. Once they can be read again, requests work a moment later. */
START_TEST(unreadable_keys_let_nobody_in)
{
	struct new_key k = { "tk_agent_two", "agent two", ROLE_AGENT };
	ck_assert_int_eq(db_write_sync(db, insert_key, &k), 0);
	struct auth *auth = NULL;
	ck_assert_int_eq(auth_new(db, &auth), 0);
	struct principal p;
	ck_assert_int_eq(auth_check(auth, "tk_agent_two", &p), 0);

	char away[] = "ALTER TABLE api_keys RENAME TO api_keys_away";
	char back[] = "ALTER TABLE api_keys_away RENAME TO api_keys";
	ck_assert_int_eq(db_write_sync(db, exec_sql, away), 0);
	usleep(1100 * 1000); /* past the cache's reload interval */
	int r = auth_check(auth, "tk_agent_two", &p);
	ck_assert_msg(r < 0 && r != -EACCES, "a cached key while the keys cannot be read: %d", r);
	r = auth_check(auth, "tk_nobody", &p);
	ck_assert_msg(r < 0 && r != -EACCES, "an unknown key while the keys cannot be read: %d", r);

	ck_assert_int_eq(db_write_sync(db, exec_sql, back), 0);
	/* Not at once: a failed reload is not tried again by every request that comes in. */
	r = auth_check(auth, "tk_agent_two", &p);
	ck_assert_msg(r < 0 && r != -EACCES, "right after a failed reload: %d", r);
	usleep(300 * 1000);
	ck_assert_int_eq(auth_check(auth, "tk_agent_two", &p), 0);
	ck_assert_int_eq(auth_check(auth, "tk_nobody", &p), -EACCES);
	auth_free(&auth);
}
END_TEST

int main(void)
{
	log_set_level("error"); /* the failed reloads warn, on purpose */
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("key cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, known_unknown_and_new_tokens);
	tcase_add_test(tc, unreadable_keys_let_nobody_in);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
