#include "npsd/alerts.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npsd/clock.h"
#include "npsd/digests.h"
#include "npsd/log.h"
#include "npsd/outbox.h"
#include "npsd/schedule.h"
#include "npsd/store.h"
#include "npsd/validate.h"

#define LOOK_MS 1000
#define FAKE_CLOCK_LOOK_MS 100 /* a test's clock jumps */
#define NPS_LOOK_EVERY_S 600
#define OPEN_TIME_TOLD_MAX (31 * 86400)
#define DIGEST_LOOK_EVERY_S 10
#define TOUCHPOINTS_MAX 1000 /* watched per look; touchpoints are a handful in practice */

bool alerts_silence_due(int64_t open_silence, int64_t silence_after, bool open, int64_t since,
                        int64_t alerted_for)
{
	return silence_after > 0 && open && open_silence >= silence_after && alerted_for != since;
}

bool alerts_nps_dropped(const struct nps_counts *previous, const struct nps_counts *current, double drop,
                        int min_responses)
{
	return nps_responses(previous) >= min_responses && nps_responses(current) >= min_responses &&
	       nps_value(previous) - nps_value(current) > drop;
}

/* A touchpoint's figures in the two windows, and when its drop was last announced. */
struct watched {
	char touchpoint[65];
	struct nps_counts previous, current;
	int64_t announced_at; /* 0: not in the last window */
};

struct alerts {
	struct npsd_db *db;
	_Atomic(const struct npsd_config *) *cfg;
	int64_t start_time;
	bool fake_clock;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	atomic_bool stopping;
	int64_t silence_announced_for; /* the last answer's time the silence was announced for */
	int64_t next_nps_look;
	int64_t next_digest_look;
	struct watched *watched;
	size_t nwatched;
};

struct emit {
	const char *type;
	json_t *data; /* stolen by the write */
	struct event_facts facts;
	int64_t now;
};

static int apply_emit(struct db_conn *conn, void *arg)
{
	struct emit *e = arg;
	json_t *data = e->data;
	e->data = NULL;
	return outbox_emit(conn, e->type, data, e->facts, e->now);
}

static int emit(struct alerts *a, const char *type, json_t *data, struct event_facts facts, int64_t now)
{
	struct emit e = { type, data, facts, now };
	int r = db_write_sync(a->db, apply_emit, &e);
	json_decref(e.data); /* when the write never ran */
	if (r < 0)
		log_warn("alerts: cannot write %s: %s", type, strerror(-r));
	return r;
}

static int apply_wanted(struct db_conn *conn, void *arg)
{
	bool *wanted = arg;
	*wanted = outbox_wanted(conn, "loop.nps_drop");
	return 0;
}

static void look_at_silence(struct alerts *a, const struct npsd_config *cfg, int64_t now)
{
	if (cfg->alerts_silence_after == 0)
		return;
	bool open = schedule_is_open(&cfg->cb_hours, cfg->cb_holidays, cfg->cb_nholidays, now);
	if (!open)
		return;
	int64_t last_answer = 0;
	struct db_conn *conn = db_reader(a->db);
	int r = store_newest_answer_received(conn, &last_answer);
	db_reader_put(a->db, conn);
	if (r < 0)
		return;
	int64_t since = last_answer > a->start_time ? last_answer : a->start_time;
	/* Open time is at most wall time: most looks end here, before counting it. */
	if (since == a->silence_announced_for || now - since < cfg->alerts_silence_after)
		return;
	int64_t open_silence = schedule_open_seconds(&cfg->cb_hours, cfg->cb_holidays, cfg->cb_nholidays,
	                                             since, now, cfg->alerts_silence_after);
	if (!alerts_silence_due(open_silence, cfg->alerts_silence_after, open, since,
	                        a->silence_announced_for))
		return;
	/* Told with all of its open time, not only the silence_after that made it news (up to a
	 * month, once per silence). */
	open_silence = schedule_open_seconds(&cfg->cb_hours, cfg->cb_holidays, cfg->cb_nholidays, since, now,
	                                     OPEN_TIME_TOLD_MAX);
	char at[21], message[200];
	long long minutes = (long long)((now - since) / 60), open_minutes = (long long)(open_silence / 60);
	snprintf(message, sizeof message,
	         "No survey answer for %lld h %lld min, %lld h %lld min of them in opening hours%s: "
	         "the survey feed may be broken.",
	         minutes / 60, minutes % 60, open_minutes / 60, open_minutes % 60,
	         last_answer ? "" : " (none since npsd started)");
	json_t *data =
	        json_pack("{s:s, s:o, s:I, s:I, s:I}", "message", message, "last_answer_at",
	                  last_answer ? json_string(time_format_rfc3339(last_answer, at)) : json_null(),
	                  "silent_minutes", (json_int_t)minutes, "open_minutes", (json_int_t)open_minutes,
	                  "silence_after_minutes", (json_int_t)(cfg->alerts_silence_after / 60));
	if (emit(a, "loop.silent", data, NO_FACTS, now) == 0)
		a->silence_announced_for = since;
}

