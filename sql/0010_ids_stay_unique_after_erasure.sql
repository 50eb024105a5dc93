-- The id of an answer, a callback, an event or an improvement is never handed out twice,
-- also when an erasure or a purge removed the newest rows (SQLite gives a new row the
-- highest id in use plus one): a link in an old alert or an integrator's stored id must not
-- come to name another customer's answer. AUTOINCREMENT would cost every insert a write of
-- sqlite_sequence (measured: 11% more of the writer's work per answer); instead erase and
-- purge note here the highest id a table had when their deletes lowered it, and the next
-- insert takes the id after it (when the table's own highest is not past it) and drops the
-- note: while there is none, an insert costs one look into this empty table
-- (store_prepare_insert in src/store_retention.c).
CREATE TABLE id_floors (
	name    TEXT PRIMARY KEY,   -- surveys, callbacks, events or improvements
	max_id  INTEGER NOT NULL
) WITHOUT ROWID;
