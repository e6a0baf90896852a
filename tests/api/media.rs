//! Media: an MMS through Twilio, a WhatsApp document through Meta, e-mail attachments fetched
//! and sent through SendGrid and SES, a push image, each in its provider's wire format
//! (wiremock); the limits and the URL rules checked when the send is accepted; and the mock
//! providers recording what they received.

use base64::Engine;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{TestApp, code, json, spawn_app, spawn_app_with};
use crate::messages::{count, tenant_with_sandbox};

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

async fn accepted(app: &TestApp, token: &str, body: &Value) -> String {
    let (status, created) = json(app.post("/cpaas/v1/messages", token, body).await).await;
    assert_eq!(status, 202, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

/// A file server for attachments, on loopback (reachable with MEDIA_ALLOW_INTERNAL_HOSTS).
async fn files() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/t/ticket.pdf"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/pdf")
                .set_body_bytes(PDF),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/t/huge.pdf"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 6 * 1024 * 1024]))
        .mount(&server)
        .await;
    server
}

#[actix_web::test]
async fn an_mms_reaches_twilio_with_its_media_urls() {
    let app = spawn_app().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": format!("MM{}", Uuid::new_v4().simple()), "status": "queued", "num_media": "2"
        })))
        .mount(&server)
        .await;
    let (_, t, _) = tenant_with(&app, &[twilio("mms", 1, &server.uri())]).await;
    let id = accepted(
        &app,
        &t,
        &json!({ "channel": "SMS", "recipient": "+14155552671", "message_body": "Your tickets",
                 "media": [ { "url": "https://tickets.example.com/t/qr.png" },
                            { "url": "https://tickets.example.com/t/seat-map", "content_type": "image/jpeg" } ] }),
    )
    .await;
    app.drain_until_dry().await;
    let calls = server.received_requests().await.unwrap();
    assert_eq!(calls.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&calls[0].body)
        .into_owned()
        .collect();
    let media: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "MediaUrl")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        media,
        [
            "https://tickets.example.com/t/qr.png",
            "https://tickets.example.com/t/seat-map"
        ]
    );
    let m = app.message(&t, &id).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(
        m["media"][0]["content_type"], "image/png",
        "guessed from the URL: {m}"
    );
    assert_eq!(m["media"][1]["content_type"], "image/jpeg");
}

#[actix_web::test]
async fn a_whatsapp_document_reaches_meta_as_a_link_with_its_caption_and_file_name() {
    let app = spawn_app().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v[0-9.]+/1098765/messages$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "14155552671", "wa_id": "14155552671"}],
            "messages": [{"id": "wamid.HBgLMTQxNTU1NTI2NzEVAgARGBI="}]})))
        .mount(&server)
        .await;
    let (_, t, _) = tenant_with(
        &app,
        &[json!({
            "name": "meta", "kind": "META_WHATSAPP", "channels": ["WHATSAPP"],
            "config": { "phone_number_id": "1098765", "waba_id": "2233", "base_url": server.uri() },
            "credentials": { "access_token": "EAAG", "app_secret": "s", "verify_token": "v" }
        })],
    )
    .await;
    accepted(
        &app,
        &t,
        &json!({ "channel": "WHATSAPP", "recipient": "+14155552671",
                 "message_body": "Your ticket for Friday",
                 "media": [ { "url": "https://tickets.example.com/t/8f3a.pdf",
                              "filename": "ticket-friday.pdf" } ] }),
    )
    .await;
    app.drain_until_dry().await;
    let calls = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(body["type"], "document", "{body}");
    assert_eq!(
        body["document"],
        json!({ "link": "https://tickets.example.com/t/8f3a.pdf",
                "caption": "Your ticket for Friday", "filename": "ticket-friday.pdf" })
    );
    assert!(body.get("text").is_none(), "{body}");
}

