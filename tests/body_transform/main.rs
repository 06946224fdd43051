#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! `BodyTransformLayer` and `RequestBodyTransformLayer` through `oneshot`, on bodies built
//! from Electric's response fixtures.

#[path = "../../examples/encryption/columns.rs"]
mod columns;

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};
use tower_electric::rejection::Rejection;
use tower_electric::testing::ChunkedBody;
use tower_electric::transform::{
    each_body, each_message, BoxError, EachBody, JsonBody, Message, MessageTransform, Operation,
    RequestBodyTransformLayer, ShapeTransform, TransformError,
};
use tower_electric::BodyTransformLayer;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/electric/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's request and its response with the given body bytes.
fn fixture_exchange(fixture: &Value, body: Bytes) -> (Request<Full<Bytes>>, Response<ChunkedBody>) {
    let request = &fixture["request"];
    let uri = format!(
        "{}?{}",
        request["path"].as_str().unwrap(),
        request["query"].as_str().unwrap()
    );
    let request = Request::builder()
        .method(request["method"].as_str().unwrap())
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = &fixture["response"];
    let mut builder = Response::builder().status(response["status"].as_u64().unwrap() as u16);
    for (name, value) in response["headers"].as_object().unwrap() {
        if name != "transfer-encoding" {
            builder = builder.header(name, value.as_str().unwrap());
        }
    }
    (request, builder.body(ChunkedBody::new([body])).unwrap())
}

/// Answers `response` once, recording the request's headers.
async fn exchange<T, B>(
    layer: BodyTransformLayer<T>,
    request: Request<Full<Bytes>>,
    response: Response<B>,
) -> (
    HeaderMap,
    Response<tower_electric::transform::ResponseBody<B, T::Messages>>,
)
where
    T: ShapeTransform,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let seen = Arc::new(Mutex::new(HeaderMap::new()));
    let response = Mutex::new(Some(response));
    let upstream = {
        let seen = Arc::clone(&seen);
        tower::service_fn(move |request: Request<Full<Bytes>>| {
            *seen.lock().unwrap() = request.headers().clone();
            let response = response.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let response = layer.layer(upstream).oneshot(request).await.unwrap();
    let headers = seen.lock().unwrap().clone();
    (headers, response)
}

async fn body_of<B>(response: Response<B>) -> Result<Bytes, B::Error>
where
    B: Body,
{
    response
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
}

fn identity() -> impl ShapeTransform {
    each_message(|_: &mut Message<'_>| Ok(()))
}

/// Reads every value without changing any.
fn reader() -> impl ShapeTransform {
    each_message(|message: &mut Message<'_>| {
        let _ = message.relation();
        let _ = message.key();
        let count = message.value().map_or(0, |row| row.iter().count());
        assert!(count > 0 || message.value().is_none());
        Ok(())
    })
}

fn uppercase(message: &mut Message<'_>) -> Result<(), BoxError> {
    for row in message.rows_mut() {
        for (_, value) in row.values_mut() {
            if let Some(text) = value {
                *text = Cow::Owned(text.to_uppercase());
            }
        }
    }
    Ok(())
}

/// Upper-cases values and drops messages whose key ends in `/"2"` or contains `drop`.
fn upper_and_drop(message: &mut Message<'_>) -> Result<(), BoxError> {
    if message
        .key()
        .is_some_and(|key| key.ends_with("/\"2\"") || key.contains("drop"))
    {
        message.discard();
        return Ok(());
    }
    uppercase(message)
}

fn is_control(message: &Value) -> bool {
    message["headers"].get("control").is_some() || message["headers"].get("event").is_some()
}

/// The expected result of `upper_and_drop` over a JSON array, computed on parsed values.
fn upper_and_drop_expected(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .filter(|message| {
            is_control(message)
                || message["key"]
                    .as_str()
                    .is_none_or(|key| !(key.ends_with("/\"2\"") || key.contains("drop")))
        })
        .map(|message| {
            let mut message = message.clone();
            if !is_control(&message) {
                for field in ["value", "old_value"] {
                    if let Some(row) = message.get_mut(field).and_then(Value::as_object_mut) {
                        for value in row.values_mut() {
                            if let Some(text) = value.as_str() {
                                *value = text.to_uppercase().into();
                            }
                        }
                    }
                }
            }
            message
        })
        .collect()
}

/// Calls a `RequestBodyTransformLayer` over an app that echoes what it received.
async fn write<T>(
    layer: RequestBodyTransformLayer<T>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Bytes, Option<String>)
where
    T: tower_electric::transform::WriteTransform + Send + Sync + 'static,
    T::Future: Send,
    T::Json: Send,
{
    let app = tower::service_fn(|request: Request<JsonBody>| async move {
        let length = request
            .headers()
            .get("content-length")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut response = Response::new(Full::new(body));
        if let Some(length) = length {
            response
                .headers_mut()
                .insert("x-seen-length", length.parse().unwrap());
        }
        Ok::<_, Infallible>(response)
    });
    let response = layer.layer(app).oneshot(request).await.unwrap();
    let status = response.status();
    let seen = response
        .headers()
        .get("x-seen-length")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, body_of(response).await.unwrap(), seen)
}

// The tests, by idea.
mod chunking;
mod encryption;
mod errors;
mod pass_through;
mod request_bodies;
mod rewriting;
mod sse;
mod untouched;
