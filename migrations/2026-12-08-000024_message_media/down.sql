ALTER TABLE messages DROP COLUMN media;
