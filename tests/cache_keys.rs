#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Cache keys: an HTTP cache between the gateway and Electric keys on the upstream URL, so
//! the real `ShapeParamPolicyLayer` + `ApiTokenLayer` (inject) must turn every spelling of one
//! allowed shape into the same upstream request, and different shapes (another tenant's above
//! all) into different URLs.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};
use tower_electric::policy::{RequestBody, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::SecretString;

#[derive(Clone)]
struct Principal(String);

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|principal| vec![principal.0.clone()])
}

/// The example gateway's `items` rule.
fn policy() -> ShapePolicy {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .build()
        .unwrap()
}

const VISIBLE: [&str; 4] = ["id", "tenant_id", "title", "done"];

/// What the inner service (Electric's side) received.
#[derive(Debug, Clone, PartialEq)]
struct Upstream {
    uri: String,
    headers: HeaderMap,
}

/// Sends one client request through policy and token injection; returns the status and what
/// reached the stub upstream.
async fn forward(query: &str, principal: &str, client_token: &str) -> (StatusCode, Vec<Upstream>) {
    let seen: Arc<Mutex<Vec<Upstream>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let stub = service_fn(move |request: Request<RequestBody<Full<Bytes>>>| {
        let recorder = Arc::clone(&recorder);
        async move {
            recorder.lock().unwrap().push(Upstream {
                uri: request.uri().to_string(),
                headers: request.headers().clone(),
            });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"[]"))))
        }
    });
    let secret = InjectSecret::new(SecretString::new("electric-secret")).unwrap();
    let service =
        ShapeParamPolicyLayer::new(policy()).layer(ApiTokenLayer::inject(secret).layer(stub));
    let mut request = Request::get(format!("/v1/shape?{query}"))
        .header("authorization", format!("Bearer {client_token}"))
        .header("cookie", format!("session={client_token}"))
        .header("accept", "*/*")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .extensions_mut()
        .insert(Principal(principal.to_owned()));
    let response = service.oneshot(request).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    (response.status(), seen)
}

/// Where in the log a client is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    Initial {
        expired_handle: Option<String>,
    },
    Log {
        offset: (u64, Option<u64>),
        handle: String,
    },
    Live {
        offset: (u64, Option<u64>),
        handle: String,
        cursor: String,
        sse: bool,
    },
}

/// One allowed shape request, as its meaning (not its spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    tenant: String,
    /// Indices into [`VISIBLE`]; `None` is all of them.
    columns: Option<BTreeSet<usize>>,
    /// A where template and its param values.
    filter: Option<(usize, Vec<String>)>,
    position: Position,
    changes_only: bool,
    replica_full: bool,
}

impl Shape {
    /// What Electric distinguishes: two shapes with equal keys are the same request to it.
    fn key(&self) -> Shape {
        let mut key = self.clone();
        if key
            .columns
            .as_ref()
            .is_some_and(|set| set.len() == VISIBLE.len())
        {
            key.columns = None;
        }
        key
    }
}

/// Client where texts Electric reads alike: spacing and keyword case differ.
const WHERES: [(usize, &[&str]); 3] = [
    (
        0,
        &[
            "done = false",
            "done=false",
            "  done   =  FALSE ",
            "done = false ",
        ],
    ),
    (1, &["id > $1", "id>$1", " id  >  $1"]),
    (
        2,
        &[
            "title = $1 AND done = true",
            "title=$1 and done=TRUE",
            "title = $1  AnD  done = true",
        ],
    ),
];

fn offset_text(offset: (u64, Option<u64>), rng: &mut Rng) -> String {
    // Leading zeros are the same number to Electric.
    let zeros = if rng.coin() { "0" } else { "" };
    match offset.1 {
        Some(op) => format!("{zeros}{}_{zeros}{op}", offset.0),
        None => format!("{zeros}{}_inf", offset.0),
    }
}

/// A small deterministic generator for spelling choices, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }
}

