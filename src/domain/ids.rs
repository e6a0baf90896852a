//! Prefixed, time-ordered resource ids (`prv_` + UUIDv7 in simple form).

use std::fmt;
use std::marker::PhantomData;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// The prefix of one kind of resource id.
pub trait IdPrefix {
    const PREFIX: &'static str;
    const RESOURCE: &'static str;
}

/// A resource id: a UUID shown with its resource's prefix.
pub struct PublicId<P: IdPrefix> {
    uuid: Uuid,
    _prefix: PhantomData<P>,
}

impl<P: IdPrefix> PublicId<P> {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self {
            uuid,
            _prefix: PhantomData,
        }
    }

    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Parses `prv_<32 hex>`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(P::PREFIX)?;
        if rest.len() != 32 {
            return None;
        }
        Uuid::try_parse(rest).ok().map(Self::from_uuid)
    }

    /// Parses a path segment, or answers 404 naming the resource.
    pub fn from_path(s: &str) -> Result<Self, crate::error::ApiError> {
        Self::parse(s).ok_or_else(|| crate::error::ApiError::not_found(P::RESOURCE))
    }
}

impl<P: IdPrefix> Clone for PublicId<P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: IdPrefix> Copy for PublicId<P> {}
impl<P: IdPrefix> PartialEq for PublicId<P> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}
impl<P: IdPrefix> Eq for PublicId<P> {}

impl<P: IdPrefix> fmt::Display for PublicId<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", P::PREFIX, self.uuid.simple())
    }
}

impl<P: IdPrefix> fmt::Debug for PublicId<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<P: IdPrefix> Serialize for PublicId<P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

macro_rules! id_kind {
    ($marker:ident, $alias:ident, $prefix:literal, $resource:literal) => {
        #[doc = concat!("Marker for `", $prefix, "` ids.")]
        pub struct $marker;
        impl IdPrefix for $marker {
            const PREFIX: &'static str = $prefix;
            const RESOURCE: &'static str = $resource;
        }
        #[doc = concat!("Id of a ", $resource, ".")]
        pub type $alias = PublicId<$marker>;
    };
}

id_kind!(ProviderPrefix, ProviderId, "prv_", "provider");
id_kind!(MessagePrefix, MessageId, "msg_", "message");
id_kind!(TemplatePrefix, TemplateId, "tpl_", "template");
id_kind!(OptOutPrefix, OptOutId, "opt_", "opt-out");
id_kind!(WebhookPrefix, WebhookId, "whk_", "webhook");
id_kind!(AttemptPrefix, AttemptId, "att_", "attempt");
id_kind!(ApiKeyPrefix, ApiKeyId, "apk_", "API key");
id_kind!(AuditPrefix, AuditId, "aud_", "audit entry");
id_kind!(
    WebhookDeliveryPrefix,
    WebhookDeliveryId,
    "whd_",
    "webhook delivery"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_its_rendering() {
        let id = ProviderId::generate();
        let shown = id.to_string();
        assert!(shown.starts_with("prv_"));
        assert_eq!(ProviderId::parse(&shown), Some(id));
    }

    #[test]
    fn an_id_with_another_prefix_or_shape_does_not_parse() {
        let id = ProviderId::generate();
        let other = format!("msg_{}", id.uuid().simple());
        assert_eq!(ProviderId::parse(&other), None);
        assert_eq!(ProviderId::parse("prv_123"), None);
        assert_eq!(ProviderId::parse(&format!("prv_{}", id.uuid())), None);
    }
}
