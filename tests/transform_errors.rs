#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
//! Issue 14: `BodyTransformLayer` failures a client can read. Before any byte of the body is
//! sent (the setup, or the first message, fails) the client gets a 502 in the crate's JSON
//! shape naming the reason class; after, the body ends with an error. The head of a non-live
//! response waits for the first message and no longer; live responses (long-poll, SSE) are
//! answered as they come.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tower::{Layer, ServiceExt};
use tower_electric::rejection::{Rejection, RejectionKind};
use tower_electric::testing::ChunkedBody;
use tower_electric::transform::{
    each_message, BoxError, Message, ResponseBody, ShapeTransform, TransformError,
};
use tower_electric::BodyTransformLayer;

/// A body fed frame by frame through a channel; ends when the sender is dropped.
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

/// The value the transform would leak if a refusal quoted it.
const VALUE: &str = "plaintext-value-4711";

fn message(key: &str) -> String {
    format!(
        r#"{{"key":"{key}","value":{{"title":"{VALUE} {key}"}},"headers":{{"operation":"insert"}}}}"#
    )
}

/// Fails on the message whose key is `key`, with an error that quotes its value.
fn failing_on(key: &'static str) -> BodyTransformLayer<impl ShapeTransform> {
    BodyTransformLayer::new(each_message(move |message: &mut Message<'_>| {
        if message.key().as_deref() == Some(key) {
            return Err(format!("cannot decrypt {VALUE}").into());
        }
        Ok(())
    }))
}

fn request(query: &str) -> Request<Full<Bytes>> {
    Request::get(format!("/v1/shape?{query}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn json_response<B>(body: B) -> Response<B> {
    Response::builder()
        .header("content-type", "application/json; charset=utf-8")
        .header("electric-handle", "h")
        .header("electric-offset", "0_0")
        .body(body)
        .unwrap()
}

/// The layer in front of a service that answers `response` once.
async fn send<T, B>(
    layer: BodyTransformLayer<T>,
    request: Request<Full<Bytes>>,
    response: Response<B>,
) -> Response<ResponseBody<B, T::Messages>>
where
    T: ShapeTransform,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let response = Mutex::new(Some(response));
    let upstream = tower::service_fn(move |_: Request<Full<Bytes>>| {
        let response = response.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    layer.layer(upstream).oneshot(request).await.unwrap()
}

/// Asserts a 502 in the crate's shape naming `class`, with nothing of the value in it.
async fn assert_readable_502<B>(response: Response<B>, class: &str)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().get("electric-handle").is_none());
    let rejection = response.extensions().get::<Rejection>().unwrap().clone();
    assert_eq!(rejection.kind(), RejectionKind::BadGateway);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let expected = format!(
        r#"{{"message":"Bad gateway: the response body could not be transformed: {class}"}}"#
    );
    assert_eq!(String::from_utf8_lossy(&body), expected);
    assert!(!String::from_utf8_lossy(&body).contains(VALUE));
    assert!(!format!("{rejection:?} {rejection}").contains(VALUE));
}

#[tokio::test]
async fn a_transform_failing_on_the_first_message_is_a_502_json_with_no_store() {
    // The first message spans three upstream chunks, and more follow.
    let first = message("a");
    let (head, tail) = first.split_at(first.len() / 2);
    let body = ChunkedBody::new([
        Bytes::from_static(b"["),
        Bytes::from(head.to_owned()),
        Bytes::from(format!("{tail},{}", message("b"))),
        Bytes::from(format!(",{}]", message("c"))),
    ]);
    let response = send(
        failing_on("a"),
        request("table=items&offset=-1"),
        json_response(body),
    )
    .await;
    assert_readable_502(response, "transform failed").await;
}

#[tokio::test]
async fn a_first_message_that_cannot_be_read_is_a_502_naming_why() {
    let oversized = format!("[{}]", message("a"));
    for (chunks, layer, class) in [
        (
            vec![format!(
                r#"[{{"key":"a","value":{{"title":1,"x":"{VALUE}"}}}}]"#
            )],
            failing_on("none"),
            "malformed message",
        ),
        (
            vec![oversized.clone()],
            failing_on("none").max_message_bytes(32),
            "message too large",
        ),
        (
            vec![
                "[".to_owned(),
                format!(r#"{{"key":"a","value":{{"title":"{VALUE}"#),
            ],
            failing_on("none"),
            "truncated body",
        ),
        (
            vec![r#"{"metadata":{}, "data": [{"key":"a","value":{"title":"x"}}"#.to_owned()],
            failing_on("a"),
            "transform failed",
        ),
    ] {
        let body = ChunkedBody::new(chunks.into_iter().map(Bytes::from));
        let response = send(layer, request("table=items&offset=-1"), json_response(body)).await;
        assert_readable_502(response, class).await;
    }
}

#[tokio::test]
async fn a_failing_setup_is_a_502_naming_the_setup() {
    let layer = BodyTransformLayer::new(
        |_: &http::request::Parts, _: &http::response::Parts| async {
            Err::<fn(&mut Message<'_>) -> Result<(), BoxError>, BoxError>(
                format!("key service at 10.0.0.7 refused {VALUE}").into(),
            )
        },
    );
    let body = ChunkedBody::new([Bytes::from(format!("[{}]", message("a")))]);
    let response = send(layer, request("table=items&offset=-1"), json_response(body)).await;
    assert_readable_502(response, "setup failed").await;
}

#[tokio::test]
async fn a_failure_on_the_third_message_ends_the_body_after_the_first_bytes() {
    let body = ChunkedBody::new([
        Bytes::from(format!("[{},", message("a"))),
        Bytes::from(format!("{},", message("b"))),
        Bytes::from(format!("{},{}]", message("c"), message("d"))),
    ]);
    let response = send(
        failing_on("c"),
        request("table=items&offset=-1"),
        json_response(body),
    )
    .await;
    // The head went out with the first message: the status can no longer change.
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut sent = Vec::new();
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => sent.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(error)) => break error,
            None => panic!("the body ended without an error"),
        }
    };
    assert!(matches!(error, TransformError::Transform(_)), "{error:?}");
    // (A separator goes out with the message after it, so that a dropped message leaves a
    // valid array.)
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        format!("[{},{}", message("a"), message("b"))
    );
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn a_snapshot_head_waits_for_the_first_message_and_buffers_nothing_more() {
    let (sender, receiver) = unbounded_channel();
    let service = failing_on("none").layer(tower::service_fn({
        let response = Mutex::new(Some(json_response(ChannelBody(receiver))));
        move |_: Request<Full<Bytes>>| {
            let response = response.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(response) }
        }
    }));
    let mut future = Box::pin(service.oneshot(request("table=items&offset=-1")));
    assert!((&mut future).now_or_never().is_none());

    let first = message("a");
    let (head, tail) = first.split_at(10);
    sender.send(Bytes::from_static(b"[")).unwrap();
    assert!(
        (&mut future).now_or_never().is_none(),
        "answered before a message"
    );
    sender.send(Bytes::from(head.to_owned())).unwrap();
    assert!(
        (&mut future).now_or_never().is_none(),
        "answered inside a message"
    );

    sender.send(Bytes::from(format!("{tail},"))).unwrap();
    let response = (&mut future)
        .now_or_never()
        .expect("answered once the first message was read")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(ready_bytes(&mut body), format!("[{first}"));

    // The rest is read as the client reads it, not ahead of it.
    sender
        .send(Bytes::from(format!("{}]", message("b"))))
        .unwrap();
    drop(sender);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&rest),
        format!(",{}]", message("b"))
    );
}

