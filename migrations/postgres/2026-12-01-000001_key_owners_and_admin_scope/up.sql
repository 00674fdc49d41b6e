-- Every API key acts for a user, so that disabling or deleting that user stops it.
-- Keys made without an owner go to the oldest admin; with no admin left they could act
-- for nobody, and go.
UPDATE api_keys
SET owner_id = (SELECT id FROM users WHERE roles::jsonb ? 'admin' ORDER BY created_at, id LIMIT 1)
WHERE owner_id IS NULL;
DELETE FROM api_keys WHERE owner_id IS NULL;
ALTER TABLE api_keys ALTER COLUMN owner_id SET NOT NULL;

-- Administration by bearer token now needs the admin role and the admin scope: admins
-- keep the power they had.
UPDATE users
SET scopes = (scopes::jsonb || '["admin"]'::jsonb)::text
WHERE roles::jsonb ? 'admin' AND NOT scopes::jsonb ? 'admin';
