//! What a token must be to be accepted: [`JwtConfig`], and why one was not: [`JwtError`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::WWW_AUTHENTICATE;
use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::jwks::{Jwks, JwksKeys};
use super::key::{JwtAlgorithm, JwtKey, KeyError};
use crate::claims::JwtClaims;
use crate::rejection::Rejection;

/// The clock skew allowed by default on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The most clock skew that can be configured: past this a "short-lived" token is not.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// The longest token read, in bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused: the reason class a 401 names. Never holds the token or a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// No bearer token was sent.
    #[error("missing token")]
    Missing,
    /// Not a well-formed `Bearer` JWT (wrong scheme, not three base64url parts, bad JSON).
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm no configured key is pinned to (`none` included).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No configured key has the token's `kid` (after a JWKS reload, when allowed).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is past (beyond the allowed clock skew).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not name this gateway's audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` is not a trusted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// A required claim (`exp`, and `aud`/`iss` when configured) is missing or malformed.
    #[error("missing or malformed claim")]
    BadClaim,
}

impl JwtError {
    /// The refusal: 401 in the crate's JSON shape, naming the reason class, with
    /// `WWW-Authenticate: Bearer` (and `error="invalid_token"` when a token was sent). The
    /// reason is also in the response extensions.
    pub fn rejection(self) -> Rejection {
        let (message, challenge) = match self {
            Self::Missing => ("Unauthorized - missing token", "Bearer".to_owned()),
            _ => (
                "Unauthorized - invalid token",
                format!("Bearer error=\"invalid_token\", error_description=\"{self}\""),
            ),
        };
        let mut rejection = Rejection::unauthorized().with_message(message);
        if self != Self::Missing {
            rejection = rejection.with_field_error("authorization", self.to_string());
        }
        match HeaderValue::from_str(&challenge) {
            Ok(value) => rejection.with_header(WWW_AUTHENTICATE, value),
            Err(_) => rejection.with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
        }
    }

    fn from_kind(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Self::AlgorithmNotAllowed,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => Self::BadClaim,
            _ => Self::Malformed,
        }
    }
}

/// What a token must be to be accepted by a [`JwtLayer`](super::JwtLayer): the keys it may be
/// signed with, its issuer and audience, the clock skew allowed.
///
/// `exp` is always required; `nbf` is checked when present; `aud` and `iss` are required and
/// checked when configured, and a token carrying an `aud` is refused when no audience is
/// configured (RFC 7519 §4.1.3: a recipient not named in `aud` must refuse it).
#[derive(Clone)]
#[must_use]
pub struct JwtConfig {
    pub(crate) keys: Vec<JwtKey>,
    pub(crate) jwks: Option<Jwks>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) optional: bool,
    pub(crate) keep_authorization: bool,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("keys", &self.keys)
            .field("jwks", &self.jwks)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl JwtConfig {
    /// No keys yet, no issuer or audience, [`DEFAULT_LEEWAY`], a token required.
    pub fn new() -> Self {
        Self {
            keys: Vec::new(),
            jwks: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            optional: false,
            keep_authorization: false,
        }
    }

    /// One more key a token may be signed with.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// A JWKS whose keys tokens may be signed with, kept fresh (one per config).
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// A trusted issuer (`iss`); with one or more, `iss` is required and must be one of them.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// An audience this gateway answers to (`aud`); with one or more, `aud` is required and
    /// must name one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The clock skew allowed on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]), at most
    /// [`MAX_LEEWAY`]: a larger value is cut to it.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY);
        self
    }

    /// Whether a request without an `Authorization` header goes on without claims (default:
    /// no, it is a 401). A token that is sent is always checked.
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Whether the `Authorization` header goes on to the inner service (default: no, it is
    /// removed once verified, so nothing further in can log or forward the token).
    pub fn keep_authorization(mut self, keep: bool) -> Self {
        self.keep_authorization = keep;
        self
    }
}

/// The header fields this layer reads before choosing a key.
struct Header {
    algorithm: JwtAlgorithm,
    kid: Option<String>,
}

/// Reads `alg` and `kid` from the token's header, refusing an algorithm outside
/// [`JwtAlgorithm`] (`none` first of all) by name, before any key is looked at.
fn read_header(token: &str) -> Result<Header, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    let alg = value
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Malformed)?;
    let algorithm = JwtAlgorithm::from_header(alg).ok_or(JwtError::AlgorithmNotAllowed)?;
    // RFC 7515 §4.1.11: extensions named critical must be understood; this layer knows none.
    if value.get("crit").is_some() {
        return Err(JwtError::Malformed);
    }
    let kid = match value.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtError::Malformed),
    };
    Ok(Header { algorithm, kid })
}

/// A [`JwtConfig`] in use.
pub(crate) struct Verifier {
    keys: Vec<JwtKey>,
    jwks: Option<JwksKeys>,
    validation: Arc<[(JwtAlgorithm, Validation)]>,
    pub(crate) optional: bool,
    pub(crate) keep_authorization: bool,
}

impl Verifier {
    pub(crate) fn new(config: JwtConfig) -> Result<Self, KeyError> {
        if config.keys.is_empty() && config.jwks.is_none() {
            return Err(KeyError::NoKeys);
        }
        let validation = [
            JwtAlgorithm::HS256,
            JwtAlgorithm::RS256,
            JwtAlgorithm::ES256,
        ]
        .into_iter()
        .map(|algorithm| (algorithm, validation(&config, algorithm)))
        .collect();
        Ok(Self {
            keys: config.keys,
            jwks: config.jwks.map(JwksKeys::new).transpose()?,
            validation,
            optional: config.optional,
            keep_authorization: config.keep_authorization,
        })
    }

    /// Verifies one token: header, key, signature, claims.
    pub(crate) async fn verify(&self, token: &str) -> Result<JwtClaims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let header = read_header(token)?;
        let jwks_keys = match &self.jwks {
            None => None,
            Some(jwks) => {
                jwks.refresh_if_stale().await;
                let mut keys = jwks.current();
                let known = keys.iter().any(|key| matches(key, &header, false));
                let named = header.kid.is_some();
                if !known && named && !self.keys.iter().any(|key| matches(key, &header, true)) {
                    // Perhaps a key the issuer rotated in since the last load.
                    if jwks.refresh_for_unknown_kid().await {
                        keys = jwks.current();
                    }
                }
                Some(keys)
            }
        };
        // Keys given directly first (an id-less one matches any `kid`), then the JWKS's.
        let candidates: Vec<&JwtKey> = self
            .keys
            .iter()
            .filter(|key| matches(key, &header, true))
            .chain(
                jwks_keys
                    .iter()
                    .flat_map(|keys| keys.iter())
                    .filter(|key| matches(key, &header, false)),
            )
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        let Some((_, validation)) = self
            .validation
            .iter()
            .find(|(algorithm, _)| *algorithm == header.algorithm)
        else {
            return Err(JwtError::AlgorithmNotAllowed);
        };
        let mut refusal = JwtError::AlgorithmNotAllowed;
        for key in candidates
            .into_iter()
            .filter(|key| key.algorithm == header.algorithm)
        {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return Ok(JwtClaims::from_map(data.claims)),
                Err(error) => {
                    refusal = JwtError::from_kind(error.kind());
                    // Another key of the same algorithm may hold the right signature; any
                    // other refusal is about the token itself.
                    if refusal != JwtError::BadSignature {
                        return Err(refusal);
                    }
                }
            }
        }
        Err(refusal)
    }
}

/// Whether `key` may check a token with `header`, by `kid`: a key with the token's `kid`, a
/// key without an id when the token names none, and (for keys given directly,
/// `unnamed_match_any`) a key without an id whatever the token names. A token without a `kid`
/// may be checked with any key. The algorithm is checked after, so that a key of another
/// algorithm is a refusal by name.
fn matches(key: &JwtKey, header: &Header, unnamed_match_any: bool) -> bool {
    match (&key.kid, &header.kid) {
        (Some(kid), Some(wanted)) => kid == wanted,
        (None, named) => unnamed_match_any || named.is_none(),
        (Some(_), None) => true,
    }
}

fn validation(config: &JwtConfig, algorithm: JwtAlgorithm) -> Validation {
    let mut validation = Validation::new(algorithm.to_jsonwebtoken());
    validation.leeway = config.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if !config.audiences.is_empty() {
        validation.set_audience(&config.audiences);
        required.push("aud");
    }
    if !config.issuers.is_empty() {
        validation.set_issuer(&config.issuers);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}
