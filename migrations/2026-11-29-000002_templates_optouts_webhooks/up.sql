-- Message templates, with every version's content kept.
CREATE TABLE templates (
    id                      uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                    text NOT NULL,
    channel                 text NOT NULL,
    locale                  text NOT NULL DEFAULT 'en',
    subject                 text,
    body                    text NOT NULL,
    variables               text[] NOT NULL DEFAULT '{}',
    status                  text NOT NULL DEFAULT 'APPROVED',
    provider_template_name  text,
    version                 integer NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    CONSTRAINT templates_channel_check CHECK (channel IN ('SMS', 'WHATSAPP', 'EMAIL', 'PUSH', 'VOICE')),
    CONSTRAINT templates_status_check CHECK (status IN ('APPROVED', 'PENDING', 'REJECTED', 'PAUSED', 'DISABLED')),
    CONSTRAINT templates_version_check CHECK (version >= 1)
);
CREATE UNIQUE INDEX templates_tenant_name_key ON templates (tenant_id, name, channel, locale)
    WHERE deleted_at IS NULL;
CREATE INDEX templates_tenant_idx ON templates (tenant_id, id) WHERE deleted_at IS NULL;

CREATE TABLE template_versions (
    template_id  uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    name         text NOT NULL,
    locale       text NOT NULL,
    status       text NOT NULL,
    subject      text,
    body         text NOT NULL,
    variables    text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

-- The opt-out ledger. Removing an opt-out stamps removed_at; the row stays as history.
-- Recipients are stored normalised (E.164, lower-cased e-mail, device token as given).
CREATE TABLE opt_outs (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    recipient   text NOT NULL,
    channel     text NOT NULL,
    source      text NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz,
    CONSTRAINT opt_outs_channel_check CHECK (channel IN ('SMS', 'WHATSAPP', 'EMAIL', 'PUSH', 'VOICE', 'ALL')),
    CONSTRAINT opt_outs_source_check CHECK (source IN ('API', 'STOP_KEYWORD', 'PROVIDER', 'BOUNCE', 'COMPLAINT'))
);
-- Also the look-up index of the send path: (tenant, recipient) then channel.
CREATE UNIQUE INDEX opt_outs_active_key ON opt_outs (tenant_id, recipient, channel)
    WHERE removed_at IS NULL;
CREATE INDEX opt_outs_tenant_idx ON opt_outs (tenant_id, id) WHERE removed_at IS NULL;

-- Tenant webhook subscriptions. The signing secret is AES-256-GCM sealed.
CREATE TABLE webhooks (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url               text NOT NULL,
    events            text[] NOT NULL,
    secret_encrypted  bytea NOT NULL,
    is_active         boolean NOT NULL DEFAULT true,
    description       text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT webhooks_events_not_empty CHECK (cardinality(events) > 0)
);
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id, id) WHERE deleted_at IS NULL;
