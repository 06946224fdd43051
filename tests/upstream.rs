//! `ElectricUpstream` against tiny hyper servers on real TCP listeners.
#![cfg(all(feature = "proxy", feature = "testing"))]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "support/logs.rs"]
mod logs;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tower_electric::upstream::{BodyError, Builder};
use tower_electric::ElectricUpstream;

use logs::CapturedLogs;

/// A guard against a hang, never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(20);

type TestBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body whose frames the test writes one at a time.
fn channel_body() -> (mpsc::Sender<Bytes>, TestBody) {
    let (sender, mut receiver) = mpsc::channel(1);
    let frames = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|data| data.map(|data| Ok(Frame::data(data))))
    });
    (sender, StreamBody::new(frames).boxed_unsync())
}

/// A body sent in several chunks (so chunked on the wire).
fn chunked(chunks: Vec<Bytes>) -> TestBody {
    let frames = chunks.into_iter().map(|chunk| Ok(Frame::data(chunk)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

/// What the test server saw of one request.
#[derive(Debug)]
struct Seen {
    method: Method,
    path_and_query: String,
    version: Version,
    headers: HeaderMap,
}

#[derive(Clone, Copy)]
enum Protocol {
    Http1,
    H2c,
}

/// Serves `handler` on a fresh local port; every request it sees is reported on the channel.
async fn serve<H, F>(protocol: Protocol, handler: H) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (seen_sender, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let seen_sender = seen_sender.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let _ = seen_sender.send(Seen {
                    method: request.method().clone(),
                    path_and_query: request.uri().path_and_query().unwrap().to_string(),
                    version: request.version(),
                    headers: request.headers().clone(),
                });
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                let _ = match protocol {
                    Protocol::Http1 => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    }
                    Protocol::H2c => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                };
            });
        }
    });
    (address, seen)
}

fn upstream_builder(address: SocketAddr) -> Builder {
    ElectricUpstream::builder(format!("http://{address}"))
}

fn get(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

async fn body_bytes<B>(body: B) -> Bytes
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}

/// A response fixture from `tests/fixtures/electric`: the upstream's canned answer.
#[derive(Clone)]
struct Canned {
    request_query: String,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Canned {
    /// `response` is a fixture's `{status, headers, body}`.
    fn from_response(response: &Value, request_query: &str) -> Self {
        let headers = response["headers"]
            .as_object()
            .unwrap()
            .iter()
            // Framing belongs to each connection; the body below is sent chunked anyway.
            .filter(|(name, _)| name.as_str() != "transfer-encoding")
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
                )
            })
            .collect();
        let body = match &response["body"] {
            Value::Null => Bytes::new(),
            body => Bytes::from(serde_json::to_vec(body).unwrap()),
        };
        Self {
            request_query: request_query.to_owned(),
            status: StatusCode::from_u16(
                u16::try_from(response["status"].as_u64().unwrap()).unwrap(),
            )
            .unwrap(),
            headers,
            body,
        }
    }

    fn file(name: &str) -> Self {
        let exchange = fixture_json(name);
        Self::from_response(
            &exchange["response"],
            exchange["request"]["query"].as_str().unwrap(),
        )
    }

    fn response(&self) -> Response<TestBody> {
        let mut response = Response::new(match self.body.len() {
            0 => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            len => chunked(vec![self.body.slice(..len / 2), self.body.slice(len / 2..)]),
        });
        *response.status_mut() = self.status;
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }

    /// Asserts that `response` is this canned answer, unchanged: status, every header, body.
    async fn assert_passed_through<B>(&self, response: Response<B>)
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        assert_eq!(response.status(), self.status);
        for (name, value) in &self.headers {
            assert_eq!(response.headers().get(name), Some(value), "header {name}");
        }
        for name in response.headers().keys() {
            assert!(
                name == "date" || self.headers.iter().any(|(canned, _)| canned == name),
                "unexpected header {name}"
            );
        }
        assert_eq!(body_bytes(response.into_body()).await, self.body);
    }
}

fn fixture_json(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/electric/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn serve_canned(canned: Canned) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    serve(Protocol::Http1, move |_request| {
        let canned = canned.clone();
        async move { canned.response() }
    })
    .await
}

#[tokio::test]
async fn snapshot_and_live_responses_pass_through_byte_for_byte_to_the_fixed_path() {
    for file in [
        "200_initial_offset_-1.json",
        "200_live_update_replica_full.json",
    ] {
        let canned = Canned::file(file);
        let (address, mut seen) = serve_canned(canned.clone()).await;
        let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
        for client_path in [
            "/v1/shape",
            "/v1/shape/",
            "/admin",
            "/v1/%73hape",
            "/v1//shape",
        ] {
            let uri = format!("{client_path}?{}", canned.request_query);
            let response = upstream.clone().oneshot(get(&uri)).await.unwrap();
            canned.assert_passed_through(response).await;
            let request = seen.recv().await.unwrap();
            assert_eq!(request.method, Method::GET);
            assert_eq!(
                request.path_and_query,
                format!("/v1/shape?{}", canned.request_query),
                "{file} asked as {client_path}"
            );
        }
    }
}

