/* npsctl: the admin CLI, over the same library as the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npsd/auth.h"
#include "npsd/callbacks.h"
#include "npsd/clock.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/log.h"
#include "npsd/migrations.h"
#include "npsd/retention.h"
#include "npsd/store.h"
#include "npsd/validate.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: npsctl [--db PATH | --config FILE] COMMAND\n"
	             "  key create --role ingest|agent|manager|admin --name NAME   prints the new token\n"
	             "  key list                                                 id, role, name, dates\n"
	             "  key revoke ID\n"
	             "  backup PATH                    a consistent copy of the database, while npsd runs\n"
	             "  purge [--older-than 730d]      retention (default: the config's retention.days)\n"
	             "  erase --customer ID            every row about one customer (right to erasure)\n"
	             "  migrate                        apply the schema's migrations (npsd stopped)\n");
}

/* A key command, parsed and checked before the database is opened: a mistake in the
 * arguments must not leave a new, empty database behind. */
struct key_command {
	enum { KEY_CREATE, KEY_LIST, KEY_REVOKE } action;
	const char *role_text, *name; /* create */
	enum role role;
	int64_t id;   /* revoke: the key; create: the new key's */
	int released; /* revoke: its calls in progress, returned to the queue */
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
		const char **slot = opt == 'r' ? &kc->role_text : opt == 'n' ? &kc->name : NULL;
		if (!slot)
			return 2;
		/* The last would win without a word: "--role agent ... --role admin" from a
		 * command line pasted together made an admin key. */
		if (*slot) {
			fprintf(stderr, "npsctl: --%s given twice\n", opt == 'r' ? "role" : "name");
			return 2;
		}
		*slot = optarg;
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

/* Why a command failed, for whoever runs it, where db_strerror's words say too little.
 * -EBUSY is SQLite's write lock, kept by npsd (a slow disk, a long write) or another npsctl
 * past the wait: "Device or resource busy" says neither what is busy nor what to do.
 * -ENOTRECOVERABLE is a commit whose sync failed: what that means for the change. */
static const char *why(int r)
{
	static char busy[96];
	switch (r) {
	case -EBUSY:
		snprintf(busy, sizeof busy,
		         "npsd (or another npsctl) kept the database locked for %d s; try again",
		         DB_BUSY_TIMEOUT_MS / 1000);
		return busy;
	case -ENOTRECOVERABLE:
		return "the disk failed while the change was written: it may or may not have been stored";
	default:
		return db_strerror(r);
	}
}

/* why(r), and SQLite's own words for it (db_last_error) when there are any. */
static void print_failure(const char *what, int r, const char *sqlite_why)
{
	fprintf(stderr, "npsctl: %s: %s%s%s\n", what, why(r), sqlite_why && *sqlite_why ? ": " : "",
	        sqlite_why ? sqlite_why : "");
}

static int apply_key_revoke(struct db_conn *conn, void *arg);

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
	if (r == -ENOTRECOVERABLE && kc->id > 0) {
		/* Committed, not known to be on disk: the key may be live after all, under a token
		 * no one was shown. "cannot store the key" left it there without a word. */
		fprintf(stderr,
		        "npsctl: key %lld (%s, %s) may or may not have been stored, the disk failed while "
		        "it was written; its token is not shown: once the disk is fixed, revoke key %lld "
		        "if key list shows it with that name, and create another\n",
		        (long long)kc->id, kc->role_text, kc->name, (long long)kc->id);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot store the key: %s\n", why(r));
		return 1;
	}
	fprintf(stderr, "created key %lld (%s, %s); the token is shown once:\n", (long long)kc->id,
	        kc->role_text, kc->name);
	printf("%s\n", token);
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	/* A token that never reached stdout (a full disk behind the redirect, a closed stdout)
	 * is a live key that nobody holds: take it back, or it waits there for whoever finds
	 * a way to read what was lost. */
	int err = errno;
	r = db_write_sync(db, apply_key_revoke, kc);
	if (r < 0)
		fprintf(stderr,
		        "npsctl: cannot print the token: %s; key %lld could not be revoked (%s): revoke it "
		        "with key revoke %lld\n",
		        strerror(err), (long long)kc->id, why(r), (long long)kc->id);
	else
		fprintf(stderr, "npsctl: cannot print the token: %s; key %lld is revoked, create another\n",
		        strerror(err), (long long)kc->id);
	return 1;
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
	if (r < 0)
		fprintf(stderr, "npsctl: cannot read the keys: %s\n", why(r));
	return r < 0 ? 1 : 0;
}

