DROP TABLE idempotency_keys;
DROP TABLE outbox_events;
DROP TABLE message_attempts;
DROP TABLE messages;
