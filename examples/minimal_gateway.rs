//! The minimal gateway of the nginx comparison (`MODE=nginx benches/load.sh`, issue #16): the
//! network rule and the secret, nothing else. [`IpAllowLayer`] (the socket peer against
//! `ALLOW_CIDRS`) → [`ApiTokenLayer::inject`] (client `secret`/`api_secret` removed, the
//! server's `ELECTRIC_SECRET` added) → [`ElectricUpstream`] (pooled HTTP/1.1, fixed path
//! `/v1/shape`, hop-by-hop headers and client credentials dropped, streaming). It does what
//! nginx with `allow`/`deny` and `proxy_pass ...?$args&secret=...` does, so the two can be
//! compared request for request: no policy, no transform, no router, no CORS, no telemetry.
//!
//! Served like the example gateway: hyper's HTTP/1.1 server directly (a header read timeout,
//! TCP_NODELAY, the peer as [`PeerAddr`]), one worker thread per core, each with its own
//! runtime, listener and stack (`support/per_core.rs`, as nginx's workers), with jemalloc.
//!
//! ```sh
//! ELECTRIC_URL=http://127.0.0.1:3000 ELECTRIC_SECRET=s3cret LISTEN_ADDR=127.0.0.1:3003 \
//!     cargo run --release --example minimal_gateway
//! ```
//!
//! Configuration (environment): `ELECTRIC_URL` (required), `ELECTRIC_SECRET` (required),
//! `LISTEN_ADDR` (default `127.0.0.1:3003`), `ALLOW_CIDRS` (default `127.0.0.0/8,::1/128`),
//! `WORKERS` (default: one per CPU).
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_electric::ip::{IpAllow, IpAllowLayer, IpLists, PeerAddr};
use tower_electric::token::{ApiToken, ApiTokenLayer, InjectSecret};
use tower_electric::ElectricUpstream;

/// The example gateway's allocator, so that the two gateways and the bare proxy are compared
/// on equal terms.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[path = "support/per_core.rs"]
mod per_core;

fn main() -> Result<(), BoxError> {
    let electric_url = std::env::var("ELECTRIC_URL").map_err(|_| "ELECTRIC_URL is required")?;
    let listen: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3003".into())
        .parse()?;
    let allow = IpLists::new()
        .allow(std::env::var("ALLOW_CIDRS").unwrap_or_else(|_| "127.0.0.0/8,::1/128".into()))?;
    let secret = InjectSecret::from_env("ELECTRIC_SECRET")?;

    // A stack per worker: each has its own upstream pool, on its own thread.
    let mut stacks = Vec::new();
    for _ in 0..per_core::workers_from_env()? {
        stacks.push(
            ServiceBuilder::new()
                .layer(IpAllowLayer::new(allow.clone()))
                .layer(ApiTokenLayer::inject(secret.clone()))
                .service(ElectricUpstream::new(electric_url.as_str())?),
        );
    }
    let (local, workers) = per_core::spawn(
        listen,
        stacks
            .into_iter()
            .map(|gateway| move |listener| serve(listener, gateway)),
    )?;
    println!("Minimal gateway on http://{local} in front of {electric_url}");
    workers.join();
    Ok(())
}

/// The whole stack.
type Gateway = IpAllow<ApiToken<ElectricUpstream>>;

/// One worker's accept loop.
async fn serve(listener: TcpListener, gateway: Gateway) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));

    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, or a peer gone before the accept: go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let connection = http1.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                gateway.clone().oneshot(request)
            }),
        );
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
