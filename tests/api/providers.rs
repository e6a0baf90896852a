//! Providers: the first documented call, validation per kind, sealed credentials, roles,
//! tenant isolation and pagination.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::helpers::{DEV_TENANT, TestApp, admin_token, code, json, spawn_app, token};

fn twilio(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "TWILIO",
        "channels": ["SMS"],
        "priority": 10,
        "config": { "from": "+15005550006" },
        "credentials": { "account_sid": "AC0123456789abcdef", "auth_token": "super-secret-token" }
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    json(app.post("/cpaas/v1/providers", token, body).await).await
}

#[actix_web::test]
async fn the_first_documented_call_lists_the_seeded_sandbox() {
    let app = spawn_app().await;
    let (_, login) = json(
        app.login("dev@eventzr.com", cpaas::seed::DEV_PASSWORD)
            .await,
    )
    .await;
    let access = login["data"]["accessToken"].as_str().unwrap();
    let (status, body) = json(app.get("/cpaas/v1/providers", access).await).await;
    assert_eq!(status, 200, "{body}");
    let sandbox = &body["data"][0];
    assert_eq!(sandbox["kind"], "SANDBOX");
    assert_eq!(
        sandbox["channels"],
        json!(["SMS", "WHATSAPP", "EMAIL", "PUSH", "VOICE"])
    );
    assert_eq!(sandbox["health"]["state"], "HEALTHY");
    assert!(sandbox["id"].as_str().unwrap().starts_with("prv_"));
}

#[actix_web::test]
async fn a_created_provider_never_shows_its_secrets_and_stores_them_sealed() {
    let app = spawn_app().await;
    let (status, body) = create(&app, &admin_token(), &twilio("twilio-primary")).await;
    assert_eq!(status, 201, "{body}");
    let provider = &body["data"];
    assert_eq!(provider["kind"], "TWILIO");
    assert_eq!(provider["channels"], json!(["SMS"]));
    assert_eq!(provider["priority"], 10);
    assert_eq!(provider["config"], json!({ "from": "+15005550006" }));
    assert_eq!(
        provider["credentials"],
        json!({ "account_sid": true, "auth_token": true })
    );
    assert!(!body.to_string().contains("super-secret-token"));

    let id = provider["id"].as_str().unwrap();
    let (_, fetched) = json(
        app.get(&format!("/cpaas/v1/providers/{id}"), &admin_token())
            .await,
    )
    .await;
    assert!(!fetched.to_string().contains("super-secret-token"));

    use cpaas::db::schema::providers::dsl;
    let mut conn = app.pool.get().await.unwrap();
    let sealed: Vec<Vec<u8>> = dsl::providers
        .filter(dsl::name.eq("twilio-primary"))
        .select(dsl::credentials_encrypted)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert!(!sealed[0].windows(10).any(|w| w == b"super-secr"));
}

