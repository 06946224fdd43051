//! Electric's shape request as types: parsing, validation and canonical rendering.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use tower_electric::protocol::{
    Identifier, LogMode, LogOffset, Offset, ProtocolError, Replica, ShapeRequest, SubsetParams,
    TableName,
};
use tower_electric::rejection::Rejection;
use tower_electric::SecretString;

fn parse(query: &str) -> ShapeRequest {
    ShapeRequest::parse(query).unwrap_or_else(|error| panic!("{query}: {error}"))
}

fn refusal(query: &str) -> ProtocolError {
    match ShapeRequest::parse(query) {
        Ok(request) => panic!("{query} was accepted: {request:?}"),
        Err(error) => error,
    }
}

#[test]
fn table_spellings_that_name_the_same_table() {
    let expected = parse("table=public.items&offset=-1").table;
    for spelling in [
        "items",
        "public.items",
        "%22public%22.%22items%22",
        "Items",
        "\"public\".items",
    ] {
        assert_eq!(
            parse(&format!("table={spelling}&offset=-1")).table,
            expected,
            "{spelling}"
        );
    }
    let quoted_capital = parse("table=%22Items%22&offset=-1").table;
    assert_ne!(quoted_capital, expected, "\"Items\" is another table");
    assert_eq!(quoted_capital.unwrap().name().as_str(), "Items");
}

#[test]
fn quoted_and_bare_column_lists() {
    let quoted = parse("table=items&offset=-1&columns=%22id%22%2C%22Title%22")
        .columns
        .unwrap();
    let bare = parse("table=items&offset=-1&columns=id,title")
        .columns
        .unwrap();
    assert_eq!(quoted[0], bare[0]);
    assert_eq!(quoted[1].as_str(), "Title");
    assert_eq!(bare[1].as_str(), "title");
    assert_ne!(quoted, bare);
}

#[test]
fn duplicated_keys_are_refused_naming_the_key() {
    for (query, key) in [
        ("table=items&table=secrets&offset=-1", "table"),
        ("table=items&offset=-1&secret=a&secret=b", "secret"),
        ("table=items&offset=-1&where=true&where=false", "where"),
        (
            "table=items&offset=-1&params[1]=a&params%5B1%5D=b",
            "params[1]",
        ),
    ] {
        assert_eq!(
            refusal(query),
            ProtocolError::DuplicateKey { key: key.into() },
            "{query}"
        );
    }
}

#[test]
fn params_must_be_numbered_without_gaps() {
    let error = refusal("table=items&offset=-1&params[1]=a&params[3]=c");
    assert_eq!(error.field(), "params");
    for bad in [
        "params[0]=a",
        "params[01]=a",
        "params[x]=a",
        "params[]=a",
        "params=%5B%22a%22%5D",
    ] {
        assert_eq!(
            refusal(&format!("table=t&offset=-1&{bad}")).field(),
            "params",
            "{bad}"
        );
    }
    let ok = parse("table=items&offset=-1&params[2]=b&params%5B1%5D=a");
    assert_eq!(ok.params, ["a", "b"]);
}

#[test]
fn live_is_true_for_anything_but_false() {
    for (value, live) in [
        ("live=0", true),
        ("live", true),
        ("live=", true),
        ("live=true", true),
        ("live=false", false),
        ("live=FALSE", true),
    ] {
        let request = parse(&format!("table=items&offset=0_0&handle=h&{value}"));
        assert_eq!(request.live, live, "{value}");
    }
}

#[test]
fn electrics_cross_field_rules() {
    for (query, field, message) in [
        (
            "table=users&offset=-1&live=true",
            "live",
            "can't be true when offset == -1",
        ),
        (
            "table=users&offset=now&live=0",
            "live",
            "can't be true when offset == -1",
        ),
        (
            "table=users&offset=0_0",
            "handle",
            "can't be blank when offset != -1",
        ),
        (
            "table=users&offset=0_0&handle=h&live_sse=true",
            "live_sse",
            "can't be true unless live is also true",
        ),
        ("table=users&offset=bababa", "offset", "has invalid format"),
        (
            "table=users&offset=-1&subset__limit=10",
            "subset__order_by",
            "is required when limit or offset is given",
        ),
    ] {
        let error = refusal(query);
        assert_eq!(
            (error.field(), error.detail().as_str()),
            (field, message),
            "{query}"
        );
    }
    assert_eq!(refusal("table=users").field(), "offset");
    assert!(parse("table=users&offset=0_inf&handle=h&live&experimental_live_sse").live_sse);
}

