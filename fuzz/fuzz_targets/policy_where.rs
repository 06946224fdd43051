//! Client `where`, `subset__where` and `subset__order_by` through `ShapeParamPolicyLayer`.
//!
//! The input's first line picks what the rest is (the text without a first line is a client
//! `where` with no values):
//! - `w<n>`: a client `where` with `n` values `params[1..n]`;
//! - `s<n>`: a `subset__where` with `n` values in `subset__params`;
//! - `o`: a `subset__order_by` (with `subset__limit`);
//! - `q`: the client's whole raw query string.
//!
//! Whatever the text, the layer refuses it (a 4xx in Electric's error shape, nothing
//! forwarded) or forwards the policy's table and columns with a where whose Postgres tree is
//! that of `(<client>) AND (tenant_id = $n)`, placeholders exactly `$1..$n` for
//! `params[1..n]`, the row filter's value last, and a client side (and subset) that reads only
//! visible columns, calls only harmless functions and holds no subquery. A forwarded client
//! `where` is the client's own expression, re-parsed by Postgres's parser (libpg_query) to the
//! same tree; so is a forwarded `subset__where`.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower_electric::policy::ShapeParamPolicyLayer;
use tower_electric::protocol::query::encode_component;
use tower_electric_fuzz::{
    assert_policy_shape, assert_refusal, parse_expr, policy, shape_request, split_and, through,
};

static LAYER: LazyLock<ShapeParamPolicyLayer> =
    LazyLock::new(|| ShapeParamPolicyLayer::new(policy()));

/// A value for `$i`, with characters that must stay data.
fn value(index: usize) -> String {
    format!("v{index} ' $1 & =")
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (mode, text) = input.split_once('\n').unwrap_or(("w0", input));
    let count = mode
        .get(1..2)
        .and_then(|digit| digit.parse::<usize>().ok())
        .unwrap_or(0);
    let text_param = encode_component(text);
    let query = match mode.as_bytes().first() {
        Some(b'q') => text.to_owned(),
        Some(b's') => {
            let params: serde_json::Map<String, serde_json::Value> = (1..=count)
                .map(|index| (index.to_string(), value(index).into()))
                .collect();
            let params = serde_json::Value::Object(params).to_string();
            format!(
                "table=items&offset=-1&subset__where={text_param}&subset__params={}",
                encode_component(&params)
            )
        }
        Some(b'o') => {
            format!("table=items&offset=-1&subset__order_by={text_param}&subset__limit=1")
        }
        _ => {
            let mut query = format!("table=items&offset=-1&where={text_param}");
            for index in 1..=count {
                query.push_str(&format!(
                    "&params[{index}]={}",
                    encode_component(&value(index))
                ));
            }
            query
        }
    };
    let Some(request) = shape_request(Method::GET, &format!("/v1/shape?{query}"), Bytes::new())
    else {
        // Not a URI at all: a server never hands the layer such a request.
        return;
    };
    let outcome = through(&*LAYER, request);
    let Some(forwarded) = &outcome.forwarded else {
        assert_refusal(&outcome);
        return;
    };
    assert!(outcome.status.is_success(), "{}", outcome.status);
    assert!(forwarded.body.is_empty(), "a GET forwarded a body");
    let upstream = assert_policy_shape(forwarded);
    if let (Some(b's'), Some(subset_where)) = (
        mode.as_bytes().first(),
        upstream.subset.where_clause.as_deref(),
    ) {
        assert_eq!(parse_expr(subset_where), parse_expr(text), "{text:?}");
    }
    if matches!(mode.as_bytes().first(), Some(b'w') | None) {
        // What was checked is what is sent: the client's expression, as the client wrote it.
        let where_text = upstream.where_clause.as_deref().unwrap_or_default();
        let (client, _) = split_and(where_text);
        assert_eq!(client, parse_expr(text), "{text:?} → {where_text:?}");
    }
});
