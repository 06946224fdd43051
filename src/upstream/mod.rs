//! [`ElectricUpstream`]: the terminal service that forwards to Electric.
//!
//! The innermost service of a gateway stack. It sends every request to one fixed URL, the
//! configured base URL plus Electric's shape path (`/v1/shape` by default), never to a path the
//! client chose (`/v1/shape/`, `/v1/%73hape` and `/admin` all reach `/v1/shape`), with the
//! request URI's query exactly as the layers in front of it built it. It streams both bodies: a
//! shape log or an SSE stream reaches the client frame by frame as Electric writes it.
//!
//! Over `http://` it speaks HTTP/1.1 with a client of its own: one request at a time per
//! connection, idle connections pooled (up to 512, for 30 s), a held long-poll costing its
//! socket and its request's future and no more. A connection carries another request only
//! after a response whose end was read exactly, with nothing after it; response framing that
//! is unclear (`Transfer-Encoding` beside `Content-Length`, lengths that differ or are not
//! plain numbers, a malformed head) is a 502, never a guess. With [`Builder::http2_only`] it
//! speaks h2c instead, and over `https://` HTTP/1.1 or h2, both through hyper-util's pooled
//! client.
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
mod builder;
mod future;
mod headers;
mod http1;
// Crate-visible for the rustls client configuration it builds, which `jwt::Jwks` fetches an
// `https://` JWKS with (`TlsSettings`, `http1_connector`); the layer's own machinery stays here.
#[cfg(feature = "tls")]
pub(crate) mod tls;

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
#[cfg(not(feature = "tls"))]
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower_service::Service;

pub use self::body::{BodyError, BoxError, ResponseBody};
pub use self::builder::{BuildError, Builder};
pub use self::future::ResponseFuture;
use self::future::{Observed, Sent};
use self::headers::{upstream_request_headers, Forwarding};
#[cfg(feature = "tls")]
pub use self::tls::{PemInput, TlsError, TlsRoots};
use crate::observe::LiveMode;
use crate::protocol::query::path_with_query;
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
    transport: Transport,
    scheme: Scheme,
    authority: Authority,
    path: PathAndQuery,
    host: HeaderValue,
    version: Version,
    forwarding: Forwarding,
    idle_timeout: Duration,
}

/// The client a request goes out with.
// One per upstream, inside its `Arc`: the size of the larger variant costs nothing per request.
#[allow(clippy::large_enum_variant)]
enum Transport {
    /// hyper-util's pooled client: h2c, and `https://` (HTTP/1.1 or h2, as ALPN chooses).
    Pooled(Client<Connector, UpstreamBody>),
    /// The own HTTP/1.1 client for `http://` (see `http1`): a held long-poll costs its socket.
    Http1(Arc<http1::Http1Client>),
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
        Builder::new(base_url.into())
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
            Some(query) => PathAndQuery::try_from(path_with_query(self.path.as_str(), query))?,
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
        let live = LiveMode::of_query(request.uri().query().unwrap_or_default());
        match inner.upstream_request(request) {
            Ok(upstream) => {
                let sent = match &inner.transport {
                    Transport::Pooled(client) => {
                        Sent::pooled(client, upstream, inner.scheme == Scheme::HTTPS)
                    }
                    Transport::Http1(client) => {
                        Sent::http1(Box::pin(client.clone().send(upstream)))
                    }
                };
                // Up from here: the request is held at Electric until its body ends or drops.
                let observed = Observed::sent(live);
                ResponseFuture::waiting(sent, inner.idle_timeout, observed)
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "upstream request could not be built");
                ResponseFuture::rejected(Rejection::bad_gateway())
            }
        }
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
