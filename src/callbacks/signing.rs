//! Small helpers the signature checks share. Every comparison of a signature is made in
//! constant time on the decoded bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Checks `HMAC-SHA256(key, data)` against `expected` (raw bytes).
pub fn hmac_sha256_matches(key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.verify_slice(expected).is_ok()
        }
        Err(_) => false,
    }
}

/// `HMAC-SHA256(key, data)`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Checks `HMAC-SHA1(key, data)` against `expected` (raw bytes).
pub fn hmac_sha1_matches(key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    aws_lc_rs::hmac::verify(&key, data, expected).is_ok()
}

/// `HMAC-SHA1(key, data)`.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

/// Standard base64, tolerating surrounding whitespace.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Lower-case hex SHA-256, used to name a request by its bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses a JSON body, naming the problem for the caller.
pub fn json_body(body: &[u8]) -> Result<serde_json::Value, super::CallbackError> {
    serde_json::from_slice(body)
        .map_err(|e| super::CallbackError::Invalid(format!("the body is not JSON: {e}")))
}

/// A unix timestamp (seconds, as a number or a string) as a time.
pub fn unix_time(value: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let secs = match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    chrono::DateTime::from_timestamp(secs, 0)
}