#[actix_web::test]
async fn each_kind_names_the_setting_it_is_missing() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "a", "kind": "TWILIO", "config": {"from": "+1"}, "credentials": {"account_sid": "AC1"}}),
            "credentials.auth_token",
        ),
        (
            json!({"name": "b", "kind": "META_WHATSAPP", "config": {"waba_id": "1"}, "credentials": {}}),
            "config.phone_number_id",
        ),
        (
            json!({"name": "c", "kind": "SENDGRID", "config": {"from_email": "no-at-sign"}, "credentials": {"api_key": "k"}}),
            "config.from_email",
        ),
        (
            json!({"name": "d", "kind": "AWS_SES", "config": {"region": "eu-west-1", "from_email": "a@b.c"}, "credentials": {"access_key_id": "A"}}),
            "credentials.secret_access_key",
        ),
        (
            json!({"name": "e", "kind": "FCM", "config": {"project_id": "p"}, "credentials": {"service_account": {"client_email": "x@y"}}}),
            "credentials.service_account.private_key",
        ),
        (
            json!({"name": "f", "kind": "SANDBOX", "config": {"failure_rate": 2}}),
            "config.failure_rate",
        ),
        (
            json!({"name": "g", "kind": "VONAGE", "config": {"from": "Acme", "base_url": "not a url"}, "credentials": {"api_key": "k", "api_secret": "s", "signature_secret": "x"}}),
            "config.base_url",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = create(&app, &admin_token(), &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            code(&answer),
            "ERR_CPAAS_INVALID_PROVIDER_CONFIG",
            "{answer}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
}

#[actix_web::test]
async fn a_channel_the_kind_cannot_carry_is_refused() {
    let app = spawn_app().await;
    let mut body = twilio("t");
    body["channels"] = json!(["EMAIL"]);
    let (status, answer) = create(&app, &admin_token(), &body).await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_INVALID_PROVIDER_CONFIG");
    body["channels"] = json!(["PIGEON"]);
    let (status, answer) = create(&app, &admin_token(), &body).await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_INVALID_CHANNEL");
}

#[actix_web::test]
async fn an_unknown_kind_or_field_is_a_validation_error() {
    let app = spawn_app().await;
    let (status, answer) = create(
        &app,
        &admin_token(),
        &json!({"name": "x", "kind": "CARRIER_PIGEON"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_VALIDATION_FAILED");
    assert_eq!(answer["error"]["details"][0]["field"], "kind");
    let mut body = twilio("t");
    body["colour"] = json!("blue");
    let (status, answer) = create(&app, &admin_token(), &body).await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_VALIDATION_FAILED");
}

#[actix_web::test]
async fn a_second_provider_with_the_same_name_conflicts() {
    let app = spawn_app().await;
    assert_eq!(create(&app, &admin_token(), &twilio("dup")).await.0, 201);
    let (status, answer) = create(&app, &admin_token(), &twilio("dup")).await;
    assert_eq!(status, 409);
    assert_eq!(code(&answer), "ERR_CPAAS_CONFLICT");
}

#[actix_web::test]
async fn an_update_merges_credentials_and_revalidates() {
    let app = spawn_app().await;
    let (_, created) = create(&app, &admin_token(), &twilio("t1")).await;
    let path = format!(
        "/cpaas/v1/providers/{}",
        created["data"]["id"].as_str().unwrap()
    );

    let (status, body) = json(
        app.patch(
            &path,
            &admin_token(),
            &json!({ "priority": 5, "is_active": false, "config": { "messaging_service_sid": "MG123" },
                     "credentials": { "auth_token": "rotated" } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["priority"], 5);
    assert_eq!(body["data"]["is_active"], false);
    assert_eq!(
        body["data"]["config"],
        json!({ "messaging_service_sid": "MG123" })
    );
    assert_eq!(
        body["data"]["credentials"],
        json!({ "account_sid": true, "auth_token": true })
    );

    let (status, body) = json(
        app.patch(
            &path,
            &admin_token(),
            &json!({ "credentials": { "account_sid": null } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credentials.account_sid")
    );

    let (status, _) = json(
        app.patch(&path, &admin_token(), &json!({ "kind": "SANDBOX" }))
            .await,
    )
    .await;
    assert_eq!(status, 400, "the kind cannot change");
}

#[actix_web::test]
async fn a_deleted_provider_is_gone_from_reads() {
    let app = spawn_app().await;
    let (_, created) = create(&app, &admin_token(), &twilio("gone")).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/providers/{id}"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({ "id": id, "deleted": true }));
    assert_eq!(
        app.get(&format!("/cpaas/v1/providers/{id}"), &admin_token())
            .await
            .status(),
        404
    );
    assert_eq!(
        app.delete(&format!("/cpaas/v1/providers/{id}"), &admin_token())
            .await
            .status(),
        404
    );
    let (_, list) = json(app.get("/cpaas/v1/providers", &admin_token()).await).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != id.as_str())
    );
    assert_eq!(
        create(&app, &admin_token(), &twilio("gone")).await.0,
        201,
        "the name is free again"
    );
}

#[actix_web::test]
async fn only_admins_write_but_every_role_reads() {
    let app = spawn_app().await;
    let developer = token(DEV_TENANT, &["developer", "organizer"], "professional");
    let user = token(DEV_TENANT, &["user"], "professional");
    for t in [&developer, &user] {
        let (status, body) = create(&app, t, &twilio("nope")).await;
        assert_eq!(status, 403);
        assert_eq!(code(&body), "ERR_CPAAS_FORBIDDEN");
        assert_eq!(app.get("/cpaas/v1/providers", t).await.status(), 200);
    }
    let nobody = token(DEV_TENANT, &[], "professional");
    assert_eq!(app.get("/cpaas/v1/providers", &nobody).await.status(), 403);
}

#[actix_web::test]
async fn another_tenants_provider_is_not_found_on_every_route() {
    let app = spawn_app().await;
    let (_, created) = create(&app, &admin_token(), &twilio("mine")).await;
    let id = created["data"]["id"].as_str().unwrap();
    let other = token(uuid::Uuid::now_v7(), &["admin"], "enterprise");
    let path = format!("/cpaas/v1/providers/{id}");
    let answers = [
        app.get(&path, &other).await,
        app.get(&format!("{path}/health"), &other).await,
        app.patch(&path, &other, &json!({ "priority": 1 })).await,
        app.delete(&path, &other).await,
    ];
    for res in answers {
        let (status, body) = json(res).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
        assert_eq!(body["error"]["message"], "provider not found");
    }
    let (_, list) = json(app.get("/cpaas/v1/providers", &other).await).await;
    assert_eq!(list["data"], json!([]));
    let (status, still) = json(app.get(&path, &admin_token()).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        still["data"]["priority"], 10,
        "the other tenant's update did nothing"
    );
}

#[actix_web::test]
async fn an_id_that_does_not_parse_is_not_found() {
    let app = spawn_app().await;
    for path in [
        "/cpaas/v1/providers/123",
        "/cpaas/v1/providers/msg_0192f0c1a2b37c4d8e9f00112233aabb",
    ] {
        let (status, body) = json(app.get(path, &admin_token()).await).await;
        assert_eq!(status, 404);
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    }
}

#[actix_web::test]
async fn walking_the_pages_returns_every_provider_once() {
    let app = spawn_app().await;
    for i in 0..6 {
        assert_eq!(
            create(&app, &admin_token(), &twilio(&format!("p{i}")))
                .await
                .0,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/cpaas/v1/providers?limit=2&cursor={c}"),
            None => "/cpaas/v1/providers?limit=2".to_owned(),
        };
        let (status, body) = json(app.get(&path, &admin_token()).await).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"].as_array().unwrap().len() <= 2);
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        if let Some(next) = body["page"]["next_cursor"].as_str() {
            assert_eq!(body["page"]["has_more"], true);
            cursor = Some(next.to_owned());
        } else {
            assert_eq!(body["page"]["has_more"], false);
            break;
        }
    }
    assert_eq!(seen.len(), 7, "six created plus the seeded sandbox");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    let (status, body) = json(
        app.get("/cpaas/v1/providers?cursor=bogus", &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_CURSOR");
}

#[actix_web::test]
async fn the_health_of_a_provider_is_readable() {
    let app = spawn_app().await;
    let (_, created) = create(&app, &admin_token(), &twilio("h")).await;
    let id = created["data"]["id"].as_str().unwrap();
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/providers/{id}/health"), &admin_token())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["state"], "HEALTHY");
    assert_eq!(body["data"]["consecutive_failures"], 0);
    assert!(body["data"]["last_change"].as_str().unwrap().ends_with('Z'));
}

/// A production-mode app: providers may be reached only at their own public hosts.
async fn production() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|env| {
        env.insert("APP_ENV".into(), "production".into());
    })
    .await
}

fn twilio_at(base_url: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("twilio-{}", uuid::Uuid::new_v4().simple()), "kind": "TWILIO",
        "channels": ["SMS"],
        "config": { "from": "+15005550006", "base_url": base_url },
        "credentials": { "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "secret" }
    })
}

#[actix_web::test]
async fn in_production_a_provider_url_on_an_internal_or_foreign_host_is_refused() {
    let app = production().await;
    let tenant = uuid::Uuid::now_v7();
    let admin = crate::helpers::token(tenant, &["admin"], "enterprise");
    for bad in [
        "http://127.0.0.1:9090",
        "https://127.0.0.1:9090",
        "https://169.254.169.254/latest",
        "https://internal.corp.example",
        "http://api.twilio.com",
    ] {
        let (status, body) = crate::helpers::json(
            app.post("/cpaas/v1/providers", &admin, &twilio_at(bad))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "ERR_CPAAS_INVALID_PROVIDER_CONFIG");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("config.base_url"),
            "{body}"
        );
    }
    let (status, created) = crate::helpers::json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &twilio_at("https://api.twilio.com"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/cpaas/v1/providers/{id}"),
            &admin,
            &serde_json::json!({ "config": { "from": "+15005550006",
                                             "base_url": "https://10.0.0.5" } }),
        )
        .await;
    assert_eq!(res.status(), 400);

    let (status, body) = crate::helpers::json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &serde_json::json!({
                "name": "fcm", "kind": "FCM", "channels": ["PUSH"],
                "config": { "project_id": "acme" },
                "credentials": { "service_account": {
                    "client_email": "svc@acme.iam.gserviceaccount.com",
                    "private_key": std::fs::read_to_string(crate::helpers::key_path()).unwrap(),
                    "token_uri": "http://169.254.169.254/computeMetadata/v1/token" } }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token_uri")
    );
}

#[actix_web::test]
async fn in_production_a_stored_internal_url_is_never_called() {
    use diesel_async::RunQueryDsl;
    let server = wiremock::MockServer::start().await;
    let app = production().await;
    let tenant = uuid::Uuid::now_v7();
    let admin = crate::helpers::token(tenant, &["admin"], "enterprise");
    let res = app
        .post(
            "/cpaas/v1/providers",
            &admin,
            &twilio_at("https://api.twilio.com"),
        )
        .await;
    assert_eq!(res.status(), 201);
    // A row written before the check existed (or by hand) still names an internal host.
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "UPDATE providers SET config = jsonb_set(config, '{{base_url}}', '\"{}\"'), \
         updated_at = now() WHERE tenant_id = '{tenant}'",
        server.uri()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let t = crate::helpers::token(tenant, &["developer"], "enterprise");
    let (status, sent) = crate::helpers::json(
        app.post(
            "/cpaas/v1/messages",
            &t,
            &serde_json::json!({ "channel": "SMS", "recipient": "+14155552671",
                                 "message_body": "hi" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let id = sent["data"]["id"].as_str().unwrap();
    let (_, m) = crate::helpers::json(app.get(&format!("/cpaas/v1/messages/{id}"), &t).await).await;
    assert_eq!(m["data"]["status"], "FAILED", "{m}");
    assert_eq!(m["data"]["error"]["code"], "PROVIDER_MISCONFIGURED", "{m}");
    assert!(server.received_requests().await.unwrap().is_empty());
}
