//! The claims of an access token.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Claims of an access token, in the platform's camelCase.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
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
    pub iss: String,
    /// A string, or a list of strings for tokens from an external issuer.
    #[schema(value_type = String)]
    pub aud: Value,
    pub jti: String,
}
