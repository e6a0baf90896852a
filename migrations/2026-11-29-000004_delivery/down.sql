ALTER TABLE providers DROP CONSTRAINT providers_circuit_check, DROP COLUMN circuit_opened_at, DROP COLUMN circuit_state;
DROP INDEX messages_in_flight_idx;
DROP INDEX messages_retry_due_idx;
ALTER TABLE messages DROP COLUMN ambiguous, DROP COLUMN tried_provider_ids, DROP COLUMN provider_attempts, DROP COLUMN next_attempt_at;
