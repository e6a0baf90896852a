//! RS256 signing keys: the service's own key (from configuration, or generated and kept in a
//! file in development), the verification keys of the platform's auth service, and the JWKS.
//!
//! This service's tokens must carry its `kid`, `iss`, `aud`, `sub` (a user id) and `exp`. The
//! auth service's tokens verify against its JWKS (selected by `kid`) or its single PEM key
//! (whatever the `kid`, or none); `iss` and `aud` are required of them only when
//! `JWT_EXTERNAL_ISSUER` / `JWT_EXTERNAL_AUDIENCE` are set, and `sub` is any non-empty string.
//! Every token is RS256, and its `exp` (and `nbf`, when present) are checked.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Settings;

use super::Claims;
use super::verified::{Seen, Verified};

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Keys used to sign and verify access tokens.
pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    own: DecodingKey,
    jwks: Value,
    validation: Validation,
    external: ExternalKeys,
    /// Tokens already verified, so a client's next request skips the signature.
    verified: Verified,
}

/// The auth service's verification keys and what its tokens must carry.
struct ExternalKeys {
    by_kid: HashMap<String, DecodingKey>,
    /// The single PEM key, tried whatever the token's `kid`.
    pem: Option<DecodingKey>,
    validation: Validation,
}

impl ExternalKeys {
    fn none() -> Self {
        Self {
            by_kid: HashMap::new(),
            pem: None,
            validation: external_validation(None, None),
        }
    }
}

fn base_validation() -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation
}

/// What the auth service's tokens must carry: `exp` and `sub` always, `iss` and `aud` when
/// configured.
fn external_validation(issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = base_validation();
    let mut required = vec!["exp", "sub"];
    match issuer {
        Some(issuer) => {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        None => validation.iss = None,
    }
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A new 2048-bit RSA private key in PKCS#8 PEM.
pub fn generate_private_key_pem() -> anyhow::Result<String> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

fn parse_private_key(pem: &str) -> anyhow::Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| anyhow::anyhow!("the JWT private key is not an RSA PEM key: {e}"))
}

fn parse_public_key(pem: &str) -> anyhow::Result<RsaPublicKey> {
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| anyhow::anyhow!("the external public key is not an RSA PEM key: {e}"))
}

/// The RFC 7638 thumbprint of an RSA public key, used as its `kid`.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn components(key: &RsaPublicKey) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    )
}

/// Reads the configured key; in development generates one into `DEV_KEYS_DIR` on first start.
pub fn load_private_key_pem(settings: &Settings) -> anyhow::Result<String> {
    if let Some(pem) = &settings.jwt_private_key {
        return Ok(pem.expose_secret().replace("\\n", "\n"));
    }
    if let Some(path) = &settings.jwt_private_key_path {
        return std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read JWT_PRIVATE_KEY_PATH {}: {e}", path.display())
        });
    }
    if !settings.is_development() {
        anyhow::bail!("JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_PATH is required in production");
    }
    let path = settings.dev_keys_dir.join("jwt_private.pem");
    read_or_create(&path, generate_private_key_pem)
}

/// Reads a development secret file, creating it (mode 0600) when missing.
pub fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let value = make()?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &value)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    tracing::warn!(path = %path.display(), "generated a development secret; configure one in production");
    Ok(value)
}

impl SigningKeys {
    /// Loads the keys the settings name.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let pem = load_private_key_pem(settings)?;
        let mut keys = Self::from_private_pem(&pem, &settings.jwt_issuer, &settings.jwt_audience)?;
        keys.external.validation = external_validation(
            settings.jwt_external_issuer.as_deref(),
            settings.jwt_external_audience.as_deref(),
        );
        if let Some(path) = &settings.jwt_external_jwks_path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read JWT_EXTERNAL_JWKS_PATH {}: {e}", path.display())
            })?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a JWK set: {e}", path.display()))?;
            for jwk in &set.keys {
                let kid = jwk.common.key_id.clone().ok_or_else(|| {
                    anyhow::anyhow!("every key of {} needs a kid", path.display())
                })?;
                keys.external
                    .by_kid
                    .insert(kid, DecodingKey::from_jwk(jwk)?);
            }
        }
        if let Some(path) = &settings.jwt_external_public_key_path {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read JWT_EXTERNAL_PUBLIC_KEY_PATH {}: {e}",
                    path.display()
                )
            })?;
            let (n, e) = components(&parse_public_key(&text)?);
            keys.external.pem = Some(DecodingKey::from_rsa_components(&n, &e)?);
        }
        Ok(keys)
    }

    /// Keys from one private PEM.
    pub fn from_private_pem(pem: &str, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let private = parse_private_key(pem)?;
        let (n, e) = components(&private.to_public_key());
        let kid = thumbprint(&n, &e);
        let der = private.to_pkcs1_der()?;
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let own = DecodingKey::from_rsa_components(&n, &e)?;
        let jwks = json!({ "keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e
        }]});
        let mut validation = base_validation();
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Ok(Self {
            kid,
            encoding,
            own,
            jwks,
            validation,
            external: ExternalKeys::none(),
            verified: Verified::default(),
        })
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys, as a JWK set.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs claims into a compact RS256 JWT.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Verifies a bearer token: RS256 only; this service's key (by its `kid`) with every check
    /// of its own tokens, else the auth service's key with the checks its tokens get.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        match self.verified.get(token, now) {
            Seen::Valid(claims) => return Ok(*claims),
            Seen::Expired => return Err(TokenError::Expired),
            Seen::Unknown => {}
        }
        let (claims, leeway) = self.verify_signature(token)?;
        self.verified.insert(token, &claims, leeway, now);
        Ok(claims)
    }

    /// Verifies a token's signature and claims; returns them with the clock skew allowed.
    fn verify_signature(&self, token: &str) -> Result<(Claims, u64), TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("malformed header: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid("only RS256 tokens are accepted".into()));
        }
        let kid = header.kid.as_deref();
        if kid == Some(self.kid.as_str()) {
            let claims = decode(token, &self.own, &self.validation)?;
            if uuid::Uuid::parse_str(&claims.sub).is_err() {
                return Err(TokenError::Invalid("sub is not a user id".into()));
            }
            return Ok((claims, self.validation.leeway));
        }
        let key = kid
            .and_then(|kid| self.external.by_kid.get(kid))
            .or(self.external.pem.as_ref())
            .ok_or_else(|| match kid {
                Some(_) => TokenError::Invalid("unknown signing key".into()),
                None => TokenError::Invalid("the token header has no kid".into()),
            })?;
        let claims = decode(token, key, &self.external.validation)?;
        if claims.sub.trim().is_empty() {
            return Err(TokenError::Invalid("sub is empty".into()));
        }
        Ok((claims, self.external.validation.leeway))
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, TokenError> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })
}
