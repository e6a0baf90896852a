//! Recording a change in the audit log, inside the change's transaction: the caller (a user, or
//! the API key it presented), the request id, and a diff of what the API shows of the resource
//! before and after (views never carry secrets; a provider's credentials appear as the names of
//! the keys that changed, never their values).

use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::db::audit::{self, AuditEntry};
use crate::domain::ids::ApiKeyId;
use crate::error::ApiError;
use crate::http::AuthUser;
use crate::http::envelope::Meta;

/// Fields that change on every write and say nothing about it.
const IGNORED: &[&str] = &["updated_at", "version_count"];

/// Who did it and in which request.
pub struct AuditActor {
    tenant_id: Uuid,
    actor_type: &'static str,
    actor_id: String,
    request_id: Option<Uuid>,
}

impl AuditActor {
    pub fn of(user: &AuthUser, meta: &Meta) -> Self {
        let (actor_type, actor_id) = match user.api_key {
            Some(key) => ("api_key", ApiKeyId::from_uuid(key).to_string()),
            None => ("user", user.subject.clone()),
        };
        Self {
            tenant_id: user.tenant_id,
            actor_type,
            actor_id,
            request_id: meta.request_id,
        }
    }

    /// Records a change.
    pub async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        change: Change<'_>,
    ) -> Result<(), ApiError> {
        audit::insert(conn, &self.entry(change)).await?;
        Ok(())
    }

    /// The row that records a change, for a transaction that is not the handler's own.
    pub fn entry(&self, change: Change<'_>) -> AuditEntry {
        let Change {
            action,
            resource_type,
            resource_id,
            before,
            after,
            extra,
        } = change;
        let mut changes = diff(before.as_ref(), after.as_ref());
        if let (Value::Object(changes), Some(Value::Object(extra))) = (&mut changes, extra) {
            changes.extend(extra);
        }
        AuditEntry {
            id: Uuid::now_v7(),
            tenant_id: self.tenant_id,
            actor_type: self.actor_type.to_owned(),
            actor_id: self.actor_id.clone(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id,
            request_id: self.request_id,
            changes,
            created_at: chrono::Utc::now(),
        }
    }
}

/// One change: `action` on a resource, the views `before` and `after` it (either absent for a
/// creation or a deletion), and `extra` fields merged into the diff.
pub struct Change<'a> {
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub extra: Option<Value>,
}

impl<'a> Change<'a> {
    pub fn new(action: &'a str, resource_type: &'a str, resource_id: impl ToString) -> Self {
        Self {
            action,
            resource_type,
            resource_id: resource_id.to_string(),
            before: None,
            after: None,
            extra: None,
        }
    }

    pub fn before<T: Serialize>(mut self, v: &T) -> Self {
        self.before = Some(view(v));
        self
    }

    pub fn after<T: Serialize>(mut self, v: &T) -> Self {
        self.after = Some(view(v));
        self
    }

    pub fn extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }
}

/// A view as JSON, for `record`.
pub fn view<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// `{ field: { "from": …, "to": … } }` for every top-level field that differs.
fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let fields = |v: Option<&Value>| match v {
        Some(Value::Object(map)) => map.clone(),
        _ => empty.clone(),
    };
    let (before, after) = (fields(before), fields(after));
    let mut out = Map::new();
    for key in before.keys().chain(after.keys()) {
        if IGNORED.contains(&key.as_str()) || out.contains_key(key) {
            continue;
        }
        let (from, to) = (before.get(key), after.get(key));
        if from != to {
            out.insert(
                key.clone(),
                json!({ "from": from.cloned().unwrap_or(Value::Null), "to": to.cloned().unwrap_or(Value::Null) }),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_holds_only_what_changed() {
        let before = json!({"id": "prv_1", "priority": 1, "name": "a", "updated_at": "t1"});
        let after =
            json!({"id": "prv_1", "priority": 5, "name": "a", "updated_at": "t2", "new": true});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            json!({"priority": {"from": 1, "to": 5}, "new": {"from": null, "to": true}})
        );
        assert_eq!(
            diff(None, Some(&json!({"name": "x"}))),
            json!({"name": {"from": null, "to": "x"}})
        );
    }
}
