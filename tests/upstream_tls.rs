//! `ElectricUpstream` over HTTPS: the Electric stand-in behind a TLS listener, with a CA and
//! certificates made at test time.
#![cfg(all(feature = "tls", feature = "testing"))]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "support/logs.rs"]
mod logs;
#[path = "support/tls.rs"]
mod tls;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_electric::testing::{Column, ElectricStandIn, TableSchema};
use tower_electric::upstream::{BuildError, Builder, TlsError, TlsRoots};
use tower_electric::ElectricUpstream;

use logs::CapturedLogs;
use tls::{server_params, Ca, ServerTls, TempDir, TlsStandIn};

/// A guard against a hang, never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// What a refused TLS connection answers, whatever went wrong in it.
const TLS_FAILED_JSON: &str = r#"{"message":"Bad gateway: TLS with the upstream failed"}"#;

// ---------------------------------------------------------------------------------------
// The stand-in and its requests

fn items() -> ElectricStandIn {
    let standin = ElectricStandIn::builder()
        .long_poll_hold(Duration::from_secs(30))
        .secret("s3cr3t-electric")
        .build();
    standin
        .create_table(
            TableSchema::new("items")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("title", "text")),
        )
        .unwrap();
    standin
        .insert("items", [("id", "1"), ("title", "first")])
        .unwrap();
    standin
}

/// An upstream at `server` that trusts only `ca`.
fn trusting(server: &TlsStandIn, ca: &Ca) -> Builder {
    ElectricUpstream::builder(server.url())
        .tls_roots(TlsRoots::CustomOnly)
        .ca_pem(ca.pem.as_bytes())
}

fn get(uri: &str) -> Request<Empty<Bytes>> {
    Request::get(uri).body(Empty::new()).unwrap()
}

