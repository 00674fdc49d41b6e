-- Device proofs carry the epoch they were issued in; a password change or a disable
-- moves the user to the next epoch, which ends every proof issued before.
ALTER TABLE users ADD COLUMN device_epoch BIGINT NOT NULL DEFAULT 0;
