-- Security events (RFC 8417 SETs, delivered by RFC 8936 poll): an outbox written in the
-- transaction of the change that causes them, so a change that rolls back emits nothing.
-- An event's position is the revocation generation its transaction took (transactions
-- that record revocations are serialized on that marker, so positions follow commit
-- order) and its index within the transaction.
CREATE TABLE security_events (
    generation BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    -- The tenant whose subjects it concerns; NULL: every tenant (a withdrawn key).
    tenant_id TEXT,
    event_type TEXT NOT NULL,
    -- The event's member of the SET's `events` claim, JSON.
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (generation, idx)
);
CREATE INDEX security_events_created_at ON security_events (created_at);

-- Each events key's cursor: every event up to (generation, idx) is acknowledged.
CREATE TABLE event_cursors (
    api_key_id TEXT PRIMARY KEY NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    idx INTEGER NOT NULL
);

-- Events acknowledged beyond a key's cursor (out of order).
CREATE TABLE event_acks (
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, generation, idx)
);
