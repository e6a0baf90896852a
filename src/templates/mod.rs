//! Message templates: Jinja-style `{{ variable }}` bodies and subjects rendered with minijinja.
//!
//! Guarantees: a stored template compiles; its `variables` are every top-level name the body
//! and subject read (sorted); rendering refuses to start while any of them is missing and never
//! prints an undefined value (strict undefined behaviour); HTML auto-escaping applies to the
//! HTML part of an e-mail (`html_body`) only, never to a plain-text `body`; an e-mail template
//! without a plain-text body gets one derived from its rendered HTML; one render is bounded in
//! time and memory by a fuel budget.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::db::templates::Template;
use crate::domain::Channel;
use crate::error::{ApiError, ErrorCode, FieldError};

/// Largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 998;
/// Work one render may do (minijinja fuel: roughly instructions, or 64 bytes of data each).
const RENDER_FUEL: u64 = 200_000;

const BODY: &str = "body";
const HTML_BODY: &str = "html_body";
const SUBJECT: &str = "subject";

/// Width the plain-text part derived from HTML is wrapped to.
const TEXT_WIDTH: usize = 78;

/// The plain-text part of an e-mail whose HTML part is `html`: tags dropped, entities decoded,
/// links listed as references, wrapped at 78 columns.
pub fn html_to_text(html: &str) -> String {
    html2text::from_read(html.as_bytes(), TEXT_WIDTH)
        .map(|text| text.trim_end().to_owned())
        .unwrap_or_default()
}

/// How a template is looked up by the send path.
#[derive(Clone, Copy, Debug)]
pub enum TemplateRef<'a> {
    Id(Uuid),
    Name {
        name: &'a str,
        channel: Channel,
        locale: &'a str,
    },
}

/// The tenant's live template, by id or by (name, channel, locale).
pub async fn find_template(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    by: TemplateRef<'_>,
) -> QueryResult<Option<Template>> {
    use crate::db::templates as db;
    match by {
        TemplateRef::Id(id) => db::get_template(conn, tenant_id, id).await,
        TemplateRef::Name {
            name,
            channel,
            locale,
        } => db::find_by_name(conn, tenant_id, name, channel.as_str(), locale).await,
    }
}

/// Review state of a template (WhatsApp templates follow Meta's; the others are APPROVED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    pub const ALL: [TemplateStatus; 5] = [
        TemplateStatus::Approved,
        TemplateStatus::Pending,
        TemplateStatus::Rejected,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
        }
    }
}

impl fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TemplateStatus::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; expected one of APPROVED, PENDING, REJECTED, PAUSED, DISABLED"
                )
            })
    }
}

/// Checks a locale's shape: a 2–3 letter language, optionally `-` or `_` and a 2-letter
/// region or 3-digit area (`en`, `en-GB`, `pt_BR`, `es-419`).
pub fn check_locale(locale: &str) -> Result<(), String> {
    let (language, region) = match locale.find(['-', '_']) {
        Some(i) => (&locale[..i], Some(&locale[i + 1..])),
        None => (locale, None),
    };
    let language_ok =
        (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
    });
    if language_ok && region_ok {
        Ok(())
    } else {
        Err("must be a language code with an optional region, like en, en-GB or pt_BR".into())
    }
}

fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_auto_escape_callback(|name| {
        if name == HTML_BODY {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

/// Compiles the body, HTML body and subject and returns the variables they read, sorted. A
/// template that does not compile is refused naming `body`, `html_body` or `subject`.
pub fn required_variables(
    subject: Option<&str>,
    body: &str,
    html_body: Option<&str>,
) -> Result<Vec<String>, FieldError> {
    let env = environment();
    let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
    let mut names = BTreeSet::new();
    for (field, source) in [
        (BODY, Some(body)),
        (HTML_BODY, html_body),
        (SUBJECT, subject),
    ] {
        let Some(source) = source else { continue };
        let compiled = env
            .template_from_named_str(field, source)
            .map_err(|e| FieldError::new(field, format!("does not compile: {e}")))?;
        names.extend(
            compiled
                .undeclared_variables(false)
                .into_iter()
                .filter(|name| !globals.contains(name.as_str())),
        );
    }
    Ok(names.into_iter().collect())
}

/// A rendered template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    /// The HTML part of an e-mail, its variables HTML-escaped.
    pub html_body: Option<String>,
}

/// Why a template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// These variables were not given (or were null), sorted.
    #[error("template variables missing: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// The variables given do not fit the template (wrong shape, too much work…).
    #[error("the template cannot be rendered with these variables: {0}")]
    Invalid(String),
}

/// Renders the subject and body with `variables`. Every variable the template reads must be
/// present and not null.
pub fn render(
    template: &Template,
    variables: &Map<String, Value>,
) -> Result<Rendered, RenderError> {
    let missing: Vec<String> = template
        .variable_names()
        .into_iter()
        .filter(|name| variables.get(name).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let env = environment();
    let context = minijinja::Value::from(Serde(variables));
    let render_one = |name: &'static str, source: &str| {
        env.template_from_named_str(name, source)
            .and_then(|t| t.render(context.clone()))
            .map_err(|e| match e.kind() {
                ErrorKind::OutOfFuel => RenderError::Invalid(format!(
                    "the {name} needs more work to render than a template may use"
                )),
                _ => RenderError::Invalid(e.to_string()),
            })
    };
    let subject = template
        .subject
        .as_deref()
        .map(|s| render_one(SUBJECT, s))
        .transpose()?;
    let html_body = template
        .html_body
        .as_deref()
        .map(|h| render_one(HTML_BODY, h))
        .transpose()?;
    let body = match &html_body {
        Some(html) if template.body.trim().is_empty() => html_to_text(html),
        _ => render_one(BODY, &template.body)?,
    };
    Ok(Rendered {
        subject,
        body,
        html_body,
    })
}

impl From<RenderError> for ApiError {
    fn from(err: RenderError) -> Self {
        match &err {
            RenderError::Missing(names) => {
                let details: Vec<Value> = names
                    .iter()
                    .map(|n| serde_json::json!({ "variable": n }))
                    .collect();
                ApiError::new(ErrorCode::TemplateVariablesMissing, err.to_string())
                    .with_details(details)
            }
            RenderError::Invalid(reason) => {
                ApiError::invalid_field("template_variables", reason.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests;
