-- Withdrawn keys stay out of service in the older release: it treats them as retired.
-- The wider CHECKs are kept (SQLite would need another rebuild); no row uses them.
UPDATE signing_keys SET status = 'retired' WHERE status = 'withdrawn';
DELETE FROM revocations WHERE kind = 'kid';
