#include "npsd/deliver.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "npsd/clock.h"
#include "npsd/log.h"
#include "npsd/outbox.h"
#include "npsd/validate.h"
#include "npsd/webhook_format.h"
#include "npsd/webhooks.h"

#define MAX_IN_FLIGHT 256 /* transfers at once, over reused connections */
/* Transfers at once to one webhook: a receiver that never answers holds its slots for the
 * whole timeout, and must not hold every slot, or the other webhooks' alerts wait behind
 * its retries until it is disabled (72 h by default). */
#define WEBHOOK_IN_FLIGHT 64
#define RESPONSE_HEAD_MAX 4096 /* SPEC: the first 4 KiB of every answer is kept */
#define LEASE_SLACK_S 30       /* a lease outlives the attempt's timeout by this much */
#define IDLE_POLL_MS 60000     /* with nothing due, look again every minute anyway */
/* A round that cannot be written (a full disk) is tried again after 1 s, then 2, 4 … up to
 * this: in a loop, every try was a failed commit and a log line, thousands a second. */
#define ROUND_RETRY_MAX_S 32

struct transfer {
	CURL *easy;
	struct curl_slist *headers;
	struct webhook_request request;
	int64_t delivery_id, webhook_id, lease_until;
	int attempts; /* before this one */
	int64_t started_ms;
	char head[RESPONSE_HEAD_MAX + 1];
	size_t head_len;
	char error[CURL_ERROR_SIZE];
	long retry_after; /* seconds from a Retry-After header, 0 when none */
	int64_t timeout_ms;
	const char *blocked; /* why the SSRF guard refused the address; NULL when it did not */
	bool checking;       /* webhooks.proxy: the target's addresses are being checked, nothing sent */
	bool resolved;       /* the check saw at least one of the target's addresses */
};

struct deliver {
	struct npsd_db *db;
	_Atomic(const struct npsd_config *) *cfg_in_force;
	const struct npsd_config *cfg; /* as loaded at the start of this round */
	CURLM *multi;
	pthread_t thread;
	atomic_bool stopping;
	struct transfer *active[MAX_IN_FLIGHT];
	size_t nactive;
	size_t rotate; /* see struct round */
};

/* ---------- one round with the writer: record what finished, claim what is due ---------- */

struct finished {
	int64_t delivery_id, webhook_id, lease_until;
	int attempts; /* before this one */
	bool final;   /* the attempt could not even be built: retrying will not help */
	struct attempt_row attempt;
	long retry_after;
	char error[CURL_ERROR_SIZE];
	char *head;
};

struct round {
	const struct npsd_config *cfg;
	struct finished *finished;
	size_t nfinished;
	size_t want; /* how many new deliveries to claim */
	struct delivery_row *claimed;
	size_t nclaimed;
	int64_t now;
	struct transfer *const *active; /* in flight: counted against each webhook's share */
	size_t nactive;
	size_t rotate; /* which webhook is offered slots first, so that none always comes last */
	bool capped;   /* a webhook had as many in flight as it may: it may have more due */
};

int64_t deliver_jitter(int64_t step, uint32_t random)
{
	/* +-20%: spreads the retries of many deliveries that failed together. */
	double factor = 0.8 + 0.4 * ((double)random / 4294967295.0);
	int64_t v = llround((double)step * factor);
	return v > 0 ? v : 1;
}

int64_t deliver_retry_at(int64_t now_ms, int64_t delay_ms)
{
	return (now_ms + delay_ms + 999) / 1000;
}

static int64_t jittered(int64_t step)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = 0x80000000u;
	return deliver_jitter(step, r);
}

