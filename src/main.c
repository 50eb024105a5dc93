/* npsd: the daemon. Thin by design: flags, config, wiring, signals, sd_notify. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "npsd/app.h"
#include "npsd/clock.h"
#include "npsd/deliver.h"
#include "npsd/http.h"
#include "npsd/log.h"
#include "npsd/schedule.h"
#include "npsd/alerts.h"
#include "npsd/offload.h"
#include "npsd/retention.h"
#include "npsd/scheduler.h"
#include "npsd/validate.h"

#define DRAIN_TIMEOUT_MS 10000
#define NPSD_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out, "usage: npsd [--config FILE] [--listen HOST:PORT] [--db PATH] [--port-file FILE]\n"
	             "            [--log-level error|warn|info|debug] [--check-config] [--version]\n"
	             "With no config file npsd runs on built-in defaults (127.0.0.1:8080, ./var/npsd.db).\n");
}

/* Reads a whole PEM file for TLS; the caller frees. NULL with errno set on failure. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 4096) {
			if (cap > (1u << 20)) { /* a PEM file is never this big */
				errno = EFBIG;
				goto fail;
			}
			char *grown = realloc(buf, cap + 8192);
			if (!grown)
				goto fail;
			buf = grown;
			cap += 8192;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	buf[len] = '\0';
	return buf;
fail:
	free(buf);
	fclose(f);
	return NULL;
}

/* The database's folder is made on first start, so `npsd` alone just works. */
static void ensure_parent_dir(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		log_warn("cannot create %s: %s", dir, strerror(errno));
}

static int write_port_file(const char *path, uint16_t port)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path); /* readers never see a half-written file */
}

/* A config replaced by a reload: requests begun before may still read it, so it lives on
 * until exit. Reloads are rare; each costs one config. */
struct retired {
	struct npsd_config *cfg;
	struct retired *next;
};

/*
 * SIGHUP: reads the file again and, when it is valid, puts it in force whole. Options that
 * need a restart keep their running values (and are named in the log); a bad file changes
 * nothing and says why.
 */
static void reload(struct npsd_app *app, const char *config_path, const char *listen, const char *db_path,
                   struct retired **retired)
{
	struct npsd_config *fresh = calloc(1, sizeof *fresh);
	struct retired *old = calloc(1, sizeof *old);
	char *error = NULL;
	char changed[256] = "";
	const struct npsd_config *running = app_config(app);
	if (!fresh || !old)
		goto fail;
	config_defaults(fresh);
	if ((config_path && config_load(fresh, config_path, &error) < 0) ||
	    (listen && config_set_listen(fresh, listen, &error) < 0) ||
	    (db_path && config_set_db_path(fresh, db_path, &error) < 0))
		goto fail;
	int restart = config_reload_merge(fresh, running, changed, sizeof changed);
	if (restart < 0)
		goto fail;
	old->cfg = (struct npsd_config *)(uintptr_t)running;
	old->next = *retired;
	*retired = old;
	ratelimit_set_rate(app->ratelimit, fresh->rate_limit);
	atomic_store(&app->cfg, fresh);
	if (restart > 0)
		log_warn("reload: configuration applied; these need a restart and kept their old values: %s",
		         changed);
	else
		log_info("reload: configuration applied");
	return;
fail:
	log_error("reload: %s; the running configuration stays", error ? error : "out of memory");
	free(error);
	if (fresh) {
		config_free(fresh);
		free(fresh);
	}
	free(old);
}

struct commit_listeners {
	struct scheduler *scheduler;
	struct deliver *deliver;
};

/* Every commit may bring a new deadline or a new outbox row. */
/* The watchdog's question to the writer: a write that changes nothing, answered once the
 * writer and the sync thread have passed it along (no fsync: nothing was written). */
struct liveness {
	struct db_write write;
	atomic_bool answered;
	int64_t asked_ms;
};

static int liveness_apply(struct db_conn *conn, void *arg)
{
	(void)conn;
	(void)arg;
	return 0;
}

static void liveness_done(struct db_write *w)
{
	atomic_store(&((struct liveness *)w)->answered, true);
}

