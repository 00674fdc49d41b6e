DROP TABLE revocations;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