static int disable_webhook(struct db_conn *conn, int64_t id, const char *reason, int64_t now)
{
	struct webhook_row row;
	int r = store_webhook_get(conn, id, &row);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	bool was_active = row.active;
	r = was_active ? store_webhook_disable(conn, id, reason, now) : 0;
	if (r == 0 && was_active) {
		outbox_webhooks_changed();
		/* No URL: for ntfy and chat webhooks the URL itself is the credential to post. */
		json_t *data = json_pack("{s:{s:I, s:s?, s:s}}", "webhook", "id", (json_int_t)id,
		                         "description", row.description, "reason", reason);
		/* Tells the other webhooks, so a person hears of it: this one is inactive now. */
		r = outbox_emit(conn, "webhook.disabled", data, NO_FACTS, now);
		log_warn("webhook %lld disabled: %s", (long long)id, reason);
	}
	webhook_row_clear(&row);
	return r;
}

static int record_finished(struct db_conn *conn, const struct npsd_config *cfg, struct finished *f,
                           int64_t now)
{
	int status = f->attempt.http_status;
	int attempts = f->attempts + 1;
	const char *state;
	int64_t next = now;
	bool success = status >= 200 && status < 300;
	if (success) {
		state = "delivered";
	} else if (f->final || status == 410 || (size_t)attempts > cfg->wh_nretry) {
		state = "failed";
	} else {
		int64_t step = cfg->wh_retry[attempts - 1];
		int64_t delay_ms = jittered(step * 1000);
		/* Honoured as what it is, the least wait, up to twice the step: a shorter one does
		 * not hurry the retry, or a receiver answering "Retry-After: 0" through an outage
		 * would spend steps meant to span a day in seconds. Capped in seconds, where a
		 * receiver's number (up to LONG_MAX) cannot overflow. */
		if (f->retry_after > 0) {
			int64_t asked_ms = (f->retry_after < 2 * step ? f->retry_after : 2 * step) * 1000;
			if (asked_ms > delay_ms)
				delay_ms = asked_ms;
		}
		state = "pending";
		next = deliver_retry_at(clock_now_ms(), delay_ms);
	}
	int r = store_delivery_finish(conn, f->delivery_id, f->lease_until, state, attempts, next,
	                              &f->attempt, now);
	if (r == -ESTALE)
		return 0; /* someone else holds it now: their attempt counts, not ours */
	if (r < 0)
		return r;
	if (success)
		return store_webhook_failing(conn, f->webhook_id, 0, 0);
	if (status == 410)
		return disable_webhook(conn, f->webhook_id, "the receiver answered 410 Gone", now);
	/* Failures further apart than one delivery's attempts can be (twice the longest step,
	 * as far as a Retry-After stretches one, and an attempt's lease) had nothing waiting
	 * between them: a receiver that failed once days ago and once now has not failed for
	 * days, and is not disabled for it. */
	int64_t longest = 0;
	for (size_t i = 0; i < cfg->wh_nretry; i++)
		longest = cfg->wh_retry[i] > longest ? cfg->wh_retry[i] : longest;
	r = store_webhook_failing(conn, f->webhook_id, now, 2 * longest + cfg->wh_timeout + LEASE_SLACK_S);
	if (r < 0)
		return r;
	struct webhook_row row;
	if (store_webhook_get(conn, f->webhook_id, &row) == 0) {
		bool too_long = row.failing_since && now - row.failing_since >= cfg->wh_disable_after;
		webhook_row_clear(&row);
		if (too_long)
			return disable_webhook(conn, f->webhook_id,
			                       "every delivery failed for webhooks.disable_after", now);
	}
	return 0;
}

static int collect_claimed(const struct delivery_row *row, void *arg)
{
	struct round *round = arg;
	struct delivery_row *copy = &round->claimed[round->nclaimed++];
	*copy = *row;
	/* The row's strings stay with it (freed by the store); the copy needs none. */
	copy->last_error = NULL;
	copy->event_type = NULL;
	return 0;
}

struct record_arg {
	const struct npsd_config *cfg;
	struct finished *f;
	int64_t now;
};

static int record_one(struct db_conn *conn, void *arg)
{
	struct record_arg *ra = arg;
	return record_finished(conn, ra->cfg, ra->f, ra->now);
}

/* Runs on the writer: each finished attempt in a savepoint of its own (one that cannot be
 * recorded leaves its lease to run out: a resend), then the claim. */
