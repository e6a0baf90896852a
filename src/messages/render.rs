//! A send's content rendered for its channel: its own text, or its template found (by id, or
//! by name and locale for the channel), approved, and rendered with its variables.

use std::collections::HashMap;

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::valid::{Content, TemplateKey, check_body};
use crate::domain::Channel;
use crate::error::{ApiError, ErrorCode};
use crate::templates::{self, TemplateRef};

/// A send's content, rendered.
pub(super) struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    pub html_body: Option<String>,
    pub template_id: Option<Uuid>,
    pub template_version: Option<i32>,
}

pub(super) type TemplateCache = HashMap<(TemplateKey, Channel), Option<crate::templates::Template>>;

/// Renders a send's content for `channel`: its text as given, or its template (found, for
/// the channel, approved) with its variables. `Ok(Err(_))` is this send's refusal.
pub(super) async fn render(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    channel: Channel,
    content: Content,
    template_cache: &mut TemplateCache,
) -> Result<Result<Rendered, ApiError>, ApiError> {
    let (by, variables, subject) = match content {
        Content::Text {
            subject,
            body,
            html_body,
        } => {
            return Ok(Ok(Rendered {
                subject,
                body,
                html_body,
                template_id: None,
                template_version: None,
            }));
        }
        Content::Template {
            by,
            variables,
            subject,
        } => (by, variables, subject),
    };
    let key = (by.clone(), channel);
    if !template_cache.contains_key(&key) {
        let found = match &by {
            TemplateKey::Id(id) => {
                templates::find_template(conn, tenant_id, TemplateRef::Id(*id)).await?
            }
            TemplateKey::Name { name, locale } => {
                templates::find_template(
                    conn,
                    tenant_id,
                    TemplateRef::Name {
                        name,
                        channel,
                        locale,
                    },
                )
                .await?
            }
        };
        template_cache.insert(key.clone(), found);
    }
    let Some(template) = template_cache.get(&key).and_then(Option::as_ref) else {
        return Ok(Err(ApiError::new(
            ErrorCode::TemplateNotFound,
            "template not found",
        )));
    };
    if template.channel != channel.as_str() {
        return Ok(Err(ApiError::invalid_field(
            "template_id",
            format!("the template is for {}, not {channel}", template.channel),
        )));
    }
    if !template.is_approved() {
        return Ok(Err(ApiError::new(
            ErrorCode::TemplateNotApproved,
            format!("the template is {}, not APPROVED", template.status),
        )));
    }
    let rendered = match templates::render(template, &variables) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.into())),
    };
    if let Err(e) = check_body(channel, &rendered.body) {
        return Ok(Err(e));
    }
    let subject = subject.or(rendered.subject);
    if channel == Channel::Email && subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Ok(Err(ApiError::invalid_field(
            "subject",
            "an e-mail needs a subject",
        )));
    }
    Ok(Ok(Rendered {
        subject,
        body: rendered.body,
        html_body: rendered.html_body,
        template_id: Some(template.id),
        template_version: Some(template.version),
    }))
}
