//! Electric's API secret, held by the server and never leaked; and, if wanted, a token the
//! gateway itself requires from trusted callers.
//!
//! Electric authenticates with a `secret` query parameter (legacy `api_secret`). Its security
//! guide says the secret must never come from, or reach, the client: the authorizing proxy adds
//! it when it forwards. [`ApiTokenLayer`] has two modes:
//!
//! - **Inject** ([`InjectSecret`]): every client-supplied `secret`, `api_secret`,
//!   `source_secret` and `source_id` is removed from the query, then the server-held secret
//!   (and, for Electric Cloud, its `source_id`: [`InjectSecret::with_source_id`]) is added,
//!   once. The query is decoded with [`QueryPairs`](crate::protocol::QueryPairs), the way
//!   Electric decodes it, so `%73ecret`, `secret[]`, `secret[x]`, repeated copies and other
//!   case spellings (`SECRET`, unknown to Electric, removed all the same) are all caught; a
//!   query that does not decode (malformed escape, not UTF-8) is refused with a 400 instead of
//!   being forwarded half-cleaned, and any *other* key given twice is a 400 as everywhere in
//!   this crate. The request goes on with the cleaned query re-encoded and its path unchanged.
//!   This works whether or not a policy layer already rebuilt the query.
//! - **Require** ([`RequireToken`]): the caller must present one of the configured tokens
//!   (several at once, for rotation) in `Authorization: Bearer` (scheme in any case), in a
//!   custom header (say `electric-secret`), or, if enabled, in the `secret` query param.
//!   Tokens are compared as SHA-256 digests in constant time, every configured token every
//!   time. A missing or wrong token is a 401 with `WWW-Authenticate: Bearer` and the crate's
//!   JSON body; the token is removed (header and query) before the request goes on, so it never
//!   reaches Electric or the logs of anything behind this layer. `OPTIONS` preflights pass
//!   unauthenticated unless [`RequireToken::allow_preflight`] says otherwise.
//!
//! # One layer or two
//! One layer type does both, because both are the same job: credentials in, credentials out.
//! [`ApiTokenLayer::inject`] and [`ApiTokenLayer::require`] build one mode;
//! [`ApiTokenLayer::and_require`] / [`ApiTokenLayer::and_inject`] add the other to the same
//! layer, which then authenticates first, decodes the query once, and removes the caller's
//! token and every client credential before adding the server's secret. Two layers compose
//! just as well: they are independent.
//!
//! In a gateway:
//! - on `/v1/shape`, inject mode with `ELECTRIC_SECRET`, innermost (after the
//!   `ShapeParamPolicyLayer` and any `BodyTransformLayer`, right before the upstream), so that
//!   no other layer, log line or transform setup sees a URI holding the secret;
//! - on an internal route for trusted callers (server-side sync jobs, an edge proxy) with
//!   `GATEWAY_REQUIRE_TOKEN`, require mode *outermost*, so nothing else runs for an
//!   unauthenticated caller, and inject mode innermost as on the public route; where no other
//!   layer sits in between, one combined layer does both.
//!
//! # Electric Cloud
//! Electric Cloud (`https://api.electric-sql.cloud/v1/shape`) authenticates a shape request
//! with two query params: `source_id`, the source (database) it reads, and `secret`, that
//! source's secret. Inject both: `InjectSecret::new(source_secret)?.with_source_id(source_id)`.
//! The source id is not a secret but it is the server's choice, like the shape itself: a
//! client's `source_id` is removed in inject mode whether or not one is configured.
//!
//! # Decisions
//! - A repeated `Authorization` header, a repeated custom header, two `secret` params, or a
//!   token in more than one place is a **400** with `WWW-Authenticate: Bearer
//!   error="invalid_request"` (RFC 6750 §3.1), never "first one wins".
//! - An `Authorization` header with another scheme (`Basic`), an empty token, or a wrong one is
//!   a **401** with `error="invalid_token"`; no credential at all is a 401 with a bare
//!   challenge. Messages say which, never what was sent or expected.
//! - With [`RequireToken::bearer`] on (the default) `Authorization` belongs to this layer and
//!   is always removed. Turn it off if the app's own users authenticate with it.
//! - Anything that logs request URIs belongs *outside* this layer: inside it, the URI holds the
//!   server's secret.
//!
//! # Secrets
//! Secrets are [`SecretString`](crate::SecretString)s: `Debug` and `Display` redact them, and
//! neither this module's types, its errors, its `tracing` events, its refusals nor its response
//! headers ever hold one. [`secret_from_env`], [`secret_from_file`] and the `from_env`
//! constructors load them with errors that name the variable or file, never the value.
//!
//! # Inject mode
//! ```
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::token::{ApiTokenLayer, InjectSecret};
//! use tower_electric::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a real gateway: InjectSecret::from_env("ELECTRIC_SECRET")?
//! let layer = ApiTokenLayer::inject(InjectSecret::new(SecretString::new("server secret"))?);
//!
//! // Stands in for the upstream: answers with the query it was given.
//! let electric = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let query = request.uri().query().unwrap_or_default().to_owned();
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(query))))
//! });
//!
//! let request = Request::get("/v1/shape?table=items&offset=-1&%73ecret=guess&api_secret=x")
//!     .body(Full::default())?;
//! let response = layer.layer(electric).oneshot(request).await?;
//! let body = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! assert_eq!(body, "table=items&offset=-1&secret=server%20secret");
//! # Ok(())
//! # }
//! ```
//!
//! # Require mode, combined with inject
//! ```
//! use http::{header, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::token::{ApiTokenLayer, InjectSecret, RequireToken};
//! use tower_electric::SecretString;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a real gateway: RequireToken::from_env("GATEWAY_REQUIRE_TOKEN")? ("new,old").
//! let require = RequireToken::new(["new-token", "old-token"])?
//!     .header(header::HeaderName::from_static("electric-secret"))
//!     .realm("electric")?;
//! let layer = ApiTokenLayer::require(require)
//!     .and_inject(InjectSecret::new(SecretString::new("server-secret"))?);
//!
//! let electric = service_fn(|request: Request<Full<Bytes>>| async move {
//!     // The caller's token never gets here; Electric's secret does.
//!     assert!(request.headers().get(header::AUTHORIZATION).is_none());
//!     assert_eq!(request.uri().query(), Some("table=items&offset=-1&secret=server-secret"));
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//! });
//! let service = layer.layer(electric);
//!
//! let request = Request::get("/v1/shape?table=items&offset=-1")
//!     .header(header::AUTHORIZATION, "Bearer old-token")
//!     .body(Full::default())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! let request = Request::get("/v1/shape?table=items&offset=-1").body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer realm=\"electric\"");
//! # Ok(())
//! # }
//! ```

