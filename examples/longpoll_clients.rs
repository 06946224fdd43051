//! The client side of the long-poll concurrency benchmark (`benches/longpoll.sh`): opens
//! `CLIENTS` connections to the gateway, sends one live long-poll on each, and keeps them
//! open. Plain HTTP/1.1 written by hand, so that the harness itself stays small.
//!
//! Environment: `GATEWAY_ADDR` (default `127.0.0.1:3001`), `CLIENTS` (default 10000),
//! `REQUEST_TARGET` (the live request's path and query, required), `AUTHORIZATION` (the
//! header's value, default `Bearer alice-token`).
//!
//! Prints `sent <n>` once every request is written, then `answered <n>` whenever a held
//! request is answered (which, while the hold lasts, it should not be).
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    let request: Arc<[u8]> =
        format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {authorization}\r\n\r\n")
            .into_bytes()
            .into();

    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    // Connect in bounded waves: a burst of 10,000 SYNs overflows the listen backlog.
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
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
            Ok::<_, std::io::Error>(())
        });
    }
    loop {
        if sent.load(Ordering::Relaxed) == clients {
            break;
        }
        if let Some(Ok(Err(error))) = tasks.try_join_next() {
            return Err(error.into());
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
