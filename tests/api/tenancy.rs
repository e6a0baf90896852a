//! Tenant isolation, route by route. Tenant A owns one resource of every kind; tenant B tries
//! every route that names a resource by id and gets 404, sees empty lists, and changes
//! nothing. The routes come from the OpenAPI document, so a new route is tried as soon as it
//! is documented.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEV_TENANT, TestApp, admin_token, code, json, spawn_app_with, token};

/// The kind of resource an `{id}` route names, from its path.
fn resource_of(path: &str) -> &'static str {
    let first = path
        .strip_prefix("/cpaas/v1/")
        .and_then(|rest| rest.split('/').next());
    match first {
        Some("providers") => "provider",
        Some("templates") => "template",
        Some("opt-outs") => "opt-out",
        Some("webhooks") => "webhook",
        Some("messages") => "message",
        Some("api-keys") => "API key",
        _ => panic!("{path}: tenant A owns no such resource yet; create one in this test"),
    }
}

/// A body the route accepts, so that only the tenant check can refuse B's request (A's
/// requests at the end prove the bodies valid).
fn body_for(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("GET" | "DELETE", _) => None,
        ("PATCH", "/cpaas/v1/providers/{id}") => Some(json!({ "priority": 1 })),
        ("PATCH", "/cpaas/v1/templates/{id}") => {
            Some(json!({ "body": "Changed {{ first_name }}" }))
        }
        ("PATCH", "/cpaas/v1/webhooks/{id}") => Some(json!({ "description": "changed" })),
        ("POST", "/cpaas/v1/templates/{id}/preview") => {
            Some(json!({ "variables": { "first_name": "Eve", "order_id": "A-1" } }))
        }
        ("POST", "/cpaas/v1/messages/{id}/cancel") => Some(json!({})),
        ("POST", "/cpaas/v1/webhooks/{id}/rotate-secret") => None,
        ("POST", "/cpaas/v1/webhooks/{id}/deliveries/{delivery_id}/retry") => None,
        _ => panic!("{method} {path}: give this test a body the route accepts"),
    }
}

