//! `GET /cpaas/v1/usage`: message counts by status and summed cost, grouped by channel,
//! provider or day (UTC), over a time range. Admin only.

use std::collections::BTreeMap;

use actix_web::{get, web};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::roles::Permission;
use crate::error::{ApiError, ApiResult};
use crate::http::AuthUser;
use crate::http::envelope::ApiResponse;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_usage);
}

/// Query of `GET /cpaas/v1/usage`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// RFC 3339 or YYYY-MM-DD, inclusive; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or YYYY-MM-DD, exclusive (a date means the end of that day); default now.
    pub to: Option<String>,
    /// channel (default), provider or day.
    pub group_by: Option<String>,
}

/// One group of the usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageGroup {
    /// The channel, the provider kind (UNASSIGNED before routing) or the day.
    pub key: String,
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub cost_usd: f64,
}

/// The usage report.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    pub group_by: String,
    pub total: i64,
    pub cost_usd: f64,
    pub groups: Vec<UsageGroup>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = BigInt)]
    cost_micros: i64,
}

fn bound(field: &str, value: &str, end_of_day: bool) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid_field(field, "must be RFC 3339 or YYYY-MM-DD"))?;
    let date = if end_of_day {
        date + Duration::days(1)
    } else {
        date
    };
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// Usage over a time range.
#[utoipa::path(
    tag = "usage",
    security(("bearer" = [])),
    params(UsageQuery),
    responses(
        (status = 200, description = "The report", body = crate::routes::usage::UsageEnvelope),
        (status = 400, description = "A bad range or grouping", body = crate::http::envelope::ErrorEnvelope),
        (status = 403, description = "Not an admin", body = crate::http::envelope::ErrorEnvelope),
    )
)]
#[get("/cpaas/v1/usage")]
pub async fn get_usage(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<UsageQuery>,
) -> ApiResult<ApiResponse<UsageReport>> {
    user.require(Permission::Admin)?;
    let to = match &query.to {
        Some(v) => bound("to", v, true)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(v) => bound("from", v, false)?,
        None => to - Duration::days(30),
    };
    if from >= to {
        return Err(ApiError::invalid_field("from", "must be before to"));
    }
    if to - from > Duration::days(366) {
        return Err(ApiError::invalid_field(
            "from",
            "the range is at most 366 days",
        ));
    }
    let group_by = query.group_by.clone().unwrap_or_else(|| "channel".into());
    let key_sql = match group_by.as_str() {
        "channel" => "channel",
        "provider" => "coalesce(provider_kind, 'UNASSIGNED')",
        "day" => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        _ => {
            return Err(ApiError::invalid_field(
                "group_by",
                "must be channel, provider or day",
            ));
        }
    };
    let mut conn = state.pool.get().await?;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT {key_sql} AS key, status, count(*) AS count, \
                coalesce(sum(cost_usd_micros), 0)::bigint AS cost_micros \
         FROM messages WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind::<SqlUuid, _>(user.tenant_id)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(&mut conn)
    .await?;
    let mut groups: BTreeMap<String, (i64, BTreeMap<String, i64>, i64)> = BTreeMap::new();
    for row in rows {
        let group = groups.entry(row.key).or_default();
        group.0 += row.count;
        group.1.insert(row.status, row.count);
        group.2 += row.cost_micros;
    }
    let groups: Vec<UsageGroup> = groups
        .into_iter()
        .map(|(key, (total, by_status, micros))| UsageGroup {
            key,
            total,
            by_status,
            cost_usd: micros as f64 / 1_000_000.0,
        })
        .collect();
    Ok(ApiResponse::ok(UsageReport {
        from,
        to,
        group_by,
        total: groups.iter().map(|g| g.total).sum(),
        cost_usd: groups.iter().map(|g| g.cost_usd).sum(),
        groups,
    }))
}

crate::http::envelope::envelope_schema! {
    UsageEnvelope => UsageReport,
}
