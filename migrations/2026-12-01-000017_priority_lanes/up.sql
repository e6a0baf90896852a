-- Priority lanes: a message's priority, and the lane of its outbox events (0 high, 1 normal,
-- 2 bulk). The drain serves lower lanes first and, within a lane, tenants in turn: the index
-- walks the pending events lane by lane and tenant by tenant (events without a tenant count
-- as one), each tenant's in order.
ALTER TABLE messages ADD COLUMN priority text NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('high', 'normal', 'bulk'));
ALTER TABLE outbox_events ADD COLUMN lane smallint NOT NULL DEFAULT 1
    CHECK (lane BETWEEN 0 AND 2);
CREATE INDEX outbox_events_lane_tenant_idx ON outbox_events
    (lane, (COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq)
    WHERE status = 'PENDING';
