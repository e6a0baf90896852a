//! `sync-templates`: Meta's template list (Graph wire format, cursor paging) against wiremock,
//! applied to the tenant's WhatsApp templates through the callback's status path.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::callbacks::{Tenant, create_provider, tenant};
use crate::helpers::{INTERNAL_KEY, TestApp, json, spawn_app};

const WABA_ID: &str = "102290129340398";
const TOKEN: &str = "EAAG-sync-token";

fn list_path() -> String {
    format!("/v21.0/{WABA_ID}/message_templates")
}

fn meta_provider(graph: &MockServer, token: &str) -> Value {
    json!({
        "name": "meta", "kind": "META_WHATSAPP", "channels": ["WHATSAPP"],
        "config": { "phone_number_id": "106540352242922", "waba_id": WABA_ID, "base_url": graph.uri() },
        "credentials": { "access_token": token, "app_secret": "secret", "verify_token": "verify" }
    })
}

fn entry(name: &str, language: &str, status: &str) -> Value {
    json!({ "name": name, "language": language, "status": status, "category": "UTILITY",
            "id": format!("{}", 5944254792615u64 + name.len() as u64) })
}

/// A page of the Graph list; `after` names the next page's cursor when there is one.
fn page(entries: Vec<Value>, after: Option<&str>) -> ResponseTemplate {
    let mut body = json!({ "data": entries,
        "paging": { "cursors": { "before": "QVFIUmJlZAm9yZA", "after": after.unwrap_or("QVFIUmxhc3QZD") } } });
    if let Some(after) = after {
        body["paging"]["next"] = json!(format!(
            "https://graph.facebook.com/v21.0/{WABA_ID}/message_templates?fields=name,status,language,category&limit=100&after={after}"
        ));
    }
    ResponseTemplate::new(200).set_body_json(body)
}

/// Serves `first` when no cursor is given and `second` for `after=CURSOR2`.
async fn serve_pages(graph: &MockServer, first: Vec<Value>, second: Vec<Value>) {
    graph.reset().await;
    Mock::given(method("GET"))
        .and(path(list_path()))
        .and(query_param("after", "CURSOR2"))
        .respond_with(page(second, None))
        .mount(graph)
        .await;
    Mock::given(method("GET"))
        .and(path(list_path()))
        .and(query_param_is_missing("after"))
        .respond_with(page(first, Some("CURSOR2")))
        .mount(graph)
        .await;
}

