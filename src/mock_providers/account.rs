//! Read-only account endpoints: Meta's WhatsApp template list (with Graph cursor paging, from
//! a catalogue the control API can replace) and the calls the health probes make. They follow
//! the kind's behaviour like the send endpoints, so a provider told to fail also fails its
//! probe.

use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::messaging::graph_error;
use super::state::{Answer, MockKind, MockState, Seen};
use super::wire;

/// Templates listed when no `limit` is asked.
const DEFAULT_LIMIT: usize = 25;
/// The most templates one page holds.
const MAX_LIMIT: usize = 1000;

/// A template as Meta lists it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct MockTemplate {
    pub name: String,
    pub language: String,
    pub status: String,
    #[serde(default = "utility")]
    pub category: String,
}

fn utility() -> String {
    "UTILITY".into()
}

/// The templates every business account of the mock lists.
pub struct TemplateCatalogue(Mutex<Vec<MockTemplate>>);

impl Default for TemplateCatalogue {
    fn default() -> Self {
        Self(Mutex::new(default_templates()))
    }
}

impl TemplateCatalogue {
    fn get(&self) -> Vec<MockTemplate> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, templates: Vec<MockTemplate>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = templates;
    }
}

fn default_templates() -> Vec<MockTemplate> {
    [
        ("hello_world", "en_US", "APPROVED", "UTILITY"),
        ("otp_code", "en_US", "APPROVED", "AUTHENTICATION"),
        ("table_ready", "en_US", "APPROVED", "UTILITY"),
        ("table_ready", "es", "PENDING", "UTILITY"),
        ("spring_promo", "en_US", "REJECTED", "MARKETING"),
    ]
    .into_iter()
    .map(|(name, language, status, category)| MockTemplate {
        name: name.into(),
        language: language.into(),
        status: status.into(),
        category: category.into(),
    })
    .collect()
}

/// `GET /_mock/templates`.
pub async fn get_templates(catalogue: web::Data<TemplateCatalogue>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"templates": catalogue.get()}))
}

/// Body of `PUT /_mock/templates`.
#[derive(Debug, Deserialize)]
pub struct TemplatesRequest {
    pub templates: Vec<MockTemplate>,
}

/// `PUT /_mock/templates`: replaces the catalogue.
pub async fn set_templates(
    catalogue: web::Data<TemplateCatalogue>,
    body: web::Json<TemplatesRequest>,
) -> HttpResponse {
    catalogue.set(body.into_inner().templates);
    HttpResponse::Ok().json(json!({"templates": catalogue.get()}))
}

/// `DELETE /_mock/templates`: back to the default catalogue.
pub async fn reset_templates(catalogue: web::Data<TemplateCatalogue>) -> HttpResponse {
    catalogue.set(default_templates());
    HttpResponse::Ok().json(json!({"templates": catalogue.get()}))
}

fn cursor(index: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{index}"))
}

fn parse_cursor(cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// The Graph refusal of a behaviour that is not `ok`.
fn graph_failure(answer: Answer) -> Option<HttpResponse> {
    match answer {
        Answer::Ok => None,
        Answer::ClientError => Some(graph_error(
            400,
            100,
            "Invalid parameter",
            "Unsupported get request.",
        )),
        Answer::ServerError => Some(graph_error(
            503,
            2,
            "Service temporarily unavailable",
            "Temporary due to downtime or due to being overloaded.",
        )),
        Answer::RateLimited => Some(graph_error(
            400,
            4,
            "Application request limit reached",
            "The app has reached its API call limit.",
        )),
    }
}

fn graph_unauthorised() -> HttpResponse {
    graph_error(
        401,
        190,
        "Invalid OAuth access token",
        "Invalid OAuth access token - Cannot parse access token",
    )
}

/// `GET /{version}/{waba_id}/message_templates?fields=&limit=&after=`.
pub async fn meta_templates(
    state: web::Data<MockState>,
    catalogue: web::Data<TemplateCatalogue>,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !wire::has_bearer(&req) {
        state.reject(MockKind::MetaWhatsapp, req.path(), Seen::default());
        return graph_unauthorised();
    }
    let start = match param("after") {
        None => Some(0),
        Some(after) => parse_cursor(after),
    };
    let (Some(start), Ok(limit)) = (
        start,
        param("limit").map_or(Ok(DEFAULT_LIMIT), str::parse::<usize>),
    ) else {
        state.reject(MockKind::MetaWhatsapp, req.path(), Seen::default());
        return graph_error(
            400,
            100,
            "Invalid parameter",
            "The cursor or limit is not valid.",
        );
    };
    let limit = limit.clamp(1, MAX_LIMIT);
    let answer = state
        .begin(MockKind::MetaWhatsapp, req.path(), Seen::default())
        .await;
    if let Some(failure) = graph_failure(answer) {
        return failure;
    }
    let all = catalogue.get();
    let end = (start + limit).min(all.len());
    let fields: Option<Vec<&str>> = param("fields").map(|f| f.split(',').map(str::trim).collect());
    let data: Vec<Value> = all
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, template)| {
            let mut entry = match serde_json::to_value(template) {
                Ok(Value::Object(entry)) => entry,
                _ => Map::new(),
            };
            if let Some(fields) = &fields {
                entry.retain(|k, _| fields.contains(&k.as_str()));
            }
            entry.insert(
                "id".into(),
                json!(format!("{}", 594_425_479_261_000 + start + i)),
            );
            Value::Object(entry)
        })
        .collect();
    let mut paging = json!({"cursors": {"before": cursor(start), "after": cursor(end)}});
    if end < all.len() {
        let info = req.connection_info();
        let mut next = url::Url::parse(&format!("{}://{}", info.scheme(), info.host()))
            .and_then(|base| base.join(req.path()));
        if let Ok(next) = next.as_mut() {
            next.query_pairs_mut()
                .append_pair("fields", param("fields").unwrap_or("name,status,language"))
                .append_pair("limit", &limit.to_string())
                .append_pair("after", &cursor(end));
        }
        if let Ok(next) = next {
            paging["next"] = json!(next.as_str());
        }
    }
    HttpResponse::Ok().json(json!({"data": data, "paging": paging}))
}

