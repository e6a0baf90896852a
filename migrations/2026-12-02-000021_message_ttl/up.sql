-- A send's validity window (`ttl_secs`): a message not handed to a provider by then ends FAILED
-- with EXPIRED. The index finds the queued ones whose window closed.
ALTER TABLE messages ADD COLUMN expires_at timestamptz;
CREATE INDEX messages_expiring_idx ON messages (expires_at)
    WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
