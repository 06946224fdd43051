//! [`ElectricUpstream`]: the terminal service that forwards to Electric.
//!
//! The innermost service of a gateway stack. It sends every request to one fixed URL, the
//! configured base URL plus Electric's shape path (`/v1/shape` by default), never to a path the
//! client chose (`/v1/shape/`, `/v1/%73hape` and `/admin` all reach `/v1/shape`), with the
//! request URI's query exactly as the layers in front of it built it. It uses a pooled HTTP/1.1
//! client (or h2c with [`Builder::http2_only`]) and streams both bodies: a shape log or an SSE
//! stream reaches the client frame by frame as Electric writes it.
//!
//! With the `tls` feature (on by default) the base URL may be `https://`: rustls with the ring
//! provider, TLS 1.2 and 1.3, SNI, and ALPN offering `h2` and `http/1.1` so that Electric (or
//! the load balancer in front of it) chooses per connection ([`Builder::http1_only`] and
//! [`Builder::http2_only`] narrow the offer). The certificate is always verified, against the
//! URL's host and the roots of `Builder::tls_roots` (Mozilla's by default, or the system's),
//! plus any CA given with `Builder::ca_pem` or `Builder::ca_pem_file`; there is no switch to
//! turn verification off. `Builder::client_identity_pem` adds a client certificate (mTLS).
//!
//! What crosses, and what does not:
//! - hop-by-hop headers (`Connection` and every header it names, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Authenticate`,
//!   `Proxy-Authorization`) are dropped both ways;
//! - the client's `Authorization` and `Cookie` stay behind unless forwarding them is asked
//!   for; `Host` names the upstream unless [`Builder::forward_host`];
//! - every end-to-end header (all `electric-*`, `etag`, `cache-control`, `retry-after`,
//!   `content-type`, ...) and every status (304, 400, 409, 503, ...) passes through untouched.
//!
//! Upstream trouble is a response, never an error (`Error = Infallible`): unreachable or a
//! broken connection is a 502 (`{"message":"Bad gateway"}`), a failed TLS handshake,
//! certificate check or TLS alert a 502 that says so
//! (`{"message":"Bad gateway: TLS with the upstream failed"}`), and no response head within
//! the idle timeout a 504: `Rejection` JSON bodies that name nothing internal (no address,
//! host or certificate). The cause is logged with `tracing` at warn level (without the query,
//! which may carry `secret=`). The idle timeout (90 s by default,
//! longer than Electric's 20 s long-polls and 60 s SSE streams) also bounds the wait between
//! two body frames. Dropping the response future or the response body cancels the upstream
//! request.
//!
//! This service needs a Tokio runtime with timers enabled; called outside one it answers 502.
//!
//! # Example
//!
//! The upstream as the inner service of a tower stack: the layers in front of it decide the
//! query it forwards.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Empty;
//! use tower::ServiceBuilder;
//! use tower_electric::ElectricUpstream;
//!
//! # fn main() -> Result<(), tower_electric::upstream::BuildError> {
//! // Defaults: `/v1/shape`, 5 s to connect, 90 s idle, HTTP/1.1, no client credentials.
//! let _default = ElectricUpstream::new("http://localhost:3000")?;
//!
//! let upstream = ElectricUpstream::builder("http://electric.internal:3000")
//!     .connect_timeout(Duration::from_secs(2))
//!     .idle_timeout(Duration::from_secs(120))
//!     .http2_only(true) // Electric behind an h2c listener
//!     .build()?;
//!
//! // Stand-in for the policy layers: they rebuild the query; the upstream forwards it as is.
//! let gateway = ServiceBuilder::new()
//!     .map_request(|mut request: Request<Empty<Bytes>>| {
//!         *request.uri_mut() = http::Uri::from_static("/v1/shape?offset=-1&table=items");
//!         request
//!     })
//!     .service(upstream);
//! # let _ = gateway;
//!
//! // Over TLS (feature `tls`): Mozilla's roots, or a private CA for a self-hosted Electric.
//! let _cloud = ElectricUpstream::new("https://electric.example")?;
//!
//! // Credentials, a query or another scheme in the base URL are refused when building.
//! assert!(ElectricUpstream::new("http://user:pass@electric:3000").is_err());
//! assert!(ElectricUpstream::new("ftp://electric.example").is_err());
//! # Ok(())
//! # }
//! ```
//!
//! Sending a request (this part needs an Electric to talk to):
//!
//! ```no_run
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::{BodyExt, Empty};
//! use tower::ServiceExt;
//! use tower_electric::ElectricUpstream;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let upstream = ElectricUpstream::new("http://localhost:3000")?;
//! let request = Request::get("/v1/shape?offset=-1&table=items").body(Empty::<Bytes>::new())?;
//! let response = upstream.oneshot(request).await?;
//! println!("{} {:?}", response.status(), response.headers().get("electric-handle"));
//! let log = response.into_body().collect().await?.to_bytes();
//! println!("{}", String::from_utf8_lossy(&log));
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod headers;
#[cfg(feature = "tls")]
mod tls;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

