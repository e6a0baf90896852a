//! WhatsApp template status updates from Meta (`message_template_status_update`).
//!
//! The update names the template as Meta knows it (`message_template_name`,
//! `message_template_language`). It applies to the tenant's live WHATSAPP templates whose
//! `provider_template_name` is that name (or, without one, whose own name is) and whose locale
//! is that language (`en_US` and `en-us` are the same locale). A template whose status changes
//! gets a new version, recorded in its history, exactly as an edit through the API would.
//! The `sync-templates` job applies the statuses it reads from Meta through the same
//! [`apply_status`], so a callback and a sync never disagree on what a change is.
//!
//! Meta's events map to our statuses: APPROVED and REINSTATED → APPROVED; REJECTED; PAUSED;
//! DISABLED; PENDING and IN_APPEAL → PENDING. Other events (FLAGGED, PENDING_DELETION…) leave
//! the status alone.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::status::EventOutcome;
use super::{CallbackError, Source, TemplateStatusUpdate};
use crate::db::schema::templates;
use crate::db::templates::{Template, TemplateVersion, insert_version};

/// Our status for one of Meta's template events.
pub fn status_for_event(event: &str) -> Option<&'static str> {
    Some(match event.to_ascii_uppercase().as_str() {
        "APPROVED" | "REINSTATED" => "APPROVED",
        "REJECTED" => "REJECTED",
        "PAUSED" => "PAUSED",
        "DISABLED" => "DISABLED",
        "PENDING" | "IN_APPEAL" => "PENDING",
        _ => return None,
    })
}

fn same_locale(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().replace('-', "_").to_ascii_lowercase();
    norm(a) == norm(b)
}

/// What applying one status did to the tenant's templates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusApplied {
    /// Live templates the update names.
    pub matched: usize,
    /// Those whose status changed (each with a new version).
    pub changed: usize,
}

impl StatusApplied {
    /// The callback outcome of the update.
    pub fn outcome(self) -> EventOutcome {
        if self.matched == 0 {
            EventOutcome::Unmatched
        } else if self.changed > 0 {
            EventOutcome::Applied
        } else {
            EventOutcome::Unchanged
        }
    }
}

/// Applies a callback's update in the caller's transaction.
pub async fn apply_template_status(
    conn: &mut AsyncPgConnection,
    source: &Source,
    update: &TemplateStatusUpdate,
) -> Result<EventOutcome, CallbackError> {
    Ok(apply_status(conn, source.tenant_id(), update, "callback")
        .await?
        .outcome())
}

/// Applies a status Meta reports for one of its templates to the tenant's matching templates,
/// in the caller's transaction: a template whose status differs gets the new status, a new
/// version and a history entry; one already in that status is left alone. `origin` names
/// where the status came from, for the log.
pub async fn apply_status(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    update: &TemplateStatusUpdate,
    origin: &str,
) -> QueryResult<StatusApplied> {
    let candidates: Vec<Template> = templates::table
        .filter(templates::tenant_id.eq(tenant_id))
        .filter(templates::channel.eq("WHATSAPP"))
        .filter(templates::deleted_at.is_null())
        .filter(
            templates::provider_template_name.eq(&update.name).or(
                templates::provider_template_name
                    .is_null()
                    .and(templates::name.eq(&update.name)),
            ),
        )
        .select(Template::as_select())
        .for_update()
        .load(conn)
        .await?;
    let matching: Vec<Template> = candidates
        .into_iter()
        .filter(|t| same_locale(&t.locale, &update.language))
        .collect();
    let mut applied = StatusApplied {
        matched: matching.len(),
        changed: 0,
    };
    for template in matching.iter().filter(|t| t.status != update.status) {
        let row: Template = diesel::update(templates::table.find(template.id))
            .set((
                templates::status.eq(update.status),
                templates::version.eq(template.version + 1),
                templates::updated_at.eq(Utc::now()),
            ))
            .returning(Template::as_returning())
            .get_result(conn)
            .await?;
        insert_version(conn, &TemplateVersion::of(&row)).await?;
        tracing::info!(
            template_id = %row.id,
            status = update.status,
            reason = update.reason.as_deref().unwrap_or(""),
            origin,
            "WhatsApp template status changed at Meta"
        );
        applied.changed += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_events_map_to_template_statuses() {
        assert_eq!(status_for_event("APPROVED"), Some("APPROVED"));
        assert_eq!(status_for_event("reinstated"), Some("APPROVED"));
        assert_eq!(status_for_event("PAUSED"), Some("PAUSED"));
        assert_eq!(status_for_event("FLAGGED"), None);
    }

    #[test]
    fn locales_compare_without_case_or_separator() {
        assert!(same_locale("en_US", "en-us"));
        assert!(!same_locale("en", "en_US"));
    }
}