struct id_list {
	int64_t *ids;
	size_t n, cap;
};

static int collect_id(int64_t id, void *arg)
{
	struct id_list *list = arg;
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		int64_t *ids = realloc(list->ids, cap * sizeof *ids);
		if (!ids)
			return -ENOMEM;
		list->ids = ids;
		list->cap = cap;
	}
	list->ids[list->n++] = id;
	return 0;
}

static size_t in_flight(const struct round *round, int64_t webhook_id)
{
	size_t n = 0;
	for (size_t i = 0; i < round->nactive; i++)
		n += round->active[i]->webhook_id == webhook_id;
	return n;
}

/* Claims up to round->want due deliveries, each webhook up to its share, the webhooks in
 * turn. */
static int claim_due(struct db_conn *conn, struct round *round)
{
	struct id_list hooks = { 0 };
	int r = store_webhook_ids(conn, collect_id, &hooks);
	int64_t lease_until = round->now + round->cfg->wh_timeout + LEASE_SLACK_S;
	for (size_t k = 0; r == 0 && k < hooks.n && round->nclaimed < round->want; k++) {
		int64_t id = hooks.ids[(round->rotate + k) % hooks.n];
		size_t busy = in_flight(round, id);
		size_t room = busy < WEBHOOK_IN_FLIGHT ? WEBHOOK_IN_FLIGHT - busy : 0;
		size_t left = round->want - round->nclaimed;
		size_t limit = room < left ? room : left;
		size_t before = round->nclaimed;
		if (limit > 0)
			r = store_deliveries_claim(conn, id, round->now, lease_until, (int)limit,
			                           collect_claimed, round);
		if (room == 0 || round->nclaimed - before == room)
			round->capped = true;
	}
	free(hooks.ids);
	return r;
}

static int round_apply(struct db_conn *conn, void *arg)
{
	struct round *round = arg;
	for (size_t i = 0; i < round->nfinished; i++) {
		struct record_arg ra = { round->cfg, &round->finished[i], round->now };
		int r = db_isolated(conn, record_one, &ra);
		if (r < 0)
			log_warn("deliver: cannot record delivery %lld: %s",
			         (long long)round->finished[i].delivery_id, strerror(-r));
	}
	round->nclaimed = 0;
	round->capped = false;
	return round->want ? claim_due(conn, round) : 0;
}

/* ---------- transfers ---------- */

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct transfer *t = clientp;
	(void)purpose;
	/* After DNS, before connect: a name that resolved to a private address is refused here
	 * too, not only at create time (DNS answers change). */
	t->blocked = webhooks_address_refusal(&address->addr);
	if (t->blocked)
		return CURL_SOCKET_BAD;
	return socket(address->family, address->socktype, address->protocol);
}

/* Before every request, on a new connection or a kept-alive one: a connection opened while
 * webhooks.allow_private_targets was true (a reload has set it false since) never passed
 * open_socket, and would carry requests to a private address for as long as it is kept. */
static int check_connection(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	struct transfer *t = clientp;
	(void)local_ip, (void)primary_port, (void)local_port;
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	const struct sockaddr *peer =
	        inet_pton(AF_INET, primary_ip, &v4.sin_addr) == 1     ? (struct sockaddr *)&v4
	        : inet_pton(AF_INET6, primary_ip, &v6.sin6_addr) == 1 ? (struct sockaddr *)&v6
	                                                              : NULL;
	t->blocked = peer ? webhooks_address_refusal(peer) : "an address curl could not tell";
	if (t->blocked)
		return CURL_PREREQFUNC_ABORT;
	return CURL_PREREQFUNC_OK;
}

/* With webhooks.proxy, curl connects to the proxy alone and never resolves the target, so
 * a first pass resolves it (curl's resolver, which does not hold up this thread) and looks
 * at every address it has, opening no socket to any. */
static curl_socket_t check_target(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct transfer *t = clientp;
	(void)purpose;
	t->resolved = true;
	const char *why = webhooks_address_refusal(&address->addr);
	if (why)
		t->blocked = why;
	return CURL_SOCKET_BAD;
}