pub use self::body::{BodyError, BoxError, ResponseBody};
pub use self::future::ResponseFuture;
use self::headers::{upstream_request_headers, Forwarding};
#[cfg(feature = "tls")]
pub use self::tls::{PemInput, TlsError, TlsRoots};
use crate::protocol::headers::SHAPE_PATH;
use crate::rejection::Rejection;

/// How long connecting to Electric may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long Electric may stay silent by default, before the response head and between body
/// frames: longer than its 20 s long-poll and 60 s SSE windows.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

#[cfg(feature = "tls")]
type Connector = tls::Connector;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The methods Electric serves, as its CORS answers list them.
const ELECTRIC_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::HEAD,
    Method::DELETE,
    Method::OPTIONS,
];

/// The terminal service that forwards requests to Electric.
///
/// See the [module docs](self) for what it forwards and how it fails. Cloning is cheap: the
/// clones share one connection pool.
#[derive(Clone)]
pub struct ElectricUpstream {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<Connector, UpstreamBody>,
    scheme: Scheme,
    authority: Authority,
    path: PathAndQuery,
    host: HeaderValue,
    version: Version,
    forwarding: Forwarding,
    idle_timeout: Duration,
}

impl fmt::Debug for ElectricUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("ElectricUpstream")
            .field("scheme", &inner.scheme)
            .field("authority", &inner.authority)
            .field("path", &inner.path)
            .field("version", &inner.version)
            .field("idle_timeout", &inner.idle_timeout)
            .field("forwarding", &inner.forwarding)
            .finish_non_exhaustive()
    }
}

impl ElectricUpstream {
    /// An upstream at `base_url` (for example `http://localhost:3000`) with the defaults.
    pub fn new(base_url: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder(base_url).build()
    }

    /// A builder for an upstream at `base_url`; the URL is checked by [`Builder::build`].
    pub fn builder(base_url: impl Into<String>) -> Builder {
        Builder {
            base_url: base_url.into(),
            path: SHAPE_PATH.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            versions: Versions::Auto,
            forwarding: Forwarding::default(),
            #[cfg(feature = "tls")]
            tls: tls::TlsSettings::default(),
        }
    }
}

impl Inner {
    /// The request Electric gets: fixed URL plus the client request's query, checked method,
    /// filtered headers, the body streamed as it is.
    fn upstream_request<B>(&self, request: Request<B>) -> Result<Request<UpstreamBody>, http::Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path_and_query = match parts.uri.query() {
            None => self.path.clone(),
            Some(query) => PathAndQuery::try_from(format!("{}?{query}", self.path))?,
        };
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()?;
        let mut upstream = Request::new(body.map_err(Into::into).boxed_unsync());
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        // The client's own version says nothing about the upstream connection.
        *upstream.version_mut() = self.version;
        *upstream.headers_mut() =
            upstream_request_headers(parts.headers, &parts.uri, self.forwarding, &self.host);
        Ok(upstream)
    }
}

impl<B> Service<Request<B>> for ElectricUpstream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // CONNECT would turn the pooled client into a tunnel to whatever the request names.
        if request.method() == Method::CONNECT {
            return ResponseFuture::rejected(Rejection::method_not_allowed(&ELECTRIC_METHODS));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::warn!("ElectricUpstream called outside a Tokio runtime");
            return ResponseFuture::rejected(Rejection::bad_gateway());
        }
        let inner = &self.inner;
        match inner.upstream_request(request) {
            Ok(upstream) => {
                let tls = inner.scheme == Scheme::HTTPS;
                ResponseFuture::waiting(inner.client.request(upstream), inner.idle_timeout, tls)
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "upstream request could not be built");
                ResponseFuture::rejected(Rejection::bad_gateway())
            }
        }
    }
}

