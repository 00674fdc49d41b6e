-- Tenants: every user, API key and client belongs to exactly one. Data that existed
-- before tenants belongs to 'default', which can be neither disabled nor deleted.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO tenants (id, name, enabled, created_at, updated_at)
VALUES ('default', 'Default', TRUE, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC');

ALTER TABLE users ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default' REFERENCES tenants (id);
-- Usernames are unique per tenant: the unique key becomes '<tenant>:<lower-cased name>'
-- (':' appears in neither a tenant id nor a username).
UPDATE users SET username_key = 'default:' || username_key;
CREATE INDEX users_tenant ON users (tenant_id);

ALTER TABLE api_keys ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default' REFERENCES tenants (id);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Registered OAuth clients; the secret only as a hash.
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash TEXT,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX clients_tenant ON clients (tenant_id);

-- A tenant's cut-off, like a user's: its tokens issued before it are revoked.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check CHECK (kind IN ('jti', 'sid', 'sub', 'tenant'));

-- Before clients were registered, client_id at login was a free-text label. Sessions
-- opened then keep it as a label: they rotate first-party, as they did, and are never
-- taken for a registered client of the same name.
ALTER TABLE sessions ADD COLUMN legacy_client BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET legacy_client = TRUE WHERE client_id IS NOT NULL;