async fn create_template(
    app: &TestApp,
    t: &Tenant,
    name: &str,
    locale: &str,
    meta: &str,
) -> String {
    let (status, created) = json(
        app.post(
            "/cpaas/v1/templates",
            &t.sender,
            &json!({ "name": name, "channel": "WHATSAPP", "locale": locale,
                     "body": "Hi {{ name }}", "status": "PENDING", "provider_template_name": meta }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

async fn template(app: &TestApp, t: &Tenant, id: &str) -> Value {
    json(
        app.get(&format!("/cpaas/v1/templates/{id}"), &t.sender)
            .await,
    )
    .await
    .1["data"]
        .clone()
}

async fn versions(app: &TestApp, t: &Tenant, id: &str) -> usize {
    json(
        app.get(&format!("/cpaas/v1/templates/{id}/versions"), &t.sender)
            .await,
    )
    .await
    .1["data"]
        .as_array()
        .unwrap()
        .len()
}

#[actix_web::test]
async fn a_sync_reads_every_page_and_moves_pending_templates_to_approved_or_rejected() {
    let graph = MockServer::start().await;
    let app = spawn_app().await;
    let t = tenant();
    let provider_id = create_provider(&app, &t, meta_provider(&graph, TOKEN)).await;
    let table = create_template(&app, &t, "table-ready", "en_US", "table_ready").await;
    let otp = create_template(&app, &t, "otp", "en-us", "otp_code").await;
    let promo = create_template(&app, &t, "promo", "en_US", "spring_promo").await;
    serve_pages(
        &graph,
        vec![
            entry("table_ready", "en_US", "APPROVED"),
            entry("spring_promo", "en_US", "PENDING"),
            entry("table_ready", "es", "APPROVED"),
        ],
        vec![entry("otp_code", "en_US", "REJECTED")],
    )
    .await;

    let report = app
        .internal_post("/cpaas/v1/_internal/sync-templates")
        .await;
    assert_eq!(report["providers"], 1, "{report}");
    assert_eq!(report["pages"], 2);
    assert_eq!(report["templates_seen"], 4);
    assert_eq!(report["updated"], 2);
    assert_eq!(report["errors"], 0);
    let one = &report["results"][0];
    assert_eq!(one["provider_id"], provider_id.as_str());
    assert_eq!(one["pages"], 2);
    assert_eq!(one["updated"], 2);
    assert!(one["error"].is_null());

    let requests = graph.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one request per page");
    for request in &requests {
        assert_eq!(request.method.as_str(), "GET");
        assert_eq!(request.url.path(), list_path());
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            &format!("Bearer {TOKEN}")
        );
        let query: std::collections::HashMap<_, _> = request.url.query_pairs().collect();
        assert_eq!(query["fields"], "name,status,language,category");
        assert_eq!(query["limit"], "100");
    }
    assert!(!requests[0].url.query_pairs().any(|(k, _)| k == "after"));
    let after: Vec<_> = requests[1]
        .url
        .query_pairs()
        .filter(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(
        after,
        ["CURSOR2"],
        "the second page asks for the cursor after the first"
    );

    let approved = template(&app, &t, &table).await;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["version"], 2);
    assert_eq!(versions(&app, &t, &table).await, 2);
    let rejected = template(&app, &t, &otp).await;
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["version"], 2);
    let pending = template(&app, &t, &promo).await;
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(
        pending["version"], 1,
        "an unchanged status is not a new version"
    );
    assert_eq!(versions(&app, &t, &promo).await, 1);

    // The same list again, through the jobs endpoint: nothing changes, nothing is bumped.
    let rerun = app.internal_post("/cpaas/v1/jobs/sync-templates").await;
    assert_eq!(rerun["job"], "sync-templates");
    assert_eq!(rerun["counts"]["pages"], 2, "{rerun}");
    assert_eq!(rerun["counts"]["templates_seen"], 4);
    assert_eq!(rerun["counts"]["updated"], 0);
    assert_eq!(template(&app, &t, &table).await["version"], 2);
    assert_eq!(template(&app, &t, &otp).await["version"], 2);
    assert_eq!(versions(&app, &t, &table).await, 2);
}

#[actix_web::test]
async fn the_sync_job_applies_meta_statuses_and_a_second_run_without_change_bumps_nothing() {
    let graph = MockServer::start().await;
    let app = spawn_app().await;
    let t = tenant();
    create_provider(&app, &t, meta_provider(&graph, TOKEN)).await;
    let table = create_template(&app, &t, "table-ready", "en_US", "table_ready").await;
    let otp = create_template(&app, &t, "otp", "en_US", "otp_code").await;
    serve_pages(
        &graph,
        vec![entry("table_ready", "en_US", "APPROVED")],
        vec![entry("otp_code", "en_US", "REJECTED")],
    )
    .await;

    let run = app.internal_post("/cpaas/v1/jobs/sync-templates").await;
    assert_eq!(run["counts"]["providers"], 1, "{run}");
    assert_eq!(run["counts"]["pages"], 2);
    assert_eq!(run["counts"]["updated"], 2);
    assert_eq!(run["counts"]["errors"], 0);
    assert_eq!(template(&app, &t, &table).await["status"], "APPROVED");
    assert_eq!(template(&app, &t, &otp).await["status"], "REJECTED");

    let again = app
        .internal_post("/cpaas/v1/_internal/sync-templates")
        .await;
    assert_eq!(again["updated"], 0, "{again}");
    assert_eq!(template(&app, &t, &table).await["version"], 2);
    assert_eq!(template(&app, &t, &otp).await["version"], 2);

    // Meta pauses one: the next run moves it, once.
    serve_pages(
        &graph,
        vec![entry("table_ready", "en_US", "PAUSED")],
        vec![entry("otp_code", "en_US", "REJECTED")],
    )
    .await;
    let paused = app.internal_post("/cpaas/v1/jobs/sync-templates").await;
    assert_eq!(paused["counts"]["updated"], 1, "{paused}");
    let t1 = template(&app, &t, &table).await;
    assert_eq!(t1["status"], "PAUSED");
    assert_eq!(t1["version"], 3);
    assert_eq!(versions(&app, &t, &table).await, 3);
}

#[actix_web::test]
async fn a_provider_refusing_the_token_is_counted_while_another_tenant_still_syncs() {
    let refusing = MockServer::start().await;
    let working = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(list_path()))
        .and(header("authorization", "Bearer EAAG-expired"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": "Error validating access token: Session has expired",
            "type": "OAuthException", "code": 190, "fbtrace_id": "AbCdEf"}})))
        .mount(&refusing)
        .await;
    serve_pages(
        &working,
        vec![entry("table_ready", "en_US", "APPROVED")],
        vec![],
    )
    .await;
    let app = spawn_app().await;
    let (a, b) = (tenant(), tenant());
    let refused_id = create_provider(&app, &a, meta_provider(&refusing, "EAAG-expired")).await;
    let working_id = create_provider(&app, &b, meta_provider(&working, TOKEN)).await;
    let a_table = create_template(&app, &a, "table-ready", "en_US", "table_ready").await;
    let b_table = create_template(&app, &b, "table-ready", "en_US", "table_ready").await;

    let report = app
        .internal_post("/cpaas/v1/_internal/sync-templates")
        .await;
    assert_eq!(report["providers"], 2, "{report}");
    assert_eq!(report["errors"], 1);
    assert_eq!(report["updated"], 1);
    let results = report["results"].as_array().unwrap();
    let of = |id: &str| {
        results
            .iter()
            .find(|r| r["provider_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {report}"))
    };
    let refused = of(&refused_id);
    assert_eq!(refused["errors"], 1);
    assert_eq!(refused["pages"], 0);
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("190"), "{error}");
    assert!(error.contains("expired"), "{error}");
    let synced = of(&working_id);
    assert_eq!(synced["errors"], 0);
    assert_eq!(synced["pages"], 2);
    assert_eq!(synced["updated"], 1);

    assert_eq!(template(&app, &a, &a_table).await["status"], "PENDING");
    assert_eq!(
        template(&app, &b, &b_table).await["status"],
        "APPROVED",
        "each tenant's templates follow only its own provider"
    );

    let job = app.internal_post("/cpaas/v1/jobs/sync-templates").await;
    assert_eq!(job["counts"]["errors"], 1, "{job}");
    assert_eq!(job["counts"]["updated"], 0);
}

#[actix_web::test]
async fn a_repeated_sync_with_the_same_idempotency_key_replays_the_first_report() {
    let graph = MockServer::start().await;
    let app = spawn_app().await;
    let t = tenant();
    create_provider(&app, &t, meta_provider(&graph, TOKEN)).await;
    let table = create_template(&app, &t, "table-ready", "en_US", "table_ready").await;
    serve_pages(
        &graph,
        vec![entry("table_ready", "en_US", "APPROVED")],
        vec![],
    )
    .await;
    let call = || async {
        let res = app
            .client
            .post(app.url("/cpaas/v1/_internal/sync-templates"))
            .header("x-internal-api-key", INTERNAL_KEY)
            .header("Idempotency-Key", "sync-2026-11-29")
            .send()
            .await
            .unwrap();
        json(res).await
    };
    let (status, first) = call().await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["updated"], 1);
    let (status, replay) = call().await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(
        replay["data"], first["data"],
        "the stored report, not a new run"
    );
    assert_eq!(graph.received_requests().await.unwrap().len(), 2);
    assert_eq!(template(&app, &t, &table).await["version"], 2);
}
