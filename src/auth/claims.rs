//! The claims of an access token: this service's own (with `iss`, `aud` and `jti`), or the
//! platform auth service's (the seven claims `sub`, `tenantId`, `email`, `roles`, `planTier`,
//! `iat`, `exp`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Claims of an access token, in the platform's camelCase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    #[serde(rename = "tenantId")]
    pub tenant_id: Uuid,
    pub email: String,
    pub roles: Vec<String>,
    #[serde(rename = "planTier")]
    pub plan_tier: String,
    pub iat: i64,
    pub exp: i64,
    /// Not before; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Always on this service's tokens; on the auth service's only when it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string, or a list of strings for tokens from an external issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub aud: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}
