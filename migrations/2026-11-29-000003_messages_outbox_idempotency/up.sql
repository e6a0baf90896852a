-- Messages, their delivery attempts, the transactional outbox and idempotency keys.

-- Tenants may come from an external auth service and exist only in its tokens: tenant-owned
-- rows carry the tenant id without requiring a local tenants row.
ALTER TABLE providers DROP CONSTRAINT providers_tenant_id_fkey;
ALTER TABLE templates DROP CONSTRAINT templates_tenant_id_fkey;
ALTER TABLE opt_outs DROP CONSTRAINT opt_outs_tenant_id_fkey;
ALTER TABLE webhooks DROP CONSTRAINT webhooks_tenant_id_fkey;

CREATE TABLE messages (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL,
    channel               text NOT NULL,
    recipient             text NOT NULL,
    status                text NOT NULL,
    subject               text,
    body                  text NOT NULL,
    template_id           uuid,
    template_version      integer,
    pinned_provider_id    uuid,
    provider_id           uuid,
    provider_kind         text,
    provider_message_id   text,
    attempts              integer NOT NULL DEFAULT 0,
    cost_usd_micros       bigint,
    error_code            text,
    error_message         text,
    metadata              jsonb NOT NULL DEFAULT '{}',
    source_event_id       text,
    scheduled_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    sent_at               timestamptz,
    delivered_at          timestamptz,
    read_at               timestamptz,
    failed_at             timestamptz,
    cancelled_at          timestamptz,
    CONSTRAINT messages_channel_check CHECK (channel IN ('SMS', 'WHATSAPP', 'EMAIL', 'PUSH', 'VOICE')),
    CONSTRAINT messages_status_check CHECK (status IN ('SCHEDULED', 'QUEUED', 'SENDING', 'SENT',
        'DELIVERED', 'READ', 'FAILED', 'UNDELIVERED', 'CANCELLED'))
);
CREATE INDEX messages_tenant_idx ON messages (tenant_id, id DESC);
CREATE INDEX messages_tenant_status_idx ON messages (tenant_id, status, id DESC);
CREATE INDEX messages_tenant_recipient_idx ON messages (tenant_id, recipient, id DESC);
CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at);
CREATE INDEX messages_scheduled_idx ON messages (scheduled_at) WHERE status = 'SCHEDULED';
CREATE UNIQUE INDEX messages_source_event_key ON messages (tenant_id, source_event_id)
    WHERE source_event_id IS NOT NULL;
CREATE INDEX messages_provider_message_idx ON messages (provider_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- One row per try with a provider, committed before the provider is called.
CREATE TABLE message_attempts (
    id                   uuid PRIMARY KEY,
    message_id           uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tenant_id            uuid NOT NULL,
    attempt_number       integer NOT NULL,
    provider_id          uuid NOT NULL,
    provider_kind        text NOT NULL,
    started_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    outcome              text,
    error_code           text,
    error_message        text,
    latency_ms           integer,
    provider_message_id  text,
    CONSTRAINT message_attempts_outcome_check CHECK (outcome IS NULL OR outcome IN ('ACCEPTED',
        'PERMANENT_FAILURE', 'TRANSIENT_FAILURE', 'RATE_LIMITED', 'AMBIGUOUS'))
);
CREATE INDEX message_attempts_message_idx ON message_attempts (message_id, attempt_number);

-- The transactional outbox: written in the same transaction as the change it describes,
-- drained afterwards. `seq` orders the events of one aggregate.
CREATE TABLE outbox_events (
    id               uuid PRIMARY KEY,
    seq              bigserial NOT NULL UNIQUE,
    tenant_id        uuid,
    aggregate_type   text NOT NULL,
    aggregate_id     uuid NOT NULL,
    topic            text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'PENDING',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_until      timestamptz,
    destinations_done text[] NOT NULL DEFAULT '{}',
    last_error       text,
    completed_at     timestamptz,
    CONSTRAINT outbox_events_status_check CHECK (status IN ('PENDING', 'DONE', 'DEAD'))
);
CREATE INDEX outbox_events_pending_idx ON outbox_events (next_attempt_at, seq) WHERE status = 'PENDING';
CREATE INDEX outbox_events_aggregate_idx ON outbox_events (aggregate_id, seq) WHERE status = 'PENDING';
CREATE INDEX outbox_events_done_idx ON outbox_events (completed_at) WHERE status = 'DONE';

-- Idempotency keys, scoped by tenant. The stored answer is replayed byte for byte.
CREATE TABLE idempotency_keys (
    tenant_id       uuid NOT NULL,
    key             text NOT NULL,
    method          text NOT NULL,
    path            text NOT NULL,
    fingerprint     bytea NOT NULL,
    status_code     integer NOT NULL,
    response_body   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