async fn json_of(response: http::Response<tower_electric::upstream::ResponseBody>) -> Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// A snapshot, then a live long-poll woken by an insert, both through `upstream`.
async fn snapshot_then_live(standin: &ElectricStandIn, upstream: &ElectricUpstream) {
    let response = upstream
        .clone()
        .oneshot(get(
            "/v1/shape?offset=-1&table=items&secret=s3cr3t-electric",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let handle = response.headers()["electric-handle"]
        .to_str()
        .unwrap()
        .to_owned();
    let snapshot = json_of(response).await;
    assert_eq!(snapshot[0]["value"]["title"], "first");
    assert_eq!(snapshot[1]["headers"]["control"], "snapshot-end");

    let live = format!(
        "/v1/shape?cursor=&handle={handle}&live=true&offset=0_inf&table=items&secret=s3cr3t-electric"
    );
    let live = tokio::spawn(upstream.clone().oneshot(get(&live)));
    tokio::time::timeout(HANG_GUARD, standin.wait_for_live_in_flight(1))
        .await
        .unwrap();
    standin
        .insert("items", [("id", "2"), ("title", "second")])
        .unwrap();
    let response = tokio::time::timeout(HANG_GUARD, live)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("electric-cursor"));
    let changes = json_of(response).await;
    assert_eq!(changes[0]["headers"]["operation"], "insert");
    assert_eq!(changes[0]["value"]["title"], "second");
}

// ---------------------------------------------------------------------------------------
// Refusals: every TLS failure is the same 502, naming nothing, logging no secret

/// A refusal as the client sees it, and what the crate logged while answering it.
struct Refusal {
    body: String,
    lines: Vec<String>,
}

/// Sends a request carrying Electric's `secret` and asserts that it is refused by the upstream
/// itself: a 502 JSON body, no-store, no address, host, certificate text or secret in the
/// body; a warning logged, without the secret; the stand-in never saw the request.
async fn refusal(upstream: ElectricUpstream, server: &TlsStandIn) -> Refusal {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let request = get("/v1/shape?offset=-1&table=items&secret=s3cr3t-electric");
    let response = tokio::time::timeout(HANG_GUARD, upstream.oneshot(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    for internal in [
        "s3cr3t",
        "localhost",
        "127.0.0.1",
        &server.addr.port().to_string(),
        "certificate",
        "BEGIN",
    ] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
    let lines = logs.lines();
    assert!(
        lines.iter().any(|line| line.starts_with("WARN")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("s3cr3t")),
        "{lines:?}"
    );
    assert!(server.versions().is_empty(), "{:?}", server.versions());
    Refusal { body, lines }
}

/// As [`refusal`], and the body is the TLS failure's exactly. Returns the logged lines.
async fn assert_tls_refusal(upstream: ElectricUpstream, server: &TlsStandIn) -> Vec<String> {
    let refusal = refusal(upstream, server).await;
    assert_eq!(refusal.body, TLS_FAILED_JSON, "{:?}", refusal.lines);
    refusal.lines
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_a_502() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    let other = Ca::new("Someone else's CA");
    let lines = assert_tls_refusal(trusting(&server, &other).build().unwrap(), &server).await;
    // The detail is for the operator, in the log.
    assert!(
        lines.iter().any(|line| line.contains("UnknownIssuer")),
        "{lines:?}"
    );
    assert!(standin.requests().is_empty());
}

#[tokio::test]
async fn a_private_ca_is_not_trusted_by_the_default_web_roots() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    let upstream = ElectricUpstream::new(server.url()).unwrap();
    assert_tls_refusal(upstream, &server).await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_a_502() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let cert = ca.server(&["electric.example"]);
    let server = TlsStandIn::serve(&standin, &ServerTls::new(cert)).await;
    let lines = assert_tls_refusal(trusting(&server, &ca).build().unwrap(), &server).await;
    assert!(
        lines.iter().any(|line| line.contains("not valid for name")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_certificate_for_the_name_is_no_good_for_the_address() {
    // Verified against the URL's host: `127.0.0.1` is not `localhost`.
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    let upstream = ElectricUpstream::builder(format!("https://{}", server.addr))
        .tls_roots(TlsRoots::CustomOnly)
        .ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    assert_tls_refusal(upstream, &server).await;
}

#[tokio::test]
async fn an_expired_certificate_is_a_502() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let mut params = server_params(&["localhost"]);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.issue(params))).await;
    let lines = assert_tls_refusal(trusting(&server, &ca).build().unwrap(), &server).await;
    assert!(
        lines
            .iter()
            .any(|line| line.contains("certificate expired")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_a_client_certificate_refuses_a_client_without_one() {
    // In TLS 1.3 the server refuses after the client's handshake is done: the alert arrives
    // on the first read, inside the HTTP/1.1 or the h2 connection, before or after the
    // request was handed to it (hyper then reports a send error, "channel closed", or that
    // the connection was not ready), or is never read, when the client's first write meets
    // the server's reset (a broken pipe). Each is the TLS 502. Rounds on two threads, so that
    // the orders vary.
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let standin = items();
        let ca = Ca::new("Electric CA");
        let tls = ServerTls::new(ca.server(&["localhost"]))
            .alpn(&[alpn])
            .require_client_cert(&ca);
        let server = TlsStandIn::serve(&standin, &tls).await;
        for _ in 0..12 {
            let lines = assert_tls_refusal(trusting(&server, &ca).build().unwrap(), &server).await;
            assert!(
                lines.iter().any(|line| line.contains("CertificateRequired")
                    || line.contains("asked for a client certificate")),
                "{lines:?}"
            );
        }
        assert_eq!(server.handshakes.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_ca_the_server_does_not_trust_is_refused() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).require_client_cert(&ca);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let stranger = Ca::new("Unknown client CA").client("gateway");
    for _ in 0..12 {
        let upstream = trusting(&server, &ca)
            .client_identity_pem(stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes())
            .build()
            .unwrap();
        let lines = assert_tls_refusal(upstream, &server).await;
        assert!(
            lines.iter().any(|line| line.contains("UnknownCA")
                || line.contains("asked for a client certificate")),
            "{lines:?}"
        );
    }
}

#[tokio::test]
async fn http2_only_against_a_server_without_h2_is_a_502() {
    // With `http2_only`, ALPN offers h2 alone: a server that speaks only HTTP/1.1 refuses the
    // handshake, instead of the client speaking h2 at an HTTP/1.1 server.
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).alpn(&[b"http/1.1"]);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let upstream = trusting(&server, &ca).http2_only(true).build().unwrap();
    assert_tls_refusal(upstream, &server).await;
}

#[tokio::test]
async fn a_plaintext_server_at_an_https_url_is_a_tls_502() {
    let standin = items();
    let plain = standin.serve().await.unwrap();
    let ca = Ca::new("Electric CA");
    let url = format!("https://localhost:{}", plain.addr().port());
    let upstream = ElectricUpstream::builder(url)
        .tls_roots(TlsRoots::CustomOnly)
        .ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let response = upstream
        .oneshot(get("/v1/shape?secret=s3cr3t-electric"))
        .await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, TLS_FAILED_JSON);
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_is_a_502_within_the_connect_timeout() {
    // TCP accepted, then silence: the connect timeout covers the TLS handshake too, so this
    // is a 502 in well under the idle timeout, not a 504 after it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (held, mut held_receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = held.send(socket);
        }
    });
    let ca = Ca::new("Electric CA");
    let upstream = ElectricUpstream::builder(format!("https://localhost:{}", address.port()))
        .ca_pem(ca.pem.as_bytes())
        .connect_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let response = tokio::time::timeout(HANG_GUARD, upstream.oneshot(get("/v1/shape")))
        .await
        .expect("the handshake wait was not bounded by the connect timeout")
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"message":"Bad gateway"}"#);
    assert!(
        held_receiver.try_recv().is_ok(),
        "the server never saw the connection"
    );
}

