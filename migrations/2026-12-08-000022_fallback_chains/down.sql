DROP TABLE message_chain_steps;
DROP INDEX messages_chain_idx;
ALTER TABLE messages DROP COLUMN chain_id;
