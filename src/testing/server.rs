//! The stand-in on a real socket: HTTP/1.1 and h2c on `127.0.0.1`, any free port.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tower_service::Service;

use super::ElectricStandIn;

impl ElectricStandIn {
    /// Serves this stand-in (and the data it shares with its clones) on `127.0.0.1` at a free
    /// port, over HTTP/1.1 and cleartext HTTP/2. The server stops when the returned
    /// [`StandInServer`] is dropped or shut down. Must be called within a Tokio runtime.
    pub async fn serve(&self) -> std::io::Result<StandInServer> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, self.clone(), stopped));
        Ok(StandInServer {
            addr,
            url: format!("http://{addr}"),
            stop: Some(stop),
            task,
        })
    }
}

async fn accept(
    listener: TcpListener,
    standin: ElectricStandIn,
    mut stopped: oneshot::Receiver<()>,
) {
    // Connections live in the set, so that stopping the server ends them too (dropping
    // their in-flight requests, as a real server going away would).
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let standin = standin.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let mut standin = standin.clone();
                        standin.call(request)
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // hyper's default of 200 streams would hold back the 201st long-poll of a
                    // gateway that multiplexes them all over one h2c connection.
                    builder.http2().max_concurrent_streams(None);
                    // A connection error ends that connection only.
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A running stand-in server; dropping it stops the server.
#[derive(Debug)]
pub struct StandInServer {
    addr: SocketAddr,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StandInServer {
    /// The base URL, `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, closes the open ones, and waits until it is done.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for StandInServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
