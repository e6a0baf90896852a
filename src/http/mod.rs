//! The HTTP edge shared by every route: the response envelope and the error rendering, the
//! extractors (`AuthUser`, `InternalKey`), `Idempotency-Key` handling and the keyed-write
//! frame, pagination cursors, the request root span and the request metrics middleware.

pub mod audit;
pub mod client_address;
pub mod envelope;
pub mod extract;
pub mod idempotency;
pub mod pagination;
pub mod request_metrics;
pub mod span;

pub use extract::{AuthUser, InternalKey};
