//! Opt-outs: normalisation, the check endpoint for one channel and ALL, removal keeping the
//! ledger, recipient validation, roles and tenant isolation.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::helpers::{DEV_TENANT, TestApp, code, json, spawn_app, token};

fn developer() -> String {
    token(DEV_TENANT, &["developer"], "professional")
}

async fn add(app: &TestApp, recipient: &str, channel: &str) -> (u16, Value) {
    json(
        app.post(
            "/cpaas/v1/opt-outs",
            &developer(),
            &json!({ "recipient": recipient, "channel": channel, "reason": "asked by phone" }),
        )
        .await,
    )
    .await
}

async fn check(app: &TestApp, query: &str) -> Value {
    let (status, body) = json(
        app.get(&format!("/cpaas/v1/opt-outs/check?{query}"), &developer())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{query}: {body}");
    body["data"].clone()
}

#[actix_web::test]
async fn two_spellings_of_a_phone_number_are_one_opt_out() {
    let app = spawn_app().await;
    let (status, body) = add(&app, "+44 7911 123456", "SMS").await;
    assert_eq!(status, 201, "{body}");
    let created = &body["data"];
    assert!(created["id"].as_str().unwrap().starts_with("opt_"));
    assert_eq!(created["recipient"], "+447911123456");
    assert_eq!(created["channel"], "SMS");
    assert_eq!(created["source"], "API");
    assert_eq!(created["reason"], "asked by phone");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, again) = add(&app, "+447911123456", "sms").await;
    assert_eq!(status, 200, "re-adding answers the existing row: {again}");
    assert_eq!(again["data"], *created);

    let answer = check(&app, "recipient=%2B447911123456&channel=SMS").await;
    assert_eq!(answer["opted_out"], true);
    assert_eq!(answer["opt_out"]["id"], created["id"]);
    let unencoded = check(&app, "recipient=+44%207911%20123456&channel=SMS").await;
    assert_eq!(
        unencoded["opted_out"], true,
        "an unencoded + read as a space"
    );
}

#[actix_web::test]
async fn e_mail_addresses_compare_lower_cased() {
    let app = spawn_app().await;
    let (status, body) = add(&app, "Foo@Example.COM", "EMAIL").await;
    assert_eq!(status, 201);
    assert_eq!(body["data"]["recipient"], "foo@example.com");
    let answer = check(&app, "recipient=foo@example.com&channel=EMAIL").await;
    assert_eq!(answer["opted_out"], true);
    let (status, _) = add(&app, " foo@example.com ", "EMAIL").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn the_check_covers_the_channel_and_all() {
    let app = spawn_app().await;
    let phone = "recipient=%2B14155552671";
    add(&app, "+14155552671", "SMS").await;
    assert_eq!(
        check(&app, &format!("{phone}&channel=SMS")).await["opted_out"],
        true
    );
    let whatsapp = check(&app, &format!("{phone}&channel=WHATSAPP")).await;
    assert_eq!(whatsapp, json!({ "opted_out": false, "opt_out": null }));
    assert_eq!(
        check(&app, &format!("{phone}&channel=ALL")).await["opted_out"],
        false
    );
    assert_eq!(check(&app, phone).await["opted_out"], true, "any channel");

    let (status, all) = add(&app, "+1 415 555 2671", "ALL").await;
    assert_eq!(status, 201);
    let whatsapp = check(&app, &format!("{phone}&channel=WHATSAPP")).await;
    assert_eq!(whatsapp["opted_out"], true);
    assert_eq!(whatsapp["opt_out"]["channel"], "ALL");
    assert_eq!(whatsapp["opt_out"]["id"], all["data"]["id"]);
    let sms = check(&app, &format!("{phone}&channel=SMS")).await;
    assert_eq!(
        sms["opt_out"]["channel"], "SMS",
        "the channel's own row wins"
    );
    assert_eq!(
        check(&app, &format!("{phone}&channel=ALL")).await["opted_out"],
        true
    );

    assert_eq!(
        check(&app, "recipient=someone@example.com").await["opted_out"],
        false
    );
}

#[actix_web::test]
async fn a_removed_opt_out_no_longer_applies_but_stays_in_the_ledger() {
    let app = spawn_app().await;
    let (_, created) = add(&app, "+447911123456", "WHATSAPP").await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/opt-outs/{id}"), &developer())
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({ "id": id, "deleted": true }));
    let answer = check(&app, "recipient=%2B447911123456&channel=WHATSAPP").await;
    assert_eq!(answer, json!({ "opted_out": false, "opt_out": null }));
    let (_, list) = json(app.get("/cpaas/v1/opt-outs", &developer()).await).await;
    assert_eq!(list["data"], json!([]));
    assert_eq!(
        app.delete(&format!("/cpaas/v1/opt-outs/{id}"), &developer())
            .await
            .status(),
        404
    );

    use cpaas::db::schema::opt_outs::dsl;
    let mut conn = app.pool.get().await.unwrap();
    let removed: Vec<Option<chrono::DateTime<chrono::Utc>>> = dsl::opt_outs
        .select(dsl::removed_at)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(removed[0].is_some());

    let (status, again) = add(&app, "+447911123456", "WHATSAPP").await;
    assert_eq!(status, 201, "opting out again is a new entry");
    assert_ne!(again["data"]["id"], id.as_str());
}

