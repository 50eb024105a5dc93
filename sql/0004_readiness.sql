-- GET /readyz commits a real change here: a transaction that changes nothing writes no WAL
-- frame, and so said "ready" while a full disk refused every answer.
CREATE TABLE readiness (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	checked_at  INTEGER NOT NULL
);
