//! Authentication: signing keys and JWKS, access-token claims, the request extractors,
//! password hashing, refresh-token families and login throttling.

pub mod claims;
pub mod extractors;
pub mod keys;
pub mod passwords;
pub mod sessions;
pub mod throttle;

pub use claims::Claims;
pub use extractors::{AuthUser, InternalKey};
pub use keys::SigningKeys;
