ALTER TABLE sessions DROP COLUMN last_ip;
ALTER TABLE sessions DROP COLUMN ip;
ALTER TABLE sessions DROP COLUMN user_agent;
