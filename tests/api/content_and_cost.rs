//! What a message is made of and what it costs: SMS encodings and segments, smart encoding,
//! the price table by destination, provider prices in another currency, estimates that match
//! the sends, and providers limited to some countries.

use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::delivery::{MESSAGES, tenant_with, twilio};
use crate::helpers::{TestApp, code, json, spawn_app};
use crate::messages::{count, tenant_with_sandbox};

async fn send(app: &TestApp, token: &str, body: &Value) -> Value {
    let (status, created) = json(app.post("/cpaas/v1/messages", token, body).await).await;
    assert_eq!(status, 202, "{created}");
    created["data"].clone()
}

fn sms(to: &str, body: &str) -> Value {
    json!({ "channel": "SMS", "recipient": to, "message_body": body })
}

fn twilio_accepts() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": format!("SM{}", Uuid::new_v4().simple()), "status": "queued", "price": null
    }))
}

#[actix_web::test]
async fn sms_bodies_are_classified_and_segmented_and_priced_by_destination() {
    let app = spawn_app().await;
    let (_, t) = tenant_with_sandbox(&app, "enterprise").await;
    let long = "a".repeat(161);
    let emoji = format!("{}😀", "a".repeat(70));
    let us_long = send(&app, &t, &sms("+14155552671", &long)).await;
    assert_eq!(
        (&us_long["encoding"], &us_long["segments"]),
        (&json!("GSM-7"), &json!(2))
    );
    let us_emoji = send(&app, &t, &sms("+14155552671", &emoji)).await;
    assert_eq!(
        (&us_emoji["encoding"], &us_emoji["segments"]),
        (&json!("UCS-2"), &json!(2))
    );
    let uk_long = send(&app, &t, &sms("+447400123456", &long)).await;
    app.drain_until_dry().await;

    let us = app.message(&t, us_long["id"].as_str().unwrap()).await;
    assert_eq!(us["status"], "SENT", "{us}");
    assert_eq!(
        us["cost_usd"], 0.0158,
        "2 segments at the +1 row's 0.0079: {us}"
    );
    assert_eq!(
        (&us["cost_currency"], &us["cost_amount"]),
        (&json!("USD"), &json!(0.0158))
    );
    let uk = app.message(&t, uk_long["id"].as_str().unwrap()).await;
    assert_eq!(
        uk["cost_usd"], 0.08,
        "2 segments at the +44 row's 0.04: {uk}"
    );
    let ucs2 = app.message(&t, us_emoji["id"].as_str().unwrap()).await;
    assert_eq!(ucs2["cost_usd"], 0.0158, "{ucs2}");

    // The events carry them too.
    let requested = count(
        &app,
        "SELECT count(*) AS n FROM outbox_events WHERE topic = \
         'eventzr.cpaas.communication.requested.v1' \
         AND payload -> 'data' ->> 'encoding' = 'UCS-2' AND (payload -> 'data' ->> 'segments')::int = 2",
    )
    .await;
    assert_eq!(requested, 1);
}

