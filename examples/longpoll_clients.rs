//! The client side of the long-poll concurrency benchmark (`benches/longpoll.sh`): sends
//! `CLIENTS` live long-polls to the gateway and keeps them open.
//!
//! `CLIENT_PROTOCOL=http1` (default): one connection per long-poll, as browsers without
//! HTTP/2 (and most server-side clients) hold them; plain HTTP/1.1 written by hand, so that
//! the harness itself stays small. `CLIENT_PROTOCOL=h2c`: HTTP/2 with prior knowledge,
//! `STREAMS_PER_CONNECTION` (default 500, below the gateway's 512) long-polls per connection,
//! as a browser's live shapes share its one HTTP/2 connection.
//!
//! Environment: `GATEWAY_ADDR` (default `127.0.0.1:3001`), `CLIENTS` (default 10000),
//! `REQUEST_TARGET` (the live request's path and query, required), `AUTHORIZATION` (the
//! header's value, default `Bearer alice-token`), `CLIENT_PROTOCOL`, `STREAMS_PER_CONNECTION`.
//!
//! Prints `sent <n>` once every request is written (over h2c: handed to its connection; the
//! benchmark counts what the stand-in holds, not this), then `answered <n>` whenever a held
//! request is answered (which, while the hold lasts, it should not be).
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let addr: SocketAddr = std::env::var("GATEWAY_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let clients: usize = std::env::var("CLIENTS")
        .unwrap_or_else(|_| "10000".into())
        .parse()?;
    let target = std::env::var("REQUEST_TARGET").map_err(|_| "REQUEST_TARGET is required")?;
    let authorization =
        std::env::var("AUTHORIZATION").unwrap_or_else(|_| "Bearer alice-token".into());
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    match std::env::var("CLIENT_PROTOCOL").as_deref() {
        Ok("http1") | Err(_) => {
            let request: Arc<[u8]> = format!(
                "GET {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {authorization}\r\n\r\n"
            )
            .into_bytes()
            .into();
            // Connect in bounded waves: a burst of 10,000 SYNs overflows the listen backlog.
            let connecting = Arc::new(Semaphore::new(256));
            for _ in 0..clients {
                let permit = Arc::clone(&connecting).acquire_owned().await?;
                let (request, sent, answered) = (request.clone(), sent.clone(), answered.clone());
                tasks.spawn(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    stream.write_all(&request).await?;
                    sent.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    let mut first = [0u8; 1];
                    if stream.read(&mut first).await? > 0 {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    // Keep the connection until the harness is stopped.
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                });
            }
        }
        Ok("h2c") => {
            let per_connection: usize = std::env::var("STREAMS_PER_CONNECTION")
                .unwrap_or_else(|_| "500".into())
                .parse()?;
            let uri: http::Uri = format!("http://{addr}{target}").parse()?;
            let mut left = clients;
            while left > 0 {
                let streams = left.min(per_connection.max(1));
                left -= streams;
                let stream = TcpStream::connect(addr).await?;
                let (sender, connection) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await?;
                tokio::spawn(connection);
                for _ in 0..streams {
                    let request = http::Request::get(uri.clone())
                        .header(http::header::AUTHORIZATION, authorization.as_str())
                        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
                    let (mut sender, sent, answered) =
                        (sender.clone(), sent.clone(), answered.clone());
                    tasks.spawn(async move {
                        sender.ready().await?;
                        let response = sender.send_request(request);
                        sent.fetch_add(1, Ordering::Relaxed);
                        let _response = response.await?;
                        answered.fetch_add(1, Ordering::Relaxed);
                        std::future::pending::<()>().await;
                        Ok::<_, BoxError>(())
                    });
                }
            }
        }
        Ok(other) => return Err(format!("CLIENT_PROTOCOL is http1 or h2c, not {other:?}").into()),
    }
    loop {
        if sent.load(Ordering::Relaxed) == clients {
            break;
        }
        if let Some(Ok(Err(error))) = tasks.try_join_next() {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("sent {clients}");
    let mut reported = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = answered.load(Ordering::Relaxed);
        if now != reported {
            println!("answered {now}");
            reported = now;
        }
        if let Some(Ok(Err(error))) = tasks.try_join_next() {
            println!("error {error}");
        }
    }
}