/// Configures an [`ElectricUpstream`]; made by [`ElectricUpstream::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    base_url: String,
    path: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    versions: Versions,
    forwarding: Forwarding,
    #[cfg(feature = "tls")]
    tls: tls::TlsSettings,
}

/// Which HTTP versions the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Versions {
    /// `http://`: HTTP/1.1. `https://`: h2 or HTTP/1.1, as ALPN chooses per connection.
    Auto,
    /// HTTP/1.1 only, also over TLS.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge over plain TCP, h2 by ALPN over TLS.
    Http2,
}

impl Builder {
    /// The path every request goes to, after the base URL's own path. Default `/v1/shape`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// How long connecting to Electric may take (with the `tls` feature, the TLS handshake
    /// included). Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long Electric may stay silent: before the response head (then 504), and between
    /// two body frames (then the body ends with [`BodyError::IdleTimeout`]). Default 90 s;
    /// keep it above Electric's 20 s long-poll and 60 s SSE windows.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Speak HTTP/2 only. Default `false`. Over `http://` that is h2c with prior knowledge
    /// (Electric must be listening for h2c); over `https://` (feature `tls`), ALPN offers `h2`
    /// alone, so a server that only speaks HTTP/1.1 fails the handshake (a 502).
    ///
    /// One connection then carries every request, so a held long-poll costs a stream instead
    /// of a socket and a pooled connection (in `benches/longpoll.sh`, 14 KiB of gateway memory
    /// per held poll instead of 24 KiB). But the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
    /// caps how many requests are in flight at once (many servers default to 100–200) and the
    /// rest wait in the gateway, so a gateway holding more long-polls than that cap must use
    /// HTTP/1.1, or an upstream configured for more streams. Setting this replaces
    /// [`http1_only`](Self::http1_only).
    pub fn http2_only(mut self, enabled: bool) -> Self {
        self.versions = match (enabled, self.versions) {
            (true, _) => Versions::Http2,
            (false, Versions::Http2) => Versions::Auto,
            (false, versions) => versions,
        };
        self
    }

