//! Templates: derived variables, listing, uniqueness, validation, roles and tenant isolation.

use serde_json::{Value, json};

use crate::helpers::{DEV_TENANT, TestApp, code, json, spawn_app, token};

pub(crate) fn developer() -> String {
    token(DEV_TENANT, &["developer"], "professional")
}

pub(crate) fn sms(name: &str) -> Value {
    json!({
        "name": name,
        "channel": "SMS",
        "body": "Hi {{ first_name }}, your order {{ order_id }} ships today."
    })
}

pub(crate) fn email(name: &str) -> Value {
    json!({
        "name": name,
        "channel": "EMAIL",
        "locale": "en-GB",
        "subject": "Order {{ order_id }}",
        "body": "<p>Dear {{ first_name }},</p>"
    })
}

async fn create(app: &TestApp, body: &Value) -> (u16, Value) {
    json(app.post("/cpaas/v1/templates", &developer(), body).await).await
}

pub(crate) async fn create_ok(app: &TestApp, body: &Value) -> String {
    let (status, answer) = create(app, body).await;
    assert_eq!(status, 201, "{answer}");
    answer["data"]["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_created_template_derives_its_variables_and_starts_at_version_one() {
    let app = spawn_app().await;
    let (status, body) = create(&app, &email("order-shipped")).await;
    assert_eq!(status, 201, "{body}");
    let t = &body["data"];
    assert!(t["id"].as_str().unwrap().starts_with("tpl_"));
    assert_eq!(t["name"], "order-shipped");
    assert_eq!(t["channel"], "EMAIL");
    assert_eq!(t["locale"], "en-GB");
    assert_eq!(t["subject"], "Order {{ order_id }}");
    assert_eq!(t["body"], "<p>Dear {{ first_name }},</p>");
    assert_eq!(t["variables"], json!(["first_name", "order_id"]));
    assert_eq!(t["status"], "APPROVED");
    assert_eq!(t["provider_template_name"], Value::Null);
    assert_eq!(t["version"], 1);
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(t["created_at"], t["updated_at"]);

    let path = format!("/cpaas/v1/templates/{}", t["id"].as_str().unwrap());
    let (status, fetched) = json(app.get(&path, &developer()).await).await;
    assert_eq!(status, 200);
    assert_eq!(&fetched["data"], t);

    let (_, sms_body) = create(&app, &sms("reminder")).await;
    assert_eq!(sms_body["data"]["locale"], "en", "the default locale");
    assert_eq!(sms_body["data"]["subject"], Value::Null);
}

#[actix_web::test]
async fn the_list_is_newest_first_and_filters_by_channel_locale_name_and_status() {
    let app = spawn_app().await;
    let first = create_ok(&app, &sms("a")).await;
    let second = create_ok(&app, &email("b")).await;
    let mut paused = sms("c");
    paused["status"] = json!("PAUSED");
    paused["locale"] = json!("pt_BR");
    let third = create_ok(&app, &paused).await;

    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let (status, body) = json(
                app.get(&format!("/cpaas/v1/templates{q}"), &developer())
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!(ids(&all), [third.as_str(), second.as_str(), first.as_str()]);
    assert_eq!(all["page"]["has_more"], false);
    assert_eq!(
        ids(&list("?channel=SMS").await),
        [third.clone(), first.clone()]
    );
    assert_eq!(ids(&list("?locale=pt_BR").await), [third.as_str()]);
    assert_eq!(ids(&list("?name=b").await), [second.as_str()]);
    assert_eq!(ids(&list("?status=PAUSED").await), [third.as_str()]);
    let page = list("?limit=2").await;
    assert_eq!(ids(&page), [third.as_str(), second.as_str()]);
    assert_eq!(page["page"]["has_more"], true);

    let (status, body) = json(
        app.get("/cpaas/v1/templates?channel=FAX", &developer())
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_CHANNEL");
}

#[actix_web::test]
async fn name_channel_and_locale_together_are_unique() {
    let app = spawn_app().await;
    let id = create_ok(&app, &sms("welcome")).await;
    let (status, body) = create(&app, &sms("welcome")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_CONFLICT");

    let mut french = sms("welcome");
    french["locale"] = json!("fr");
    let french_id = create_ok(&app, &french).await;
    let mut whatsapp = sms("welcome");
    whatsapp["channel"] = json!("WHATSAPP");
    create_ok(&app, &whatsapp).await;

    let (status, body) = json(
        app.patch(
            &format!("/cpaas/v1/templates/{french_id}"),
            &developer(),
            &json!({ "locale": "en" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_CONFLICT");

    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/templates/{id}"), &developer())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({ "id": id, "deleted": true }));
    create_ok(&app, &sms("welcome")).await;
}

#[actix_web::test]
async fn invalid_templates_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let long_body = "x".repeat(64 * 1024 + 1);
    let cases = [
        (
            json!({ "name": "e", "channel": "EMAIL", "body": "hi" }),
            "subject",
        ),
        (
            json!({ "name": "s", "channel": "SMS", "subject": "no", "body": "hi" }),
            "subject",
        ),
        (
            json!({ "name": "b", "channel": "SMS", "body": "Hi {{ name " }),
            "body",
        ),
        (
            json!({ "name": "b", "channel": "EMAIL", "subject": "{% if %}", "body": "x" }),
            "subject",
        ),
        (
            json!({ "name": "l", "channel": "SMS", "locale": "english", "body": "x" }),
            "locale",
        ),
        (json!({ "name": "", "channel": "SMS", "body": "x" }), "name"),
        (
            json!({ "name": "x".repeat(101), "channel": "SMS", "body": "x" }),
            "name",
        ),
        (
            json!({ "name": "big", "channel": "SMS", "body": long_body }),
            "body",
        ),
        (
            json!({ "name": "st", "channel": "SMS", "body": "x", "status": "LIVE" }),
            "status",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = create(&app, &body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(code(&answer), "ERR_CPAAS_VALIDATION_FAILED", "{answer}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
    let mut unknown = sms("u");
    unknown["colour"] = json!("red");
    let (status, answer) = create(&app, &unknown).await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_VALIDATION_FAILED");
    let mut bad_channel = sms("c");
    bad_channel["channel"] = json!("FAX");
    let (status, answer) = create(&app, &bad_channel).await;
    assert_eq!(status, 400);
    assert_eq!(code(&answer), "ERR_CPAAS_INVALID_CHANNEL");

    let id = create_ok(&app, &sms("fixed")).await;
    let (status, answer) = json(
        app.patch(
            &format!("/cpaas/v1/templates/{id}"),
            &developer(),
            &json!({ "channel": "EMAIL" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "the channel cannot change: {answer}");
}

#[actix_web::test]
async fn a_user_reads_and_previews_but_cannot_write_templates() {
    let app = spawn_app().await;
    let id = create_ok(&app, &sms("ro")).await;
    let user = token(DEV_TENANT, &["user"], "professional");
    let path = format!("/cpaas/v1/templates/{id}");
    assert_eq!(app.get("/cpaas/v1/templates", &user).await.status(), 200);
    assert_eq!(app.get(&path, &user).await.status(), 200);
    assert_eq!(
        app.get(&format!("{path}/versions"), &user).await.status(),
        200
    );
    let preview = app
        .post(
            &format!("{path}/preview"),
            &user,
            &json!({ "variables": { "first_name": "A", "order_id": 1 } }),
        )
        .await;
    assert_eq!(preview.status(), 200);
    for res in [
        app.post("/cpaas/v1/templates", &user, &sms("nope")).await,
        app.patch(&path, &user, &json!({ "body": "x" })).await,
        app.delete(&path, &user).await,
    ] {
        let (status, body) = json(res).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_FORBIDDEN");
    }
}

#[actix_web::test]
async fn another_tenants_template_is_not_found_on_every_route() {
    let app = spawn_app().await;
    let id = create_ok(&app, &sms("mine")).await;
    let other = token(uuid::Uuid::now_v7(), &["admin"], "enterprise");
    let path = format!("/cpaas/v1/templates/{id}");
    let answers = [
        app.get(&path, &other).await,
        app.patch(&path, &other, &json!({ "body": "stolen" })).await,
        app.delete(&path, &other).await,
        app.post(&format!("{path}/preview"), &other, &json!({}))
            .await,
        app.get(&format!("{path}/versions"), &other).await,
    ];
    for res in answers {
        let (status, body) = json(res).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
        assert_eq!(body["error"]["message"], "template not found");
    }
    let (_, list) = json(app.get("/cpaas/v1/templates", &other).await).await;
    assert_eq!(list["data"], json!([]));
    let (_, still) = json(app.get(&path, &developer()).await).await;
    assert_eq!(
        still["data"]["version"], 1,
        "the other tenant changed nothing"
    );

    for bad in ["123", "prv_0192f0c1a2b37c4d8e9f00112233aabb"] {
        let (status, body) = json(
            app.get(&format!("/cpaas/v1/templates/{bad}"), &developer())
                .await,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    }
}
