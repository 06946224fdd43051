//! `POST` subset bodies through `ShapeParamPolicyLayer`: arbitrary bytes as the body.
//!
//! The layer refuses the body (a 4xx in Electric's error shape, nothing forwarded) or forwards
//! a `POST` whose body is a JSON object holding only `where, params, limit, offset, order_by`,
//! each checked (visible columns, placeholders matching `params`), with a true
//! `content-length`, and a query that is the policy's shape with no `subset__*` key.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http::Method;
use libfuzzer_sys::fuzz_target;
use tower_electric::policy::ShapeParamPolicyLayer;
use tower_electric_fuzz::{
    assert_client_safe, assert_order_by_safe, assert_policy_shape, assert_refusal, parse_expr,
    placeholders, policy, shape_request, through,
};

static LAYER: LazyLock<ShapeParamPolicyLayer> =
    LazyLock::new(|| ShapeParamPolicyLayer::new(policy()));

const BODY_KEYS: [&str; 5] = ["where", "params", "limit", "offset", "order_by"];

fuzz_target!(|data: &[u8]| {
    let request = shape_request(
        Method::POST,
        "/v1/shape?table=items&offset=-1",
        Bytes::copy_from_slice(data),
    )
    .expect("a fixed URI");
    let outcome = through(&*LAYER, request);
    let Some(forwarded) = &outcome.forwarded else {
        assert_refusal(&outcome);
        return;
    };
    assert!(outcome.status.is_success(), "{}", outcome.status);
    assert_eq!(forwarded.method, Method::POST);
    let upstream = assert_policy_shape(forwarded);
    assert!(
        !upstream.subset.is_present(),
        "subset params in the forwarded query: {:?}",
        forwarded.uri
    );
    assert_eq!(
        forwarded
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(forwarded.body.len().to_string().as_str())
    );
    assert_eq!(
        forwarded.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body: serde_json::Value = serde_json::from_slice(&forwarded.body)
        .unwrap_or_else(|error| panic!("forwarded body is not JSON: {error}"));
    let serde_json::Value::Object(object) = body else {
        panic!("forwarded body is not an object: {body}");
    };
    for (key, value) in &object {
        assert!(BODY_KEYS.contains(&key.as_str()), "key {key:?} forwarded");
        match key.as_str() {
            "limit" | "offset" => assert!(value.is_u64(), "{key}: {value}"),
            "where" | "order_by" => assert!(value.is_string(), "{key}: {value}"),
            _ => assert!(value.is_object(), "{key}: {value}"),
        }
    }
    let given = object
        .get("params")
        .and_then(serde_json::Value::as_object)
        .map_or(0, |params| {
            for (key, value) in params {
                assert!(
                    key.parse::<usize>()
                        .is_ok_and(|n| n >= 1 && n <= params.len()),
                    "{key}"
                );
                assert!(value.is_string(), "{value}");
            }
            params.len()
        });
    match object.get("where").and_then(serde_json::Value::as_str) {
        Some(text) => {
            let expr = parse_expr(text);
            assert_client_safe(&expr, text);
            assert_eq!(
                placeholders(&expr),
                (1..=given).collect::<Vec<_>>(),
                "{text}"
            );
        }
        None => assert_eq!(given, 0, "params forwarded without a where"),
    }
    if let Some(text) = object.get("order_by").and_then(serde_json::Value::as_str) {
        assert_order_by_safe(text);
    }
    if object.contains_key("limit") || object.contains_key("offset") {
        assert!(
            object.contains_key("order_by"),
            "limit or offset without order_by"
        );
    }
});
