//! Actors own timing and in-memory state; their handlers call plain async functions.

pub mod token;

pub use token::TokenActor;
