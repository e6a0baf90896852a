//! Parsed domain types: once a value is one of these, it is valid.

pub mod channel;
pub mod ids;
pub mod provider_kind;
pub mod roles;
pub mod time;

pub use channel::Channel;
pub use ids::{ProviderId, PublicId};
pub use provider_kind::ProviderKind;
pub use roles::{PlanTier, Role};
