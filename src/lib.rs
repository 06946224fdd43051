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
//!        ─► ShapeParamPolicyLayer ─► ApiTokenLayer ─► BodyTransformLayer ─► ElectricUpstream ─► Electric
//! ```
//!
//! - [`policy`]: [`ShapeParamPolicyLayer`], which decides the shape a client may see and
//!   rebuilds the upstream request so that only that shape can be asked for.
//! - [`protocol`]: Electric's request as types; one parse, rendered back canonically.
//! - [`ip`]: [`IpAllowLayer`], network allow-listing that forwarding headers cannot spoof.
//! - [`rejection`]: the one refusal type: status plus Electric-shaped JSON body.
//! - [`body`]: the body of layers that can answer by themselves.
//! - [`token`]: [`ApiTokenLayer`], Electric's secret injected server-side, and caller tokens
//!   required in constant time.
//! - [`transform`]: [`BodyTransformLayer`], streaming transforms of shape-log values (decrypt,
//!   redact, drop), and [`RequestBodyTransformLayer`] for JSON write bodies.
//!
//! Every layer works with any `http_body::Body` and needs no axum.
//!
//! # Features
//! - `proxy` (default): `ElectricUpstream`, the forwarding service.
//! - `testing`: `testing::ElectricStandIn`, an Electric stand-in for tests.
//! - `axum`: conveniences for axum apps.
//!
//! [tower]: https://docs.rs/tower
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod body;
mod future;
pub mod ip;
pub mod policy;
pub mod protocol;
pub mod rejection;
mod secret;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod transform;
#[cfg(feature = "proxy")]
pub mod upstream;

pub use ip::IpAllowLayer;
pub use policy::ShapeParamPolicyLayer;
pub use secret::SecretString;
pub use token::ApiTokenLayer;
pub use transform::{BodyTransformLayer, RequestBodyTransformLayer};
#[cfg(feature = "proxy")]
pub use upstream::ElectricUpstream;
