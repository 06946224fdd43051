//! Bearer JWTs verified into a principal: [`JwtLayer`] (feature `jwt`).
//!
//! The layer reads `Authorization: Bearer <jwt>`, verifies it, and puts its claims in the
//! request extensions as a [`JwtClaims`](crate::claims::JwtClaims), the principal that
//! policies ([`GatekeeperPolicy`](crate::policy::GatekeeperPolicy), a
//! [`policy_fn`](crate::policy::policy_fn), a `TablePolicy` row filter's params) read.
//!
//! # What is checked
//! - **Keys, each pinned to one algorithm** ([`JwtKey`]): HS256 secrets (32 bytes at least),
//!   RS256 and ES256 public keys from PEM, and the keys of a JWKS ([`Jwks`]) loaded from a
//!   file or a URL (`https://` with the `tls` feature, verified; `http://` for loopback or a
//!   sidecar), reloaded on an interval and when a token names an unknown `kid`
//!   (rate-limited). A token is checked only with keys of the algorithm its header names,
//!   and only with the key of its `kid` when it names one: `alg: none` and any algorithm
//!   outside HS256/RS256/ES256 are refused by name before a key is looked at, and an HS256
//!   token "signed" with an RSA public key as the HMAC secret meets no HS256 key (algorithm
//!   confusion). JWKS keys are asymmetric only.
//! - **Claims**: `exp` required and checked, `nbf` checked when present, with a bounded clock
//!   skew ([`JwtConfig::leeway`], default 30 s, at most [`MAX_LEEWAY`]); `aud` and `iss`
//!   required and checked when configured.
//! - **Refusals** are 401s in the crate's JSON shape, `{"message": "Unauthorized - invalid
//!   token", "errors": {"authorization": ["token expired"]}}`, with `WWW-Authenticate: Bearer
//!   error="invalid_token", error_description="token expired"` and the [`JwtError`] in the
//!   response extensions. A missing token is a bare `Bearer` challenge (unless
//!   [`JwtConfig::optional`]; an `OPTIONS` preflight, which never carries credentials, goes
//!   on without claims); two `Authorization` headers are a 400. The reason class is all a
//!   refusal says: never the token, a claim, or which key was tried.
//! - **The token does not go further**: `Authorization` is removed once verified unless
//!   [`JwtConfig::keep_authorization`].
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use http::{header, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::claims::JwtClaims;
//! use tower_electric::jwt::{sign_hs256, JwtConfig, JwtKey, JwtLayer};
//! use tower_electric::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = SecretString::new("a shared secret of at least 32 bytes!");
//! let layer = JwtLayer::new(
//!     JwtConfig::new()
//!         .key(JwtKey::hs256(&secret)?)
//!         .issuer("https://app.example")
//!         .audience("electric-gateway"),
//! )?;
//! let service = layer.layer(service_fn(|request: Request<Full<Bytes>>| async move {
//!     let claims = request.extensions().get::<JwtClaims>().cloned();
//!     let user = claims.and_then(|c| c.subject().map(str::to_owned)).unwrap_or_default();
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(user))))
//! }));
//!
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let token = sign_hs256(&secret, &serde_json::json!({
//!     "sub": "u1", "iss": "https://app.example", "aud": "electric-gateway", "exp": now + 60,
//! }))?;
//! let request = Request::get("/v1/shape?table=items&offset=-1")
//!     .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
//!     .body(Full::default())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! assert_eq!(body, "u1");
//!
//! // Expired an hour ago: refused, saying why and nothing else.
//! let stale = sign_hs256(&secret, &serde_json::json!({
//!     "sub": "u1", "iss": "https://app.example", "aud": "electric-gateway", "exp": now - 3600,
//! }))?;
//! let request = Request::get("/v1/shape?table=items&offset=-1")
//!     .header(header::AUTHORIZATION, format!("Bearer {}", stale.expose()))
//!     .body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()[header::WWW_AUTHENTICATE],
//!     "Bearer error=\"invalid_token\", error_description=\"token expired\""
//! );
//! # Ok(())
//! # }
//! ```
//!
//! Keys from an identity provider's JWKS:
//! ```
//! use std::time::Duration;
//! use tower_electric::jwt::{Jwks, JwtConfig, JwtLayer};
//!
//! let layer = JwtLayer::new(
//!     JwtConfig::new()
//!         .jwks(Jwks::from_url("http://127.0.0.1:8080/.well-known/jwks.json")?
//!             .refresh_every(Duration::from_secs(300))
//!             .min_refresh_interval(Duration::from_secs(30)))
//!         .issuer("https://idp.example")
//!         .audience("electric-gateway")
//!         .leeway(Duration::from_secs(10)),
//! )?;
//! # let _ = layer;
//! # Ok::<(), tower_electric::jwt::KeyError>(())
//! ```

mod jwks;
mod key;
mod service;
mod verify;

use std::sync::Arc;

use tower_layer::Layer;

pub use jwks::{Jwks, DEFAULT_JWKS_FETCH_TIMEOUT, DEFAULT_JWKS_MIN_REFRESH, DEFAULT_JWKS_REFRESH};
pub use key::{JwtAlgorithm, JwtKey, KeyError, MIN_HMAC_SECRET_LEN};
pub use service::{Jwt, ResponseFuture};
pub use verify::{JwtConfig, JwtError, DEFAULT_LEEWAY, MAX_LEEWAY};

use crate::SecretString;
use verify::Verifier;

/// Layer that verifies bearer JWTs into [`JwtClaims`](crate::claims::JwtClaims); see the
/// [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct JwtLayer {
    verifier: Arc<Verifier>,
}

impl std::fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayer").finish_non_exhaustive()
    }
}

impl JwtLayer {
    /// A layer accepting the tokens `config` describes; refused without any key or JWKS.
    pub fn new(config: JwtConfig) -> Result<Self, KeyError> {
        Ok(Self {
            verifier: Arc::new(Verifier::new(config)?),
        })
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwt {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

/// Signs `claims` (a JSON object) as an HS256 JWT: what a gatekeeper endpoint hands out. The
/// token is a [`SecretString`]: whoever holds it has the access it grants.
pub fn sign_hs256(
    secret: &SecretString,
    claims: &serde_json::Value,
) -> Result<SecretString, KeyError> {
    if secret.expose().len() < MIN_HMAC_SECRET_LEN {
        return Err(KeyError::SecretTooShort);
    }
    if !claims.is_object() {
        return Err(KeyError::BadClaims);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &key,
    )
    .map(SecretString::new)
    .map_err(|_| KeyError::BadClaims)
}
