-- The claim walks pending events in `seq` order and stops after its batch; with only the
-- (next_attempt_at, seq) index it had to collect and sort every pending event first. The new
-- index replaces that one (nothing else reads it).
CREATE INDEX outbox_events_pending_seq_idx ON outbox_events (seq) WHERE status = 'PENDING';
DROP INDEX IF EXISTS outbox_events_pending_idx;
-- Room on each page, so the lease update of a claim can be a heap-only update (no new index
-- entries for a row whose indexed columns did not change).
ALTER TABLE outbox_events SET (fillfactor = 80);
