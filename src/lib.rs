//! Composable [tower] layers for building an authorizing proxy in front of
//! [Electric](https://electric-sql.com)'s shape API.
//!
//! Electric serves a Postgres database over one HTTP endpoint, `/v1/shape`. By default anyone
//! who reaches it can read anything its database user can; Electric's security guide says to
//! put it behind an API token, network rules and an authorizing proxy, and to encrypt data in
//! HTTP middleware where needed. This crate is that proxy, as layers any axum or hyper app
//! stacks in its own router:
//!
//! ```text
//! client ─► IpAllowLayer ─► (the app's own auth: puts a principal in extensions)
//!        ─► ShapeParamPolicyLayer ─► BodyTransformLayer ─► ApiTokenLayer ─► ElectricUpstream ─► Electric
//! ```
//!
//! The API token goes innermost: Electric's secret is added to the request last, so no other
//! layer, log line or transform ever sees a URI that holds it.
//!
//! Every layer works with any `http_body::Body<Data = Bytes>`, passes the inner service's
//! error through (a refusal is a response), and needs no axum.
//!
//! # The whole stack
//! ```
//! use bytes::Bytes;
//! use http::{request::Parts, Request};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_electric::ip::{IpLists, PeerAddr};
//! use tower_electric::policy::{ShapePolicy, TablePolicy};
//! use tower_electric::testing::ElectricStandIn;
//! use tower_electric::token::InjectSecret;
//! use tower_electric::transform::each_message;
//! use tower_electric::{
//!     ApiTokenLayer, BodyTransformLayer, IpAllowLayer, SecretString, ShapeParamPolicyLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! #[derive(Clone)]
//! struct Tenant(String); // put in the extensions by the app's own authentication
//!
//! fn tenant(parts: &Parts) -> Option<Vec<String>> {
//!     parts.extensions.get::<Tenant>().map(|tenant| vec![tenant.0.clone()])
//! }
//!
//! // In production: `ElectricUpstream::new("http://electric:3000")?`.
//! let electric = ElectricStandIn::builder().secret("s3cret").with_demo_data().build();
//!
//! let gateway = ServiceBuilder::new()
//!     .layer(IpAllowLayer::new(IpLists::new().allow("127.0.0.0/8,::1/128")?))
//!     .layer(ShapeParamPolicyLayer::new(
//!         ShapePolicy::builder()
//!             .table(TablePolicy::new("items")
//!                 .columns(["id", "tenant_id", "title", "done"])
//!                 .row_filter("tenant_id = $1", tenant)
//!                 .client_where(true))
//!             .build()?,
//!     ))
//!     .layer(BodyTransformLayer::new(each_message(|message| {
//!         // Shout every title, as it streams through.
//!         if let Some(row) = message.value_mut() {
//!             if let Some(Some(title)) = row.get("title") {
//!                 let loud = title.to_uppercase();
//!                 row.set("title", Some(loud));
//!             }
//!         }
//!         Ok(())
//!     })))
//!     .layer(ApiTokenLayer::inject(InjectSecret::new(SecretString::new("s3cret"))?))
//!     .service(electric.clone());
//!
//! // A client asks for every item, a hidden column and Electric's secret included...
//! let mut request = Request::get("/v1/shape?table=items&offset=-1&where=done=false&secret=guess")
//!     .body(Full::new(Bytes::new()))?;
//! request.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse()?));
//! request.extensions_mut().insert(Tenant("acme".into()));
//! let response = gateway.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! let body = response.into_body().collect().await?.to_bytes();
//! let messages: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
//!
//! // ...and gets acme's open items only, without the hidden column, titles transformed.
//! let rows: Vec<_> = messages.iter().filter_map(|message| message.get("value")).collect();
//! assert!(!rows.is_empty());
//! for row in rows {
//!     assert_eq!(row["tenant_id"], "acme");
//!     assert_eq!(row["done"], "false");
//!     assert!(row.get("internal_note").is_none());
//!     let title = row["title"].as_str().unwrap_or_default();
//!     assert_eq!(title, title.to_uppercase());
//! }
//! // Electric saw the composed where and the server's secret, never the client's.
//! let seen = electric.requests().pop().expect("one upstream request");
//! assert_eq!(seen.query_value("where"), Some("done = false AND tenant_id = $1"));
//! assert_eq!(seen.query_value("params[1]"), Some("acme"));
//! assert_eq!(seen.query_value("secret"), Some("s3cret"));
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//! - [`protocol`]: Electric's request as types; one parse, rendered back canonically.
//! - [`ip`]: [`IpAllowLayer`], network allow-listing that forwarding headers cannot spoof.
//! - [`policy`]: [`ShapeParamPolicyLayer`], which decides the shape a client may see and
//!   rebuilds the upstream request so that only that shape can be asked for; with
//!   [`GatekeeperPolicy`](policy::GatekeeperPolicy), the shape a token's claim names.
//! - [`token`]: [`ApiTokenLayer`], Electric's secret injected server-side, and caller tokens
//!   required in constant time.
//! - [`transform`]: [`BodyTransformLayer`], streaming rewrites of shape-log values (decrypt,
//!   redact), and [`RequestBodyTransformLayer`] for JSON write bodies.
//! - `upstream` (feature `proxy`): `ElectricUpstream`, the forwarding service.
//! - `testing` (feature `testing`): an Electric stand-in for tests, ours and yours.
//! - [`claims`]: [`JwtClaims`](claims::JwtClaims), verified token claims as the principal.
//! - `jwt` (feature `jwt`): `JwtLayer`, bearer JWTs verified into claims.
//! - `revocation` (feature `revocation`): `Revocations` and `RevocationLayer`, cutting a
//!   principal off, held live requests included.
//! - [`telemetry`]: [`TelemetryLayer`], a `tracing` span per shape request and the request
//!   metrics; the names of every span field and metric the crate records.
//! - [`rejection`]: the one refusal type: status plus Electric-shaped JSON body.
//! - [`body`]: the body of layers that can answer by themselves.
//!
//! # Features
//! - `proxy` (default): `ElectricUpstream`, the forwarding service (hyper-util client).
//! - `tls` (default): `https://` upstreams for `ElectricUpstream` (rustls with ring; web or
//!   system roots, custom CAs, client certificates).
//! - `testing`: the Electric stand-in (in-process service and TCP server).
//! - `postgres` (implies `testing`): `testing::postgres::TestCluster`, a throwaway Postgres
//!   cluster for tests (needs Postgres's server programs installed), and the stand-in's
//!   option to evaluate where clauses and subsets in Postgres (`StandInBuilder::postgres`).
//! - `axum`: [`IpAllowLayer`] reads axum's `ConnectInfo<SocketAddr>` as the peer address.
//! - `jwt`: `JwtLayer` (HS256, RS256, ES256; PEM keys, JWKS files and `http://` URLs), with
//!   `jsonwebtoken`'s pure-Rust backend.
//! - `revocation`: `Revocations` and `RevocationLayer`.
//! - `metrics` (default): metrics through the `metrics` facade (no exporter: install your
//!   recorder); off, the recording calls compile to nothing.
//!
//! [tower]: https://docs.rs/tower
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod body;
pub mod claims;
mod future;
pub mod ip;
#[cfg(feature = "jwt")]
pub mod jwt;
mod observe;
pub mod policy;
pub mod protocol;
pub mod rejection;
#[cfg(feature = "revocation")]
pub mod revocation;
mod secret;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod transform;
#[cfg(feature = "proxy")]
pub mod upstream;

pub use ip::IpAllowLayer;
#[cfg(feature = "jwt")]
pub use jwt::JwtLayer;
pub use policy::ShapeParamPolicyLayer;
pub use secret::SecretString;
pub use telemetry::TelemetryLayer;
pub use token::ApiTokenLayer;
pub use transform::{BodyTransformLayer, RequestBodyTransformLayer};
#[cfg(feature = "proxy")]
pub use upstream::ElectricUpstream;
