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

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[path = "../examples/encryption/demo.rs"]
mod demo;
#[path = "support/where_clause.rs"]
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

// ---------------------------------------------------------------------------------------------
// Issue 5: Electric's API token

#[tokio::test]
async fn client_secrets_never_reach_the_stand_in_and_the_real_one_does_once() {
    let electric = standin(Duration::from_millis(100));
    for attack in [
        "secret=guess-1",
        "api_secret=guess-2",
        "%73ecret=guess-3",
        "secret=guess-4&secret=guess-5",
        "api_secret=guess-6&%73ecret=guess-7&secret=guess-8&api%5Fsecret=guess-9",
    ] {
        electric.clear_requests();
        let reply = without_policy(
            &electric,
            Method::GET,
            &format!("table=items&offset=-1&{attack}"),
            "",
        )
        .await;
        // The stand-in refuses a repeated key: a 200 also says nothing was sent twice.
        assert_eq!(reply.status, StatusCode::OK, "{attack}: {:?}", reply.body);
        let received = only_request(&electric);
        let credentials: Vec<(&str, &str)> = received
            .query
            .iter()
            .filter(|(key, _)| key == "secret" || key == "api_secret")
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(credentials, [("secret", SECRET)], "{attack}");
        assert!(
            !received
                .query
                .iter()
                .any(|(_, value)| value.starts_with("guess")),
            "{attack}: {:?}",
            received.query
        );
    }
}

#[tokio::test]
async fn the_stand_in_answers_200_through_inject_and_401_without_it() {
    let electric = standin(Duration::from_millis(100));
    let direct = |query: &'static str| {
        let electric = electric.clone();
        async move {
            let request = Request::get(format!("/v1/shape?{query}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            Reply::read(electric.oneshot(request).await.unwrap())
                .await
                .unwrap()
        }
    };
    for query in [
        "table=items&offset=-1",
        "table=items&offset=-1&secret=guess",
    ] {
        let reply = direct(query).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(
            reply.json().unwrap()["message"],
            "Unauthorized - Invalid API secret"
        );
    }
    let reply = without_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1&secret=guess",
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), [1, 2, 3, 4, 5]);

    // The same over TCP, with the upstream the gateway uses.
    let server = electric.serve().await.unwrap();
    let upstream = ElectricUpstream::new(server.url()).unwrap();
    let get = || {
        Request::get("/v1/shape?table=items&offset=-1&api_secret=guess")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let reply = Reply::read(bounded(upstream.clone().oneshot(get())).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    electric.clear_requests();
    let reply = Reply::read(
        bounded(inject().layer(upstream).oneshot(get()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), [1, 2, 3, 4, 5]);
    let received = only_request(&electric);
    assert_eq!(received.query_value("secret"), Some(SECRET));
    assert_eq!(received.query_value("api_secret"), None);
}

// ---------------------------------------------------------------------------------------------
// Issue 4: the authorizing proxy, through the stand-in

both_ways! {
async fn hidden_columns_in_where_columns_or_subsets_are_refused_before_the_stand_in(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    for query in [
        "table=items&offset=-1&where=internal_note+%3D+%27keep+it+quiet%27",
        "table=items&offset=-1&where=internal_note+IS+NOT+NULL+OR+done",
        "table=items&offset=-1&where=%22internal_note%22+LIKE+%27a%25%27",
        "table=items&offset=-1&columns=id,internal_note",
        "table=items&offset=-1&columns=%22id%22,%22internal_note%22",
        "table=items&offset=-1&subset__where=internal_note+IS+NULL",
        "table=items&offset=-1&subset__order_by=internal_note&subset__limit=1",
    ] {
        let reply = through_policy(&electric, Method::GET, query, Some("acme"), "").await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{query}: {:?}",
            reply.body
        );
    }
    assert!(electric.requests().is_empty(), "{:#?}", electric.requests());

    // The column is there to be leaked: the stand-in alone serves it.
    let reply = without_policy(&electric, Method::GET, "table=items&offset=-1", "").await;
    assert!(reply.values().unwrap()[0].get("internal_note").is_some());
    // Through the policy, without `columns`, only the visible ones are asked for.
    electric.clear_requests();
    let reply = through_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1",
        Some("acme"),
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        only_request(&electric).query_value("columns"),
        Some("id,tenant_id,title,done")
    );
    for value in reply.values().unwrap() {
        assert!(value.get("internal_note").is_none(), "{value}");
    }
}
}

