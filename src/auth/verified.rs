//! Access tokens this process has already verified. Checking an RS256 signature is the
//! costliest step of an authenticated request, and a client sends the same token until it
//! expires; the same bytes under the same keys verify the same way, so a token seen before is
//! answered from memory (keyed by its SHA-256) with only its expiry checked again. The keys
//! are fixed for the life of the process. Entries go when their token expires, and the whole
//! cache starts afresh when it is full.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::Claims;

/// Most tokens remembered.
const CAPACITY: usize = 4096;

/// The verified tokens of this process.
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    claims: Claims,
    /// Seconds of clock skew allowed past `exp`, as when it was verified.
    leeway: u64,
}

/// What a remembered token says now.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Valid(Box<Claims>),
    Expired,
    Unknown,
}

impl Verified {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of `token` if it was verified before and has not expired at `now` (Unix
    /// seconds).
    pub fn get(&self, token: &str, now: i64) -> Seen {
        let key = Self::key(token);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get(&key) else {
            return Seen::Unknown;
        };
        if entry.claims.exp.saturating_add(entry.leeway as i64) < now {
            entries.remove(&key);
            return Seen::Expired;
        }
        Seen::Valid(Box::new(entry.claims.clone()))
    }

    /// Remembers a token that verified at `now`. A token not yet valid (`nbf` ahead of the
    /// clock by more than the leeway) is not remembered: its `nbf` would need checking again.
    pub fn insert(&self, token: &str, claims: &Claims, leeway: u64, now: i64) {
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| e.claims.exp.saturating_add(e.leeway as i64) >= now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            Self::key(token),
            Entry {
                claims: claims.clone(),
                leeway,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, nbf: Option<i64>) -> Claims {
        Claims {
            sub: "u".into(),
            tenant_id: uuid::Uuid::nil(),
            email: String::new(),
            roles: vec!["admin".into()],
            plan_tier: "free".into(),
            iat: 0,
            exp,
            nbf,
            iss: None,
            aud: None,
            jti: None,
        }
    }

    #[test]
    fn a_remembered_token_is_valid_until_its_expiry_and_leeway() {
        let verified = Verified::default();
        let c = claims(1_000, None);
        verified.insert("t", &c, 30, 900);
        assert_eq!(verified.get("t", 1_030), Seen::Valid(Box::new(c)));
        assert_eq!(verified.get("other", 1_000), Seen::Unknown);
        assert_eq!(verified.get("t", 1_031), Seen::Expired);
        assert_eq!(
            verified.get("t", 1_000),
            Seen::Unknown,
            "an expired entry is gone"
        );
    }

    #[test]
    fn a_token_not_yet_valid_is_not_remembered() {
        let verified = Verified::default();
        verified.insert("t", &claims(1_000, Some(950)), 30, 940);
        assert_eq!(verified.get("t", 960), Seen::Unknown);
    }

    #[test]
    fn a_full_cache_keeps_what_has_not_expired_or_starts_afresh() {
        let verified = Verified::default();
        for i in 0..CAPACITY {
            verified.insert(&format!("old-{i}"), &claims(100, None), 0, 50);
        }
        verified.insert("live", &claims(10_000, None), 0, 200);
        assert!(matches!(verified.get("live", 200), Seen::Valid(_)));
        assert_eq!(verified.entries.lock().unwrap().len(), 1);
        for i in 0..CAPACITY {
            verified.insert(&format!("new-{i}"), &claims(10_000, None), 0, 200);
        }
        assert!(verified.entries.lock().unwrap().len() <= CAPACITY);
    }
}
