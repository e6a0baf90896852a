-- Delivery state: retry timing and provider progress on messages, circuit breakers on providers.

ALTER TABLE messages
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN provider_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN tried_provider_ids uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN ambiguous boolean NOT NULL DEFAULT false;
CREATE INDEX messages_retry_due_idx ON messages (next_attempt_at) WHERE status = 'QUEUED' AND next_attempt_at IS NOT NULL;
CREATE INDEX messages_in_flight_idx ON messages (updated_at) WHERE status IN ('SENDING', 'SENT');

ALTER TABLE providers
    ADD COLUMN circuit_state text NOT NULL DEFAULT 'CLOSED',
    ADD COLUMN circuit_opened_at timestamptz,
    ADD CONSTRAINT providers_circuit_check CHECK (circuit_state IN ('CLOSED', 'OPEN', 'HALF_OPEN'));