static struct watched *watched_find(struct alerts *a, const char *touchpoint, bool add)
{
	for (size_t i = 0; i < a->nwatched; i++)
		if (strcmp(a->watched[i].touchpoint, touchpoint) == 0)
			return &a->watched[i];
	if (!add || a->nwatched == TOUCHPOINTS_MAX)
		return NULL;
	struct watched *w = &a->watched[a->nwatched++];
	*w = (struct watched){ 0 };
	snprintf(w->touchpoint, sizeof w->touchpoint, "%s", touchpoint);
	return w;
}

struct window_walk {
	struct alerts *a;
	bool current;
};

static int note_window(const struct nps_group *g, void *arg)
{
	struct window_walk *ww = arg;
	struct watched *w = watched_find(ww->a, g->key, true);
	if (w) {
		if (ww->current)
			w->current = g->counts;
		else
			w->previous = g->counts;
	}
	return 0;
}

static int read_windows(struct alerts *a, int64_t now, int64_t window)
{
	for (size_t i = 0; i < a->nwatched; i++)
		a->watched[i].previous = a->watched[i].current = (struct nps_counts){ 0 };
	struct nps_filter current = { .from = now - window, .to = now };
	struct nps_filter previous = { .from = now - 2 * window, .to = now - window };
	struct nps_counts total;
	int64_t excluded;
	struct db_conn *conn = db_reader(a->db);
	int r = reports_nps(conn, &current, GROUP_TOUCHPOINT, note_window, &(struct window_walk){ a, true },
	                    &total, &excluded);
	if (r == 0)
		r = reports_nps(conn, &previous, GROUP_TOUCHPOINT, note_window,
		                &(struct window_walk){ a, false }, &total, &excluded);
	db_reader_put(a->db, conn);
	return r;
}

static json_t *drop_data(const struct watched *w, int64_t now, int64_t window)
{
	double nps = report_figure(nps_value(&w->current)), before = report_figure(nps_value(&w->previous));
	char message[300], from[21], to[21];
	long long hours = (long long)(window / 3600);
	snprintf(message, sizeof message,
	         "NPS for %s fell from %.1f to %.1f: the last %lld h (%lld answers) against the %lld h "
	         "before (%lld answers).",
	         w->touchpoint, before, nps, hours, (long long)nps_responses(&w->current), hours,
	         (long long)nps_responses(&w->previous));
	return json_pack("{s:s, s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:s, s:s}", "message", message,
	                 "touchpoint", w->touchpoint, "nps", nps, "previous_nps", before, "drop",
	                 report_figure(before - nps), "responses", (json_int_t)nps_responses(&w->current),
	                 "previous_responses", (json_int_t)nps_responses(&w->previous), "window_hours",
	                 (json_int_t)hours, "from", time_format_rfc3339(now - window, from), "to",
	                 time_format_rfc3339(now, to));
}