#[tokio::test]
async fn subqueries_are_refused_before_the_stand_in() {
    let electric = standin(Duration::from_millis(100));
    for client_where in [
        "id IN (SELECT id FROM items)",
        "EXISTS (SELECT 1 FROM tenants WHERE name = 'Globex')",
        "done OR (SELECT true)",
        "title = ANY(SELECT name FROM tenants)",
    ] {
        for key in ["where", "subset__where"] {
            let query = query(&[("table", "items"), ("offset", "-1"), (key, client_where)]);
            let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{query}: {:?}",
                reply.body
            );
        }
    }
    assert!(electric.requests().is_empty(), "{:#?}", electric.requests());
}

both_ways! {
async fn a_post_body_cannot_replace_the_shape_that_the_stand_in_would_merge(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    // What a proxy that only sets the URL would forward for acme.
    let acme_url = query(&[
        ("table", "items"),
        ("offset", "-1"),
        ("columns", "id,tenant_id,title,done"),
        ("where", "tenant_id = $1"),
        ("params[1]", "acme"),
    ]);
    let naive = without_policy(&electric, Method::POST, &acme_url, "{}").await;
    assert_eq!(naive.status, StatusCode::OK);
    assert!(naive
        .values()
        .unwrap()
        .iter()
        .all(|v| v["tenant_id"] == "acme"));

    // Electric merges any other body key over the URL; the stand-in does too. (A proxy that
    // pins only the table is enough to show `table` replaced.)
    let smuggled = [
        (
            "table=items&offset=-1",
            r#"{"table": "tenants"}"#,
            "id",
            "globex",
        ),
        (
            &acme_url,
            r#"{"params[1]": "globex"}"#,
            "tenant_id",
            "globex",
        ),
        (
            &acme_url,
            r#"{"columns": "id,internal_note"}"#,
            "internal_note",
            "ask legal first",
        ),
    ];
    for (naive_url, body, column, leaked) in smuggled {
        let naive = without_policy(&electric, Method::POST, naive_url, body).await;
        assert_eq!(naive.status, StatusCode::OK, "{body}: {:?}", naive.body);
        assert!(
            naive.values().unwrap().iter().any(|v| v[column] == leaked),
            "without the policy, {body} would not leak: {:?}",
            naive.body
        );

        electric.clear_requests();
        let refused = through_policy(
            &electric,
            Method::POST,
            "table=items&offset=-1",
            Some("acme"),
            body,
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            refused.body
        );
        assert!(
            electric.requests().is_empty(),
            "{body}: {:#?}",
            electric.requests()
        );
        // Smuggled next to real subset keys, just the same.
        let mixed = body.replacen('{', r#"{"where": "done = false", "#, 1);
        let refused = through_policy(
            &electric,
            Method::POST,
            "table=items&offset=-1",
            Some("acme"),
            &mixed,
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{mixed}");
        assert!(electric.requests().is_empty(), "{mixed}");
    }

    // A subset body of subset keys is checked, re-serialised, and answered for acme only.
    let body = r#"{"where": "tenant_id <> $1", "params": {"1": "nobody"}, "order_by": "id DESC", "limit": 2}"#;
    let reply = through_policy(
        &electric,
        Method::POST,
        "table=items&offset=-1",
        Some("acme"),
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(ids(&reply), [3, 2]);
    let received = only_request(&electric);
    assert_eq!(received.method, Method::POST);
    let forwarded: Value = serde_json::from_slice(received.body.as_ref().unwrap()).unwrap();
    let mut keys: Vec<&str> = forwarded
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["limit", "order_by", "params", "where"]);
}
}

both_ways! {
async fn the_stand_in_evaluates_client_and_policy_for_every_accepted_where(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    for client_where in [
        "done = false",
        "tenant_id = 'globex' OR true",
        "NOT done OR id > 0",
        "true) OR (1 = 1",
        "tenant_id IN ('acme', 'globex')",
    ] {
        electric.clear_requests();
        let query = query(&[
            ("table", "items"),
            ("offset", "-1"),
            ("where", client_where),
        ]);
        let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
        if reply.status != StatusCode::OK {
            // A where that is not one expression never reaches the stand-in.
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{client_where}");
            assert!(electric.requests().is_empty());
            continue;
        }
        let received = only_request(&electric);
        let (client, policy) = split_and(received.query_value("where").unwrap());
        assert_eq!(client.to_string(), parse_where(client_where).to_string());
        assert_eq!(policy, parse_where("tenant_id = $1"));
        assert_eq!(received.query_value("params[1]"), Some("acme"));
        let values = reply.values().unwrap();
        assert!(!values.is_empty(), "{client_where}");
        assert!(
            values.iter().all(|v| v["tenant_id"] == "acme"),
            "{values:?}"
        );
    }
}
}

both_ways! {
async fn policy_params_are_renumbered_after_the_clients(mode: Mode) {
    let electric = standin_in(mode, Duration::from_millis(100));
    let query = query(&[
        ("table", "items"),
        ("offset", "-1"),
        ("where", "id >= $1 AND title <> $2"),
        ("params[1]", "2"),
        ("params[2]", "Book the offsite"),
    ]);
    let reply = through_policy(&electric, Method::GET, &query, Some("acme"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let received = only_request(&electric);
    assert_eq!(
        parse_where(received.query_value("where").unwrap()),
        parse_where("(id >= $1 AND title <> $2) AND (tenant_id = $3)")
    );
    assert_eq!(received.query_value("params[1]"), Some("2"));
    assert_eq!(received.query_value("params[2]"), Some("Book the offsite"));
    assert_eq!(received.query_value("params[3]"), Some("acme"));
    // The stand-in bound each value to its own placeholder: acme's rows from 2 on, but 3.
    assert_eq!(ids(&reply), [2]);
}
}

#[tokio::test]
async fn responses_from_the_stand_in_are_made_private_and_vary() {
    let electric = standin(Duration::from_millis(100));
    let direct = without_policy(&electric, Method::GET, "table=items&offset=-1", "").await;
    assert_eq!(
        direct.header("cache-control"),
        Some("public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746")
    );
    assert_eq!(direct.header("vary"), None);

    let initial = through_policy(
        &electric,
        Method::GET,
        "table=items&offset=-1",
        Some("acme"),
        "",
    )
    .await;
    assert_eq!(
        initial.header("cache-control"),
        Some("private, max-age=604800, stale-while-revalidate=2629746")
    );
    assert_eq!(initial.header("vary"), Some("authorization, cookie"));

    let handle = initial.header("electric-handle").unwrap();
    let offset = initial.header("electric-offset").unwrap();
    let follow_up = query(&[("table", "items"), ("offset", offset), ("handle", handle)]);
    let reply = through_policy(&electric, Method::GET, &follow_up, Some("acme"), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.header("cache-control"),
        Some("private, max-age=60, stale-while-revalidate=300")
    );
    assert_eq!(reply.header("vary"), Some("authorization, cookie"));
}

// ---------------------------------------------------------------------------------------------
// Issue 4: no principal ever receives another tenant's row or a hidden column

const HIDDEN_NOTES: [&str; 5] = [
    "ask legal first",
    "budget approved",
    "keep it quiet",
    "two are late",
    "rent goes up 5%",
];

/// One generated where fragment: its text with `$?` for each placeholder, and their values.
type Fragment = (String, Vec<String>);

fn atom() -> impl Strategy<Value = Fragment> {
    let plain = |text: &'static str| Just((text.to_owned(), Vec::new()));
    prop_oneof![
        6 => prop_oneof![
            plain("done"),
            plain("NOT done"),
            plain("true"),
            plain("1 = 1"),
            plain("tenant_id = 'globex'"),
            plain("tenant_id <> 'acme'"),
            plain("tenant_id IN ('acme', 'globex')"),
            plain("title IS NOT NULL"),
        ],
        4 => (0..6i64).prop_map(|n| (format!("id > {n}"), Vec::new())),
        4 => prop_oneof![
            proptest::sample::select(vec!["acme", "globex", "nobody"])
                .prop_map(|t| ("tenant_id = $?".to_owned(), vec![t.to_owned()])),
            (0..6i64).prop_map(|n| ("id <= $?".to_owned(), vec![n.to_string()])),
            proptest::sample::select(vec!["Draft the launch plan", "Renew the lease", "x"])
                .prop_map(|t| ("title <> $?".to_owned(), vec![t.to_owned()])),
        ],
        1 => prop_oneof![
            plain("internal_note IS NULL"),
            plain("internal_note = 'x'"),
            plain("id IN (SELECT id FROM items)"),
            plain("items.id = 1"),
            plain("lower(title) = 'x'"),
        ],
    ]
}

fn where_fragment() -> impl Strategy<Value = Fragment> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|((a, pa), (b, pb))| (format!("{a} AND {b}"), [pa, pb].concat())),
            (inner.clone(), inner.clone())
                .prop_map(|((a, pa), (b, pb))| (format!("({a}) OR {b}"), [pa, pb].concat())),
            inner.prop_map(|(a, pa)| (format!("NOT ({a})"), pa)),
        ]
    })
}

