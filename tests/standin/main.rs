//! The Electric stand-in (`testing` feature) against Electric's fixtures and protocol.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_electric::testing::{Column, ElectricStandIn, Row, StandInBody, TableSchema};

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/electric/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A guard against a hung test, not a timing assertion.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the stand-in did not answer")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// Every header the fixture lists is present, with the same value unless `illustrative`
    /// (handles, offsets, cursors, etags).
    fn assert_has_headers(&self, expected: &Value, illustrative: &[&str]) {
        let expected = expected.as_object().unwrap();
        for (name, value) in expected {
            if name == "transfer-encoding" {
                continue;
            }
            let actual = self.header(name);
            if !illustrative.contains(&name.as_str()) {
                assert_eq!(actual, value.as_str().unwrap(), "header {name}");
            }
        }
    }

    /// [`Answer::assert_has_headers`], and no Electric or caching header the fixture does not
    /// list (the fixtures list those completely; CORS and content headers not always).
    fn assert_headers_like(&self, expected: &Value, illustrative: &[&str]) {
        self.assert_has_headers(expected, illustrative);
        let expected = expected.as_object().unwrap();
        for name in self.headers.keys() {
            let name = name.as_str();
            let protocol = name.starts_with("electric-")
                || ["cache-control", "etag", "surrogate-control"].contains(&name);
            if protocol && name != "electric-server" {
                assert!(
                    expected.contains_key(name),
                    "unexpected header {name}: {:?}",
                    self.headers[name]
                );
            }
        }
    }
}

async fn answer(response: http::Response<StandInBody>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn send(standin: &ElectricStandIn, request: Request<Full<Bytes>>) -> Answer {
    answer(bounded(standin.clone().oneshot(request)).await.unwrap()).await
}

async fn get(standin: &ElectricStandIn, uri: &str) -> Answer {
    send(standin, Request::get(uri).body(Full::default()).unwrap()).await
}

async fn post(standin: &ElectricStandIn, uri: &str, body: &str) -> Answer {
    let request = Request::post(uri)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(standin, request).await
}

fn items_table() -> TableSchema {
    TableSchema::new("items")
        .column(Column::new("id", "int8").primary_key())
        .column(Column::new("title", "text"))
        .column(Column::new("done", "bool").not_null())
}

/// `items` with rows 1 (a, done), 2 (b), 3 (c).
fn items() -> ElectricStandIn {
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .build();
    standin.create_table(items_table()).unwrap();
    for (id, title, done) in [("1", "a", "true"), ("2", "b", "false"), ("3", "c", "false")] {
        standin
            .insert("items", [("id", id), ("title", title), ("done", done)])
            .unwrap();
    }
    standin
}

async fn handle_of(standin: &ElectricStandIn, query: &str) -> String {
    let answer = get(standin, &format!("/v1/shape?offset=-1&{query}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.header("electric-handle").to_owned()
}

fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["headers"]["operation"].is_string())
        .map(|m| m["value"]["id"].as_str().unwrap().to_owned())
        .collect()
}

// The tests, by what they exercise.
mod auth_and_routes;
mod live;
#[cfg(feature = "postgres")]
mod postgres_mode;
mod recording_and_tcp;
mod snapshot;
mod sse;
mod where_and_subsets;
