ALTER TABLE signing_keys DROP COLUMN deactivated_at;
