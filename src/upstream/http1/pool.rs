//! Idle connections kept for the next request: the warmest first, none older than
//! [`IDLE_TIMEOUT`], none that the server has closed or written to since.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::TcpStream;

/// How long an idle connection is kept. Servers close idle connections after their own
/// keep-alive timeout (Bandit, which Electric runs on, after 60 s; load balancers after 60 s
/// or more); a connection this client would reuse after the server closed it costs a retry.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections kept: beyond this, a connection whose request ended is closed.
/// Long-polls come back in bursts (every held poll ends when a transaction commits); this many
/// warm connections carry the next burst without a pool of thousands.
pub(super) const MAX_IDLE: usize = 512;

/// How long a connection may have been idle for [`Check::Reactor`] to trust the reactor alone.
/// What a server writes to an idle connection of its own accord (a `408`, its close) comes
/// at its idle timeout, seconds later (Bandit 60 s, nginx 75 s, Node 5 s); a connection
/// reused within this is one the server has just answered on.
pub(super) const REACTOR_TRUSTED_FOR: Duration = Duration::from_secs(1);

/// How closely [`Pool::take`] checks that an idle connection is still quiet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// For a connection idle under [`REACTOR_TRUSTED_FOR`], what Tokio's reactor has seen of
    /// the socket, then a peek only if it saw anything: no system call for a connection
    /// nothing came to. This is weaker than the peek, and only for requests that have their
    /// retry: what arrived in the moment before the reactor last looked goes unnoticed. A
    /// close then costs the request its retry; bytes would be read as its response, which
    /// only a server that writes unasked within a second of its last answer would send.
    Reactor,
    /// A peek at the socket itself, for a request that cannot be sent again.
    Socket,
}

