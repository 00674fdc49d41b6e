CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the whole key, base64url: the secret is never stored.
    key_hash TEXT NOT NULL UNIQUE,
    -- First 12 characters, for people to recognise a key.
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    last_used_ip TEXT
);
CREATE INDEX api_keys_owner_id ON api_keys (owner_id);

CREATE TABLE audit_events (
    -- UUIDv7: ordering by id is ordering by time.
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    outcome TEXT NOT NULL
);
