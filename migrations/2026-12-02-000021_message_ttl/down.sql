DROP INDEX messages_expiring_idx;
ALTER TABLE messages DROP COLUMN expires_at;