/* The target passed the check: the request itself goes to the proxy, in what is left of
 * the attempt's time (its lease counts on one timeout). The proxy resolves the name again:
 * an answer that changes in between (DNS rebinding) is the proxy's to refuse. */
static void send_through_proxy(CURLM *multi, struct transfer *t)
{
	curl_multi_remove_handle(multi, t->easy);
	int64_t left = t->timeout_ms - (clock_mono_ms() - t->started_ms);
	t->checking = false;
	t->error[0] = '\0';
	curl_easy_setopt(t->easy, CURLOPT_CONNECT_ONLY, 0L);
	curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETFUNCTION, NULL);
	curl_easy_setopt(t->easy, CURLOPT_NOPROXY, "");
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	curl_multi_add_handle(multi, t->easy);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	size_t room = RESPONSE_HEAD_MAX - t->head_len;
	size_t take = n < room ? n : room;
	memcpy(t->head + t->head_len, data, take);
	t->head_len += take;
	return n; /* the rest is read and dropped */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		char value[64];
		size_t len = n - (sizeof name - 1);
		if (len >= sizeof value)
			len = sizeof value - 1;
		memcpy(value, data + sizeof name - 1, len);
		value[len] = '\0';
		char *end;
		long secs = strtol(value, &end, 10);
		if (end != value && secs >= 0) {
			t->retry_after = secs;
		} else {
			/* A date that has passed asks for no wait: the step's, as 0 seconds. */
			time_t when = curl_getdate(value, NULL), now = (time_t)clock_now();
			if (when > now)
				t->retry_after = (long)(when - now);
		}
	}
	return n;
}

static void transfer_free(struct transfer *t)
{
	if (!t)
		return;
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	webhook_request_clear(&t->request);
	free(t);
}

/* Loads the event and webhook and builds the transfer. Returns NULL and fills *fail with an
 * attempt that failed before sending (a bad secret, a disabled webhook). */
static struct transfer *transfer_new(struct deliver *d, struct db_conn *conn, const struct delivery_row *row,
                                     struct finished *fail, bool *ret_failed)
{
	*ret_failed = false;
	struct webhook_row hook;
	char *type = NULL, *payload = NULL;
	int64_t created_at = 0;
	struct transfer *t = NULL;
	const char *why = NULL;
	bool final = true; /* retrying will not help; false: a passing trouble, retried as a failure */
	int r = store_webhook_get(conn, row->webhook_id, &hook);
	if (r == -ENOENT)
		return NULL; /* deleted with its deliveries: nothing to do */
	if (r < 0) {
		why = "the webhook could not be read";
		final = false;
		goto failed;
	}
	if (!hook.active) {
		why = "the webhook is disabled";
		goto failed;
	}
	r = store_event_get(conn, row->event_id, &type, &payload, &created_at);
	if (r < 0) {
		why = r == -ENOENT ? "the event is gone" : "the event could not be read";
		final = r == -ENOENT;
		goto failed;
	}
	json_t *data = json_loads(payload, 0, NULL);
	t = calloc(1, sizeof *t);
	struct webhook_target target = { .secret = hook.secret,
		                         .auth = hook.auth,
		                         .public_url = d->cfg->public_url };
	struct webhook_event event = {
		.id = row->event_id, .type = type, .created_at = created_at, .data = data
	};
	char message_id[40];
	snprintf(message_id, sizeof message_id, "msg_%lld", (long long)row->id);
	r = t && data && webhook_format_parse(hook.format, &target.format) == 0
	            ? webhook_format_build(&target, &event, message_id, clock_now(), &t->request)
	            : -ENOMEM;
	json_decref(data);
	if (r < 0) {
		/* An auth stored before the API refused tabs, controls and blanks alone is refused
		 * here too. */
		if (r == -EINVAL && hook.auth && !webhook_auth_value_ok(hook.auth))
			why = "the webhook's auth cannot be sent as a header value (a tab, a control "
			      "character, a line separator, or blanks alone): PATCH a new one";
		else
			why = r == -EINVAL ? "the webhook's secret is malformed" : "out of memory";
		final = r == -EINVAL;
		free(t);
		t = NULL;
		goto failed;
	}
	t->delivery_id = row->id;
	t->webhook_id = row->webhook_id;
	t->lease_until = row->lease_until;
	t->attempts = row->attempts;
	t->easy = curl_easy_init();
	for (size_t i = 0; i < t->request.nheaders; i++)
		t->headers = curl_slist_append(t->headers, t->request.headers[i]);
	t->headers = curl_slist_append(t->headers, "Expect:"); /* no 100-continue round trip */
	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_URL, hook.url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request.body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->request.body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	t->timeout_ms = d->cfg->wh_timeout * 1000;
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Set either way, never left to http_proxy, https_proxy, ALL_PROXY or NO_PROXY in the
	 * environment (systemd Environment=, a login shell's egress proxy): through a proxy the
	 * guard below would see the proxy's address and never the target's. */
	const char *proxy = d->cfg->wh_proxy;
	curl_easy_setopt(e, CURLOPT_PROXY, proxy ? proxy : "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "npsd-webhooks/0.1");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	if (!d->cfg->wh_allow_private_targets && proxy) {
		/* The proxy's own address is the operator's choice, often a private one: the
		 * target is checked instead (check_target), before anything goes to the proxy. */
		t->checking = true;
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, check_target);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
	} else if (!d->cfg->wh_allow_private_targets) {
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
		curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, check_connection);
		curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
	}
	goto out;