static int apply_key_revoke(struct db_conn *conn, void *arg)
{
	struct key_command *kc = arg;
	int64_t now = clock_now();
	int r = store_key_revoke(conn, kc->id, now);
	if (r < 0)
		return r;
	r = callbacks_release_key(conn, kc->id, now);
	if (r < 0)
		return r;
	kc->released = r;
	return 0;
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
	if (r == -ENOTRECOVERABLE) {
		/* Not "cannot revoke": the revocation was committed and may well hold. */
		fprintf(stderr,
		        "npsctl: the revocation of key %lld may or may not have taken, the disk failed "
		        "while it was written: run it again\n",
		        (long long)kc->id);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot revoke: %s\n", why(r));
		return 1;
	}
	fprintf(stderr, "revoked key %lld", (long long)kc->id);
	if (kc->released)
		fprintf(stderr, "; its %d call%s in progress went back to the queue", kc->released,
		        kc->released == 1 ? "" : "s");
	fprintf(stderr, "\n");
	return 0;
}

/* What `npsctl` was asked to do, checked before the database is opened. */
struct command {
	enum { CMD_KEY, CMD_BACKUP, CMD_PURGE, CMD_ERASE, CMD_MIGRATE } kind;
	struct key_command key;
	const char *backup_path;
	int64_t older_than; /* purge: seconds; 0 = the config's retention.days */
	const char *customer_id;
};

/* Options of purge and erase: --NAME VALUE, each at most once. */
static int parse_option(int argc, char **argv, const char *name, const char **ret)
{
	if (argc != 3 || strcmp(argv[1], name) != 0)
		return -1;
	*ret = argv[2];
	return 0;
}

/* argv[0] is the command. Returns 0, or 2 after printing what is wrong. */
static int parse_command(int argc, char **argv, struct command *ret)
{
	*ret = (struct command){ 0 };
	if (strcmp(argv[0], "key") == 0) {
		ret->kind = CMD_KEY;
		return parse_key_command(argc, argv, &ret->key);
	}
	if (strcmp(argv[0], "backup") == 0 && argc == 2 && argv[1][0]) {
		ret->kind = CMD_BACKUP;
		ret->backup_path = argv[1];
		return 0;
	}
	if (strcmp(argv[0], "migrate") == 0 && argc == 1) {
		ret->kind = CMD_MIGRATE;
		return 0;
	}
	const char *value;
	if (strcmp(argv[0], "purge") == 0 &&
	    (argc == 1 || parse_option(argc, argv, "--older-than", &value) == 0)) {
		ret->kind = CMD_PURGE;
		if (argc == 1)
			return 0;
		/* Bounded like retention.days, in whole days at least: a day keeps the alerts still
		 * being retried (the default retry steps span a day), and a typo of many digits
		 * must not wrap the cutoff. */
		if (config_parse_duration(value, &ret->older_than) < 0 || ret->older_than < 86400 ||
		    ret->older_than > 36500 * INT64_C(86400)) {
			fprintf(stderr, "npsctl: --older-than takes a duration in s, m, h or d, such as 730d "
			                "(1d to 36500d)\n");
			return 2;
		}
		return 0;
	}
	if (strcmp(argv[0], "erase") == 0 && parse_option(argc, argv, "--customer", &value) == 0) {
		ret->kind = CMD_ERASE;
		if (!valid_name(value, ID_MAX_CHARS)) {
			fprintf(stderr,
			        "npsctl: --customer takes a customer id: 1 to %d characters of UTF-8\n",
			        ID_MAX_CHARS);
			return 2;
		}
		ret->customer_id = value;
		return 0;
	}
	usage(stderr);
	return 2;
}

static int backup(struct npsd_db *db, const char *path)
{
	char *error = NULL;
	int r = db_backup(db, path, &error);
	if (r < 0) {
		fprintf(stderr, "npsctl: backup failed: %s\n", error ? error : why(r));
		free(error);
		return 1;
	}
	fprintf(stderr, "backup written to %s\n", path);
	return 0;
}

