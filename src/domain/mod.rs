//! Parsed domain types: once a value is one of these, it is valid.

pub mod channel;
pub mod ids;
pub mod media;
pub mod opt_out;
pub mod priority;
pub mod provider_kind;
pub mod recipient;
pub mod roles;
pub mod sms;
pub mod status;
pub mod time;
pub mod webhook;

pub use channel::Channel;
pub use ids::{OptOutId, ProviderId, PublicId, TemplateId, WebhookId};
pub use priority::Priority;
pub use provider_kind::ProviderKind;
pub use recipient::{EmailAddress, PhoneNumber, Recipient, RecipientError};
pub use roles::{PlanTier, Role};
pub use status::MessageStatus;

/// Stores a type that has `as_str` and `FromStr` in a `TEXT` column.
macro_rules! text_column {
    ($ty:ty) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                std::str::from_utf8(value.as_bytes())?
                    .parse()
                    .map_err(|e: String| e.into())
            }
        }
    };
}

text_column!(Channel);
text_column!(MessageStatus);
text_column!(Priority);
