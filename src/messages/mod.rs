//! Messages: statuses and the acceptance path shared by the API and the event consumer.

pub mod accept;
pub mod status;

pub use status::MessageStatus;
