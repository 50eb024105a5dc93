-- A digest whose kind or time changes tells every hour once across the change. Its first
-- digest by the new schedule is [digest_first_from, digest_first_until): from where the
-- last period told ended (or the periods of the old schedule that had ended at the change
-- end), to the end of the new schedule's period under way at the change. The old schedule
-- (digest_was, and digest_was_at, its time in force) is kept while its periods that ended
-- before the change, after digest_sent_until and up to digest_first_from, are still to be
-- told, as after a time npsd was down. All NULL when no such first digest is pending.
ALTER TABLE webhooks ADD COLUMN digest_was TEXT;
ALTER TABLE webhooks ADD COLUMN digest_was_at TEXT;
ALTER TABLE webhooks ADD COLUMN digest_first_from INTEGER;
ALTER TABLE webhooks ADD COLUMN digest_first_until INTEGER;
