-- Small durable facts about the deployment, one row each, created here so that code
-- only ever updates them (no insert races between instances).
CREATE TABLE markers (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);

-- 1 once the database has had an admin: the bootstrap admin is created only before that,
-- so deleting a compromised bootstrap admin is not undone by the next start.
INSERT INTO markers (name, value)
SELECT 'had_admin', CASE WHEN EXISTS (SELECT 1 FROM users WHERE roles::jsonb ? 'admin') THEN 1 ELSE 0 END;

-- Incremented by every transaction that records revocations: an instance that sees the
-- revocation list behind this number knows the list is missing something.
INSERT INTO markers (name, value) VALUES ('revocations', 0);
