//! Actors own timing and in-memory state; their handlers call plain async functions.

pub mod outbox;
pub mod token;

pub use outbox::OutboxActor;
pub use token::TokenActor;
