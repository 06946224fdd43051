//! How the example gateway serves its router: HTTP/1.1 and HTTP/2 on one listener, over TLS
//! (ALPN `h2`, `http/1.1`) when it has a certificate, in plain text otherwise (HTTP/1.1, and
//! h2c with prior knowledge), until a shutdown signal, then gracefully. `main.rs` and the
//! tests (`tests/gateway/serving.rs`) both serve with this code.
//!
//! Browsers open at most 6 HTTP/1.1 connections to an origin and every live shape holds one;
//! over HTTP/2 a browser's live shapes share one connection, as streams.
//!
//! Not `axum::serve` nor hyper-util's auto builder: they read the first bytes of every
//! connection to detect HTTP/2 before hyper sees them, and hyper's read buffer then grows from
//! 8 to 16 KiB on every HTTP/1.1 connection, a cost each held long-poll pays. Here a plain
//! connection's first bytes are *peeked* (left in the socket) and over TLS ALPN decides, so an
//! HTTP/1.1 connection reaches hyper untouched. No upgrades (no WebSocket routes here).
#![allow(dead_code)] // each includer uses what it needs

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::app::BoxError;

/// HTTP/2's connection preface (RFC 9113 §3.4): the first bytes an HTTP/2 client sends.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the gateway serves.
#[derive(Clone)]
pub(crate) struct ServeConfig {
    /// How long a client has to send an HTTP/1.1 request's headers (slow-loris), and on a plain
    /// connection its first bytes, which tell HTTP/1.1 from h2c.
    pub(crate) header_read_timeout: Duration,
    /// How long a TLS handshake may take, with an h2 client's preface after it.
    pub(crate) handshake_timeout: Duration,
    /// How long a shutdown waits for open requests.
    pub(crate) shutdown_grace: Duration,
    /// TLS, when the gateway has a certificate; plain text otherwise.
    pub(crate) tls: Option<TlsAcceptor>,
}

impl Default for ServeConfig {
    /// 30 s for headers, 10 s for a handshake, and a shutdown that waits 65 s: past Electric's
    /// 20 s long-poll and 60 s SSE windows. Plain text.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(65),
            tls: None,
        }
    }
}

/// HTTP/2 streams one connection may hold at once: a browser's live shapes each hold one for
/// as long as Electric holds the long-poll (or the SSE stream), all on one connection.
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 512;