/// A fragment's `$?` numbered `$1..$n` in order.
fn numbered((text, params): Fragment) -> (String, Vec<String>) {
    let mut out = String::new();
    for (index, piece) in text.split("$?").enumerate() {
        if index > 0 {
            out.push_str(&format!("${index}"));
        }
        out.push_str(piece);
    }
    (out, params)
}

#[derive(Debug, Clone)]
struct ClientCase {
    tenant: &'static str,
    method: Method,
    pairs: Vec<(String, String)>,
    body: String,
    live: bool,
}

fn client_case() -> impl Strategy<Value = ClientCase> {
    let table = prop_oneof![
        8 => proptest::sample::select(vec!["items", "public.items", "Items", "\"public\".\"items\""]),
        3 => Just("tenants"),
        1 => proptest::sample::select(vec!["\"Items\"", "secrets", "pg_catalog.pg_user"]),
    ];
    let params_shift = prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)];
    let columns = proptest::option::weighted(
        0.3,
        proptest::sample::subsequence(
            vec!["id", "tenant_id", "title", "done", "internal_note", "name"],
            1..4,
        ),
    );
    let extras = proptest::collection::vec(
        (
            proptest::sample::select(vec![
                "secret",
                "api_secret",
                "source_id",
                "queryable_columns",
                "tenant_id",
                "replica",
                "log",
                "hint",
            ]),
            proptest::sample::select(vec![
                "globex",
                "acme",
                "full",
                "changes_only",
                "internal_note",
                "x",
            ]),
        ),
        0..3,
    );
    let subset = proptest::option::weighted(
        0.3,
        (
            proptest::option::of(where_fragment()),
            proptest::option::of(proptest::sample::select(vec![
                "id DESC",
                "title",
                "internal_note",
            ])),
            proptest::option::of(0..4u8),
        ),
    );
    let smuggled = proptest::option::weighted(
        0.3,
        proptest::sample::select(vec![
            ("table", "tenants"),
            ("columns", "id,internal_note"),
            ("params[1]", "globex"),
            ("where", "true"),
        ]),
    );
    (
        proptest::sample::select(vec!["acme", "globex"]),
        prop_oneof![4 => Just(Method::GET), 1 => Just(Method::POST)],
        table,
        proptest::sample::select(vec!["-1", "-1", "now"]),
        proptest::option::weighted(0.7, where_fragment()),
        params_shift,
        columns,
        extras,
        subset,
        smuggled,
        any::<bool>(),
    )
        .prop_map(
            |(
                tenant,
                method,
                table,
                offset,
                where_clause,
                shift,
                columns,
                extras,
                subset,
                smuggled,
                live,
            )| {
                let mut pairs: Vec<(String, String)> = vec![
                    ("table".into(), table.into()),
                    ("offset".into(), offset.into()),
                ];
                if let Some(fragment) = where_clause {
                    let (text, mut params) = numbered(fragment);
                    match shift {
                        -1 => {
                            params.pop();
                        }
                        1 => params.push("globex".into()),
                        _ => {}
                    }
                    pairs.push(("where".into(), text));
                    for (index, value) in params.into_iter().enumerate() {
                        pairs.push((format!("params[{}]", index + 1), value));
                    }
                }
                if let Some(columns) = columns {
                    pairs.push(("columns".into(), columns.join(",")));
                }
                for (key, value) in extras {
                    if !pairs.iter().any(|(seen, _)| seen == key) {
                        pairs.push((key.into(), value.into()));
                    }
                }
                let mut body = serde_json::Map::new();
                if let Some((subset_where, order_by, limit)) = subset {
                    let mut subset_pairs: Vec<(&str, Value)> = Vec::new();
                    if let Some(fragment) = subset_where {
                        let (text, params) = numbered(fragment);
                        subset_pairs.push(("where", text.into()));
                        if !params.is_empty() {
                            let params: serde_json::Map<String, Value> = params
                                .into_iter()
                                .enumerate()
                                .map(|(index, value)| ((index + 1).to_string(), value.into()))
                                .collect();
                            subset_pairs.push(("params", params.into()));
                        }
                    }
                    if let Some(order_by) = order_by {
                        subset_pairs.push(("order_by", order_by.into()));
                    }
                    if let Some(limit) = limit {
                        subset_pairs.push(("limit", limit.into()));
                    }
                    for (key, value) in subset_pairs {
                        if method == Method::POST {
                            body.insert(key.into(), value);
                        } else {
                            let text = match value {
                                Value::String(text) => text,
                                other => other.to_string(),
                            };
                            pairs.push((format!("subset__{key}"), text));
                        }
                    }
                }
                if let Some((key, value)) = smuggled {
                    body.insert(key.into(), value.into());
                }
                ClientCase {
                    tenant,
                    body: if method == Method::POST {
                        Value::Object(body).to_string()
                    } else {
                        String::new()
                    },
                    method,
                    pairs,
                    live,
                }
            },
        )
}

