-- One row per session: the session keeps its head's generation and issue time, and a
-- refresh token is (session, generation, MAC) with the MAC's key outside the database,
-- so nothing per token is stored and a rotation is one conditional update of this row.
-- generation and refreshed_at are in no index, so that update can be HOT.
ALTER TABLE sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN refreshed_at TIMESTAMP;
UPDATE sessions s SET generation = h.generation, refreshed_at = h.created_at
FROM refresh_tokens h
WHERE h.session_id = s.id AND h.spent_at IS NULL;
UPDATE sessions SET refreshed_at = created_at WHERE refreshed_at IS NULL;
ALTER TABLE sessions ALTER COLUMN refreshed_at SET NOT NULL;
ALTER TABLE sessions ALTER COLUMN generation DROP DEFAULT;

-- Tokens of the release before, so that its live sessions keep working: for each live
-- session its head and the head's predecessor, by hash. Such a token stands for its
-- (session, generation) and follows the same rules; its first rotation hands out a token
-- of the new form. Rows go with their sessions; the table can go once every session
-- opened before this release has ended (TOKENMINT_SESSION_TTL after the upgrade).
CREATE TABLE legacy_refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL
);
INSERT INTO legacy_refresh_tokens (token_hash, session_id, generation)
SELECT r.token_hash, r.session_id, r.generation
FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
WHERE s.revoked_at IS NULL AND r.generation >= s.generation - 1;
CREATE INDEX legacy_refresh_tokens_session ON legacy_refresh_tokens (session_id);

DROP TABLE refresh_tokens;
