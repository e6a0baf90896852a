//! Parsed domain types: once a value is one of these, it is valid.

pub mod channel;
pub mod ids;
pub mod opt_out;
pub mod provider_kind;
pub mod recipient;
pub mod roles;
pub mod time;
pub mod webhook;

pub use channel::Channel;
pub use ids::{OptOutId, ProviderId, PublicId, TemplateId, WebhookId};
pub use provider_kind::ProviderKind;
pub use recipient::{EmailAddress, PhoneNumber, Recipient, RecipientError};
pub use roles::{PlanTier, Role};