fn rendered(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    query(&pairs)
}

/// Every row in `reply` is the tenant's, and no hidden column or note is in it.
fn assert_only_own_rows(reply: &Reply, tenant: &str) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&reply.body);
    for note in HIDDEN_NOTES {
        prop_assert!(!text.contains(note), "{} leaked: {}", note, text);
    }
    prop_assert!(!text.contains(SECRET), "secret leaked: {}", text);
    if reply.status != StatusCode::OK {
        prop_assert!(reply.status.is_client_error(), "{} {}", reply.status, text);
        return Ok(());
    }
    let body = reply
        .json()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let messages = match &body {
        Value::Array(messages) => messages.clone(),
        Value::Object(subset) => subset["data"].as_array().cloned().unwrap_or_default(),
        other => return Err(TestCaseError::fail(format!("not a shape log: {other}"))),
    };
    for message in &messages {
        let relation = &message["headers"]["relation"];
        for row in ["value", "old_value"]
            .iter()
            .filter_map(|key| message.get(*key))
        {
            let row = row.as_object().unwrap();
            prop_assert!(!row.contains_key("internal_note"), "{}", message);
            if let Some(owner) = row.get("tenant_id") {
                prop_assert_eq!(owner.as_str(), Some(tenant), "{}", message);
            }
            if relation == &json!(["public", "tenants"]) {
                if let Some(id) = row.get("id") {
                    prop_assert_eq!(id.as_str(), Some(tenant), "{}", message);
                }
            }
        }
    }
    Ok(())
}

