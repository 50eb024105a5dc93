-- npsd schema, step 1. Times are unix seconds (UTC) as INTEGER: compact, indexable, and
-- rendered as RFC 3339 at the API edge.

CREATE TABLE api_keys (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('ingest', 'agent', 'manager', 'admin')),
	token_hash  BLOB NOT NULL UNIQUE,          -- SHA-256 of the token; the token is never stored
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER
);

CREATE TABLE customers (
	id           TEXT PRIMARY KEY,             -- the insurer's own customer id
	name         TEXT,
	phone        TEXT,
	email        TEXT,
	language     TEXT,
	do_not_call  INTEGER NOT NULL DEFAULT 0,
	last_reached_at INTEGER,                   -- for callbacks.cooldown
	open_callback_id INTEGER,                  -- the one open (queued/claimed) callback, if any
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE surveys (
	id              INTEGER PRIMARY KEY,
	response_id     TEXT NOT NULL UNIQUE,      -- the sender's idempotency key
	source          TEXT NOT NULL,             -- name of the ingest token that posted it
	customer_id     TEXT NOT NULL REFERENCES customers (id),
	touchpoint      TEXT NOT NULL,
	channel         TEXT,
	score           INTEGER NOT NULL CHECK (score BETWEEN 0 AND 10),
	comment         TEXT,
	answered_at     INTEGER NOT NULL,
	received_at     INTEGER NOT NULL,
	updated_at      INTEGER,                   -- set when a later post completed it
	consent         INTEGER NOT NULL,
	attributes      TEXT,                      -- compact JSON object, NULL when none
	callback_id     INTEGER REFERENCES callbacks (id),
	excluded        INTEGER NOT NULL DEFAULT 0,
	exclude_reason  TEXT
);
-- Every index below costs a page write per group commit at ingest (bench/README.md), so
-- there are few: a customer's history (and the answers behind their callback), and time
-- ranges for the lists and reports.
CREATE INDEX surveys_customer_time ON surveys (customer_id, answered_at);
CREATE INDEX surveys_answered ON surveys (answered_at);

CREATE TABLE callbacks (
	id                INTEGER PRIMARY KEY,
	customer_id       TEXT NOT NULL REFERENCES customers (id),
	status            TEXT NOT NULL CHECK (status IN ('queued', 'claimed', 'done', 'unreachable', 'cancelled')),
	priority          INTEGER NOT NULL,        -- the lowest score behind it: lower is called first
	touchpoint        TEXT NOT NULL,           -- of the answer that opened it, for claim filters
	due_at            INTEGER NOT NULL,
	sla_deadline      INTEGER NOT NULL,
	sla_breached      INTEGER NOT NULL DEFAULT 0,
	attempts          INTEGER NOT NULL DEFAULT 0,
	max_attempts      INTEGER NOT NULL,
	claimed_by        TEXT,
	claimed_key_id    INTEGER,
	lease_expires_at  INTEGER,
	outcome           TEXT,
	notes             TEXT,
	created_at        INTEGER NOT NULL,
	first_attempt_at  INTEGER,
	closed_at         INTEGER
);
-- One open callback per customer is kept by customers.open_callback_id, which the ingest
-- transaction reads anyway: a unique index would cost a random page write per callback.
-- The claim order: due ones first, then lower score, then older.
CREATE INDEX callbacks_queue ON callbacks (status, priority, id, due_at);
CREATE INDEX callbacks_lease ON callbacks (lease_expires_at) WHERE status = 'claimed';
-- Open callbacks nobody has phoned yet, by SLA deadline: what the scheduler watches.
CREATE INDEX callbacks_sla ON callbacks (sla_deadline)
	WHERE sla_breached = 0 AND first_attempt_at IS NULL AND status IN ('queued', 'claimed');

-- Every attempt and outcome: the history an agent sees.
CREATE TABLE callback_events (
	id           INTEGER PRIMARY KEY,
	callback_id  INTEGER NOT NULL REFERENCES callbacks (id),
	customer_id  TEXT NOT NULL,                -- copied, so a customer's history is one lookup
	at           INTEGER NOT NULL,
	kind         TEXT NOT NULL,
	agent        TEXT,
	outcome      TEXT,
	notes        TEXT
);
CREATE INDEX callback_events_callback ON callback_events (callback_id, at);
CREATE INDEX callback_events_customer ON callback_events (customer_id, at);

CREATE TABLE improvements (
	id           INTEGER PRIMARY KEY,
	callback_id  INTEGER NOT NULL REFERENCES callbacks (id),
	touchpoint   TEXT NOT NULL,                -- of the callback, for the reports
	area         TEXT NOT NULL CHECK (area IN ('process', 'communication', 'service', 'product', 'other')),
	text         TEXT NOT NULL,
	created_at   INTEGER NOT NULL
);
CREATE INDEX improvements_time ON improvements (created_at);

CREATE TABLE webhooks (
	id           INTEGER PRIMARY KEY,
	url          TEXT NOT NULL,
	format       TEXT NOT NULL CHECK (format IN ('standard', 'ntfy', 'slack')),
	events       TEXT NOT NULL,                -- JSON array of event types
	filter       TEXT,                         -- JSON object
	auth         TEXT,                         -- Authorization header value for the receiver
	secret       TEXT NOT NULL,                -- whsec_…, needed to sign
	description  TEXT,
	digest       TEXT,
	digest_at    TEXT,
	active       INTEGER NOT NULL DEFAULT 1,
	disabled_reason TEXT,
	failing_since INTEGER,                     -- first failed attempt since the last success
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);

-- The outbox: written in the same transaction as the change that caused the event.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	type        TEXT NOT NULL,
	payload     TEXT NOT NULL,                 -- JSON "data" object
	created_at  INTEGER NOT NULL
);

CREATE TABLE deliveries (
	id               INTEGER PRIMARY KEY,
	event_id         INTEGER NOT NULL REFERENCES events (id),
	webhook_id       INTEGER NOT NULL REFERENCES webhooks (id),
	status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts         INTEGER NOT NULL DEFAULT 0,
	next_attempt_at  INTEGER NOT NULL,
	lease_until      INTEGER,
	last_http_status INTEGER,
	last_error       TEXT,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

CREATE TABLE attempts (
	id             INTEGER PRIMARY KEY,
	delivery_id    INTEGER NOT NULL REFERENCES deliveries (id),
	at             INTEGER NOT NULL,
	http_status    INTEGER,
	duration_ms    INTEGER NOT NULL,
	error          TEXT,
	response_head  TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
