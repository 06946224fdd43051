//! A static Electric for the nginx comparison (`MODE=nginx benches/load.sh`, issue #16): every
//! request that carries Electric's secret gets one fixed snapshot, the answer the demo
//! stand-in (`examples/standin.rs`) gives the example gateway's composed query for alice
//! (acme's two open items, Electric's headers, `content-length`), byte for byte but the date.
//!
//! Not the stand-in itself: the stand-in evaluates the shape on every request, and on a
//! 2-core machine that CPU is taken from the proxies being compared. A fixed answer costs the
//! same behind each proxy and little, so the ratios are the proxies'.
//!
//! It still checks what a proxy must do: a request whose query does not hold exactly one
//! `secret` pair, equal to `ELECTRIC_SECRET`, or that holds an `api_secret` pair, or that is
//! not for `/v1/shape`, is a 401 (or 404), so a proxy that forgets the secret, or passes a
//! client's along, shows as wrk's non-2xx responses. Keys are compared as sent (no
//! percent-decoding): the proxies under test send them literally.
//!
//! ```sh
//! ELECTRIC_SECRET=s3cret LISTEN_ADDR=127.0.0.1:3000 cargo run --release --example static_upstream
//! ```
//!
//! Prints its base URL (`http://127.0.0.1:<port>`) on the first line of stdout; `LISTEN_ADDR`
//! defaults to a free port on 127.0.0.1.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The stand-in's snapshot for the gateway's composed query (`table=items`, the four visible
/// columns, `tenant_id = $1 AND (done = false)` with `params[1]=acme`).
const BODY: &str = concat!(
    r#"[{"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"1\"","value":{"done":"false","id":"1","tenant_id":"acme","title":"Draft the launch plan"}},"#,
    r#"{"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"3\"","value":{"done":"false","id":"3","tenant_id":"acme","title":"Book the offsite"}},"#,
    r#"{"headers":{"control":"snapshot-end","xip_list":[],"xmax":"8","xmin":"7"}}]"#,
);

/// The stand-in's headers for that answer, as Electric 1.x sends them.
const HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json; charset=utf-8"),
    (
        "cache-control",
        "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746",
    ),
    ("etag", "\"49430225-1796229279455280:-1:0_inf\""),
    ("electric-handle", "49430225-1796229279455280"),
    ("electric-offset", "0_inf"),
    (
        "electric-schema",
        r#"{"done":{"type":"bool","not_null":true},"id":{"type":"int8","pk_index":0,"not_null":true},"tenant_id":{"type":"text","not_null":true},"title":{"type":"text","not_null":true}}"#,
    ),
    ("electric-has-data", "true"),
    ("access-control-allow-origin", "*"),
    (
        "access-control-expose-headers",
        "electric-cursor,electric-handle,electric-has-data,electric-offset,electric-schema,electric-up-to-date,electric-internal-known-error,retry-after",
    ),
    (
        "access-control-allow-methods",
        "GET, POST, HEAD, DELETE, OPTIONS",
    ),
    ("electric-server", "ElectricSQL/1.7.12"),
];

struct Answer {
    secret: String,
    headers: http::HeaderMap,
}

impl Answer {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/v1/shape" {
            return status(StatusCode::NOT_FOUND);
        }
        if !self.has_only_our_secret(request.uri().query().unwrap_or_default()) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
        *response.headers_mut() = self.headers.clone();
        response
    }

    /// Exactly one `secret` pair, ours, and no `api_secret`.
    fn has_only_our_secret(&self, query: &str) -> bool {
        let mut secrets = 0;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "secret" if value == self.secret => secrets += 1,
                "secret" | "api_secret" => return false,
                _ => {}
            }
        }
        secrets == 1
    }
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secret = std::env::var("ELECTRIC_SECRET").map_err(|_| "ELECTRIC_SECRET is required")?;
    let listen: SocketAddr = std::env::var("LISTEN_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:0".into())
        .parse()?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(BODY.len()));
    let answer = Arc::new(Answer { secret, headers });

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("http://{}", listener.local_addr()?);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let answer = Arc::clone(&answer);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = answer.answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