    /// Speak HTTP/1.1 only, also over `https://`, where ALPN then offers `http/1.1` alone.
    /// Default `false`: over TLS, a server that offers h2 gets h2.
    ///
    /// Over h2 every request shares one connection, and the server's stream cap limits how
    /// many long-polls are held at once (see [`http2_only`](Self::http2_only)); over HTTP/1.1
    /// each held long-poll has a pooled connection of its own and no such cap. A gateway that
    /// holds more long-polls than Electric's (or its load balancer's) h2 stream cap wants this.
    /// Over `http://` this changes nothing: plain HTTP is HTTP/1.1 unless `http2_only`.
    /// Setting this replaces [`http2_only`](Self::http2_only).
    ///
    /// ```
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), tower_electric::upstream::BuildError> {
    /// let upstream = ElectricUpstream::builder("https://electric.example")
    ///     .http1_only(true)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    pub fn http1_only(mut self, enabled: bool) -> Self {
        self.versions = match (enabled, self.versions) {
            (true, _) => Versions::Http1,
            (false, Versions::Http1) => Versions::Auto,
            (false, versions) => versions,
        };
        self
    }

    /// Forward the client's `Authorization` header. Default `false`: it is the gateway's
    /// credential, not Electric's.
    pub fn forward_authorization(mut self, enabled: bool) -> Self {
        self.forwarding.authorization = enabled;
        self
    }

    /// Forward the client's `Cookie` header. Default `false`.
    pub fn forward_cookie(mut self, enabled: bool) -> Self {
        self.forwarding.cookie = enabled;
        self
    }

    /// Forward the host the client addressed as `Host`. Default `false`: `Host` names the
    /// upstream.
    pub fn forward_host(mut self, enabled: bool) -> Self {
        self.forwarding.host = enabled;
        self
    }

    /// The roots an `https://` upstream verifies Electric's certificate with. Default
    /// [`TlsRoots::WebPki`]. CAs given with [`ca_pem`](Self::ca_pem) or
    /// [`ca_pem_file`](Self::ca_pem_file) are trusted as well.
    ///
    /// ```
    /// use tower_electric::upstream::TlsRoots;
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), tower_electric::upstream::BuildError> {
    /// let upstream = ElectricUpstream::builder("https://electric.internal")
    ///     .tls_roots(TlsRoots::System)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls.roots = Some(roots);
        self
    }

    /// Also trust the CA certificates in `pem` (one or more `CERTIFICATE` sections; other
    /// sections are skipped): a self-hosted Electric with a certificate from a private CA.
    /// Checked when building: PEM without a certificate is [`TlsError::NoCertificate`].
    ///
    /// ```
    /// use tower_electric::upstream::TlsRoots;
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ca_pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/example-ca.pem"))?;
    /// // `ca_pem`: the PEM text of the CA that issued Electric's certificate.
    /// let upstream = ElectricUpstream::builder("https://electric.internal:3000")
    ///     .tls_roots(TlsRoots::CustomOnly) // trust this CA and no other
    ///     .ca_pem(ca_pem)
    ///     .build()?;
    /// # let _ = upstream;
    /// // Not a certificate: refused when building, not on the first request.
    /// assert!(ElectricUpstream::builder("https://electric.internal")
    ///     .ca_pem("not a certificate")
    ///     .build()
    ///     .is_err());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.cas.push(tls::Pem::bytes(pem));
        self
    }

    /// Also trust the CA certificates in the PEM file at `path`, read by
    /// [`build`](Self::build). As [`ca_pem`](Self::ca_pem); a file that cannot be read is
    /// [`TlsError::ReadFile`], naming the path.
    ///
    /// ```
    /// use tower_electric::upstream::{BuildError, TlsError};
    /// use tower_electric::ElectricUpstream;
    ///
    /// let built = ElectricUpstream::builder("https://electric.internal")
    ///     .ca_pem_file("/etc/electric/no-such-ca.pem")
    ///     .build();
    /// assert!(matches!(built, Err(BuildError::Tls(TlsError::ReadFile { .. }))));
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_pem_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.tls.cas.push(tls::Pem::file(path));
        self
    }

    /// Present this client certificate when Electric (or the TLS proxy in front of it) asks
    /// for one (mTLS). `cert_pem` holds the certificate chain, leaf first; `key_pem` its
    /// private key (PKCS#8, PKCS#1 or SEC1). The key's bytes never appear in `Debug` or in
    /// errors. Checked when building: a key that does not match the certificate is
    /// [`TlsError::InvalidClientIdentity`].
    ///
    /// ```no_run
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cert = std::fs::read("/etc/gateway/client.pem")?;
    /// let key = std::fs::read("/etc/gateway/client.key")?;
    /// let upstream = ElectricUpstream::builder("https://electric.internal")
    ///     .client_identity_pem(cert, key)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_identity_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.identity = Some((tls::Pem::bytes(cert_pem), tls::Pem::bytes(key_pem)));
        self
    }

    /// As [`client_identity_pem`](Self::client_identity_pem), from two PEM files read by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use tower_electric::upstream::{BuildError, PemInput, TlsError};
    /// use tower_electric::ElectricUpstream;
    ///
    /// let built = ElectricUpstream::builder("https://electric.internal")
    ///     .client_identity_pem_files("/etc/gateway/no-such.pem", "/etc/gateway/no-such.key")
    ///     .build();
    /// assert!(matches!(
    ///     built,
    ///     Err(BuildError::Tls(TlsError::ReadFile { input: PemInput::ClientCertificate, .. }))
    /// ));
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_identity_pem_files(
        mut self,
        cert_path: impl AsRef<std::path::Path>,
        key_path: impl AsRef<std::path::Path>,
    ) -> Self {
        self.tls.identity = Some((tls::Pem::file(cert_path), tls::Pem::file(key_path)));
        self
    }

    /// The connector for the URL's scheme: TLS with these settings for `https://`.
    #[cfg(feature = "tls")]
    fn connector(&self, mut http: HttpConnector, scheme: &Scheme) -> Result<Connector, BuildError> {
        if *scheme != Scheme::HTTPS {
            if self.tls.is_set() {
                return Err(BuildError::TlsSettingsWithoutHttps);
            }
            return Ok(tls::connector(http, self.connect_timeout, None)?);
        }
        // The TLS connector hands the TCP connector `https://` URIs.
        http.enforce_http(false);
        let alpn = match self.versions {
            Versions::Auto => tls::Alpn::Both,
            Versions::Http1 => tls::Alpn::Http1,
            Versions::Http2 => tls::Alpn::H2,
        };
        let config = self.tls.client_config()?;
        Ok(tls::connector(
            http,
            self.connect_timeout,
            Some((config, alpn)),
        )?)
    }

    #[cfg(not(feature = "tls"))]
    fn connector(&self, http: HttpConnector, _scheme: &Scheme) -> Result<Connector, BuildError> {
        Ok(http)
    }

    /// Checks the base URL, path and TLS settings, reads the PEM files given, and builds the
    /// upstream. Needs no runtime.
    pub fn build(self) -> Result<ElectricUpstream, BuildError> {
        let target = Target::parse(&self.base_url, &self.path)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        // SSE frames are small: do not hold them back waiting for more.
        http.set_nodelay(true);
        let connector = self.connector(http, &target.scheme)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(self.versions == Versions::Http2)
            .build(connector);
        Ok(ElectricUpstream {
            inner: Arc::new(Inner {
                client,
                scheme: target.scheme,
                host: target.host,
                authority: target.authority,
                path: target.path,
                // Over TLS with ALPN, an HTTP/1.1 request goes out as h2 on an h2 connection.
                version: if self.versions == Versions::Http2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                },
                forwarding: self.forwarding,
                idle_timeout: self.idle_timeout,
            }),
        })
    }
}

