//! `/cpaas/v1/opt-outs`: the tenant's opt-out ledger. Reads (and the check) for every role,
//! writes for senders. Recipients are normalised before they are stored or compared.

mod handlers;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use handlers::*;

use crate::db::opt_outs::OptOut;
use crate::domain::OptOutId;
use crate::domain::opt_out::OptOutSource;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_opt_outs)
        .service(create_opt_out)
        .service(check_opt_out)
        .service(delete_opt_out);
}

/// An opt-out as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutView {
    #[schema(value_type = String, example = "opt_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub id: OptOutId,
    /// Normalised: E.164 phone number, lower-cased e-mail address or device token.
    #[schema(example = "+447911123456")]
    pub recipient: String,
    /// A channel, or ALL.
    #[schema(example = "SMS")]
    pub channel: String,
    #[schema(value_type = OptOutSource)]
    pub source: String,
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl OptOutView {
    pub fn from_row(row: OptOut) -> Self {
        Self {
            id: OptOutId::from_uuid(row.id),
            recipient: row.recipient,
            channel: row.channel,
            source: row.source,
            reason: row.reason,
            created_at: row.created_at,
        }
    }
}

/// Body of `POST /cpaas/v1/opt-outs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOptOutRequest {
    /// Parsed by the channel's rules (for ALL: a `+` number, else an address with `@`, else a
    /// device token).
    #[schema(example = "+44 7911 123456")]
    pub recipient: String,
    /// SMS, WHATSAPP, EMAIL, PUSH, VOICE or ALL.
    #[schema(example = "SMS")]
    pub channel: String,
    pub reason: Option<String>,
}

/// Filters of `GET /cpaas/v1/opt-outs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OptOutListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Normalised before comparing (with the `channel` filter's rules when one is given).
    pub recipient: Option<String>,
    /// A channel or ALL: opt-outs recorded with exactly this value.
    pub channel: Option<String>,
    pub source: Option<String>,
}

/// Query of `GET /cpaas/v1/opt-outs/check`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CheckQuery {
    pub recipient: String,
    /// A channel: opted out of it or of ALL. `ALL`: opted out of every channel. Absent: opted
    /// out of any channel.
    pub channel: Option<String>,
}

/// Answer of the check.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutCheckView {
    pub opted_out: bool,
    /// The opt-out that applies, if any.
    pub opt_out: Option<OptOutView>,
}

crate::http::envelope::envelope_schema! {
    OptOutEnvelope => OptOutView,
    OptOutListEnvelope => Vec<OptOutView>,
    OptOutCheckEnvelope => OptOutCheckView,
}