#[tokio::test]
async fn a_configured_path_replaces_the_default_and_a_bare_request_has_no_query() {
    let (address, mut seen) = serve_canned(Canned::file("200_offset_now.json")).await;
    let upstream = upstream_builder(address)
        .path("/electric/v1/shape")
        .build()
        .unwrap();
    upstream.clone().oneshot(get("/whatever")).await.unwrap();
    assert_eq!(
        seen.recv().await.unwrap().path_and_query,
        "/electric/v1/shape"
    );
    upstream.oneshot(get("/v1/shape?a=%20b+c")).await.unwrap();
    assert_eq!(
        seen.recv().await.unwrap().path_and_query,
        "/electric/v1/shape?a=%20b+c"
    );
}

#[tokio::test]
async fn h2c_when_configured() {
    let canned = Canned::file("200_initial_offset_-1.json");
    let handler_canned = canned.clone();
    let (address, mut seen) = serve(Protocol::H2c, move |_request| {
        let canned = handler_canned.clone();
        async move { canned.response() }
    })
    .await;
    let upstream = upstream_builder(address).http2_only(true).build().unwrap();
    let response = upstream
        .oneshot(get(&format!("/x?{}", canned.request_query)))
        .await
        .unwrap();
    canned.assert_passed_through(response).await;
    let request = seen.recv().await.unwrap();
    assert_eq!(request.version, Version::HTTP_2);
    assert_eq!(
        request.path_and_query,
        format!("/v1/shape?{}", canned.request_query)
    );
}

/// Answers with an event stream whose body the test writes: each request's body sender goes
/// to the test, after `first_frame` (if any) went into the body with the response head.
async fn serve_event_stream(
    first_frame: Option<&'static [u8]>,
) -> (SocketAddr, mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>) {
    let (senders, streams) = mpsc::unbounded_channel();
    let (address, _seen) = serve(Protocol::Http1, move |_request| {
        let (sender, body) = channel_body();
        if let Some(frame) = first_frame {
            sender.try_send(Bytes::from_static(frame)).unwrap();
        }
        senders.send(sender).unwrap();
        async move {
            let mut response = Response::new(body);
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/event-stream"),
            );
            response
        }
    })
    .await;
    (address, streams)
}

/// Reads frames until exactly `expected` has arrived.
async fn read_exactly<B>(body: &mut B, expected: &[u8])
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let frame = body.frame().await.expect("body ended early").unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(received, expected);
}

