//! Argon2id password hashing (OWASP's minimum: 19 MiB, 2 passes, 1 lane), always run on a
//! blocking thread so the async workers never stall on it.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (blocking).
pub fn hash_password_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// Verifies a password against a PHC string (blocking). A malformed hash never matches.
pub fn verify_password_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of nothing in particular, verified against when the account does not exist so that
/// an unknown e-mail costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password_blocking("decoy password for unknown accounts").unwrap_or_default()
    })
}

/// Argon2 runs at most this many at once (each takes 19 MiB and a core for a while); more
/// logins wait their turn instead of starving the process.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Hashes a password on a blocking thread.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let _turn = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await?
}

/// Verifies on a blocking thread; with no stored hash, verifies against the decoy and fails.
pub async fn verify_password(password: String, phc: Option<String>) -> bool {
    let Ok(_turn) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password_blocking(&password, &phc),
        None => {
            let _ = verify_password_blocking(&password, decoy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password_blocking("Password123!").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password_blocking("Password123!", &phc));
        assert!(!verify_password_blocking("password123!", &phc));
        assert!(!verify_password_blocking("Password123!", "not a hash"));
    }
}
