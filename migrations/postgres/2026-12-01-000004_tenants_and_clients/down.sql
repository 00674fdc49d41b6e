ALTER TABLE sessions DROP COLUMN legacy_client;
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
DELETE FROM revocations WHERE kind = 'tenant';
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check CHECK (kind IN ('jti', 'sid', 'sub'));
DROP TABLE clients;
ALTER TABLE api_keys DROP COLUMN tenant_id;
UPDATE users SET username_key = substr(username_key, strpos(username_key, ':') + 1);
ALTER TABLE users DROP COLUMN tenant_id;
DROP TABLE tenants;
