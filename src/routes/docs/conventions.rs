//! The answers every operation shares, added to the generated document in one place so that
//! no handler's annotation can forget one: 401 wherever a credential is required, 400/413/415
//! wherever a JSON body is read, 409/422 and the header's rules wherever an `Idempotency-Key` is
//! taken, the range of every `limit`, and 503 wherever the database is reached.

use serde_json::{Map, Value, json};

use crate::http::envelope::JSON_LIMIT_BYTES;
use crate::http::idempotency::{KEY_MAX_LEN, KEY_PATTERN};
use crate::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Operations that answer without a database: they never answer 503.
const WITHOUT_DATABASE: [&str; 6] = [
    "/auth/v1/.well-known/jwks.json",
    "/cpaas/v1/_internal/healthz",
    "/cpaas/v1/_internal/readyz",
    "/cpaas/v1/openapi.json",
    "/cpaas/v1/docs",
    "/cpaas/v1/docs/standalone.js",
];

/// Adds the shared answers and parameter rules to every operation of `doc`.
pub fn apply(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                apply_to_operation(path, op);
            }
        }
    }
}

fn apply_to_operation(path: &str, op: &mut Map<String, Value>) {
    let schemes = security_schemes(op);
    let has_body = op.contains_key("requestBody");
    let mut idempotent = false;
    let mut has_input = has_body;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for param in params.iter_mut() {
            let (name, place) = (
                param["name"].as_str().unwrap_or_default().to_owned(),
                param["in"].as_str().unwrap_or_default().to_owned(),
            );
            match (name.as_str(), place.as_str()) {
                ("Idempotency-Key", "header") => {
                    idempotent = true;
                    has_input = true;
                    param["schema"] = json!({
                        "type": "string",
                        "minLength": 1,
                        "maxLength": KEY_MAX_LEN,
                        "pattern": KEY_PATTERN,
                    });
                }
                ("limit", "query") => {
                    has_input = true;
                    param["schema"] = json!({
                        "type": ["integer", "null"],
                        "format": "int64",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT,
                    });
                }
                (_, "query") => has_input = true,
                _ => {}
            }
        }
    }

    let Some(responses) = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    if schemes.iter().any(|s| s == "bearer") {
        add(
            responses,
            401,
            "ERR_CPAAS_UNAUTHORIZED: the bearer token is missing, invalid, expired or revoked",
        );
    } else if schemes.iter().any(|s| s == "internal_key") {
        add(
            responses,
            401,
            "ERR_CPAAS_UNAUTHORIZED: the x-internal-api-key header is missing or wrong",
        );
    }
    if has_input {
        add(
            responses,
            400,
            "ERR_CPAAS_VALIDATION_FAILED naming the field, header or parameter that is malformed \
             or out of range",
        );
    }
    if has_body {
        add(
            responses,
            413,
            &format!("ERR_CPAAS_PAYLOAD_TOO_LARGE: the body is over {JSON_LIMIT_BYTES} bytes"),
        );
        add(
            responses,
            415,
            "ERR_CPAAS_UNSUPPORTED_MEDIA_TYPE: the body is not sent as application/json",
        );
    }
    if idempotent {
        add(
            responses,
            409,
            "ERR_CPAAS_DUPLICATE_REQUEST: a request with this Idempotency-Key is in flight",
        );
        add(
            responses,
            422,
            "ERR_CPAAS_IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used for another request",
        );
    }
    if !WITHOUT_DATABASE.contains(&path) {
        add(
            responses,
            503,
            "ERR_CPAAS_SERVICE_UNAVAILABLE: the database is out of reach or busy; retry shortly",
        );
    }
}

/// The names of the security schemes an operation accepts.
fn security_schemes(op: &Map<String, Value>) -> Vec<String> {
    op.get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect()
}

/// Adds `status` with an error envelope unless the operation documents it already.
fn add(responses: &mut Map<String, Value>, status: u16, description: &str) {
    responses.entry(status.to_string()).or_insert_with(|| {
        json!({
            "description": description,
            "content": {
                "application/json": {
                    "schema": { "$ref": "#/components/schemas/ErrorEnvelope" }
                }
            }
        })
    });
}
