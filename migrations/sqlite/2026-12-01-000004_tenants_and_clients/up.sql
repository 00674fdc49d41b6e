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
VALUES ('default', 'Default', TRUE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);

-- SQLite cannot add a column with a REFERENCES clause and a non-NULL default while
-- foreign keys are on: the tenant is checked by the application (a tenant is deleted only
-- when nothing belongs to it); PostgreSQL also enforces it.
ALTER TABLE users ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
-- Usernames are unique per tenant: the unique key becomes '<tenant>:<lower-cased name>'
-- (':' appears in neither a tenant id nor a username).
UPDATE users SET username_key = 'default:' || username_key;
CREATE INDEX users_tenant ON users (tenant_id);

ALTER TABLE api_keys ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
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

-- A tenant's cut-off, like a user's: its tokens issued before it are revoked. SQLite
-- cannot change a CHECK: the table is rebuilt (nothing references it).
CREATE TABLE revocations_new (
    kind TEXT NOT NULL CHECK (kind IN ('jti', 'sid', 'sub', 'tenant')),
    subject TEXT NOT NULL,
    cutoff BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, subject)
);
INSERT INTO revocations_new SELECT kind, subject, cutoff, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_expires_at ON revocations (expires_at);

-- Before clients were registered, client_id at login was a free-text label. Sessions
-- opened then keep it as a label: they rotate first-party, as they did, and are never
-- taken for a registered client of the same name.
ALTER TABLE sessions ADD COLUMN legacy_client BOOLEAN NOT NULL DEFAULT 0;
UPDATE sessions SET legacy_client = 1 WHERE client_id IS NOT NULL;