/// What reached the stand-in is the policy's: one secret, the server's; visible columns only.
fn assert_stand_in_saw_only_the_policys_shapes(
    electric: &ElectricStandIn,
) -> Result<(), TestCaseError> {
    for received in electric.requests() {
        let secrets: Vec<_> = received
            .query
            .iter()
            .filter(|(key, _)| key == "secret" || key == "api_secret" || key == "source_id")
            .collect();
        prop_assert_eq!(secrets.len(), 1, "{:?}", received.query);
        prop_assert_eq!(received.query_value("secret"), Some(SECRET));
        let table = received.query_value("table");
        prop_assert!(
            table == Some("public.items") || table == Some("public.tenants"),
            "{:?}",
            received.query
        );
        for (key, value) in &received.query {
            prop_assert!(!value.contains("internal_note"), "{}={}", key, value);
        }
        if let Some(body) = &received.body {
            prop_assert!(!String::from_utf8_lossy(body).contains("internal_note"));
        }
    }
    Ok(())
}

/// Changes of both tenants after the snapshot, so that a live answer has rows to leak.
fn change_both_tenants(electric: &ElectricStandIn) {
    for (id, tenant) in [("100", "acme"), ("101", "globex")] {
        electric
            .insert(
                "items",
                Row::new()
                    .with("id", id)
                    .with("tenant_id", tenant)
                    .with("title", "new")
                    .with("done", "false")
                    .with("internal_note", "rent goes up 5%"),
            )
            .unwrap();
    }
    electric
        .update(
            "items",
            Row::from([("id", "4"), ("title", "Audit the vendors again")]),
        )
        .unwrap();
    electric
        .update("items", Row::from([("id", "2"), ("done", "false")]))
        .unwrap();
}

