-- How many deliveries are in each status, kept by triggers in the transaction of every
-- change: /metrics read them with a walk of every delivery kept (730 days of them by
-- default: tens of millions at a few webhooks), on the reports thread, at every scrape.
-- npsctl's purge and erase, in their own process, keep them too. A migration that rebuilds
-- the deliveries table must create these triggers again.
CREATE TABLE delivery_counts (
	status TEXT PRIMARY KEY,
	n      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO delivery_counts (status, n)
	SELECT column1, (SELECT count(*) FROM deliveries WHERE status = column1)
	FROM (VALUES ('pending'), ('delivered'), ('failed'));
CREATE TRIGGER deliveries_counted_in AFTER INSERT ON deliveries BEGIN
	UPDATE delivery_counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER deliveries_counted_out AFTER DELETE ON deliveries BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER deliveries_counted_move AFTER UPDATE OF status ON deliveries
	WHEN OLD.status IS NOT NEW.status BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE status = OLD.status;
	UPDATE delivery_counts SET n = n + 1 WHERE status = NEW.status;
END;
