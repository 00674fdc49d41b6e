-- Sessions opened through a client that has since been deleted end now: deleting a
-- client ends its sessions from this release on, and one registered again under the
-- same client_id must not bring earlier ones back.
UPDATE sessions
SET revoked_at = CURRENT_TIMESTAMP, revoked_reason = 'client deleted'
WHERE revoked_at IS NULL
  AND client_id IS NOT NULL
  AND legacy_client = FALSE
  AND client_id NOT IN (SELECT client_id FROM clients);
