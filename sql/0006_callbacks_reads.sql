-- Two indexes so that managers' reads of the callbacks cost what they return, not what the
-- table has ever held (each read runs on an HTTP thread that ingest shares):
--
-- The loop figures (GET /v1/callbacks/stats, /metrics) cover the callbacks created in the
-- last 30 days; without an index on the creation time each of their queries read every
-- callback ever made (1.6 s at a million). Creation times only grow, so an insert appends
-- to the index's last page.
CREATE INDEX callbacks_created ON callbacks (created_at);
-- The list shows due callbacks before those not yet due. The queue index walks a status in
-- (priority, id) order, which finds the due ones at once, but the few not yet due only by
-- reading all of that status (0.14 s for a million done).
CREATE INDEX callbacks_status_due ON callbacks (status, due_at);
