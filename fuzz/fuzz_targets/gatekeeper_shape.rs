//! A token's shape claim and a client's query through `ShapeParamPolicyLayer` with a
//! `GatekeeperPolicy`: the first line is the claim (JSON; anything else is taken as the
//! claim's `where` on `items`), the rest the query.
//!
//! The layer refuses (a 4xx in Electric's error shape, nothing forwarded) or forwards exactly
//! the shape the client asked for, compared as Electric reads both: the same table, the same
//! set of columns, a where that parses to the client's own tree, the same params. Whatever the
//! claim holds, nothing is forwarded that the client did not ask for.
#![no_main]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_electric::claims::JwtClaims;
use tower_electric::policy::{GatekeeperPolicy, ShapeParamPolicyLayer};
use tower_electric::protocol::{ShapeRequest, SqlExpr, SqlLimits};
use tower_electric_fuzz::{assert_refusal, through, upstream_of};

static LAYER: LazyLock<ShapeParamPolicyLayer> =
    LazyLock::new(|| ShapeParamPolicyLayer::new(GatekeeperPolicy::new()));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (claim, query) = text.split_once('\n').unwrap_or((text, ""));
    let shape = serde_json::from_str::<serde_json::Value>(claim).unwrap_or_else(
        |_| serde_json::json!({"table": "items", "where": claim, "params": [], "columns": null}),
    );
    let Ok(claims) = JwtClaims::new(serde_json::json!({"sub": "fuzz", "shape": shape})) else {
        return;
    };
    let Ok(mut request) = Request::get(format!("/v1/shape?{query}")).body(Full::new(Bytes::new()))
    else {
        return;
    };
    request.extensions_mut().insert(claims);
    // What the layer sees: a `#` in the text starts a fragment, which no server hands on.
    let query = request.uri().query().unwrap_or_default().to_owned();
    let outcome = through(&*LAYER, request);
    let Some(forwarded) = &outcome.forwarded else {
        assert_refusal(&outcome);
        return;
    };
    assert!(outcome.status.is_success(), "{}", outcome.status);
    let client = ShapeRequest::parse(&query).expect("a forwarded request's query parsed");
    let upstream = upstream_of(forwarded);
    assert_eq!(upstream.table, client.table, "table");
    let set = |request: &ShapeRequest| {
        request
            .columns
            .as_ref()
            .map(|columns| columns.iter().cloned().collect::<BTreeSet<_>>())
    };
    assert_eq!(set(&upstream), set(&client), "columns");
    assert_eq!(upstream.params, client.params, "params");
    let parse = |text: &str| {
        SqlExpr::parse(text, SqlLimits::new(256 * 1024, 512))
            .unwrap_or_else(|error| panic!("{text:?} does not parse: {error}"))
    };
    // The client's tree as the crate writes it for Postgres (string literals with quotes as
    // `E'...'`, say), read back: what its upstream text must read as.
    let sent = upstream.where_clause.as_deref().map(parse);
    let asked = client
        .where_clause
        .as_deref()
        .map(|text| parse(&parse(text).to_string()));
    assert_eq!(sent, asked, "where");
    assert!(!upstream.subset.is_present(), "a subset was forwarded");
});
