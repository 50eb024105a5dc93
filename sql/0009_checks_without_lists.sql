-- The status CHECKs of callbacks and deliveries, which ingest writes for every answer, as
-- comparisons instead of IN lists. SQLite tests `x IN (a, b, c)` with more than two
-- constants by building a temporary table of the list every time it runs the statement:
-- for every callback and delivery inserted, and at every change of their status. That was
-- a sixth of the writer's instructions per answer (bench/README.md). The rule is the same,
-- so every stored row keeps to it; SQLite cannot change a CHECK in place, so each table is
-- rebuilt with its rows and indexes (SQLite's own procedure, "Making Other Kinds Of Table
-- Schema Changes"), and deliveries keep their AUTOINCREMENT counter (0002).

CREATE TABLE callbacks_new (
	id                INTEGER PRIMARY KEY,
	customer_id       TEXT NOT NULL REFERENCES customers (id),
	status            TEXT NOT NULL CHECK (status = 'queued' OR status = 'claimed' OR status = 'done'
	                                       OR status = 'unreachable' OR status = 'cancelled'),
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
	closed_at         INTEGER,
	released_key_id   INTEGER,                 -- 0005
	released_at       INTEGER,
	answered_at       INTEGER                  -- 0007
);
INSERT INTO callbacks_new (id, customer_id, status, priority, touchpoint, due_at, sla_deadline,
                           sla_breached, attempts, max_attempts, claimed_by, claimed_key_id,
                           lease_expires_at, outcome, notes, created_at, first_attempt_at, closed_at,
                           released_key_id, released_at, answered_at)
	SELECT id, customer_id, status, priority, touchpoint, due_at, sla_deadline, sla_breached,
	       attempts, max_attempts, claimed_by, claimed_key_id, lease_expires_at, outcome, notes,
	       created_at, first_attempt_at, closed_at, released_key_id, released_at, answered_at
	FROM callbacks;
DROP TABLE callbacks;
ALTER TABLE callbacks_new RENAME TO callbacks;
CREATE INDEX callbacks_queue ON callbacks (status, priority, id, due_at);
CREATE INDEX callbacks_lease ON callbacks (lease_expires_at) WHERE status = 'claimed';
CREATE INDEX callbacks_sla ON callbacks (sla_deadline)
	WHERE sla_breached = 0 AND first_attempt_at IS NULL AND status IN ('queued', 'claimed');
CREATE INDEX callbacks_released ON callbacks (released_key_id, priority, id)
	WHERE released_key_id IS NOT NULL;
CREATE INDEX callbacks_created ON callbacks (created_at);
CREATE INDEX callbacks_status_due ON callbacks (status, due_at);

-- The counter goes on from where it stood, which may be past the highest id left.
CREATE TEMP TABLE deliveries_counter AS
	SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0) AS seq;
CREATE TABLE deliveries_new (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id         INTEGER NOT NULL REFERENCES events (id),
	webhook_id       INTEGER NOT NULL REFERENCES webhooks (id),
	status           TEXT NOT NULL CHECK (status = 'pending' OR status = 'delivered' OR status = 'failed'),
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
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
DELETE FROM sqlite_sequence WHERE name = 'deliveries';
INSERT INTO sqlite_sequence (name, seq)
	SELECT 'deliveries', max(seq, coalesce((SELECT max(id) FROM deliveries), 0)) FROM deliveries_counter;
DROP TABLE temp.deliveries_counter;
