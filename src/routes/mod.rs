//! HTTP routes, one module per resource.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod callbacks;
pub mod docs;
pub mod fallback;
pub mod health;
pub mod internal;
pub mod jobs;
pub mod messages;
pub mod metrics;
pub mod opt_outs;
pub mod providers;
pub mod templates;
pub mod usage;
pub mod webhooks;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    docs::configure(cfg);
    auth::configure(cfg);
    providers::configure(cfg);
    messages::configure(cfg);
    usage::configure(cfg);
    templates::configure(cfg);
    opt_outs::configure(cfg);
    webhooks::configure(cfg);
    api_keys::configure(cfg);
    audit::configure(cfg);
    internal::configure(cfg);
    metrics::configure(cfg);
    jobs::configure(cfg);
    callbacks::configure(cfg);
}
