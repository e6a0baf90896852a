//! The OpenAPI document and the Scalar playground, both served from the binary (no network).

use actix_web::{HttpResponse, get, web};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json)
        .service(docs_page)
        .service(docs_script);
}

const INDEX_HTML: &str = include_str!("../../assets/scalar/index.html");
const SCALAR_JS: &[u8] = include_bytes!("../../assets/scalar/standalone.js");

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(tag = "docs", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[get("/cpaas/v1/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::document_json())
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
#[get("/cpaas/v1/docs/standalone.js")]
pub async fn docs_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(SCALAR_JS)
}
