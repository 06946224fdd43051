#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! `BodyTransformLayer` and `RequestBodyTransformLayer` through `oneshot`, on bodies built
//! from Electric's response fixtures.

#[path = "../examples/encryption/columns.rs"]
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

// ---- helpers -------------------------------------------------------------------------------

/// A body fed frame by frame through a channel.
struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

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

const SHAPE_FIXTURES: [&str; 5] = [
    "200_initial_offset_-1.json",
    "200_live_update_replica_full.json",
    "200_live_timeout_no_changes.json",
    "200_offset_now.json",
    "200_subset_snapshot.json",
];

// ---- byte-exact pass-through ---------------------------------------------------------------

#[tokio::test]
async fn identity_and_read_only_transforms_return_the_fixtures_bytes() {
    for name in SHAPE_FIXTURES {
        let fixture = fixture(name);
        let body = &fixture["response"]["body"];
        for rendering in [
            serde_json::to_string(body).unwrap(),
            serde_json::to_string_pretty(body).unwrap(),
        ] {
            let bytes = Bytes::from(rendering);
            let (request, response) = fixture_exchange(&fixture, bytes.clone());
            let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
            assert_eq!(out.status(), StatusCode::OK);
            assert_eq!(body_of(out).await.unwrap(), bytes, "{name}");

            let (request, response) = fixture_exchange(&fixture, bytes.clone());
            let (_, out) = exchange(BodyTransformLayer::new(reader()), request, response).await;
            assert_eq!(body_of(out).await.unwrap(), bytes, "{name}");
        }
    }
}

#[tokio::test]
async fn sse_fixture_passes_byte_for_byte() {
    let path = format!(
        "{}/tests/fixtures/electric/sse_live_stream.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let stream = Bytes::from(std::fs::read(path).unwrap());
    let request =
        Request::get("/v1/shape?table=issues&live=true&live_sse=true&handle=h&offset=0_0")
            .body(Full::new(Bytes::new()))
            .unwrap();
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ChunkedBody::split(
            Bytes::copy_from_slice(&stream),
            &[3, 50, 51, 200],
        ))
        .unwrap();
    let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
    assert_eq!(body_of(out).await.unwrap(), stream);
}

#[tokio::test]
async fn transformed_response_drops_content_length_and_keeps_etag() {
    let fixture = fixture("200_initial_offset_-1.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, mut response) = fixture_exchange(&fixture, body.clone());
    response
        .headers_mut()
        .insert("content-length", body.len().into());
    let (forwarded, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(forwarded["accept-encoding"], "identity");
    assert!(out.headers().get("content-length").is_none());
    assert_eq!(
        out.headers()["etag"],
        fixture["response"]["headers"]["etag"].as_str().unwrap()
    );
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out[0]["value"], json!({"id": "2", "num": "10"}));
}

// ---- rewriting and dropping ----------------------------------------------------------------

#[tokio::test]
async fn values_and_old_values_are_rewritten_and_controls_left_alone() {
    let fixture = fixture("200_live_update_replica_full.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, response) = fixture_exchange(&fixture, body.clone());
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    let out = String::from_utf8(body_of(out).await.unwrap().to_vec()).unwrap();
    let messages: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(messages[0]["value"]["value1"], "TEST VALUE 1");
    assert_eq!(messages[0]["old_value"]["value2"], "TEST VALUE 1");
    assert_eq!(
        messages[0]["headers"],
        fixture["response"]["body"][0]["headers"]
    );
    // The control message is the upstream's bytes, not a re-rendering.
    let control = serde_json::to_string(&fixture["response"]["body"][1]).unwrap();
    assert!(out.ends_with(&format!(",{control}]")), "{out}");
}

#[tokio::test]
async fn messages_can_be_dropped_and_the_array_stays_valid() {
    let messages = json!([
        {"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"2\"","value":{"id":"2"}},
        {"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"3\"","value":{"id":"3","t":"x"}},
        {"headers":{"operation":"delete","relation":["public","items"]},"key":"drop-me","value":{"id":"4"}},
        {"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}
    ]);
    let body = Bytes::from(serde_json::to_string_pretty(&messages).unwrap());
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::new([body]));
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(upper_and_drop)),
        request,
        response,
    )
    .await;
    let out: Vec<Value> = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out, upper_and_drop_expected(messages.as_array().unwrap()));
    assert_eq!(out.len(), 2);
}