/* Whether to send WATCHDOG=1: only while the storage pipeline moves. A probe still
 * unanswered after half the watchdog interval means a writer that hangs (a wedged disk, a
 * deadlock), and systemd should restart npsd; a main thread that merely woke up is no sign
 * of health. Asks the next question once the last one was answered. */
static bool storage_alive(struct npsd_db *db, struct liveness *probe, uint64_t watchdog_usec)
{
	int64_t now = clock_mono_ms();
	if (!atomic_load(&probe->answered))
		return now - probe->asked_ms < (int64_t)(watchdog_usec / 2000);
	atomic_store(&probe->answered, false);
	probe->asked_ms = now;
	db_submit(db, &probe->write);
	return true;
}

#define TLS_EXPIRY_WARNING_S (14 * 86400)

/* A certificate past or near its end still starts npsd (clients decide what to accept, and a
 * refusal to start would turn a late renewal into an outage), but whoever starts it hears of
 * it. Writes the warning into buf, or returns false when there is none. */
static bool tls_expiry_warning(const struct npsd_config *cfg, int64_t now, char *buf, size_t size)
{
	char at[21];
	if (cfg->tls_cert == NULL || cfg->tls_not_after - now > TLS_EXPIRY_WARNING_S)
		return false;
	snprintf(buf, size, "the TLS certificate %s %s on %s", cfg->tls_cert,
	         cfg->tls_not_after <= now ? "expired" : "expires",
	         time_format_rfc3339(cfg->tls_not_after, at));
	return true;
}

