//! `ElectricUpstream`'s own HTTP/1.1 client (plain `http://`) against scripted raw TCP servers:
//! connection reuse and when it must not happen, response framing that could split one
//! response into two, informational heads, and how request bodies are framed.
#![cfg(feature = "proxy")]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tower_electric::upstream::{BodyError, ResponseBody};
use tower_electric::ElectricUpstream;

/// A guard against a hang, never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(20);

const BAD_GATEWAY_JSON: &str = r#"{"message":"Bad gateway"}"#;

/// A scripted upstream: every accepted connection is handed to `script` with its number
/// (0 for the first); `accepted` counts them.
struct Scripted {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn scripted<F, Fut>(script: F) -> Scripted
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let number = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(number, socket));
        }
    });
    Scripted { address, accepted }
}

impl Scripted {
    fn upstream(&self) -> ElectricUpstream {
        ElectricUpstream::new(format!("http://{}", self.address)).unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads one request head (and nothing after it: the client sends the next request only once
/// the response has ended); `None` when the client closed the connection first.
async fn request_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8(head).unwrap())
}

/// Answers every request on the connection with `response`, as long as the client sends.
async fn answer_each(mut socket: TcpStream, response: &'static [u8]) {
    while request_head(&mut socket).await.is_some() {
        if socket.write_all(response).await.is_err() {
            return;
        }
    }
}

fn get(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

async fn send<B>(upstream: &ElectricUpstream, request: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::time::timeout(HANG_GUARD, upstream.clone().oneshot(request))
        .await
        .expect("no response")
        .unwrap()
}

async fn body_of(response: Response<ResponseBody>) -> Result<Bytes, BodyError> {
    tokio::time::timeout(HANG_GUARD, response.into_body().collect())
        .await
        .expect("the body did not end")
        .map(|collected| collected.to_bytes())
}

/// Two GETs in a row; the bodies they got.
async fn two_gets(server: &Scripted) -> [Bytes; 2] {
    let upstream = server.upstream();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let response = send(&upstream, get("/v1/shape?table=items")).await;
        assert_eq!(response.status(), StatusCode::OK);
        bodies.push(body_of(response).await.unwrap());
    }
    bodies.try_into().unwrap()
}

#[tokio::test]
async fn a_connection_whose_response_ended_exactly_carries_the_next_request() {
    for response in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]"[..],
        // Chunk extensions and trailers are read and left out.
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;ext=\"a\"\r\n[\r\n1\r\n]\r\n0\r\nx-trailer: t\r\n\r\n",
    ] {
        let server = scripted(move |_, socket| answer_each(socket, response)).await;
        assert_eq!(two_gets(&server).await, [&b"[]"[..], b"[]"]);
        assert_eq!(server.accepted(), 1, "{}", String::from_utf8_lossy(response));
    }
}

