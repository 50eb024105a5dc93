-- When the customer gave the answer that opened the callback, for the loop figure "ingest
-- to queue": how long after the answer the call was owed in npsd's queue, which is the
-- survey feed's delay (npsd queues the callback in the commit that stores the answer).
-- NULL for callbacks from before this column, which the figure leaves out.
ALTER TABLE callbacks ADD COLUMN answered_at INTEGER;
