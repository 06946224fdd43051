//! Network allow-listing that cannot be spoofed.
//!
//! Electric's security guide restricts who can reach Electric with a reverse proxy's network
//! rule (Caddy's `@denied not remote_ip ...; abort @denied`). [`IpAllowLayer`] is that rule as
//! a tower layer, right for deployments behind load balancers and CDNs: it decides the
//! client's address, checks it against allow and deny sets of networks ([`IpLists`]; deny
//! wins; an empty allow set allows nothing), and either passes the request on with a
//! [`ClientIp`] in its extensions, for later layers and logs, or refuses it with a
//! [`Rejection`](crate::rejection::Rejection): 403, or 400 for a malformed forwarding header.
//! Every decision is a `tracing` debug event.
//!
//! # Where the client's address comes from
//! - **The connection's peer**, by default: a [`PeerAddr`] the server puts in each request's
//!   extensions (see the hyper example below) or, with the `axum` feature, axum's
//!   `ConnectInfo<SocketAddr>`. A request with neither is refused: nobody knows who asks.
//! - **A forwarding header** ([`ClientIpSource`]: `Forwarded`, `X-Forwarded-For`, or one
//!   header such as `CF-Connecting-IP`), **only when the peer is a trusted proxy**
//!   ([`IpLists::trust_proxies`]). From any other peer such headers are ignored, so a client
//!   cannot claim to be `127.0.0.1`. The chain is walked from the right, trusted proxies are
//!   skipped, and the first other address is the client's; a hop that must be read and is
//!   not an address, a hidden hop, too many hops ([`IpAllowLayer::max_hops`]) or a trusted
//!   proxy that sent no header is a refusal, never a guess.
//!
//! Addresses are canonicalised before they are matched: `::ffff:10.1.2.3` is `10.1.2.3`,
//! zone ids and ports are dropped. Header bytes of any kind (not UTF-8, obs-text, huge) are
//! refused where they must be read and never panic the layer.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_electric::ip::{ClientIp, IpAllowLayer, IpLists, PeerAddr};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ServiceBuilder::new()
//!     .layer(IpAllowLayer::new(IpLists::new().allow("127.0.0.0/8, ::1")?))
//!     .service(service_fn(|request: Request<Full<Bytes>>| async move {
//!         let ClientIp(client) = request.extensions().get::<ClientIp>().copied().unwrap();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(client.to_string()))))
//!     }));
//!
//! let mut request = Request::new(Full::default());
//! request.extensions_mut().insert(PeerAddr("[::ffff:127.0.0.1]:50000".parse()?));
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let mut request = Request::new(Full::default());
//! request.extensions_mut().insert(PeerAddr("203.0.113.9:50000".parse()?));
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # Behind a load balancer
//!
//! Trust the load balancers' networks and read `X-Forwarded-For`; a client that connects
//! directly cannot choose its address with the header:
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::ip::{ClientIpSource, IpAllowLayer, IpLists, PeerAddr};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lists = IpLists::new()
//!     .allow("198.51.100.0/24, 2001:db8::/32")?
//!     .deny("198.51.100.66")?
//!     .trust_proxies("10.0.0.0/8")?;
//! let layer = IpAllowLayer::new(lists)
//!     .client_ip_source(ClientIpSource::XForwardedFor)
//!     .max_hops(8);
//! let service = layer.layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
//! }));
//!
//! let request = |peer: &str, forwarded_for: &str| {
//!     let mut request = Request::new(());
//!     request.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
//!     request.headers_mut().insert("x-forwarded-for", forwarded_for.parse().unwrap());
//!     request
//! };
//! // Through the load balancer: the right-most address that is not a proxy is the client.
//! let response = service.clone().oneshot(request("10.0.0.2:1", "198.51.100.7, 10.0.0.9")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! // Direct, with a forged header: the peer is the client, and it is not allowed.
//! let response = service.clone().oneshot(request("203.0.113.9:1", "198.51.100.7")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! // Denied inside an allowed network.
//! let response = service.oneshot(request("10.0.0.2:1", "198.51.100.66")).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! # With a hyper server
//!
//! The server knows each connection's peer; it puts a [`PeerAddr`] in every request that
//! connection carries:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//! use hyper::server::conn::http1;
//! use hyper_util::rt::TokioIo;
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_electric::ip::{IpAllowLayer, IpLists, PeerAddr};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let layer = IpAllowLayer::new(IpLists::new().allow("127.0.0.0/8, ::1")?);
//!     let app = layer.layer(service_fn(|_: Request<Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
//!     }));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     loop {
//!         let (stream, peer) = listener.accept().await?;
//!         let app = app.clone();
//!         let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
//!             request.extensions_mut().insert(PeerAddr(peer));
//!             app.clone().oneshot(request)
//!         });
//!         tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
//!     }
//! }
//! ```
//!
//! # With axum
//!
//! With the `axum` feature, axum's `ConnectInfo<SocketAddr>` is the peer address: serve the
//! router with `into_make_service_with_connect_info`.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     use std::net::SocketAddr;
//!     use axum::{routing::get, Extension, Router};
//!     use tower_electric::ip::{ClientIp, IpAllowLayer, IpLists};
//!
//!     let app = Router::new()
//!         .route("/", get(|Extension(ClientIp(client)): Extension<ClientIp>| async move {
//!             format!("hello {client}")
//!         }))
//!         .layer(IpAllowLayer::new(IpLists::new().allow("127.0.0.0/8, ::1")?));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//!     Ok(())
//! }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! # Replacing the lists while serving
//!
//! [`IpAllowLayer::handle`] gives an [`IpListsHandle`]; [`IpListsHandle::replace`] swaps the
//! lists of every service the layer built, for allow-lists fed from configuration reloads.
//! [`Cidr::parse_list`] and the text methods of [`IpLists`] read comma-separated lists, as
//! they come from environment variables.

mod cidr;
mod forwarded;
mod lists;
mod service;
mod source;

use std::net::{IpAddr, SocketAddr};

pub use crate::future::ResponseFuture;
pub use cidr::{Cidr, CidrError};
pub use lists::{IpLists, IpListsHandle};
pub use service::{IpAllow, IpAllowLayer, DEFAULT_MAX_HOPS};
pub use source::ClientIpSource;

/// The connection's peer address, put in each request's extensions by the server that
/// accepted the connection (see the [module docs](self) for a hyper server doing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// The client address [`IpAllowLayer`] decided and allowed, canonical (IPv4-mapped IPv6 as
/// IPv4), in the request's extensions for later layers and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);
