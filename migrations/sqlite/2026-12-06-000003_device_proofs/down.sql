ALTER TABLE users DROP COLUMN device_epoch;
