//! A bare passthrough proxy, the baseline of the load benchmark (`benches/load.sh`): hyper
//! server, hyper-util's pooled legacy client (TCP_NODELAY, like `ElectricUpstream`), both
//! bodies streamed, no layers. It forwards the request's path and query to `ELECTRIC_URL`,
//! appending `secret=ELECTRIC_SECRET` so that Electric does the same work as behind the
//! gateway. Served as the gateways are: one worker thread per core (`WORKERS`), each with its
//! own runtime, listener and pool (`support/per_core.rs`).
//!
//! ```sh
//! ELECTRIC_URL=http://127.0.0.1:3000 ELECTRIC_SECRET=s3cret LISTEN_ADDR=127.0.0.1:3002 \
//!     cargo run --release --example bare_proxy
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tower_electric::protocol::query::encode_component;

/// The same allocator as the example gateway, so that the two are compared on equal terms.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[path = "support/per_core.rs"]
mod per_core;

#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, Incoming>,
    authority: Authority,
    host: HeaderValue,
    secret_pair: String,
}

impl Proxy {
    async fn forward(
        self,
        request: Request<Incoming>,
    ) -> Result<Response<http_body_util::Either<Incoming, String>>, BoxError> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{}?{query}&{}", parts.uri.path(), self.secret_pair),
            None => format!("{}?{}", parts.uri.path(), self.secret_pair),
        };
        parts.uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path_and_query)?)
            .build()?;
        parts.headers.insert(header::HOST, self.host.clone());
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => Ok(response.map(http_body_util::Either::Left)),
            Err(_) => Ok(Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(http_body_util::Either::Right(String::new()))?),
        }
    }
}

fn main() -> Result<(), BoxError> {
    let upstream: Uri = std::env::var("ELECTRIC_URL")
        .map_err(|_| "ELECTRIC_URL is required")?
        .parse()?;
    let authority = upstream
        .authority()
        .ok_or("ELECTRIC_URL has no host")?
        .clone();
    let secret = std::env::var("ELECTRIC_SECRET").map_err(|_| "ELECTRIC_SECRET is required")?;
    let listen: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3002".into())
        .parse()?;

    // A proxy per worker, each with its own pool: served as the gateways are.
    let mut proxies = Vec::new();
    for _ in 0..per_core::workers_from_env()? {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        proxies.push(Proxy {
            client: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(connector),
            host: HeaderValue::from_str(authority.as_str())?,
            authority: authority.clone(),
            secret_pair: format!("secret={}", encode_component(&secret)),
        });
    }
    let (local, workers) = per_core::spawn(
        listen,
        proxies
            .into_iter()
            .map(|proxy| move |listener| serve(listener, proxy)),
    )?;
    println!("Bare proxy on http://{local} in front of {upstream}");
    workers.join();
    Ok(())
}

/// One worker's accept loop.
async fn serve(listener: tokio::net::TcpListener, proxy: Proxy) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| proxy.clone().forward(request));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