#[test]
fn identifiers_over_63_bytes_are_refused() {
    let long = "a".repeat(64);
    assert_eq!(refusal(&format!("table={long}&offset=-1")).field(), "table");
    assert_eq!(
        refusal(&format!("table=t&offset=-1&columns=id,{long}")).field(),
        "columns"
    );
    assert!(ShapeRequest::parse(&format!("table={}&offset=-1", "a".repeat(63))).is_ok());
}

#[test]
fn nested_forms_of_protocol_keys_are_refused_and_unknown_keys_kept_apart() {
    for key in ["secret[]", "secret%5B%5D", "table[x]", "where[0]"] {
        assert!(
            matches!(
                refusal(&format!("table=t&offset=-1&{key}=x")),
                ProtocolError::NestedKey { .. }
            ),
            "{key}"
        );
    }
    let request = parse("table=t&offset=-1&org=acme&filter[a]=1");
    assert_eq!(request.extras.get("org"), Some("acme"));
    assert_eq!(request.extras.get("filter[a]"), Some("1"));
}

#[test]
fn credentials_are_parsed_and_redacted_in_debug() {
    let request = parse("table=t&offset=-1&secret=hunter2&api_secret=hunter3&source_id=src");
    assert_eq!(
        request.secret.as_ref().map(SecretString::expose),
        Some("hunter2")
    );
    let debug = format!("{request:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("hunter3"),
        "{debug}"
    );
}

#[test]
fn subset_params_parse_from_json() {
    let request = parse(
        "table=t&offset=-1&subset__where=priority+%3D+%241&subset__params=%7B%221%22%3A%22high%22%7D&subset__order_by=id&subset__limit=20",
    );
    assert_eq!(request.subset.params, Some(vec!["high".to_owned()]));
    assert_eq!(request.subset.limit, Some(20));
    for bad in [
        "%5B%22a%22%5D",
        "%7B%222%22%3A%22a%22%7D",
        "%7B%221%22%3A5%7D",
        "nope",
    ] {
        assert_eq!(
            refusal(&format!("table=t&offset=-1&subset__params={bad}")).field(),
            "subset__params"
        );
    }
}

#[test]
fn protocol_errors_become_400_naming_the_field_and_long_queries_414() {
    let rejection = Rejection::from(refusal("table=t&offset=-1&table=u"));
    assert_eq!(rejection.status(), 400);
    assert_eq!(
        rejection.body_json().to_string(),
        r#"{"errors":{"table":["given more than once"]},"message":"Invalid request"}"#
    );
}

#[test]
fn many_distinct_keys_decode_and_a_repeat_among_them_is_found() {
    let keys: Vec<String> = (0..4000).map(|index| format!("k{index}=v")).collect();
    let query = keys.join("&");
    let pairs = tower_electric::protocol::QueryPairs::parse(&query).unwrap();
    assert_eq!(pairs.len(), 4000);
    let repeated = format!("{query}&k1234=again");
    assert_eq!(
        tower_electric::protocol::QueryPairs::parse(&repeated).unwrap_err(),
        ProtocolError::DuplicateKey {
            key: "k1234".into()
        }
    );
}

#[test]
fn over_long_query_is_a_414() {
    let error = tower_electric::protocol::QueryPairs::parse_limited("table=abcdef", 4).unwrap_err();
    assert_eq!(error.field(), "query");
    assert_eq!(Rejection::from(error).status(), 414);
}

#[test]
fn canonical_rendering_is_sorted_and_encoded() {
    let request = parse("where=id+%3E+%241&table=Items&offset=0_inf&handle=h-1&live=0&params%5B1%5D=a+b&cursor=&columns=%22id%22,Title&zz=1&aa=2");
    assert_eq!(
        request.to_query_string(),
        "columns=id%2Ctitle&cursor=&handle=h-1&live=true&offset=0_inf&params[1]=a%20b&table=public.items&where=id%20%3E%20%241&aa=2&zz=1"
    );
}

