#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! ShapeParamPolicyLayer against a recording inner service: attacks refused or neutralised,
//! `(client) AND (policy)` on every accepted request, params renumbered, caches kept safe.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::policy::{
    policy_fn, CacheSafety, RequestBody, RowFilter, ShapeDefinition, ShapeParamPolicyLayer,
    ShapePolicy, TablePolicy,
};
use tower_electric::protocol::{Identifier, Replica, ShapeRequest, TableName};
use tower_electric::rejection::Rejection;

#[path = "support/attack_cases.rs"]
mod attack_cases;
#[path = "support/where_clause.rs"]
mod where_clause;
use where_clause::{column_names, parse_where, placeholder_numbers, split_and};

#[derive(Clone)]
struct Principal {
    tenant: String,
}

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|p| vec![p.tenant.clone()])
}

/// The gateway example's policy.
fn gateway_policy() -> ShapePolicy {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(["id", "tenant_id", "title", "done"])
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .table(
            TablePolicy::new("tenants")
                .columns(["id", "name", "keys"])
                .row_filter("id = $1", tenant),
        )
        .table(TablePolicy::new("announcements").fixed_row_filter("published"))
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

const ELECTRIC_INITIAL_CACHE_CONTROL: &str =
    "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746";

/// A layer over an inner service that records what it received and answers as Electric does
/// for an initial request.
type Gateway = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_electric::body::ResponseBody<Full<Bytes>>>,
    Infallible,
>;

fn gateway(layer: ShapeParamPolicyLayer) -> (Gateway, Log) {
    let log: Log = Arc::default();
    let recorder = Arc::clone(&log);
    let inner = service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        let recorder = Arc::clone(&recorder);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            recorder.lock().unwrap().push(Recorded {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            let mut response = Response::new(Full::new(Bytes::from_static(b"[]")));
            response.headers_mut().insert(
                "cache-control",
                ELECTRIC_INITIAL_CACHE_CONTROL.parse().unwrap(),
            );
            Ok::<_, Infallible>(response)
        }
    });
    (Gateway::new(layer.layer(inner)), log)
}

fn request(method: Method, query: &str, tenant: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/v1/shape?{query}"))
        .header("authorization", "Bearer token")
        .header("cookie", "session=abc")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(Principal {
            tenant: tenant.to_owned(),
        });
    }
    request
}

struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    forwarded: Option<Recorded>,
}

impl Outcome {
    fn forwarded(&self) -> &Recorded {
        self.forwarded
            .as_ref()
            .unwrap_or_else(|| panic!("not forwarded: {} {}", self.status, self.body))
    }

    fn upstream(&self) -> ShapeRequest {
        let uri: http::Uri = self.forwarded().uri.parse().unwrap();
        ShapeRequest::parse(uri.query().unwrap_or_default()).unwrap()
    }

    fn refused(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.forwarded.is_none(), "forwarded: {:?}", self.forwarded);
    }
}

async fn send_with(layer: ShapeParamPolicyLayer, request: Request<Full<Bytes>>) -> Outcome {
    let (service, log) = gateway(layer);
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let forwarded = log.lock().unwrap().pop();
    Outcome {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
        forwarded,
    }
}

async fn get(query: &str, tenant: Option<&str>) -> Outcome {
    send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::GET, query, tenant, ""),
    )
    .await
}

async fn post(query: &str, tenant: Option<&str>, body: &str) -> Outcome {
    send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::POST, query, tenant, body),
    )
    .await
}

fn ids(names: &[&str]) -> Vec<Identifier> {
    names
        .iter()
        .map(|name| Identifier::parse(name).unwrap())
        .collect()
}