#[tokio::test]
async fn a_length_body_frees_its_connection_with_its_last_frame() {
    // A server that sees `is_end_stream` after the last frame never polls the body again:
    // the connection must be back in the pool by then, not only at the next poll.
    let server = scripted(|_, socket| {
        answer_each(socket, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
    })
    .await;
    let upstream = server.upstream();
    for _ in 0..2 {
        let mut body = send(&upstream, get("/v1/shape")).await.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "[]");
        assert!(body.is_end_stream());
        drop(body);
    }
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn no_body_after_head_204_and_304_and_the_connection_is_reused() {
    // A 304 with a content-length of the full body it does not send, as servers do.
    let server = scripted(|_, mut socket| async move {
        while let Some(head) = request_head(&mut socket).await {
            let response: &[u8] = if head.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
            } else if head.contains("if-none-match") {
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 100\r\netag: \"e\"\r\n\r\n"
            } else {
                b"HTTP/1.1 204 No Content\r\n\r\n"
            };
            socket.write_all(response).await.unwrap();
        }
    })
    .await;
    let upstream = server.upstream();
    let head = Request::head("/v1/shape").body(Empty::new()).unwrap();
    let not_modified = Request::get("/v1/shape")
        .header("if-none-match", "\"e\"")
        .body(Empty::new())
        .unwrap();
    let responses = [
        send(&upstream, head).await,
        send(&upstream, not_modified).await,
        send(&upstream, get("/v1/shape")).await,
    ];
    let statuses: Vec<_> = responses.iter().map(Response::status).collect();
    assert_eq!(statuses, [200, 304, 204]);
    for response in responses {
        assert_eq!(body_of(response).await.unwrap(), "");
    }
    let after = send(&upstream, get("/v1/shape")).await;
    assert_eq!(after.status(), 204);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn no_reuse_after_connection_close_http_1_0_or_a_body_that_ends_with_the_connection() {
    for response in [
        &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n[]"[..],
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 2\r\n\r\n[]",
    ] {
        // The server would take another request on the same connection: the client must not.
        let server = scripted(move |_, socket| answer_each(socket, response)).await;
        assert_eq!(two_gets(&server).await, [&b"[]"[..], b"[]"]);
        assert_eq!(
            server.accepted(),
            2,
            "{}",
            String::from_utf8_lossy(response)
        );
    }

    // No length: the body is everything until the server closes.
    let server = scripted(|_, mut socket| async move {
        request_head(&mut socket).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\n\r\n[{\"a\":1}]")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        two_gets(&server).await,
        [&b"[{\"a\":1}]"[..], b"[{\"a\":1}]"]
    );
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let (closed, mut closed_seen) = mpsc::unbounded_channel();
    let server = scripted(move |number, mut socket| {
        let closed = closed.clone();
        async move {
            request_head(&mut socket).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
                .await
                .unwrap();
            // The rest never comes: the next read sees the client's close.
            let mut rest = [0; 16];
            assert_eq!(socket.read(&mut rest).await.unwrap(), 0);
            closed.send(number).unwrap();
        }
    })
    .await;
    let upstream = server.upstream();
    for expected in 0..2 {
        let response = send(&upstream, get("/v1/shape?live=true")).await;
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "01234");
        drop(body);
        let number = tokio::time::timeout(HANG_GUARD, closed_seen.recv()).await;
        assert_eq!(number.unwrap(), Some(expected));
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn bytes_after_a_response_never_reach_the_next_request() {
    const FORGED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged";
    for forged_later in [false, true] {
        let (written, mut forged_written) = mpsc::unbounded_channel();
        let server = scripted(move |number, mut socket| {
            let written = written.clone();
            async move {
                request_head(&mut socket).await.unwrap();
                if number > 0 {
                    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nreal";
                    socket.write_all(response).await.unwrap();
                    return;
                }
                let first = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
                if forged_later {
                    socket.write_all(first).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    socket.write_all(FORGED).await.unwrap();
                } else {
                    // In the same segment as the response, as a split response would be.
                    socket
                        .write_all(&[&first[..], FORGED].concat())
                        .await
                        .unwrap();
                }
                written.send(()).unwrap();
                // Would answer on this connection again: only its bytes tell it is unfit.
                answer_each(
                    socket,
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nreused",
                )
                .await;
            }
        })
        .await;
        let upstream = server.upstream();
        let first = send(&upstream, get("/v1/shape")).await;
        assert_eq!(body_of(first).await.unwrap(), "[]");
        forged_written.recv().await.unwrap();
        // Lets the runtime see the forged bytes arrive (ordering, not timing).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = send(&upstream, get("/v1/shape")).await;
        assert_eq!(
            body_of(second).await.unwrap(),
            "real",
            "forged later: {forged_later}"
        );
        assert_eq!(server.accepted(), 2);
    }
}

#[tokio::test]
async fn a_pooled_connection_closed_under_a_get_is_replaced_and_the_get_sent_again() {
    let server = scripted(|number, mut socket| async move {
        request_head(&mut socket).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
            .await
            .unwrap();
        if number == 0 {
            // The server's keep-alive ends just as the next request arrives.
            request_head(&mut socket).await.unwrap();
        }
    })
    .await;
    assert_eq!(two_gets(&server).await, [&b"[]"[..], b"[]"]);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_request_with_a_body_is_never_sent_twice() {
    let (bodies, mut bodies_seen) = mpsc::unbounded_channel();
    let server = scripted(move |number, mut socket| {
        let bodies = bodies.clone();
        async move {
            request_head(&mut socket).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                .await
                .unwrap();
            if let Some(head) = request_head(&mut socket).await {
                let mut body = [0; 4];
                socket.read_exact(&mut body).await.unwrap();
                bodies.send((number, head, body)).unwrap();
                // Closed without an answer: the client cannot tell whether it was acted on.
            }
        }
    })
    .await;
    let upstream = server.upstream();
    let first = send(&upstream, get("/v1/shape")).await;
    assert_eq!(body_of(first).await.unwrap(), "[]");
    let post = Request::post("/v1/shape")
        .body(Full::new(Bytes::from_static(b"{}{}")))
        .unwrap();
    let response = send(&upstream, post).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(body_of(response).await.unwrap(), BAD_GATEWAY_JSON);
    let (number, head, body) = bodies_seen.recv().await.unwrap();
    assert_eq!((number, &body), (0, b"{}{}"));
    assert!(head.starts_with("POST /v1/shape HTTP/1.1\r\n"), "{head}");
    assert!(bodies_seen.try_recv().is_err(), "the POST was sent twice");
    assert_eq!(server.accepted(), 1);
}

/// A server whose first connection answers one request, then closes on the next one's head;
/// every later connection closes on its first request's head. Reports (connection, head) of
/// each request it closed on.
async fn closing_on_second_request() -> (Scripted, mpsc::UnboundedReceiver<(usize, String)>) {
    let (heads, heads_seen) = mpsc::unbounded_channel();
    let server = scripted(move |number, mut socket| {
        let heads = heads.clone();
        async move {
            if number == 0 {
                request_head(&mut socket).await.unwrap();
                let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
                socket.write_all(response).await.unwrap();
            }
            if let Some(head) = request_head(&mut socket).await {
                heads.send((number, head)).unwrap();
            }
        }
    })
    .await;
    (server, heads_seen)
}

#[tokio::test]
async fn an_empty_post_is_never_sent_twice() {
    let (server, mut heads_seen) = closing_on_second_request().await;
    let upstream = server.upstream();
    let first = send(&upstream, get("/v1/shape")).await;
    assert_eq!(body_of(first).await.unwrap(), "[]");
    let post = Request::post("/v1/shape")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        send(&upstream, post).await.status(),
        StatusCode::BAD_GATEWAY
    );
    let (number, head) = heads_seen.recv().await.unwrap();
    assert_eq!(number, 0);
    assert!(head.starts_with("POST "), "{head}");
    assert!(
        heads_seen.try_recv().is_err(),
        "the empty POST was sent again"
    );
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn a_get_whose_pooled_connection_fails_is_sent_once_more_on_a_new_one() {
    let (server, mut heads_seen) = closing_on_second_request().await;
    let upstream = server.upstream();
    let first = send(&upstream, get("/v1/shape")).await;
    assert_eq!(body_of(first).await.unwrap(), "[]");
    // The pooled connection closes under it, and so does the new one: a 502, not a third try.
    let second = send(&upstream, get("/v1/shape?table=items")).await;
    assert_eq!(second.status(), StatusCode::BAD_GATEWAY);
    for expected in [0, 1] {
        let (number, head) = heads_seen.recv().await.unwrap();
        assert_eq!(number, expected);
        assert!(head.starts_with("GET /v1/shape?table=items "), "{head}");
    }
    assert!(
        heads_seen.try_recv().is_err(),
        "the GET was sent a third time"
    );
    assert_eq!(server.accepted(), 2);
}

/// The response to a GET sent to a server that answers `response`.
async fn answered_with(response: &'static [u8]) -> Response<ResponseBody> {
    let server = scripted(move |_, socket| answer_each(socket, response)).await;
    send(&server.upstream(), get("/v1/shape")).await
}

#[tokio::test]
async fn framing_that_could_split_a_response_is_a_502() {
    for response in [
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n2\r\n[]\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0x2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n[]",
        // Obsolete line folding and whitespace before the colon.
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n folded\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\n[]",
        b"HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\n[]",
        b"HTTP/2 200 OK\r\ncontent-length: 2\r\n\r\n[]",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
    ] {
        let response_text = String::from_utf8_lossy(response);
        let answer = answered_with(response).await;
        assert_eq!(answer.status(), StatusCode::BAD_GATEWAY, "{response_text}");
        assert_eq!(body_of(answer).await.unwrap(), BAD_GATEWAY_JSON, "{response_text}");
    }
}

#[tokio::test]
async fn repeats_of_one_content_length_are_one_length() {
    let answer =
        answered_with(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n[]").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(body_of(answer).await.unwrap(), "[]");
}

#[tokio::test]
async fn a_malformed_or_cut_body_ends_the_body_with_an_error() {
    for response in [
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\n[]\r\n0\r\n\r\n",
        // Chunk data longer than its size.
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\n[]\r\n0\r\n\r\n",
        // A bare LF inside a chunk extension (how "funky chunks" desync proxies).
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;a\nb\r\n[]\r\n0\r\n\r\n",
    ] {
        let answer = answered_with(response).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let error = body_of(answer).await.unwrap_err();
        assert!(matches!(error, BodyError::Upstream(_)), "{error:?}");
    }
    // A length the server does not deliver before closing.
    let server = scripted(|_, mut socket| async move {
        request_head(&mut socket).await.unwrap();
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234";
        socket.write_all(response).await.unwrap();
    })
    .await;
    let answer = send(&server.upstream(), get("/v1/shape")).await;
    assert!(matches!(body_of(answer).await, Err(BodyError::Upstream(_))));
}

#[tokio::test]
async fn informational_heads_are_read_and_left_out() {
    let answer = answered_with(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nelectric-offset: 0_0\r\n\r\n[]",
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["electric-offset"], "0_0");
    assert!(!answer.headers().contains_key("link"));
    assert_eq!(body_of(answer).await.unwrap(), "[]");
}

#[tokio::test]
async fn a_complete_response_head_larger_than_64_kib_is_a_502_however_it_arrives() {
    let server = scripted(|_, mut socket| async move {
        request_head(&mut socket).await.unwrap();
        let mut head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-big: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 100 * 1024));
        head.extend_from_slice(b"\r\n\r\n[]");
        let _ = socket.write_all(&head).await;
        tokio::time::sleep(HANG_GUARD).await;
    })
    .await;
    let answer = send(&server.upstream(), get("/v1/shape")).await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_response_head_larger_than_64_kib_is_a_502() {
    let server = scripted(|_, mut socket| async move {
        request_head(&mut socket).await.unwrap();
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.extend_from_slice(b"x-big: ");
        head.extend(std::iter::repeat_n(b'a', 70 * 1024));
        // The head never ends; the client must stop reading, not wait or grow.
        let _ = socket.write_all(&head).await;
        tokio::time::sleep(HANG_GUARD).await;
    })
    .await;
    let answer = send(&server.upstream(), get("/v1/shape")).await;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
}

/// What the server read of one request: its head, and its body bytes as they came on the wire.
async fn request_as_sent<B>(request: Request<B>) -> (String, Vec<u8>)
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (seen, mut requests) = mpsc::unbounded_channel();
    let server = scripted(move |_, mut socket| {
        let seen = seen.clone();
        async move {
            let head = request_head(&mut socket).await.unwrap();
            let mut body = Vec::new();
            let end: &[u8] = if head.contains("transfer-encoding: chunked") {
                b"0\r\n\r\n"
            } else {
                b""
            };
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |length| length.parse::<usize>().unwrap());
            let mut byte = [0; 1];
            while (end.is_empty() && body.len() < length)
                || (!end.is_empty() && !body.ends_with(end))
            {
                socket.read_exact(&mut byte).await.unwrap();
                body.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            seen.send((head, body)).unwrap();
        }
    })
    .await;
    let response = send(&server.upstream(), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    requests.recv().await.unwrap()
}

/// The values of header `name` in a request head.
fn header_values<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .collect()
}

#[tokio::test]
async fn a_request_body_states_its_framing_once_whatever_the_client_said() {
    // No body: no framing header at all.
    let (head, body) = request_as_sent(get("/v1/shape?table=items")).await;
    assert!(
        head.starts_with("GET /v1/shape?table=items HTTP/1.1\r\nhost: 127.0.0.1:"),
        "{head}"
    );
    assert!(header_values(&head, "content-length").is_empty(), "{head}");
    assert!(
        header_values(&head, "transfer-encoding").is_empty(),
        "{head}"
    );
    assert!(body.is_empty());

    // A known length, whatever length the client claimed.
    let post = Request::post("/v1/shape")
        .header("content-length", "999")
        .header("transfer-encoding", "chunked")
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .unwrap();
    let (head, body) = request_as_sent(post).await;
    assert_eq!(header_values(&head, "content-length"), ["7"], "{head}");
    assert!(
        header_values(&head, "transfer-encoding").is_empty(),
        "{head}"
    );
    assert_eq!(body, b"{\"a\":1}");

    // An empty POST says so.
    let empty = Request::post("/v1/shape")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (head, _) = request_as_sent(empty).await;
    assert_eq!(header_values(&head, "content-length"), ["0"], "{head}");

    // A streamed body of unknown length goes chunked, frame by frame.
    let frames = [Bytes::from_static(b"{\"a\""), Bytes::from_static(b":1}")]
        .map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let streamed = StreamBody::new(futures_util::stream::iter(frames));
    let post = Request::builder()
        .method(Method::POST)
        .uri("/v1/shape")
        .header("content-length", "7")
        .body(streamed)
        .unwrap();
    let (head, body) = request_as_sent(post).await;
    assert_eq!(
        header_values(&head, "transfer-encoding"),
        ["chunked"],
        "{head}"
    );
    assert!(header_values(&head, "content-length").is_empty(), "{head}");
    assert_eq!(body, b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n");
}
