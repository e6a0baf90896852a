//! The SchedulerActor and its jobs: scheduled sends, slots that run once across processes,
//! stale sends reconciled.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::helpers::{TestApp, json, spawn_app, spawn_on};
use crate::messages::{count, send, sender, sms};

async fn job(app: &TestApp, name: &str) -> serde_json::Value {
    app.internal_post(&format!("/cpaas/v1/jobs/{name}")).await
}

async fn status_of(app: &TestApp, t: &str, id: &str) -> String {
    json(app.get(&format!("/cpaas/v1/messages/{id}"), t).await)
        .await
        .1["data"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn a_scheduled_message_goes_out_only_when_its_time_comes_and_a_cancelled_one_never() {
    let app = spawn_app().await;
    let t = sender("professional");
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(4000)).to_rfc3339();
    let mut body = sms("+14155552671");
    body["scheduled_at"] = json!(at);
    let (_, kept) = send(&app, &t, &body).await;
    let (_, dropped) = send(&app, &t, &body).await;
    let kept = kept["data"]["id"].as_str().unwrap().to_owned();
    let dropped = dropped["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post(
            &format!("/cpaas/v1/messages/{dropped}/cancel"),
            &t,
            &json!({})
        )
        .await
        .status(),
        200
    );

    let early = job(&app, "dispatch-scheduled").await;
    assert_eq!(early["counts"]["dispatched"], 0);
    assert_eq!(status_of(&app, &t, &kept).await, "SCHEDULED");

    tokio::time::sleep(Duration::from_millis(4200)).await;
    let due = job(&app, "dispatch-scheduled").await;
    assert_eq!(due["counts"]["dispatched"], 1, "{due}");
    assert_eq!(status_of(&app, &t, &kept).await, "SENT");
    assert_eq!(status_of(&app, &t, &dropped).await, "CANCELLED");
    assert_eq!(
        job(&app, "dispatch-scheduled").await["counts"]["dispatched"],
        0
    );
}

#[actix_web::test]
async fn three_processes_run_each_job_slot_once_and_survive_losing_one() {
    let first = spawn_app().await;
    let fast = |env: &mut std::collections::HashMap<String, String>| {
        env.insert("SCHEDULER_ENABLED".into(), "true".into());
        env.insert("SCHEDULER_TICK_MS".into(), "300".into());
    };
    let a = spawn_on(&first.db_name, &first.database_url, fast).await;
    let b = spawn_on(&first.db_name, &first.database_url, fast).await;
    let c = spawn_on(&first.db_name, &first.database_url, fast).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let runs = "SELECT count(*) AS n FROM job_runs WHERE name = 'retry-due'";
    // One query, so that a run recorded between two counts cannot make them differ.
    let repeats =
        "SELECT count(*) - count(DISTINCT slot) AS n FROM job_runs WHERE name = 'retry-due'";
    let before = count(&first, runs).await;
    assert!(before >= 5, "the slots were run ({before})");
    assert_eq!(count(&first, repeats).await, 0, "each slot once");
    let owners = count(&first, "SELECT count(DISTINCT owner) AS n FROM job_runs").await;
    assert!(owners >= 1);

    a.stop().await;
    b.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = count(&first, runs).await;
    assert!(
        after >= before + 3,
        "the remaining process keeps running the slots ({before} -> {after})"
    );
    assert_eq!(count(&first, repeats).await, 0);
    let failed = count(
        &first,
        "SELECT count(*) AS n FROM job_runs WHERE outcome = 'FAILED'",
    )
    .await;
    assert_eq!(failed, 0);
    c.stop().await;
}

#[actix_web::test]
async fn a_send_left_in_flight_by_a_dead_process_is_reconciled_as_ambiguous() {
    let app = spawn_app().await;
    let t = sender("professional");
    let (_, created) = send(&app, &t, &sms("+14155552671")).await;
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let uuid = id.trim_start_matches("msg_");
    let mut conn = app.pool.get().await.unwrap();
    let provider = "(SELECT id FROM providers WHERE name = 'sandbox' LIMIT 1)";
    diesel::sql_query(format!(
        "UPDATE messages SET status = 'SENDING', attempts = 1, provider_attempts = 1, \
         provider_id = {provider}, provider_kind = 'SANDBOX', updated_at = now() - interval '10 minutes' \
         WHERE id = '{uuid}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO message_attempts (id, message_id, tenant_id, attempt_number, provider_id, provider_kind) \
         SELECT gen_random_uuid(), id, tenant_id, 1, provider_id, 'SANDBOX' FROM messages WHERE id = '{uuid}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let report = job(&app, "reconcile-stale").await;
    assert_eq!(report["counts"]["requeued_ambiguous"], 1);
    let (_, m) = json(app.get(&format!("/cpaas/v1/messages/{id}"), &t).await).await;
    assert_eq!(m["data"]["status"], "QUEUED");
    assert_eq!(m["data"]["error"]["code"], "AMBIGUOUS_OUTCOME");
    job(&app, "retry-due").await;
    let (_, a) = json(
        app.get(&format!("/cpaas/v1/messages/{id}/attempts"), &t)
            .await,
    )
    .await;
    let outcomes: Vec<&str> = a["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["AMBIGUOUS", "ACCEPTED"],
        "retried on the same provider"
    );
    assert_eq!(status_of(&app, &t, &id).await, "SENT");
}
