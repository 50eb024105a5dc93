#include "npsd/config.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testcert.h"
#include "testutil.h"

/* Run from the repository root: the sample files are read by relative path. */

static struct npsd_config cfg;
static char conf_path[64];
static char *err;

static void setup(void)
{
	memset(&cfg, 0, sizeof cfg);
	config_defaults(&cfg);
	conf_path[0] = '\0';
	err = NULL;
}

static void teardown(void)
{
	config_free(&cfg);
	free(err);
	err = NULL;
	if (conf_path[0])
		unlink(conf_path);
}

/* Writes text to a fresh temporary file whose name is left in conf_path. */
static const char *write_conf(const char *text)
{
	int fd;
	size_t len = strlen(text);

	if (conf_path[0])
		unlink(conf_path);
	snprintf(conf_path, sizeof conf_path, "/tmp/check_config_XXXXXX");
	fd = mkstemp(conf_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return conf_path;
}

/* Loads text over fresh defaults and expects failure with "PATH:" + expected: the whole
 * message, or with whole false its start (the rest being a library's own words). */
static void expect_failure(const char *text, const char *expected, bool whole)
{
	char want[512];

	config_free(&cfg);
	config_defaults(&cfg);
	write_conf(text);
	ck_assert_int_eq(config_load(&cfg, conf_path, &err), -1);
	ck_assert_ptr_nonnull(err);
	snprintf(want, sizeof want, "%s:%s", conf_path, expected);
	if (whole)
		ck_assert_str_eq(err, want);
	else
		ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\", want \"%s...\"",
		              err, want);
	free(err);
	err = NULL;
}

static void expect_error(const char *text, const char *expected)
{
	expect_failure(text, expected, true);
}

static void expect_ok(const char *text)
{
	config_free(&cfg);
	config_defaults(&cfg);
	write_conf(text);
	if (config_load(&cfg, conf_path, &err) != 0)
		ck_abort_msg("unexpected error: %s", err);
}

/* ---- value parsers ---- */