#[tokio::test]
async fn an_accepted_request_is_rebuilt_from_scratch() {
    let outcome = get(
        "table=items&offset=-1&log=full&where=done&secret=guess&api_secret=x&source_id=s\
         &queryable_columns=internal_note&hint=1&columns=id,title",
        Some("t1"),
    )
    .await;
    assert_eq!(outcome.status, StatusCode::OK);
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::GET);
    assert!(forwarded.uri.starts_with("/v1/shape?"));
    for leaked in ["secret", "source_id", "hint", "internal_note", "guess"] {
        assert!(
            !forwarded.uri.contains(leaked),
            "{leaked} in {}",
            forwarded.uri
        );
    }
    let upstream = outcome.upstream();
    assert_eq!(upstream.table, Some(TableName::parse("items").unwrap()));
    assert_eq!(upstream.columns, Some(ids(&["id", "title"])));
    assert_eq!(
        upstream.queryable_columns,
        Some(ids(&["id", "tenant_id", "title", "done"]))
    );
    assert_eq!(upstream.params, ["t1"]);
    assert!(upstream.extras.is_empty());
    assert!(upstream.secret.is_none() && upstream.api_secret.is_none());
    assert!(forwarded.body.is_empty());
}

#[tokio::test]
async fn without_client_columns_only_the_visible_ones_are_asked_for() {
    let upstream = get("table=items&offset=-1", Some("t1")).await.upstream();
    assert_eq!(
        upstream.columns,
        Some(ids(&["id", "tenant_id", "title", "done"]))
    );
    assert_eq!(upstream.where_clause.as_deref(), Some("tenant_id = $1"));
}

#[tokio::test]
async fn protocol_params_go_through() {
    let upstream = get(
        "table=items&offset=12_3&handle=h1&live=true&live_sse=true&cursor=c\
         &expired_handle=h0&cache-buster=cb&log=changes_only&replica=full",
        Some("t1"),
    )
    .await
    .upstream();
    assert_eq!(upstream.offset.to_string(), "12_3");
    assert_eq!(upstream.handle.as_deref(), Some("h1"));
    assert!(upstream.live && upstream.live_sse);
    assert_eq!(upstream.cursor.as_deref(), Some("c"));
    // Past `-1` the handle names the shape; `expired_handle` would only split a cache.
    assert_eq!(upstream.expired_handle, None);
    assert_eq!(upstream.cache_buster.as_deref(), Some("cb"));
    assert_eq!(upstream.replica, Some(Replica::Full));
}

