//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the Scalar
//! playground, both served from the binary (no network).

mod conventions;

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::envelope::{ErrorEnvelope, Meta, Page};
use crate::routes;
use crate::state::AppState;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "internal_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-internal-api-key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cpaas-orchestrator",
        description = "One API for SMS, e-mail, WhatsApp, push and voice across providers.\n\n\
Every JSON answer is the envelope `{ data, error, page, meta }`; errors carry a stable `ERR_` code \
(see `ErrorEnvelope`). Log in at `POST /auth/v1/login` and send the access token as \
`Authorization: Bearer <token>`. The JWKS is served as a bare JWK set \
(`application/jwk-set+json`), as JWKS clients expect.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::me,
        routes::auth::change_password,
        routes::auth::jwks,
        routes::providers::list_providers,
        routes::providers::create_provider,
        routes::providers::get_provider,
        routes::providers::update_provider,
        routes::providers::delete_provider,
        routes::providers::get_provider_health,
        routes::templates::list_templates,
        routes::templates::create_template,
        routes::templates::get_template,
        routes::templates::update_template,
        routes::templates::delete_template,
        routes::templates::preview_template,
        routes::templates::list_template_versions,
        routes::opt_outs::list_opt_outs,
        routes::opt_outs::create_opt_out,
        routes::opt_outs::check_opt_out,
        routes::opt_outs::delete_opt_out,
        routes::webhooks::list_webhooks,
        routes::webhooks::create_webhook,
        routes::webhooks::get_webhook,
        routes::webhooks::update_webhook,
        routes::webhooks::delete_webhook,
        routes::webhooks::rotate_webhook_secret,
        routes::webhooks::list_webhook_deliveries,
        routes::webhooks::retry_webhook_delivery,
        routes::api_keys::list_api_keys,
        routes::api_keys::create_api_key,
        routes::api_keys::revoke_api_key,
        routes::audit::list_audit_log,
        routes::health::healthz,
        routes::health::readyz,
        routes::jobs::run_job,
        routes::internal::process_outbox,
        routes::internal::list_dead,
        routes::internal::redrive,
        routes::internal::sync_templates,
        routes::metrics::metrics,
        routes::messages::send_message,
        routes::messages::send_bulk,
        routes::messages::estimate_messages,
        routes::messages::list_messages,
        routes::messages::get_message,
        routes::messages::list_attempts,
        routes::messages::cancel_message,
        routes::usage::get_usage,
        routes::callbacks::receive_callback,
        routes::callbacks::verify_meta_subscription,
        routes::docs::openapi_json,
        routes::docs::docs_page,
        routes::docs::docs_script,
    ),
    components(schemas(ErrorEnvelope, crate::error::ErrorBody, Meta, Page)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Login, token refresh and logout"),
        (name = "providers", description = "Providers a tenant sends through"),
        (name = "messages", description = "Send and follow messages"),
        (name = "usage", description = "Counts and cost"),
        (name = "templates", description = "Message templates (minijinja syntax), their previews and version history"),
        (name = "opt-outs", description = "The opt-out ledger: recipients who must not be contacted, per channel or on ALL channels"),
        (name = "webhooks", description = "Tenant webhook subscriptions to lifecycle events, signed with a per-webhook secret"),
        (name = "audit-log", description = "Who changed the tenant's providers, webhooks, templates, opt-outs, API keys and users, when, in which request, and what changed (never a secret)"),
        (name = "api-keys", description = "Tenant API keys for server-to-server callers: `Authorization: Bearer cpk_…` wherever an access token is accepted"),
        (name = "provider-callbacks", description = "Delivery receipts, inbound messages and template statuses posted by providers, each verified by the provider's own signature"),
        (name = "internal", description = "Health and operator endpoints"),
        (name = "docs", description = "This document and its playground"),
    )
)]
pub struct ApiDoc;

/// The methods the documented routes accept at `path` (empty when no route matches it).
pub fn methods_for_path(path: &str) -> Vec<String> {
    static ROUTES: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let segments = template.split('/').map(str::to_owned).collect();
                let methods = serde_json::to_value(item)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .map(|ops| {
                        ops.keys()
                            .filter(|k| {
                                matches!(k.as_str(), "get" | "post" | "put" | "patch" | "delete")
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                (segments, methods)
            })
            .collect()
    });
    let parts: Vec<&str> = path.split('/').collect();
    let mut allowed: Vec<String> = routes
        .iter()
        .filter(|(segments, _)| {
            segments.len() == parts.len()
                && segments.iter().zip(&parts).all(|(s, p)| {
                    s == p || (s.starts_with('{') && s.ends_with('}') && !p.is_empty())
                })
        })
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect();
    allowed.sort();
    allowed.dedup();
    allowed
}

/// The document with the answers every operation shares, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
        conventions::apply(&mut doc);
        doc
    })
}

/// The document as served: its one server is `PUBLIC_BASE_URL`, or else the origin the request
/// reached, so that the playground's snippets are absolute.
fn served_document(base_url: &str) -> Value {
    let mut doc = document().clone();
    doc["servers"] = json!([{ "url": base_url }]);
    doc
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json)
        .service(docs_page)
        .service(docs_script);
}

const INDEX_HTML: &str = include_str!("../../../assets/scalar/index.html");
const SCALAR_JS: &[u8] = include_bytes!("../../../assets/scalar/standalone.js");

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(tag = "docs", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[get("/cpaas/v1/openapi.json")]
pub async fn openapi_json(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base_url = match &state.settings.public_base_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    HttpResponse::Ok().json(served_document(&base_url))
}

/// The Scalar API playground.
#[utoipa::path(tag = "docs", responses((status = 200, description = "HTML page", content_type = "text/html")))]
#[get("/cpaas/v1/docs")]
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

/// The Scalar bundle the playground loads.
#[utoipa::path(tag = "docs", responses((status = 200, description = "The playground's script", content_type = "application/javascript")))]
#[get("/cpaas/v1/docs/standalone.js")]
pub async fn docs_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(SCALAR_JS)
}
