//! Bulk sends: the limit, per-item results, one transaction for the valid items.

use serde_json::{Value, json};

use crate::helpers::{code, json, spawn_app};
use crate::messages::{count, sender, sms};

#[actix_web::test]
async fn a_thousand_messages_are_accepted_in_one_request() {
    let app = spawn_app().await;
    let items: Vec<Value> = (0..1000).map(|_| sms("+14155552671")).collect();
    let (status, body) = json(
        app.post(
            "/cpaas/v1/messages/bulk",
            &sender("enterprise"),
            &json!({ "messages": items }),
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        202,
        "{}",
        &body.to_string()[..300.min(body.to_string().len())]
    );
    assert_eq!(body["data"]["accepted"], 1000);
    assert_eq!(body["data"]["rejected"], 0);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM messages").await,
        1000
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_events").await,
        1000
    );
}

#[actix_web::test]
async fn a_thousand_and_one_is_refused_whole() {
    let app = spawn_app().await;
    let items: Vec<Value> = (0..1001).map(|_| sms("+14155552671")).collect();
    let (status, body) = json(
        app.post(
            "/cpaas/v1/messages/bulk",
            &sender("enterprise"),
            &json!({ "messages": items }),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (400, "ERR_CPAAS_BULK_LIMIT_EXCEEDED")
    );
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 0);
}

#[actix_web::test]
async fn a_mix_of_valid_and_invalid_items_gets_a_result_per_item() {
    let app = spawn_app().await;
    let items = json!([
        sms("+14155552671"),
        sms("+1415555267"),
        { "channel": "EMAIL", "recipient": "ann@example.com", "subject": "Hi", "message_body": "Hello" },
        { "channel": "SMS", "recipient": "+14155552671" },
        { "channel": "SMS", "recipient": "+14155552671", "message_body": "x", "colour": "red" },
        { "channel": "PIGEON", "recipient": "x", "message_body": "x" },
    ]);
    let (status, body) = json(
        app.post(
            "/cpaas/v1/messages/bulk",
            &sender("enterprise"),
            &json!({ "messages": items }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let data = &body["data"];
    assert_eq!(data["accepted"], 2);
    assert_eq!(data["rejected"], 4);
    let results = data["results"].as_array().unwrap();
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("accepted"))
        .collect();
    assert_eq!(
        codes,
        [
            "accepted",
            "ERR_CPAAS_INVALID_PHONE_NUMBER",
            "accepted",
            "ERR_CPAAS_EMPTY_MESSAGE_BODY",
            "ERR_CPAAS_VALIDATION_FAILED",
            "ERR_CPAAS_INVALID_CHANNEL"
        ]
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }
    assert!(
        results[0]["message_id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    assert_eq!(results[1]["message_id"], Value::Null);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM messages").await, 2);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_events").await,
        2
    );
}

#[actix_web::test]
async fn a_bulk_request_counts_every_item_against_the_rate_limit() {
    let app = spawn_app().await;
    let (_, t) = crate::messages::tenant_with_sandbox(&app, "free").await;
    let items: Vec<Value> = (0..11).map(|_| sms("+14155552671")).collect();
    let res = app
        .post("/cpaas/v1/messages/bulk", &t, &json!({ "messages": items }))
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, body) = json(res).await;
    assert_eq!(
        (status, code(&body)),
        (429, "ERR_CPAAS_RATE_LIMIT_EXCEEDED")
    );
    let items: Vec<Value> = (0..10).map(|_| sms("+14155552671")).collect();
    let (status, _) = json(
        app.post("/cpaas/v1/messages/bulk", &t, &json!({ "messages": items }))
            .await,
    )
    .await;
    assert_eq!(status, 202, "the refused request used none of the quota");
}
