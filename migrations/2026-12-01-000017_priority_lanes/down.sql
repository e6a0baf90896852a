DROP INDEX IF EXISTS outbox_events_lane_tenant_idx;
ALTER TABLE outbox_events DROP COLUMN IF EXISTS lane;
ALTER TABLE messages DROP COLUMN IF EXISTS priority;
