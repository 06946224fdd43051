//! Telling a request that its upstream connection failed in TLS.
//!
//! A handshake or certificate failure is the connector's error, and the request's error
//! carries it. A refusal after the handshake does not: a TLS 1.3 server checks the client's
//! certificate only after the client has finished its side of the handshake, and refuses with
//! an alert on the connection. hyper then often answers the request with only "channel closed"
//! or "connection was not ready"; h2 keeps only the text of its connection's I/O errors; and
//! when the client's first write meets the server's reset, the alert is never read at all.
//!
//! So every connection keeps a [`Note`]: the first TLS error its reads and writes saw, whether
//! the server asked for a client certificate in the handshake, and whether a response came
//! back on it. The request's error finds the note through the connection info hyper-util
//! attaches to it, or, for a connection that failed before hyper-util handed it over, through
//! the request's own [`Watch`], which the connector (called in the request's task) fills in.
//!
//! Such a refusal can also leave a request with no error at all. hyper queues a request for a
//! connection's dispatcher on a tokio mpsc channel, and counts on the channel to hand every
//! queued request back, failed, when the dispatcher drops its end. A request sent while the
//! dispatcher drops (the send has counted the message but not yet linked it in when the drop
//! drains the queue) stays in the channel, which the request's own pooled sender keeps alive:
//! nothing ever answers it, and hyper-util's response future waits for ever. tokio-rs/tokio
//! #7714 is the same race through a `Permit`; hyperium/hyper#4122 (open) is the race seen
//! from hyper: a request sent as an HTTP/1.1 connection fails is never dropped. A refused
//! mTLS handshake makes this likely: the connection dies just as hyper-util hands the request
//! over. So a request also keeps a [`Handoff`]: when the connection made for it, the first one
//! hyper-util handed it to, closed while hyper still held the request unsent, the request ends
//! there, as the failure it would have been.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Error as ClientError;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use tokio::task::futures::TaskLocalFuture;
use tower_service::Service;

mod handoff;

pub(in crate::upstream) use self::handoff::{ConnectionLost, Handoff};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one connection saw of its TLS.
#[derive(Debug, Default)]
struct Note {
    /// The first TLS error of a read or a write.
    error: OnceLock<String>,
    /// The server asked for a client certificate during the handshake.
    certificate_requested: AtomicBool,
    /// A response came back on it.
    answered: AtomicBool,
    /// hyper dropped its I/O: it reads and writes nothing more, and takes no more requests.
    closed: AtomicBool,
    /// The task of the request the connection was made for, woken when it closes.
    closing: AtomicWaker,
}

/// A connection's note, as hyper-util's connection info carries it.
#[derive(Debug, Clone, Default)]
struct ConnectionNote(Arc<Note>);

/// A request's view of the connection made for it, once the connector made one.
#[derive(Debug, Clone, Default)]
pub(in crate::upstream) struct Watch(Arc<OnceLock<ConnectionNote>>);

tokio::task_local! {
    /// The watch of the request whose task is being polled.
    static REQUEST: Watch;
    /// The note of the connection whose handshake is being polled.
    static HANDSHAKE: ConnectionNote;
}

/// `response` run with `watch` as its request's [`Watch`].
pub(in crate::upstream) fn watched<F: Future>(
    watch: &Watch,
    response: F,
) -> TaskLocalFuture<Watch, F> {
    REQUEST.scope(watch.clone(), response)
}

/// A request's error that is a TLS failure.
pub(in crate::upstream) enum TlsFailure {
    /// The error says so itself: a handshake or a certificate check failed.
    InError,
    /// The connection it was on, or the one made for it, saw the failure.
    Seen(SeenTls),
}

/// What a connection saw that makes its failure a TLS failure. A request lost with its
/// connection (see [`Handoff`]) has no error of its own, so this is all there is to know.
pub(in crate::upstream) enum SeenTls {
    /// The connection failed in TLS with this error (an alert, most often).
    Error(String),
    /// The server asked for a client certificate, then dropped the connection before any
    /// answer: a refusal of the certificate (or of its absence) whose alert was lost.
    CertificateRefused,
}

/// Whether a request's error is a TLS failure, and how that is known. Only asked for an
/// `https://` upstream, about an error before the response head.
pub(in crate::upstream) fn tls_failure(error: &ClientError, watch: &Watch) -> Option<TlsFailure> {
    if has_rustls_error(error) {
        return Some(TlsFailure::InError);
    }
    let mut extensions = http::Extensions::new();
    if let Some(connected) = error.connect_info() {
        connected.get_extras(&mut extensions);
    }
    let note = extensions
        .get::<ConnectionNote>()
        .or_else(|| watch.0.get())?;
    note.failure().map(TlsFailure::Seen)
}

/// Notes that the connection a response came on (its extensions hold the connection info)
/// answered: a later failure of it is not a refusal of the client certificate.
pub(in crate::upstream) fn answered(response: &http::Extensions) {
    if let Some(note) = response.get::<ConnectionNote>() {
        note.0.answered.store(true, Ordering::Release);
    }
}

