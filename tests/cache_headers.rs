#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Headers for an HTTP cache between the gateway and Electric, through the example gateway's
//! whole router on TCP against the stand-in: what goes upstream carries nothing per client
//! (so a cache can answer it for everyone allowed the shape), Electric's caching headers are
//! what the upstream answer carries, the private/Vary rewrite is only on what the client
//! gets, and a client's `if-none-match` reaches Electric and comes back as a 304.

#[path = "../examples/gateway/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[allow(dead_code)]
#[path = "../examples/encryption/demo.rs"]
mod demo;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_electric::testing::{ElectricStandIn, RecordedRequest};

use demo::Demo;

const SECRET: &str = "electric-secret";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("no answer (a guard, not a timing assertion)")
    .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .map(|value| value.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} in {:?}", answer.headers))
}

fn shape_requests(database: &ElectricStandIn) -> Vec<RecordedRequest> {
    database
        .requests()
        .into_iter()
        .filter(|request| request.path == "/v1/shape")
        .collect()
}

/// The recorded request's path and query as sent (the query re-encoded from its pairs).
fn target(request: &RecordedRequest) -> String {
    format!(
        "{}?{}",
        request.path,
        demo::query(
            &request
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>()
        )
    )
}

async fn demo() -> Demo {
    let database = ElectricStandIn::builder()
        .secret(SECRET)
        .with_demo_data()
        .build();
    Demo::start(database, SECRET, "127.0.0.0/8").await.unwrap()
}

#[tokio::test]
async fn upstream_requests_carry_nothing_per_client_and_only_clients_get_private() {
    let demo = demo().await;
    let gateway = &demo.gateway;
    // Two sessions of one tenant, spelling one shape differently, each with its own cookie.
    let first = get(
        &format!("{gateway}/v1/shape?table=items&offset=-1&columns=id,title&log=full"),
        &[
            ("authorization", "Bearer alice-token"),
            ("cookie", "session=one"),
            ("user-agent", "client"),
        ],
    )
    .await;
    let second = get(
        &format!("{gateway}/v1/shape?%74able=public.items&columns=%22title%22,%22id%22&offset=-1"),
        &[
            ("authorization", "Bearer alice-token"),
            ("cookie", "session=two"),
            ("user-agent", "client"),
        ],
    )
    .await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );

    let upstream = shape_requests(&demo.database);
    assert_eq!(upstream.len(), 2, "{upstream:#?}");
    // Byte for byte the same request: one cache entry serves both.
    assert_eq!(upstream[0].query, upstream[1].query);
    assert_eq!(upstream[0].headers, upstream[1].headers);
    for name in ["authorization", "cookie"] {
        assert!(
            !upstream[0].headers.contains_key(name),
            "{name} went upstream"
        );
    }

    // What Electric answers that request with, as a cache tier in between would store it:
    // public, with its validators and electric-* headers.
    let stored = get(
        &format!("{}{}", demo.electric.url(), target(&upstream[0])),
        &[],
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK);
    assert!(header(&stored, "cache-control").starts_with("public"));
    assert!(header(&stored, "cache-control").contains("s-maxage"));
    // The client gets the same validators and electric-* headers, made private for it.
    for name in ["etag", "electric-handle", "electric-offset"] {
        assert_eq!(header(&first, name), header(&stored, name), "{name}");
    }
    assert!(first.headers.contains_key("electric-schema"));
    assert_eq!(
        header(&first, "cache-control"),
        "private, max-age=60, stale-while-revalidate=60"
    );
    assert!(header(&first, "vary").contains("authorization"));
}

#[tokio::test]
async fn if_none_match_reaches_electric_and_its_304_comes_back() {
    let demo = demo().await;
    let url = format!("{}/v1/shape?table=items&offset=-1", demo.gateway);
    let alice = [("authorization", "Bearer alice-token")];
    let first = get(&url, &alice).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.body.is_empty());
    let etag = header(&first, "etag").to_owned();

    let again = get(
        &url,
        &[
            ("authorization", "Bearer alice-token"),
            ("if-none-match", &etag),
        ],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(header(&again, "etag"), etag);
    assert!(header(&again, "cache-control").starts_with("private"));

    let upstream = shape_requests(&demo.database);
    assert_eq!(upstream.len(), 2);
    assert_eq!(
        upstream[1]
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap()),
        Some(etag.as_str())
    );
    // A validator of the other tenant's answer is no use to this one: a full answer.
    let bob = get(
        &url,
        &[
            ("authorization", "Bearer bob-token"),
            ("if-none-match", &etag),
        ],
    )
    .await;
    assert_eq!(bob.status, StatusCode::OK);
    assert_ne!(header(&bob, "etag"), etag);
}
