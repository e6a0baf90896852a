//! Template rows, their version history and their queries. Every query is scoped by tenant;
//! deleted templates are hidden.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{template_versions, templates};

/// A template row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = templates)]
pub struct Template {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub channel: String,
    pub locale: String,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Vec<Option<String>>,
    pub status: String,
    pub provider_template_name: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The HTML part of an e-mail template (`body` is its plain-text part, derived from this
    /// one when empty).
    pub html_body: Option<String>,
}

impl Template {
    /// The variable names the body and subject need, sorted.
    pub fn variable_names(&self) -> Vec<String> {
        self.variables.iter().flatten().cloned().collect()
    }

    /// Whether messages may use it (only APPROVED templates are sent).
    pub fn is_approved(&self) -> bool {
        self.status == "APPROVED"
    }
}

/// A template to insert (version 1).
#[derive(Debug, Insertable)]
#[diesel(table_name = templates)]
pub struct NewTemplate {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub channel: String,
    pub locale: String,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Vec<Option<String>>,
    pub status: String,
    pub provider_template_name: Option<String>,
    pub html_body: Option<String>,
}

/// The full new state of a template after a change.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = templates, treat_none_as_null = true)]
pub struct TemplateChanges {
    pub name: String,
    pub locale: String,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Vec<Option<String>>,
    pub status: String,
    pub provider_template_name: Option<String>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    pub html_body: Option<String>,
}

/// One version of a template's content.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = template_versions)]
pub struct TemplateVersion {
    pub template_id: Uuid,
    pub version: i32,
    pub name: String,
    pub locale: String,
    pub status: String,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub html_body: Option<String>,
}

impl TemplateVersion {
    /// The version row describing `template` as it is now.
    pub fn of(template: &Template) -> Self {
        Self {
            template_id: template.id,
            version: template.version,
            name: template.name.clone(),
            locale: template.locale.clone(),
            status: template.status.clone(),
            subject: template.subject.clone(),
            body: template.body.clone(),
            variables: template.variables.clone(),
            created_at: template.updated_at,
            html_body: template.html_body.clone(),
        }
    }
}

/// Filters of the template list.
#[derive(Debug, Default)]
pub struct TemplateFilter {
    pub channel: Option<String>,
    pub locale: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
}

/// Inserts a template and its first version.
pub async fn insert_template(
    conn: &mut AsyncPgConnection,
    new: &NewTemplate,
) -> QueryResult<Template> {
    let row = diesel::insert_into(templates::table)
        .values(new)
        .returning(Template::as_returning())
        .get_result(conn)
        .await?;
    insert_version(conn, &TemplateVersion::of(&row)).await?;
    Ok(row)
}

pub async fn insert_version(
    conn: &mut AsyncPgConnection,
    version: &TemplateVersion,
) -> QueryResult<()> {
    diesel::insert_into(template_versions::table)
        .values(version)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn get_template(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Template>> {
    templates::table
        .filter(templates::tenant_id.eq(tenant_id))
        .filter(templates::id.eq(id))
        .filter(templates::deleted_at.is_null())
        .select(Template::as_select())
        .first(conn)
        .await
        .optional()
}

/// The same, locked for update.
pub async fn lock_template(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Template>> {
    templates::table
        .filter(templates::tenant_id.eq(tenant_id))
        .filter(templates::id.eq(id))
        .filter(templates::deleted_at.is_null())
        .select(Template::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The live template with this (name, channel, locale).
pub async fn find_by_name(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    name: &str,
    channel: &str,
    locale: &str,
) -> QueryResult<Option<Template>> {
    templates::table
        .filter(templates::tenant_id.eq(tenant_id))
        .filter(templates::name.eq(name))
        .filter(templates::channel.eq(channel))
        .filter(templates::locale.eq(locale))
        .filter(templates::deleted_at.is_null())
        .select(Template::as_select())
        .first(conn)
        .await
        .optional()
}

/// Newest first, `limit + 1` rows after the cursor.
pub async fn list_templates(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    filter: &TemplateFilter,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Template>> {
    let mut query = templates::table
        .filter(templates::tenant_id.eq(tenant_id))
        .filter(templates::deleted_at.is_null())
        .select(Template::as_select())
        .order(templates::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(templates::id.lt(before));
    }
    if let Some(channel) = &filter.channel {
        query = query.filter(templates::channel.eq(channel.clone()));
    }
    if let Some(locale) = &filter.locale {
        query = query.filter(templates::locale.eq(locale.clone()));
    }
    if let Some(name) = &filter.name {
        query = query.filter(templates::name.eq(name.clone()));
    }
    if let Some(status) = &filter.status {
        query = query.filter(templates::status.eq(status.clone()));
    }
    query.load(conn).await
}

/// Versions of a template, newest first, `limit + 1` of them below `before_version`.
pub async fn list_versions(
    conn: &mut AsyncPgConnection,
    template_id: Uuid,
    before_version: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<TemplateVersion>> {
    let mut query = template_versions::table
        .filter(template_versions::template_id.eq(template_id))
        .select(TemplateVersion::as_select())
        .order(template_versions::version.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before_version {
        query = query.filter(template_versions::version.lt(before));
    }
    query.load(conn).await
}

pub async fn update_template(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
    changes: &TemplateChanges,
) -> QueryResult<Template> {
    diesel::update(
        templates::table
            .filter(templates::tenant_id.eq(tenant_id))
            .filter(templates::id.eq(id))
            .filter(templates::deleted_at.is_null()),
    )
    .set(changes)
    .returning(Template::as_returning())
    .get_result(conn)
    .await
}

/// Soft-deletes; returns whether a row was deleted. The version history is kept.
pub async fn delete_template(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let n = diesel::update(
        templates::table
            .filter(templates::tenant_id.eq(tenant_id))
            .filter(templates::id.eq(id))
            .filter(templates::deleted_at.is_null()),
    )
    .set(templates::deleted_at.eq(Utc::now()))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
