//! Fake FCM HTTP v1 `messages:send` and the OAuth2 token endpoint (`/token`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::state::{Answer, MockKind, MockState, Seen};
use super::wire;

fn rpc_error(status: u16, rpc_status: &str, fcm_code: &str, message: &str) -> HttpResponse {
    let mut response = HttpResponse::build(wire::status(status));
    if status == 429 {
        response.insert_header(("Retry-After", "1"));
    }
    response.json(json!({"error": {
        "code": status,
        "message": message,
        "status": rpc_status,
        "details": [{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": fcm_code,
        }],
    }}))
}

/// `POST /v1/projects/{project}/messages:send`.
pub async fn fcm_send(
    state: web::Data<MockState>,
    req: HttpRequest,
    project: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let body = wire::json(&body);
    let name = wire::fcm_name(&project);
    let token = wire::text_at(&body, "/message/token");
    let seen = Seen {
        message_id: wire::text_at(&body, "/message/data/message_id"),
        recipient: token.clone(),
        provider_message_id: Some(name.clone()),
        media: wire::text_at(&body, "/message/notification/image")
            .into_iter()
            .collect(),
    };
    let refusal = if !wire::has_bearer(&req) {
        Some(HttpResponse::Unauthorized().json(json!({"error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            "status": "UNAUTHENTICATED",
        }})))
    } else if token.is_none() && body.pointer("/message/topic").is_none() {
        Some(rpc_error(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::Fcm, req.path(), seen);
        return refusal;
    }
    match state.begin(MockKind::Fcm, req.path(), seen).await {
        Answer::Ok => HttpResponse::Ok().json(json!({"name": name})),
        Answer::ClientError => rpc_error(
            404,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        ),
        Answer::ServerError => rpc_error(
            503,
            "UNAVAILABLE",
            "UNAVAILABLE",
            "The service is currently unavailable.",
        ),
        Answer::RateLimited => rpc_error(
            429,
            "RESOURCE_EXHAUSTED",
            "QUOTA_EXCEEDED",
            "Quota exceeded for quota metric 'Send requests'.",
        ),
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(wire::status(status))
        .json(json!({"error": error, "error_description": description}))
}

/// `POST /token`: a JWT-bearer grant for any well-formed assertion (signatures are not checked).
pub async fn token(
    state: web::Data<MockState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = wire::form(&body);
    let access_token = format!("ya29.mock-{}", wire::hex32());
    let grant = form.get("grant_type").map(String::as_str);
    let refusal = if grant != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        Some(oauth_error(
            400,
            "unsupported_grant_type",
            "Invalid grant_type",
        ))
    } else if form
        .get("assertion")
        .is_none_or(|a| a.split('.').count() != 3)
    {
        Some(oauth_error(
            400,
            "invalid_grant",
            "Invalid JWT: the assertion is malformed",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::FcmToken, req.path(), Seen::default());
        return refusal;
    }
    match state
        .begin(MockKind::FcmToken, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().json(json!({
            "access_token": access_token,
            "expires_in": 3599,
            "token_type": "Bearer",
        })),
        Answer::ClientError => oauth_error(400, "invalid_grant", "Invalid JWT Signature."),
        Answer::ServerError => oauth_error(503, "temporarily_unavailable", "Try again later"),
        Answer::RateLimited => oauth_error(429, "rate_limit_exceeded", "Rate limit exceeded"),
    }
}