failed:
	*ret_failed = true;
	*fail = (struct finished){
		.delivery_id = row->id,
		.webhook_id = row->webhook_id,
		.lease_until = row->lease_until,
		.attempts = row->attempts,
		.final = final,
		.attempt = { .at = clock_now(), .error = why },
	};
out:
	free(type);
	free(payload);
	webhook_row_clear(&hook);
	return t;
}

static void finish_transfer(struct transfer *t, CURLcode code, struct finished *f)
{
	long status = 0, tunnel = 0;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	/* webhooks.proxy's own answer to the CONNECT for an https target (a 403 of its policy,
	 * a 410, a 502): the target was never reached, so it is no status of the target's, and
	 * a 410 there must not count as the target's Gone, which disables the webhook. */
	curl_easy_getinfo(t->easy, CURLINFO_HTTP_CONNECTCODE, &tunnel);
	bool refused_tunnel = code != CURLE_OK && tunnel >= 300;
	*f = (struct finished){
		.delivery_id = t->delivery_id,
		.webhook_id = t->webhook_id,
		.lease_until = t->lease_until,
		.attempts = t->attempts,
		.retry_after = t->retry_after,
	};
	if (code != CURLE_OK) {
		if (t->blocked)
			snprintf(f->error, sizeof f->error, "refused: the address is not public (%s)",
			         t->blocked);
		else if (refused_tunnel)
			snprintf(f->error, sizeof f->error,
			         "the proxy refused the tunnel to the target: it answered the CONNECT "
			         "with %ld",
			         tunnel);
		else
			snprintf(f->error, sizeof f->error, "%s",
			         t->error[0] ? t->error : curl_easy_strerror(code));
		/* A status that came before the failure stands: a 2xx whose body was slow or cut
		 * off was taken by the receiver, and sending it again would tell it twice. */
		if (t->blocked || refused_tunnel)
			status = 0;
	} else if (status < 200 || status >= 300) {
		snprintf(f->error, sizeof f->error, "HTTP %ld", status);
	}
	/* The answer is kept as text and shown in JSON: whatever the receiver sent, it must be
	 * valid UTF-8 without NULs, or the attempt would vanish from the log. */
	utf8_scrub(t->head, t->head_len);
	t->head[t->head_len] = '\0';
	f->head = t->head_len ? strndup(t->head, t->head_len) : NULL;
	f->attempt = (struct attempt_row){
		.at = clock_now(),
		.http_status = (int)status,
		.duration_ms = (int)(clock_mono_ms() - t->started_ms),
		.error = f->error[0] ? f->error : NULL,
		.response_head = f->head,
	};
}

