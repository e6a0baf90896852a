DROP INDEX IF EXISTS outbox_events_pending_seq_idx;
