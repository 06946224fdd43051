//! Upstream shape logs through `BodyTransformLayer`: the JSON message splitter and the SSE
//! framer, under arbitrary chunking.
//!
//! Input: a flags byte, a chunking byte, then the body. Flags: bit 0 SSE (else JSON); bit 1
//! the body is made valid by construction from the rest (read as JSON, each element made a
//! well-formed message), bit 2 that body is the subset object `{"metadata", "data"}`, bit 3
//! pretty-printed; bit 4 the transform drops inserts (else identity); bit 5 a 64-byte cap on
//! messages. The chunking byte seeds the chunk sizes (0: one byte at a time), empty chunks
//! included.
//!
//! Whatever the bytes: no panic, no hang; the output, or that it failed, does not depend on
//! the chunking; a body that ends without error under the identity transform is the
//! input byte for byte, and a JSON one is valid JSON. A valid body under the default cap ends
//! without error: byte for byte under the identity transform, and without its inserts (still
//! valid JSON) under the dropping one.
#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use tower_electric::transform::{each_message, BodyTransformLayer, BoxError, Message, Operation};
use tower_electric_fuzz::block_on;
use tower_layer::Layer;
use tower_service::Service;

/// A body that yields the given chunks, each as soon as it is asked for.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// Splits `body` into chunks whose sizes come from `seed`; some are empty.
fn chunks(body: &[u8], seed: u8) -> VecDeque<Bytes> {
    let body = Bytes::copy_from_slice(body);
    let mut out = VecDeque::new();
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut at = 0;
    while at < body.len() {
        let size = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 23) as usize
        };
        let end = (at + size).min(body.len());
        out.push_back(body.slice(at..end));
        at = end;
    }
    out
}

type Outcome = Result<Vec<u8>, String>;

fn identity(_message: &mut Message<'_>) -> Result<(), BoxError> {
    Ok(())
}

fn drop_inserts(message: &mut Message<'_>) -> Result<(), BoxError> {
    if message.operation() == Some(Operation::Insert) {
        message.discard();
    }
    Ok(())
}

/// Runs `chunks` through the layer as Electric's 200 response to a shape request.
fn run(sse: bool, drop: bool, cap: usize, chunks: VecDeque<Bytes>) -> Outcome {
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/json; charset=utf-8"
    };
    let upstream = tower_service_fn(move || {
        Response::builder()
            .header("content-type", content_type)
            .body(Chunks(chunks.clone()))
            .expect("response")
    });
    let transform: fn(&mut Message<'_>) -> Result<(), BoxError> =
        if drop { drop_inserts } else { identity };
    let mut service = BodyTransformLayer::new(each_message(transform))
        .max_message_bytes(cap)
        .layer(upstream);
    let request = Request::get("/v1/shape?table=items&offset=-1")
        .body(())
        .expect("request");
    let response = block_on(service.call(request)).expect("infallible");
    // The stub always answers 200: a 502 is the layer refusing before the first byte (a
    // failure a client can read), which counts as the body failing.
    let refused = response.status() == http::StatusCode::BAD_GATEWAY;
    let mut body = std::pin::pin!(response.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(None) if refused => {
                assert!(is_json(&out), "a 502 that is not JSON: {out:?}");
                return Err(format!("502 {}", String::from_utf8_lossy(&out)));
            }
            Poll::Ready(None) => return Ok(out),
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(error))) => return Err(format!("{error:?}")),
            Poll::Pending => panic!("a body of ready chunks is pending"),
        }
    }
    panic!("the body never ends");
}

/// An inner service answering every request with `make()`.
fn tower_service_fn<F>(
    make: F,
) -> impl Service<
    Request<()>,
    Response = Response<Chunks>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Chunks>, Infallible>>,
>
where
    F: Fn() -> Response<Chunks>,
{
    struct Answer<F>(F);
    impl<F: Fn() -> Response<Chunks>> Service<Request<()>> for Answer<F> {
        type Response = Response<Chunks>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Chunks>, Infallible>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _request: Request<()>) -> Self::Future {
            std::future::ready(Ok((self.0)()))
        }
    }
    Answer(make)
}

/// A row: an object of strings or nulls.
fn row(value: &Value) -> Value {
    match value {
        Value::Object(columns) => Value::Object(
            columns
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::String(_) | Value::Null => value.clone(),
                        other => Value::String(other.to_string()),
                    };
                    (name.clone(), value)
                })
                .collect(),
        ),
        other => json!({ "v": other.to_string() }),
    }
}

