CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    -- Lower-cased username: usernames are unique and compared case-insensitively.
    username_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    scopes TEXT NOT NULL DEFAULT '[]',
    claims TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('next', 'current', 'retiring', 'retired')),
    public_jwk TEXT NOT NULL,
    -- AES-256-GCM(nonce || ciphertext || tag) of the PKCS#8 document; NULL once retired.
    private_key BLOB,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP
);

-- Never two signing keys at once, whatever instances race.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (status) WHERE status = 'current';
