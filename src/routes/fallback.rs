//! The default service: what a request that matches no route is answered.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorCode};
use crate::http::envelope::{Meta, error_response};

/// The default service: no route matched the path and method. When the path is a documented
/// route with other methods, that is a 405 listing them in `Allow`; otherwise a 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = super::docs::methods_for_path(req.path());
    if allowed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no route matches this path",
        ));
    }
    let err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    );
    let mut response = error_response(&err, &Meta::of(&req));
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Ok(response)
}