/// A well-formed message made from any value.
fn message(value: &Value) -> Value {
    let Value::Object(members) = value else {
        return json!({"headers": {"operation": "insert"}, "key": value.to_string(), "value": row(value)});
    };
    let mut message = Map::new();
    for (name, member) in members {
        let member = match name.as_str() {
            "value" | "old_value" => row(member),
            "headers" => {
                let mut headers = Map::new();
                if let Value::Object(given) = member {
                    for (key, header) in given {
                        let header = match (key.as_str(), header) {
                            ("operation", Value::String(_)) => header.clone(),
                            ("operation", other) => Value::String(other.to_string()),
                            ("relation", Value::Array(parts)) => json!([
                                parts.first().map_or(String::new(), Value::to_string),
                                parts.get(1).map_or(String::new(), Value::to_string),
                            ]),
                            ("relation", other) => json!(["public", other.to_string()]),
                            _ => header.clone(),
                        };
                        headers.insert(key.clone(), header);
                    }
                }
                Value::Object(headers)
            }
            _ => member.clone(),
        };
        message.insert(name.clone(), member);
    }
    Value::Object(message)
}

fn to_text(value: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(value).expect("JSON")
    } else {
        serde_json::to_vec(value).expect("JSON")
    }
}

/// Whether `bytes` are one JSON value: UTF-8 first, as serde_json skips ignored strings
/// unchecked; `IgnoredAny` rather than `Value`, as JSON numbers have no range.
fn is_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
}

fn is_insert(message: &Value) -> bool {
    let headers = &message["headers"];
    headers["operation"] == "insert"
        && headers.get("control").is_none_or(Value::is_null)
        && headers.get("event").is_none_or(Value::is_null)
}

fuzz_target!(|data: &[u8]| {
    let [flags, seed, rest @ ..] = data else {
        return;
    };
    let sse = flags & 1 != 0;
    let constructed = flags & 2 != 0;
    let subset = flags & 4 != 0;
    let pretty = flags & 8 != 0;
    let drop = flags & 16 != 0;
    let cap = if flags & 32 != 0 { 64 } else { 4 * 1024 * 1024 };

    let mut expected = None;
    let body = if constructed {
        let Ok(value) = serde_json::from_slice::<Value>(rest) else {
            return;
        };
        let elements = match &value {
            Value::Array(elements) => elements.clone(),
            other => vec![other.clone()],
        };
        let messages: Vec<Value> = elements.iter().map(message).collect();
        let kept: Vec<Value> = messages
            .iter()
            .filter(|m| !(drop && is_insert(m)))
            .cloned()
            .collect();
        if sse {
            let frame = |messages: &[Value]| {
                let mut out = b": keep-alive\n\n".to_vec();
                for message in messages {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(&to_text(message, false));
                    out.extend_from_slice(if pretty { b"\r\n\r\n" } else { b"\n\n" });
                }
                out
            };
            expected = Some(frame(&kept));
            frame(&messages)
        } else if subset {
            let wrap = |messages: Vec<Value>| json!({"metadata": {"xmin": "1", "note": value.clone()}, "data": messages});
            expected = Some(to_text(&wrap(kept), pretty));
            to_text(&wrap(messages), pretty)
        } else {
            expected = Some(to_text(&Value::Array(kept), pretty));
            to_text(&Value::Array(messages), pretty)
        }
    } else {
        rest.to_vec()
    };

    let whole = run(sse, drop, cap, VecDeque::from([Bytes::from(body.clone())]));
    let chunked = run(sse, drop, cap, chunks(&body, *seed));
    // Which error ends a broken body may depend on where the chunks fall (a name too long
    // before it is seen to be escaped); that it fails, and what a good one gives, may not.
    match (&whole, &chunked) {
        (Ok(whole), Ok(chunked)) => {
            assert_eq!(whole, chunked, "the output depends on the chunking")
        }
        (Err(_), Err(_)) => {}
        _ => panic!("whether it fails depends on the chunking: {whole:?} / {chunked:?}"),
    }

    if let Ok(output) = &whole {
        if !drop {
            assert_eq!(output, &body, "the identity transform changed the body");
        }
        if !sse {
            assert!(
                is_json(&body),
                "a body that is not JSON passed: {:?}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                is_json(output),
                "the output is not JSON: {:?}",
                String::from_utf8_lossy(output)
            );
        }
    }
    if let (Some(expected), true) = (expected, cap > 64) {
        let output = whole.unwrap_or_else(|error| {
            panic!(
                "a valid body failed: {error}: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        if sse || !drop {
            assert_eq!(output, expected);
        } else {
            let output: Value = serde_json::from_slice(&output).expect("JSON");
            let expected: Value = serde_json::from_slice(&expected).expect("JSON");
            assert_eq!(output, expected);
        }
    }
});