/// One generated case against `electric`: the first answer, and a live one after changes of
/// both tenants, hold only the principal's rows, and the stand-in saw only the policy's shapes.
fn check_case(electric: &ElectricStandIn, case: &ClientCase) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let first = through_policy(
            electric,
            case.method.clone(),
            &rendered(&case.pairs),
            Some(case.tenant),
            &case.body,
        )
        .await;
        assert_only_own_rows(&first, case.tenant)?;
        let is_log = case.method == Method::GET
            && !case
                .pairs
                .iter()
                .any(|(key, _)| key.starts_with("subset__"));
        if case.live && is_log && first.status == StatusCode::OK {
            change_both_tenants(electric);
            let mut pairs: Vec<(String, String)> = case
                .pairs
                .iter()
                .filter(|(key, _)| key != "offset")
                .cloned()
                .collect();
            pairs.push((
                "offset".into(),
                first.header("electric-offset").unwrap().into(),
            ));
            pairs.push((
                "handle".into(),
                first.header("electric-handle").unwrap().into(),
            ));
            pairs.push(("live".into(), "true".into()));
            pairs.push(("cursor".into(), String::new()));
            let live = through_policy(
                electric,
                Method::GET,
                &rendered(&pairs),
                Some(case.tenant),
                "",
            )
            .await;
            prop_assert_eq!(live.status, StatusCode::OK, "{:?}", live.body);
            assert_only_own_rows(&live, case.tenant)?;
        }
        assert_stand_in_saw_only_the_policys_shapes(electric)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_principal_never_receives_another_tenants_row_or_a_hidden_column(case in client_case()) {
        check_case(&standin(Duration::from_millis(20)), &case)?;
    }
}

