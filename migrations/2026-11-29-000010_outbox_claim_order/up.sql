-- The claim walks pending events in `seq` order and stops after its batch; with only the
-- (next_attempt_at, seq) index it had to sort every pending event first.
CREATE INDEX outbox_events_pending_seq_idx ON outbox_events (seq) WHERE status = 'PENDING';
