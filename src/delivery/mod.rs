//! Delivery: routing by priority, one attempt at a time (committed before the provider is
//! called), retries with capped backoff honouring `Retry-After`, failover with
//! `provider.failover`, a circuit breaker per provider, pacing by `config.max_per_second`, the ambiguous-outcome rule, cost
//! recording, and the SENT / FAILED transitions each with its event in the same transaction.
//!
//! `policy` and `routing` decide (plain functions), `store` holds the SQL, `batch` is the one
//! state machine (`durable` keeps its accepted outcomes), `deliver` the service and its provider call.

pub mod batch;
pub mod circuit;
pub mod deliver;
pub mod durable;
pub mod estimate;
pub mod handler;
pub mod outbound;
pub mod pacing;
pub mod policy;
pub mod routing;
pub mod store;

pub use deliver::Delivery;
pub use handler::DeliveryHandler;
pub use policy::{DeliveryError, DeliveryPolicy, Step};
