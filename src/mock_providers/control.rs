//! The control endpoints under `/_mock`: set behaviours, list and clear received requests, and
//! read counters.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::state::{Behaviour, MAX_COUNT, MockKind, MockState, Mode};

/// `POST /_mock/behaviour`.
#[derive(Debug, Deserialize)]
pub struct BehaviourRequest {
    /// A kind (`twilio`, `meta_whatsapp`, `vonage`, `aws_sns`, `sendgrid`, `aws_ses`, `fcm`,
    /// `fcm_token`) or `*` for all of them.
    pub kind: String,
    pub mode: Mode,
    #[serde(default)]
    pub delay_ms: Option<u32>,
    /// Apply to the next `count` requests, then revert to `ok`; absent or null: until changed.
    #[serde(default)]
    pub count: Option<u32>,
}

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": message}))
}

/// Sets the behaviour of one kind or of all.
pub async fn set_behaviour(
    state: web::Data<MockState>,
    body: web::Json<BehaviourRequest>,
) -> HttpResponse {
    let request = body.into_inner();
    let kinds: Vec<MockKind> = if request.kind == "*" {
        MockKind::ALL.to_vec()
    } else {
        match MockKind::parse(&request.kind) {
            Some(kind) => vec![kind],
            None => return bad_request(format!("unknown kind {:?}", request.kind)),
        }
    };
    if request.mode == Mode::Delay && request.delay_ms.is_none() {
        return bad_request("mode delay needs delay_ms".into());
    }
    if request.count.is_some_and(|c| c > MAX_COUNT) {
        return bad_request(format!("count is at most {MAX_COUNT}"));
    }
    let behaviour = Behaviour {
        mode: request.mode,
        delay_ms: request.delay_ms.unwrap_or(0),
        count: request.count,
    };
    for kind in &kinds {
        state.set_behaviour(*kind, behaviour);
    }
    HttpResponse::Ok().json(behaviours(&state))
}

/// `DELETE /_mock/behaviour`: every kind back to `ok`.
pub async fn reset_behaviour(state: web::Data<MockState>) -> HttpResponse {
    for kind in MockKind::ALL {
        state.set_behaviour(kind, Behaviour::OK);
    }
    HttpResponse::Ok().json(behaviours(&state))
}

/// `GET /_mock/behaviour`.
pub async fn get_behaviour(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(behaviours(&state))
}

fn behaviours(state: &MockState) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = MockKind::ALL
        .into_iter()
        .map(|k| (k.as_str().to_owned(), json!(state.behaviour(k))))
        .collect();
    json!({ "behaviours": map })
}

/// `GET /_mock/requests` filters.
#[derive(Debug, Deserialize)]
pub struct RequestsQuery {
    pub kind: Option<String>,
    /// Only the newest `limit` requests.
    pub limit: Option<usize>,
}

/// Lists the kept requests, oldest first.
pub async fn list_requests(
    state: web::Data<MockState>,
    query: web::Query<RequestsQuery>,
) -> HttpResponse {
    let kind = match query.kind.as_deref().filter(|k| !k.is_empty() && *k != "*") {
        None => None,
        Some(name) => match MockKind::parse(name) {
            Some(kind) => Some(kind),
            None => return bad_request(format!("unknown kind {name:?}")),
        },
    };
    let requests = state.requests(kind, query.limit);
    HttpResponse::Ok().json(json!({"count": requests.len(), "requests": requests}))
}

/// `DELETE /_mock/requests`: forgets requests and zeroes the counters.
pub async fn clear_requests(state: web::Data<MockState>) -> HttpResponse {
    state.clear();
    HttpResponse::NoContent().finish()
}

/// `GET /_mock/tally`.
pub async fn tally(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.tally())
}

/// `GET /_mock/stats`.
pub async fn stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}