/* Only a warning: the rows themselves are gone. */
static void warn_wal_copies(const char *db_path, const char *what, int r)
{
	fprintf(stderr,
	        "npsctl: warning: the %s rows are gone from the database, but older copies "
	        "may stay in %s-wal (%s) until npsd reuses it or stops, or a later purge "
	        "truncates it\n",
	        what, db_path, db_strerror(r));
}

/* Rids the WAL of older copies of what was just deleted (retention_truncate_wal); only
 * warns when npsd keeps it busy. */
static void truncate_wal(struct npsd_db *db, const char *db_path, const char *what)
{
	int r = retention_truncate_wal(db, NULL);
	if (r < 0)
		warn_wal_copies(db_path, what, r);
}

static void print_counts(const char *what, const struct purge_counts *c)
{
	fprintf(stderr,
	        "%s %lld answers, %lld callbacks (%lld improvements, %lld call events), %lld customers, "
	        "%lld events (%lld deliveries, %lld attempts)",
	        what, (long long)c->surveys, (long long)c->callbacks, (long long)c->improvements,
	        (long long)c->callback_events, (long long)c->customers, (long long)c->events,
	        (long long)c->deliveries, (long long)c->attempts);
	if (c->customers_kept_do_not_call)
		fprintf(stderr, "; %lld do-not-call customers kept for their mark, contact details cleared",
		        (long long)c->customers_kept_do_not_call);
	fprintf(stderr, "\n");
}

static int purge(struct npsd_db *db, const char *db_path, int64_t older_than)
{
	int64_t cutoff = clock_now() - older_than;
	char at[21];
	fprintf(stderr, "purging what is older than %s\n", time_format_rfc3339(cutoff, at));
	struct purge_report p;
	int r = retention_purge(db, cutoff, NULL, &p);
	if (r < 0) {
		print_counts("purged before the failure:", &p.total);
		/* Said as such, not as not purged: it was committed, the disk may still hold it. */
		if (!purge_counts_zero(&p.in_doubt))
			print_counts("may or may not have been purged, the disk failed while their batch "
			             "was written:",
			             &p.in_doubt);
		print_failure(r == -ENOTRECOVERABLE ? "purge failed; run it again" : "purge failed", r,
		              p.why);
	} else {
		print_counts("purged", &p.total);
	}
	/* Also when it found nothing: a run again is how the copies an earlier one could not get
	 * rid of go. */
	if (r == 0 || retention_truncation_helps(r, &p.total))
		truncate_wal(db, db_path, "purged");
	else if (!purge_counts_zero(&p.total))
		warn_wal_copies(db_path, "purged", r);
	return r < 0 ? 1 : 0;
}

struct erase_job {
	const char *customer_id;
	char *customer_id_json;
	struct purge_counts counts;
	char why[DB_WHY_LEN];
};

static int apply_erase(struct db_conn *conn, void *arg)
{
	struct erase_job *job = arg;
	job->counts = (struct purge_counts){ 0 };
	int r = store_erase_customer(conn, job->customer_id, job->customer_id_json, &job->counts);
	if (r < 0)
		db_last_error(conn, job->why, sizeof job->why);
	return r;
}

static int erase(struct npsd_db *db, const char *db_path, const char *customer_id)
{
	json_t *id = json_string(customer_id);
	struct erase_job job = { .customer_id = customer_id,
		                 .customer_id_json = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL };
	json_decref(id);
	if (!job.customer_id_json) {
		fprintf(stderr, "npsctl: out of memory\n");
		return 1;
	}
	int r = db_write_sync(db, apply_erase, &job);
	free(job.customer_id_json);
	if (r == -ENOTRECOVERABLE) {
		/* Committed, but not known to be on disk: neither erased nor not. why()'s "it may or
		 * may not have been stored" read as if the customer's rows might have been. */
		fprintf(stderr, "npsctl: erase failed; run it again: the disk failed while the erase was "
		                "written: it may or may not have taken\n");
		return 1;
	}
	if (r < 0) {
		print_failure("erase failed, nothing was erased", r, job.why);
		return 1;
	}
	/* A mistyped id must not pass for a request carried out. Still the WAL is truncated, as
	 * a purge that finds nothing does: a run again after an erase whose sync failed (it
	 * took, and stopped before the truncation) finds nothing, and this is how the copies of
	 * the customer's rows that run left in the WAL go. */
	if (purge_counts_zero(&job.counts)) {
		fprintf(stderr, "npsctl: nothing about customer %s: no such customer (or erased before)\n",
		        customer_id);
		truncate_wal(db, db_path, "erased");
		return 1;
	}
	print_counts("erased", &job.counts);
	truncate_wal(db, db_path, "erased");
	return 0;
}

