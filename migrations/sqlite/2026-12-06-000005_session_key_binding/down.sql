ALTER TABLE sessions DROP COLUMN dpop_jkt;
