//! Verification keys, each pinned to one algorithm.

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::SecretString;

/// The shortest HMAC secret accepted, in bytes: RFC 7518 §3.2 asks for a key at least as long
/// as the hash (256 bits for HS256).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The signature algorithms a key can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 (a shared secret).
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl JwtAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
        }
    }

    pub(crate) fn from_header(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(Self::HS256),
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be used. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret shorter than [`MIN_HMAC_SECRET_LEN`].
    #[error("an HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes")]
    SecretTooShort,
    /// A PEM that is not a public key of the expected type.
    #[error("not a PEM-encoded {0} public key")]
    BadPem(JwtAlgorithm),
    /// A JWKS document that is not `{"keys": [...]}`.
    #[error("not a JWKS document (a JSON object with a `keys` array)")]
    BadJwks,
    /// The JWKS file could not be read (the path is named, the content never).
    #[error("JWKS file {path}: {reason}")]
    File {
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A JWKS URL that this layer cannot fetch.
    #[error("JWKS URL: {0}")]
    BadUrl(&'static str),
    /// The TLS settings of an `https://` JWKS URL were refused (feature `tls`): a CA PEM that
    /// cannot be read or used, or no roots to verify the issuer with.
    #[cfg(feature = "tls")]
    #[error("JWKS URL TLS settings: {0}")]
    JwksTls(crate::upstream::TlsError),
    /// Claims to sign that are not a JSON object.
    #[error("claims must be a JSON object")]
    BadClaims,
    /// No key at all was configured.
    #[error("no verification key configured")]
    NoKeys,
}

/// One verification key, pinned to one algorithm, with an optional key id (`kid`).
///
/// A token is only checked with a key of the very algorithm its header names: an HS256 token
/// is never verified with an RSA key's bytes as the HMAC secret (algorithm confusion), and
/// `alg: none` matches no key. Key material is never shown by `Debug`.
#[derive(Clone)]
#[must_use]
pub struct JwtKey {
    pub(crate) algorithm: JwtAlgorithm,
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// An HS256 shared secret (at least [`MIN_HMAC_SECRET_LEN`] bytes).
    pub fn hs256(secret: &SecretString) -> Result<Self, KeyError> {
        if secret.expose().len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::SecretTooShort);
        }
        Ok(Self::with(
            JwtAlgorithm::HS256,
            DecodingKey::from_secret(secret.expose().as_bytes()),
        ))
    }

    /// An RS256 public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key =
            DecodingKey::from_rsa_pem(pem).map_err(|_| KeyError::BadPem(JwtAlgorithm::RS256))?;
        Ok(Self::with(JwtAlgorithm::RS256, key))
    }

    /// An ES256 (P-256) public key, PEM (`BEGIN PUBLIC KEY`).
    pub fn es256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key =
            DecodingKey::from_ec_pem(pem).map_err(|_| KeyError::BadPem(JwtAlgorithm::ES256))?;
        Ok(Self::with(JwtAlgorithm::ES256, key))
    }

    /// This key's id: a token naming a `kid` is only checked with the key of that id.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key is pinned to.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The key id, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn with(algorithm: JwtAlgorithm, key: DecodingKey) -> Self {
        Self {
            algorithm,
            kid: None,
            key,
        }
    }
}

/// The keys of a JWKS document that this layer can use: asymmetric signature keys only
/// (`RSA` as RS256, `EC` on P-256 as ES256), each pinned to the algorithm its `alg` names or,
/// without one, the one its type allows. Symmetric (`oct`) keys, encryption keys and keys for
/// other algorithms are skipped: a published key set has no business holding a shared secret.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<Vec<JwtKey>, KeyError> {
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|_| KeyError::BadJwks)?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or(KeyError::BadJwks)?;
    let mut usable = Vec::new();
    for entry in keys {
        // One key the crate cannot read does not make the others unusable.
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if let Some(key) = from_jwk(&jwk) {
            usable.push(key);
        }
    }
    Ok(usable)
}

fn from_jwk(jwk: &Jwk) -> Option<JwtKey> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => JwtAlgorithm::RS256,
        (AlgorithmParameters::EllipticCurve(params), None | Some(KeyAlgorithm::ES256))
            if params.curve == EllipticCurve::P256 =>
        {
            JwtAlgorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwtKey {
        algorithm,
        kid: jwk.common.key_id.clone(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks-rsa.json");

    fn rsa_entry() -> serde_json::Value {
        let jwks: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        jwks["keys"][0].clone()
    }

    #[test]
    fn jwks_keys_are_pinned_by_type_and_alg() {
        let keys = parse_jwks(JWKS.as_bytes()).unwrap();
        let pinned: Vec<_> = keys
            .iter()
            .map(|key| (key.key_id(), key.algorithm()))
            .collect();
        assert_eq!(
            pinned,
            [
                (Some("rsa-1"), JwtAlgorithm::RS256),
                (Some("ec-1"), JwtAlgorithm::ES256)
            ]
        );
    }

    #[test]
    fn symmetric_encryption_and_foreign_keys_are_skipped_not_fatal() {
        let mut enc = rsa_entry();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut rs512 = rsa_entry();
        rs512["alg"] = "RS512".into();
        rs512["kid"] = "rs512".into();
        let mut hs = rsa_entry();
        hs["alg"] = "HS256".into();
        hs["kid"] = "hs".into();
        let document = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {"kty": "unknown", "kid": "odd"},
            enc, rs512, hs, rsa_entry(),
        ]});
        let keys = parse_jwks(document.to_string().as_bytes()).unwrap();
        let ids: Vec<_> = keys.iter().map(JwtKey::key_id).collect();
        assert_eq!(ids, [Some("rsa-1")]);
        assert_eq!(parse_jwks(b"[]").unwrap_err(), KeyError::BadJwks);
        assert_eq!(parse_jwks(b"{\"keys\": 1}").unwrap_err(), KeyError::BadJwks);
    }

    #[test]
    fn pem_keys_of_the_wrong_type_are_refused() {
        let ec = include_bytes!("../../tests/fixtures/jwt/ec-public.pem");
        let rsa = include_bytes!("../../tests/fixtures/jwt/rsa-public.pem");
        assert!(JwtKey::rs256_pem(ec).is_err());
        assert!(JwtKey::es256_pem(rsa).is_err());
        assert!(JwtKey::rs256_pem(b"not a pem").is_err());
    }
}
