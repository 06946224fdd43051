//! Idle connections kept for the next request: the warmest first, none older than
//! [`IDLE_TIMEOUT`], none that the server has closed or written to since.

use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};
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
    pub(super) fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(connection) = idle.pop() {
            if connection.since.elapsed() >= IDLE_TIMEOUT {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if is_quiet(&connection.stream) {
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

/// Whether an idle connection has nothing to read: not closed by the server (a read would
/// see its end), and no bytes a request never asked for, which must not be taken for the next
/// request's response.
fn is_quiet(stream: &TcpStream) -> bool {
    // A peek straight at the socket: Tokio's readiness, which `try_read` consults first, may
    // not have caught up yet with what arrived while the connection was idle.
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

        let taken = pool.take().unwrap();
        assert_eq!(taken.local_addr().unwrap(), oldest_address);
        assert_eq!(pool.len(), 0);
        assert!(pool.take().is_none());
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
        while let Some(stream) = pool.take() {
            taken.push(stream.local_addr().unwrap());
        }
        // The warmest first; the three oldest were closed.
        addresses.reverse();
        addresses.truncate(MAX_IDLE);
        assert_eq!(taken, addresses);
    }
}