#[actix_web::test]
async fn an_email_attachment_is_fetched_and_sent_through_sendgrid_and_ses() {
    let app = spawn_app_with(|env| {
        env.insert("MEDIA_ALLOW_INTERNAL_HOSTS".into(), "true".into());
    })
    .await;
    let files = files().await;
    let (sendgrid, ses) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(
            ResponseTemplate::new(202).insert_header("x-message-id", "W5Q4ttQeQ5i0Uh0brS"),
        )
        .mount(&sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/email/outbound-emails"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"MessageId": "0100018c-ses"})),
        )
        .mount(&ses)
        .await;
    let (_, t, ids) = tenant_with(
        &app,
        &[
            json!({ "name": "sendgrid", "kind": "SENDGRID", "channels": ["EMAIL"], "priority": 1,
                    "config": { "from_email": "tickets@acme.example", "base_url": sendgrid.uri() },
                    "credentials": { "api_key": "SG.key" } }),
            json!({ "name": "ses", "kind": "AWS_SES", "channels": ["EMAIL"], "priority": 2,
                    "config": { "region": "eu-west-1", "from_email": "tickets@acme.example",
                                "base_url": ses.uri() },
                    "credentials": { "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                                     "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" } }),
        ],
    )
    .await;
    let attachment = format!("{}/t/ticket.pdf", files.uri());
    for provider in &ids {
        accepted(
            &app,
            &t,
            &json!({ "channel": "EMAIL", "recipient": "ana@example.com", "subject": "Your ticket",
                     "message_body": "Attached.", "provider_id": provider,
                     "media": [ { "url": attachment } ] }),
        )
        .await;
    }
    app.drain_until_dry().await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(PDF);
    let sent: Value =
        serde_json::from_slice(&sendgrid.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent["attachments"],
        json!([{ "content": encoded, "type": "application/pdf", "filename": "ticket.pdf",
                 "disposition": "attachment" }])
    );
    let sent: Value =
        serde_json::from_slice(&ses.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent["Content"]["Simple"]["Attachments"],
        json!([{ "RawContent": encoded, "ContentType": "application/pdf", "FileName": "ticket.pdf",
                 "ContentDisposition": "ATTACHMENT" }])
    );

    // A file over the limit fails the send for good, without reaching the provider.
    let id = accepted(
        &app,
        &t,
        &json!({ "channel": "EMAIL", "recipient": "ana@example.com", "subject": "Big",
                 "message_body": "Attached.", "provider_id": ids[0],
                 "media": [ { "url": format!("{}/t/huge.pdf", files.uri()) } ] }),
    )
    .await;
    app.drain_until_dry().await;
    let m = app.message(&t, &id).await;
    assert_eq!(
        (&m["status"], &m["error"]["code"]),
        (&json!("FAILED"), &json!("MEDIA_TOO_LARGE")),
        "{m}"
    );
    assert_eq!(sendgrid.received_requests().await.unwrap().len(), 1);
}

#[actix_web::test]
async fn media_at_a_private_address_or_beyond_a_channels_limits_is_refused_at_accept_time() {
    let app = spawn_app().await;
    let (_, t) = tenant_with_sandbox(&app, "enterprise").await;
    let sms = |media: Value| json!({ "channel": "SMS", "recipient": "+14155552671", "message_body": "x", "media": media });
    for (body, field) in [
        (
            sms(json!([{ "url": "https://10.0.0.5/qr.png" }])),
            "media[0].url",
        ),
        (
            sms(json!([{ "url": "https://169.254.169.254/latest/meta-data/x.png" }])),
            "media[0].url",
        ),
        (
            sms(json!([{ "url": "http://tickets.example.com/qr.png" }])),
            "media[0].url",
        ),
        (
            sms(json!([{ "url": "https://localhost/qr.png" }])),
            "media[0].url",
        ),
        (
            sms(
                json!([{ "url": "https://t.example.com/a.png" }, { "url": "https://[fd00::1]/b.png" }]),
            ),
            "media[1].url",
        ),
        (
            sms(json!([{ "url": "https://t.example.com/a.zip" }])),
            "media[0].content_type",
        ),
        (
            json!({ "channel": "WHATSAPP", "recipient": "+14155552671", "message_body": "x",
                    "media": [{ "url": "https://t.example.com/a.png" }, { "url": "https://t.example.com/b.png" }] }),
            "media",
        ),
        (
            json!({ "channel": "VOICE", "recipient": "+14155552671", "message_body": "x",
                    "media": [{ "url": "https://t.example.com/a.mp3" }] }),
            "media",
        ),
        (
            json!({ "channel": "PUSH", "recipient": "device-token-1", "message_body": "x",
                    "media": [{ "url": "https://t.example.com/a.pdf" }] }),
            "media[0].content_type",
        ),
    ] {
        let (status, answer) = json(app.post("/cpaas/v1/messages", &t, &body).await).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "ERR_CPAAS_VALIDATION_FAILED"),
            "{body}: {answer}"
        );
        assert_eq!(
            answer["error"]["details"][0]["field"], field,
            "{body}: {answer}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);

    // Media without text is a message; a push image goes in the notification.
    let id = accepted(
        &app,
        &t,
        &json!({ "channel": "WHATSAPP", "recipient": "+14155552671",
                 "media": [{ "url": "https://t.example.com/a.png" }] }),
    )
    .await;
    assert_eq!(app.message(&t, &id).await["body"], "");
}

#[actix_web::test]
async fn the_mock_providers_take_and_record_media_in_each_wire_format() {
    use crate::provider_wire::{client, message};
    use cpaas::domain::media::MediaItem;
    use cpaas::domain::{Channel, ProviderKind};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    actix_web::rt::spawn(cpaas::mock_providers::mock_server(listener).unwrap());
    let files = files().await;
    let item = |url: String, content_type: &str| MediaItem {
        url,
        content_type: content_type.into(),
        filename: "ticket.pdf".into(),
    };
    let mut mms = message(Channel::Sms, "+14155550100");
    mms.media = vec![
        item("https://t.example.com/a.png".into(), "image/png"),
        item("https://t.example.com/b.png".into(), "image/png"),
    ];
    let twilio = client(
        ProviderKind::Twilio,
        json!({"from": "+15005550006", "base_url": base}),
        json!({"account_sid": "AC0123", "auth_token": "tok"}),
    );
    let mut wa = message(Channel::Whatsapp, "+14155550100");
    wa.media = vec![item(
        "https://t.example.com/t.pdf".into(),
        "application/pdf",
    )];
    let meta = client(
        ProviderKind::MetaWhatsapp,
        json!({"phone_number_id": "1098765", "waba_id": "2233", "base_url": base}),
        json!({"access_token": "EAAG", "app_secret": "s", "verify_token": "v"}),
    );
    let mut mail = message(Channel::Email, "ana@example.com");
    mail.subject = Some("Ticket".into());
    mail.media = vec![item(
        format!("{}/t/ticket.pdf", files.uri()),
        "application/pdf",
    )];
    let sendgrid = client(
        ProviderKind::Sendgrid,
        json!({"from_email": "t@acme.example", "base_url": base}),
        json!({"api_key": "SG.key"}),
    );
    for (client, msg) in [(&twilio, &mms), (&meta, &wa), (&sendgrid, &mail)] {
        let outcome = client.send(msg).await;
        assert!(
            matches!(outcome, cpaas::providers::SendOutcome::Accepted { .. }),
            "{outcome:?}"
        );
    }
    let listed: Value = reqwest::get(format!("{base}/_mock/requests"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media: Vec<Value> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["media"].clone())
        .collect();
    assert_eq!(
        media,
        [
            json!(["https://t.example.com/a.png", "https://t.example.com/b.png"]),
            json!(["https://t.example.com/t.pdf"]),
            json!(["ticket.pdf"]),
        ],
        "{listed}"
    );
}
