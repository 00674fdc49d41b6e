-- Emergency withdrawal: a key whose private part may have leaked becomes `withdrawn`
-- (terminal). It is kept for audit, never signs, verifies or is published again; its
-- `retired_at` is when it left JWKS. Its tokens are refused at once on every instance
-- through a revocation entry of kind `kid`, listed until every token it signed expired.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_status_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check
    CHECK (status IN ('next', 'current', 'retiring', 'retired', 'withdrawn'));
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('jti', 'sid', 'sub', 'tenant', 'kid'));
