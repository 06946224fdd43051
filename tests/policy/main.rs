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
use std::time::Duration;

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

#[path = "../support/attack_cases.rs"]
mod attack_cases;
#[path = "../support/where_clause.rs"]
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

// The tests, by idea.
mod caching;
mod composition;
mod definitions;
mod generated;
mod methods;
mod rebuild;
mod refusals;
mod subsets;
