//! Compression to clients (`examples/gateway/app.rs`'s `CompressionLayer`), served as the
//! example serves: the transform reads identity bytes from Electric, the client gets gzip or
//! br of what the transform wrote, `Vary` names both the credentials and `accept-encoding`,
//! and live responses are not held back by the compressor.

use std::io::Read;

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use super::serving::{h1_over, h2_over, read, send_h1, Served, ITEMS_SNAPSHOT};
use super::*;
use crate::serve::ServeConfig;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut decoded)
        .unwrap();
    decoded
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    decoded
}

/// `reply` with its body decoded by `decode`.
fn decoded(reply: &Reply, decode: fn(&[u8]) -> Vec<u8>) -> Reply {
    Reply {
        status: reply.status,
        headers: reply.headers.clone(),
        body: Bytes::from(decode(&reply.body)),
    }
}

fn accepting(mut request: Request<Full<Bytes>>, encodings: &'static str) -> Request<Full<Bytes>> {
    request
        .headers_mut()
        .insert(ACCEPT_ENCODING, http::HeaderValue::from_static(encodings));
    request
}

/// Every request Electric received asked for identity bytes, whatever the client accepted.
fn electric_got_identity_requests(database: &ElectricStandIn) {
    let requests = database.requests();
    assert!(!requests.is_empty());
    for request in requests {
        let asked: Vec<_> = request.headers.get_all(ACCEPT_ENCODING).iter().collect();
        assert_eq!(asked, ["identity"], "{request:#?}");
    }
}

/// The lower-cased names in all of a response's `Vary` values.
fn vary_names(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all(VARY)
        .iter()
        .flat_map(|value| value.to_str().unwrap().split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn gzip_and_br_snapshots_decode_to_the_rows_of_the_identity_snapshot() {
    let served = Served::start(standin(Duration::from_secs(60)), ServeConfig::default()).await;
    let mut send = h1_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let request = served.get("http", &ITEMS_SNAPSHOT, "alice-token");
    let (_, identity) = read(send_h1(&mut send, request).await).await;
    assert_eq!(identity.status, StatusCode::OK, "{:?}", identity.body);
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(
        received_rows(&identity, "acme"),
        served.expected_rows("acme")
    );

    for (encoding, decode) in [("gzip", gunzip as fn(&[u8]) -> Vec<u8>), ("br", unbrotli)] {
        let request = accepting(served.get("http", &ITEMS_SNAPSHOT, "alice-token"), encoding);
        let (_, reply) = read(send_h1(&mut send, request).await).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-encoding"), Some(encoding));
        assert_ne!(reply.body, identity.body);
        let reply = decoded(&reply, decode);
        assert_eq!(
            reply.json().unwrap(),
            identity.json().unwrap(),
            "{encoding}"
        );
        assert_eq!(received_rows(&reply, "acme"), served.expected_rows("acme"));
        // The policy's credential headers and the compressor's, each once.
        let vary = vary_names(&reply);
        for name in ["authorization", "accept-encoding"] {
            assert_eq!(
                vary.iter().filter(|seen| *seen == name).count(),
                1,
                "{encoding}: {vary:?}"
            );
        }
    }
    electric_got_identity_requests(&served.database);
}

#[tokio::test]
async fn a_live_long_poll_answered_with_a_change_arrives_compressed_when_the_change_comes() {
    // Held for a minute unless a change ends it: the answer must come with the change, not
    // after the compressor or the hold.
    let served = Served::start(standin(Duration::from_secs(60)), ServeConfig::default()).await;
    let mut send = h2_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let snapshot = accepting(
        served.get("http", &ITEMS_SNAPSHOT, "alice-token"),
        "gzip, br",
    );
    let (_, snapshot) = read(bounded(send.send_request(snapshot)).await.unwrap()).await;
    assert_eq!(snapshot.header("content-encoding"), Some("br"));
    let snapshot = decoded(&snapshot, unbrotli);
    let live = accepting(served.live("http", &snapshot, false, "alice-token"), "gzip");
    let live = tokio::spawn(send.send_request(live));
    served.until_held(1).await;
    served.insert_acme_item("70", "Compressed on its way");
    // `bounded` gives up after 10 s, long before the stand-in's 60 s hold ends.
    let (_, reply) = read(bounded(live).await.unwrap().unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(
        received_rows(&decoded(&reply, gunzip), "acme"),
        [("70".to_owned(), "Compressed on its way".to_owned())]
    );
    electric_got_identity_requests(&served.database);
}

#[tokio::test]
async fn sse_through_the_compressing_stack_is_sent_uncompressed_frame_by_frame() {
    let database = standin_builder(Duration::from_secs(60))
        .sse_duration(Duration::from_secs(60))
        .build();
    let served = Served::start(database, ServeConfig::default()).await;
    let mut send = h2_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let snapshot = served.get("http", &ITEMS_SNAPSHOT, "alice-token");
    let (_, snapshot) = read(bounded(send.send_request(snapshot)).await.unwrap()).await;
    let sse = accepting(
        served.live("http", &snapshot, true, "alice-token"),
        "gzip, br",
    );
    let response = bounded(send.send_request(sse)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
    assert!(response.headers().get(CONTENT_ENCODING).is_none());

    served.insert_acme_item("71", "Pushed as written");
    let mut body = response.into_body();
    let mut received = String::new();
    // The frame arrives while the stream is open: the stand-in keeps it open for 60 s and
    // `bounded` gives up after 10.
    bounded(async {
        while !received.contains("Pushed as written") {
            let frame = body.frame().await.unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                received.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await;
    let change = received
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str::<serde_json::Value>(data).unwrap())
        .find(|message| message.get("value").is_some())
        .unwrap();
    assert_eq!(change["value"]["id"], "71");
    assert_eq!(change["value"]["title"], "Pushed as written");
    assert!(!http_body::Body::is_end_stream(&body));
    electric_got_identity_requests(&served.database);
}
