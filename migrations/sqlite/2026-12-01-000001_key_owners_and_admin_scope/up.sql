-- Every API key acts for a user, so that disabling or deleting that user stops it.
-- Keys made without an owner go to the oldest admin; with no admin left they could act
-- for nobody, and go.
UPDATE api_keys
SET owner_id = (
    SELECT id FROM users
    WHERE EXISTS (SELECT 1 FROM json_each(users.roles) WHERE value = 'admin')
    ORDER BY created_at, id LIMIT 1
)
WHERE owner_id IS NULL;
DELETE FROM api_keys WHERE owner_id IS NULL;

-- SQLite cannot add NOT NULL to a column: rebuild the table.
CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    last_used_ip TEXT
);
INSERT INTO api_keys_new
SELECT id, key_hash, prefix, name, owner_id, scopes, enabled, created_at, updated_at,
       expires_at, last_used_at, last_used_ip
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE INDEX api_keys_owner_id ON api_keys (owner_id);

-- Administration by bearer token now needs the admin role and the admin scope: admins
-- keep the power they had.
UPDATE users
SET scopes = json_insert(scopes, '$[#]', 'admin')
WHERE EXISTS (SELECT 1 FROM json_each(users.roles) WHERE value = 'admin')
  AND NOT EXISTS (SELECT 1 FROM json_each(users.scopes) WHERE value = 'admin');