#[tokio::test]
async fn a_plain_connect_failure_is_still_the_plain_502() {
    // Nothing listening: not a TLS failure, and not said to be one.
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let ca = Ca::new("Electric CA");
    let upstream = ElectricUpstream::builder(format!("https://localhost:{}", address.port()))
        .ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let response = upstream.oneshot(get("/v1/shape")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"message":"Bad gateway"}"#);
}

// ---------------------------------------------------------------------------------------
// Building: bad TLS settings are refused before any request

#[test]
fn tls_settings_for_a_plain_http_url_are_refused() {
    let ca = Ca::new("Electric CA");
    let error = ElectricUpstream::builder("http://localhost:3000")
        .ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::TlsSettingsWithoutHttps);
    let error = ElectricUpstream::builder("http://localhost:3000")
        .tls_roots(TlsRoots::System)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::TlsSettingsWithoutHttps);
}

#[test]
fn custom_only_roots_need_a_ca() {
    let error = ElectricUpstream::builder("https://localhost:3000")
        .tls_roots(TlsRoots::CustomOnly)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::Tls(TlsError::NoRoots));
}

#[test]
fn a_ca_pem_without_certificates_is_refused() {
    for pem in [
        &b""[..],
        b"not pem at all",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let error = ElectricUpstream::builder("https://localhost:3000")
            .ca_pem(pem)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                error,
                BuildError::Tls(TlsError::NoCertificate { .. } | TlsError::InvalidPem { .. })
            ),
            "{error:?}"
        );
    }
}

#[test]
fn a_missing_ca_file_names_the_file_but_nothing_read() {
    let path = std::env::temp_dir().join("tower-electric-no-such-ca.pem");
    let error = ElectricUpstream::builder("https://localhost:3000")
        .ca_pem_file(&path)
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::Tls(TlsError::ReadFile { .. })),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("tower-electric-no-such-ca.pem"),
        "{error}"
    );
}

#[test]
fn a_client_key_that_does_not_match_its_certificate_is_refused() {
    let ca = Ca::new("Electric CA");
    let one = ca.client("one");
    let two = ca.client("two");
    let error = ElectricUpstream::builder("https://localhost:3000")
        .client_identity_pem(one.cert_pem.as_bytes(), two.key_pem.as_bytes())
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::Tls(TlsError::InvalidClientIdentity));
    // Neither the error nor the builder's Debug shows the key.
    let key_body = two.key_pem.lines().nth(1).unwrap();
    assert!(!format!("{error} {error:?}").contains(key_body));
    let builder = ElectricUpstream::builder("https://localhost:3000")
        .client_identity_pem(one.cert_pem.as_bytes(), one.key_pem.as_bytes());
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains(one.key_pem.lines().nth(1).unwrap()),
        "{debug}"
    );
    assert!(debug.contains("redacted"), "{debug}");
}

#[test]
fn a_client_key_pem_without_a_key_is_refused() {
    let ca = Ca::new("Electric CA");
    let one = ca.client("one");
    let error = ElectricUpstream::builder("https://localhost:3000")
        .client_identity_pem(one.cert_pem.as_bytes(), one.cert_pem.as_bytes())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            BuildError::Tls(TlsError::NoPrivateKey | TlsError::InvalidPem { .. })
        ),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Working connections

