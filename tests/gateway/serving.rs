//! The example gateway as `cargo run --example gateway` serves it (`examples/gateway/serve.rs`),
//! on TCP: plain HTTP/1.1, h2c with prior knowledge, TLS with ALPN `h2` and `http/1.1`, many
//! live shapes on one HTTP/2 connection, the timeouts against slow clients, and a graceful
//! shutdown that lets held long-polls finish.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1 as client1, http2 as client2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tower_electric::ip::IpLists;
use tower_electric::testing::StandInServer;

use super::*;
use crate::columns::TenantKeys;
use crate::serve::{self, ServeConfig};
use crate::tls::{Ca, TempDir};

pub(super) const ITEMS_SNAPSHOT: [(&str, &str); 2] = [("table", "items"), ("offset", "-1")];

/// The example gateway's router served by `serve.rs` on `127.0.0.1`, in front of the stand-in
/// (titles encrypted at rest with random tenant keys).
pub(super) struct Served {
    pub(super) addr: SocketAddr,
    pub(super) database: ElectricStandIn,
    pub(super) keys: TenantKeys,
    _electric: StandInServer,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Served {
    pub(super) async fn start(database: ElectricStandIn, config: ServeConfig) -> Self {
        let tokens = app::parse_tokens(demo::DEMO_TOKENS).unwrap();
        let keys = app::random_tenant_keys(tokens.values()).unwrap();
        app::encrypt_at_rest(&database, &keys).unwrap();
        let electric = database.serve().await.unwrap();
        let router = app::router(app::GatewayConfig {
            electric_url: electric.url().to_owned(),
            upstream_http2: false,
            upstream_tls: app::UpstreamTls::default(),
            secret: InjectSecret::new(SecretString::new(SECRET)).unwrap(),
            tokens,
            lists: IpLists::new().allow("127.0.0.0/8").unwrap(),
            require_tokens: None,
            keys: Some(keys.clone()),
            writes: None,
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(serve::serve(listener, router, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            database,
            keys,
            _electric: electric,
            stop: Some(stop),
            serving,
        }
    }

    /// A `GET /v1/shape` for `pairs` as the holder of `token`, in absolute form (HTTP/2 wants
    /// `:scheme` and `:authority`; [`send_h1`] sends it in origin form).
    pub(super) fn get(
        &self,
        scheme: &str,
        pairs: &[(&str, &str)],
        token: &str,
    ) -> Request<Full<Bytes>> {
        let authority = match scheme {
            "https" => format!("localhost:{}", self.addr.port()),
            _ => self.addr.to_string(),
        };
        Request::get(format!("{scheme}://{authority}/v1/shape?{}", query(pairs)))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap()
    }

    /// The tenant's rows as stored, titles decrypted: what the gateway must serve it.
    pub(super) fn expected_rows(&self, tenant: &str) -> Vec<(String, String)> {
        let cipher = self.keys.cipher_for_tenant(tenant).unwrap();
        let rows: Vec<_> = self
            .database
            .rows("items")
            .unwrap()
            .iter()
            .filter(|row| row.get("tenant_id") == Some(Some(tenant)))
            .map(|row| {
                let title = cipher.decrypt("title", row.get("title").unwrap().unwrap());
                (row.get("id").unwrap().unwrap().to_owned(), title.unwrap())
            })
            .collect();
        assert!(!rows.is_empty());
        rows
    }

    /// The live request that follows `snapshot` (a long-poll, or SSE with `sse`).
    pub(super) fn live(
        &self,
        scheme: &str,
        snapshot: &Reply,
        sse: bool,
        token: &str,
    ) -> Request<Full<Bytes>> {
        let mut pairs = vec![
            ("table", "items"),
            ("offset", snapshot.header("electric-offset").unwrap()),
            ("handle", snapshot.header("electric-handle").unwrap()),
            ("live", "true"),
        ];
        if sse {
            pairs.push(("live_sse", "true"));
        }
        self.get(scheme, &pairs, token)
    }

    /// Waits until the stand-in holds `count` live requests (a guard against a hang, no
    /// timing assertion).
    pub(super) async fn until_held(&self, count: usize) {
        let held = || {
            self.database
                .requests()
                .iter()
                .filter(|request| request.query_value("live") == Some("true"))
                .count()
        };
        bounded(async {
            while held() < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Inserts an acme item with `title` encrypted, as the write path stores it.
    pub(super) fn insert_acme_item(&self, id: &str, title: &str) {
        let row = Row::new()
            .with("id", id)
            .with("tenant_id", "acme")
            .with("title", title)
            .with("done", "false");
        let encrypted = app::encrypt_row(&row, &self.keys).unwrap().unwrap();
        self.database.insert("items", encrypted).unwrap();
    }
}

/// A config whose timeouts make the slow-client tests quick, yet leave a prompt client (a
/// debug-build TLS handshake on a loaded 2-core CI machine included) far more than it needs.
pub(super) fn quick() -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(2),
        ..ServeConfig::default()
    }
}

/// Long-polls held until the test's insert, however slow the machine.
fn holding() -> ElectricStandIn {
    standin(Duration::from_secs(60))
}

pub(super) async fn h2_over<I>(io: I) -> client2::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = client2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    send
}

pub(super) async fn h1_over<I>(io: I) -> client1::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = client1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(connection);
    send
}

/// `request` as HTTP/1.1 sends it: in origin form, with `Host`.
pub(super) fn origin_form(mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let host = request.uri().authority().unwrap().to_string();
    *request.uri_mut() = request
        .uri()
        .path_and_query()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    request
        .headers_mut()
        .insert(header::HOST, host.parse().unwrap());
    request
}

/// Sends `request` over HTTP/1.1.
pub(super) async fn send_h1(
    send: &mut client1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Response<Incoming> {
    send.ready().await.unwrap();
    bounded(send.send_request(origin_form(request)))
        .await
        .unwrap()
}

/// The version a response came in, and the response read whole.
pub(super) async fn read(response: Response<Incoming>) -> (Version, Reply) {
    let version = response.version();
    (version, bounded(Reply::read(response)).await.unwrap())
}

/// A TLS server for `localhost` issued by a CA made for the test, loaded by `serve.rs` from
/// PEM files as `TLS_CERT_FILE` and `TLS_KEY_FILE` are; `config`'s timeouts.
fn tls_config(ca: &Ca, config: ServeConfig) -> ServeConfig {
    let identity = ca.server(&["localhost"]);
    let dir = TempDir::new("gateway-serving");
    let cert = dir.write("cert.pem", &identity.cert_pem);
    let key = dir.write("key.pem", &identity.key_pem);
    ServeConfig {
        tls: Some(serve::tls_acceptor(&cert, &key).unwrap()),
        ..config
    }
}

fn tls_connector(ca: &Ca, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    bounded(connector.connect(name, tcp)).await.unwrap()
}

/// Reads until the server closes the connection (EOF or a reset), bounded against a hang.
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) {
    bounded(async {
        let mut buf = [0u8; 1024];
        while let Ok(len) = stream.read(&mut buf).await {
            if len == 0 {
                break;
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_http1_serves_a_snapshot() {
    let served = Served::start(holding(), ServeConfig::default()).await;
    let mut send = h1_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let request = served.get("http", &ITEMS_SNAPSHOT, "alice-token");
    let (version, reply) = read(send_h1(&mut send, request).await).await;
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(received_rows(&reply, "acme"), served.expected_rows("acme"));
}

#[tokio::test]
async fn h2c_with_prior_knowledge_serves_a_snapshot_and_a_live_long_poll() {
    let served = Served::start(holding(), ServeConfig::default()).await;
    let mut send = h2_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let response = bounded(send.send_request(served.get("http", &ITEMS_SNAPSHOT, "alice-token")))
        .await
        .unwrap();
    let (version, snapshot) = read(response).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(snapshot.status, StatusCode::OK, "{:?}", snapshot.body);
    assert_eq!(
        received_rows(&snapshot, "acme"),
        served.expected_rows("acme")
    );

    let live = send.send_request(served.live("http", &snapshot, false, "alice-token"));
    let live = tokio::spawn(live);
    served.until_held(1).await;
    served.insert_acme_item("60", "Over HTTP/2");
    let (version, reply) = read(bounded(live).await.unwrap().unwrap()).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        received_rows(&reply, "acme"),
        [("60".to_owned(), "Over HTTP/2".to_owned())]
    );
}

#[tokio::test]
async fn twenty_live_long_polls_are_held_at_once_on_one_h2_connection() {
    // Browsers open 6 HTTP/1.1 connections per origin; over HTTP/2 one connection carries
    // every live shape. The stand-in must hold all 20 at once (a stream cap of 6 would queue
    // the rest in the client) before one change answers them all.
    let served = Served::start(holding(), ServeConfig::default()).await;
    let mut send = h2_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let response = bounded(send.send_request(served.get("http", &ITEMS_SNAPSHOT, "alice-token")))
        .await
        .unwrap();
    let (_, snapshot) = read(response).await;
    let polls: Vec<_> = (0..20)
        .map(|_| {
            let request = served.live("http", &snapshot, false, "alice-token");
            tokio::spawn(send.send_request(request))
        })
        .collect();
    served.until_held(20).await;
    served.insert_acme_item("61", "For every live shape");
    for poll in polls {
        let (version, reply) = read(bounded(poll).await.unwrap().unwrap()).await;
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(
            received_rows(&reply, "acme"),
            [("61".to_owned(), "For every live shape".to_owned())]
        );
    }
}

#[tokio::test]
async fn tls_negotiates_h2_or_http1_by_alpn() {
    let ca = Ca::new("gateway test CA");
    let served = Served::start(holding(), tls_config(&ca, ServeConfig::default())).await;
    for (offered, negotiated, expected) in [
        (&[&b"h2"[..], b"http/1.1"][..], &b"h2"[..], Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], &b"http/1.1"[..], Version::HTTP_11),
    ] {
        let stream = tls_connect(served.addr, &tls_connector(&ca, offered)).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(negotiated));
        let request = served.get("https", &ITEMS_SNAPSHOT, "alice-token");
        let response = if expected == Version::HTTP_2 {
            let mut send = h2_over(stream).await;
            bounded(send.send_request(request)).await.unwrap()
        } else {
            send_h1(&mut h1_over(stream).await, request).await
        };
        let (version, reply) = read(response).await;
        assert_eq!(version, expected);
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(received_rows(&reply, "acme"), served.expected_rows("acme"));
    }
}

#[tokio::test]
async fn a_slow_loris_is_closed_after_the_header_timeout() {
    let served = Served::start(holding(), quick()).await;
    // Headers begun and never finished: hyper's HTTP/1.1 header timeout.
    let mut partial = TcpStream::connect(served.addr).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // Nothing at all: the peek for h2c's preface, under the same timeout.
    let mut silent = TcpStream::connect(served.addr).await.unwrap();
    // Half of the preface: still undecided, still bounded.
    let mut half_preface = TcpStream::connect(served.addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    until_closed(&mut partial).await;
    until_closed(&mut silent).await;
    until_closed(&mut half_preface).await;

    // A client that finishes its headers in time is served.
    let mut prompt = TcpStream::connect(served.addr).await.unwrap();
    prompt
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    bounded(prompt.read_to_end(&mut answer)).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_tls_client_that_stalls_its_handshake_or_preface_is_dropped() {
    let ca = Ca::new("gateway test CA");
    let served = Served::start(holding(), tls_config(&ca, quick())).await;
    // A TCP connection that never sends its ClientHello.
    let mut silent = TcpStream::connect(served.addr).await.unwrap();
    until_closed(&mut silent).await;
    // A handshake done with ALPN h2, and then no HTTP/2 preface.
    let mut no_preface = tls_connect(served.addr, &tls_connector(&ca, &[b"h2"])).await;
    assert_eq!(no_preface.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    until_closed(&mut no_preface).await;
}

#[tokio::test]
async fn a_shutdown_lets_held_long_polls_finish_on_both_protocols_then_stops() {
    let mut served = Served::start(holding(), ServeConfig::default()).await;
    let mut h1 = h1_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let mut h2 = h2_over(TcpStream::connect(served.addr).await.unwrap()).await;
    let snapshot = served.get("http", &ITEMS_SNAPSHOT, "alice-token");
    let (_, snapshot) = read(send_h1(&mut h1, snapshot).await).await;
    let h2_poll =
        tokio::spawn(h2.send_request(served.live("http", &snapshot, false, "alice-token")));
    h1.ready().await.unwrap();
    let h1_poll = tokio::spawn(h1.send_request(origin_form(served.live(
        "http",
        &snapshot,
        false,
        "alice-token",
    ))));
    served.until_held(2).await;

    served.stop.take().unwrap().send(()).unwrap();
    // The held polls keep it serving: nothing ends them but the change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!served.serving.is_finished());

    served.insert_acme_item("62", "Before the lights go out");
    for poll in [h1_poll, h2_poll] {
        let (_, reply) = read(bounded(poll).await.unwrap().unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(
            received_rows(&reply, "acme"),
            [("62".to_owned(), "Before the lights go out".to_owned())]
        );
    }
    bounded(&mut served.serving).await.unwrap();
    // Both connections were closed by the server (GOAWAY, and HTTP/1.1's close).
    bounded(async {
        while !(h1.is_closed() && h2.is_closed()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
