//! Authentication: signing keys and JWKS, access-token claims, tenant API keys, password
//! hashing, refresh-token families and login throttling.

pub mod accounts;
pub mod api_keys;
pub mod claims;
pub mod keys;
pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod verified;

pub use claims::Claims;
pub use keys::SigningKeys;