/// The same property with the stand-in on Postgres: one cluster, a stand-in (and so a
/// database) per case; fewer cases, each creates its tables.
#[cfg(feature = "postgres")]
#[test]
fn on_postgres_a_principal_never_receives_another_tenants_row_or_a_hidden_column() {
    let cluster =
        std::sync::Arc::new(tower_electric::testing::postgres::TestCluster::start().unwrap());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&client_case(), |case| {
        let electric = standin_builder(Duration::from_millis(20))
            .postgres(std::sync::Arc::clone(&cluster))
            .build();
        check_case(&electric, &case)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// The example gateway, whole, on TCP

async fn gateway(allow: &str) -> Demo {
    gateway_in(Mode::Plain, allow).await
}

async fn gateway_in(mode: Mode, allow: &str) -> Demo {
    Demo::start(standin_in(mode, Duration::from_millis(300)), SECRET, allow)
        .await
        .unwrap()
}

const ITEMS_SNAPSHOT: [(&str, &str); 2] = [("table", "items"), ("offset", "-1")];

/// The tenant's rows as stored, their titles decrypted with the tenant's key: what the
/// gateway must serve that tenant, and proof that what is stored is not the plaintext.
fn expected_rows(demo: &Demo, tenant: &str) -> Vec<(String, String)> {
    let cipher = demo.keys.cipher_for_tenant(tenant).unwrap();
    demo.database
        .rows("items")
        .unwrap()
        .iter()
        .filter(|row| row.get("tenant_id") == Some(Some(tenant)))
        .map(|row| {
            let stored = row.get("title").unwrap().unwrap();
            let plaintext = cipher.decrypt("title", stored).unwrap();
            assert_ne!(stored, plaintext);
            (row.get("id").unwrap().unwrap().to_owned(), plaintext)
        })
        .collect()
}

fn received_rows(reply: &Reply) -> Vec<(String, String)> {
    reply
        .values()
        .unwrap()
        .iter()
        .map(|value| {
            assert!(value.get("internal_note").is_none(), "{value}");
            (
                value["id"].as_str().unwrap().to_owned(),
                value["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The holder of `token` takes the items snapshot, then sends a live request from its end
/// (`mode`: `("cursor", "")` for a long-poll, `("live_sse", "true")` for SSE), in the
/// background.
async fn start_live(
    demo: &Demo,
    client: &HttpClient,
    token: &'static str,
    mode: (&str, &str),
) -> tokio::task::JoinHandle<Reply> {
    let snapshot = client
        .send(
            Method::GET,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some(token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(snapshot.status, StatusCode::OK);
    let url = demo.shape_url(&[
        ("table", "items"),
        ("offset", snapshot.header("electric-offset").unwrap()),
        ("handle", snapshot.header("electric-handle").unwrap()),
        ("live", "true"),
        mode,
    ]);
    let client = client.clone();
    tokio::spawn(async move {
        client
            .send(Method::GET, &url, Some(token), None)
            .await
            .unwrap()
    })
}

both_ways! {
async fn each_tenant_gets_its_own_rows_decrypted_while_the_stand_in_holds_ciphertext(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();

    let stored = client
        .send(Method::GET, &demo.electric_url(&ITEMS_SNAPSHOT), None, None)
        .await
        .unwrap();
    assert_eq!(stored.status, StatusCode::OK);
    let stored_text = String::from_utf8_lossy(&stored.body).into_owned();
    let url = demo.shape_url(&ITEMS_SNAPSHOT);

    for (token, tenant, other) in [
        ("alice-token", "acme", "globex"),
        ("bob-token", "globex", "acme"),
    ] {
        let reply = client
            .send(Method::GET, &url, Some(token), None)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let expected = expected_rows(&demo, tenant);
        assert!(!expected.is_empty());
        assert_eq!(received_rows(&reply), expected);
        for value in reply.values().unwrap() {
            assert_eq!(value["tenant_id"], tenant);
        }
        for (_, title) in expected_rows(&demo, other) {
            assert!(!String::from_utf8_lossy(&reply.body).contains(&title));
        }
        for (_, title) in &expected {
            assert!(
                !stored_text.contains(title.as_str()),
                "plaintext at rest: {title}"
            );
        }
        assert_eq!(
            reply.header("cache-control"),
            Some("private, max-age=604800, stale-while-revalidate=2629746")
        );
    }
    assert!(received_rows(
        &client
            .send(Method::GET, &url, Some("alice-token"), None)
            .await
            .unwrap()
    )
    .contains(&("1".to_owned(), "Draft the launch plan".to_owned())));
}
}

both_ways! {
async fn a_live_long_poll_woken_by_an_insert_for_acme_reaches_alice_and_not_bob(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();
    let alice = start_live(&demo, &client, "alice-token", ("cursor", "")).await;
    let bob = start_live(&demo, &client, "bob-token", ("cursor", "")).await;
    bounded(demo.database.wait_for_live_in_flight(2)).await;
    let cipher = demo.keys.cipher_for_tenant("acme").unwrap();
    demo.database
        .insert(
            "items",
            Row::new()
                .with("id", "50")
                .with("tenant_id", "acme")
                .with(
                    "title",
                    cipher.encrypt("title", "Fresh from the database").unwrap(),
                )
                .with("done", "false")
                .with("internal_note", "not for clients"),
        )
        .unwrap();

    let bob = bounded(bob).await.unwrap();
    let alice = bounded(alice).await.unwrap();
    assert_eq!(alice.status, StatusCode::OK, "{:?}", alice.body);
    assert_eq!(
        received_rows(&alice),
        [("50".to_owned(), "Fresh from the database".to_owned())]
    );
    assert_eq!(alice.header("electric-has-data"), Some("true"));
    assert_eq!(bob.status, StatusCode::OK, "{:?}", bob.body);
    assert!(bob.values().unwrap().is_empty(), "{:?}", bob.body);
    assert_eq!(bob.header("electric-has-data"), Some("false"));
}
}

#[tokio::test]
async fn the_gateway_refuses_before_the_stand_in() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    demo.database.clear_requests();
    let items = demo.shape_url(&ITEMS_SNAPSHOT);
    for (url, token, status) in [
        (&items, None, StatusCode::UNAUTHORIZED),
        (&items, Some("mallory-token"), StatusCode::UNAUTHORIZED),
        (&items, Some(""), StatusCode::UNAUTHORIZED),
        (
            &demo.shape_url(&[("table", "secrets"), ("offset", "-1")]),
            Some("alice-token"),
            StatusCode::FORBIDDEN,
        ),
        (
            &demo.shape_url(&[("table", "tenants"), ("offset", "-1"), ("where", "true")]),
            Some("alice-token"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let reply = client.send(Method::GET, url, token, None).await.unwrap();
        assert_eq!(reply.status, status, "{url} {token:?}: {:?}", reply.body);
        assert!(reply.json().unwrap()["message"].is_string());
    }
    assert!(
        demo.database.requests().is_empty(),
        "{:#?}",
        demo.database.requests()
    );
}

both_ways! {
async fn subsets_and_sse_through_the_gateway_are_decrypted_for_the_tenant(mode: Mode) {
    let demo = gateway_in(mode, "127.0.0.0/8").await;
    let client = HttpClient::new();
    let subset = json!({"where": "done = $1", "params": {"1": "false"}, "order_by": "id"});
    let reply = client
        .send(
            Method::POST,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some("bob-token"),
            Some(&subset),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let globex_open: Vec<(String, String)> = expected_rows(&demo, "globex")
        .into_iter()
        .filter(|(id, _)| {
            demo.database.rows("items").unwrap().iter().any(|row| {
                row.get("id") == Some(Some(id.as_str())) && row.get("done") == Some(Some("false"))
            })
        })
        .collect();
    assert!(!globex_open.is_empty());
    assert_eq!(received_rows(&reply), globex_open);

    let sse = start_live(&demo, &client, "alice-token", ("live_sse", "true")).await;
    bounded(demo.database.wait_for_live_in_flight(1)).await;
    for (id, tenant, title) in [
        ("70", "globex", "not for alice"),
        ("71", "acme", "streamed to alice"),
    ] {
        let cipher = demo.keys.cipher_for_tenant(tenant).unwrap();
        demo.database
            .insert(
                "items",
                Row::new()
                    .with("id", id)
                    .with("tenant_id", tenant)
                    .with("title", cipher.encrypt("title", title).unwrap())
                    .with("done", "false"),
            )
            .unwrap();
    }
    let reply = bounded(sse).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let values: Vec<Value> = String::from_utf8_lossy(&reply.body)
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| {
            serde_json::from_str::<Value>(data)
                .unwrap()
                .get("value")
                .cloned()
        })
        .collect();
    assert_eq!(
        values,
        [json!({"id": "71", "tenant_id": "acme", "title": "streamed to alice", "done": "false"})]
    );
}
}

/// Without a token the write has no tenant and so no key: that is the caller's 401, not a
/// gateway failure (502).
#[tokio::test]
async fn a_write_without_a_token_is_401() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    let write = demo
        .write_item(&client, None, &json!({"id": 60, "title": "anonymous"}))
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::UNAUTHORIZED, "{:?}", write.body);
    assert_eq!(write.header("www-authenticate"), Some("Bearer"));
    assert!(write.json().unwrap()["message"].is_string());
    assert_eq!(demo.database.rows("items").unwrap().len(), 5);
}

#[tokio::test]
async fn a_client_outside_the_allow_list_is_refused() {
    // 127.0.0.1 is not in the list.
    let demo = gateway("10.0.0.0/8").await;
    let client = HttpClient::new();
    demo.database.clear_requests();
    let reply = client
        .send(
            Method::GET,
            &demo.shape_url(&ITEMS_SNAPSHOT),
            Some("alice-token"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let write = demo
        .write_item(
            &client,
            Some("alice-token"),
            &json!({"id": 61, "title": "from outside"}),
        )
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert!(demo.database.requests().is_empty());
    assert_eq!(demo.database.rows("items").unwrap().len(), 5);
}

/// The flow of `cargo run --example encryption` (`examples/encryption/demo.rs`).
#[tokio::test]
async fn the_encryption_example_stores_ciphertext_and_serves_plaintext_to_the_tenant() {
    let demo = gateway("127.0.0.0/8").await;
    let client = HttpClient::new();
    let title = "Written through the gateway";
    let outcome = demo::write_and_read(&demo, &client, 10, title)
        .await
        .unwrap();
    assert_eq!(outcome.write_status, StatusCode::CREATED);
    let stored = outcome.stored_title.unwrap();
    assert_ne!(stored, title);
    let acme = demo.keys.cipher_for_tenant("acme").unwrap();
    assert_eq!(acme.decrypt("title", &stored).unwrap(), title);
    let globex = demo.keys.cipher_for_tenant("globex").unwrap();
    assert!(globex.decrypt("title", &stored).is_err());
    assert_eq!(outcome.alice_title.as_deref(), Some(title));
    assert!(!outcome.bob_sees_it);

    // The row is the writer's tenant's, whatever the body claims.
    let write = demo
        .write_item(
            &client,
            Some("alice-token"),
            &json!({"id": 11, "title": "mine", "tenant_id": "globex", "internal_note": "x"}),
        )
        .await
        .unwrap();
    assert_eq!(write.status, StatusCode::CREATED);
    let row = demo
        .database
        .rows("items")
        .unwrap()
        .into_iter()
        .find(|row| row.get("id") == Some(Some("11")))
        .unwrap();
    assert_eq!(row.get("tenant_id"), Some(Some("acme")));
    assert_eq!(row.get("internal_note"), Some(None));
    assert_eq!(
        acme.decrypt("title", row.get("title").unwrap().unwrap())
            .unwrap(),
        "mine"
    );
}