#[actix_web::test]
async fn smart_encoding_sends_look_alikes_as_gsm7_in_fewer_segments() {
    let app = spawn_app().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(MESSAGES))
        .respond_with(twilio_accepts())
        .mount(&server)
        .await;
    let mut smart = twilio("smart", 1, &server.uri());
    smart["config"]["smart_encoding"] = json!(true);
    let (_, t, _) = tenant_with(&app, &[smart]).await;
    // 80 characters with curly quotes: UCS-2 in 2 segments as written, GSM-7 in 1 as sent.
    let body = format!(
        "\u{201C}Doors\u{201D} open \u{2014} don\u{2019}t be late {}",
        "x".repeat(50)
    );
    let accepted = send(&app, &t, &sms("+14155552671", &body)).await;
    assert_eq!(
        (&accepted["encoding"], &accepted["segments"]),
        (&json!("UCS-2"), &json!(2))
    );
    app.drain_until_dry().await;
    let sent = app.message(&t, accepted["id"].as_str().unwrap()).await;
    assert_eq!(
        (&sent["encoding"], &sent["segments"]),
        (&json!("GSM-7"), &json!(1)),
        "{sent}"
    );
    assert_eq!(sent["cost_usd"], 0.0079);
    let calls = server.received_requests().await.unwrap();
    let form = String::from_utf8_lossy(&calls[0].body).into_owned();
    assert!(
        form.contains("Body=%22Doors%22+open+-+don%27t+be+late"),
        "{form}"
    );

    let (status, answer) = json(
        app.post(
            "/cpaas/v1/providers",
            &crate::helpers::token(Uuid::now_v7(), &["admin"], "enterprise"),
            &json!({ "name": "s", "kind": "SANDBOX", "config": { "smart_encoding": "yes" } }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (400, "ERR_CPAAS_INVALID_PROVIDER_CONFIG"),
        "{answer}"
    );
}

#[actix_web::test]
async fn a_vonage_price_in_euros_is_converted_and_its_currency_recorded() {
    let app = spawn_app().await;
    let vonage = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "message-count": "1",
            "messages": [{ "to": "447400123456", "message-id": "0A0000000123ABCD1", "status": "0",
                "remaining-balance": "3.14", "message-price": "0.03330000", "network": "23410" }]
        })))
        .mount(&vonage)
        .await;
    let (_, t, _) = tenant_with(
        &app,
        &[json!({
            "name": "vonage", "kind": "VONAGE", "channels": ["SMS"],
            "config": { "from": "AcmeTix", "base_url": vonage.uri() },
            "credentials": { "api_key": "abcd1234", "api_secret": "s3cr3t", "signature_secret": "x" }
        })],
    )
    .await;
    let accepted = send(&app, &t, &sms("+447400123456", "Gates open at 18:30")).await;
    app.drain_until_dry().await;
    let m = app.message(&t, accepted["id"].as_str().unwrap()).await;
    assert_eq!(m["status"], "SENT", "{m}");
    assert_eq!(m["cost_currency"], "EUR", "{m}");
    assert_eq!(m["cost_amount"], 0.0333, "{m}");
    assert_eq!(
        m["cost_usd"], 0.035964,
        "0.0333 EUR at the table's 1.08: {m}"
    );
}

