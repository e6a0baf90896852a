//! Timestamps on the wire: RFC 3339, UTC, milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Renders a timestamp as `2026-01-02T03:04:05.678Z`.
pub fn format(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `#[serde(serialize_with = "crate::domain::time::serialize")]`
pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(ts))
}

/// The same for optional timestamps.
pub fn serialize_opt<S: Serializer>(
    ts: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => serializer.serialize_str(&format(ts)),
        None => serializer.serialize_none(),
    }
}
