-- DPoP (RFC 9449): the thumbprint of the key a session is bound to. A session opened
-- with a proof (first-party, or through a public client) refreshes only with a proof by
-- that key. Absent: the session is not bound. Not indexed, and never changed by a
-- rotation, so a rotation's update stays HOT on PostgreSQL.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;