#[actix_web::test]
async fn the_estimate_of_a_bulk_body_matches_what_the_send_records_and_writes_nothing() {
    let app = spawn_app().await;
    let (tenant, t) = tenant_with_sandbox(&app, "enterprise").await;
    let (status, body) = json(
        app.post(
            "/cpaas/v1/opt-outs",
            &t,
            &json!({ "recipient": "+14155550199", "channel": "SMS" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let bulk = json!({ "messages": [
        sms("+14155552671", &"a".repeat(161)),
        sms("+447400123456", "Gates open"),
        sms("+4915112345678", &format!("Einlass {}", "😀".repeat(40))),
        { "channel": "EMAIL", "recipient": "ana@example.com", "subject": "Tickets",
          "message_body": "Your tickets" },
        sms("+14155550199", "opted out"),
        sms("+1415", "not a number"),
    ]});
    let before = count(&app, "SELECT count(*) AS n FROM messages").await
        + count(&app, "SELECT count(*) AS n FROM outbox_events").await;
    let (status, estimate) = json(app.post("/cpaas/v1/messages/estimate", &t, &bulk).await).await;
    assert_eq!(status, 200, "{estimate}");
    let after = count(&app, "SELECT count(*) AS n FROM messages").await
        + count(&app, "SELECT count(*) AS n FROM outbox_events").await;
    assert_eq!(before, after, "the estimate writes nothing");
    let estimates = estimate["data"]["messages"].as_array().unwrap().clone();
    assert_eq!(estimates.len(), 6);
    assert_eq!(
        estimates[4]["error"]["code"],
        "ERR_CPAAS_RECIPIENT_OPTED_OUT"
    );
    assert_eq!(
        estimates[5]["error"]["code"],
        "ERR_CPAAS_INVALID_PHONE_NUMBER"
    );

    let (status, sent) = json(app.post("/cpaas/v1/messages/bulk", &t, &bulk).await).await;
    assert_eq!(status, 202, "{sent}");
    app.drain_until_dry().await;
    let results = sent["data"]["results"].as_array().unwrap();
    let mut total = 0.0;
    for (e, r) in estimates.iter().zip(results) {
        match r["message_id"].as_str() {
            None => assert_eq!(e["error"]["code"], r["error"]["code"], "{e} / {r}"),
            Some(id) => {
                let m = app.message(&t, id).await;
                assert_eq!(m["status"], "SENT", "{m}");
                assert_eq!(e["status"], "ok", "{e}");
                assert_eq!(e["provider"], m["provider"], "{e} / {m}");
                assert_eq!(e["provider_id"], m["provider_id"], "{e} / {m}");
                assert_eq!(e["encoding"], m["encoding"], "{e} / {m}");
                assert_eq!(e["segments"], m["segments"], "{e} / {m}");
                assert_eq!(e["cost_usd"], m["cost_usd"], "{e} / {m}");
                total += m["cost_usd"].as_f64().unwrap();
            }
        }
    }
    assert_eq!(estimates[2]["encoding"], "UCS-2");
    assert_eq!(estimates[2]["segments"], 2);
    let estimated = estimate["data"]["total_cost_usd"].as_f64().unwrap();
    assert!((estimated - total).abs() < 1e-9, "{estimated} / {total}");
    let _ = tenant;
}

#[actix_web::test]
async fn a_uk_send_skips_a_us_only_provider_and_uses_the_next_one() {
    let app = spawn_app().await;
    let (us_only, anywhere) = (MockServer::start().await, MockServer::start().await);
    for server in [&us_only, &anywhere] {
        Mock::given(method("POST"))
            .and(path_regex(MESSAGES))
            .respond_with(twilio_accepts())
            .mount(server)
            .await;
    }
    let mut us = twilio("us", 1, &us_only.uri());
    us["config"]["countries"] = json!(["US", "CA"]);
    let (_, t, ids) = tenant_with(&app, &[us, twilio("world", 2, &anywhere.uri())]).await;
    let uk = send(&app, &t, &sms("+447400123456", "Gates open")).await;
    let us_msg = send(&app, &t, &sms("+14155552671", "Gates open")).await;
    app.drain_until_dry().await;
    assert_eq!(
        us_only.received_requests().await.unwrap().len(),
        1,
        "the US number only"
    );
    assert_eq!(
        anywhere.received_requests().await.unwrap().len(),
        1,
        "the UK number"
    );
    assert_eq!(
        app.message(&t, uk["id"].as_str().unwrap()).await["provider_id"],
        ids[1].as_str()
    );
    assert_eq!(
        app.message(&t, us_msg["id"].as_str().unwrap()).await["provider_id"],
        ids[0].as_str()
    );
    let (status, estimate) = json(
        app.post(
            "/cpaas/v1/messages/estimate",
            &t,
            &sms("+447400123456", "Gates open"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        estimate["data"]["messages"][0]["provider_id"],
        ids[1].as_str(),
        "{estimate}"
    );
}

#[actix_web::test]
async fn a_destination_no_provider_serves_is_a_422_naming_its_country() {
    let app = spawn_app().await;
    let server = MockServer::start().await;
    let mut us = twilio("us", 1, &server.uri());
    us["config"]["countries"] = json!(["US"]);
    let (_, t, _) = tenant_with(&app, &[us]).await;
    for path in ["/cpaas/v1/messages", "/cpaas/v1/messages/bulk"] {
        let body = if path.ends_with("bulk") {
            json!({ "messages": [sms("+447400123456", "Gates open")] })
        } else {
            sms("+447400123456", "Gates open")
        };
        let (status, answer) = json(app.post(path, &t, &body).await).await;
        let error = if path.ends_with("bulk") {
            assert_eq!(status, 202, "{answer}");
            answer["data"]["results"][0]["error"].clone()
        } else {
            assert_eq!(status, 422, "{answer}");
            answer["error"].clone()
        };
        assert_eq!(
            error["code"], "ERR_CPAAS_NO_PROVIDER_CONFIGURED",
            "{answer}"
        );
        assert!(
            error["message"].as_str().unwrap().contains("GB"),
            "{answer}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);

    let admin = crate::helpers::token(Uuid::now_v7(), &["admin"], "enterprise");
    let mut bad = twilio("bad", 1, &server.uri());
    bad["config"]["countries"] = json!(["XX"]);
    let (status, answer) = json(app.post("/cpaas/v1/providers", &admin, &bad).await).await;
    assert_eq!(
        (status, code(&answer)),
        (400, "ERR_CPAAS_INVALID_PROVIDER_CONFIG"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config.countries")
    );
}
