//! Checks of a template's content and of its (name, channel, locale) uniqueness.

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::db::templates as db;
use crate::domain::Channel;
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::templates::{
    MAX_BODY_BYTES, MAX_SUBJECT_CHARS, TemplateStatus, check_locale, required_variables,
};

/// What a template says, before it is checked.
pub(super) struct Content {
    pub name: String,
    pub locale: String,
    pub subject: Option<String>,
    pub body: String,
    /// The HTML part (EMAIL only).
    pub html_body: Option<String>,
    pub status: String,
}

/// Checks every field (reporting all that fail) and compiles the template; returns the
/// normalised content and its variables.
pub(super) fn check_content(
    channel: Channel,
    mut c: Content,
) -> ApiResult<(Content, Vec<Option<String>>)> {
    let mut errors = Vec::new();
    c.name = c.name.trim().to_owned();
    if c.name.is_empty() || c.name.chars().count() > 100 || c.name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must be 1 to 100 characters, without control characters",
        ));
    }
    if let Err(e) = check_locale(&c.locale) {
        errors.push(FieldError::new("locale", e));
    }
    match (&c.subject, channel) {
        (None, Channel::Email) => errors.push(FieldError::new(
            "subject",
            "is required for EMAIL templates",
        )),
        (Some(s), Channel::Email)
            if s.trim().is_empty()
                || s.chars().count() > MAX_SUBJECT_CHARS
                || s.contains(['\r', '\n']) =>
        {
            errors.push(FieldError::new(
                "subject",
                format!("must be 1 to {MAX_SUBJECT_CHARS} characters on one line"),
            ))
        }
        (Some(_), other) if other != Channel::Email => errors.push(FieldError::new(
            "subject",
            format!("is only for EMAIL templates, not {other}"),
        )),
        _ => {}
    }
    c.html_body = c.html_body.take().filter(|h| !h.trim().is_empty());
    match &c.html_body {
        Some(_) if channel != Channel::Email => errors.push(FieldError::new(
            "html_body",
            format!("is only for EMAIL templates, not {channel}"),
        )),
        Some(h) if h.len() > MAX_BODY_BYTES => errors.push(FieldError::new(
            "html_body",
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        )),
        _ => {}
    }
    // An e-mail with an HTML part may leave its plain-text part to be derived from it.
    let body_optional = channel == Channel::Email && c.html_body.is_some();
    if (c.body.trim().is_empty() && !body_optional) || c.body.len() > MAX_BODY_BYTES {
        errors.push(FieldError::new(
            "body",
            format!("must be non-empty and at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    match c.status.parse::<TemplateStatus>() {
        Ok(status) => c.status = status.as_str().to_owned(),
        Err(e) => errors.push(FieldError::new("status", e)),
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let variables = required_variables(c.subject.as_deref(), &c.body, c.html_body.as_deref())
        .map_err(|e| ApiError::validation(vec![e]))?;
    Ok((c, variables.into_iter().map(Some).collect()))
}

pub(super) fn check_provider_name(name: Option<String>) -> ApiResult<Option<String>> {
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 512) {
        return Err(ApiError::invalid_field(
            "provider_template_name",
            "must be at most 512 characters",
        ));
    }
    Ok(name)
}

pub(super) fn parse_channel(channel: &str) -> ApiResult<Channel> {
    channel
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::InvalidChannel, e))
}

fn conflict(name: &str, channel: &str, locale: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("a {channel} template named {name:?} in locale {locale} already exists"),
    )
}

/// Fails with 409 when another live template has this (name, channel, locale).
pub(super) async fn ensure_free(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    name: &str,
    channel: &str,
    locale: &str,
    except: Option<Uuid>,
) -> ApiResult<()> {
    match db::find_by_name(conn, tenant_id, name, channel, locale).await? {
        Some(other) if Some(other.id) != except => Err(conflict(name, channel, locale)),
        _ => Ok(()),
    }
}
