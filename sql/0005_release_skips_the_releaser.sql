-- An agent who releases a callback does not get it straight back from the next claim (it
-- is still first in the queue): who released it and when, until someone claims it again.
-- The partial index holds only those, so a claim that finds nothing else due can look
-- there for the caller's own at no cost.
ALTER TABLE callbacks ADD COLUMN released_key_id INTEGER;
ALTER TABLE callbacks ADD COLUMN released_at INTEGER;
CREATE INDEX callbacks_released ON callbacks (released_key_id, priority, id)
	WHERE released_key_id IS NOT NULL;