/// Why a base URL, path or TLS setting was refused. Messages never repeat the URL: it may hold
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute URL with a host.
    #[error("the upstream base URL is not an absolute URL with a host")]
    InvalidBaseUrl,
    /// The base URL's scheme is not `http` (or `https`, with the `tls` feature).
    #[cfg_attr(
        feature = "tls",
        error("the upstream base URL must be http:// or https://")
    )]
    #[cfg_attr(
        not(feature = "tls"),
        error("the upstream base URL must be http:// (https:// needs the `tls` feature)")
    )]
    UnsupportedScheme,
    /// TLS settings (roots, a CA, a client certificate) were given for an `http://` URL: they
    /// would silently do nothing, and whoever set them expects TLS.
    #[cfg(feature = "tls")]
    #[error("TLS settings were given for an http:// upstream; use an https:// URL")]
    TlsSettingsWithoutHttps,
    /// The TLS settings could not be used.
    #[cfg(feature = "tls")]
    #[error("upstream TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// The base URL carries credentials, a query or a fragment.
    #[error("the upstream base URL must not carry credentials, a query or a fragment")]
    BaseUrlExtras,
    /// The path is not an absolute URL path without a query.
    #[error("the upstream path must start with '/' and have no query or fragment")]
    InvalidPath,
}

/// The checked parts of the upstream URL.
struct Target {
    scheme: Scheme,
    authority: Authority,
    path: PathAndQuery,
    host: HeaderValue,
}

impl Target {
    fn parse(base_url: &str, path: &str) -> Result<Self, BuildError> {
        let base = Uri::try_from(base_url).map_err(|_| BuildError::InvalidBaseUrl)?;
        let authority = base.authority().ok_or(BuildError::InvalidBaseUrl)?.clone();
        let scheme = match base.scheme() {
            None => return Err(BuildError::InvalidBaseUrl),
            Some(scheme) if *scheme == Scheme::HTTP => Scheme::HTTP,
            #[cfg(feature = "tls")]
            Some(scheme) if *scheme == Scheme::HTTPS => Scheme::HTTPS,
            Some(_) => return Err(BuildError::UnsupportedScheme),
        };
        if authority.as_str().contains('@') || base.query().is_some() || base_url.contains('#') {
            return Err(BuildError::BaseUrlExtras);
        }
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(BuildError::InvalidPath);
        }
        let joined = format!("{}{path}", base.path().trim_end_matches('/'));
        let path = PathAndQuery::try_from(joined).map_err(|_| BuildError::InvalidPath)?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| BuildError::InvalidBaseUrl)?;
        Ok(Self {
            scheme,
            authority,
            path,
            host,
        })
    }
}