mod config;
mod load;
mod service;

use std::sync::Arc;

use tower_layer::Layer;

pub use crate::future::ResponseFuture;
pub use config::{InjectSecret, RequireToken};
pub use load::{secret_from_env, secret_from_file, secrets_from_env, TokenError};
pub use service::ApiToken;

use crate::protocol::query::DEFAULT_MAX_QUERY_LEN;
use service::Settings;

/// Layer that injects Electric's secret and/or requires a caller token; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ApiTokenLayer {
    settings: Arc<Settings>,
}

impl ApiTokenLayer {
    /// Inject mode: client credentials removed, the server-held secret added.
    pub fn inject(secret: InjectSecret) -> Self {
        Self::with(Settings {
            inject: Some(secret),
            require: None,
            max_query_len: DEFAULT_MAX_QUERY_LEN,
        })
    }

    /// Require mode: a caller without one of the tokens is refused.
    pub fn require(tokens: RequireToken) -> Self {
        Self::with(Settings {
            inject: None,
            require: Some(tokens),
            max_query_len: DEFAULT_MAX_QUERY_LEN,
        })
    }

    /// Adds (or replaces) inject mode on this layer.
    #[must_use]
    pub fn and_inject(mut self, secret: InjectSecret) -> Self {
        Arc::make_mut(&mut self.settings).inject = Some(secret);
        self
    }

    /// Adds (or replaces) require mode on this layer; the caller is checked first.
    #[must_use]
    pub fn and_require(mut self, tokens: RequireToken) -> Self {
        Arc::make_mut(&mut self.settings).require = Some(tokens);
        self
    }

    /// The longest raw query accepted, in bytes (default [`DEFAULT_MAX_QUERY_LEN`]); longer is
    /// a 414. Only read when this layer rewrites the query.
    #[must_use]
    pub fn max_query_len(mut self, max_len: usize) -> Self {
        Arc::make_mut(&mut self.settings).max_query_len = max_len;
        self
    }

    fn with(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
        }
    }
}

impl<S> Layer<S> for ApiTokenLayer {
    type Service = ApiToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiToken::new(inner, Arc::clone(&self.settings))
    }
}