/// Everything the body has ready now.
fn ready_bytes<B>(body: &mut B) -> String
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut sent = Vec::new();
    while let Some(frame) = body.frame().now_or_never() {
        sent.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
    }
    String::from_utf8(sent).unwrap()
}

/// A live response: its head goes out as soon as the upstream's, whenever its first bytes
/// come; `first` is forwarded as it arrives (`forwarded` is what the client gets of it),
/// `failing` then ends the body with an error.
async fn live_head_before_bytes(
    query: &str,
    content_type: &str,
    first: String,
    forwarded: String,
    failing: String,
) {
    let (sender, receiver) = unbounded_channel::<Bytes>();
    let upstream = Response::builder()
        .header("content-type", content_type)
        .body(ChannelBody(receiver))
        .unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(1),
        send(failing_on("boom"), request(query), upstream),
    )
    .await
    .expect("the head of a live response waited for its body");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert!(body.frame().now_or_never().is_none());

    // Electric's first SSE frame, or a long-poll's answer, can come 20 s later.
    tokio::time::sleep(Duration::from_secs(20)).await;
    send_now(&sender, &first);
    assert_eq!(ready_bytes(&mut body), forwarded, "forwarded as it came");

    // A failure now can only end the body: the status went out 20 s ago.
    send_now(&sender, &failing);
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(matches!(error, TransformError::Transform(_)), "{error:?}");
}

fn send_now(sender: &UnboundedSender<Bytes>, text: &str) {
    sender.send(Bytes::from(text.to_owned())).unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_sse_stream_delivers_its_first_frame_as_soon_as_it_arrives() {
    live_head_before_bytes(
        "table=items&offset=0_0&handle=h&live=true&live_sse=true",
        "text/event-stream",
        format!("data: {}\n\n", message("a")),
        format!("data: {}\n\n", message("a")),
        format!("data: {}\n\n", message("boom")),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_held_long_poll_is_forwarded_as_its_bytes_come() {
    live_head_before_bytes(
        "table=items&offset=0_0&handle=h&live=true&cursor=",
        "application/json; charset=utf-8",
        format!("[{},", message("a")),
        format!("[{}", message("a")),
        format!("{}]", message("boom")),
    )
    .await;
}

#[tokio::test]
async fn the_head_waits_no_longer_than_the_message_cap_for_a_first_message() {
    let (sender, receiver) = unbounded_channel();
    let service = failing_on("none")
        .max_message_bytes(64)
        .layer(tower::service_fn({
            let response = Mutex::new(Some(json_response(ChannelBody(receiver))));
            move |_: Request<Full<Bytes>>| {
                let response = response.lock().unwrap().take().unwrap();
                async move { Ok::<_, Infallible>(response) }
            }
        }));
    let mut future = Box::pin(service.oneshot(request("table=items&offset=-1")));
    // A subset's members before `data` pass through; each is under the cap, together over it.
    let metadata = format!(r#"{{"metadata":{{"x":"{}"}},"#, "m".repeat(40));
    send_now(&sender, &metadata);
    assert!((&mut future).now_or_never().is_none());
    let other = format!(r#""other":"{}","#, "o".repeat(40));
    send_now(&sender, &other);
    let response = (&mut future).now_or_never().expect("head sent").unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(ready_bytes(&mut body), format!("{metadata}{other}"));
    send_now(&sender, r#""data":[{"key":"a","value":{}}]}"#);
    drop(sender);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, r#""data":[{"key":"a","value":{}}]}"#);
}