/// Found by the `query_roundtrip` fuzz target: extras given out of key order rendered sorted,
/// so the rendering parsed back to a request that was not equal to the one rendered.
#[test]
fn extras_in_any_order_round_trip() {
    let request = parse("table=t&offset=-1&org=acme&filter[a]=1");
    let rendered = request.to_query_string();
    assert_eq!(rendered, "offset=-1&table=public.t&filter[a]=1&org=acme");
    assert_eq!(parse(&rendered), request);
    assert_eq!(
        request.extras.iter().collect::<Vec<_>>(),
        [("filter[a]", "1"), ("org", "acme")]
    );
}

// ---- round trip over generated requests ----

fn identifier() -> impl Strategy<Value = Identifier> {
    prop_oneof![
        "[a-z_][a-z0-9_$]{0,20}",
        "[A-Za-z ._,\"é-]{1,20}",
        "[\\PC]{1,12}",
    ]
    .prop_filter_map("valid identifier", |name| Identifier::new(name).ok())
}

fn text() -> impl Strategy<Value = String> {
    "[\\PC&=+%#; \"']{0,24}"
}

fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![
        Just(Offset::BeforeAll),
        Just(Offset::Now),
        (any::<u64>(), proptest::option::of(any::<u64>()))
            .prop_map(|(tx, op)| Offset::At(LogOffset { tx, op })),
    ]
}

prop_compose! {
    fn shape_request()(
        table in proptest::option::of((identifier(), identifier()).prop_map(|(s, n)| TableName::new(s, n))),
        offset in offset(),
        handle in proptest::option::of("[a-z0-9-]{1,20}"),
        live in any::<bool>(),
        live_sse in any::<bool>(),
        cursor in proptest::option::of(text()),
        where_clause in proptest::option::of(text()),
        params in proptest::collection::vec(text(), 0..4),
        columns in proptest::option::of(proptest::collection::vec(identifier(), 1..4)),
        queryable_columns in proptest::option::of(proptest::collection::vec(identifier(), 1..4)),
        replica in proptest::option::of(prop_oneof![Just(Replica::Default), Just(Replica::Full)]),
        log in proptest::option::of(prop_oneof![Just(LogMode::Full), Just(LogMode::ChangesOnly)]),
        subset_where in proptest::option::of(text()),
        subset_params in proptest::option::of(proptest::collection::vec(text(), 0..3)),
        subset_limit in proptest::option::of(any::<u64>()),
        expired_handle in proptest::option::of(text()),
        cache_buster in proptest::option::of(text()),
        secret in proptest::option::of(text()),
        extras in proptest::collection::btree_map("x_[a-z]{1,6}", text(), 0..3),
    ) -> ShapeRequest {
        let mut request = ShapeRequest::default();
        request.table = table;
        request.offset = offset;
        // Keep the generated request valid under Electric's cross-field rules.
        request.handle = if offset.is_start() { handle } else { Some(handle.unwrap_or_else(|| "h".into())) };
        request.live = live && !offset.is_start();
        request.live_sse = live_sse && request.live;
        request.cursor = cursor;
        request.where_clause = where_clause;
        request.params = params;
        request.columns = columns;
        request.queryable_columns = queryable_columns;
        request.replica = replica;
        request.log = log;
        let mut subset = SubsetParams::default();
        subset.where_clause = subset_where;
        subset.params = subset_params;
        subset.limit = subset_limit;
        subset.order_by = subset_limit.map(|_| "id".to_owned());
        request.subset = subset;
        request.expired_handle = expired_handle;
        request.cache_buster = cache_buster;
        request.secret = secret.map(SecretString::new);
        request.extras = extras.into_iter().collect();
        request
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_of_render_is_the_same_request(request in shape_request()) {
        let rendered = request.to_query_string();
        let parsed = ShapeRequest::parse(&rendered).map_err(|error| TestCaseError::fail(format!("{rendered}: {error}")))?;
        prop_assert_eq!(&parsed, &request, "{}", rendered);
        prop_assert_eq!(parsed.to_query_string(), rendered);
    }

    #[test]
    fn parse_never_panics_and_renders_what_it_accepts(raw in "[a-z_%0-9A-F=&+\\[\\]\"., -]{0,80}") {
        if let Ok(request) = ShapeRequest::parse(&raw) {
            let again = ShapeRequest::parse(&request.to_query_string()).unwrap();
            prop_assert_eq!(again, request);
        }
    }
}
