-- Each webhook's pending deliveries in the order they are due: the delivery thread claims
-- per webhook, at most a few in flight each, so one receiver that never answers cannot
-- take every transfer slot and hold up the others' alerts. Partial: delivered and failed
-- rows (the history) are not in it, so a claim never walks past them.
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