/// Whether `error`, or anything it wraps, is a `rustls::Error`. An `io::Error` hides the error
/// it wraps from `source()` (it returns the wrapped error's own source), so wrapped errors are
/// looked into with `get_ref` as well.
fn has_rustls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    // Bounded: an error chain is short; a cyclic one must not hang a request.
    for _ in 0..32 {
        let Some(error) = next else {
            return false;
        };
        if error.is::<rustls::Error>() {
            return true;
        }
        next = match error.downcast_ref::<io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => std::error::Error::source(io),
            },
            None => error.source(),
        };
    }
    false
}

/// `config`, noting on the connection being set up when a server asks for a client
/// certificate.
pub(super) fn noting_certificate_requests(mut config: ClientConfig) -> ClientConfig {
    config.client_auth_cert_resolver =
        Arc::new(NoteCertificateRequest(config.client_auth_cert_resolver));
    config
}

/// The client certificate resolver, which rustls asks exactly when the server requests a
/// client certificate.
#[derive(Debug)]
struct NoteCertificateRequest(Arc<dyn ResolvesClientCert>);

impl ResolvesClientCert for NoteCertificateRequest {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Outside a handshake of this connector (none is), there is nothing to note.
        let _ = HANDSHAKE.try_with(|note| {
            note.0.certificate_requested.store(true, Ordering::Release);
        });
        self.0.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.0.has_certs()
    }
}

/// A connector whose connections keep a [`Note`], and whose connecting (TCP and the TLS
/// handshake) takes at most the connect timeout: the TCP connector's own timeout ends at the
/// TCP handshake, and a server that accepts but never answers the TLS handshake would
/// otherwise hold the request until the idle timeout.
#[derive(Debug, Clone)]
pub(in crate::upstream) struct Connector<C> {
    inner: C,
    timeout: Duration,
}

impl<C> Connector<C> {
    pub(super) fn new(inner: C, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<C> Service<Uri> for Connector<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Watched<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let note = ConnectionNote::default();
        // hyper-util calls the connector in the task of the request that needs the connection;
        // a connection it makes ahead for the pool has no such request.
        if let Ok(watch) = REQUEST.try_with(Watch::clone) {
            let _ = watch.0.set(note.clone());
        }
        let connecting = HANDSHAKE.scope(note.clone(), self.inner.call(uri));
        let timeout = self.timeout;
        Box::pin(async move {
            let io = match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into)?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connecting (TCP and TLS handshake) timed out",
                    )
                    .into())
                }
            };
            Ok(Watched {
                io,
                closes: Closes(note.clone()),
                note,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A connection that keeps a [`Note`] of its TLS.
    #[derive(Debug)]
    pub(in crate::upstream) struct Watched<T> {
        #[pin]
        io: T,
        note: ConnectionNote,
        closes: Closes,
    }
}

/// Marks its connection's note closed, and wakes the request waiting on it, when hyper drops
/// the connection's I/O.
#[derive(Debug)]
struct Closes(ConnectionNote);

impl Drop for Closes {
    fn drop(&mut self) {
        self.0 .0.closed.store(true, Ordering::Release);
        self.0 .0.closing.wake();
    }
}

impl ConnectionNote {
    /// What this connection saw that makes its failure a TLS failure.
    fn failure(&self) -> Option<SeenTls> {
        let note = &self.0;
        if let Some(error) = note.error.get() {
            return Some(SeenTls::Error(error.clone()));
        }
        (note.certificate_requested.load(Ordering::Acquire)
            && !note.answered.load(Ordering::Acquire))
        .then_some(SeenTls::CertificateRefused)
    }

    fn saw<R>(&self, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(error)) = &poll {
            if has_rustls_error(error) {
                let _ = self.0.error.set(error.to_string());
            }
        }
        poll
    }
}

impl<T: Connection> Connection for Watched<T> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.note.clone())
    }
}

impl<T: Read> Read for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        this.note.saw(this.io.poll_read(cx, buf))
    }
}

impl<T: Write> Write for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.note.saw(this.io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.note.saw(this.io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.note.saw(this.io.poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.note.saw(this.io.poll_write_vectored(cx, bufs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_saw_a_tls_failure_in_its_tls_error_else_in_an_unanswered_certificate_request() {
        let note = ConnectionNote::default();
        assert!(note.failure().is_none());
        note.0.certificate_requested.store(true, Ordering::Release);
        assert!(matches!(note.failure(), Some(SeenTls::CertificateRefused)));
        let answered = ConnectionNote::default();
        answered
            .0
            .certificate_requested
            .store(true, Ordering::Release);
        answered.0.answered.store(true, Ordering::Release);
        assert!(answered.failure().is_none());
        let _ = note
            .0
            .error
            .set("received fatal alert: UnknownCA".to_owned());
        assert!(matches!(
            note.failure(),
            Some(SeenTls::Error(error)) if error.contains("UnknownCA")
        ));
    }

    #[test]
    fn a_rustls_error_is_found_inside_nested_io_errors() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, rustls));
        assert!(has_rustls_error(&nested));
        // `source()` alone would not find it.
        assert!(std::error::Error::source(&nested).is_none());
    }

    #[test]
    fn other_errors_are_not_tls_failures() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert!(!has_rustls_error(&refused));
        assert!(!has_rustls_error(&io::Error::other(refused)));
        // Text is not a type: an error that only reads like TLS is not taken for it.
        let text = io::Error::new(io::ErrorKind::InvalidData, "received fatal alert");
        assert!(!has_rustls_error(&text));
    }
}
