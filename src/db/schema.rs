// @generated automatically by Diesel CLI.

diesel::table! {
    login_throttles (account) {
        account -> Text,
        failures -> Int4,
        window_start -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    opt_outs (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        recipient -> Text,
        channel -> Text,
        source -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
        removed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    providers (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        kind -> Text,
        channels -> Array<Nullable<Text>>,
        priority -> Int4,
        is_active -> Bool,
        config -> Jsonb,
        credentials_encrypted -> Bytea,
        credential_keys -> Array<Nullable<Text>>,
        health_state -> Text,
        consecutive_failures -> Int4,
        last_error -> Nullable<Text>,
        health_changed_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_token_families (id) {
        id -> Uuid,
        user_id -> Uuid,
        tenant_id -> Uuid,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    template_versions (template_id, version) {
        template_id -> Uuid,
        version -> Int4,
        name -> Text,
        locale -> Text,
        status -> Text,
        subject -> Nullable<Text>,
        body -> Text,
        variables -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    templates (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        channel -> Text,
        locale -> Text,
        subject -> Nullable<Text>,
        body -> Text,
        variables -> Array<Nullable<Text>>,
        status -> Text,
        provider_template_name -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        plan_tier -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        password_hash -> Text,
        roles -> Array<Nullable<Text>>,
        is_active -> Bool,
        password_changed_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        url -> Text,
        events -> Array<Nullable<Text>>,
        secret_encrypted -> Bytea,
        is_active -> Bool,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(opt_outs -> tenants (tenant_id));
diesel::joinable!(providers -> tenants (tenant_id));
diesel::joinable!(refresh_token_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_token_families (family_id));
diesel::joinable!(template_versions -> templates (template_id));
diesel::joinable!(templates -> tenants (tenant_id));
diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(webhooks -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    login_throttles,
    opt_outs,
    providers,
    refresh_token_families,
    refresh_tokens,
    template_versions,
    templates,
    tenants,
    users,
    webhooks,
);
