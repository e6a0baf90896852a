-- Every change to a tenant's providers, webhooks, templates, opt-outs, API keys and users,
-- written in the transaction of the change: who (a user or an API key), what, which request,
-- and what changed, without secrets.
CREATE TABLE audit_log (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    actor_type     text NOT NULL,
    actor_id       text NOT NULL,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text NOT NULL,
    request_id     uuid,
    changes        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_resource_idx ON audit_log (tenant_id, resource_type, resource_id, id DESC);
