//! Template previews (rendering, missing variables, HTML escaping) and the version history.

use serde_json::json;

use crate::helpers::{code, json, spawn_app};
use crate::templates::{create_ok, developer, email, sms};

#[actix_web::test]
async fn a_preview_renders_the_subject_and_body() {
    let app = spawn_app().await;
    let id = create_ok(&app, &email("preview")).await;
    let (status, body) = json(
        app.post(
            &format!("/cpaas/v1/templates/{id}/preview"),
            &developer(),
            &json!({ "variables": { "first_name": "Ada", "order_id": "A-1001", "unused": 1 } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({
            "subject": "Order A-1001",
            "body": "<p>Dear Ada,</p>",
            "variables_used": ["first_name", "order_id"]
        })
    );
}

#[actix_web::test]
async fn a_preview_missing_variables_lists_every_one() {
    let app = spawn_app().await;
    let id = create_ok(&app, &email("missing")).await;
    let (status, body) = json(
        app.post(
            &format!("/cpaas/v1/templates/{id}/preview"),
            &developer(),
            &json!({ "variables": { "order_id": null } }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_TEMPLATE_VARIABLES_MISSING");
    assert_eq!(
        body["error"]["details"],
        json!([{ "variable": "first_name" }, { "variable": "order_id" }])
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("first_name") && message.contains("order_id"),
        "{message}"
    );

    let (status, body) = json(
        app.post(
            &format!("/cpaas/v1/templates/{id}/preview"),
            &developer(),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_TEMPLATE_VARIABLES_MISSING");
}

#[actix_web::test]
async fn the_html_part_of_an_email_is_escaped_and_plain_parts_are_not() {
    let app = spawn_app().await;
    let email_id = create_ok(
        &app,
        &json!({
            "name": "two-part", "channel": "EMAIL", "subject": "Order {{ order_id }}",
            "body": "Dear {{ first_name }},",
            "html_body": "<p>Dear {{ first_name }},</p>"
        }),
    )
    .await;
    let sms_id = create_ok(
        &app,
        &json!({ "name": "plain", "channel": "SMS", "body": "Dear {{ first_name }}" }),
    )
    .await;
    let variables =
        json!({ "variables": { "first_name": "<b>Tom & Jerry</b>", "order_id": "<1>" } });
    let (_, email_out) = json(
        app.post(
            &format!("/cpaas/v1/templates/{email_id}/preview"),
            &developer(),
            &variables,
        )
        .await,
    )
    .await;
    assert_eq!(
        email_out["data"]["html_body"],
        "<p>Dear &lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;,</p>"
    );
    assert_eq!(
        email_out["data"]["body"], "Dear <b>Tom & Jerry</b>,",
        "the plain-text part is not HTML"
    );
    assert_eq!(
        email_out["data"]["subject"], "Order <1>",
        "a subject is not HTML"
    );
    let (_, sms_out) = json(
        app.post(
            &format!("/cpaas/v1/templates/{sms_id}/preview"),
            &developer(),
            &variables,
        )
        .await,
    )
    .await;
    assert_eq!(sms_out["data"]["body"], "Dear <b>Tom & Jerry</b>");
}

#[actix_web::test]
async fn an_html_part_is_refused_on_a_template_of_another_channel() {
    let app = spawn_app().await;
    let (status, body) = json(
        app.post(
            "/cpaas/v1/templates",
            &developer(),
            &json!({ "name": "x", "channel": "SMS", "body": "hi", "html_body": "<p>hi</p>" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "html_body");
}

#[actix_web::test]
async fn every_content_change_bumps_the_version_and_is_kept_in_the_history() {
    let app = spawn_app().await;
    let id = create_ok(&app, &sms("versioned")).await;
    let path = format!("/cpaas/v1/templates/{id}");

    let (status, body) = json(
        app.patch(
            &path,
            &developer(),
            &json!({ "body": "Hello {{ name }}", "status": "PENDING" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(body["data"]["variables"], json!(["name"]));
    assert_eq!(body["data"]["status"], "PENDING");

    let (_, same) = json(
        app.patch(&path, &developer(), &json!({ "body": "Hello {{ name }}" }))
            .await,
    )
    .await;
    assert_eq!(same["data"]["version"], 2, "no change, no new version");
    let (_, renamed) = json(
        app.patch(
            &path,
            &developer(),
            &json!({ "provider_template_name": "hello_v1" }),
        )
        .await,
    )
    .await;
    assert_eq!(renamed["data"]["provider_template_name"], "hello_v1");
    assert_eq!(renamed["data"]["version"], 2);
    let (_, relocated) = json(
        app.patch(&path, &developer(), &json!({ "locale": "fr" }))
            .await,
    )
    .await;
    assert_eq!(relocated["data"]["version"], 3);

    let (status, history) = json(app.get(&format!("{path}/versions"), &developer()).await).await;
    assert_eq!(status, 200, "{history}");
    let versions = history["data"].as_array().unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version"].clone())
            .collect::<Vec<_>>(),
        [json!(3), json!(2), json!(1)]
    );
    assert_eq!(versions[0]["locale"], "fr");
    assert_eq!(versions[1]["body"], "Hello {{ name }}");
    assert_eq!(versions[1]["status"], "PENDING");
    assert_eq!(
        versions[2]["body"],
        "Hi {{ first_name }}, your order {{ order_id }} ships today."
    );
    assert_eq!(versions[2]["variables"], json!(["first_name", "order_id"]));

    let (_, first_page) = json(
        app.get(&format!("{path}/versions?limit=2"), &developer())
            .await,
    )
    .await;
    assert_eq!(first_page["data"].as_array().unwrap().len(), 2);
    let cursor = first_page["page"]["next_cursor"].as_str().unwrap();
    let (_, rest) = json(
        app.get(
            &format!("{path}/versions?limit=2&cursor={cursor}"),
            &developer(),
        )
        .await,
    )
    .await;
    assert_eq!(rest["data"][0]["version"], 1);
    assert_eq!(rest["page"]["has_more"], false);
}