/// (method, path template) of every bearer-authenticated operation in the OpenAPI document.
async fn tenant_operations(app: &TestApp) -> Vec<(Method, String, Value)> {
    let (status, doc) = json(
        app.client
            .get(app.url("/cpaas/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            let bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if bearer && method != Method::OPTIONS && method != Method::HEAD {
                ops.push((method, path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// Every table's rows, as text, to compare before and after.
async fn snapshot(app: &TestApp) -> BTreeMap<String, String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        tablename: String,
    }
    #[derive(QueryableByName)]
    struct Rows {
        #[diesel(sql_type = diesel::sql_types::Text)]
        rows: String,
    }
    let mut conn = app.pool.get().await.unwrap();
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT tablename::text AS tablename FROM pg_tables \
         WHERE schemaname = 'public' AND tablename NOT LIKE '\\_\\_%' ORDER BY tablename",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for Name { tablename } in tables {
        let rows: Rows = diesel::sql_query(format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text \
             AS rows FROM \"{tablename}\" t"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        out.insert(tablename, rows.rows);
    }
    out
}

async fn created_id(res: reqwest::Response) -> String {
    let (status, body) = json(res).await;
    assert!((200..300).contains(&status), "{status}: {body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

async fn call(app: &TestApp, token: &str, method: &Method, path: &str) -> reqwest::Response {
    app.request(
        method.clone(),
        path,
        Some(token),
        body_for(method, &path_template(path)).as_ref(),
    )
    .await
}

/// `/cpaas/v1/templates/tpl_…/preview` → `/cpaas/v1/templates/{id}/preview` (and a webhook
/// delivery's `whd_…` → `{delivery_id}`).
fn path_template(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if ["prv_", "tpl_", "opt_", "whk_", "msg_", "apk_"]
                .iter()
                .any(|p| s.starts_with(p))
            {
                "{id}"
            } else if s.starts_with("whd_") {
                "{delivery_id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_web::test]
async fn another_tenant_gets_404_on_every_id_route_and_empty_lists_and_changes_nothing() {
    // No background work: the tables must stay exactly as tenant A left them.
    let app = spawn_app_with(|env| {
        env.insert("OUTBOX_ENABLED".into(), "false".into());
        env.insert("SCHEDULER_ENABLED".into(), "false".into());
    })
    .await;
    let a = admin_token();
    let b = token(Uuid::now_v7(), &["admin"], "enterprise");

    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    ids.insert(
        "provider",
        created_id(
            app.post(
                "/cpaas/v1/providers",
                &a,
                &json!({ "name": "a-sandbox", "kind": "SANDBOX" }),
            )
            .await,
        )
        .await,
    );
    ids.insert(
        "template",
        created_id(
            app.post(
                "/cpaas/v1/templates",
                &a,
                &crate::templates::sms("a-template"),
            )
            .await,
        )
        .await,
    );
    ids.insert(
        "opt-out",
        created_id(
            app.post(
                "/cpaas/v1/opt-outs",
                &a,
                &json!({ "recipient": "+447911123456", "channel": "SMS" }),
            )
            .await,
        )
        .await,
    );
    ids.insert(
        "webhook",
        created_id(
            app.post(
                "/cpaas/v1/webhooks",
                &a,
                &json!({
                    "url": "https://hooks.example.com/a",
                    "events": ["eventzr.cpaas.communication.delivered.v1"],
                }),
            )
            .await,
        )
        .await,
    );
    // A finished delivery to A's webhook, so that a retry would succeed for A.
    {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        let webhook = Uuid::parse_str(ids["webhook"].trim_start_matches("whk_")).unwrap();
        let mut conn = app.pool.get().await.unwrap();
        let delivery: Id = diesel::sql_query(
            "INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, topic, payload, status) \
             VALUES ($1, $2, 'evt-tenancy', 'eventzr.cpaas.communication.delivered.v1', '{}', 'FAILED') \
             RETURNING id",
        )
        .bind::<diesel::sql_types::Uuid, _>(DEV_TENANT)
        .bind::<diesel::sql_types::Uuid, _>(webhook)
        .get_result(&mut conn)
        .await
        .unwrap();
        ids.insert("webhook delivery", format!("whd_{}", delivery.id.simple()));
    }
    ids.insert(
        "API key",
        created_id(
            app.post(
                "/cpaas/v1/api-keys",
                &a,
                &json!({ "name": "a-backend", "roles": ["developer"] }),
            )
            .await,
        )
        .await,
    );
    // Scheduled, so that a cancel would succeed if the tenant check were missing.
    let mut message = crate::messages::sms("+14155552671");
    message["scheduled_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    ids.insert(
        "message",
        created_id(app.post("/cpaas/v1/messages", &a, &message).await).await,
    );

    let ops = tenant_operations(&app).await;
    let id_routes: Vec<(Method, String)> = ops
        .iter()
        .filter(|(_, path, _)| path.contains('{'))
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    for (method, path) in &id_routes {
        let rest = path.replacen("{id}", "", 1).replace("{delivery_id}", "");
        assert!(
            path.contains("{id}") && !rest.contains('{'),
            "{method} {path}: a tenant route names its resource as {{id}} (and a webhook \
             delivery as {{delivery_id}})"
        );
    }
    let fill = |template: &str| {
        template
            .replace("{id}", &ids[resource_of(template)])
            .replace("{delivery_id}", &ids["webhook delivery"])
    };
    let known: BTreeSet<(String, String)> = [
        ("GET", "/cpaas/v1/providers/{id}"),
        ("PATCH", "/cpaas/v1/providers/{id}"),
        ("DELETE", "/cpaas/v1/providers/{id}"),
        ("GET", "/cpaas/v1/providers/{id}/health"),
        ("GET", "/cpaas/v1/templates/{id}"),
        ("PATCH", "/cpaas/v1/templates/{id}"),
        ("DELETE", "/cpaas/v1/templates/{id}"),
        ("POST", "/cpaas/v1/templates/{id}/preview"),
        ("GET", "/cpaas/v1/templates/{id}/versions"),
        ("DELETE", "/cpaas/v1/opt-outs/{id}"),
        ("GET", "/cpaas/v1/webhooks/{id}"),
        ("PATCH", "/cpaas/v1/webhooks/{id}"),
        ("DELETE", "/cpaas/v1/webhooks/{id}"),
        ("POST", "/cpaas/v1/webhooks/{id}/rotate-secret"),
        ("GET", "/cpaas/v1/webhooks/{id}/deliveries"),
        (
            "POST",
            "/cpaas/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        ),
        ("GET", "/cpaas/v1/messages/{id}"),
        ("GET", "/cpaas/v1/messages/{id}/attempts"),
        ("POST", "/cpaas/v1/messages/{id}/cancel"),
        ("DELETE", "/cpaas/v1/api-keys/{id}"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    let documented: BTreeSet<(String, String)> = id_routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    assert!(
        documented.is_superset(&known),
        "routes missing from the OpenAPI document: {:?}",
        known.difference(&documented).collect::<Vec<_>>()
    );

    let before = snapshot(&app).await;
    for table in [
        "providers",
        "templates",
        "template_versions",
        "opt_outs",
        "webhooks",
        "webhook_deliveries",
        "messages",
        "outbox_events",
        "idempotency_keys",
        "api_keys",
    ] {
        assert!(before.contains_key(table), "{table} is compared");
    }

    let mut exercised = BTreeSet::new();
    for (method, template) in &id_routes {
        let resource = resource_of(template);
        let path = fill(template);
        let (status, body) = json(call(&app, &b, method, &path).await).await;
        assert_eq!(
            (status, code(&body)),
            (404, "ERR_CPAAS_NOT_FOUND"),
            "{method} {path} as another tenant: {body}"
        );
        assert_eq!(
            body["error"]["message"],
            format!("{resource} not found"),
            "{method} {path}"
        );
        assert_eq!(body["data"], Value::Null, "{method} {path}");
        exercised.insert((method.to_string(), template.clone()));
    }
    assert_eq!(exercised, documented, "every documented id route was tried");

    // Lists: every documented list answer of B is empty, while A's is not.
    let lists: Vec<String> = ops
        .iter()
        .filter(|(m, path, op)| {
            *m == Method::GET
                && !path.contains('{')
                && op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("ListEnvelope"))
        })
        .map(|(_, p, _)| p.clone())
        .collect();
    for list in [
        "/cpaas/v1/providers",
        "/cpaas/v1/templates",
        "/cpaas/v1/opt-outs",
        "/cpaas/v1/webhooks",
        "/cpaas/v1/messages",
    ] {
        assert!(
            lists.iter().any(|l| l == list),
            "{list} is a documented list"
        );
    }
    for list in &lists {
        let (status, theirs) = json(app.get(list, &b).await).await;
        assert_eq!(status, 200, "{list}: {theirs}");
        assert_eq!(theirs["data"], json!([]), "{list} as another tenant");
        assert_eq!(theirs["page"]["has_more"], false, "{list}");
        let (_, mine) = json(app.get(list, &a).await).await;
        assert!(
            !mine["data"].as_array().unwrap().is_empty(),
            "{list} is not empty for its tenant"
        );
    }
    let (_, check) = json(
        app.get(
            "/cpaas/v1/opt-outs/check?recipient=%2B447911123456&channel=SMS",
            &b,
        )
        .await,
    )
    .await;
    assert_eq!(check["data"]["opted_out"], false, "{check}");
    let (_, usage) = json(app.get("/cpaas/v1/usage", &b).await).await;
    assert_eq!(usage["data"]["total"], 0, "{usage}");

    let after = snapshot(&app).await;
    for (table, rows) in &before {
        assert_eq!(
            Some(rows),
            after.get(table),
            "table {table} changed by the other tenant's requests"
        );
    }

    // The same requests by the owner succeed: B's were refused for their tenant alone.
    let rank = |m: &Method| match m.as_str() {
        "GET" => 0,
        "POST" => 1,
        "PATCH" => 2,
        _ => 3,
    };
    let mut owner_order = id_routes.clone();
    owner_order.sort_by(|x, y| (rank(&x.0), &x.1).cmp(&(rank(&y.0), &y.1)));
    for (method, template) in &owner_order {
        let path = fill(template);
        let (status, body) = json(call(&app, &a, method, &path).await).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} as its tenant: {status} {body}"
        );
    }
}
