//! The envelope, pinned by exact JSON, for answers of handlers and of actix itself.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{admin_token, code, json, spawn_app, token};

const REQUEST_ID: &str = "6f1d7a52-3c1b-4f0e-9a57-2b7c3e1d0a99";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[actix_web::test]
async fn a_success_is_the_envelope_with_the_request_and_trace_ids() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/cpaas/v1/_internal/healthz"))
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], REQUEST_ID);
    let (status, body) = json(res).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "data": { "status": "ok" },
            "error": null,
            "page": null,
            "meta": { "request_id": REQUEST_ID, "trace_id": TRACE_ID, "tenant_id": null }
        })
    );
}

#[actix_web::test]
async fn a_list_carries_its_page_and_the_callers_tenant() {
    let app = spawn_app().await;
    let tenant = uuid::Uuid::now_v7();
    let res = app
        .client
        .get(app.url("/cpaas/v1/providers"))
        .bearer_auth(token(tenant, &["admin"], "free"))
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "data": [],
            "error": null,
            "page": { "next_cursor": null, "has_more": false, "limit": 20 },
            "meta": { "request_id": REQUEST_ID, "trace_id": TRACE_ID, "tenant_id": tenant.to_string() }
        })
    );
}

#[actix_web::test]
async fn a_validation_error_names_the_field_in_details() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/cpaas/v1/providers"))
        .bearer_auth(admin_token())
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .json(&json!({ "name": "  ", "kind": "SANDBOX" }))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "data": null,
            "error": {
                "code": "ERR_CPAAS_VALIDATION_FAILED",
                "message": "name: must be 1 to 100 characters",
                "http": 400,
                "details": [{ "field": "name", "message": "must be 1 to 100 characters" }]
            },
            "page": null,
            "meta": {
                "request_id": REQUEST_ID,
                "trace_id": TRACE_ID,
                "tenant_id": "00000000-0000-0000-0000-000000000001"
            }
        })
    );
}

#[actix_web::test]
async fn an_unknown_route_is_a_404_envelope() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/cpaas/v1/nothing-here"))
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], REQUEST_ID);
    let (status, body) = json(res).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({
            "data": null,
            "error": {
                "code": "ERR_CPAAS_NOT_FOUND",
                "message": "no route matches this path",
                "http": 404
            },
            "page": null,
            "meta": { "request_id": REQUEST_ID, "trace_id": TRACE_ID, "tenant_id": null }
        })
    );
}

#[actix_web::test]
async fn a_wrong_method_is_a_405_envelope() {
    let app = spawn_app().await;
    let res = app
        .client
        .put(app.url("/cpaas/v1/_internal/healthz"))
        .header("x-request-id", REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 405);
    assert_eq!(
        body,
        json!({
            "data": null,
            "error": {
                "code": "ERR_CPAAS_METHOD_NOT_ALLOWED",
                "message": "method not allowed on this route",
                "http": 405
            },
            "page": null,
            "meta": { "request_id": REQUEST_ID, "trace_id": TRACE_ID, "tenant_id": null }
        })
    );
}

#[actix_web::test]
async fn malformed_json_is_a_400_envelope() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/v1/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
    assert_eq!(body["data"], json!(null));
    assert_eq!(body["error"]["details"][0]["field"], "body");
    assert!(body["meta"]["request_id"].is_string());
}

#[actix_web::test]
async fn an_oversized_body_is_a_413_envelope() {
    let app = spawn_app().await;
    let big = "x".repeat(cpaas::http::envelope::JSON_LIMIT_BYTES + 10);
    let res = app
        .client
        .post(app.url("/auth/v1/login"))
        .header("content-type", "application/json")
        .body(format!("{{\"email\":\"{big}\",\"password\":\"p\"}}"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 413);
    assert_eq!(code(&body), "ERR_CPAAS_PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_a_415_envelope() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/v1/login"))
        .header("content-type", "text/plain")
        .body("email=a")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 415);
    assert_eq!(code(&body), "ERR_CPAAS_UNSUPPORTED_MEDIA_TYPE");
}

#[actix_web::test]
async fn a_bad_query_string_is_a_400_envelope() {
    let app = spawn_app().await;
    let res = app
        .request(
            Method::GET,
            "/cpaas/v1/providers?limit=lots",
            Some(&admin_token()),
            None,
        )
        .await;
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
    assert_eq!(body["error"]["details"][0]["field"], "query");
}

#[actix_web::test]
async fn a_request_id_that_is_not_a_uuid_is_replaced_by_a_fresh_one() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/cpaas/v1/_internal/healthz"))
        .header("x-request-id", "not-a-uuid")
        .send()
        .await
        .unwrap();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&header).is_ok());
    let (_, body) = json(res).await;
    assert_eq!(body["meta"]["request_id"], header);
    assert_eq!(body["meta"]["trace_id"].as_str().unwrap().len(), 32);
}
