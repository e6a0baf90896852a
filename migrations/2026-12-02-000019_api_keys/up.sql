-- Tenant API keys for server-to-server callers. Only a SHA-256 of the key is kept (the key is
-- 32 random bytes, so a fast hash is enough); `prefix` is its first characters, to tell keys
-- apart in lists. `plan_tier` is the creator's tier, used when the tenant has no row of its own.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    name          text NOT NULL,
    roles         text[] NOT NULL,
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    plan_tier     text NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id DESC);
