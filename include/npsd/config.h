#ifndef NPSD_CONFIG_H
#define NPSD_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every option of SPEC.md's Configuration section, parsed and validated at start, even the
 * ones a later module uses. Durations are whole seconds. Strings are owned by the config and
 * freed by config_free().
 */

#define CONFIG_MAX_STEPS 16 /* retry schedules */
#define CONFIG_MAX_HOLIDAYS 128
#define HOURS_MAX_WINDOWS 4 /* opening windows per weekday */

/* Weekly opening hours; minutes since local midnight, close exclusive, open < close. */
struct hours_window {
	uint16_t open_min;
	uint16_t close_min;
};
struct opening_hours {
	bool always;
	uint8_t nwindows[7]; /* index = tm_wday: 0 Sunday .. 6 Saturday */
	struct hours_window windows[7][HOURS_MAX_WINDOWS];
};

struct civil_date {
	int year, month, day;
};

struct npsd_config {
	/* [server] */
	char *listen_host;        /* "127.0.0.1" or "::1" (brackets stripped) */
	uint16_t listen_port;     /* 0 = ephemeral */
	unsigned threads;         /* 0 = one per core */
	size_t max_body;          /* bytes */
	char *public_url;         /* NULL when empty */
	char *tls_cert, *tls_key; /* NULL when empty */
	int64_t tls_not_after;    /* the certificate's end of validity (unix s), read at load; 0
	                           * without TLS or with CONFIG_NO_FILES */
	int64_t connection_timeout;
	double rate_limit; /* requests/s per token; 0 = off */
	/* [database] */
	char *db_path;
	/* [callbacks] */
	int cb_max_score;
	char *cb_timezone;
	struct opening_hours cb_hours;
	struct civil_date cb_holidays[CONFIG_MAX_HOLIDAYS];
	size_t cb_nholidays;
	int64_t cb_sla, cb_lease;
	int64_t cb_retry[CONFIG_MAX_STEPS];
	size_t cb_nretry;
	int cb_max_attempts;
	int64_t cb_cooldown; /* 0 = off */
	/* [webhooks] */
	int64_t wh_timeout;
	int64_t wh_retry[CONFIG_MAX_STEPS];
	size_t wh_nretry;
	int64_t wh_disable_after;
	bool wh_allow_private_targets;
	char *wh_proxy; /* NULL when empty: deliveries connect to their targets themselves */
	/* [alerts] */
	int64_t alerts_silence_after, alerts_window;
	double alerts_nps_drop;
	int alerts_min_responses;
	/* [retention] */
	int retention_days;
};

/* Fills cfg with the built-in defaults (SPEC: 127.0.0.1:8080, ./var/npsd.db, ...).
 * cfg must be zeroed or freed before; the strings it gets are owned by cfg. */
void config_defaults(struct npsd_config *cfg);

/*
 * Reads the INI file at path over the values already in cfg (call config_defaults first).
 * Returns 0, or -1 with *ret_error set to a malloc'ed "FILE:LINE: key: what is wrong" that
 * the caller frees (for a file that cannot be opened: "FILE: cannot open: reason").
 * Unknown sections and keys are errors. On failure cfg holds a mix and must only be freed.
 */
int config_load(struct npsd_config *cfg, const char *path, char **ret_error);

/* config_load's flags. CONFIG_NO_FILES: the files the config names (the TLS pair) are not
 * read or checked. For npsctl, which needs none of them and may run where they cannot be
 * read: a key handed to the service by systemd's LoadCredential= exists only while the
 * service runs. */
#define CONFIG_NO_FILES 1u
int config_load_flags(struct npsd_config *cfg, const char *path, unsigned flags, char **ret_error);

/* The --listen and --db flags: "HOST:PORT", "[v6]:PORT" or ":PORT"; a database path.
 * Each returns 0, or -1 with *ret_error malloc'ed ("--db: ..."), for the caller to free. */
int config_set_listen(struct npsd_config *cfg, const char *hostport, char **ret_error);
int config_set_db_path(struct npsd_config *cfg, const char *path, char **ret_error);

/* Frees every string and zeroes cfg; a zeroed cfg is fine. */
void config_free(struct npsd_config *cfg);

/*
 * For SIGHUP: fresh was just loaded (with the same --listen/--db overrides applied as at
 * start), running is the config in use. Copies every option that needs a restart (listen,
 * threads, tls_cert, tls_key, connection_timeout, database.path, callbacks.timezone) from
 * running into fresh, so fresh can replace running as a whole. Writes the "section.key"
 * names of those that differed, comma-separated, into changed (size bytes, truncated; may
 * be NULL) for the caller to log. Returns how many differed, or -1 when out of memory
 * (fresh must then only be freed).
 */
int config_reload_merge(struct npsd_config *fresh, const struct npsd_config *running, char *changed,
                        size_t size);

/* Parsers, exposed for reuse and tests. Each returns 0 on success or -1, writing the
 * ret_* only on success. */
int config_parse_duration(const char *text, int64_t *ret_seconds); /* "30s" "15m" "2h" "1d" "0" */
int config_parse_size(const char *text, size_t *ret_bytes);        /* "512", "64K", "1M", "1G" */
int config_parse_durations(const char *text, int64_t *ret_list, size_t max, size_t *ret_n);
int config_parse_hours(const char *text,
                       struct opening_hours *ret); /* "always" or "mon-fri 08:00-20:00, sat 09:00-13:00" */
int config_parse_dates(const char *text, struct civil_date *ret_list, size_t max, size_t *ret_n);
bool config_timezone_valid(const char *tz); /* an IANA name found under /usr/share/zoneinfo */

#endif