/// One raw query component (key or value) in a random but valid encoding: every byte either
/// as it is (when the URI allows it and it means nothing to form decoding) or percent-encoded
/// in either hex case, spaces as `+` or `%20`.
fn encode(text: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"-._~[]$,()*!':/@".contains(&byte);
        match byte {
            b' ' if rng.coin() => out.push('+'),
            _ if plain && rng.below(4) != 0 => out.push(char::from(byte)),
            _ if rng.coin() => out.push_str(&format!("%{byte:02X}")),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}

/// A column as a client may spell it: quoted, unquoted, or unquoted in capitals.
fn column_text(name: &str, rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("\"{name}\""),
        1 => name.to_ascii_uppercase(),
        _ => name.to_owned(),
    }
}

/// A random spelling of `shape`: every key and value in some accepted form, pairs Electric
/// ignores or the gateway drops added, shuffled, randomly encoded.
type Pairs = Vec<(String, Option<String>)>;

fn put(pairs: &mut Pairs, key: &str, value: &str) {
    pairs.push((key.to_owned(), Some(value.to_owned())));
}

fn spell(shape: &Shape, seed: u64) -> String {
    let rng = &mut Rng(seed | 1);
    let mut pairs: Pairs = Vec::new();
    put(
        &mut pairs,
        "table",
        rng.pick(&[
            "items",
            "public.items",
            "\"public\".\"items\"",
            "ITEMS",
            "Items",
            "public.\"items\"",
        ]),
    );
    let columns: Option<Vec<usize>> = match &shape.columns {
        None if rng.coin() => None,
        None => Some((0..VISIBLE.len()).collect()),
        Some(set) => Some(set.iter().copied().collect()),
    };
    if let Some(mut columns) = columns {
        // Any order, sometimes a repeat.
        for index in (1..columns.len()).rev() {
            columns.swap(index, rng.below(index + 1));
        }
        if rng.below(4) == 0 {
            columns.push(columns[0]);
        }
        let text: Vec<String> = columns
            .iter()
            .map(|&c| column_text(VISIBLE[c], rng))
            .collect();
        put(&mut pairs, "columns", &text.join(","));
    }
    if let Some((template, params)) = &shape.filter {
        put(&mut pairs, "where", rng.pick(WHERES[*template].1));
        for (index, value) in params.iter().enumerate() {
            let key = format!("params[{}]", index + 1);
            put(&mut pairs, &key, value);
        }
    }
    match &shape.position {
        Position::Initial { expired_handle } => {
            put(&mut pairs, "offset", "-1");
            if let Some(expired) = expired_handle {
                put(&mut pairs, "expired_handle", expired);
            }
            // A cursor outside live requests means nothing to Electric.
            if rng.coin() {
                put(&mut pairs, "cursor", "123");
            }
        }
        Position::Log { offset, handle } => {
            put(&mut pairs, "offset", &offset_text(*offset, rng));
            put(&mut pairs, "handle", handle);
            // Kept by the TS client after a 409; the handle already names the new shape.
            if rng.coin() {
                put(
                    &mut pairs,
                    "expired_handle",
                    &format!("old-{}", rng.below(3)),
                );
            }
            if rng.coin() {
                put(&mut pairs, "cursor", "");
            }
        }
        Position::Live {
            offset,
            handle,
            cursor,
            sse,
        } => {
            put(&mut pairs, "offset", &offset_text(*offset, rng));
            put(&mut pairs, "handle", handle);
            put(&mut pairs, "cursor", cursor);
            match rng.below(4) {
                0 => put(&mut pairs, "live", "true"),
                1 => put(&mut pairs, "live", "1"),
                2 => put(&mut pairs, "live", ""),
                _ => pairs.push(("live".into(), None)),
            }
            if *sse {
                put(
                    &mut pairs,
                    rng.pick(&["live_sse", "experimental_live_sse"]),
                    rng.pick(&["true", "1"]),
                );
            }
            if rng.coin() {
                put(
                    &mut pairs,
                    "expired_handle",
                    &format!("old-{}", rng.below(3)),
                );
            }
        }
    }
    match (shape.changes_only, rng.coin()) {
        (true, _) => put(&mut pairs, "log", "changes_only"),
        (false, true) => put(&mut pairs, "log", "full"),
        (false, false) => {}
    }
    match (shape.replica_full, rng.coin()) {
        (true, _) => put(&mut pairs, "replica", "full"),
        (false, true) => put(&mut pairs, "replica", "default"),
        (false, false) => {}
    }
    // What the gateway drops: credentials, a client's own queryable_columns, unknown keys.
    for (key, value) in [
        ("secret", "guess"),
        ("api_secret", "guess"),
        ("source_id", "src"),
        ("queryable_columns", "internal_note"),
        ("hint", "a b"),
        ("zz", ""),
    ] {
        if rng.coin() {
            put(&mut pairs, key, value);
        }
    }
    for index in (1..pairs.len()).rev() {
        pairs.swap(index, rng.below(index + 1));
    }
    pairs
        .iter()
        .map(|(key, value)| match value {
            Some(value) => format!("{}={}", encode(key, rng), encode(value, rng)),
            None => encode(key, rng),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn param_value() -> impl Strategy<Value = String> {
    // Values that need escaping, and look like the syntax around them.
    proptest::string::string_regex("[a-z0-9 &=+%#\"é\\[\\]$]{0,8}").unwrap()
}

fn tenant_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("acme".to_owned()),
        Just("globex".to_owned()),
        Just("a b&c=d".to_owned()),
        Just("acme ".to_owned()),
    ]
}

fn offset() -> impl Strategy<Value = (u64, Option<u64>)> {
    (0u64..4, proptest::option::of(0u64..3))
}

fn position() -> impl Strategy<Value = Position> {
    let handle = prop_oneof![Just("h-1".to_owned()), Just("h-2".to_owned())];
    prop_oneof![
        proptest::option::of(prop_oneof![Just("x-1".to_owned()), Just("x 2".to_owned())])
            .prop_map(|expired_handle| Position::Initial { expired_handle }),
        (offset(), handle.clone()).prop_map(|(offset, handle)| Position::Log { offset, handle }),
        (
            offset(),
            handle,
            prop_oneof![Just(String::new()), Just("3600".to_owned())],
            any::<bool>()
        )
            .prop_map(|(offset, handle, cursor, sse)| Position::Live {
                offset,
                handle,
                cursor,
                sse
            }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let columns = proptest::option::of(proptest::collection::btree_set(
        0..VISIBLE.len(),
        1..=VISIBLE.len(),
    ));
    let filter = proptest::option::of(prop_oneof![
        Just((0usize, Vec::new())),
        param_value().prop_map(|value| (1usize, vec![value])),
        param_value().prop_map(|value| (2usize, vec![value])),
    ]);
    (
        tenant_name(),
        columns,
        filter,
        position(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(tenant, columns, filter, position, changes_only, replica_full)| Shape {
                tenant,
                columns,
                filter,
                position,
                changes_only,
                replica_full,
            },
        )
}

/// `shape` with one thing changed (the tenant, most often): close neighbours are where a
/// shared URL would be a leak.
fn neighbour(shape: Shape) -> impl Strategy<Value = Shape> {
    let tenant = {
        let shape = shape.clone();
        tenant_name()
            .prop_filter("another tenant", {
                let current = shape.tenant.clone();
                move |name| *name != current
            })
            .prop_map(move |tenant| Shape {
                tenant,
                ..shape.clone()
            })
    };
    let other = {
        let shape = shape.clone();
        (0usize..4, position(), param_value()).prop_map(move |(what, position, value)| {
            let mut next = shape.clone();
            match what {
                0 => next.position = position,
                1 => next.changes_only = !next.changes_only,
                2 => next.replica_full = !next.replica_full,
                _ => next.filter = Some((1, vec![value])),
            }
            next
        })
    };
    prop_oneof![3 => tenant, 1 => other]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// The upstream request one spelling produced; panics (failing the case) unless exactly one
/// request went upstream for a 200.
fn upstream_of(
    runtime: &tokio::runtime::Runtime,
    shape: &Shape,
    seed: u64,
    token: &str,
) -> Upstream {
    let query = spell(shape, seed);
    let (status, seen) = runtime.block_on(forward(&query, &shape.tenant, token));
    assert_eq!(status, StatusCode::OK, "{query}");
    assert_eq!(seen.len(), 1, "{query}");
    seen.into_iter().next().unwrap()
}

/// The headers a cache tier would see: the layers' output minus the client credentials that
/// `ElectricUpstream` does not forward (tests/gateway/ checks that it does not).
fn cache_relevant(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove("authorization");
    headers.remove("cookie");
    headers
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_shape_in_any_spelling_is_one_upstream_request(
        shape in shape(),
        first in any::<u64>(),
        second in any::<u64>(),
    ) {
        let runtime = runtime();
        let a = upstream_of(&runtime, &shape, first, "alice-1");
        let b = upstream_of(&runtime, &shape, second, "alice-2");
        prop_assert_eq!(&a.uri, &b.uri, "{} / {}", spell(&shape, first), spell(&shape, second));
        prop_assert_eq!(cache_relevant(&a.headers), cache_relevant(&b.headers));
        prop_assert!(a.uri.contains("secret=electric-secret"), "{}", a.uri);
    }

    #[test]
    fn different_shapes_never_share_a_url(
        (shape, other) in shape().prop_flat_map(|shape| (Just(shape.clone()), neighbour(shape))),
        first in any::<u64>(),
        second in any::<u64>(),
    ) {
        let runtime = runtime();
        let a = upstream_of(&runtime, &shape, first, "t-1");
        let b = upstream_of(&runtime, &other, second, "t-2");
        prop_assert_eq!(
            shape.key() == other.key(),
            a.uri == b.uri,
            "{:?} vs {:?}: {} / {}", shape, other, a.uri, b.uri
        );
        if shape.tenant != other.tenant {
            prop_assert_ne!(&a.uri, &b.uri);
        }
    }
}

#[tokio::test]
async fn cache_busters_electric_reads_or_needs_pass_and_the_others_do_not() {
    // After a 409 the refetch from -1 keeps expired_handle (it misses the cached answer that
    // names the old shape); a stale-retry's random cache-buster passes as it is.
    let (_, seen) = forward(
        "table=items&offset=-1&handle=h2&expired_handle=h1&cache-buster=r4nd",
        "acme",
        "t",
    )
    .await;
    let uri = &seen[0].uri;
    assert!(uri.contains("expired_handle=h1"), "{uri}");
    assert!(uri.contains("cache-buster=r4nd"), "{uri}");
    assert!(uri.contains("handle=h2"), "{uri}");
    // Later requests: the handle names the new shape; expired_handle would split the cache.
    let (_, seen) = forward(
        "table=items&offset=2_0&handle=h2&expired_handle=h1&live=true&cursor=77",
        "acme",
        "t",
    )
    .await;
    let uri = &seen[0].uri;
    assert!(!uri.contains("expired_handle"), "{uri}");
    assert!(uri.contains("cursor=77"), "{uri}");
    // A cursor outside a live request is dropped.
    let (_, seen) = forward("table=items&offset=2_0&handle=h2&cursor=77", "acme", "t").await;
    assert!(!seen[0].uri.contains("cursor"), "{}", seen[0].uri);
}

#[tokio::test]
async fn a_missing_log_is_held_to_the_policy_as_the_full_log_electric_serves() {
    let only_changes = ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .row_filter("tenant_id = $1", tenant)
                .log_modes(&[tower_electric::protocol::LogMode::ChangesOnly]),
        )
        .build()
        .unwrap();
    let stub = service_fn(|_request: Request<RequestBody<Full<Bytes>>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let service = ShapeParamPolicyLayer::new(only_changes).layer(stub);
    for (query, status) in [
        ("table=items&offset=-1", StatusCode::FORBIDDEN),
        ("table=items&offset=-1&log=full", StatusCode::FORBIDDEN),
        ("table=items&offset=-1&log=changes_only", StatusCode::OK),
    ] {
        let mut request = Request::get(format!("/v1/shape?{query}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        request.extensions_mut().insert(Principal("acme".into()));
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{query}");
    }
}
