//! Encryption at rest for provider credentials: AES-256-GCM with a random 96-bit nonce per
//! value, bound to the row it belongs to through the associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;

/// The associated data that binds a sealed value to its row: the tenant id then the row id, so a
/// value copied to another row, or another tenant, does not open.
pub fn row_aad(tenant_id: uuid::Uuid, row_id: uuid::Uuid) -> Vec<u8> {
    [
        tenant_id.as_bytes().as_slice(),
        row_id.as_bytes().as_slice(),
    ]
    .concat()
}

/// The key that seals provider credentials.
#[derive(Clone)]
pub struct CredentialCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for CredentialCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCipher(..)")
    }
}

/// Sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("ciphertext is malformed or was sealed with another key or for another row")]
    Open,
    #[error("encryption failed")]
    Seal,
}

impl CredentialCipher {
    /// From the base64 of a 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { cipher })
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Seals `plaintext`; `aad` (e.g. the row id) must be given again to open it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what `seal` produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_with_the_same_key_and_row() {
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let sealed = cipher.seal(b"secret", b"row-1").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(cipher.open(&sealed, b"row-1").unwrap(), b"secret");
        assert!(cipher.open(&sealed, b"row-2").is_err());
        let other = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        assert!(other.open(&sealed, b"row-1").is_err());
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        assert!(CredentialCipher::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(CredentialCipher::from_base64("not base64!").is_err());
    }
}
