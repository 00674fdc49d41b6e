-- Emergency withdrawal: a key whose private part may have leaked becomes `withdrawn`
-- (terminal). It is kept for audit, never signs, verifies or is published again; its
-- `retired_at` is when it left JWKS. Its tokens are refused at once on every instance
-- through a revocation entry of kind `kid`, listed until every token it signed expired.
-- SQLite cannot change a CHECK: both tables are rebuilt (nothing references them).
CREATE TABLE signing_keys_new (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('next', 'current', 'retiring', 'retired', 'withdrawn')),
    public_jwk TEXT NOT NULL,
    -- AES-256-GCM(nonce || ciphertext || tag) of the PKCS#8 document; NULL once retired.
    private_key BLOB,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP,
    deactivated_at TIMESTAMP
);
INSERT INTO signing_keys_new
    SELECT kid, alg, status, public_jwk, private_key, created_at, activated_at, retired_at, deactivated_at
    FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (status) WHERE status = 'current';

CREATE TABLE revocations_new (
    kind TEXT NOT NULL CHECK (kind IN ('jti', 'sid', 'sub', 'tenant', 'kid')),
    subject TEXT NOT NULL,
    cutoff BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, subject)
);
INSERT INTO revocations_new SELECT kind, subject, cutoff, expires_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_expires_at ON revocations (expires_at);
