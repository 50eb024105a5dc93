-- An answer's, a callback's and an event's id is never handed out twice, also when an
-- erasure or a purge removed the newest rows (SQLite gives a new row the highest id in use
-- plus one): a link in an old alert or an integrator's stored id must not come to name
-- another customer's answer. AUTOINCREMENT would cost every insert a write of
-- sqlite_sequence (measured: 11% more of the writer's work per answer); instead erase and
-- purge note each table's highest id here before they delete, and the next insert takes the
-- id after it (when the table's own highest is not past it) and drops the note: while there
-- is none, an insert costs one look into this empty table (store_next_id).
CREATE TABLE id_floors (
	name    TEXT PRIMARY KEY,   -- surveys, callbacks or events
	max_id  INTEGER NOT NULL
) WITHOUT ROWID;
