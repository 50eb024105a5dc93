-- The last failed delivery attempt to each webhook: two failures further apart than any
-- retry can be had no delivery waiting between them, so the spell of failures that may
-- disable the webhook (webhooks.disable_after) starts again at the second one, instead of
-- counting from a failure days before a quiet spell.
ALTER TABLE webhooks ADD COLUMN last_failed_at INTEGER;