#[tokio::test]
async fn subset_snapshot_data_is_transformed_and_metadata_kept() {
    let fixture = fixture("200_subset_snapshot.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, response) = fixture_exchange(&fixture, body);
    let relations = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&relations);
    let transform = each_message(move |message: &mut Message<'_>| {
        let relation = message.relation().unwrap();
        seen.lock().unwrap().push(format!(
            "{}.{} {:?}",
            relation.schema,
            relation.table,
            message.operation()
        ));
        uppercase(message)
    });
    let (_, out) = exchange(BodyTransformLayer::new(transform), request, response).await;
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(out["metadata"], fixture["response"]["body"]["metadata"]);
    assert_eq!(out["data"][0]["value"]["title"], "HIGH PRIORITY");
    // The subset's messages name no relation: the shape's table (the query's `table`) stands in.
    assert_eq!(
        *relations.lock().unwrap(),
        [format!("public.issues {:?}", Some(Operation::Insert))]
    );
}

#[tokio::test]
async fn schema_header_is_rewritten_only_when_changed() {
    #[derive(Clone)]
    struct Retype;
    impl MessageTransform for Retype {
        fn transform(&mut self, _: &mut Message<'_>) -> Result<(), BoxError> {
            Ok(())
        }
        fn rewrite_schema(
            &mut self,
            schema: &mut serde_json::Map<String, Value>,
        ) -> Result<(), BoxError> {
            if let Some(column) = schema.get_mut("num") {
                column["type"] = "text".into();
            }
            Ok(())
        }
    }
    let fixture = fixture("200_initial_offset_-1.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let original = fixture["response"]["headers"]["electric-schema"]
        .as_str()
        .unwrap();

    let (request, response) = fixture_exchange(&fixture, body.clone());
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(|_: &mut Message<'_>| Ok(()))),
        request,
        response,
    )
    .await;
    assert_eq!(out.headers()["electric-schema"], original);

    let (request, response) = fixture_exchange(&fixture, body);
    let layer = BodyTransformLayer::new(
        |_: &http::request::Parts, _: &http::response::Parts| async { Ok::<_, BoxError>(Retype) },
    );
    let (_, out) = exchange(layer, request, response).await;
    let schema: Value =
        serde_json::from_slice(out.headers()["electric-schema"].as_bytes()).unwrap();
    assert_eq!(schema["num"], json!({"type": "text", "not_null": true}));
    assert_eq!(schema["id"]["type"], "int8");
}

// ---- chunking ------------------------------------------------------------------------------

fn sample_body() -> Vec<u8> {
    let mut messages = Vec::new();
    for name in [
        "200_initial_offset_-1.json",
        "200_live_update_replica_full.json",
    ] {
        messages.extend(
            fixture(name)["response"]["body"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
    }
    messages.push(json!({"headers":{"operation":"insert"},"key":"esc","value":{"q":"a \"quoted\" \\ back]}{slash","u":"ünïcödé ✓","n":null,"nl":"line\nbreak"}}));
    messages.push(json!({"headers":{"event":"move-in"},"key":"drop-not-applied"}));
    messages.push(json!({"headers":{"operation":"delete"},"key":"drop","value":{"id":"9"}}));
    let mut body = serde_json::to_vec_pretty(&messages).unwrap();
    body.extend_from_slice(b"\n");
    body
}

fn transform_in_chunks(body: &[u8], cuts: &[usize]) -> Bytes {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::split(Bytes::copy_from_slice(body), cuts));
    async {
        let (_, out) = exchange(
            BodyTransformLayer::new(each_message(upper_and_drop)),
            request,
            response,
        )
        .await;
        body_of(out).await.unwrap()
    }
    .now_or_never()
    .unwrap()
}

#[test]
fn one_byte_chunks_give_the_same_result() {
    let body = sample_body();
    let whole = transform_in_chunks(&body, &[]);
    let cuts: Vec<usize> = (1..body.len()).collect();
    assert_eq!(transform_in_chunks(&body, &cuts), whole);
    let messages: Vec<Value> = serde_json::from_slice(&body).unwrap();
    let out: Vec<Value> = serde_json::from_slice(&whole).unwrap();
    assert_eq!(out, upper_and_drop_expected(&messages));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_result(cuts in proptest::collection::btree_set(1usize..2000, 0..40)) {
        let body = sample_body();
        let cuts: Vec<usize> = cuts.into_iter().filter(|&cut| cut < body.len()).collect();
        prop_assert_eq!(transform_in_chunks(&body, &cuts), transform_in_chunks(&body, &[]));
    }
}

// ---- SSE streaming -------------------------------------------------------------------------

#[tokio::test]
async fn sse_frames_are_emitted_as_their_upstream_frames_arrive() {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let request =
        Request::get("/v1/shape?table=issues&live=true&live_sse=true&handle=h&offset=0_0")
            .body(Full::new(Bytes::new()))
            .unwrap();
    let response = Response::builder()
        .header("content-type", "text/event-stream")
        .body(ChannelBody(receiver))
        .unwrap();
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(upper_and_drop)),
        request,
        response,
    )
    .await;
    let mut body = out.into_body();

    let frames = [
        (
            "data: {\"headers\":{\"operation\":\"insert\"},\"key\":\"issue-1\",\"value\":{\"title\":\"electric\"}}\n\n",
            "data: {\"headers\":{\"operation\":\"insert\"},\"key\":\"issue-1\",\"value\":{\"title\":\"ELECTRIC\"}}\n\n",
        ),
        ("data: {\"headers\":{\"operation\":\"delete\"},\"key\":\"drop\",\"value\":{\"id\":\"2\"}}\n\n", ""),
        (": keep-alive\n\n", ": keep-alive\n\n"),
        (
            "data: {\"headers\":{\"control\":\"up-to-date\",\"global_last_seen_lsn\":\"0/1234567\"}}\n\n",
            "data: {\"headers\":{\"control\":\"up-to-date\",\"global_last_seen_lsn\":\"0/1234567\"}}\n\n",
        ),
    ];
    for (input, expected) in frames {
        sender.send(Bytes::from_static(input.as_bytes())).unwrap();
        // Everything this frame produces is available now, before the next frame is sent.
        let mut output = Vec::new();
        while let Some(frame) = body.frame().now_or_never() {
            output.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
        }
        assert_eq!(String::from_utf8(output).unwrap(), expected);
    }
    drop(sender);
    assert!(body.frame().await.is_none());
}

