//! Messages: the acceptance path shared by the API and the event consumer, and the lifecycle
//! events of a message.

pub mod accept;
pub mod chain;
pub mod events;
pub mod fallback;
mod render;
pub mod request;
pub mod valid;
