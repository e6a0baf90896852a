//! Actors own timing and in-memory state; their handlers call plain async functions.

pub mod outbox;
pub mod scheduler;
pub mod token;

pub use outbox::OutboxActor;
pub use scheduler::SchedulerActor;
pub use token::TokenActor;
