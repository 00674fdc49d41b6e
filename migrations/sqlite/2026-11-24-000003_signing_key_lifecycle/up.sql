-- When a key stopped signing (became retiring); it leaves JWKS once every token it signed has expired.
ALTER TABLE signing_keys ADD COLUMN deactivated_at TIMESTAMP;
