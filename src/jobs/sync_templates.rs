//! `sync-templates` (and `POST /_internal/sync-templates`): for every active META_WHATSAPP
//! provider of every tenant, reads the business account's template list from Meta, page by
//! page, and applies each template's status to the tenant's WHATSAPP templates through the
//! same function the template-status callback uses: a template whose status changed gets a
//! new version and a history entry, one already in that status is not touched, so a sync that
//! finds nothing new writes nothing.
//!
//! Each page is applied in its own transaction as soon as it is read. A provider that fails
//! (refused credentials, a 5xx, a timeout, a broken answer) stops at that page, is reported
//! with its error, and does not stop the others.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{JobError, JobReport};
use crate::callbacks::TemplateStatusUpdate;
use crate::callbacks::templates::{apply_status, status_for_event};
use crate::db::DbPool;
use crate::db::providers::Provider;
use crate::db::schema::providers;
use crate::domain::ProviderKind;
use crate::domain::ids::ProviderId;
use crate::providers::CallError;
use crate::providers::meta_whatsapp::{MetaTemplate, MetaWhatsappClient};
use crate::providers::registry::ProviderRegistry;

/// Templates asked for per page.
pub const PAGE_LIMIT: u32 = 100;
/// A list longer than this many pages is cut short (and reported as an error).
const MAX_PAGES: i64 = 500;

/// What a sync did, in total and per provider.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SyncReport {
    /// Providers synced (or tried).
    pub providers: i64,
    pub pages: i64,
    pub templates_seen: i64,
    /// Templates of ours whose status changed.
    pub updated: i64,
    /// Providers that failed.
    pub errors: i64,
    pub results: Vec<ProviderSync>,
}

/// What the sync did for one provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderSync {
    #[schema(value_type = String, example = "prv_0192f0c1a2b37c4d8e9f00112233aabb")]
    pub provider_id: ProviderId,
    pub pages: i64,
    pub templates_seen: i64,
    pub updated: i64,
    /// 1 when the provider failed, else 0.
    pub errors: i64,
    /// Why it failed.
    pub error: Option<String>,
}

impl SyncReport {
    fn add(&mut self, one: ProviderSync) {
        self.providers += 1;
        self.pages += one.pages;
        self.templates_seen += one.templates_seen;
        self.updated += one.updated;
        self.errors += one.errors;
        self.results.push(one);
    }

    /// The report as the jobs endpoint shows it (totals only).
    pub fn job_report(&self) -> JobReport {
        let counts = [
            ("providers", self.providers),
            ("pages", self.pages),
            ("templates_seen", self.templates_seen),
            ("updated", self.updated),
            ("errors", self.errors),
        ];
        JobReport {
            job: "sync-templates".into(),
            counts: counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }
}

/// The job: a sync, reported in totals.
pub async fn run(pool: &DbPool, registry: &ProviderRegistry) -> Result<JobReport, JobError> {
    Ok(sync(pool, registry).await?.job_report())
}

/// Syncs every active META_WHATSAPP provider, one after the other.
pub async fn sync(pool: &DbPool, registry: &ProviderRegistry) -> Result<SyncReport, JobError> {
    let rows: Vec<Provider> = {
        let mut conn = pool.get().await?;
        providers::table
            .filter(providers::kind.eq(ProviderKind::MetaWhatsapp.as_str()))
            .filter(providers::is_active.eq(true))
            .filter(providers::deleted_at.is_null())
            .order(providers::id.asc())
            .select(Provider::as_select())
            .load(&mut conn)
            .await?
    };
    let mut report = SyncReport::default();
    for row in &rows {
        report.add(sync_provider(pool, registry, row).await?);
    }
    Ok(report)
}

/// Syncs one provider. Only database failures are errors of the job; a provider's own
/// failure is recorded in its result.
async fn sync_provider(
    pool: &DbPool,
    registry: &ProviderRegistry,
    row: &Provider,
) -> Result<ProviderSync, JobError> {
    let mut result = ProviderSync {
        provider_id: ProviderId::from_uuid(row.id),
        pages: 0,
        templates_seen: 0,
        updated: 0,
        errors: 0,
        error: None,
    };
    let client = match registry
        .settings(row)
        .and_then(|s| MetaWhatsappClient::new(&s, registry.http().clone()))
    {
        Ok(client) => client,
        Err(e) => return Ok(failed(result, row, &format!("unusable settings: {e:#}"))),
    };
    let mut after: Option<String> = None;
    loop {
        let page = match client.template_page(after.as_deref(), PAGE_LIMIT).await {
            Ok(page) => page,
            Err(CallError { code, message }) => {
                return Ok(failed(result, row, &format!("{code}: {message}")));
            }
        };
        result.pages += 1;
        result.templates_seen += i64::try_from(page.templates.len()).unwrap_or(i64::MAX);
        result.updated += apply_page(pool, row.tenant_id, &page.templates).await?;
        match page.after {
            Some(next) if after.as_deref() == Some(next.as_str()) => {
                return Ok(failed(result, row, "the next-page cursor repeats itself"));
            }
            Some(_) if result.pages >= MAX_PAGES => {
                return Ok(failed(result, row, "the template list has too many pages"));
            }
            Some(next) => after = Some(next),
            None => return Ok(result),
        }
    }
}

fn failed(mut result: ProviderSync, row: &Provider, error: &str) -> ProviderSync {
    tracing::warn!(provider_id = %row.id, tenant_id = %row.tenant_id, error, "template sync failed");
    result.errors = 1;
    result.error = Some(error.to_owned());
    result
}

/// Applies one page's statuses in one transaction; returns how many templates changed.
async fn apply_page(
    pool: &DbPool,
    tenant_id: Uuid,
    templates: &[MetaTemplate],
) -> Result<i64, JobError> {
    let updates: Vec<TemplateStatusUpdate> = templates
        .iter()
        .filter_map(|t| {
            Some(TemplateStatusUpdate {
                name: t.name.clone(),
                language: t.language.clone(),
                status: status_for_event(&t.status)?,
                reason: None,
            })
        })
        .collect();
    if updates.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.get().await?;
    let changed = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let mut changed = 0usize;
            for update in &updates {
                changed += apply_status(conn, tenant_id, update, "sync").await?.changed;
            }
            Ok(changed)
        })
        .await?;
    Ok(i64::try_from(changed).unwrap_or(i64::MAX))
}
