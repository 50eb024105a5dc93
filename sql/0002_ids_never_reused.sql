-- Webhook and delivery ids are never used twice. A delivery's id is the Standard Webhooks
-- `webhook-id` receivers deduplicate on, and a webhook's id names it in API answers and in
-- `webhook.disabled` alerts; without AUTOINCREMENT SQLite hands the highest id out again
-- once its row is gone (a deleted webhook takes its deliveries with it), so a receiver
-- could drop a new alert as a resend of an old one. SQLite cannot add AUTOINCREMENT to a
-- table: each is rebuilt with its rows, and the counter starts past every id in use or
-- still referenced.

CREATE TABLE webhooks_new (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO webhooks_new (id, url, format, events, filter, auth, secret, description, digest,
                          digest_at, active, disabled_reason, failing_since, created_at, updated_at)
	SELECT id, url, format, events, filter, auth, secret, description, digest, digest_at, active,
	       disabled_reason, failing_since, created_at, updated_at FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_new RENAME TO webhooks;

CREATE TABLE deliveries_new (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO deliveries_new (id, event_id, webhook_id, status, attempts, next_attempt_at,
                            lease_until, last_http_status, last_error, created_at, updated_at)
	SELECT id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until,
	       last_http_status, last_error, created_at, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

-- Past every id in use or still referenced (a deleted row's id may live on elsewhere).
DELETE FROM sqlite_sequence WHERE name IN ('webhooks', 'deliveries');
INSERT INTO sqlite_sequence (name, seq) VALUES
	('webhooks', max(coalesce((SELECT max(id) FROM webhooks), 0),
	                 coalesce((SELECT max(webhook_id) FROM deliveries), 0))),
	('deliveries', max(coalesce((SELECT max(id) FROM deliveries), 0),
	                   coalesce((SELECT max(delivery_id) FROM attempts), 0)));