START_TEST(test_durations)
{
	int64_t s = -7;

	ck_assert_int_eq(config_parse_duration("30s", &s), 0);
	ck_assert_int_eq(s, 30);
	ck_assert_int_eq(config_parse_duration("15m", &s), 0);
	ck_assert_int_eq(s, 900);
	ck_assert_int_eq(config_parse_duration("2h", &s), 0);
	ck_assert_int_eq(s, 7200);
	ck_assert_int_eq(config_parse_duration("1d", &s), 0);
	ck_assert_int_eq(s, 86400);
	ck_assert_int_eq(config_parse_duration("0", &s), 0);
	ck_assert_int_eq(s, 0);
	ck_assert_int_eq(config_parse_duration("0s", &s), 0);
	ck_assert_int_eq(s, 0);
	ck_assert_int_eq(config_parse_duration("365d", &s), 0);
	ck_assert_int_eq(s, 365 * 86400);

	s = 42;
	static const char *const bad[] = {"", "30", "00", "1.5h", "-1s", "+1s", "s", "1w",
					  "1h30m", " 1h", "1h ", "1 h", "1H", "0x10s",
					  "99999999999999999999d"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(config_parse_duration(bad[i], &s) == -1, "accepted \"%s\"", bad[i]);
	ck_assert_int_eq(s, 42); /* untouched on failure */
	ck_assert_int_eq(config_parse_duration(NULL, &s), -1);
}
END_TEST

START_TEST(test_sizes)
{
	size_t b = 7;

	ck_assert_int_eq(config_parse_size("512", &b), 0);
	ck_assert_uint_eq(b, 512);
	ck_assert_int_eq(config_parse_size("64K", &b), 0);
	ck_assert_uint_eq(b, 65536);
	ck_assert_int_eq(config_parse_size("1M", &b), 0);
	ck_assert_uint_eq(b, 1048576);
	ck_assert_int_eq(config_parse_size("1G", &b), 0);
	ck_assert_uint_eq(b, 1073741824);
	ck_assert_int_eq(config_parse_size("2k", &b), 0);
	ck_assert_uint_eq(b, 2048);

	b = 7;
	static const char *const bad[] = {"", "K", "1T", "-1", "1.5M", "1MB", " 1M", "1 M",
					  "99999999999999999999",
					  /* 2^64 and one GiB past it, which wrapped to 0 and 1G */
					  "17179869184G", "17179869185G", "999999999999G"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(config_parse_size(bad[i], &b) == -1, "accepted \"%s\"", bad[i]);
	ck_assert_uint_eq(b, 7);
}
END_TEST

START_TEST(test_duration_lists)
{
	int64_t list[CONFIG_MAX_STEPS];
	size_t n = 99;

	ck_assert_int_eq(config_parse_durations("30m, 2h, 1d", list, CONFIG_MAX_STEPS, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(list[0], 1800);
	ck_assert_int_eq(list[1], 7200);
	ck_assert_int_eq(list[2], 86400);
	ck_assert_int_eq(config_parse_durations("5s", list, CONFIG_MAX_STEPS, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(config_parse_durations("1s,2s,3s", list, CONFIG_MAX_STEPS, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(config_parse_durations("", list, CONFIG_MAX_STEPS, &n), 0);
	ck_assert_uint_eq(n, 0);

	n = 99;
	ck_assert_int_eq(config_parse_durations("30m,,2h", list, CONFIG_MAX_STEPS, &n), -1);
	ck_assert_int_eq(config_parse_durations("30m, 2h,", list, CONFIG_MAX_STEPS, &n), -1);
	ck_assert_int_eq(config_parse_durations(", 2h", list, CONFIG_MAX_STEPS, &n), -1);
	ck_assert_int_eq(config_parse_durations("30m, soon", list, CONFIG_MAX_STEPS, &n), -1);
	ck_assert_int_eq(config_parse_durations("1s,2s,3s", list, 2, &n), -1);
	ck_assert_int_eq(config_parse_durations(
				 "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s", list,
				 CONFIG_MAX_STEPS, &n),
			 -1);
	ck_assert_uint_eq(n, 99);
}
END_TEST

START_TEST(test_hours_good)
{
	struct opening_hours h;

	ck_assert_int_eq(config_parse_hours("mon-fri 08:00-20:00, sat 09:00-13:00", &h), 0);
	ck_assert(!h.always);
	ck_assert_uint_eq(h.nwindows[0], 0); /* Sunday */
	for (int d = 1; d <= 5; d++) {
		ck_assert_uint_eq(h.nwindows[d], 1);
		ck_assert_uint_eq(h.windows[d][0].open_min, 8 * 60);
		ck_assert_uint_eq(h.windows[d][0].close_min, 20 * 60);
	}
	ck_assert_uint_eq(h.nwindows[6], 1);
	ck_assert_uint_eq(h.windows[6][0].open_min, 9 * 60);
	ck_assert_uint_eq(h.windows[6][0].close_min, 13 * 60);

	ck_assert_int_eq(config_parse_hours("always", &h), 0);
	ck_assert(h.always);
	ck_assert_int_eq(config_parse_hours("Always", &h), 0);
	ck_assert(h.always);

	/* Several windows a day, given out of order, come back sorted. */
	ck_assert_int_eq(config_parse_hours("mon 13:00-17:00, mon 08:00-12:00, Tue 00:00-24:00", &h),
			 0);
	ck_assert(!h.always);
	ck_assert_uint_eq(h.nwindows[1], 2);
	ck_assert_uint_eq(h.windows[1][0].open_min, 480);
	ck_assert_uint_eq(h.windows[1][1].open_min, 780);
	ck_assert_uint_eq(h.nwindows[2], 1);
	ck_assert_uint_eq(h.windows[2][0].close_min, 1440);

	/* Adjacent windows do not overlap; four a day is the most. */
	ck_assert_int_eq(config_parse_hours("sun 08:00-09:00, sun 09:00-10:00, sun 11:00-12:00, "
					    "sun 23:00-24:00",
					    &h),
			 0);
	ck_assert_uint_eq(h.nwindows[0], 4);
	ck_assert_int_eq(config_parse_hours("sat-sun 10:00-16:00", &h), 0);
	ck_assert_uint_eq(h.nwindows[6], 1);
	ck_assert_uint_eq(h.nwindows[0], 1);
	ck_assert_uint_eq(h.nwindows[5], 0);
}
END_TEST

START_TEST(test_hours_bad)
{
	struct opening_hours h;
	static const char *const bad[] = {
		"",
		"  ",
		"never",
		"mon-fri",
		"08:00-20:00",
		"mon-fri 8:00-20:00",
		"mon-fri 08:00 - 20:00",
		"mon-fri 08.00-20.00",
		"mon-fri 20:00-08:00",   /* past midnight */
		"mon 10:00-10:00",       /* empty */
		"fri-mon 08:00-10:00",   /* wraps past Sunday */
		"sun-mon 08:00-10:00",
		"xyz 08:00-10:00",
		"monday 08:00-10:00",
		"mon- 08:00-10:00",
		"mon 08:00-25:00",
		"mon 08:60-09:00",
		"mon 24:00-24:00",
		"mon 08:00-24:01",
		"mon 08:00-12:00, mon 11:00-13:00", /* overlap */
		"mon-fri 08:00-20:00, wed 12:00-13:00",
		"mon 01:00-02:00, mon 03:00-04:00, mon 05:00-06:00, mon 07:00-08:00, mon 09:00-10:00",
		"always, mon 08:00-10:00",
		"mon 08:00-10:00, always",
		"mon 08:00-10:00,",
		"mon 08:00-10:00,, tue 08:00-10:00",
	};

	memset(&h, 0x5a, sizeof h);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(config_parse_hours(bad[i], &h) == -1, "accepted \"%s\"", bad[i]);
	ck_assert_uint_eq(h.nwindows[0], 0x5a); /* untouched on failure */
}
END_TEST

START_TEST(test_holidays)
{
	struct civil_date d[CONFIG_MAX_HOLIDAYS];
	size_t n = 99;

	ck_assert_int_eq(config_parse_dates("2026-12-25, 2026-12-26", d, CONFIG_MAX_HOLIDAYS, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(d[0].year, 2026);
	ck_assert_int_eq(d[0].month, 12);
	ck_assert_int_eq(d[0].day, 25);
	ck_assert_int_eq(d[1].day, 26);
	ck_assert_int_eq(config_parse_dates("", d, CONFIG_MAX_HOLIDAYS, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* Leap days: every 4 years, not every 100, again every 400. */
	ck_assert_int_eq(config_parse_dates("2024-02-29,2000-02-29", d, CONFIG_MAX_HOLIDAYS, &n), 0);
	ck_assert_uint_eq(n, 2);
	/* The same day twice counts once. */
	ck_assert_int_eq(config_parse_dates("2026-01-01, 2026-01-01", d, CONFIG_MAX_HOLIDAYS, &n), 0);
	ck_assert_uint_eq(n, 1);

	n = 99;
	static const char *const bad[] = {"2026-02-29", "2100-02-29", "2026-13-01", "2026-00-10",
					  "2026-04-31", "2026-01-00", "2026-01-32", "26-12-25",
					  "2026-1-5", "2026/12/25", "2026-12-25x", "1899-12-31",
					  "2026-12-25,,2026-12-26", "christmas"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(config_parse_dates(bad[i], d, CONFIG_MAX_HOLIDAYS, &n) == -1,
			      "accepted \"%s\"", bad[i]);
	ck_assert_int_eq(config_parse_dates("2026-01-01, 2026-01-02, 2026-01-03", d, 2, &n), -1);
	ck_assert_uint_eq(n, 99);
}
END_TEST

START_TEST(test_timezone)
{
	ck_assert(config_timezone_valid("Europe/Amsterdam"));
	ck_assert(config_timezone_valid("UTC"));
	ck_assert(config_timezone_valid("America/Argentina/Buenos_Aires"));
	ck_assert(config_timezone_valid("Etc/GMT+1"));
	ck_assert(!config_timezone_valid(NULL));
	ck_assert(!config_timezone_valid(""));
	ck_assert(!config_timezone_valid("Europe/Nowhere"));
	ck_assert(!config_timezone_valid("Europe"));   /* a directory */
	ck_assert(!config_timezone_valid("zone.tab")); /* a table, not a zone */
	ck_assert(!config_timezone_valid("../../../etc/passwd"));
	ck_assert(!config_timezone_valid("Europe/../UTC"));
	ck_assert(!config_timezone_valid("/usr/share/zoneinfo/UTC"));
	ck_assert(!config_timezone_valid("Europe/Amsterdam "));
}
END_TEST

START_TEST(test_listen)
{
	ck_assert_int_eq(config_set_listen(&cfg, "[::1]:9090", &err), 0);
	ck_assert_str_eq(cfg.listen_host, "::1");
	ck_assert_uint_eq(cfg.listen_port, 9090);
	ck_assert_int_eq(config_set_listen(&cfg, "0.0.0.0:0", &err), 0);
	ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
	ck_assert_uint_eq(cfg.listen_port, 0);
	ck_assert_int_eq(config_set_listen(&cfg, ":8081", &err), 0);
	ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
	ck_assert_uint_eq(cfg.listen_port, 8081);
	ck_assert_int_eq(config_set_listen(&cfg, "localhost:8082", &err), 0);
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen_port, 8082);

	static const char *const bad[] = {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
					  "127.0.0.1:http", "::1:8080", "[::1]8080", "[nope]:80",
					  "example.com:80", "300.1.1.1:80", "127.0.0.1:-1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(config_set_listen(&cfg, bad[i], &err) == -1, "accepted \"%s\"",
			      bad[i]);
		ck_assert_ptr_nonnull(err);
		free(err);
		err = NULL;
	}
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen_port, 8082);
	ck_assert_int_eq(config_set_listen(&cfg, "::1:8080", &err), -1);
	ck_assert_str_eq(err, "--listen: an IPv6 address goes in brackets: [::1]:8080");
	free(err);
	err = NULL;

	ck_assert_int_eq(config_set_db_path(&cfg, "/tmp/x.db", &err), 0);
	ck_assert_str_eq(cfg.db_path, "/tmp/x.db");
	/* An empty --db says so; it is not a silent fall back to the default path. */
	ck_assert_int_eq(config_set_db_path(&cfg, "", &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err, "--db: ", 6) == 0, "the error does not name --db: %s", err);
	ck_assert_str_eq(cfg.db_path, "/tmp/x.db");
}
END_TEST

/* ---- defaults and files ---- */

START_TEST(test_defaults)
{
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen_port, 8080);
	ck_assert_uint_eq(cfg.threads, 0);
	ck_assert_uint_eq(cfg.max_body, 1024 * 1024);
	ck_assert_ptr_null(cfg.public_url);
	ck_assert_ptr_null(cfg.tls_cert);
	ck_assert_ptr_null(cfg.tls_key);
	ck_assert_int_eq(cfg.connection_timeout, 30);
	ck_assert(cfg.rate_limit == 0);
	ck_assert_str_eq(cfg.db_path, "./var/npsd.db");
	ck_assert_int_eq(cfg.cb_max_score, 8);
	ck_assert_str_eq(cfg.cb_timezone, "Europe/Amsterdam");
	ck_assert(!cfg.cb_hours.always);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[1], 1);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[6], 1);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[0], 0);
	ck_assert_uint_eq(cfg.cb_nholidays, 0);
	ck_assert_int_eq(cfg.cb_sla, 3600);
	ck_assert_int_eq(cfg.cb_lease, 900);
	ck_assert_uint_eq(cfg.cb_nretry, 3);
	ck_assert_int_eq(cfg.cb_retry[2], 86400);
	ck_assert_int_eq(cfg.cb_max_attempts, 3);
	ck_assert_int_eq(cfg.cb_cooldown, 0);
	ck_assert_int_eq(cfg.wh_timeout, 10);
	ck_assert_uint_eq(cfg.wh_nretry, 9);
	ck_assert_int_eq(cfg.wh_retry[0], 5);
	ck_assert_int_eq(cfg.wh_retry[8], 12 * 3600);
	ck_assert_int_eq(cfg.wh_disable_after, 72 * 3600);
	ck_assert(!cfg.wh_allow_private_targets);
	ck_assert_ptr_null(cfg.wh_proxy);
	ck_assert_int_eq(cfg.alerts_silence_after, 7200);
	ck_assert_int_eq(cfg.alerts_window, 7 * 86400);
	ck_assert(cfg.alerts_nps_drop == 15);
	ck_assert_int_eq(cfg.alerts_min_responses, 30);
	ck_assert_int_eq(cfg.retention_days, 730);
}
END_TEST

START_TEST(test_sample_file)
{
	if (config_load(&cfg, "etc/npsd.conf", &err) != 0)
		ck_abort_msg("etc/npsd.conf: %s", err);
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen_port, 8080);
	ck_assert_str_eq(cfg.db_path, "/var/lib/npsd/npsd.db");
	ck_assert_ptr_null(cfg.public_url);
	ck_assert_ptr_null(cfg.tls_cert);
	ck_assert_uint_eq(cfg.cb_nholidays, 2);
	ck_assert_int_eq(cfg.cb_holidays[1].day, 26);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[5], 1);
	ck_assert_uint_eq(cfg.wh_nretry, 9);
	ck_assert(!cfg.wh_allow_private_targets);
	ck_assert_ptr_null(cfg.wh_proxy);
	ck_assert_int_eq(cfg.retention_days, 730);
}
END_TEST

START_TEST(test_dev_file)
{
	if (config_load(&cfg, "etc/npsd.dev.conf", &err) != 0)
		ck_abort_msg("etc/npsd.dev.conf: %s", err);
	ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg.listen_port, 8080);
	ck_assert_str_eq(cfg.db_path, "./var/npsd.db");
	ck_assert(cfg.cb_hours.always);
	ck_assert_int_eq(cfg.cb_sla, 3600);
}
END_TEST

/* Two certificate pairs, a garbage file and an encrypted key in a folder of their own. */
static char tls_dir[64];
static char tls_cert_a[96], tls_key_a[96], tls_cert_b[96], tls_key_b[96], tls_garbage[96],
        tls_key_locked[96], tls_cert_locked[96];

static void tls_setup(void)
{
	setup();
	snprintf(tls_dir, sizeof tls_dir, "/tmp/check_config_tls_XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tls_dir));
	snprintf(tls_cert_a, sizeof tls_cert_a, "%s/a.crt", tls_dir);
	snprintf(tls_key_a, sizeof tls_key_a, "%s/a.key", tls_dir);
	snprintf(tls_cert_b, sizeof tls_cert_b, "%s/b.crt", tls_dir);
	snprintf(tls_key_b, sizeof tls_key_b, "%s/b.key", tls_dir);
	snprintf(tls_cert_locked, sizeof tls_cert_locked, "%s/locked.crt", tls_dir);
	snprintf(tls_key_locked, sizeof tls_key_locked, "%s/locked.key", tls_dir);
	snprintf(tls_garbage, sizeof tls_garbage, "%s/garbage.pem", tls_dir);
	ck_assert_int_eq(testcert_write(tls_cert_a, tls_key_a, NULL), 0);
	ck_assert_int_eq(testcert_write(tls_cert_b, tls_key_b, NULL), 0);
	ck_assert_int_eq(testcert_write(tls_cert_locked, tls_key_locked, "secret"), 0);
	FILE *f = fopen(tls_garbage, "w");
	ck_assert_ptr_nonnull(f);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
	fclose(f);
}

static void tls_teardown(void)
{
	const char *files[] = { tls_cert_a,      tls_key_a,      tls_cert_b, tls_key_b,
		                tls_cert_locked, tls_key_locked, tls_garbage };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		unlink(files[i]);
	rmdir(tls_dir);
	teardown();
}

START_TEST(test_full_file)
{
	char text[2048];
	snprintf(text, sizeof text,
		  "; every kind of value\n"
		  "[server]\n"
		  "listen = [::1]:0\n"
		  "threads = 4 ; inline comment\n"
		  "max_body = 64K\n"
		  "public_url = https://nps.example.com/\n"
		  "tls_cert = %s\n"
		  "tls_key = %s\n"
		  "connection_timeout = 1m\n"
		  "rate_limit = 2.5\n"
		  "\n"
		  "[database]\n"
		  "path = /tmp/npsd-test.db\n"
		  "[callbacks]\n"
		  "max_score = 6\n"
		  "timezone = UTC\n"
		  "# hash comments too\n"
		  "hours = mon-fri 08:00-12:00, mon-fri 13:00-17:00 ; lunch closed\n"
		  "holidays = 2026-01-01, 2026-04-05,\n"
		  "           2026-12-25 ; a continued list\n"
		  "\t2026-12-26\n"
		  "sla = 2h\n"
		  "lease = 5m\n"
		  "retry = 10m,1h\n"
		  "max_attempts = 5\n"
		  "cooldown = 30d\n"
		  "[webhooks]\n"
		  "  timeout = 5s\n"
		  "retry = 1s\n"
		  "disable_after = 1d\n"
		  "allow_private_targets = yes\n"
		  "proxy = http://proxy.example.com:3128/\n"
		  "[alerts]\n"
		  "silence_after = 0\n"
		  "window = 1d\n"
		  "nps_drop = 7.5\n"
		  "min_responses = 10\n"
		  "[retention]\n"
		  "days = 365\n",
		  tls_cert_a, tls_key_a);
	expect_ok(text);
	ck_assert_str_eq(cfg.listen_host, "::1");
	ck_assert_uint_eq(cfg.listen_port, 0);
	ck_assert_uint_eq(cfg.threads, 4);
	ck_assert_uint_eq(cfg.max_body, 65536);
	ck_assert_str_eq(cfg.public_url, "https://nps.example.com");
	ck_assert_str_eq(cfg.tls_cert, tls_cert_a);
	ck_assert_str_eq(cfg.tls_key, tls_key_a);
	ck_assert_int_eq(cfg.connection_timeout, 60);
	ck_assert(cfg.rate_limit == 2.5);
	ck_assert_str_eq(cfg.db_path, "/tmp/npsd-test.db");
	ck_assert_int_eq(cfg.cb_max_score, 6);
	ck_assert_str_eq(cfg.cb_timezone, "UTC");
	ck_assert_uint_eq(cfg.cb_hours.nwindows[3], 2);
	ck_assert_uint_eq(cfg.cb_hours.windows[3][1].open_min, 13 * 60);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[6], 0);
	ck_assert_uint_eq(cfg.cb_nholidays, 4);
	ck_assert_int_eq(cfg.cb_holidays[3].month, 12);
	ck_assert_int_eq(cfg.cb_holidays[3].day, 26);
	ck_assert_int_eq(cfg.cb_sla, 7200);
	ck_assert_int_eq(cfg.cb_lease, 300);
	ck_assert_uint_eq(cfg.cb_nretry, 2);
	ck_assert_int_eq(cfg.cb_retry[1], 3600);
	ck_assert_int_eq(cfg.cb_max_attempts, 5);
	ck_assert_int_eq(cfg.cb_cooldown, 30 * 86400);
	ck_assert_int_eq(cfg.wh_timeout, 5);
	ck_assert_uint_eq(cfg.wh_nretry, 1);
	ck_assert_int_eq(cfg.wh_disable_after, 86400);
	ck_assert(cfg.wh_allow_private_targets);
	ck_assert_str_eq(cfg.wh_proxy, "http://proxy.example.com:3128");
	ck_assert_int_eq(cfg.alerts_silence_after, 0);
	ck_assert_int_eq(cfg.alerts_window, 86400);
	ck_assert(cfg.alerts_nps_drop == 7.5);
	ck_assert_int_eq(cfg.alerts_min_responses, 10);
	ck_assert_int_eq(cfg.retention_days, 365);
}
END_TEST

START_TEST(test_empty_file_keeps_defaults)
{
	expect_ok("");
	ck_assert_uint_eq(cfg.listen_port, 8080);
	expect_ok("; nothing but a comment\n\n[server]\n");
	ck_assert_str_eq(cfg.db_path, "./var/npsd.db");
}
END_TEST

START_TEST(test_inline_comments)
{
	expect_ok("[server]\n"
		  "threads = 0              ; 0 = one per core\n"
		  "public_url =             ; base URL for links in alerts\n"
		  "rate_limit = 3\t; a tab before ';' works too\n");
	ck_assert_uint_eq(cfg.threads, 0);
	ck_assert_ptr_null(cfg.public_url);
	ck_assert(cfg.rate_limit == 3);
}
END_TEST

START_TEST(test_inline_comment_needs_space)
{
	/* inih only takes ';' after a blank as a comment, so this is a bad number. */
	expect_error("[server]\nthreads = 3;four\n", "2: threads: not a whole number");
}
END_TEST

START_TEST(test_bad_value_message)
{
	expect_error("[server]\n"
		     "listen = 127.0.0.1:8080\n"
		     "\n"
		     "[callbacks]\n"
		     "max_score = 8\n"
		     "timezone = Europe/Amsterdam\n"
		     "hours = always\n"
		     "; the next lines are fine too\n"
		     "lease = 15m\n"
		     "retry = 30m, 2h, 1d\n"
		     "max_attempts = 3\n"
		     "sla = soon\n"
		     "cooldown = 0\n",
		     "12: sla: not a duration (use 30s, 15m, 2h, 1d)");
}
END_TEST

START_TEST(test_bad_values)
{
	expect_error("[callbacks]\nsla = 10s\n", "2: sla: must be from 1m to 30d");
	expect_error("[callbacks]\nlease = 2d\n", "2: lease: must be from 1m to 1d");
	expect_error("[server]\nconnection_timeout = 0\n",
		     "2: connection_timeout: must be from 1s to 1h");
	expect_error("[server]\nthreads = 257\n", "2: threads: must be from 0 to 256");
	expect_error("[server]\nthreads = -1\n", "2: threads: not a whole number");
	expect_error("[server]\nmax_body = 512\n", "2: max_body: must be from 1K to 1G");
	expect_error("[server]\nmax_body = 1T\n", "2: max_body: not a size (use 512, 64K, 1M, 1G)");
	expect_error("[server]\nrate_limit = -1\n", "2: rate_limit: not a number (e.g. 15 or 2.5)");
	expect_error("[server]\nlisten = 8080\n",
		     "2: listen: not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080, :8080)");
	expect_error("[server]\npublic_url = nps.example.com\n",
		     "2: public_url: not an http:// or https:// URL");
	expect_error("[database]\npath =\n", "2: path: must not be empty");
	expect_error("[callbacks]\nmax_score = 11\n", "2: max_score: must be from 0 to 10");
	expect_error("[callbacks]\nmax_attempts = 0\n", "2: max_attempts: must be from 1 to 20");
	expect_error("[callbacks]\ntimezone = Mars/Olympus\n",
		     "2: timezone: Mars/Olympus is not a time zone in /usr/share/zoneinfo (e.g. "
		     "Europe/Amsterdam)");
	expect_error("[callbacks]\nhours = fri-mon 08:00-12:00\n",
		     "2: hours: \"fri-mon 08:00-12:00\": a day range runs forward from mon to sun "
		     "(write fri-sun, mon as two items)");
	expect_error("[callbacks]\nhours =\n",
		     "2: hours: empty: use always, or e.g. mon-fri 08:00-20:00, sat 09:00-13:00");
	expect_error("[callbacks]\nholidays = 2026-02-29\n",
		     "2: holidays: 2026-02-29 is not a date (use YYYY-MM-DD, a day that exists)");
	expect_error("[callbacks]\nretry =\n", "2: retry: needs 1 to 16 steps (e.g. 30m, 2h, 1d)");
	expect_error("[callbacks]\nretry = 30m, 0\n",
		     "2: retry: each step must be from 1s to 30d");
	expect_error("[webhooks]\nallow_private_targets = maybe\n",
		     "2: allow_private_targets: not a boolean (use true or false)");
	expect_error("[webhooks]\nproxy = socks5h://proxy:1080\n",
		     "2: proxy: not an http:// or https:// URL");
	expect_error("[alerts]\nnps_drop = 201\n", "2: nps_drop: must be from 0 to 200");
	expect_error("[alerts]\nmin_responses = 0\n", "2: min_responses: must be from 1 to 1000000");
	expect_error("[retention]\ndays = 36501\n", "2: days: must be from 1 to 36500");
}
END_TEST

START_TEST(test_unknown_key)
{
	expect_error("[server]\nlisten = 127.0.0.1:8080\nport = 80\n",
		     "3: port: unknown key in [server]");
	/* A key from another section is unknown here too. */
	expect_error("[server]\nsla = 1h\n", "2: sla: unknown key in [server]");
	expect_error("threads = 2\n", "1: threads: outside of any [section]");
}
END_TEST

START_TEST(test_unknown_section)
{
	expect_error("[server]\nthreads = 1\n\n[sever]\nthreads = 2\n",
		     "4: [sever]: unknown section (known: server, database, callbacks, webhooks, "
		     "alerts, retention)");
	/* Even when it is empty. */
	expect_error("[server]\n[metrics]\n",
		     "2: [metrics]: unknown section (known: server, database, callbacks, webhooks, "
		     "alerts, retention)");
}
END_TEST

START_TEST(test_syntax_errors)
{
	expect_error("[server]\nthreads 4\n", "2: threads: no '=': write threads = VALUE");
	expect_error("[server]\nthreads\n", "2: threads: no '=': write threads = VALUE");
	expect_error("[server\nthreads = 4\n",
		     "1: syntax error: expected [section], key = value or a comment");
	/* A syntax error before a bad value is the one reported. */
	expect_error("[server]\njunk\nthreads = x\n", "2: junk: no '=': write junk = VALUE");
	expect_error("[server]\nthreads = 2\nthreads = 3\n", "3: threads: already set on line 2");
	expect_error("[server]\n  4\n", "2: indented line with no key above it to continue");
	expect_error("[server]\nthreads = 2\n  4\n",
		     "3: threads: only a list (hours, holidays, retry) may go on over an indented line");
}
END_TEST

START_TEST(test_long_line)
{
	char text[400], line[300];

	/* 198 characters and the newline fit inih's 200-byte buffer; one more does not. */
	memset(line, 'x', sizeof line);
	memcpy(line, "public_url = http://", 20);
	line[198] = '\0';
	snprintf(text, sizeof text, "[server]\n%s\n", line);
	expect_ok(text);
	ck_assert_uint_eq(strlen(cfg.public_url), 198 - 13);
	line[198] = 'x';
	line[199] = '\0';
	snprintf(text, sizeof text, "[server]\n%s\n", line);
	expect_error(text, "2: public_url: line longer than 198 characters (a list may go on over "
			   "indented lines)");
	/* SPEC: a bad config's message names the file, the line and the key; a list's
	 * continuation line names the list it continues. */
	memcpy(line, "  2027-01-01, ", 14);
	snprintf(text, sizeof text, "[callbacks]\nholidays = 2026-12-25,\n%s\n", line);
	expect_error(text, "3: holidays: line longer than 198 characters (a list may go on over "
			   "indented lines)");
	memset(line, ';', 199);
	snprintf(text, sizeof text, "[server]\n%s\n", line);
	expect_error(text, "2: line longer than 198 characters (a list may go on over indented "
			   "lines)");
}
END_TEST

/* A continuation line's inline comment may hold an '=' (a link with a query): the line still
 * continues its list, as read_line takes it, and the error names that list. */
START_TEST(test_long_line_with_a_comment)
{
	char text[400], line[300];

	memset(line, 'x', sizeof line);
	static const char start[] = "  2027-01-01 ; https://example.org/holidays?year=2027&x=";
	memcpy(line, start, sizeof start - 1);
	line[199] = '\0';
	snprintf(text, sizeof text, "[callbacks]\nholidays = 2026-12-25,\n%s\n", line);
	expect_error(text, "3: holidays: line longer than 198 characters (a list may go on over "
			   "indented lines)");
}
END_TEST

START_TEST(test_continued_hours)
{
	expect_ok("[callbacks]\n"
		  "hours = mon-fri 08:00-12:00,\n"
		  "        mon-fri 13:00-20:00\n"
		  "        sat 09:00-13:00\n");
	ck_assert_uint_eq(cfg.cb_hours.nwindows[1], 2);
	ck_assert_uint_eq(cfg.cb_hours.nwindows[6], 1);
	expect_error("[callbacks]\n"
		     "hours = mon-fri 08:00-12:00\n"
		     "        mon 11:00-13:00\n",
		     "3: hours: \"mon 11:00-13:00\" overlaps 08:00-12:00 on mon");
}
END_TEST

START_TEST(test_tls_pairing)
{
	expect_error("[server]\ntls_cert = /etc/npsd/cert.pem\n",
		     "2: tls_cert: set without tls_key (HTTPS needs both, plain HTTP neither)");
	expect_error("[server]\nthreads = 1\ntls_key = /etc/npsd/key.pem\n",
		     "3: tls_key: set without tls_cert (HTTPS needs both, plain HTTP neither)");
	expect_error("[server]\ntls_cert = /c.pem\ntls_key =\n",
		     "2: tls_cert: set without tls_key (HTTPS needs both, plain HTTP neither)");
	/* Both set, one missing: named with its line, before the start. */
	expect_error("[server]\ntls_cert = /dev/null\nthreads = 1\ntls_key = /nonexistent/npsd-key.pem\n",
		     "4: tls_key: cannot read /nonexistent/npsd-key.pem: No such file or directory");
}
END_TEST

/* "[server]\ntls_cert = CERT\nthreads = 1\ntls_key = KEY\n": the cert on line 2, the key
 * on line 4. */
static void expect_tls_error(const char *cert, const char *key, const char *expected)
{
	char text[512];
	snprintf(text, sizeof text, "[server]\ntls_cert = %s\nthreads = 1\ntls_key = %s\n", cert,
	         key);
	expect_failure(text, expected, false);
}

START_TEST(test_tls_files)
{
	char text[512], want[512];

	snprintf(text, sizeof text, "[server]\ntls_cert = %s\ntls_key = %s\n", tls_cert_a,
	         tls_key_a);
	expect_ok(text);
	ck_assert_str_eq(cfg.tls_cert, tls_cert_a);
	/* testcert_write makes it valid for a day from now. */
	int64_t day_ahead = (int64_t)time(NULL) + 86400;
	ck_assert_int_le(cfg.tls_not_after, day_ahead);
	ck_assert_int_ge(cfg.tls_not_after, day_ahead - 60);

	/* A pair that libmicrohttpd would refuse at start is refused here, by file and line. */
	snprintf(want, sizeof want,
	         "2: tls_cert: %s holds no PEM certificate that can be read (Base64", tls_garbage);
	expect_tls_error(tls_garbage, tls_key_a, want);
	snprintf(want, sizeof want, "2: tls_cert: %s holds no PEM certificate that can be read",
	         tls_key_a);
	expect_tls_error(tls_key_a, tls_cert_a, want); /* the two swapped */
	snprintf(want, sizeof want, "4: tls_key: %s holds no PEM private key that can be read",
	         tls_cert_a);
	expect_tls_error(tls_cert_a, tls_cert_a, want);
	snprintf(want, sizeof want, "4: tls_key: %s is not the key of the certificate in %s",
	         tls_key_b, tls_cert_a);
	expect_tls_error(tls_cert_a, tls_key_b, want);
	snprintf(want, sizeof want,
	         "4: tls_key: %s is encrypted; npsd needs the key without a password",
	         tls_key_locked);
	expect_tls_error(tls_cert_locked, tls_key_locked, want);
	/* An empty file is no certificate either. */
	expect_tls_error("/dev/null", tls_key_a,
	                 "2: tls_cert: /dev/null holds no PEM certificate that can be read");
}
END_TEST

START_TEST(test_cannot_open)
{
	ck_assert_int_eq(config_load(&cfg, "/nonexistent/npsd.conf", &err), -1);
	ck_assert_str_eq(err, "/nonexistent/npsd.conf: cannot open: No such file or directory");
}
END_TEST

START_TEST(test_reload_merge)
{
	struct npsd_config fresh;
	char changed[128];

	memset(&fresh, 0, sizeof fresh);
	config_defaults(&fresh);
	ck_assert_int_eq(config_reload_merge(&fresh, &cfg, changed, sizeof changed), 0);
	ck_assert_str_eq(changed, "");

	ck_assert_int_eq(config_set_listen(&fresh, "127.0.0.1:9999", &err), 0);
	ck_assert_int_eq(config_set_db_path(&fresh, "/tmp/other.db", &err), 0);
	fresh.cb_max_score = 5;
	fresh.threads = 3;
	fresh.wh_proxy = strdup("http://proxy:3128");
	ck_assert_int_eq(config_reload_merge(&fresh, &cfg, changed, sizeof changed), 3);
	ck_assert_str_eq(changed, "server.listen, server.threads, database.path");
	ck_assert_uint_eq(fresh.listen_port, 8080);
	ck_assert_uint_eq(fresh.threads, 0);
	ck_assert_str_eq(fresh.db_path, "./var/npsd.db");
	ck_assert_int_eq(fresh.cb_max_score, 5); /* reloadable: kept */
	ck_assert_str_eq(fresh.wh_proxy, "http://proxy:3128");
	config_free(&fresh);
	config_free(&fresh); /* a zeroed config frees fine */
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *parsers = tcase_create("parsers");
	TCase *files = tcase_create("files");

	tcase_add_checked_fixture(parsers, setup, teardown);
	tcase_add_test(parsers, test_durations);
	tcase_add_test(parsers, test_sizes);
	tcase_add_test(parsers, test_duration_lists);
	tcase_add_test(parsers, test_hours_good);
	tcase_add_test(parsers, test_hours_bad);
	tcase_add_test(parsers, test_holidays);
	tcase_add_test(parsers, test_timezone);
	tcase_add_test(parsers, test_listen);
	suite_add_tcase(s, parsers);

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_add_test(files, test_defaults);
	tcase_add_test(files, test_sample_file);
	tcase_add_test(files, test_dev_file);
	tcase_add_test(files, test_empty_file_keeps_defaults);
	tcase_add_test(files, test_inline_comments);
	tcase_add_test(files, test_inline_comment_needs_space);
	tcase_add_test(files, test_bad_value_message);
	tcase_add_test(files, test_bad_values);
	tcase_add_test(files, test_unknown_key);
	tcase_add_test(files, test_unknown_section);
	tcase_add_test(files, test_syntax_errors);
	tcase_add_test(files, test_long_line);
	tcase_add_test(files, test_long_line_with_a_comment);
	tcase_add_test(files, test_continued_hours);
	tcase_add_test(files, test_tls_pairing);
	TCase *tls = tcase_create("tls");
	tcase_add_checked_fixture(tls, tls_setup, tls_teardown);
	tcase_add_test(tls, test_full_file);
	tcase_add_test(tls, test_tls_files);
	suite_add_tcase(s, tls);
	tcase_add_test(files, test_cannot_open);
	tcase_add_test(files, test_reload_merge);
	suite_add_tcase(s, files);
	return s;
}

int main(void)
{
	return run_suite(config_suite());
}