#[tokio::test]
async fn snapshot_and_live_over_https_with_http1_chosen_by_alpn() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).alpn(&[b"http/1.1"]);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let upstream = trusting(&server, &ca).build().unwrap();
    snapshot_then_live(&standin, &upstream).await;
    assert_eq!(server.versions(), [Version::HTTP_11, Version::HTTP_11]);
    // The secret crossed to Electric inside TLS, as the layers put it there.
    let requests = standin.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|request| request
        .query
        .contains(&("secret".into(), "s3cr3t-electric".into()))));
}

#[tokio::test]
async fn snapshot_and_live_over_https_with_h2_chosen_by_alpn() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    let upstream = trusting(&server, &ca).build().unwrap();
    snapshot_then_live(&standin, &upstream).await;
    assert_eq!(server.versions(), [Version::HTTP_2, Version::HTTP_2]);
    // h2 multiplexes: the snapshot and the held long-poll shared one connection.
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.negotiated(), [Some("h2".to_owned())]);
}

#[tokio::test]
async fn http2_only_over_https() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).alpn(&[b"h2"]);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let upstream = trusting(&server, &ca).http2_only(true).build().unwrap();
    snapshot_then_live(&standin, &upstream).await;
    assert_eq!(server.versions(), [Version::HTTP_2, Version::HTTP_2]);
}

#[tokio::test]
async fn a_server_without_alpn_gets_http1() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).alpn(&[]);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let upstream = trusting(&server, &ca).build().unwrap();
    let response = upstream
        .oneshot(get(
            "/v1/shape?offset=-1&table=items&secret=s3cr3t-electric",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.versions(), [Version::HTTP_11]);
    assert_eq!(server.negotiated(), [None]);
}

#[tokio::test]
async fn http1_connections_over_tls_are_pooled() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).alpn(&[b"http/1.1"]);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let upstream = trusting(&server, &ca).build().unwrap();
    for _ in 0..3 {
        let response = upstream
            .clone()
            .oneshot(get(
                "/v1/shape?offset=-1&table=items&secret=s3cr3t-electric",
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // Read to the end, so the connection goes back to the pool.
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(server.versions().len(), 3);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_ca_from_a_pem_file_is_trusted() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    let dir = TempDir::new("ca-file");
    let path = dir.write("ca.pem", &ca.pem);
    // The web roots stay on beside the file's CA, as for a self-hosted Electric next to others.
    let upstream = ElectricUpstream::builder(server.url())
        .ca_pem_file(&path)
        .build()
        .unwrap();
    let response = upstream
        .oneshot(get(
            "/v1/shape?offset=-1&table=items&secret=s3cr3t-electric",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_system_store_does_not_know_a_private_ca_but_a_ca_added_to_it_is_trusted() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let server = TlsStandIn::serve(&standin, &ServerTls::new(ca.server(&["localhost"]))).await;
    // A machine without a trust store cannot build this upstream at all: that is said.
    match ElectricUpstream::builder(server.url())
        .tls_roots(TlsRoots::System)
        .build()
    {
        Ok(upstream) => {
            assert_tls_refusal(upstream, &server).await;
        }
        Err(error) => assert_eq!(error, BuildError::Tls(TlsError::NoRoots)),
    }
    let upstream = ElectricUpstream::builder(server.url())
        .tls_roots(TlsRoots::System)
        .ca_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let response = upstream
        .oneshot(get(
            "/v1/shape?offset=-1&table=items&secret=s3cr3t-electric",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_a_server_that_requires_one() {
    let standin = items();
    let ca = Ca::new("Electric CA");
    let tls = ServerTls::new(ca.server(&["localhost"])).require_client_cert(&ca);
    let server = TlsStandIn::serve(&standin, &tls).await;
    let gateway = ca.client("gateway");
    let dir = TempDir::new("mtls");
    let cert = dir.write("gateway.pem", &gateway.cert_pem);
    let key = dir.write("gateway.key", &gateway.key_pem);
    let upstream = trusting(&server, &ca)
        .client_identity_pem_files(&cert, &key)
        .build()
        .unwrap();
    snapshot_then_live(&standin, &upstream).await;
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);
}