/* db_open has migrated by now (every command does, when no npsd holds the database): this
 * only says what it did, so that an upgrade can migrate before it starts the new npsd. */
static int migrate(struct npsd_db *db)
{
	int found, now;
	db_schema_versions(db, &found, &now);
	if (found == now) {
		fprintf(stderr, "the schema is current (version %d): no migration to apply\n", now);
		return 0;
	}
	for (size_t i = 0; i < migrations_count; i++)
		if (migrations[i].version > found && migrations[i].version <= now)
			fprintf(stderr, "applied migration %s\n", migrations[i].name);
	fprintf(stderr, "the schema is at version %d (it was at %d)\n", now, found);
	return 0;
}

int main(int argc, char **argv)
{
	/* A backup past a file-size limit (ulimit -f, systemd's LimitFSIZE=) then fails with
	 * EFBIG, says so and removes its .partial, instead of the signal's default: killed,
	 * without a word, the .partial left behind. */
	signal(SIGXFSZ, SIG_IGN);
	/* A token written into a pipe whose reader is gone (`key create | tool` where tool
	 * failed) must fail the write, not kill npsctl before it revokes the key nobody holds. */
	signal(SIGPIPE, SIG_IGN);
	/* Started with stdout or stderr closed (`>&-`), a file opened later could take
	 * descriptor 1 or 2 (SQLite keeps its own above 2, the WAL's descriptor for its sync
	 * does not), and a token printed "to stdout" would be written into it. /dev/null
	 * read-only holds each slot: a write to it fails, and the command says so. */
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDONLY) != fd)
			return 1;
	const char *db_path = NULL, *config_path = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char **slot = strcmp(argv[i], "--db") == 0       ? &db_path
		                    : strcmp(argv[i], "--config") == 0 ? &config_path
		                                                       : NULL;
		if (slot && (i + 1 >= argc || *slot)) {
			fprintf(stderr, "npsctl: %s %s\n", argv[i], *slot ? "given twice" : "takes a path");
			return 2;
		}
		if (slot)
			*slot = argv[++i];
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "npsctl: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "npsctl: no command\n");
		usage(stderr);
		return 2;
	}
	struct command cmd;
	if (parse_command(argc - i, argv + i, &cmd) != 0)
		return 2;
	struct key_command *kc = &cmd.key;
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
	bool creates = cmd.kind == CMD_KEY && kc->action == KEY_CREATE;
	if (!creates && access(cfg.db_path, F_OK) < 0) {
		fprintf(stderr, "npsctl: no database at %s: %s\n", cfg.db_path, strerror(errno));
		goto out;
	}
	int r = db_open(cfg.db_path, &db, &error);
	if (r < 0) {
		fprintf(stderr, "npsctl: cannot open %s: %s\n", cfg.db_path, error ? error : strerror(-r));
		free(error);
		goto out;
	}
	switch (cmd.kind) {
	case CMD_KEY:
		status = kc->action == KEY_CREATE ? key_create(db, kc)
		         : kc->action == KEY_LIST ? key_list(db)
		                                  : key_revoke(db, kc);
		break;
	case CMD_BACKUP:
		status = backup(db, cmd.backup_path);
		break;
	case CMD_PURGE:
		status = purge(db, cfg.db_path,
		               cmd.older_than ? cmd.older_than : (int64_t)cfg.retention_days * 86400);
		break;
	case CMD_ERASE:
		status = erase(db, cfg.db_path, cmd.customer_id);
		break;
	case CMD_MIGRATE:
		status = migrate(db);
		break;
	}
out:
	db_close(&db);
	config_free(&cfg);
	/* A list or a token cut short by a full disk is a failure, not a success. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (status == 0)
			fprintf(stderr, "npsctl: cannot write to stdout: %s\n", strerror(errno));
		status = status ? status : 1;
	}
	return status;
}
