//! Authentication: signing keys and JWKS, access-token claims, password
//! hashing, refresh-token families and login throttling.

pub mod accounts;
pub mod claims;
pub mod keys;
pub mod passwords;
pub mod sessions;
pub mod throttle;

pub use claims::Claims;
pub use keys::SigningKeys;
