//! E-mail that renders: an HTML part beside a plain-text part, each as its recipient's client
//! expects, through SendGrid's real wire format.

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, json, spawn_app, token};
use crate::messages::send;

/// A tenant whose only e-mail provider is a SendGrid account at `server`.
async fn tenant_with_sendgrid(app: &TestApp, server: &MockServer) -> String {
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"], "professional");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/providers",
            &admin,
            &json!({
                "name": "sendgrid", "kind": "SENDGRID", "channels": ["EMAIL"],
                "config": { "from_email": "tickets@acme.example", "from_name": "Acme Tickets",
                            "base_url": server.uri() },
                "credentials": { "api_key": "SG.test-key" }
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    token(tenant, &["developer"], "professional")
}

async fn sendgrid() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sg-1"))
        .mount(&server)
        .await;
    server
}

async fn mail_sent(app: &TestApp, server: &MockServer) -> Value {
    app.internal_post("/cpaas/v1/_internal/process-outbox")
        .await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    requests[0].body_json().unwrap()
}

#[actix_web::test]
async fn a_sendgrid_send_of_an_html_template_carries_a_clean_plain_part_and_an_escaped_html_part() {
    let server = sendgrid().await;
    let app = spawn_app().await;
    let t = tenant_with_sendgrid(&app, &server).await;
    let (status, template) = json(
        app.post(
            "/cpaas/v1/templates",
            &t,
            &json!({
                "name": "ticket", "channel": "EMAIL", "subject": "Your ticket, {{ name }}",
                "html_body": "<h1>Hello {{ name }}</h1><p>Row 5 &amp; seat 12 &mdash; \
                              <a href=\"https://acme.example/t/1\">your ticket</a></p>"
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{template}");
    let (status, sent) = send(
        &app,
        &t,
        &json!({ "channel": "EMAIL", "recipient": "ada@example.com", "template_name": "ticket",
                 "template_variables": { "name": "<b>Ada</b>" },
                 "reply_to": "help@acme.example" }),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let mail = mail_sent(&app, &server).await;
    let content = mail["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{mail}");
    assert_eq!(content[0]["type"], "text/plain");
    assert_eq!(content[1]["type"], "text/html");
    let plain = content[0]["value"].as_str().unwrap();
    let html = content[1]["value"].as_str().unwrap();
    for tag in ["<h1>", "</h1>", "<p>", "</p>", "<a ", "</a>"] {
        assert!(!plain.contains(tag), "{tag} in the plain part: {plain}");
    }
    for entity in ["&amp;", "&mdash;", "&lt;", "&gt;", "&#"] {
        assert!(
            !plain.contains(entity),
            "{entity} in the plain part: {plain}"
        );
    }
    assert!(plain.contains("Row 5 & seat 12 —"), "{plain}");
    assert!(plain.contains("https://acme.example/t/1"), "{plain}");
    assert!(
        html.contains("<h1>Hello &lt;b&gt;Ada&lt;&#x2f;b&gt;</h1>"),
        "the variable is escaped in the HTML part: {html}"
    );
    assert_eq!(mail["subject"], "Your ticket, <b>Ada</b>");
    assert_eq!(
        mail["from"],
        json!({ "email": "tickets@acme.example", "name": "Acme Tickets" })
    );
    assert_eq!(mail["reply_to"], json!({ "email": "help@acme.example" }));
}

#[actix_web::test]
async fn a_direct_html_email_keeps_its_plain_part_unescaped() {
    let server = sendgrid().await;
    let app = spawn_app().await;
    let t = tenant_with_sendgrid(&app, &server).await;
    let (status, sent) = send(
        &app,
        &t,
        &json!({ "channel": "EMAIL", "recipient": "ada@example.com", "subject": "Q & A",
                 "message_body": "Q & A at 5 <sharp>",
                 "html_body": "<p>Q &amp; A at 5 &lt;sharp&gt;</p>" }),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let mail = mail_sent(&app, &server).await;
    assert_eq!(mail["content"][0]["value"], "Q & A at 5 <sharp>");
    assert_eq!(
        mail["content"][1]["value"],
        "<p>Q &amp; A at 5 &lt;sharp&gt;</p>"
    );
}

#[actix_web::test]
async fn html_parts_and_reply_to_are_for_email_only_and_reply_to_must_be_an_address() {
    let app = spawn_app().await;
    let t = crate::messages::sender("professional");
    for (body, field) in [
        (
            json!({ "channel": "SMS", "recipient": "+14155552671", "message_body": "hi",
                    "html_body": "<p>hi</p>" }),
            "html_body",
        ),
        (
            json!({ "channel": "EMAIL", "recipient": "ada@example.com", "subject": "s",
                    "message_body": "hi", "reply_to": "not an address" }),
            "reply_to",
        ),
    ] {
        let (status, answer) = send(&app, &t, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
}
