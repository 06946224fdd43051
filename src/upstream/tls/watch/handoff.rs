//! A request's [`Handoff`]: ending a request that the connection made for it closed on
//! without taking it (see the [parent module](super) for the race this guards against).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Context;

use http::Request;
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection};

use super::{ConnectionNote, SeenTls, Watch};

/// The mark a request carries in its extensions while hyper holds it unsent. A dispatcher
/// that takes a request drops its extensions before any of it goes out: over HTTP/1.1 they go
/// with the request head at the end of `encode_head`, once the head is buffered and before it
/// is written; over h2, `send_request` keeps only method, URI and headers. A request hyper
/// hands back, failed, keeps its mark until hyper-util drops it with its error (or sends it
/// again); hyper never clones them. A request lost in the dispatch channel keeps its mark for
/// as long as the channel lives.
#[derive(Debug, Clone)]
struct Unsent(#[expect(dead_code, reason = "held only for its strong count")] Arc<()>);

/// Whether hyper-util handed a request to the connection made for it, and that connection
/// closed before taking the request: nothing can answer it then.
///
/// Only a request whose first connection is the one made in its own task is watched:
/// hyper-util never sends a request again after a failure on a fresh connection, whereas on a
/// reused one it may retry a request that was not sent, on another connection, and that retry
/// must not be cut short. "Made in the request's own task" alone is not "fresh for the
/// request": over HTTP/1.1 the pool may win the race against the request's own connect, with
/// an idle connection, while the own one goes on connecting in the background and then idles
/// in the pool, where the request's retry may find it, reused. So a request seen handed to any
/// other connection (or to one while its own was not even being made) is disarmed for good.
///
/// What this cannot see: hyper-util handing the request to a pooled connection, the send
/// failing at once, and the retry taking the request's own connection from the pool, all
/// within one poll of its response future. The request then looks handed first to its own
/// connection, and if that one closes with the request unsent, the request is the 502 where
/// hyper-util would have tried once more. That takes an idle connection that fails in the
/// instant between the pool's check and the send, while the own connection, connecting in
/// the background, has just become idle.
#[derive(Debug)]
pub(in crate::upstream) struct Handoff {
    watch: Watch,
    /// The request's mark; a `Weak` of nothing once disarmed.
    unsent: Weak<()>,
    handed_to: CaptureConnection,
}

impl Handoff {
    /// Marks `request`, about to be sent with `watch` as its [`Watch`].
    pub(in crate::upstream) fn new<B>(request: &mut Request<B>, watch: &Watch) -> Self {
        let mark = Arc::new(());
        let unsent = Arc::downgrade(&mark);
        request.extensions_mut().insert(Unsent(mark));
        Self {
            watch: watch.clone(),
            unsent,
            handed_to: capture_connection(request),
        }
    }

    /// Asked after hyper-util's response future was polled and pending: whether the
    /// connection made for the request closed with the request still unsent in its queue. If
    /// not, `cx` is woken when that connection closes.
    ///
    /// A connection's dispatcher takes a request (dropping its mark) before it can write it,
    /// and it writes it before any answer can be read; the connection's close comes after all
    /// of that. So a closed connection and a mark still alive, read in that order, mean that
    /// no answer was read for the request and none can be: hyper is either about to hand the
    /// request back failed or has lost it. Either way the request has failed.
    ///
    /// A mark once gone stays gone (nothing marks the request again), so the later calls of a
    /// request a dispatcher took, or of a disarmed one, return at once, without the waker's
    /// atomic.
    pub(in crate::upstream) fn lost(&mut self, cx: &mut Context<'_>) -> Option<ConnectionLost> {
        if self.unsent.strong_count() == 0 {
            return None;
        }
        let handed_to = self.handed_to();
        self.lost_on(handed_to.as_ref(), cx)
    }

    /// The note of the connection hyper-util last handed the request to, if any. Both the
    /// capture and the request's watch are written only in the request's own task (hyper-util
    /// hands the request over in it, and calls the connector in it), so neither changes while
    /// this task asks.
    fn handed_to(&self) -> Option<ConnectionNote> {
        let connected = self.handed_to.connection_metadata();
        let mut extensions = http::Extensions::new();
        connected.as_ref()?.get_extras(&mut extensions);
        extensions.remove::<ConnectionNote>()
    }

    /// [`lost`](Self::lost), the request last handed to `handed_to` (`None`: not yet).
    fn lost_on(
        &mut self,
        handed_to: Option<&ConnectionNote>,
        cx: &mut Context<'_>,
    ) -> Option<ConnectionLost> {
        // Not handed over yet: the connection's close, if it comes, is hyper-util's to report.
        let handed_to = handed_to?;
        let own = match self.watch.0.get() {
            Some(own) if Arc::ptr_eq(&own.0, &handed_to.0) => own,
            _ => {
                // Handed to a connection not made for it: hyper-util may retry the request,
                // later even on the request's own connection, reused by then.
                self.unsent = Weak::new();
                return None;
            }
        };
        own.0.closing.register(cx.waker());
        if !own.0.closed.load(Ordering::Acquire) || self.unsent.strong_count() == 0 {
            return None;
        }
        Some(ConnectionLost {
            tls: own.failure(),
            certificate_requested: own.0.certificate_requested.load(Ordering::Acquire),
            answered: own.0.answered.load(Ordering::Acquire),
        })
    }
}

/// A request done (answered, failed or dropped) leaves no waker behind: its connection, idle in
/// the pool or shared over h2, may outlive it by long, and would otherwise keep the finished
/// task's waker, and what that holds, until it closes.
impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some(own) = self.watch.0.get() {
            drop(own.0.closing.take());
        }
    }
}