/// An error and its sources on one line, for logs.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tower::ServiceExt;

    fn target(base: &str, path: &str) -> Result<(String, String, String), BuildError> {
        Target::parse(base, path).map(|target| {
            (
                target.authority.to_string(),
                target.path.to_string(),
                target.host.to_str().unwrap().to_owned(),
            )
        })
    }

    #[test]
    fn base_url_and_path_join_into_one_fixed_target() {
        let expect = |authority: &str, path: &str, host: &str| {
            Ok((authority.to_owned(), path.to_owned(), host.to_owned()))
        };
        assert_eq!(
            target("http://electric:3000", SHAPE_PATH),
            expect("electric:3000", "/v1/shape", "electric:3000")
        );
        assert_eq!(
            target("http://electric:3000/", SHAPE_PATH),
            expect("electric:3000", "/v1/shape", "electric:3000")
        );
        assert_eq!(
            target("http://10.0.0.5/sync/", "/v1/shape"),
            expect("10.0.0.5", "/sync/v1/shape", "10.0.0.5")
        );
        assert_eq!(
            target("http://[::1]:3000", "/custom"),
            expect("[::1]:3000", "/custom", "[::1]:3000")
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_base_urls_keep_their_scheme() {
        let target = Target::parse("https://electric.example/", SHAPE_PATH).unwrap();
        assert_eq!(target.scheme, Scheme::HTTPS);
        assert_eq!(target.authority, "electric.example");
        assert_eq!(target.host, "electric.example");
        let target = Target::parse("http://electric:3000", SHAPE_PATH).unwrap();
        assert_eq!(target.scheme, Scheme::HTTP);
    }

    #[test]
    fn versions_follow_the_last_call() {
        let versions = |builder: Builder| builder.versions;
        let builder = || ElectricUpstream::builder("http://electric");
        assert_eq!(versions(builder()), Versions::Auto);
        assert_eq!(versions(builder().http2_only(true)), Versions::Http2);
        assert_eq!(versions(builder().http1_only(true)), Versions::Http1);
        assert_eq!(
            versions(builder().http1_only(true).http2_only(true)),
            Versions::Http2
        );
        assert_eq!(
            versions(builder().http2_only(true).http1_only(true)),
            Versions::Http1
        );
        // Turning one off leaves the other as it was.
        assert_eq!(
            versions(builder().http1_only(true).http2_only(false)),
            Versions::Http1
        );
        assert_eq!(
            versions(builder().http2_only(true).http2_only(false)),
            Versions::Auto
        );
    }

    #[test]
    fn bad_base_urls_and_paths_are_refused() {
        assert_eq!(
            target("electric:3000", SHAPE_PATH),
            Err(BuildError::InvalidBaseUrl)
        );
        assert_eq!(target("/v1", SHAPE_PATH), Err(BuildError::InvalidBaseUrl));
        assert_eq!(
            target("not a url", SHAPE_PATH),
            Err(BuildError::InvalidBaseUrl)
        );
        #[cfg(not(feature = "tls"))]
        assert_eq!(
            target("https://electric", SHAPE_PATH),
            Err(BuildError::UnsupportedScheme)
        );
        assert_eq!(
            target("ftp://electric", SHAPE_PATH),
            Err(BuildError::UnsupportedScheme)
        );
        for extras in [
            "http://user:pw@electric:3000",
            "http://electric:3000/?secret=x",
            "http://electric:3000/#frag",
        ] {
            assert_eq!(
                target(extras, SHAPE_PATH),
                Err(BuildError::BaseUrlExtras),
                "{extras}"
            );
        }
        for path in [
            "v1/shape",
            "",
            "/v1/shape?table=x",
            "/v1/shape#x",
            "/v1 shape",
        ] {
            assert_eq!(
                target("http://electric", path),
                Err(BuildError::InvalidPath),
                "{path}"
            );
        }
    }

    #[test]
    fn build_error_messages_do_not_repeat_the_url() {
        let error = ElectricUpstream::new("http://user:hunter2@electric").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn outside_a_runtime_the_answer_is_a_502_not_a_panic() {
        let upstream = ElectricUpstream::new("http://127.0.0.1:9").unwrap();
        let response =
            futures_executor_block_on(upstream.oneshot(Request::new(Empty::<Bytes>::new())))
                .unwrap();
        assert_eq!(response.status(), 502);
    }

    #[tokio::test]
    async fn connect_is_refused_with_electrics_allowed_methods() {
        let upstream = ElectricUpstream::new("http://127.0.0.1:9").unwrap();
        let request = Request::connect("electric:3000")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = upstream.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 405);
        let allow: Vec<_> = response.headers().get_all("allow").iter().collect();
        assert_eq!(allow, [crate::protocol::headers::ALLOW_METHODS_VALUE]);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"message":"Method not allowed"}"#);
    }

    /// Polls a future to completion on this thread, with no runtime around it.
    fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
        }
    }
}