#[tokio::test]
async fn string_built_where_tricks_are_refused() {
    for trick in attack_cases::STRING_BUILT_TRICKS {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(trick)
        );
        get(&query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn subqueries_are_refused_in_where_and_subset_where() {
    for attack in attack_cases::SUBQUERIES {
        let encoded = tower_electric::protocol::query::encode_component(attack);
        let outcome = get(
            &format!("table=items&offset=-1&where={encoded}"),
            Some("t1"),
        )
        .await;
        outcome.refused(StatusCode::FORBIDDEN);
        assert!(outcome.body.contains("subqueries"), "{}", outcome.body);
        get(
            &format!("table=items&offset=-1&subset__where={encoded}"),
            Some("t1"),
        )
        .await
        .refused(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn hidden_columns_are_refused_everywhere() {
    for query in attack_cases::HIDDEN_COLUMN_QUERIES {
        get(query, Some("t1")).await.refused(StatusCode::FORBIDDEN);
    }
    for body in attack_cases::HIDDEN_COLUMN_BODIES {
        post("table=items&offset=-1", Some("t1"), body)
            .await
            .refused(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn duplicated_and_encoded_keys_are_refused() {
    for query in attack_cases::DUPLICATED_KEY_QUERIES {
        get(query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn principals_and_tables_are_enforced() {
    get("table=items&offset=-1", None)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    let outcome = get("table=secrets&offset=-1", Some("t1")).await;
    outcome.refused(StatusCode::FORBIDDEN);
    get("offset=-1", Some("t1"))
        .await
        .refused(StatusCode::BAD_REQUEST);
    // Another spelling of an allowed table is the same table.
    let upstream = get("table=%22public%22.%22items%22&offset=-1", Some("t1"))
        .await
        .upstream();
    assert_eq!(upstream.table, Some(TableName::parse("items").unwrap()));
    // A quoted name with other case is another table.
    get("table=%22Items%22&offset=-1", Some("t1"))
        .await
        .refused(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn where_and_subsets_need_the_policy_to_allow_them() {
    get("table=tenants&offset=-1&where=name+%3D+%27a%27", Some("t1"))
        .await
        .refused(StatusCode::FORBIDDEN);
    get(
        "table=tenants&offset=-1&subset__where=name+%3D+%27a%27",
        Some("t1"),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    post(
        "table=tenants&offset=-1",
        Some("t1"),
        r#"{"limit":1,"order_by":"id"}"#,
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    // Without a client where, the row filter alone is the where.
    let upstream = get("table=tenants&offset=-1", Some("t1")).await.upstream();
    assert_eq!(upstream.where_clause.as_deref(), Some("id = $1"));
    assert_eq!(upstream.queryable_columns, None);
}

#[tokio::test]
async fn the_row_filter_is_anded_at_the_top_whatever_the_client_writes() {
    for client in attack_cases::ROW_FILTER_WIDENERS {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let (client_part, policy_part) = split_and(upstream.where_clause.as_deref().unwrap());
        assert_eq!(client_part, parse_where(client));
        assert_eq!(policy_part, parse_where("tenant_id = $1"));
        assert_eq!(upstream.params, ["t1"]);
    }
}

/// sqlparser renders a quote that follows a backslash without doubling it, while Postgres
/// reads a backslash in `'...'` as a plain character: rendered with sqlparser's `Display`,
/// `title = '\'') OR true --'` went upstream as `(title = '\') OR true --') AND (...)`, which
/// Postgres reads as `(title = '\') OR true` with the row filter commented out.
#[tokio::test]
async fn quotes_and_backslashes_in_client_strings_cannot_end_the_literal_early() {
    for client in attack_cases::QUOTES_AND_BACKSLASHES {
        let query = format!(
            "table=items&offset=-1&where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let forwarded = upstream.where_clause.as_deref().unwrap();
        let (client_part, policy_part) = split_and(forwarded);
        assert_eq!(
            client_part,
            parse_where(client),
            "{client} went as {forwarded}"
        );
        assert_eq!(policy_part, parse_where("tenant_id = $1"));

        let query = format!(
            "table=items&offset=-1&subset__where={}",
            tower_electric::protocol::query::encode_component(client)
        );
        let upstream = get(&query, Some("t1")).await.upstream();
        let forwarded = upstream.subset.where_clause.as_deref().unwrap();
        assert_eq!(
            parse_where(forwarded),
            parse_where(client),
            "{client} went as {forwarded}"
        );
    }
}

#[tokio::test]
async fn client_params_keep_their_numbers_and_the_policys_follow() {
    let upstream = get(attack_cases::PARAMETERISED_QUERIES[0], Some("t1"))
        .await
        .upstream();
    assert_eq!(
        upstream.where_clause.as_deref(),
        Some("(id = $1 OR title = $2) AND tenant_id = $3")
    );
    assert_eq!(upstream.params, ["7", "a b", "t1"]);
}

#[tokio::test]
async fn client_params_must_match_its_placeholders() {
    for query in attack_cases::MISMATCHED_PARAMS_QUERIES {
        get(query, Some("t1"))
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn refusals_name_the_rule_but_never_the_policy_values() {
    let outcome = get(
        "table=items&offset=-1&where=internal_note+IS+NULL",
        Some("tenant-secret-42"),
    )
    .await;
    outcome.refused(StatusCode::FORBIDDEN);
    assert!(outcome.body.contains("where"), "{}", outcome.body);
    assert!(outcome.body.contains("internal_note"), "{}", outcome.body);
    assert!(!outcome.body.contains("tenant-secret-42"));
    assert!(!outcome.body.contains("tenant_id = $1"));
    assert_eq!(outcome.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn subsets_are_checked_and_rendered_from_their_parsed_form() {
    let upstream = get(attack_cases::PARAMETERISED_QUERIES[1], Some("t1"))
        .await
        .upstream();
    assert_eq!(
        upstream.subset.where_clause.as_deref(),
        Some("title ILIKE $1")
    );
    assert_eq!(upstream.subset.params, Some(vec!["%a%".to_owned()]));
    assert_eq!(upstream.subset.limit, Some(10));
    assert_eq!(upstream.subset.offset, Some(5));
    assert_eq!(
        upstream.subset.order_by.as_deref(),
        Some("id DESC NULLS LAST")
    );
    assert_eq!(upstream.subset.where_expr, None);
    // The structured form alone is not checked, so not accepted.
    get(
        "table=items&offset=-1&subset__where_expr=%7B%7D",
        Some("t1"),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_post_subset_body_is_limited_checked_and_reserialised() {
    let outcome = post(
        "table=items&offset=-1",
        Some("t1"),
        attack_cases::SUBSET_BODY,
    )
    .await;
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::POST);
    assert!(!forwarded.uri.contains("subset"), "{}", forwarded.uri);
    let body: serde_json::Value = serde_json::from_slice(&forwarded.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"where":"done AND title = $1","params":{"1":"x"},"limit":3,"order_by":"id"})
    );
    assert_eq!(
        forwarded.headers["content-length"],
        forwarded.body.len().to_string()
    );
    assert_eq!(
        outcome.upstream().where_clause.as_deref(),
        Some("tenant_id = $1")
    );

    for body in attack_cases::SMUGGLING_BODIES {
        post("table=items&offset=-1", Some("t1"), body)
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
    let large = format!(r#"{{"where":"title = '{}'"}}"#, "a".repeat(70 * 1024));
    post("table=items&offset=-1", Some("t1"), &large)
        .await
        .refused(StatusCode::PAYLOAD_TOO_LARGE);
    post(
        "table=items&offset=-1&subset__where=done",
        Some("t1"),
        r#"{"where":"done"}"#,
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn methods_are_get_head_post_and_a_bare_options() {
    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::DELETE, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    outcome.refused(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(outcome.headers["allow"], "GET, HEAD, POST, OPTIONS");

    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::HEAD, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(outcome.forwarded().method, Method::HEAD);

    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(Method::OPTIONS, "table=whatever&x=1", None, "preflight"),
    )
    .await;
    // A preflight no CORS layer answered goes on for Electric to answer from its headers,
    // without the client's unchecked query and body.
    let forwarded = outcome.forwarded();
    assert_eq!(forwarded.method, Method::OPTIONS);
    assert_eq!(forwarded.uri, "/v1/shape");
    assert!(forwarded.body.is_empty());

    // A GET body was never checked, so it does not go on.
    let outcome = send_with(
        ShapeParamPolicyLayer::new(gateway_policy()),
        request(
            Method::GET,
            "table=items&offset=-1",
            Some("t1"),
            r#"{"table":"x"}"#,
        ),
    )
    .await;
    assert!(outcome.forwarded().body.is_empty());
}

#[tokio::test]
async fn principal_dependent_responses_are_private_and_vary() {
    let outcome = get("table=items&offset=-1", Some("t1")).await;
    assert_eq!(
        outcome.headers["cache-control"],
        "private, max-age=604800, stale-while-revalidate=2629746"
    );
    assert_eq!(outcome.headers["vary"], "authorization, cookie");

    // The same for everyone: Electric's caching stays.
    let outcome = get("table=announcements&offset=-1", Some("t1")).await;
    assert_eq!(
        outcome.headers["cache-control"],
        ELECTRIC_INITIAL_CACHE_CONTROL
    );
    assert!(outcome.headers.get("vary").is_none());
    assert_eq!(
        outcome.upstream().where_clause.as_deref(),
        Some("published")
    );

    let layer = ShapeParamPolicyLayer::new(gateway_policy())
        .cache_safety(CacheSafety::VaryOnly)
        .vary_on([http::header::COOKIE]);
    let outcome = send_with(
        layer,
        request(Method::GET, "table=items&offset=-1", Some("t1"), ""),
    )
    .await;
    assert_eq!(
        outcome.headers["cache-control"],
        ELECTRIC_INITIAL_CACHE_CONTROL
    );
    assert_eq!(outcome.headers["vary"], "cookie");
}

#[tokio::test]
async fn a_closure_policy_reads_the_principal_and_the_clients_hints() {
    let projects = TableName::parse("projects").unwrap();
    let filter = RowFilter::parse("owner = $1 AND archived = $2").unwrap();
    let policy = policy_fn(move |parts: &Parts, request: &ShapeRequest| {
        let principal = parts.extensions.get::<Principal>().cloned();
        // A hint the client sent: which view it wants; the policy decides what it means.
        let archived = request.extras.get("view") == Some("archive");
        let definition = principal.map(|p| {
            ShapeDefinition::new(projects.clone())
                .columns(ids(&["id", "name"]))
                .row_filter(&filter, [p.tenant, archived.to_string()])
                .replica(Replica::Default)
        });
        async move { definition.ok_or_else(Rejection::unauthorized) }
    });
    let layer = ShapeParamPolicyLayer::new(policy);
    let outcome = send_with(
        layer.clone(),
        request(
            Method::GET,
            "table=anything&offset=-1&view=archive",
            Some("u1"),
            "",
        ),
    )
    .await;
    let upstream = outcome.upstream();
    assert_eq!(upstream.table, Some(TableName::parse("projects").unwrap()));
    assert_eq!(upstream.params, ["u1", "true"]);
    assert_eq!(upstream.replica, Some(Replica::Default));
    assert!(!outcome.forwarded().uri.contains("view"));
    // The closure's definition allows no client where and forces replica=default.
    send_with(
        layer.clone(),
        request(
            Method::GET,
            "table=projects&offset=-1&where=id+%3D+1",
            Some("u1"),
            "",
        ),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    send_with(
        layer,
        request(
            Method::GET,
            "table=projects&offset=-1&replica=full",
            Some("u1"),
            "",
        ),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_row_filter_given_the_wrong_number_of_values_fails_closed() {
    let filter = RowFilter::parse("tenant_id = $1").unwrap();
    let table = TableName::parse("items").unwrap();
    let policy = policy_fn(move |_: &Parts, _: &ShapeRequest| {
        let definition =
            ShapeDefinition::new(table.clone()).row_filter(&filter, Vec::<String>::new());
        async move { Ok(definition) }
    });
    send_with(
        ShapeParamPolicyLayer::new(policy),
        request(Method::GET, "table=items&offset=-1", Some("t1"), ""),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
}

#[test]
fn bad_policy_text_is_a_build_error() {
    for table in [
        TablePolicy::new("a.b.c"),
        TablePolicy::new("items").columns(["ok", "bad name"]),
        TablePolicy::new("items").row_filter("tenant_id = $2", tenant),
        TablePolicy::new("items").row_filter("tenant_id = $1 --", tenant),
        TablePolicy::new("items").row_filter("x = 1; drop table items", tenant),
        TablePolicy::new("items").fixed_row_filter("tenant_id = $1"),
        TablePolicy::new("items").fixed_row_filter("true) OR (true"),
        TablePolicy::new("items").fixed_row_filter("true UNION SELECT 1"),
    ] {
        assert!(ShapePolicy::builder().table(table).build().is_err());
    }
    assert!(ShapePolicy::builder()
        .table(TablePolicy::new("items"))
        .table(TablePolicy::new("public.items"))
        .build()
        .is_err());
}

// Generated client requests: whatever they ask, what goes upstream is the policy's table, the
// policy's filter ANDed at the top, visible columns only, and params that match placeholders.

const VISIBLE: [&str; 4] = ["id", "tenant_id", "title", "done"];

fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(VISIBLE.to_vec()).prop_map(str::to_owned),
        1 => Just("internal_note".to_owned()),
        1 => Just("items.id".to_owned()),
        1 => Just("\"ID\"".to_owned()),
    ]
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (column(), proptest::sample::select(vec!["=", "<>", ">", "<="]), 0..100i32)
            .prop_map(|(c, op, n)| format!("{c} {op} {n}")),
        4 => column().prop_map(|c| format!("{c} IS NULL")),
        2 => column().prop_map(|c| format!("lower({c}) = 'a'")),
        2 => Just("$1 = title".to_owned()),
        1 => Just("id = $2".to_owned()),
        1 => Just("EXISTS (SELECT 1 FROM tenants)".to_owned()),
        1 => Just("true) OR (true".to_owned()),
        1 => Just("pg_sleep(1) IS NULL".to_owned()),
        1 => Just("done --".to_owned()),
    ]
}

fn where_clause() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

fn client_query() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            6 => proptest::sample::select(vec!["items", "public.items", "Items"]),
            1 => proptest::sample::select(vec!["tenants", "secrets", "\"Items\""]),
        ],
        proptest::option::weighted(0.8, where_clause()),
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)],
        proptest::option::of(proptest::sample::subsequence(
            vec!["id", "title", "done", "internal_note"],
            0..4,
        )),
        proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "secret",
                    "api_secret",
                    "source_id",
                    "hint",
                    "queryable_columns",
                    "tenant",
                ]),
                "[a-z0-9]{0,6}",
            ),
            0..3,
        ),
    )
        .prop_map(|(table, where_clause, params, columns, extras)| {
            let mut pairs = vec![
                ("table".to_owned(), table.to_owned()),
                ("offset".to_owned(), "-1".to_owned()),
            ];
            if let Some(where_clause) = where_clause {
                pairs.push(("where".into(), where_clause));
            }
            for index in 1..=params {
                pairs.push((format!("params[{index}]"), format!("v{index}")));
            }
            if let Some(columns) = columns.filter(|c| !c.is_empty()) {
                pairs.push(("columns".into(), columns.join(",")));
            }
            for (key, value) in extras {
                if !pairs.iter().any(|(seen, _)| *seen == key) {
                    pairs.push((key.to_owned(), value));
                }
            }
            pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        tower_electric::protocol::query::encode_component(k),
                        tower_electric::protocol::query::encode_component(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_forwarded_request_is_the_policys_shape(query in client_query()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let outcome = runtime.block_on(get(&query, Some("tenant-7")));
        if outcome.forwarded.is_none() {
            prop_assert!(outcome.status.is_client_error(), "{} {}", outcome.status, outcome.body);
            return Ok(());
        }
        prop_assert_eq!(outcome.status, StatusCode::OK);
        let upstream = outcome.upstream();
        let items = TableName::parse("items").unwrap();
        let tenants = TableName::parse("tenants").unwrap();
        let table = upstream.table.clone().unwrap();
        prop_assert!(table == items || table == tenants);
        prop_assert!(upstream.extras.is_empty());
        prop_assert!(upstream.secret.is_none() && upstream.api_secret.is_none() && upstream.source_id.is_none());
        let (visible, policy_filter): (Vec<Identifier>, &str) = if table == items {
            (ids(&VISIBLE), "tenant_id = $1")
        } else {
            (ids(&["id", "name", "keys"]), "id = $1")
        };
        let columns = upstream.columns.clone().unwrap();
        prop_assert!(columns.iter().all(|c| visible.contains(c)), "{:?}", columns);
        let where_text = upstream.where_clause.clone().unwrap();
        let forwarded_where = parse_where(&where_text);
        let client_count = upstream.params.len() - 1;
        let expected_policy =
            parse_where(&policy_filter.replace("$1", &format!("${}", 1 + client_count)));
        if forwarded_where == expected_policy {
            prop_assert_eq!(client_count, 0);
        } else {
            let (client_part, policy_part) = split_and(&where_text);
            prop_assert_eq!(policy_part, expected_policy);
            for name in column_names(&client_part) {
                prop_assert!(visible.iter().any(|c| c.as_str() == name), "{} in {}", name, where_text);
            }
        }
        prop_assert_eq!(placeholder_numbers(&forwarded_where), (1..=upstream.params.len()).collect::<Vec<_>>());
        prop_assert_eq!(upstream.params.last().map(String::as_str), Some("tenant-7"));
    }
}

/// One service, many requests: the where memo must give each request exactly what composing it
/// afresh would, whatever the requests before it kept.
#[tokio::test]
async fn a_kept_where_serves_only_requests_with_the_same_inputs() {
    // The admin tenant may see (and filter on) `internal_note`; the others may not. The
    // auditor has another row filter.
    let policy = policy_fn(|parts: &Parts, _: &ShapeRequest| {
        let tenant = parts
            .extensions
            .get::<Principal>()
            .map(|p| p.tenant.clone());
        async move {
            let tenant = tenant.ok_or_else(Rejection::unauthorized)?;
            let mut columns = ids(&["id", "tenant_id", "title"]);
            if tenant == "admin" {
                columns.extend(ids(&["internal_note"]));
            }
            let filter = if tenant == "auditor" {
                RowFilter::parse("tenant_id = $1 OR tenant_id IS NULL").unwrap()
            } else {
                RowFilter::parse("tenant_id = $1").unwrap()
            };
            Ok(ShapeDefinition::new(TableName::parse("items").unwrap())
                .columns(columns)
                .row_filter(&filter, [tenant])
                .allow_client_where(true)
                .allow_subsets(true))
        }
    });
    let (service, log) = gateway(ShapeParamPolicyLayer::new(policy));
    let send = |query: &str, tenant: &str| {
        let service = service.clone();
        let log = Arc::clone(&log);
        let request = request(Method::GET, query, Some(tenant), "");
        async move {
            let response = service.oneshot(request).await.unwrap();
            let status = response.status();
            (status, log.lock().unwrap().pop())
        }
    };
    let upstream = |recorded: Option<Recorded>| {
        let uri: http::Uri = recorded.unwrap().uri.parse().unwrap();
        ShapeRequest::parse(uri.query().unwrap()).unwrap()
    };

    let note = "table=items&offset=-1&where=internal_note+%3D+%27x%27";
    let (status, forwarded) = send(note, "admin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream(forwarded).where_clause.as_deref(),
        Some("internal_note = 'x' AND tenant_id = $1")
    );
    // The same text from a tenant who may not see the column: refused, not served from the memo.
    let (status, forwarded) = send(note, "t1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(forwarded.is_none());

    let done = "table=items&offset=-1&where=id+%3D+1";
    for (tenant, filter) in [
        ("t1", "tenant_id = $1"),
        ("auditor", "(tenant_id = $1 OR tenant_id IS NULL)"),
        ("t2", "tenant_id = $1"),
    ] {
        let (status, forwarded) = send(done, tenant).await;
        assert_eq!(status, StatusCode::OK);
        let upstream = upstream(forwarded);
        assert_eq!(
            upstream.where_clause.as_deref(),
            Some(format!("id = 1 AND {filter}").as_str())
        );
        // The clause is shared; the values are each principal's own.
        assert_eq!(upstream.params, [tenant]);
    }

    // Same text, one more client param: the filter's placeholder moves.
    let with_param = "table=items&offset=-1&where=id+%3D+%241&params[1]=5";
    let (_, forwarded) = send(with_param, "t1").await;
    let (_, forwarded_again) = send(with_param, "t2").await;
    let (first, again) = (upstream(forwarded), upstream(forwarded_again));
    assert_eq!(
        first.where_clause.as_deref(),
        Some("id = $1 AND tenant_id = $2")
    );
    assert_eq!(first.where_clause, again.where_clause);
    assert_eq!(first.params, ["5", "t1"]);
    assert_eq!(again.params, ["5", "t2"]);
}
