//! Delivery: routing by priority, one attempt at a time (committed before the provider is
//! called), retries with capped backoff honouring `Retry-After`, failover with
//! `provider.failover`, a circuit breaker per provider, the ambiguous-outcome rule, cost
//! recording, and the SENT / FAILED transitions each with its event in the same transaction.

pub mod circuit;
pub mod deliver;
pub mod events;
pub mod handler;
pub mod registry;

pub use deliver::{Delivery, DeliveryPolicy, Step};
pub use handler::DeliveryHandler;
