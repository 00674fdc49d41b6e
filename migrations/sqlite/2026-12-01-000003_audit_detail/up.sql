-- What a plain action name cannot say: the fields a user.update changed, or how many
-- similar events one row stands for.
ALTER TABLE audit_events ADD COLUMN detail TEXT;