/// The idle connections to one upstream.
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Oldest first.
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl Pool {
    /// The most recently used idle connection that is still open and quiet, if any.
    pub(super) fn take(&self, check: Check) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(connection) = idle.pop() {
            let idle_for = connection.since.elapsed();
            if idle_for >= IDLE_TIMEOUT {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if is_quiet(&connection.stream, check, idle_for) {
                return Some(connection.stream);
            }
        }
        None
    }

    /// Keeps `stream` for the next request, dropping connections past their idle time.
    pub(super) fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = idle
            .iter()
            .take_while(|connection| connection.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        if idle.len() >= MAX_IDLE {
            // The oldest goes: it is the nearest to the server's own idle timeout.
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            since: Instant::now(),
        });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The socket's read readiness as the reactor last saw it. The body's last read was short,
/// which cleared it (see `Connection::poll_read`): readiness now means something arrived
/// since. Polled with a waker that does nothing, as no task waits on an idle connection, and
/// outside the task's budget, which spent would answer `Pending` whatever the socket holds.
fn reactor_readiness(stream: &TcpStream) -> Poll<std::io::Result<()>> {
    let readiness =
        tokio::task::coop::unconstrained(std::future::poll_fn(|cx| stream.poll_read_ready(cx)));
    pin!(readiness).poll(&mut Context::from_waker(Waker::noop()))
}

/// Whether an idle connection has nothing to read: not closed by the server (a read would
/// see its end), and no bytes a request never asked for, which must not be taken for the next
/// request's response.
fn is_quiet(stream: &TcpStream, check: Check, idle_for: Duration) -> bool {
    if check == Check::Reactor && idle_for < REACTOR_TRUSTED_FOR {
        match reactor_readiness(stream) {
            Poll::Pending => return true,
            Poll::Ready(Err(_)) => return false,
            // Perhaps only a read that filled its buffer: the peek tells.
            Poll::Ready(Ok(())) => {}
        }
    }
    // A peek straight at the socket: Tokio's readiness may not have caught up yet with what
    // arrived while the connection was idle.
    let mut byte = [MaybeUninit::uninit(); 1];
    matches!(
        SockRef::from(stream).peek(&mut byte),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected pair: the client's end and the server's.
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn take_gives_the_warmest_quiet_connection_and_drops_the_unfit() {
        for check in [Check::Reactor, Check::Socket] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (oldest, _oldest_server) = pair(&listener).await;
            let (written_to, mut written_to_server) = pair(&listener).await;
            let (closed, closed_server) = pair(&listener).await;
            let oldest_address = oldest.local_addr().unwrap();
            let pool = Pool::default();
            for stream in [oldest, written_to, closed] {
                pool.put(stream);
            }
            written_to_server
                .write_all(b"HTTP/1.1 200 OK\r\n")
                .await
                .unwrap();
            drop(closed_server);
            // Lets the runtime see the bytes and the close arrive (ordering, not timing).
            tokio::time::sleep(Duration::from_millis(50)).await;

            let taken = pool.take(check).unwrap();
            assert_eq!(taken.local_addr().unwrap(), oldest_address, "{check:?}");
            assert_eq!(pool.len(), 0, "{check:?}");
            assert!(pool.take(check).is_none(), "{check:?}");
        }
    }

    #[tokio::test]
    async fn a_close_the_reactor_has_not_seen_yet_is_caught_by_the_socket_check_only() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, server) = pair(&listener).await;
        let pool = Pool::default();
        pool.put(client);
        drop(server);
        // A blocking wait: the close reaches the socket, but this single-threaded runtime
        // does not turn its reactor, which so knows nothing of it.
        std::thread::sleep(Duration::from_millis(50));

        assert!(pool.take(Check::Socket).is_none());

        let (client, server) = pair(&listener).await;
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        // Idle too long for the reactor alone: the peek sees the close.
        assert!(!is_quiet(&client, Check::Reactor, REACTOR_TRUSTED_FOR));
        pool.put(client);
        // What the reactor check trades on a connection just answered on: this request
        // then costs its retry.
        assert!(pool.take(Check::Reactor).is_some());
    }

    #[tokio::test]
    async fn a_spent_budget_does_not_pass_for_a_quiet_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, mut server) = pair(&listener).await;
        let (spender, mut spender_server) = pair(&listener).await;
        server
            .write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            .await
            .unwrap();
        spender_server.write_all(b"x").await.unwrap();
        // Lets the reactor see both writes (ordering, not timing).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pool = Pool::default();
        pool.put(client);

        let taken = std::future::poll_fn(|cx| {
            // Each ready poll of a readable socket spends a unit of this task's budget, and
            // with none left the next one answers `Pending`.
            let mut spent = 0;
            while spender.poll_read_ready(cx).is_ready() {
                spent += 1;
            }
            assert!(spent > 0);
            Poll::Ready(pool.take(Check::Reactor))
        })
        .await;
        assert!(taken.is_none(), "the written-to connection was handed out");
    }

    #[tokio::test]
    async fn stale_readiness_falls_back_to_the_peek_which_keeps_a_quiet_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, mut server) = pair(&listener).await;
        server.write_all(b"x").await.unwrap();
        client.readable().await.unwrap();
        // `try_read` leaves the readiness set: the reactor still says readable, the socket is
        // empty.
        assert_eq!(client.try_read(&mut [0; 8]).unwrap(), 1);
        let pool = Pool::default();
        pool.put(client);

        assert!(pool.take(Check::Reactor).is_some());
    }

    #[tokio::test]
    async fn no_more_than_max_idle_are_kept_the_oldest_going_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool::default();
        let mut servers = Vec::new();
        let mut addresses = Vec::new();
        for _ in 0..MAX_IDLE + 3 {
            let (client, server) = pair(&listener).await;
            servers.push(server);
            addresses.push(client.local_addr().unwrap());
            pool.put(client);
        }
        assert_eq!(pool.len(), MAX_IDLE);
        let mut taken = Vec::new();
        while let Some(stream) = pool.take(Check::Socket) {
            taken.push(stream.local_addr().unwrap());
        }
        // The warmest first; the three oldest were closed.
        addresses.reverse();
        addresses.truncate(MAX_IDLE);
        assert_eq!(taken, addresses);
    }
}
