//! The response envelope `{ data, error, page, meta }` shared by every JSON answer, and the
//! middleware that gives each request its id and reshapes every error (actix's own included)
//! into the envelope.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, Responder};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Largest accepted JSON body.
pub const JSON_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// The request id header, echoed on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Identity of one request, stored in the request's extensions.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub request_id: Uuid,
    pub trace_id: String,
}

/// The tenant of an authenticated caller, stored in the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct RequestTenant(pub Uuid);

/// `meta` of the envelope.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Meta {
    #[schema(value_type = String, format = Uuid)]
    pub request_id: Option<Uuid>,
    pub trace_id: Option<String>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<Uuid>,
}

impl Meta {
    /// The meta of the request being answered.
    pub fn of(req: &HttpRequest) -> Self {
        let ext = req.extensions();
        let request = ext.get::<RequestMeta>();
        Self {
            request_id: request.map(|r| r.request_id),
            trace_id: request.map(|r| r.trace_id.clone()),
            tenant_id: ext.get::<RequestTenant>().map(|t| t.0),
        }
    }
}

/// `page` of a list answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Page {
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub limit: i64,
}

/// The shape of every JSON response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub data: Option<T>,
    pub error: Option<ErrorBody>,
    pub page: Option<Page>,
    pub meta: Meta,
}

/// The envelope of an error; its `data` is always null.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    pub error: ErrorBody,
    #[schema(value_type = Option<Object>)]
    pub page: Option<()>,
    pub meta: Meta,
}

/// A successful answer; turned into the envelope when responding, with the request's meta.
pub struct ApiResponse<T> {
    status: StatusCode,
    data: T,
    page: Option<Page>,
}

impl<T: Serialize> ApiResponse<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            page: None,
        }
    }

    /// 201 with `data`.
    pub fn created(data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            data,
            page: None,
        }
    }

    /// 202 with `data`.
    pub fn accepted(data: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            data,
            page: None,
        }
    }

    /// 200 with a list and its page.
    pub fn list(data: T, page: Page) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            page: Some(page),
        }
    }
}

impl<T: Serialize> Responder for ApiResponse<T> {
    type Body = BoxBody;

    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let envelope = Envelope {
            data: Some(self.data),
            error: None,
            page: self.page,
            meta: Meta::of(req),
        };
        match serde_json::to_vec(&envelope) {
            Ok(body) => HttpResponse::build(self.status)
                .content_type(mime_json())
                .body(body),
            Err(e) => error_response(&ApiError::internal(e), &Meta::of(req)),
        }
    }
}

/// Renders a success envelope to bytes.
pub fn render_envelope<T: Serialize>(
    data: &T,
    page: Option<Page>,
    meta: &Meta,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Envelope {
        data: Some(data),
        error: None,
        page,
        meta: meta.clone(),
    })
}

fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Renders an error in the envelope.
pub fn error_response(err: &ApiError, meta: &Meta) -> HttpResponse {
    let envelope = ErrorEnvelope {
        data: None,
        error: err.body(),
        page: None,
        meta: meta.clone(),
    };
    let mut builder = HttpResponse::build(err.code.status());
    builder.content_type(mime_json());
    if let Some(secs) = err.retry_after_secs {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    for (name, value) in &err.headers {
        builder.insert_header((*name, value.as_str()));
    }
    builder.body(serde_json::to_vec(&envelope).unwrap_or_default())
}

/// Reads `x-request-id` (kept when it is a UUID) and `traceparent` (W3C trace id kept when valid).
pub fn request_meta_from_headers(req: &ServiceRequest) -> RequestMeta {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(Uuid::now_v7);
    let trace_id = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            match parts.as_slice() {
                [_, trace, _, _]
                    if trace.len() == 32
                        && trace.chars().all(|c| c.is_ascii_hexdigit())
                        && trace.chars().any(|c| c != '0') =>
                {
                    Some(trace.to_ascii_lowercase())
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    RequestMeta {
        request_id,
        trace_id,
    }
}

/// Outermost middleware: gives the request its id, echoes it, and makes sure every error
/// answer (handlers', extractors' and actix's own) is the envelope.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let meta = request_meta_from_headers(&req);
    let request_id = meta.request_id;
    req.extensions_mut().insert(meta);
    // Errors that escape every inner service (rare: handler errors arrive as responses) are
    // rendered by actix through `ResponseError`, which for `ApiError` is the envelope too.
    let res = next.call(req).await?.map_into_boxed_body();
    let mut res = reshape_error(res);
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(res)
}

/// Replaces an error response that is not already an envelope by one.
fn reshape_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (req, response) = res.into_parts();
    let new_response = match response.error() {
        Some(err) => {
            let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            envelope_for_error(&req, err, retry_after)
        }
        None if is_json(&response) => return ServiceResponse::new(req, response),
        None => {
            let err = ApiError::new(ErrorCode::for_status(status), default_message(status));
            let mut r = error_response(&err, &Meta::of(&req));
            if let Some(allow) = response.headers().get(header::ALLOW) {
                r.headers_mut().insert(header::ALLOW, allow.clone());
            }
            r
        }
    };
    ServiceResponse::new(req, new_response)
}

fn is_json(response: &HttpResponse) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn envelope_for_error(
    req: &HttpRequest,
    err: &actix_web::Error,
    retry_after: Option<HeaderValue>,
) -> HttpResponse {
    let meta = Meta::of(req);
    let mut response = match err.as_error::<ApiError>() {
        Some(api) => {
            if let Some(cause) = &api.cause {
                tracing::error!(
                    request_id = ?meta.request_id,
                    code = api.code.as_str(),
                    "request failed: {cause:#}"
                );
            }
            error_response(api, &meta)
        }
        None => {
            let status = err.as_response_error().status_code();
            let code = ErrorCode::for_status(status);
            let message = if status.is_server_error() {
                tracing::error!(request_id = ?meta.request_id, "request failed: {err}");
                default_message(status).to_owned()
            } else {
                err.to_string()
            };
            error_response(&ApiError::new(code, message), &meta)
        }
    };
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "no route matches this path",
        405 => "method not allowed on this route",
        413 => "the request body is too large",
        415 => "unsupported media type: send application/json",
        400 => "bad request",
        401 => "authentication required",
        403 => "forbidden",
        503 => "the service is temporarily unavailable, retry shortly",
        _ => "internal error",
    }
}

/// Error handler for the JSON body extractor.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
        }
        E::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "unsupported media type: send application/json",
        ),
        E::Deserialize(de) => {
            ApiError::validation(vec![crate::error::FieldError::new("body", de.to_string())])
        }
        _ => ApiError::new(ErrorCode::ValidationFailed, format!("invalid body: {err}")),
    };
    api.into()
}

/// Error handler for the query-string extractor.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    ApiError::validation(vec![crate::error::FieldError::new(
        "query",
        err.to_string(),
    )])
    .into()
}

/// Error handler for the path extractor: a path that does not parse names nothing.
pub fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no resource at this path: {err}"),
    )
    .into()
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// The envelope (with its `meta`) is written by the request-context middleware,
    /// which has the request; this body is only what a caller without it would see.
    fn error_response(&self) -> HttpResponse {
        error_response(self, &Meta::default())
    }
}

/// Declares OpenAPI schemas of the envelope with a given `data`, one per response body.
macro_rules! envelope_schema {
    ($($name:ident => $data:ty),* $(,)?) => {$(
        #[doc = concat!("Envelope whose `data` is `", stringify!($data), "`.")]
        #[derive(utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $name {
            pub data: $data,
            #[schema(value_type = Option<Object>)]
            pub error: Option<()>,
            pub page: Option<$crate::http::envelope::Page>,
            pub meta: $crate::http::envelope::Meta,
        }
    )*};
}
pub(crate) use envelope_schema;