#[actix_web::test]
async fn invalid_recipients_are_refused_with_their_codes() {
    let app = spawn_app().await;
    for (recipient, channel, expected) in [
        ("+1415555267", "SMS", "ERR_CPAAS_INVALID_PHONE_NUMBER"),
        ("+999123456", "VOICE", "ERR_CPAAS_INVALID_PHONE_NUMBER"),
        ("07911123456", "SMS", "ERR_CPAAS_INVALID_PHONE_NUMBER"),
        ("+1415555267", "ALL", "ERR_CPAAS_INVALID_PHONE_NUMBER"),
        ("not-an-address", "EMAIL", "ERR_CPAAS_INVALID_EMAIL"),
        ("a@localhost", "ALL", "ERR_CPAAS_INVALID_EMAIL"),
        ("token with spaces", "PUSH", "ERR_CPAAS_VALIDATION_FAILED"),
        ("+14155552671", "FAX", "ERR_CPAAS_INVALID_CHANNEL"),
    ] {
        let (status, body) = add(&app, recipient, channel).await;
        assert_eq!(status, 400, "{recipient} on {channel}: {body}");
        assert_eq!(code(&body), expected, "{recipient} on {channel}: {body}");
    }
    let (status, body) = json(
        app.get(
            "/cpaas/v1/opt-outs/check?recipient=%2B1415555267&channel=SMS",
            &developer(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "ERR_CPAAS_INVALID_PHONE_NUMBER");
    let (status, body) = json(
        app.post(
            "/cpaas/v1/opt-outs",
            &developer(),
            &json!({ "recipient": "+14155552671", "channel": "SMS", "source": "PROVIDER" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "the source of an API opt-out is API: {body}");
    assert_eq!(code(&body), "ERR_CPAAS_VALIDATION_FAILED");
}

#[actix_web::test]
async fn the_list_filters_by_normalised_recipient_channel_and_source() {
    let app = spawn_app().await;
    let (_, a) = add(&app, "+447911123456", "SMS").await;
    let (_, b) = add(&app, "foo@example.com", "EMAIL").await;
    let (_, c) = add(&app, "+447911123456", "ALL").await;
    let mut conn = app.pool.get().await.unwrap();
    let (stop, created) = cpaas::db::opt_outs::add_opt_out(
        &mut conn,
        DEV_TENANT,
        "+14155552671",
        "SMS",
        "STOP_KEYWORD",
        None,
    )
    .await
    .unwrap();
    assert!(created);
    let stop_id = format!("opt_{}", stop.id.simple());

    let ids = |q: &'static str| {
        let app = &app;
        async move {
            let (status, body) = json(
                app.get(&format!("/cpaas/v1/opt-outs{q}"), &developer())
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{q}: {body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let id = |v: &Value| v["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ids("").await, [stop_id.clone(), id(&c), id(&b), id(&a)]);
    assert_eq!(
        ids("?recipient=%2B44%207911%20123456").await,
        [id(&c), id(&a)]
    );
    assert_eq!(ids("?recipient=FOO@example.com").await, [id(&b)]);
    assert_eq!(ids("?channel=ALL").await, [id(&c)]);
    assert_eq!(ids("?channel=SMS").await, [stop_id.clone(), id(&a)]);
    assert_eq!(ids("?source=STOP_KEYWORD").await, [stop_id]);
    assert_eq!(ids("?limit=1").await.len(), 1);
}

#[actix_web::test]
async fn the_ledger_functions_match_a_channel_or_all_and_remove_exactly() {
    use cpaas::db::opt_outs::{add_opt_out, find_active_opt_out, remove_opt_out_for};
    use cpaas::domain::Channel;
    let app = spawn_app().await;
    let mut conn = app.pool.get().await.unwrap();
    let phone = "+447911123456";
    let (first, created) = add_opt_out(&mut conn, DEV_TENANT, phone, "SMS", "STOP_KEYWORD", None)
        .await
        .unwrap();
    assert!(created);
    let (again, created) = add_opt_out(&mut conn, DEV_TENANT, phone, "SMS", "STOP_KEYWORD", None)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    let found = find_active_opt_out(&mut conn, DEV_TENANT, phone, Channel::Sms)
        .await
        .unwrap();
    assert_eq!(found.map(|o| o.id), Some(first.id));
    assert!(
        find_active_opt_out(&mut conn, DEV_TENANT, phone, Channel::Voice)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        remove_opt_out_for(&mut conn, DEV_TENANT, phone, "ALL")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        remove_opt_out_for(&mut conn, DEV_TENANT, phone, "SMS")
            .await
            .unwrap(),
        1
    );
    assert!(
        find_active_opt_out(&mut conn, DEV_TENANT, phone, Channel::Sms)
            .await
            .unwrap()
            .is_none()
    );
    let other_tenant = uuid::Uuid::now_v7();
    assert!(
        find_active_opt_out(&mut conn, other_tenant, phone, Channel::Sms)
            .await
            .unwrap()
            .is_none()
    );
}

#[actix_web::test]
async fn a_user_checks_and_lists_but_cannot_change_opt_outs() {
    let app = spawn_app().await;
    let (_, created) = add(&app, "+447911123456", "SMS").await;
    let id = created["data"]["id"].as_str().unwrap();
    let user = token(DEV_TENANT, &["user"], "professional");
    assert_eq!(app.get("/cpaas/v1/opt-outs", &user).await.status(), 200);
    assert_eq!(
        app.get("/cpaas/v1/opt-outs/check?recipient=%2B447911123456", &user)
            .await
            .status(),
        200
    );
    for res in [
        app.post(
            "/cpaas/v1/opt-outs",
            &user,
            &json!({ "recipient": "+14155552671", "channel": "SMS" }),
        )
        .await,
        app.delete(&format!("/cpaas/v1/opt-outs/{id}"), &user).await,
    ] {
        let (status, body) = json(res).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(code(&body), "ERR_CPAAS_FORBIDDEN");
    }
}

#[actix_web::test]
async fn another_tenants_opt_out_is_not_found_and_never_listed() {
    let app = spawn_app().await;
    let (_, created) = add(&app, "+447911123456", "SMS").await;
    let id = created["data"]["id"].as_str().unwrap();
    let other = token(uuid::Uuid::now_v7(), &["admin"], "enterprise");
    let (status, body) = json(
        app.delete(&format!("/cpaas/v1/opt-outs/{id}"), &other)
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    assert_eq!(body["error"]["message"], "opt-out not found");
    let (_, list) = json(app.get("/cpaas/v1/opt-outs", &other).await).await;
    assert_eq!(list["data"], json!([]));
    let (_, answer) = json(
        app.get(
            "/cpaas/v1/opt-outs/check?recipient=%2B447911123456&channel=SMS",
            &other,
        )
        .await,
    )
    .await;
    assert_eq!(answer["data"]["opted_out"], false);
    assert_eq!(
        check(&app, "recipient=%2B447911123456&channel=SMS").await["opted_out"],
        true,
        "the other tenant's delete removed nothing"
    );
    for bad in ["123", "tpl_0192f0c1a2b37c4d8e9f00112233aabb"] {
        let (status, body) = json(
            app.delete(&format!("/cpaas/v1/opt-outs/{bad}"), &developer())
                .await,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(code(&body), "ERR_CPAAS_NOT_FOUND");
    }
}
