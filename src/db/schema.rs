// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        name -> Text,
        roles -> Array<Nullable<Text>>,
        prefix -> Text,
        key_hash -> Bytea,
        plan_tier -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        actor_type -> Text,
        actor_id -> Text,
        action -> Text,
        resource_type -> Text,
        resource_id -> Text,
        request_id -> Nullable<Uuid>,
        changes -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    consumed_events (event_id) {
        event_id -> Text,
        topic -> Text,
        tenant_id -> Nullable<Uuid>,
        outcome -> Text,
        detail -> Nullable<Text>,
        consumed_at -> Timestamptz,
        payload -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key) {
        tenant_id -> Uuid,
        key -> Text,
        method -> Text,
        path -> Text,
        fingerprint -> Bytea,
        status_code -> Int4,
        response_body -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    job_runs (name, slot) {
        name -> Text,
        slot -> Timestamptz,
        owner -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Text,
        counts -> Jsonb,
        error -> Nullable<Text>,
    }
}

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
    message_attempts (id) {
        id -> Uuid,
        message_id -> Uuid,
        tenant_id -> Uuid,
        attempt_number -> Int4,
        provider_id -> Uuid,
        provider_kind -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        latency_ms -> Nullable<Int4>,
        provider_message_id -> Nullable<Text>,
        cost_usd_micros -> Nullable<Int8>,
    }
}

diesel::table! {
    message_chain_steps (chain_id, step) {
        chain_id -> Uuid,
        step -> Int2,
        tenant_id -> Uuid,
        channel -> Text,
        state -> Text,
        message_id -> Nullable<Uuid>,
        spec -> Nullable<Jsonb>,
        after_secs -> Nullable<Int4>,
        plan_tier -> Text,
        due_at -> Nullable<Timestamptz>,
        reason -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        channel -> Text,
        recipient -> Text,
        status -> Text,
        subject -> Nullable<Text>,
        body -> Text,
        template_id -> Nullable<Uuid>,
        template_version -> Nullable<Int4>,
        pinned_provider_id -> Nullable<Uuid>,
        provider_id -> Nullable<Uuid>,
        provider_kind -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        attempts -> Int4,
        cost_usd_micros -> Nullable<Int8>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        metadata -> Jsonb,
        source_event_id -> Nullable<Text>,
        scheduled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        read_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        provider_attempts -> Int4,
        tried_provider_ids -> Array<Nullable<Uuid>>,
        ambiguous -> Bool,
        notification_id -> Nullable<Text>,
        html_body -> Nullable<Text>,
        reply_to -> Nullable<Text>,
        priority -> Text,
        expires_at -> Nullable<Timestamptz>,
        chain_id -> Nullable<Uuid>,
        encoding -> Nullable<Text>,
        segments -> Nullable<Int4>,
        cost_currency -> Nullable<Text>,
        cost_amount_micros -> Nullable<Int8>,
        media -> Nullable<Jsonb>,
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
    outbox_events (id) {
        id -> Uuid,
        seq -> Int8,
        tenant_id -> Nullable<Uuid>,
        aggregate_type -> Text,
        aggregate_id -> Uuid,
        topic -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        destinations_done -> Array<Nullable<Text>>,
        last_error -> Nullable<Text>,
        completed_at -> Nullable<Timestamptz>,
        lane -> Int2,
    }
}

diesel::table! {
    provider_callback_events (provider_id, event_key) {
        provider_id -> Uuid,
        event_key -> Text,
        callback_id -> Uuid,
        tenant_id -> Uuid,
        message_id -> Nullable<Uuid>,
        outcome -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    provider_callbacks (id) {
        id -> Uuid,
        provider_id -> Uuid,
        tenant_id -> Uuid,
        kind -> Text,
        dedupe_key -> Text,
        headers -> Jsonb,
        body -> Bytea,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        error -> Nullable<Text>,
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
        circuit_state -> Text,
        circuit_opened_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    rate_limit_buckets (key) {
        key -> Text,
        tat -> Timestamptz,
        granted -> Int4,
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
        html_body -> Nullable<Text>,
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
        html_body -> Nullable<Text>,
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
    webhook_deliveries (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        webhook_id -> Uuid,
        event_id -> Text,
        topic -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        last_status_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_delivery_attempts (id) {
        id -> Int8,
        delivery_id -> Uuid,
        attempt -> Int4,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
        latency_ms -> Int4,
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
        consecutive_failures -> Int4,
        failing_since -> Nullable<Timestamptz>,
        paused_until -> Nullable<Timestamptz>,
        disabled_at -> Nullable<Timestamptz>,
        disabled_reason -> Nullable<Text>,
    }
}

diesel::joinable!(message_attempts -> messages (message_id));
diesel::joinable!(provider_callback_events -> provider_callbacks (callback_id));
diesel::joinable!(refresh_token_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_token_families (family_id));
diesel::joinable!(template_versions -> templates (template_id));
diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_delivery_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_log,
    consumed_events,
    idempotency_keys,
    job_runs,
    login_throttles,
    message_attempts,
    message_chain_steps,
    messages,
    opt_outs,
    outbox_events,
    provider_callback_events,
    provider_callbacks,
    providers,
    rate_limit_buckets,
    refresh_token_families,
    refresh_tokens,
    template_versions,
    templates,
    tenants,
    users,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhooks,
);
