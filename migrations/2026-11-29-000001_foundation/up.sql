-- Tenants, users and the authentication state kept by the token service.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    plan_tier   text NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email                text NOT NULL,
    password_hash        text NOT NULL,
    roles                text[] NOT NULL DEFAULT '{}',
    is_active            boolean NOT NULL DEFAULT true,
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lowercase CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_tenant_idx ON users (tenant_id);

-- A family is every refresh token descended from one login. Re-use of a rotated
-- token revokes the whole family.
CREATE TABLE refresh_token_families (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    family_id   uuid NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Failed logins per account (normalised e-mail), shared by every replica and kept across restarts.
CREATE TABLE login_throttles (
    account          text PRIMARY KEY,
    failures         integer NOT NULL DEFAULT 0,
    window_start     timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Providers a tenant sends through. Credentials are AES-256-GCM encrypted; only their
-- key names are kept in clear so reads can say which are set.
CREATE TABLE providers (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    kind                  text NOT NULL,
    channels              text[] NOT NULL,
    priority              integer NOT NULL DEFAULT 100,
    is_active             boolean NOT NULL DEFAULT true,
    config                jsonb NOT NULL DEFAULT '{}',
    credentials_encrypted bytea NOT NULL,
    credential_keys       text[] NOT NULL DEFAULT '{}',
    health_state          text NOT NULL DEFAULT 'HEALTHY',
    consecutive_failures  integer NOT NULL DEFAULT 0,
    last_error            text,
    health_changed_at     timestamptz NOT NULL DEFAULT now(),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    CONSTRAINT providers_kind_check CHECK (kind IN ('TWILIO', 'META_WHATSAPP', 'VONAGE', 'AWS_SNS',
        'SENDGRID', 'AWS_SES', 'FCM', 'SANDBOX')),
    CONSTRAINT providers_health_check CHECK (health_state IN ('HEALTHY', 'DEGRADED', 'UNHEALTHY'))
);
CREATE INDEX providers_tenant_idx ON providers (tenant_id, priority, id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX providers_tenant_name_key ON providers (tenant_id, name) WHERE deleted_at IS NULL;
