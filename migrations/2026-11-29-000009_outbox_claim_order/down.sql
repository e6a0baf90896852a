ALTER TABLE outbox_events RESET (fillfactor);
CREATE INDEX IF NOT EXISTS outbox_events_pending_idx ON outbox_events (next_attempt_at, seq) WHERE status = 'PENDING';
DROP INDEX IF EXISTS outbox_events_pending_seq_idx;
