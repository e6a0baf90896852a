//! The API description: every route the source registers is documented, every operation lists
//! the answers it can give, and every documented route is really served.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::helpers::{json, spawn_app};

/// `(path, method)` of every route registered under `src/routes`: the `#[get("…")]`-style
/// attributes, and `web::resource("…")` with its `guard::Get()`-style guard.
fn routes_in_source() -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut sources = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes"),
        &mut sources,
    );
    let quoted = |text: &str| text.split('"').nth(1).map(str::to_owned);
    let mut routes = BTreeSet::new();
    for source in &sources {
        let lines: Vec<&str> = source.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if line.starts_with(&format!("#[{method}(\"")) {
                    routes.insert((quoted(line).unwrap(), method.to_owned()));
                }
            }
            if line.starts_with("web::resource(\"") {
                let path = quoted(line).unwrap();
                let guard = lines[i + 1..]
                    .iter()
                    .find_map(|l| l.strip_prefix(".guard(guard::"))
                    .expect("a resource with a method guard");
                let method = guard.split('(').next().unwrap().to_ascii_lowercase();
                routes.insert((path, method));
            }
        }
    }
    routes
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.push((path.clone(), method.clone(), op));
            }
        }
    }
    ops
}

#[actix_web::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let (status, doc) = json(
        app.client
            .get(app.url("/cpaas/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let in_source = routes_in_source();
    assert!(in_source.len() > 40, "found only {in_source:?}");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let undocumented: Vec<_> = in_source.difference(&documented).collect();
    assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    for (path, method, op) in operations(&doc) {
        let responses = &op["responses"];
        let has = |status: &str| responses.get(status).is_some();
        let security: Vec<&str> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
            .collect();
        if !security.is_empty() {
            assert!(
                has("401"),
                "{method} {path} takes a credential but omits 401"
            );
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(
                    has(status),
                    "{method} {path} reads a body but omits {status}"
                );
            }
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        if let Some(key) = params.iter().find(|p| p["name"] == "Idempotency-Key") {
            assert!(
                has("422"),
                "{method} {path} takes Idempotency-Key but omits 422"
            );
            assert_eq!(key["schema"]["maxLength"], 255, "{method} {path}");
            assert_eq!(key["schema"]["pattern"], "^[!-~]+$", "{method} {path}");
        }
        if let Some(limit) = params.iter().find(|p| p["name"] == "limit") {
            assert_eq!(
                (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
                (&Value::from(1), &Value::from(100)),
                "{method} {path}"
            );
        }

        // Served by a handler, not by the fallback (which answers 405, or 404 "no route").
        let concrete = path
            .replace("{kind}", "twilio")
            .replace("{name}", "reconcile-stale")
            .replace('{', "x")
            .replace('}', "");
        let res = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert!(
            status != 405 && !text.contains("no route matches this path"),
            "{method} {path} is documented but answered {status} {text}"
        );
    }

    let jwks = &doc["paths"]["/auth/v1/.well-known/jwks.json"]["get"]["responses"]["200"];
    assert!(jwks["content"]["application/jwk-set+json"].is_object());
    assert!(
        doc["servers"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn the_document_names_the_public_base_url_or_else_the_origin_as_its_server() {
    for public in [Some("https://cpaas.example.com/"), None] {
        let app = crate::helpers::spawn_app_with(|env| match public {
            Some(url) => {
                env.insert("PUBLIC_BASE_URL".into(), url.into());
            }
            None => {
                env.remove("PUBLIC_BASE_URL");
            }
        })
        .await;
        let (status, doc) = json(
            app.client
                .get(app.url("/cpaas/v1/openapi.json"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let want = match public {
            Some(_) => "https://cpaas.example.com".to_owned(),
            None => app.url(""),
        };
        assert_eq!(doc["servers"][0]["url"], want);
    }
}
