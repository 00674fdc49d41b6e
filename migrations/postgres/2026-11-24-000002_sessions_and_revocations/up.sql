CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT,
    -- Scopes granted at login, space-separated; refreshes never widen them.
    scope TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- Absolute end of the session: caps every refresh token in it.
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_reason TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token, base64url: the token itself is never stored.
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    spent_at TIMESTAMP,
    -- The successor, encrypted under a key derived from this token, kept only for
    -- the reuse leeway so that concurrent refreshes converge on one successor.
    successor_sealed BYTEA
);
CREATE UNIQUE INDEX refresh_tokens_session_generation ON refresh_tokens (session_id, generation);

-- Durable record of every revocation; the revocation list (Redis) is refilled from it.
CREATE TABLE revocations (
    kind TEXT NOT NULL CHECK (kind IN ('jti', 'sid', 'sub')),
    subject TEXT NOT NULL,
    -- For 'sub': the cut-off (unix seconds); tokens issued before it are revoked.
    cutoff BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);