static void look_at_nps(struct alerts *a, const struct npsd_config *cfg, int64_t now)
{
	if (now < a->next_nps_look)
		return;
	a->next_nps_look = now + NPS_LOOK_EVERY_S;
	bool wanted = false;
	if (db_write_sync(a->db, apply_wanted, &wanted) < 0 || !wanted)
		return;
	int64_t window = cfg->alerts_window;
	if (read_windows(a, now, window) < 0)
		return;
	for (size_t i = 0; i < a->nwatched; i++) {
		struct watched *w = &a->watched[i];
		/* Once a window: the same fall is not news every ten minutes. */
		if (w->announced_at && now - w->announced_at < window)
			continue;
		if (!alerts_nps_dropped(&w->previous, &w->current, cfg->alerts_nps_drop,
		                        cfg->alerts_min_responses))
			continue;
		struct event_facts facts = { .score = -1, .touchpoint = w->touchpoint };
		if (emit(a, "loop.nps_drop", drop_data(w, now, window), facts, now) == 0)
			w->announced_at = now;
	}
}

/* Periods end on the minute: a look every ten seconds sends a digest at most that late. */
static void look_at_digests(struct alerts *a, const struct npsd_config *cfg, int64_t now)
{
	if (now < a->next_digest_look)
		return;
	a->next_digest_look = a->fake_clock ? now : now + DIGEST_LOOK_EVERY_S;
	int64_t skipped = 0;
	int r = digests_look(a->db, cfg, now, &skipped);
	if (r < 0)
		log_warn("alerts: digests: %s", strerror(-r));
	else if (r > 0)
		log_debug("alerts: %d digests written", r);
	if (skipped > 0)
		log_info("alerts: digests: %lld periods that ended while npsd was down not told (at most %d "
		         "digests of a webhook at once, the newest)",
		         (long long)skipped, DIGESTS_CATCH_UP_MAX);
}

static void *alerts_main(void *arg)
{
	struct alerts *a = arg;
	pthread_setname_np(pthread_self(), "npsd-alerts");
	for (;;) {
		const struct npsd_config *cfg = atomic_load(a->cfg);
		int64_t now = clock_now();
		look_at_silence(a, cfg, now);
		look_at_nps(a, cfg, now);
		look_at_digests(a, cfg, now);
		struct timespec until = clock_mono_after_ms(a->fake_clock ? FAKE_CLOCK_LOOK_MS : LOOK_MS);
		pthread_mutex_lock(&a->lock);
		while (!atomic_load(&a->stopping) &&
		       pthread_cond_timedwait(&a->cond, &a->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&a->lock);
		if (atomic_load(&a->stopping))
			return NULL;
	}
}

int alerts_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, int64_t start_time,
                 struct alerts **ret)
{
	struct alerts *a = calloc(1, sizeof *a);
	struct watched *watched = calloc(TOUCHPOINTS_MAX, sizeof *watched);
	if (!a || !watched) {
		free(a);
		free(watched);
		return -ENOMEM;
	}
	a->db = db;
	a->cfg = cfg;
	a->start_time = start_time;
	a->watched = watched;
	const char *fake = getenv("NPSD_FAKE_CLOCK_FILE");
	a->fake_clock = fake && *fake;
	atomic_init(&a->stopping, false);
	pthread_mutex_init(&a->lock, NULL);
	clock_mono_cond_init(&a->cond);
	int r = -pthread_create(&a->thread, NULL, alerts_main, a);
	if (r < 0) {
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		free(a->watched);
		free(a);
		return r;
	}
	*ret = a;
	return 0;
}

void alerts_stop(struct alerts **ap)
{
	if (!ap || !*ap)
		return;
	struct alerts *a = *ap;
	pthread_mutex_lock(&a->lock);
	atomic_store(&a->stopping, true);
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a->watched);
	free(a);
	*ap = NULL;
}
