ALTER TABLE messages DROP COLUMN notification_id;