/// `GET /{version}/{phone_number_id}`: the phone number's record.
pub async fn meta_phone_number(
    state: web::Data<MockState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if !wire::has_bearer(&req) {
        state.reject(MockKind::MetaWhatsapp, req.path(), Seen::default());
        return graph_unauthorised();
    }
    let answer = state
        .begin(MockKind::MetaWhatsapp, req.path(), Seen::default())
        .await;
    graph_failure(answer).unwrap_or_else(|| {
        HttpResponse::Ok().json(json!({
            "id": path.1, "display_phone_number": "+1 555-010-0000",
            "verified_name": "Mock Business", "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
        }))
    })
}

/// `GET /2010-04-01/Accounts/{sid}.json`: the account record.
pub async fn twilio_account(
    state: web::Data<MockState>,
    req: HttpRequest,
    sid: web::Path<String>,
) -> HttpResponse {
    let error = |status: u16, code: u32, message: &str| {
        HttpResponse::build(wire::status(status)).json(json!({
            "code": code, "message": message, "status": status,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        }))
    };
    if !wire::has_basic(&req) {
        state.reject(MockKind::Twilio, req.path(), Seen::default());
        return error(401, 20003, "Authenticate");
    }
    match state
        .begin(MockKind::Twilio, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().json(json!({
            "sid": sid.as_str(), "friendly_name": "Mock account", "status": "active",
            "type": "Full", "uri": format!("/2010-04-01/Accounts/{sid}.json"),
        })),
        Answer::ClientError => error(404, 20404, "The requested resource was not found"),
        Answer::ServerError => error(500, 20500, "An internal server error has occurred"),
        Answer::RateLimited => error(429, 20429, "Too Many Requests"),
    }
}

/// `GET /v3/scopes`: the API key's scopes.
pub async fn sendgrid_scopes(state: web::Data<MockState>, req: HttpRequest) -> HttpResponse {
    let error = |status: u16, message: &str| {
        HttpResponse::build(wire::status(status))
            .json(json!({"errors": [{"field": null, "message": message}]}))
    };
    if !wire::has_bearer(&req) {
        state.reject(MockKind::Sendgrid, req.path(), Seen::default());
        return error(401, "authorization required");
    }
    match state
        .begin(MockKind::Sendgrid, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().json(json!({"scopes": ["mail.send", "scopes.read"]})),
        Answer::ClientError => error(403, "access forbidden"),
        Answer::ServerError => error(500, "internal error"),
        Answer::RateLimited => error(429, "too many requests"),
    }
}

/// `GET /account/get-balance`: the Vonage account balance.
pub async fn vonage_balance(state: web::Data<MockState>, req: HttpRequest) -> HttpResponse {
    let error = |status: u16, label: &str| {
        HttpResponse::build(wire::status(status))
            .json(json!({"error-code": status.to_string(), "error-code-label": label}))
    };
    let query_key = req.query_string().contains("api_key=");
    if !wire::has_basic(&req) && !query_key {
        state.reject(MockKind::Vonage, req.path(), Seen::default());
        return error(401, "authentication failed");
    }
    match state
        .begin(MockKind::Vonage, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().json(json!({"value": 42.5, "autoReload": false})),
        Answer::ClientError => error(401, "authentication failed"),
        Answer::ServerError => error(500, "internal error"),
        Answer::RateLimited => error(429, "throttled"),
    }
}

/// `GET /v2/email/account`: the SES account's sending status.
pub async fn ses_account(state: web::Data<MockState>, req: HttpRequest) -> HttpResponse {
    let error = |status: u16, kind: &str, message: &str| {
        HttpResponse::build(wire::status(status))
            .insert_header(("x-amzn-ErrorType", kind))
            .json(json!({"message": message}))
    };
    if !wire::has_sigv4(&req) {
        state.reject(MockKind::AwsSes, req.path(), Seen::default());
        return error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    match state
        .begin(MockKind::AwsSes, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().json(json!({
            "DedicatedIpAutoWarmupEnabled": false, "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": true, "SendingEnabled": true,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
        })),
        Answer::ClientError => error(400, "BadRequestException", "Bad request"),
        Answer::ServerError => error(500, "InternalFailure", "Internal failure"),
        Answer::RateLimited => error(429, "TooManyRequestsException", "Too many requests"),
    }
}