/// A request that the connection made for it closed on without taking it, and what that
/// connection saw.
pub(in crate::upstream) struct ConnectionLost {
    /// What makes this a TLS failure, if anything does.
    pub(in crate::upstream) tls: Option<SeenTls>,
    /// The server asked for a client certificate in the handshake.
    pub(in crate::upstream) certificate_requested: bool,
    /// A response came back on the connection (an h2 one is shared) before it closed.
    pub(in crate::upstream) answered: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;
    use std::io;
    use std::pin::Pin;

    use super::super::Closes;

    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use crate::ElectricUpstream;

    /// A guard against a hang, never an assertion about speed.
    const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(20);

    type Spawned = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// An executor that spawns the first future hyper-util's client gives it and keeps every
    /// later one, never polled. For a new h2 connection that first one is the task that owns
    /// the connection's I/O (hyper spawns it inside the handshake), the second the dispatcher
    /// that takes requests from the connection's queue (hyper-util spawns it after). With the
    /// dispatcher stalled, a request handed to the connection stays queued with nothing to
    /// answer it when the connection closes: what a request lost in hyper's dispatch channel
    /// (see the module docs) looks like from the request's side, without depending on the
    /// thread schedule that loses one.
    #[derive(Clone, Default)]
    struct StallsTheDispatcher {
        spawned: Arc<AtomicUsize>,
        kept: Arc<Mutex<Vec<Spawned>>>,
    }

    impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for StallsTheDispatcher {
        fn execute(&self, future: F) {
            if self.spawned.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::spawn(future);
            } else {
                self.kept.lock().unwrap().push(Box::pin(future));
            }
        }
    }

    /// Every log line, at every level, of this thread while the guard lives: a
    /// current-thread runtime polls the request's future on the test's thread.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn capture(&self) -> tracing::subscriber::DefaultGuard {
            let logs = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(move || logs.clone())
                .finish();
            tracing::subscriber::set_default(subscriber)
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// An h2c server for one connection: it reads the client's 24-byte preface, then runs
    /// `then` with the socket, and hangs up when that ends.
    async fn h2c_server<F, Fut>(then: F) -> std::net::SocketAddr
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut preface = [0; 24];
            socket.read_exact(&mut preface).await.unwrap();
            then(socket).await;
        });
        address
    }

    /// An h2c upstream at `address` whose pooled client spawns with `executor`, and a request
    /// for it.
    fn h2c_upstream<E>(
        address: std::net::SocketAddr,
        executor: E,
    ) -> (ElectricUpstream, Request<Empty<Bytes>>)
    where
        E: hyper::rt::Executor<Spawned> + Send + Sync + Clone + 'static,
    {
        let upstream = ElectricUpstream::builder(format!("http://{address}"))
            .http2_only(true)
            .build_on(executor)
            .unwrap();
        let request = Request::get("/v1/shape?offset=-1&table=items")
            .body(Empty::<Bytes>::new())
            .unwrap();
        (upstream, request)
    }

    /// The upstream's own words when the handoff ends a request.
    const HANDOFF_LOG: &str = "closed before sending it";

    #[tokio::test]
    async fn a_request_its_new_connection_closed_on_without_taking_it_is_a_502() {
        // h2c (prior knowledge): a server that reads the client's preface and hangs up, as a
        // TLS server that refuses the client's certificate hangs up after the handshake.
        let address = h2c_server(|_| async {}).await;
        let executor = StallsTheDispatcher::default();
        let (upstream, request) = h2c_upstream(address, executor.clone());
        let logs = Logs::default();
        let _guard = logs.capture();
        let response = tokio::time::timeout(HANG_GUARD, upstream.oneshot(request))
            .await
            .expect(
                "no answer: the request waits on a connection that is gone (or hyper no \
                 longer spawns an h2 connection's I/O task before its dispatcher)",
            )
            .unwrap();
        assert_eq!(response.status(), 502);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"message":"Bad gateway"}"#);
        // The dispatcher was there, and stalled: the request was handed to it.
        assert!(executor.spawned.load(Ordering::SeqCst) >= 2);
        let logs = logs.text();
        assert!(logs.contains(HANDOFF_LOG), "{logs}");
    }

    /// An executor that runs the first two futures hyper-util's client gives it, for a new h2
    /// connection the task that owns its I/O (noted when it ends, its I/O dropped) and the
    /// dispatcher, and keeps every later one, among them the future that answers a request the
    /// dispatcher took, until released: hyper's answer then comes only after the close.
    #[derive(Clone, Default)]
    struct HoldsTheAnswers {
        spawned: Arc<AtomicUsize>,
        io_dropped: Arc<tokio::sync::Notify>,
        kept: Arc<Mutex<Vec<Spawned>>>,
    }

    impl HoldsTheAnswers {
        fn release(&self) {
            for future in self.kept.lock().unwrap().drain(..) {
                tokio::spawn(future);
            }
        }
    }

    impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for HoldsTheAnswers {
        fn execute(&self, future: F) {
            match self.spawned.fetch_add(1, Ordering::SeqCst) {
                0 => {
                    let io_dropped = Arc::clone(&self.io_dropped);
                    tokio::spawn(async move {
                        future.await;
                        io_dropped.notify_one();
                    });
                }
                1 => drop(tokio::spawn(future)),
                _ => self.kept.lock().unwrap().push(Box::pin(future)),
            }
        }
    }

    #[tokio::test]
    async fn a_request_its_new_connection_took_before_closing_gets_hyper_s_own_error() {
        // h2c: a server that reads until the request's HEADERS, which h2 writes only after
        // hyper's dispatcher took the request, and hangs up. The mark went with the take, so
        // the close is hyper's to report, with its error, even when hyper's answer comes late.
        let address = h2c_server(|mut socket| async move {
            // An empty SETTINGS frame, so that nothing on the client waits for one.
            socket
                .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
                .await
                .unwrap();
            loop {
                let mut header = [0; 9];
                socket.read_exact(&mut header).await.unwrap();
                let length = u32::from_be_bytes([0, header[0], header[1], header[2]]);
                let mut payload = vec![0; length as usize];
                socket.read_exact(&mut payload).await.unwrap();
                if header[3] == 1 {
                    return;
                }
            }
        })
        .await;
        let executor = HoldsTheAnswers::default();
        let (upstream, request) = h2c_upstream(address, executor.clone());
        let logs = Logs::default();
        let _guard = logs.capture();
        let response = tokio::spawn(upstream.oneshot(request));
        tokio::time::timeout(HANG_GUARD, executor.io_dropped.notified())
            .await
            .expect("the connection's I/O task never ended");
        // The close woke the request; let it look.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        assert!(
            !response.is_finished(),
            "the request ended before hyper answered it: {}",
            logs.text()
        );
        assert!(
            executor.spawned.load(Ordering::SeqCst) >= 3,
            "no answer held"
        );
        executor.release();
        let response = tokio::time::timeout(HANG_GUARD, response)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 502);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"message":"Bad gateway"}"#);
        let logs = logs.text();
        assert!(logs.contains("upstream request failed error="), "{logs}");
        assert!(!logs.contains(HANDOFF_LOG), "{logs}");
    }

    /// Whether the client's mark on a request was still alive when the request reached a
    /// hyper server, over HTTP/1.1 or h2.
    async fn mark_alive_when_served(http2: bool) -> bool {
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut request = Request::get("http://upstream.test/v1/shape")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let handoff = Handoff::new(&mut request, &Watch::default());
        let unsent = handoff.unsent.clone();
        let alive = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&alive);
        let service = hyper::service::service_fn(move |_| {
            *seen.lock().unwrap() = Some(unsent.strong_count() > 0);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new())) }
        });
        let (server, client) = (TokioIo::new(server), TokioIo::new(client));
        let response = if http2 {
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(server, service),
            );
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), client)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(server, service),
            );
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(client).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await
        };
        assert_eq!(response.unwrap().status(), 200);
        drop(handoff);
        let alive = alive.lock().unwrap().take();
        alive.unwrap()
    }

    #[tokio::test]
    async fn hyper_drops_the_mark_with_the_taken_request_over_http1_and_h2() {
        // What lets the handoff tell a request hyper still holds unsent from one a dispatcher
        // took: hyper keeps none of a taken request's extensions, over either protocol.
        assert!(!mark_alive_when_served(false).await);
        assert!(!mark_alive_when_served(true).await);
    }

    /// A request marked and watched, as `Sent::pooled` sends it; the request keeps the mark
    /// alive for as long as the test holds it.
    fn marked() -> (Request<()>, Watch, Handoff) {
        let mut request = Request::new(());
        let watch = Watch::default();
        let handoff = Handoff::new(&mut request, &watch);
        (request, watch, handoff)
    }

    /// What hyper dropping a watched connection's I/O does to its note.
    fn close(note: &ConnectionNote) {
        drop(Closes(note.clone()));
    }

    #[test]
    fn a_request_handed_to_its_own_connection_is_lost_when_it_closes_with_the_request_unsent() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (request, watch, mut handoff) = marked();
        let own = ConnectionNote::default();
        let _ = watch.0.set(own.clone());
        // Connecting, then handed over and queued.
        assert!(handoff.lost_on(None, &mut cx).is_none());
        assert!(handoff.lost_on(Some(&own), &mut cx).is_none());
        own.0.certificate_requested.store(true, Ordering::Release);
        close(&own);
        let lost = handoff.lost_on(Some(&own), &mut cx).expect("lost");
        // With what its connection saw.
        assert!(matches!(lost.tls, Some(SeenTls::CertificateRefused)));
        assert!(lost.certificate_requested && !lost.answered);
        drop(request);
    }

    #[test]
    fn a_request_first_handed_to_a_connection_not_made_for_it_is_never_cut_short() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let pooled = ConnectionNote::default();
        let own = ConnectionNote::default();

        // The pool won the race against the request's own connect, which went on in the
        // background into the pool; the pooled connection failed, and hyper-util's retry took
        // the own one from the pool, reused. It closes with the request unsent: hyper-util
        // would try again, so this is not for the handoff to end.
        let (request, watch, mut handoff) = marked();
        let _ = watch.0.set(own.clone());
        assert!(handoff.lost_on(Some(&pooled), &mut cx).is_none());
        close(&own);
        assert!(handoff.lost_on(Some(&own), &mut cx).is_none());
        assert!(handoff.lost(&mut cx).is_none());
        assert_eq!(handoff.unsent.strong_count(), 0, "disarmed for good");
        drop(request);

        // Handed to a pooled connection before the request made one of its own.
        let (request, watch, mut handoff) = marked();
        assert!(handoff.lost_on(Some(&pooled), &mut cx).is_none());
        let own = ConnectionNote::default();
        let _ = watch.0.set(own.clone());
        close(&own);
        assert!(handoff.lost_on(Some(&own), &mut cx).is_none());
        drop(request);
    }

    #[test]
    fn a_finished_request_leaves_no_waker_on_its_connection() {
        struct Task;
        impl std::task::Wake for Task {
            fn wake(self: Arc<Self>) {}
        }
        let task = Arc::new(Task);
        let waker = std::task::Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&waker);
        let (request, watch, mut handoff) = marked();
        let own = ConnectionNote::default();
        let _ = watch.0.set(own.clone());
        assert!(handoff.lost_on(Some(&own), &mut cx).is_none());
        assert_eq!(
            Arc::strong_count(&task),
            3,
            "the test's, the waker, the registered one"
        );
        drop(handoff);
        assert_eq!(Arc::strong_count(&task), 2);
        drop(request);
    }
}
