#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Acceptance tests through the real Electric stand-in: what the stand-in received
//! ([`ElectricStandIn::requests`]) and what the client got.
//!
//! - Issue 5 (API token): client credentials never reach Electric; the server's secret does,
//!   exactly once.
//! - Issue 4 (authorizing proxy): every attack refused or neutralised, `(client) AND (policy)`
//!   on what Electric evaluates, params renumbered, caches kept private, and a property test:
//!   a principal never receives another tenant's row or a hidden column.
//! - Issue 7 and the example gateway: the whole router of `examples/gateway/app.rs` on TCP,
//!   titles encrypted at rest and decrypted per tenant, live updates per tenant, refusals, and
//!   the write path. The encryption example's flow (`examples/encryption/demo.rs`) runs here.
//! - Issue 18: the example's serving code (`examples/gateway/serve.rs`): HTTP/1.1, h2c and TLS
//!   with ALPN, many live shapes on one HTTP/2 connection, slow clients, graceful shutdown; and
//!   compression to clients after the body transform. Issue 16: serving per core
//!   (`examples/support/per_core.rs`).

#[path = "../../examples/gateway/app.rs"]
mod app;
#[path = "../../examples/encryption/columns.rs"]
mod columns;
#[path = "../../examples/encryption/demo.rs"]
mod demo;
#[path = "../../examples/support/per_core.rs"]
mod per_core;
#[path = "../support/rows.rs"]
mod rows;
#[path = "../../examples/gateway/serve.rs"]
mod serve;
#[path = "../support/tls.rs"]
mod tls;
#[path = "../support/where_clause.rs"]
mod where_clause;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_electric::policy::ShapeParamPolicyLayer;
use tower_electric::testing::{ElectricStandIn, RecordedRequest, Row};
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::{ElectricUpstream, SecretString};

use columns::Tenant;
use demo::{query, Demo, HttpClient, Reply};
use rows::received_rows;
use where_clause::{parse_where, split_and};

const SECRET: &str = "electric-secret";

/// The stand-in with the demo data (`items` of `acme` and `globex`, with the hidden
/// `internal_note`), requiring [`SECRET`], with short long-polls and SSE streams.
fn standin(long_poll_hold: Duration) -> ElectricStandIn {
    standin_in(Mode::Plain, long_poll_hold)
}

/// Where the stand-in evaluates where clauses and subsets.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Its own evaluator.
    Plain,
    /// A throwaway Postgres cluster of the test's own.
    #[cfg(feature = "postgres")]
    Postgres,
}

fn standin_builder(long_poll_hold: Duration) -> tower_electric::testing::StandInBuilder {
    ElectricStandIn::builder()
        .secret(SECRET)
        .long_poll_hold(long_poll_hold)
        .sse_duration(Duration::from_secs(1))
        .with_demo_data()
}

/// [`standin`], evaluating in `mode`.
fn standin_in(mode: Mode, long_poll_hold: Duration) -> ElectricStandIn {
    let builder = standin_builder(long_poll_hold);
    match mode {
        Mode::Plain => builder.build(),
        #[cfg(feature = "postgres")]
        Mode::Postgres => builder
            .postgres(tower_electric::testing::postgres::TestCluster::start().unwrap())
            .build(),
    }
}

/// A test run twice: `<name>::plain` against the stand-in's own evaluator and
/// `<name>::on_postgres` against the stand-in on Postgres (feature `postgres`).
macro_rules! both_ways {
    (async fn $name:ident($mode:ident: Mode) $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn plain() {
                run(Mode::Plain).await;
            }

            #[cfg(feature = "postgres")]
            #[tokio::test]
            async fn on_postgres() {
                run(Mode::Postgres).await;
            }

            async fn run($mode: Mode) $body
        }
    };
}

fn inject() -> ApiTokenLayer {
    ApiTokenLayer::inject(InjectSecret::new(SecretString::new(SECRET)).unwrap())
}

/// A guard against a hung test, not a timing assertion.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("no answer")
}

fn shape_request(
    method: Method,
    query: &str,
    tenant: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/v1/shape?{query}"))
        .header("authorization", "Bearer app-session")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(Tenant(tenant.to_owned()));
    }
    request
}

/// The gateway's shape stack in process, minus network and encryption: the example's policy,
/// then Electric's secret injected, then the stand-in.
async fn through_policy(
    electric: &ElectricStandIn,
    method: Method,
    query: &str,
    tenant: Option<&str>,
    body: &str,
) -> Reply {
    let service = ServiceBuilder::new()
        .layer(ShapeParamPolicyLayer::new(app::policy().unwrap()))
        .layer(inject())
        .service(electric.clone());
    let response = bounded(service.oneshot(shape_request(method, query, tenant, body)))
        .await
        .unwrap();
    Reply::read(response).await.unwrap()
}

/// A naive proxy: the client's request forwarded as it is, with Electric's secret added.
async fn without_policy(
    electric: &ElectricStandIn,
    method: Method,
    query: &str,
    body: &str,
) -> Reply {
    let service = inject().layer(electric.clone());
    let response = bounded(service.oneshot(shape_request(method, query, None, body)))
        .await
        .unwrap();
    Reply::read(response).await.unwrap()
}

fn only_request(electric: &ElectricStandIn) -> RecordedRequest {
    let mut received = electric.requests();
    assert_eq!(received.len(), 1, "{received:#?}");
    received.pop().unwrap()
}

fn ids(reply: &Reply) -> Vec<i64> {
    reply
        .values()
        .unwrap()
        .iter()
        .map(|value| value["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

// The tests, by what they exercise. Declared after `both_ways!` so that they can use it.
mod api_token;
mod authorizing_proxy;
mod compression;
mod example_gateway;
mod no_leak;
mod serving;
mod serving_per_core;
