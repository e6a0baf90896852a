-- Provider callbacks: every verified request is stored raw before anything is applied, keyed
-- by its identity at the provider so a redelivery is recognised; every event inside it claims
-- its own identity in the transaction that applies it, so a batch redelivered in another
-- shape still changes nothing twice.
CREATE TABLE provider_callbacks (
    id            uuid PRIMARY KEY,
    provider_id   uuid NOT NULL,
    tenant_id     uuid NOT NULL,
    kind          text NOT NULL,
    dedupe_key    text NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}',
    body          bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    outcome       text,
    error         text,
    CONSTRAINT provider_callbacks_outcome_check CHECK (outcome IS NULL OR outcome IN
        ('APPLIED', 'UNCHANGED', 'DUPLICATE', 'UNMATCHED', 'CONFIRMED', 'IGNORED'))
);
CREATE UNIQUE INDEX provider_callbacks_dedupe_key ON provider_callbacks (provider_id, dedupe_key);
CREATE INDEX provider_callbacks_received_idx ON provider_callbacks (received_at);
CREATE INDEX provider_callbacks_unprocessed_idx ON provider_callbacks (received_at)
    WHERE processed_at IS NULL;

-- One row per provider event applied (or found to need nothing), claimed in the same
-- transaction as the change it caused.
CREATE TABLE provider_callback_events (
    provider_id  uuid NOT NULL,
    event_key    text NOT NULL,
    callback_id  uuid NOT NULL REFERENCES provider_callbacks (id) ON DELETE CASCADE,
    tenant_id    uuid NOT NULL,
    message_id   uuid,
    outcome      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_id, event_key)
);
CREATE INDEX provider_callback_events_callback_idx ON provider_callback_events (callback_id);
CREATE INDEX provider_callback_events_message_idx ON provider_callback_events (message_id)
    WHERE message_id IS NOT NULL;