// ---- errors --------------------------------------------------------------------------------

async fn transform_error(
    body: &'static str,
    layer: BodyTransformLayer<impl ShapeTransform>,
) -> TransformError {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::split(
        Bytes::copy_from_slice(body.as_bytes()),
        &[body.len() / 2],
    ));
    let (_, out) = exchange(layer, request, response).await;
    body_of(out).await.unwrap_err()
}

#[tokio::test]
async fn a_message_over_the_cap_errors_the_body() {
    let error = transform_error(
        r#"[{"key":"a","value":{"t":"short"}},{"key":"b","value":{"t":"a value much longer than the cap of sixty-four bytes"}}]"#,
        BodyTransformLayer::new(identity()).max_message_bytes(64),
    )
    .await;
    assert!(
        matches!(error, TransformError::MessageTooLarge { limit: 64 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_and_truncated_bodies_error_the_body() {
    // A malformed first message is a 502 (tests/transform_errors.rs); after one good message
    // the head is gone and the body errors.
    let malformed = transform_error(
        r#"[{"key":"a","value":{"t":"1"}},{"key":"b","value":{"t":"2"}},{"key":"c","value":{"t":1}}]"#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(malformed, TransformError::Malformed { .. }),
        "{malformed:?}"
    );
    let truncated = transform_error(
        r#"[{"key":"a","value":{"t":"1"}},{"key":"b""#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(truncated, TransformError::Truncated),
        "{truncated:?}"
    );
    let cut_after_message = transform_error(
        r#"[{"key":"a","value":{"t":"1"}}"#,
        BodyTransformLayer::new(identity()),
    )
    .await;
    assert!(
        matches!(cut_after_message, TransformError::Truncated),
        "{cut_after_message:?}"
    );
}

#[tokio::test]
async fn a_transform_error_mid_stream_errors_the_body() {
    let layer = BodyTransformLayer::new(each_message(|message: &mut Message<'_>| {
        if message.key().as_deref() == Some("b") {
            return Err("cannot decrypt".into());
        }
        Ok(())
    }));
    let error = transform_error(
        r#"[{"key":"a","value":{}},{"key":"b","value":{}},{"key":"c","value":{}}]"#,
        layer,
    )
    .await;
    assert!(matches!(error, TransformError::Transform(_)), "{error:?}");
}

#[tokio::test]
async fn a_setup_error_is_a_502_that_leaks_nothing() {
    let layer = BodyTransformLayer::new(
        |_: &http::request::Parts, _: &http::response::Parts| async {
            Err::<fn(&mut Message<'_>) -> Result<(), BoxError>, BoxError>(
                "key service at 10.0.0.7 refused".into(),
            )
        },
    );
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::new(ChunkedBody::new([Bytes::from_static(b"[]")]));
    let (_, out) = exchange(layer, request, response).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(out.headers()["cache-control"], "no-store");
    assert!(out.extensions().get::<Rejection>().is_some());
    assert_eq!(
        body_of(out).await.unwrap(),
        r#"{"message":"Bad gateway: the response body could not be transformed: setup failed"}"#
    );
}

#[tokio::test]
async fn compressed_upstream_responses_are_refused() {
    let fixture = fixture("200_initial_offset_-1.json");
    let (request, mut response) =
        fixture_exchange(&fixture, Bytes::from_static(b"\x1f\x8b\x08\x00gzip"));
    response
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (_, out) = exchange(BodyTransformLayer::new(identity()), request, response).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("compressed"),
        "{body}"
    );
}

// ---- responses that pass untouched ---------------------------------------------------------

#[tokio::test]
async fn must_refetch_409_passes_untouched() {
    let fixture = fixture("409_must_refetch.json");
    let body = Bytes::from(serde_json::to_string(&fixture["response"]["body"]).unwrap());
    let (request, mut response) = fixture_exchange(&fixture, body.clone());
    response
        .headers_mut()
        .insert("content-length", body.len().into());
    let upstream_headers = response.headers().clone();
    let (_, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(out.status(), StatusCode::CONFLICT);
    assert_eq!(*out.headers(), upstream_headers);
    assert_eq!(body_of(out).await.unwrap(), body);
}

#[tokio::test]
async fn conditional_requests_get_upstreams_304_untouched() {
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .header("if-none-match", "\"h:-1:0_inf\"")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header("etag", "\"h:-1:0_inf\"")
        .body(ChunkedBody::new([]))
        .unwrap();
    let (forwarded, out) = exchange(
        BodyTransformLayer::new(each_message(uppercase)),
        request,
        response,
    )
    .await;
    assert_eq!(forwarded["if-none-match"], "\"h:-1:0_inf\"");
    assert_eq!(out.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(out.headers()["etag"], "\"h:-1:0_inf\"");
    assert!(body_of(out).await.unwrap().is_empty());
}

#[tokio::test]
async fn errors_and_other_content_types_pass_untouched() {
    for (status, content_type, body) in [
        (
            400,
            "application/json; charset=utf-8",
            r#"{"message":"Invalid request","errors":{"offset":["x"]}}"#,
        ),
        (
            503,
            "application/json; charset=utf-8",
            r#"{"code":"x","message":"y"}"#,
        ),
        (200, "text/plain", "not json ["),
    ] {
        let request = Request::get("/v1/shape?table=items&offset=-1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(ChunkedBody::new([Bytes::from_static(body.as_bytes())]))
            .unwrap();
        let (_, out) = exchange(
            BodyTransformLayer::new(each_message(uppercase)),
            request,
            response,
        )
        .await;
        assert_eq!(out.status(), status);
        assert_eq!(body_of(out).await.unwrap(), body);
    }
}

// ---- request bodies ------------------------------------------------------------------------

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

type BodyFn = fn(&mut Value) -> Result<(), Rejection>;

fn shout() -> EachBody<BodyFn> {
    fn upper_title(body: &mut Value) -> Result<(), Rejection> {
        let Some(title) = body.get_mut("title") else {
            return Err(Rejection::forbidden().with_message("title is required"));
        };
        *title = title.as_str().unwrap_or_default().to_uppercase().into();
        Ok(())
    }
    each_body(upper_title as BodyFn)
}

#[tokio::test]
async fn write_bodies_are_transformed_with_a_true_length() {
    let request = Request::post("/api/todos")
        .header("content-length", "17")
        .body(Full::new(Bytes::from_static(br#"{"title": "milk"}"#)))
        .unwrap();
    let (status, body, length) = write(RequestBodyTransformLayer::new(shout()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"title":"MILK"}"#);
    assert_eq!(length.as_deref(), Some("16"));
}

#[tokio::test]
async fn write_bodies_over_the_limit_are_413() {
    let declared = Request::post("/api/todos")
        .header("content-length", "100000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, _, _) = write(
        RequestBodyTransformLayer::new(shout()).max_body_bytes(64),
        declared,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let streamed = Request::post("/api/todos")
        .body(Full::new(Bytes::from(format!(
            r#"{{"title":"{}"}}"#,
            "x".repeat(100)
        ))))
        .unwrap();
    let (status, body, _) = write(
        RequestBodyTransformLayer::new(shout()).max_body_bytes(64),
        streamed,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, r#"{"message":"Payload too large"}"#);
}

#[tokio::test]
async fn write_bodies_that_are_not_json_are_400_and_transform_rejections_answer() {
    let bad = Request::post("/api/todos")
        .body(Full::new(Bytes::from_static(b"{\"title\":")))
        .unwrap();
    let (status, body, _) = write(RequestBodyTransformLayer::new(shout()), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"errors":{"body":["is not valid JSON"]},"message":"Invalid request"}"#
    );

    let refused = Request::post("/api/todos")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, _, _) = write(RequestBodyTransformLayer::new(shout()), refused).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let empty = Request::post("/api/todos")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body, _) = write(RequestBodyTransformLayer::new(shout()), empty).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
}

// ---- encryption ----------------------------------------------------------------------------

fn tenant_keys() -> columns::TenantKeys {
    let keys = HashMap::from([
        ("acme".to_owned(), [7u8; 32]),
        ("globex".to_owned(), [9u8; 32]),
    ]);
    columns::TenantKeys::new(keys, &["title", "notes"])
}

fn as_tenant(tenant: &str, mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(columns::Tenant(tenant.to_owned()));
    request
}

#[tokio::test]
async fn encrypted_columns_round_trip_through_write_and_read_paths() {
    let keys = tenant_keys();
    // Write path: the app's API (and so Postgres, and so Electric) only sees ciphertext.
    let request = as_tenant(
        "acme",
        Request::post("/api/todos")
            .body(Full::new(Bytes::from_static(
                br#"{"id":"1","title":"secret plan","notes":null}"#,
            )))
            .unwrap(),
    );
    let (status, stored, _) = write(RequestBodyTransformLayer::new(keys.clone()), request).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    let ciphertext = stored["title"].as_str().unwrap().to_owned();
    assert_ne!(ciphertext, "secret plan");
    assert_eq!(stored["id"], "1");
    assert_eq!(stored["notes"], Value::Null);

    // Read path: Electric syncs the ciphertext; the gateway decrypts for the tenant.
    let acme = columns::ColumnCipher::new(&[7u8; 32], Arc::from(vec!["title".to_owned()]));
    let old = acme.encrypt("title", "old plan").unwrap();
    let messages = json!([
        {"headers":{"operation":"update","relation":["public","todos"]},"key":"\"public\".\"todos\"/\"1\"",
         "value":{"id":"1","title":ciphertext,"notes":null},"old_value":{"title":old}},
        {"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}
    ]);
    let body = Bytes::from(serde_json::to_string(&messages).unwrap());
    let response = || {
        Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .body(ChunkedBody::split(body.clone(), &[10, 100, 101]))
            .unwrap()
    };
    let request = |tenant| {
        as_tenant(
            tenant,
            Request::get("/v1/shape?table=todos&offset=-1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    let (_, out) = exchange(
        BodyTransformLayer::new(keys.clone()),
        request("acme"),
        response(),
    )
    .await;
    let out: Value = serde_json::from_slice(&body_of(out).await.unwrap()).unwrap();
    assert_eq!(
        out[0]["value"],
        json!({"id":"1","title":"secret plan","notes":null})
    );
    assert_eq!(out[0]["old_value"], json!({"title":"old plan"}));
    assert_eq!(out[1], messages[1]);

    // Another tenant's key does not open it: the first message fails, so the answer is a 502
    // instead of ciphertext passed as if it were data (nor the plaintext).
    let (_, out) = exchange(
        BodyTransformLayer::new(keys.clone()),
        request("globex"),
        response(),
    )
    .await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        body_of(out).await.unwrap(),
        r#"{"message":"Bad gateway: the response body could not be transformed: transform failed"}"#
    );

    // No tenant, no key: 502 before the first byte.
    let anonymous = Request::get("/v1/shape?table=todos&offset=-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, out) = exchange(BodyTransformLayer::new(keys), anonymous, response()).await;
    assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
}

#[test]
fn ciphertexts_are_bound_to_their_column_and_key() {
    let cipher = columns::ColumnCipher::new(&[1u8; 32], Arc::from(vec!["a".to_owned()]));
    let sealed = cipher.encrypt("a", "x").unwrap();
    assert_eq!(cipher.decrypt("a", &sealed).unwrap(), "x");
    assert_ne!(
        cipher.encrypt("a", "x").unwrap(),
        sealed,
        "nonces are random"
    );
    assert_eq!(
        cipher.decrypt("b", &sealed),
        Err(columns::CipherError::Authentication)
    );
    assert_eq!(
        cipher.decrypt("a", "not base64!"),
        Err(columns::CipherError::Encoding)
    );
    let other = columns::ColumnCipher::new(&[2u8; 32], Arc::from(vec!["a".to_owned()]));
    assert_eq!(
        other.decrypt("a", &sealed),
        Err(columns::CipherError::Authentication)
    );
    assert!(format!("{cipher:?}").contains("columns"));
    assert!(!format!("{:?}", tenant_keys()).contains("[7"));
}
