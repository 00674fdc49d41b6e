-- Withdrawn keys stay out of service in the older release: it treats them as retired.
UPDATE signing_keys SET status = 'retired' WHERE status = 'withdrawn';
DELETE FROM revocations WHERE kind = 'kid';
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_status_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check
    CHECK (status IN ('next', 'current', 'retiring', 'retired'));
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('jti', 'sid', 'sub', 'tenant'));
