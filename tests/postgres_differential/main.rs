#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stderr
)]
//! Differential test of the policy against Postgres itself (issue 15).
//!
//! Every request of the policy tests' attack cases (`support/attack_cases.rs`) and a corpus
//! generated with a fixed seed goes through [`ShapeParamPolicyLayer`] to a stub that records
//! what it would send to Electric. What is forwarded is then run in a throwaway Postgres
//! ([`TestCluster`]) the way Electric runs it: `SELECT ... FROM items WHERE <forwarded where>`
//! prepared as one statement, with each `params[n]` bound as text so that Postgres types it
//! from its context, as Electric's inlined typed literals are; a subset's where, order by,
//! limit and offset likewise with the subset's params. Invariants:
//!
//! - (a) Postgres accepts every forwarded clause. Its rejection is a failure, except for
//!   errors of typing and values (SQLSTATE class 22, and `42804`, `42883`, `42725`, `42P18`,
//!   `42846`, `42P21`, `42P22`), which depend on column types the gateway is not told and
//!   Electric answers with a 400 as well; those are counted, and most of the corpus must run.
//!   Postgres must also read exactly as many placeholders as the gateway sent params.
//! - (b) Every row the forwarded where returns belongs to the principal's tenant.
//! - (c) Nothing forwarded reads the hidden column. Postgres judges this itself: the
//!   statements run as a role granted `SELECT` on the visible columns only, so any reference
//!   to `internal_note` (or a system column, a whole-row reference, another table) is a
//!   `permission denied` and a failure.
//!
//! Refusals by the gateway are fine, but at least 30% of the corpus must be forwarded so that
//! the test cannot pass by refusing everything.

#[path = "../support/attack_cases.rs"]
mod attack_cases;
mod corpus;
mod invariants;
mod runner;

use std::convert::Infallible;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::Client;
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::policy::{RequestBody, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::protocol::query::encode_component;
use tower_electric::protocol::ShapeRequest;
use tower_electric::testing::postgres::TestCluster;

use attack_cases::AttackRequest;
use corpus::corpus;
use invariants::check;
use runner::{setup, Tally};

/// The two tenants; the second one's name needs quoting in any literal.
const TENANTS: [&str; 2] = ["acme", r"o'hara\"];
/// Generated cases (the attack cases come on top).
const GENERATED_CASES: usize = 2_400;
/// The visible columns; `internal_note` is hidden.
const VISIBLE: [&str; 5] = ["id", "tenant_id", "title", "done", "étiquette"];

const SCHEMA: &str = r#"
CREATE TABLE items (
    id int8 PRIMARY KEY,
    tenant_id text NOT NULL,
    title text,
    done bool NOT NULL,
    internal_note text,
    "étiquette" text
);
CREATE TABLE tenants (id text PRIMARY KEY, name text, keys text);
CREATE ROLE principal NOLOGIN;
GRANT SELECT (id, tenant_id, title, done, "étiquette") ON items TO principal;
"#;

/// Rows of both tenants whose titles are the kind of text the corpus compares with.
const TITLES: [&str; 8] = [
    "Draft the plan",
    "it's done",
    r"back\slash",
    r"\') OR true --",
    "100% _sure_",
    "$$dollar$$",
    "héllo wörld",
    "a''b",
];

#[derive(Clone)]
struct Principal(String);

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|p| vec![p.0.clone()])
}

fn policy() -> ShapePolicy {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .table(
            TablePolicy::new("tenants")
                .columns(["id", "name"])
                .row_filter("id = $1", tenant),
        )
        .build()
        .unwrap()
}

/// A parameter sent in text format, typed by Postgres from where it is used.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// What the gateway forwarded, decoded as Electric decodes it.
struct Forwarded {
    upstream: ShapeRequest,
    /// A POST's subset, from its body.
    body: Option<serde_json::Value>,
}

type Gateway = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_electric::body::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

/// The last request the gateway forwarded: its URI and body.
type Recorder = Arc<Mutex<Option<(String, Bytes)>>>;

fn gateway() -> (Gateway, Recorder) {
    let last: Recorder = Arc::default();
    let recorder = Arc::clone(&last);
    let inner = service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        let recorder = Arc::clone(&recorder);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *recorder.lock().unwrap() = Some((parts.uri.to_string(), body));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"[]"))))
        }
    });
    let layer = ShapeParamPolicyLayer::new(policy());
    (Gateway::new(layer.layer(inner)), last)
}

/// Sends `case` through the gateway; what it forwarded is in the recorder.
async fn forward(gateway: &Gateway, case: &Case) {
    let mut request = Request::builder()
        .method(case.method.clone())
        .uri(format!("/v1/shape?{}", case.query))
        .body(Full::new(Bytes::from(case.body.clone())))
        .unwrap();
    request
        .extensions_mut()
        .insert(Principal(case.tenant.to_owned()));
    let _ = gateway.clone().oneshot(request).await.unwrap();
}

/// One client request and the tenant sending it.
#[derive(Debug, Clone)]
struct Case {
    tenant: &'static str,
    method: Method,
    query: String,
    body: String,
}

#[tokio::test]
async fn postgres_runs_every_forwarded_clause_and_returns_only_the_principals_rows() {
    let started = Instant::now();
    let cluster = TestCluster::start().unwrap();
    let client = cluster.connect().await.unwrap();
    setup(&client).await;
    let (gateway, last) = gateway();
    let cases = corpus();
    let mut tally = Tally::default();
    for case in &cases {
        tally.cases += 1;
        *last.lock().unwrap() = None;
        forward(&gateway, case).await;
        let Some((uri, body)) = last.lock().unwrap().take() else {
            tally.refused += 1;
            continue;
        };
        tally.forwarded += 1;
        let uri: http::Uri = uri.parse().unwrap();
        let upstream = ShapeRequest::parse(uri.query().unwrap_or_default()).unwrap();
        let body = (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap());
        check(&client, case, &Forwarded { upstream, body }, &mut tally).await;
    }
    eprintln!(
        "{}: {} cases ({} attack cases), {} refused by the gateway, {} forwarded; Postgres ran \
         {} statements returning {} rows, refused {} for types or values; {} failures; \
         {:.1?}",
        cluster.version(),
        tally.cases,
        attack_cases::all_requests().len(),
        tally.refused,
        tally.forwarded,
        tally.ran,
        tally.rows,
        tally.typing,
        tally.failures.len(),
        started.elapsed()
    );
    assert!(
        tally.failures.is_empty(),
        "{} failures, the first ones:\n{}",
        tally.failures.len(),
        tally
            .failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(cases.len() >= GENERATED_CASES);
    assert!(
        tally.forwarded * 10 >= tally.cases * 3,
        "only {} of {} forwarded",
        tally.forwarded,
        tally.cases
    );
    // Most forwarded statements ran, and returned rows to check the tenant of.
    assert!(
        tally.ran >= tally.typing * 2,
        "{} ran, {} refused for types",
        tally.ran,
        tally.typing
    );
    assert!(tally.rows > tally.forwarded, "only {} rows", tally.rows);
}
