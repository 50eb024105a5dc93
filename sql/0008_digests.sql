-- Digest webhooks (SPEC: "digest": "hourly"|"daily" at digest_at, local time): the end of the
-- last period whose digest was written to the outbox, so that each period is told once,
-- also across restarts. NULL until the first period boundary after the digest was set:
-- a new digest starts with the next period, it does not tell the past.
ALTER TABLE webhooks ADD COLUMN digest_sent_until INTEGER;
