//! The root span of each request, carrying its request id, trace id and (once known) tenant id.

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::envelope::RequestMeta;

/// The root span of every request.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let meta = request.extensions().get::<RequestMeta>().cloned();
        let (request_id, trace_id) = match meta {
            Some(m) => (m.request_id.to_string(), m.trace_id),
            None => (String::new(), String::new()),
        };
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = %trace_id,
            tenant_id = tracing::field::Empty,
            http.method = %request.method(),
            http.route = %route,
            http.target = %request.uri().path(),
            http.status_code = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        match outcome {
            Ok(response) => {
                let status = response.status();
                span.record("http.status_code", status.as_u16());
                if status.is_server_error() {
                    tracing::error!(parent: &span, status = status.as_u16(), "request failed");
                } else {
                    tracing::info!(parent: &span, status = status.as_u16(), "request finished");
                }
            }
            Err(err) => {
                let status = err.as_response_error().status_code();
                span.record("http.status_code", status.as_u16());
                tracing::error!(parent: &span, status = status.as_u16(), "request failed: {err}");
            }
        }
    }
}