static void on_commit(void *arg)
{
	struct commit_listeners *l = arg;
	scheduler_wake(l->scheduler);
	deliver_wake(l->deliver);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "db", required_argument, NULL, 'd' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *listen = NULL, *db_path = NULL, *port_file = NULL;
	int check_only = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:l:d:p:L:nVh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'd':
			db_path = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'L':
			if (log_set_level(optarg) < 0) {
				fprintf(stderr, "npsd: unknown log level %s\n", optarg);
				return 2;
			}
			break;
		case 'n':
			check_only = 1;
			break;
		case 'V':
			puts("npsd " NPSD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	struct npsd_config cfg = { 0 };
	config_defaults(&cfg);
	char *error = NULL;
	if ((config_path && config_load(&cfg, config_path, &error) < 0) ||
	    (listen && config_set_listen(&cfg, listen, &error) < 0) ||
	    (db_path && config_set_db_path(&cfg, db_path, &error) < 0)) {
		fprintf(stderr, "npsd: %s\n", error ? error : "out of memory");
		free(error);
		config_free(&cfg);
		return 2;
	}
	char warning[256 + 4096]; /* the words around a path of up to 4 KiB */
	bool warn_tls = tls_expiry_warning(&cfg, clock_now(), warning, sizeof warning);
	if (check_only) {
		if (warn_tls)
			fprintf(stderr, "npsd: warning: %s\n", warning);
		puts("configuration OK");
		config_free(&cfg);
		return 0;
	}
	if (schedule_set_timezone(cfg.cb_timezone) < 0) {
		fprintf(stderr, "npsd: cannot use time zone %s\n", cfg.cb_timezone);
		config_free(&cfg);
		return 2;
	}

	/* Signals are taken by sigtimedwait() in this thread; every other thread inherits the
	 * block, so no handler ever runs inside a worker. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A write past a file size limit (systemd's LimitFSIZE=, prlimit) then fails with EFBIG
	 * and gets its 503 like a full disk, instead of the signal's default: killing npsd. */
	signal(SIGXFSZ, SIG_IGN);
	/* glibc trims a thread's arena with madvise() whenever its top grows free, which the
	 * writer's allocation pattern triggers at every batch: measured at a fifth of the
	 * writer's time. Keep up to 16 MiB for reuse instead. */
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);

	int status = 1;
	struct npsd_app app = { 0 };
	atomic_init(&app.cfg, &cfg);
	struct retired *retired = NULL; /* configs replaced by SIGHUP, freed at exit */
	struct http_server *server = NULL;
	struct scheduler *scheduler = NULL;
	struct retention *retention = NULL;
	struct alerts *alerts = NULL;
	struct deliver *deliver = NULL;
	char *tls_cert = NULL, *tls_key = NULL;
	int listen_fd = -1;

	/* Listening comes first: a port that is taken (another npsd, say) stops the start before
	 * this one migrates a database or starts a thread. */
	char *why = NULL;
	int r = http_listen(cfg.listen_host, cfg.listen_port, &listen_fd, &why);
	if (r < 0) {
		log_error("cannot listen on %s:%u: %s", cfg.listen_host, cfg.listen_port,
		          why ? why : strerror(-r));
		free(why);
		goto out;
	}
	ensure_parent_dir(cfg.db_path);
	/* One npsd per database: a second one runs with caches of its own (the webhooks it
	 * sends to, the keys) that the first one's changes never reach; it lost alerts so. */
	r = db_open_flags(cfg.db_path, DB_OPEN_EXCLUSIVE, &app.db, &error);
	if (r == -EWOULDBLOCK && !error) {
		log_error("%s is in use by another npsd: one npsd per database", cfg.db_path);
		goto out;
	}
	if (r < 0) {
		log_error("cannot open the database: %s", error ? error : strerror(-r));
		free(error);
		goto out;
	}
	if (auth_new(app.db, &app.auth) < 0)
		goto out;
	if (ratelimit_new(cfg.rate_limit, &app.ratelimit) < 0)
		goto out;
	r = scheduler_start(app.db, &scheduler);
	if (r < 0) {
		log_error("cannot start the scheduler: %s", strerror(-r));
		goto out;
	}
	r = deliver_start(app.db, &app.cfg, &deliver);
	if (r < 0) {
		log_error("cannot start the delivery thread: %s", strerror(-r));
		goto out;
	}
	r = retention_start(app.db, &app.cfg, &retention);
	if (r < 0) {
		log_error("cannot start the retention thread: %s", strerror(-r));
		goto out;
	}
	r = offload_start(&app.offload);
	if (r < 0) {
		log_error("cannot start the reports threads: %s", strerror(-r));
		goto out;
	}
	r = alerts_start(app.db, &app.cfg, clock_now(), &alerts);
	if (r < 0) {
		log_error("cannot start the alerts thread: %s", strerror(-r));
		goto out;
	}
	struct commit_listeners listeners = { scheduler, deliver };
	db_on_commit(app.db, on_commit, &listeners);
	if (cfg.tls_cert && cfg.tls_key) {
		/* config_load checked that both can be read; this is for a file gone since. */
		const char *failed = NULL;
		if (!(tls_cert = read_file(cfg.tls_cert)))
			failed = cfg.tls_cert;
		else if (!(tls_key = read_file(cfg.tls_key)))
			failed = cfg.tls_key;
		if (failed) {
			log_error("cannot read the TLS file %s: %s", failed, strerror(errno));
			goto out;
		}
	}
	struct http_options http_opt = {
		.listen_fd = listen_fd,
		.threads = cfg.threads,
		.connection_timeout = (unsigned)cfg.connection_timeout,
		.tls_cert_pem = tls_cert,
		.tls_key_pem = tls_key,
	};
	r = http_start(&http_opt, api_routes, &app, &server, &why);
	listen_fd = -1; /* http_start's now */
	if (r < 0) {
		log_error("cannot listen on %s:%u%s: %s", cfg.listen_host, cfg.listen_port,
		          tls_cert ? " (https)" : "", why ? why : strerror(-r));
		free(why);
		goto out;
	}
	log_info("listening on %s:%u (%s), database %s", cfg.listen_host, http_port(server),
	         tls_cert ? "https" : "http", cfg.db_path);
	if (warn_tls)
		log_warn("%s", warning);
	if (port_file && write_port_file(port_file, http_port(server)) < 0)
		log_warn("cannot write the port file %s: %s", port_file, strerror(errno));
	sd_notifyf(0, "READY=1\nSTATUS=listening on port %u", http_port(server));

	uint64_t watchdog_usec = 0;
	int watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
	struct liveness probe = { .write = { .apply = liveness_apply, .done = liveness_done } };
	atomic_init(&probe.answered, true);
	bool storage_failed = false, stalled = false;
	for (;;) {
		/* Wake every second (or at half the watchdog interval, if shorter) to see whether
		 * storage failed and to ping the watchdog. */
		struct timespec wait = { .tv_sec = 1 };
		if (watchdog && watchdog_usec / 2 < 1000000)
			wait = (struct timespec){ .tv_nsec = (long)(watchdog_usec / 2) * 1000 };
		int sig = sigtimedwait(&signals, NULL, &wait);
		if (sig < 0) {
			if (db_broken(app.db)) {
				/* Exit 1: systemd restarts npsd, and SQLite recovers what is on disk. */
				log_error("storage failed: stopping");
				storage_failed = true;
				break;
			}
			/* glibc keeps what a burst of batches took (a batch in memory is about twelve
			 * times its size; RSS stayed near its peak of ~90 MiB): returned here, off the
			 * HTTP threads, once the burst is over. It takes milliseconds, and a thread
			 * allocating meanwhile waits only while its own arena is trimmed. */
			if (http_burst_over(server, clock_mono_ms())) {
				malloc_trim(0);
				log_info("a burst of large bodies is over: their memory is returned");
			}
			if (!watchdog)
				continue;
			bool alive = storage_alive(app.db, &probe, watchdog_usec);
			if (alive)
				sd_notify(0, "WATCHDOG=1");
			else if (!stalled)
				log_error("the writer has not answered for %lld ms: no more watchdog pings",
				          (long long)(clock_mono_ms() - probe.asked_ms));
			stalled = !alive;
			continue;
		}
		if (sig == SIGHUP) {
			/* systemd shows the unit as reloading until READY=1 again; MONOTONIC_USEC ties
			 * the notice to this signal, which Type=notify-reload (systemd 253) asks for. */
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
			           (unsigned long long)now.tv_sec * 1000000ULL +
			                   (unsigned long long)now.tv_nsec / 1000);
			reload(&app, config_path, listen, db_path, &retired);
			sd_notifyf(0, "READY=1\nSTATUS=listening on port %u", http_port(server));
			continue;
		}
		log_info("signal %d: draining and stopping", sig);
		break;
	}
	sd_notify(0, "STOPPING=1");
	app.shutting_down = 1;
	http_quiesce(server);
	unsigned left = http_drain(server, DRAIN_TIMEOUT_MS);
	if (left) {
		/* Those waiting for the writer (a slow disk) are waited for: their writes may still
		 * commit, and systemd's TimeoutStopSec ends a truly stuck process. Those still
		 * sending a body (a stalled client) are cut off. */
		log_warn("%u requests still in flight after %d ms; waiting for those on storage", left,
		         DRAIN_TIMEOUT_MS);
		left = http_finish_handling(server);
		if (left)
			log_warn("closing %u connections still sending a request or reading a reply", left);
	}
	struct db_write_stats ws;
	db_write_stats(app.db, &ws);
	log_info("%llu writes committed in %llu transactions", (unsigned long long)ws.writes,
	         (unsigned long long)ws.batches);
	status = storage_failed ? 1 : 0;
out:
	if (listen_fd >= 0)
		close(listen_fd);
	http_stop(&server);
	offload_stop(&app.offload); /* after: no request waits for it any more */
	if (app.db)
		db_on_commit(app.db, NULL, NULL);
	alerts_stop(&alerts);
	retention_stop(&retention);
	deliver_stop(&deliver); /* its last writes may still wake the scheduler */
	scheduler_stop(&scheduler);
	auth_free(&app.auth);
	ratelimit_free(&app.ratelimit);
	db_close(&app.db);
	free(tls_cert);
	free(tls_key);
	while (retired) {
		struct retired *next = retired->next;
		if (retired->cfg != &cfg) {
			config_free(retired->cfg);
			free(retired->cfg);
		}
		free(retired);
		retired = next;
	}
	if (atomic_load(&app.cfg) != &cfg) {
		struct npsd_config *current = (struct npsd_config *)(uintptr_t)atomic_load(&app.cfg);
		config_free(current);
		free(current);
	}
	config_free(&cfg);
	if (status == 0)
		log_info("stopped");
	return status;
}
