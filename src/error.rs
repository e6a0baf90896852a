//! The one error type of the HTTP layer: a stable `ERR_` code, a message for the client,
//! optional details, and (for internal errors) a cause that is logged but never shown.

use std::fmt;

use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

macro_rules! error_codes {
    ($($variant:ident => $name:literal, $status:ident;)*) => {
        /// Every error code the API can return (SPEC section 10), with its HTTP status.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant),*
        }

        impl ErrorCode {
            /// All codes, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable wire name, e.g. `ERR_CPAAS_NOT_FOUND`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name),*
                }
            }

            /// The HTTP status that carries this code.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status),*
                }
            }
        }
    };
}

error_codes! {
    ValidationFailed => "ERR_CPAAS_VALIDATION_FAILED", BAD_REQUEST;
    InvalidPhoneNumber => "ERR_CPAAS_INVALID_PHONE_NUMBER", BAD_REQUEST;
    InvalidEmail => "ERR_CPAAS_INVALID_EMAIL", BAD_REQUEST;
    InvalidChannel => "ERR_CPAAS_INVALID_CHANNEL", BAD_REQUEST;
    EmptyMessageBody => "ERR_CPAAS_EMPTY_MESSAGE_BODY", BAD_REQUEST;
    TemplateNotFound => "ERR_CPAAS_TEMPLATE_NOT_FOUND", BAD_REQUEST;
    TemplateVariablesMissing => "ERR_CPAAS_TEMPLATE_VARIABLES_MISSING", BAD_REQUEST;
    InvalidWebhookUrl => "ERR_CPAAS_INVALID_WEBHOOK_URL", BAD_REQUEST;
    InvalidProviderConfig => "ERR_CPAAS_INVALID_PROVIDER_CONFIG", BAD_REQUEST;
    BulkLimitExceeded => "ERR_CPAAS_BULK_LIMIT_EXCEEDED", BAD_REQUEST;
    InvalidCursor => "ERR_CPAAS_INVALID_CURSOR", BAD_REQUEST;
    Unauthorized => "ERR_CPAAS_UNAUTHORIZED", UNAUTHORIZED;
    TokenExpired => "ERR_CPAAS_TOKEN_EXPIRED", UNAUTHORIZED;
    InvalidApiKey => "ERR_CPAAS_INVALID_API_KEY", UNAUTHORIZED;
    InvalidSignature => "ERR_CPAAS_INVALID_SIGNATURE", UNAUTHORIZED;
    InvalidCredentials => "ERR_AUTH_INVALID_CREDENTIALS", UNAUTHORIZED;
    InvalidRefreshToken => "ERR_AUTH_INVALID_REFRESH_TOKEN", UNAUTHORIZED;
    RefreshTokenReused => "ERR_AUTH_REFRESH_TOKEN_REUSED", UNAUTHORIZED;
    Forbidden => "ERR_CPAAS_FORBIDDEN", FORBIDDEN;
    TierInsufficient => "ERR_CPAAS_TIER_INSUFFICIENT", FORBIDDEN;
    TenantMismatch => "ERR_CPAAS_TENANT_MISMATCH", FORBIDDEN;
    NotFound => "ERR_CPAAS_NOT_FOUND", NOT_FOUND;
    MethodNotAllowed => "ERR_CPAAS_METHOD_NOT_ALLOWED", METHOD_NOT_ALLOWED;
    PayloadTooLarge => "ERR_CPAAS_PAYLOAD_TOO_LARGE", PAYLOAD_TOO_LARGE;
    UnsupportedMediaType => "ERR_CPAAS_UNSUPPORTED_MEDIA_TYPE", UNSUPPORTED_MEDIA_TYPE;
    Conflict => "ERR_CPAAS_CONFLICT", CONFLICT;
    DuplicateRequest => "ERR_CPAAS_DUPLICATE_REQUEST", CONFLICT;
    InvalidState => "ERR_CPAAS_INVALID_STATE", CONFLICT;
    RecipientOptedOut => "ERR_CPAAS_RECIPIENT_OPTED_OUT", UNPROCESSABLE_ENTITY;
    NoProviderConfigured => "ERR_CPAAS_NO_PROVIDER_CONFIGURED", UNPROCESSABLE_ENTITY;
    IdempotencyKeyReused => "ERR_CPAAS_IDEMPOTENCY_KEY_REUSED", UNPROCESSABLE_ENTITY;
    TemplateNotApproved => "ERR_CPAAS_TEMPLATE_NOT_APPROVED", UNPROCESSABLE_ENTITY;
    RateLimitExceeded => "ERR_CPAAS_RATE_LIMIT_EXCEEDED", TOO_MANY_REQUESTS;
    TooManyAttempts => "ERR_AUTH_TOO_MANY_ATTEMPTS", TOO_MANY_REQUESTS;
    InternalError => "ERR_CPAAS_INTERNAL_ERROR", INTERNAL_SERVER_ERROR;
    ServiceUnavailable => "ERR_CPAAS_SERVICE_UNAVAILABLE", SERVICE_UNAVAILABLE;
}

impl ErrorCode {
    /// The code an actix-level error with this status maps to.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::ValidationFailed,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            429 => Self::RateLimitExceeded,
            503 => Self::ServiceUnavailable,
            _ => Self::InternalError,
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error answered to a client.
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after_secs: Option<u64>,
    /// Extra response headers (e.g. `X-RateLimit-*`).
    pub headers: Vec<(&'static str, String)>,
    /// Logged with the request id; never sent.
    pub cause: Option<anyhow::Error>,
}

/// Handlers return this.
pub type ApiResult<T> = Result<T, ApiError>;

/// One field that failed validation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    /// 400 `ERR_CPAAS_VALIDATION_FAILED` with one entry per field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "the request is invalid".to_owned(),
        };
        Self::new(ErrorCode::ValidationFailed, message).with_details(fields)
    }

    /// 400 `ERR_CPAAS_VALIDATION_FAILED` for one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 404 naming the resource.
    pub fn not_found(resource: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{resource} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 503, for a database or pool that is not answering.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                ErrorCode::ServiceUnavailable,
                "the service is temporarily unavailable, retry shortly",
            )
        }
    }

    /// 500 with an opaque message; the cause is logged.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(ErrorCode::InternalError, "internal error")
        }
    }

    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    pub fn with_headers(mut self, headers: &[(&'static str, String)]) -> Self {
        self.headers.extend(headers.iter().cloned());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// The `error` object of the envelope.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            http: self.code.status().as_u16(),
            details: self.details.clone(),
        }
    }
}

/// The `error` member of the envelope.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = String, example = "ERR_CPAAS_NOT_FOUND")]
    pub code: ErrorCode,
    pub message: String,
    pub http: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub details: Option<Value>,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " (cause: {cause:#})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
