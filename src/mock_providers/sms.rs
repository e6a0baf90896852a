//! Fake Vonage SMS API and Amazon SNS `Publish` (and `GetSMSAttributes`) endpoints.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::state::{Answer, MockKind, MockState, Seen};
use super::wire;

/// Vonage answers HTTP 200 whatever happened; `status` and `error-text` tell.
fn vonage_failure(status: &str, text: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "message-count": "1",
        "messages": [{"status": status, "error-text": text}],
    }))
}

/// How many parts a text is sent in (153 GSM characters or 67 UCS-2 ones per part).
fn parts(text: &str) -> usize {
    let length = text.chars().count();
    let (single, part) = if text.is_ascii() {
        (160, 153)
    } else {
        (70, 67)
    };
    if length <= single {
        1
    } else {
        length.div_ceil(part)
    }
}

/// `POST /sms/json` (form or JSON).
pub async fn vonage_sms(
    state: web::Data<MockState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let fields: HashMap<String, String> = match wire::json(&body) {
        Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect(),
        _ => wire::form(&body),
    };
    let ids: Vec<String> = (0..parts(fields.get("text").map_or("", String::as_str)))
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let seen = Seen {
        message_id: fields.get("client-ref").cloned(),
        recipient: fields.get("to").cloned(),
        provider_message_id: ids.first().cloned(),
        media: Vec::new(),
    };
    let missing = ["api_key", "api_secret", "from", "to", "text"]
        .into_iter()
        .find(|f| fields.get(*f).is_none_or(|v| v.is_empty()));
    if let Some(field) = missing {
        state.reject(MockKind::Vonage, req.path(), seen);
        return vonage_failure("2", &format!("Missing {field} param"));
    }
    match state.begin(MockKind::Vonage, req.path(), seen).await {
        Answer::Ok => {
            let messages: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({
                        "to": fields.get("to"),
                        "message-id": id,
                        "status": "0",
                        "remaining-balance": "15.53590000",
                        "message-price": "0.03330000",
                        "network": "23410",
                        "client-ref": fields.get("client-ref"),
                    })
                })
                .collect();
            HttpResponse::Ok().json(json!({
                "message-count": messages.len().to_string(),
                "messages": messages,
            }))
        }
        Answer::ClientError => vonage_failure("3", "Invalid value for parameter: to"),
        Answer::ServerError => vonage_failure("5", "Internal Error"),
        Answer::RateLimited => vonage_failure(
            "1",
            "Throughput Rate Exceeded - please wait [ 10 ] and retry",
        ),
    }
}

const SNS_NS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

fn sns_error(status: u16, kind: &str, code: &str, message: &str) -> HttpResponse {
    let xml = format!(
        "<ErrorResponse xmlns=\"{SNS_NS}\"><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        crate::providers::twilio::xml_escape(message),
        uuid::Uuid::new_v4()
    );
    HttpResponse::build(wire::status(status))
        .content_type("text/xml")
        .body(xml)
}

/// `POST /` with `Action=GetSMSAttributes` (a signed request): the account's SMS settings.
async fn sns_attributes(state: web::Data<MockState>, req: HttpRequest) -> HttpResponse {
    match state
        .begin(MockKind::AwsSns, req.path(), Seen::default())
        .await
    {
        Answer::Ok => HttpResponse::Ok().content_type("text/xml").body(format!(
            "<GetSMSAttributesResponse xmlns=\"{SNS_NS}\"><GetSMSAttributesResult><attributes>\
             <entry><key>DefaultSMSType</key><value>Transactional</value></entry>\
             <entry><key>MonthlySpendLimit</key><value>100</value></entry>\
             </attributes></GetSMSAttributesResult><ResponseMetadata><RequestId>{}</RequestId>\
             </ResponseMetadata></GetSMSAttributesResponse>",
            uuid::Uuid::new_v4()
        )),
        Answer::ClientError => sns_error(403, "Sender", "AuthorizationError", "Not authorized"),
        Answer::ServerError => sns_error(500, "Receiver", "InternalError", "Internal Error"),
        Answer::RateLimited => sns_error(400, "Sender", "Throttling", "Rate exceeded"),
    }
}

/// `POST /` with `Action=Publish` (or `GetSMSAttributes`).
pub async fn sns(state: web::Data<MockState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = wire::form(&body);
    if wire::has_sigv4(&req) && form.get("Action").map(String::as_str) == Some("GetSMSAttributes") {
        return sns_attributes(state, req).await;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let phone = form.get("PhoneNumber").cloned();
    let seen = Seen {
        // SMS publishes carry no field of ours.
        message_id: None,
        recipient: phone.clone(),
        provider_message_id: Some(id.clone()),
        media: Vec::new(),
    };
    let refusal = if !wire::has_sigv4(&req) {
        Some(sns_error(
            403,
            "Sender",
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ))
    } else if form.get("Action").map(String::as_str) != Some("Publish") {
        Some(sns_error(
            400,
            "Sender",
            "InvalidAction",
            "The action or operation requested is invalid.",
        ))
    } else if phone.is_none() && !form.contains_key("TopicArn") && !form.contains_key("TargetArn") {
        Some(sns_error(
            400,
            "Sender",
            "InvalidParameter",
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        state.reject(MockKind::AwsSns, req.path(), seen);
        return refusal;
    }
    match state.begin(MockKind::AwsSns, req.path(), seen).await {
        Answer::Ok => HttpResponse::Ok().content_type("text/xml").body(format!(
            "<PublishResponse xmlns=\"{SNS_NS}\"><PublishResult><MessageId>{id}</MessageId>\
             </PublishResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
             </PublishResponse>",
            uuid::Uuid::new_v4()
        )),
        Answer::ClientError => sns_error(
            400,
            "Sender",
            "InvalidParameter",
            &format!(
                "Invalid parameter: PhoneNumber Reason: {} is not valid to publish to",
                phone.unwrap_or_default()
            ),
        ),
        Answer::ServerError => sns_error(500, "Receiver", "InternalError", "Internal Error"),
        Answer::RateLimited => sns_error(400, "Sender", "Throttling", "Rate exceeded"),
    }
}
