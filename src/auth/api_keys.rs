//! Tenant API keys (`cpk_` and 43 characters of 32 random bytes): made here, shown once, and
//! from then on known only by their SHA-256. A key is accepted as a bearer token wherever a
//! tenant's access token is; it is checked against the database on every request, so a revoked
//! key is refused at once on every replica.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::api_keys::{self, ApiKey};
use crate::db::{DbError, DbPool};

/// What every key starts with.
pub const KEY_PREFIX: &str = "cpk_";
/// Characters of a key shown in lists (`cpk_` and the first eight of its secret part).
const SHOWN: usize = KEY_PREFIX.len() + 8;

/// A new key: the key itself (to show once), what lists show of it, and its hash.
pub struct Generated {
    pub key: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> Generated {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    Generated {
        prefix: key[..SHOWN].to_owned(),
        hash: hash(&key),
        key,
    }
}

pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Whether a bearer token is an API key rather than a JWT.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// Who a usable key speaks for.
#[derive(Clone, Debug)]
pub struct KeyIdentity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub roles: Vec<String>,
    /// The tenant's own tier when it has a row, else its creator's.
    pub plan_tier: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The identity of a usable key (not revoked, not expired); `None` for any other token.
/// Records the use (at most once a minute per key).
pub async fn authenticate(pool: &DbPool, token: &str) -> Result<Option<KeyIdentity>, DbError> {
    if !is_api_key(token) || token.len() > 128 {
        return Ok(None);
    }
    let mut conn = pool.get().await?;
    let Some((key, tenant_tier)) = api_keys::find_usable(&mut conn, &hash(token)).await? else {
        return Ok(None);
    };
    // A write only when the recorded use is older than a minute, not on every request.
    let stale = Utc::now() - chrono::Duration::minutes(1);
    if key.last_used_at.is_none_or(|at| at < stale)
        && let Err(e) = api_keys::touch(&mut conn, key.id).await
    {
        tracing::warn!(error = %e, "cannot record an API key's use");
    }
    Ok(Some(identity(key, tenant_tier)))
}

fn identity(key: ApiKey, tenant_tier: Option<String>) -> KeyIdentity {
    KeyIdentity {
        id: key.id,
        tenant_id: key.tenant_id,
        roles: key.role_names(),
        plan_tier: tenant_tier.unwrap_or_else(|| key.plan_tier.clone()),
        expires_at: key.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_random_prefixed_and_known_by_its_hash() {
        let a = generate();
        let b = generate();
        assert!(
            a.key.starts_with("cpk_") && a.key.len() == 4 + 43,
            "{}",
            a.key
        );
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(&a.prefix) && a.prefix.len() == 12);
        assert_eq!(a.hash, hash(&a.key));
        assert_eq!(a.hash.len(), 32);
        assert!(is_api_key(&a.key) && !is_api_key("eyJhbGciOi"));
    }
}
