-- The tokens whose sealed successor is still kept, by session: at most the few spent
-- within the reuse leeway. A rotation wipes the older ones through this index instead of
-- reading every token the session ever had (a long session has one row per rotation).
CREATE INDEX refresh_tokens_sealed ON refresh_tokens (session_id, spent_at) WHERE successor_sealed IS NOT NULL;
