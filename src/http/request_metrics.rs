//! Middleware that counts and times every answer in the process's metrics.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::metrics::Metrics;

/// Middleware: counts and times every answer by route pattern (`/cpaas/v1/messages/{id}`,
/// never the raw path, so ids do not become labels).
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let metrics = req
        .app_data::<web::Data<Arc<Metrics>>>()
        .map(|m| m.get_ref().clone());
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        // An error that reaches here is answered by actix with its own status.
        let status = match &res {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        metrics.record_http(method.as_str(), &route, status, started.elapsed());
    }
    res
}
