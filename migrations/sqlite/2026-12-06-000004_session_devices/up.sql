-- Sessions and devices: what a user sees of each session. `user_agent` as sent at login
-- (at most 256 characters), `ip` the client address at login, `last_ip` the address of
-- the last rotation (written by the rotation's own update: no extra write). All three
-- are absent for sessions opened before this release. None is indexed, so a rotation's
-- update stays HOT on PostgreSQL.
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN last_ip TEXT;
