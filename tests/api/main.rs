//! Integration tests: the app on port 0, a fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod ambiguous;
mod auth_login;
mod auth_password;
mod auth_refresh;
mod auth_tokens;
mod bulk;
mod callbacks;
mod channels_end_to_end;
mod cli;
mod consumers;
mod delivery;
mod envelope;
mod faults;
mod health;
mod html_email;
mod idempotency;
mod internal_key;
mod kafka;
mod lanes;
mod messages;
mod metrics;
mod mock_providers;
mod openapi;
mod opt_outs;
mod outbox;
mod platform_events;
mod platform_tokens;
mod provider_health;
mod provider_wire;
mod providers;
mod replicas;
mod resilience;
mod sandbox_reports;
mod scheduler;
mod shutdown;
mod template_previews;
mod template_sync;
mod templates;
mod tenancy;
mod webhook_breaker;
mod webhook_delivery;
mod webhooks;
