DROP INDEX consumed_events_poison_idx;
ALTER TABLE consumed_events DROP COLUMN payload;
