/* npsctl: the admin CLI, over the same library as the daemon. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npsd/auth.h"
#include "npsd/clock.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/store.h"
#include "npsd/validate.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: npsctl [--db PATH | --config FILE] COMMAND\n"
	             "  key create --role ingest|agent|manager|admin --name NAME   prints the new token\n"
	             "  key list                                                 id, role, name, dates\n"
	             "  key revoke ID\n");
}

/* A key command, parsed and checked before the database is opened: a mistake in the
 * arguments must not leave a new, empty database behind. */
struct key_command {
	enum { KEY_CREATE, KEY_LIST, KEY_REVOKE } action;
	const char *role_text, *name; /* create */
	enum role role;
	int64_t id; /* revoke: the key; create: the new key's */
	uint8_t hash[TOKEN_HASH_LEN];
};

static int parse_create(int argc, char **argv, struct key_command *kc)
{
	static const struct option options[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "r:n:", options, NULL)) != -1) {
		if (opt == 'r')
			kc->role_text = optarg;
		else if (opt == 'n')
			kc->name = optarg;
		else
			return 2;
	}
	if (optind < argc) {
		/* "--name John Smith" would otherwise make a key named John. */
		fprintf(stderr, "npsctl: unexpected argument '%s' (quote a name with spaces)\n",
		        argv[optind]);
		return 2;
	}
	if (!kc->role_text || role_parse(kc->role_text, &kc->role) < 0) {
		fprintf(stderr, "npsctl: --role must be one of ingest, agent, manager, admin\n");
		return 2;
	}
	/* The name is shown in answers (a survey's source, a callback's claimed_by) and in JSON,
	 * which must be UTF-8. KEY_NAME_MAX bytes hold at most that many characters. */
	if (!kc->name || strlen(kc->name) > KEY_NAME_MAX || !valid_name(kc->name, KEY_NAME_MAX)) {
		fprintf(stderr, "npsctl: --name must be 1 to %d bytes of UTF-8 without control characters\n",
		        KEY_NAME_MAX);
		return 2;
	}
	return 0;
}

/* argv[0] is "key". Returns 0, or 2 after printing what is wrong. */
static int parse_key_command(int argc, char **argv, struct key_command *ret)
{
	*ret = (struct key_command){ 0 };
	if (argc >= 2 && strcmp(argv[1], "create") == 0) {
		ret->action = KEY_CREATE;
		return parse_create(argc - 1, argv + 1, ret);
	}
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		ret->action = KEY_LIST;
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "revoke") == 0) {
		ret->action = KEY_REVOKE;
		char *end;
		errno = 0;
		ret->id = strtoll(argv[2], &end, 10);
		if (errno || *end || ret->id <= 0) {
			fprintf(stderr, "npsctl: key revoke takes a key id (see key list)\n");
			return 2;
		}
		return 0;
	}
	usage(stderr);
	return 2;
}

static int apply_key_create(struct db_conn *conn, void *arg)
{
	struct key_command *kc = arg;
	return store_key_insert(conn, kc->name, kc->role, kc->hash, clock_now(), &kc->id);
}

static int key_create(struct npsd_db *db, struct key_command *kc)
{
	char token[64];
	if (auth_token_generate(token, sizeof token) < 0) {
		fprintf(stderr, "npsctl: no randomness available\n");
		return 1;
	}
	auth_token_hash(token, kc->hash);
	int r = db_write_sync(db, apply_key_create, kc);
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot store the key: %s\n", strerror(-r));
		return 1;
	}
	fprintf(stderr, "created key %lld (%s, %s); the token is shown once:\n", (long long)kc->id,
	        kc->role_text, kc->name);
	printf("%s\n", token);
	return 0;
}

static int print_key(const struct key_row *row, void *arg)
{
	(void)arg;
	char created[21], revoked[21];
	printf("%-6lld %-8s %-25s %s %s\n", (long long)row->id, role_name(row->role), row->name,
	       time_format_rfc3339(row->created_at, created),
	       row->revoked_at ? time_format_rfc3339(row->revoked_at, revoked) : "live");
	return 0;
}

static int key_list(struct npsd_db *db)
{
	printf("%-6s %-8s %-25s %-20s %s\n", "ID", "ROLE", "NAME", "CREATED", "REVOKED");
	struct db_conn *conn = db_reader(db);
	int r = store_key_each(conn, false, print_key, NULL);
	db_reader_put(db, conn);
	return r < 0 ? 1 : 0;
}

static int apply_key_revoke(struct db_conn *conn, void *arg)
{
	const struct key_command *kc = arg;
	return store_key_revoke(conn, kc->id, clock_now());
}

static int key_revoke(struct npsd_db *db, struct key_command *kc)
{
	int r = db_write_sync(db, apply_key_revoke, kc);
	if (r == -ENOENT) {
		fprintf(stderr, "npsctl: no key %lld\n", (long long)kc->id);
		return 1;
	}
	if (r == -EALREADY) {
		fprintf(stderr, "npsctl: key %lld was already revoked\n", (long long)kc->id);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot revoke: %s\n", strerror(-r));
		return 1;
	}
	fprintf(stderr, "revoked key %lld\n", (long long)kc->id);
	return 0;
}

int main(int argc, char **argv)
{
	const char *db_path = NULL, *config_path = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			db_path = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc || strcmp(argv[i], "key") != 0) {
		usage(stderr);
		return 2;
	}
	struct key_command kc;
	if (parse_key_command(argc - i, argv + i, &kc) != 0)
		return 2;
	log_set_level("warn"); /* stdout carries the answer; only trouble goes to stderr */
	struct npsd_config cfg = { 0 };
	config_defaults(&cfg);
	char *error = NULL;
	if ((config_path && config_load_flags(&cfg, config_path, CONFIG_NO_FILES, &error) < 0) ||
	    (db_path && config_set_db_path(&cfg, db_path, &error) < 0)) {
		fprintf(stderr, "npsctl: %s\n", error ? error : "out of memory");
		free(error);
		config_free(&cfg);
		return 2;
	}
	struct npsd_db *db = NULL;
	int status = 1;
	/* Only the first key of a new install may create the database: a mistyped --db for
	 * anything else would answer from an empty database made on the spot. */
	if (kc.action != KEY_CREATE && access(cfg.db_path, F_OK) < 0) {
		fprintf(stderr, "npsctl: no database at %s: %s\n", cfg.db_path, strerror(errno));
		goto out;
	}
	int r = db_open(cfg.db_path, &db, &error);
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot open %s: %s\n", cfg.db_path, error ? error : strerror(-r));
		free(error);
		goto out;
	}
	status = kc.action == KEY_CREATE ? key_create(db, &kc)
	         : kc.action == KEY_LIST ? key_list(db)
	                                 : key_revoke(db, &kc);
out:
	db_close(&db);
	config_free(&cfg);
	return status;
}