/* ---------- the loop ---------- */

static atomic_bool wake_pending;
static atomic_uint_fast64_t deliveries_seen;

void deliver_wake(void *arg)
{
	struct deliver *d = arg;
	/* Most commits (answers nobody subscribes to) wrote no delivery: nothing to look at. */
	uint64_t written = outbox_deliveries_written();
	if (atomic_exchange(&deliveries_seen, written) == written)
		return;
	atomic_store(&wake_pending, true);
	curl_multi_wakeup(d->multi);
}

/* Sends what finished to the writer and claims up to `want` due deliveries: how many in
 * *ret_claimed, and in *ret_capped whether a webhook's share held some back. 0, or the
 * write's error (nothing claimed; what finished stays leased, and once the lease runs out
 * it is sent again). */
static int run_round(struct deliver *d, struct finished *finished, size_t nfinished, size_t want,
                     struct delivery_row *claimed, size_t *ret_claimed, bool *ret_capped)
{
	struct round round = { .cfg = d->cfg,
		               .finished = finished,
		               .nfinished = nfinished,
		               .want = want,
		               .claimed = claimed,
		               .now = clock_now(),
		               .active = d->active,
		               .nactive = d->nactive,
		               .rotate = d->rotate++ };
	*ret_capped = false;
	*ret_claimed = 0;
	if (!nfinished && !want)
		return 0;
	int r = db_write_sync(d->db, round_apply, &round);
	for (size_t i = 0; i < nfinished; i++)
		free(finished[i].head);
	if (r < 0)
		return r;
	*ret_capped = round.capped;
	*ret_claimed = round.nclaimed;
	return 0;
}

/* Moves every finished transfer into `finished`; returns how many. */
static size_t reap(struct deliver *d, struct finished *finished)
{
	size_t n = 0;
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(d->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct transfer *t = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t->checking && t->resolved && !t->blocked) {
			send_through_proxy(d->multi, t);
			continue;
		}
		finish_transfer(t, msg->data.result, &finished[n++]);
		curl_multi_remove_handle(d->multi, t->easy);
		for (size_t i = 0; i < d->nactive; i++) {
			if (d->active[i] == t) {
				d->active[i] = d->active[--d->nactive];
				break;
			}
		}
		transfer_free(t);
	}
	return n;
}

/* The next time a delivery becomes claimable (0: none pending), read on a reader: most
 * commits (answers nobody subscribes to) bring nothing, and a claim costs a write. */
static int64_t next_due(struct deliver *d)
{
	int64_t next = 0;
	struct db_conn *conn = db_reader(d->db);
	if (store_deliveries_next_due(conn, &next) < 0)
		next = clock_now() + 1;
	db_reader_put(d->db, conn);
	return next;
}

