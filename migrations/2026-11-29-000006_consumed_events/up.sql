-- Events consumed from the bus, by event id: a redelivered event is recognised and skipped.
CREATE TABLE consumed_events (
    event_id     text PRIMARY KEY,
    topic        text NOT NULL,
    tenant_id    uuid,
    outcome      text NOT NULL,
    detail       text,
    consumed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consumed_events_consumed_at_idx ON consumed_events (consumed_at);