#[tokio::test]
async fn sse_frames_reach_the_client_as_they_are_written_upstream() {
    let stream = std::fs::read_to_string(format!(
        "{}/tests/fixtures/electric/sse_live_stream.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let frames: Vec<String> = stream.split_inclusive("\n\n").map(str::to_owned).collect();
    assert!(frames.len() >= 4, "{frames:?}");

    let (address, mut streams) = serve_event_stream(None).await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    let response = upstream
        .oneshot(get(
            "/v1/shape?handle=h&live=true&live_sse=true&offset=0_inf&table=items",
        ))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let sender = streams.recv().await.unwrap();
    let mut body = response.into_body();
    for frame in &frames {
        // The next frame is written only after the previous one came through the proxy.
        sender.send(Bytes::from(frame.clone())).await.unwrap();
        read_exactly(&mut body, frame.as_bytes()).await;
    }
    drop(sender);
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn an_idle_stream_ends_with_an_idle_timeout_error() {
    // The frame travels with the head, so the only silence is the one that follows it.
    let (address, mut streams) = serve_event_stream(Some(b": keep-alive\n\n")).await;
    let upstream = upstream_builder(address)
        .idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let response = upstream.oneshot(get("/v1/shape?live=true")).await.unwrap();
    let sender = streams.recv().await.unwrap();
    let mut body = response.into_body();
    read_exactly(&mut body, b": keep-alive\n\n").await;
    // The upstream holds the stream open and silent.
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(matches!(error, BodyError::IdleTimeout), "{error:?}");
    assert!(body.frame().await.is_none());
    drop(sender);
}

#[tokio::test]
async fn dropping_the_response_body_cancels_the_upstream_request() {
    let (address, mut streams) = serve_event_stream(None).await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    let response = upstream.oneshot(get("/v1/shape?live=true")).await.unwrap();
    let sender = streams.recv().await.unwrap();
    let mut body = response.into_body();
    let frame = Bytes::from_static(b"data: {}\n\n");
    sender.send(frame.clone()).await.unwrap();
    read_exactly(&mut body, &frame).await;

    drop(body);
    // The server keeps writing; once the proxy has closed the connection, hyper fails the
    // write, drops the body and with it the receiving end of this sender.
    tokio::time::timeout(HANG_GUARD, async {
        while sender.send(frame.clone()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream stream outlived the client");
}

/// Reads one request head from a raw socket.
async fn read_head(socket: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buffer = [0; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(read > 0, "connection closed before the request head");
        head.extend_from_slice(&buffer[..read]);
    }
    head
}

/// A raw server that accepts one connection, reads the request head, then hands the socket to
/// `after_head`.
async fn raw_server<F, Fut>(after_head: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        read_head(&mut socket).await;
        after_head(socket).await;
    });
    address
}

/// Waits until the peer closes the socket.
async fn read_until_closed(socket: &mut TcpStream) {
    let mut buffer = [0; 1024];
    while matches!(socket.read(&mut buffer).await, Ok(read) if read > 0) {}
}

#[tokio::test]
async fn dropping_the_response_future_cancels_the_upstream_request() {
    let (received, request_received) = oneshot::channel();
    let (closed, connection_closed) = oneshot::channel();
    let address = raw_server(|mut socket| async move {
        received.send(()).unwrap();
        // A long-poll that never answers, until the proxy goes away.
        read_until_closed(&mut socket).await;
        closed.send(()).unwrap();
    })
    .await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    let call = tokio::spawn(upstream.oneshot(get("/v1/shape?live=true")));
    request_received.await.unwrap();
    call.abort();
    tokio::time::timeout(HANG_GUARD, connection_closed)
        .await
        .expect("the upstream connection outlived the client")
        .unwrap();
}

/// Asserts that a request with a `secret` in its query is refused by the upstream itself:
/// exact JSON, no-store, nothing internal in the body, a warning logged without the secret.
async fn assert_gateway_refusal(
    upstream: ElectricUpstream,
    address: SocketAddr,
    status: StatusCode,
    json: &str,
) {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let request = get("/v1/shape?offset=-1&table=items&secret=s3cr3t");
    let response = upstream.oneshot(request).await.unwrap();
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = body_bytes(response.into_body()).await;
    assert_eq!(body, json);
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(!body.contains(&address.ip().to_string()), "{body}");
    assert!(!body.contains(&address.port().to_string()), "{body}");
    let lines = logs.lines();
    assert!(
        lines.iter().any(|line| line.starts_with("WARN")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("s3cr3t")),
        "{lines:?}"
    );
}

const BAD_GATEWAY_JSON: &str = r#"{"message":"Bad gateway"}"#;

#[tokio::test]
async fn nothing_listening_is_a_502_that_names_nothing_internal() {
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    assert_gateway_refusal(upstream, address, StatusCode::BAD_GATEWAY, BAD_GATEWAY_JSON).await;
}

#[tokio::test]
async fn a_connection_closed_before_the_head_is_a_502() {
    let address = raw_server(|mut socket| async move {
        socket.shutdown().await.unwrap();
    })
    .await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    assert_gateway_refusal(upstream, address, StatusCode::BAD_GATEWAY, BAD_GATEWAY_JSON).await;
}

#[tokio::test]
async fn no_response_head_within_the_timeout_is_a_504() {
    let address = raw_server(|mut socket| async move {
        read_until_closed(&mut socket).await;
    })
    .await;
    let upstream = upstream_builder(address)
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let json = r#"{"message":"Gateway timeout"}"#;
    assert_gateway_refusal(upstream, address, StatusCode::GATEWAY_TIMEOUT, json).await;
}

fn with_credentials(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri)
        .header("authorization", "Bearer user-token")
        .header("cookie", "session=abc")
        .header("host", "gateway.example")
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn client_credentials_stay_behind_by_default() {
    let (address, mut seen) = serve_canned(Canned::file("200_offset_now.json")).await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    upstream
        .oneshot(with_credentials("/v1/shape?offset=now&table=items"))
        .await
        .unwrap();
    let headers = seen.recv().await.unwrap().headers;
    assert_eq!(headers.get("authorization"), None);
    assert_eq!(headers.get("cookie"), None);
    assert_eq!(headers["host"], address.to_string());
}

#[tokio::test]
async fn client_credentials_are_forwarded_when_configured() {
    let (address, mut seen) = serve_canned(Canned::file("200_offset_now.json")).await;
    let upstream = upstream_builder(address)
        .forward_authorization(true)
        .forward_cookie(true)
        .forward_host(true)
        .build()
        .unwrap();
    upstream
        .oneshot(with_credentials("/v1/shape?offset=now&table=items"))
        .await
        .unwrap();
    let headers = seen.recv().await.unwrap().headers;
    assert_eq!(headers["authorization"], "Bearer user-token");
    assert_eq!(headers["cookie"], "session=abc");
    assert_eq!(headers["host"], "gateway.example");
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let (address, mut seen) = serve(Protocol::Http1, |_request| async {
        Response::builder()
            .header("connection", "x-server-hop")
            .header("x-server-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("proxy-authenticate", "Basic realm=\"electric\"")
            .header("trailer", "x-checksum")
            .header("electric-handle", "h-1")
            .header("etag", "\"h-1:-1:0_0\"")
            .body(chunked(vec![Bytes::from_static(b"[]")]))
            .unwrap()
    })
    .await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    let request = Request::get("/v1/shape?offset=-1&table=items")
        .header("connection", "x-client-hop, keep-alive")
        .header("x-client-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic dXNlcjpwdw==")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("if-none-match", "\"h-0\"")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = upstream.oneshot(request).await.unwrap();

    let upstream_saw = seen.recv().await.unwrap().headers;
    for name in HOP_BY_HOP.iter().chain(&["x-client-hop"]) {
        assert_eq!(upstream_saw.get(*name), None, "{name} went upstream");
    }
    assert_eq!(upstream_saw["if-none-match"], "\"h-0\"");
    assert!(upstream_saw.contains_key("traceparent"));

    for name in HOP_BY_HOP.iter().chain(&["x-server-hop"]) {
        assert_eq!(response.headers().get(*name), None, "{name} came back");
    }
    assert_eq!(response.headers()["electric-handle"], "h-1");
    assert_eq!(response.headers()["etag"], "\"h-1:-1:0_0\"");
    assert_eq!(body_bytes(response.into_body()).await, "[]");
}

#[tokio::test]
async fn not_modified_must_refetch_and_unavailable_pass_through_untouched() {
    let not_modified = Canned {
        request_query: "handle=h-1&offset=0_inf&table=items".into(),
        status: StatusCode::NOT_MODIFIED,
        headers: vec![
            (
                HeaderName::from_static("etag"),
                HeaderValue::from_static("\"h-1:0_inf:0_inf\""),
            ),
            (
                HeaderName::from_static("cache-control"),
                HeaderValue::from_static("public, max-age=60, stale-while-revalidate=300"),
            ),
            (
                HeaderName::from_static("electric-handle"),
                HeaderValue::from_static("h-1"),
            ),
        ],
        body: Bytes::new(),
    };
    let must_refetch = Canned::file("409_must_refetch.json");
    let unavailable = Canned::from_response(
        &fixture_json("503_errors.json")["examples"][1],
        "offset=-1&table=items",
    );
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(unavailable
        .headers
        .iter()
        .any(|(name, value)| name == "retry-after" && value == "10"));

    for canned in [not_modified, must_refetch, unavailable] {
        let (address, mut seen) = serve_canned(canned.clone()).await;
        let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
        let response = upstream
            .oneshot(get(&format!("/v1/shape?{}", canned.request_query)))
            .await
            .unwrap();
        canned.assert_passed_through(response).await;
        seen.recv().await.unwrap();
    }
}

#[tokio::test]
async fn a_post_body_streams_upstream_as_the_client_sends_it() {
    let (chunks_seen, mut upstream_chunks) = mpsc::unbounded_channel();
    let (address, mut seen) = serve(Protocol::Http1, move |request| {
        let chunks_seen = chunks_seen.clone();
        async move {
            let mut body = request.into_body();
            while let Some(frame) = body.frame().await {
                chunks_seen
                    .send(frame.unwrap().into_data().unwrap())
                    .unwrap();
            }
            Response::new(chunked(vec![Bytes::from_static(b"{}")]))
        }
    })
    .await;
    let upstream = ElectricUpstream::new(format!("http://{address}")).unwrap();
    let (client_sender, client_body) = channel_body();
    let request = Request::post("/v1/shape?table=items")
        .header("content-type", "application/json")
        .body(client_body)
        .unwrap();
    let call = tokio::spawn(upstream.oneshot(request));

    let mut arrived = Vec::new();
    for part in [&b"{\"where\":"[..], &b"\"id > 1\"}"[..]] {
        // The second part is sent only once the first has reached the upstream.
        client_sender.send(Bytes::from_static(part)).await.unwrap();
        let target = arrived.len() + part.len();
        while arrived.len() < target {
            arrived.extend_from_slice(&upstream_chunks.recv().await.unwrap());
        }
    }
    drop(client_sender);
    assert_eq!(arrived, b"{\"where\":\"id > 1\"}");

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_bytes(response.into_body()).await, "{}");
    let request = seen.recv().await.unwrap();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path_and_query, "/v1/shape?table=items");
    assert_eq!(request.headers["content-type"], "application/json");
}