static void *deliver_main(void *arg)
{
	struct deliver *d = arg;
	struct finished finished[MAX_IN_FLIGHT];
	pthread_setname_np(pthread_self(), "npsd-deliver");
	struct delivery_row claimed[MAX_IN_FLIGHT];
	int64_t due = next_due(d); /* at start: resume what a previous run left pending */
	bool fake_clock = getenv("NPSD_FAKE_CLOCK_FILE") != NULL;
	bool held_back = false; /* due deliveries wait for their webhook's transfers to end */
	int retry_s = 0;        /* the pause after the last round, which failed; 0: it did not */
	while (!atomic_load(&d->stopping)) {
		d->cfg = atomic_load(d->cfg_in_force);
		int running = 0;
		curl_multi_perform(d->multi, &running);
		size_t nfinished = reap(d, finished);
		if (atomic_exchange(&wake_pending, false))
			due = next_due(d);
		size_t want = 0;
		bool due_now = due && due <= clock_now();
		if ((due_now || (held_back && nfinished)) && d->nactive < MAX_IN_FLIGHT)
			want = MAX_IN_FLIGHT - d->nactive;
		bool capped;
		size_t nclaimed;
		int r = run_round(d, finished, nfinished, want, claimed, &nclaimed, &capped);
		if (r < 0) {
			retry_s = retry_s == 0                      ? 1
			          : retry_s * 2 < ROUND_RETRY_MAX_S ? retry_s * 2
			                                            : ROUND_RETRY_MAX_S;
			log_warn("deliver: cannot write the deliveries' state: %s; trying again in %d s",
			         strerror(-r), retry_s);
			due = clock_now() + retry_s;
		} else if (want || nfinished) {
			if (retry_s)
				log_info("deliver: writing again");
			retry_s = 0;
		}
		if (r == 0 && want)
			held_back = capped;
		if (r == 0 && (want || nfinished)) {
			due = next_due(d);
			/* What a webhook's share holds back is due already: it is claimed as that
			 * webhook's transfers end (above), or a second later, not in a busy loop. */
			if (held_back && due && due <= clock_now())
				due = clock_now() + 1;
		}
		/* Start the claimed transfers; those that cannot even be built fail at once. */
		nfinished = 0;
		if (nclaimed) {
			struct db_conn *conn = db_reader(d->db);
			for (size_t i = 0; i < nclaimed; i++) {
				bool failed;
				struct transfer *t =
				        transfer_new(d, conn, &claimed[i], &finished[nfinished], &failed);
				if (failed)
					nfinished++;
				if (!t)
					continue;
				t->started_ms = clock_mono_ms();
				curl_multi_add_handle(d->multi, t->easy);
				d->active[d->nactive++] = t;
			}
			db_reader_put(d->db, conn);
			size_t none;
			r = run_round(d, finished, nfinished, 0, claimed, &none, &capped);
			if (r < 0)
				log_warn("deliver: cannot write the deliveries' state: %s", strerror(-r));
			continue; /* start the new transfers at once */
		}
		/* Sleep until a transfer needs us, a commit wakes us, or the next delivery is due. */
		int64_t wait_ms = IDLE_POLL_MS;
		if (due) {
			/* To the second it is due, not a whole number of seconds from now (up to a
			 * second late). */
			int64_t until = due * 1000 - clock_now_ms();
			wait_ms = until < 0 ? 0 : until < wait_ms ? until : wait_ms;
		}
		if (fake_clock && wait_ms > 100)
			wait_ms = 100; /* the time can jump under a fake clock */
		if (wait_ms > 0 || d->nactive == MAX_IN_FLIGHT)
			curl_multi_poll(d->multi, NULL, 0, (int)(wait_ms > 0 ? wait_ms : 100), NULL);
	}
	return NULL;
}

int deliver_start(struct npsd_db *db, _Atomic(const struct npsd_config *) *cfg, struct deliver **ret)
{
	struct deliver *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->db = db;
	d->cfg_in_force = cfg;
	d->cfg = atomic_load(cfg);
	d->multi = curl_multi_init();
	if (!d->multi) {
		free(d);
		return -ENOMEM;
	}
	curl_multi_setopt(d->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)MAX_IN_FLIGHT);
	int r = -pthread_create(&d->thread, NULL, deliver_main, d);
	if (r < 0) {
		curl_multi_cleanup(d->multi);
		free(d);
		return r;
	}
	*ret = d;
	return 0;
}

void deliver_stop(struct deliver **dp)
{
	if (!dp || !*dp)
		return;
	struct deliver *d = *dp;
	atomic_store(&d->stopping, true);
	curl_multi_wakeup(d->multi);
	pthread_join(d->thread, NULL);
	for (size_t i = 0; i < d->nactive; i++) {
		curl_multi_remove_handle(d->multi, d->active[i]->easy);
		transfer_free(d->active[i]);
	}
	curl_multi_cleanup(d->multi);
	free(d);
	*dp = NULL;
}
