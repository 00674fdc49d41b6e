-- Back to a row per token. Tokens of the new form cannot be hashed back: the sessions
-- stay, their holders log in again; tokens of the release before keep working.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    spent_at TIMESTAMP,
    successor_sealed BLOB
);
CREATE UNIQUE INDEX refresh_tokens_session_generation ON refresh_tokens (session_id, generation);
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (session_id, spent_at) WHERE successor_sealed IS NOT NULL;
INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at)
SELECT l.token_hash, l.session_id, l.generation, s.refreshed_at, s.expires_at
FROM legacy_refresh_tokens l JOIN sessions s ON s.id = l.session_id
WHERE l.generation = s.generation;
DROP TABLE legacy_refresh_tokens;
ALTER TABLE sessions DROP COLUMN refreshed_at;
ALTER TABLE sessions DROP COLUMN generation;