/// A TLS acceptor for a certificate chain and its key (PEM files), offering `h2` before
/// `http/1.1`. Errors name the file, never its contents.
pub(crate) fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, BoxError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("TLS_CERT_FILE {}: {error}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("TLS_CERT_FILE {}: no certificate", cert_file.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
        format!(
            "TLS_KEY_FILE {}: no readable private key",
            key_file.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|error| format!("TLS_CERT_FILE and TLS_KEY_FILE: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every connection is served with.
struct Shared {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    handshake_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits up
/// to `config.shutdown_grace` for the open requests, on both protocols, to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // A peer that stops answering pings (gone without a FIN) frees its streams.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        // hyper's defaults, stated because they are the bounds: 16 KiB of headers per
        // request, and a cap on streams a client opens and resets at once (rapid reset).
        .max_header_list_size(16 * 1024)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    let shared = Arc::new(Shared {
        http1,
        http2,
        header_read_timeout: config.header_read_timeout,
        handshake_timeout: config.handshake_timeout,
        tls: config.tls,
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // A peer that gave up before the accept: nothing to wait for.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of descriptors, most likely: wait for some to be released.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Shape responses and SSE frames are small writes: send them without waiting for acks.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        // Taken here, before any shutdown, so that a connection still in its handshake is
        // waited for too.
        let watcher = graceful.watcher();
        tokio::spawn(connection(stream, service, Arc::clone(&shared), watcher));
    }
    drop(listener);
    tracing::info!(
        open = graceful.count(),
        "shutting down: waiting for open connections"
    );
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?config.shutdown_grace, "connections still busy; stopping anyway");
    }
}

/// One connection: its protocol decided (a peek for h2c's preface, or ALPN), then served in a
/// task of its own (see [`serve_http1`]). The TLS path is boxed: a plain connection's
/// detection does not carry its size.
async fn connection<S>(stream: TcpStream, service: S, shared: Arc<Shared>, watcher: Watcher)
where
    S: HttpService,
{
    if shared.tls.is_some() {
        return Box::pin(tls_connection(stream, service, shared, watcher)).await;
    }
    // A client that sends nothing is a slow-loris too.
    let detected = tokio::time::timeout(shared.header_read_timeout, starts_with_preface(&stream));
    match detected.await {
        Ok(Ok(false)) => serve_http1(stream, service, &shared, watcher),
        Ok(Ok(true)) => serve_http2(stream, service, &shared, watcher),
        Ok(Err(_)) | Err(_) => {}
    }
}

/// A TLS connection: the handshake, and for ALPN `h2` the client's preface, within the
/// handshake timeout; then HTTP/2, or HTTP/1.1 for ALPN `http/1.1` or none (h2 over TLS needs
/// ALPN, RFC 9113 §3.2).
async fn tls_connection<S>(stream: TcpStream, service: S, shared: Arc<Shared>, watcher: Watcher)
where
    S: HttpService,
{
    let Some(acceptor) = &shared.tls else { return };
    let established = tokio::time::timeout(shared.handshake_timeout, async {
        let stream = acceptor.accept(stream).await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok::<_, io::Error>(Err(stream));
        }
        // hyper's h2 server has no timeout of its own for the preface, nor pings before it.
        let mut stream = stream;
        let mut preface = [0u8; PREFACE.len()];
        stream.read_exact(&mut preface).await?;
        if &preface != PREFACE {
            return Err(io::ErrorKind::InvalidData.into());
        }
        Ok(Ok(AfterPreface {
            io: stream,
            replayed: 0,
        }))
    })
    .await;
    match established {
        Ok(Ok(Ok(h2))) => serve_http2(h2, service, &shared, watcher),
        Ok(Ok(Err(http1))) => serve_http1(http1, service, &shared, watcher),
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// What a connection serves: the router with the peer's `ConnectInfo`.
trait HttpService:
    tower::Service<
        Request<Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves an HTTP/1.1 connection in a task of its own.
///
/// A task of its own, started with nothing but the connection in it: a held long-poll keeps
/// its connection's task for as long as Electric holds it, and a task that first detected the
/// protocol (or an `async fn` the connection was moved into) would keep that state, and the
/// moved-from arguments, beside it.
fn serve_http1<I, S>(io: I, service: S, shared: &Shared, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let connection = shared
        .http1
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::spawn(watcher.watch(connection).map(log_error));
}

/// Serves an HTTP/2 connection in a task of its own (see [`serve_http1`]).
fn serve_http2<I, S>(io: I, service: S, shared: &Shared, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let connection = shared
        .http2
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::spawn(watcher.watch(connection).map(log_error));
}

fn log_error(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Whether a plain connection starts with HTTP/2's preface (h2c with prior knowledge). Peeks,
/// so that the bytes stay in the socket for hyper; waits only while what has arrived is a
/// prefix of the preface (an HTTP/1.1 request differs at its first byte).
async fn starts_with_preface(stream: &TcpStream) -> io::Result<bool> {
    let mut peeked = [0u8; PREFACE.len()];
    loop {
        let len = stream.peek(&mut peeked).await?;
        let Some(seen) = peeked.get(..len).filter(|seen| !seen.is_empty()) else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if !PREFACE.starts_with(seen) {
            return Ok(false);
        }
        if len == PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface: peek returns it again at once until more arrives, so wait a
        // little rather than spin (clients send the preface in one write; this is rare).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A TLS stream whose preface was read (and checked) already: hyper reads it again from the
/// constant, so nothing is buffered for it.
struct AfterPreface<I> {
    io: I,
    replayed: usize,
}

impl<I: AsyncRead + Unpin> AsyncRead for AfterPreface<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = PREFACE.get(self.replayed..).unwrap_or_default();
        if rest.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let len = rest.len().min(buf.remaining());
        buf.put_slice(rest.get(..len).unwrap_or_default());
        self.replayed += len;
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for AfterPreface<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Ctrl-C, or SIGTERM where there is one.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
