//! The demo Electric stand-in in its own process, for benchmarks and the HTTPS demo: the
//! gateway and the bare proxy are pointed at it with `ELECTRIC_URL`, so each one's CPU and
//! memory are its own.
//!
//! ```sh
//! ELECTRIC_SECRET=s3cret TENANT_KEYS=acme=<64 hex>,globex=<64 hex> cargo run --release --example standin
//! ```
//!
//! Prints its base URL (`http://127.0.0.1:<port>`) on the first line of stdout.
//!
//! Configuration (environment):
//! - `ELECTRIC_SECRET` (required): the secret it requires.
//! - `TENANT_KEYS`: the tenants' AES-256 keys, as for the gateway; the demo titles are stored
//!   encrypted with them, so the gateway's decryption has real work to do. Unset, the titles
//!   are stored as plaintext, which a gateway without `TENANT_KEYS` serves as stored.
//! - `STANDIN_TLS_DIR`: if set, serves HTTPS instead, as a self-hosted Electric with a private
//!   CA: a CA made for this run (rcgen) issues a certificate for `localhost` and `127.0.0.1`,
//!   and its certificate is written to `$STANDIN_TLS_DIR/ca.pem`, for the gateway's
//!   `ELECTRIC_CA_FILE`. The first line is then `https://localhost:<port>`, the second names
//!   that file. For the HTTPS demo (README, "HTTPS upstream"), not for benchmarks: the TLS
//!   side records each request's HTTP version, for the tests that share it, and does not
//!   answer `STANDIN_CONTROL`'s requests.
//! - `STAND_IN_LONG_POLL_HOLD_MS` (default 20000, Electric's): how long a live long-poll is held.
//! - `STANDIN_QUERY_FILE`: if set, the query of the first request it receives (decoded pairs
//!   re-encoded, `secret` left out) is written to this file: what the gateway's policy
//!   composed, so that the bare proxy can be driven with the same upstream query.
//! - `STANDIN_REPORT_LIVE`: if set, prints `live_in_flight <n>` whenever the number of held
//!   live requests changes (checked each 200 ms).
//! - `STANDIN_CONTROL`: if set, the same port also answers, for benchmarks and deployment tests
//!   (a test double's back door: never put it behind a gateway):
//!   - `GET /_standin/counts`: `{"shape": n, "snapshot": n, "live": n}`, the `/v1/shape`
//!     requests received since the start, those from offset `-1`, and the live ones: what a
//!     cache in front of it saved is read here, since this runs as its own process;
//!   - `POST /_standin/items` with `{"id", "tenant_id", "title", "done"}`: a row change from
//!     outside, as the app's own writes would make it (inserted, or updated when the id
//!     exists; the title encrypted with the tenant's key when `TENANT_KEYS` is set); answers `{"offset": "<tx>_0"}`.
#![allow(clippy::print_stdout)]

#[path = "gateway/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "encryption/columns.rs"]
mod columns;
// The tests' PKI and TLS-serving stand-in: the demo serves what the tests check.
#[path = "../tests/support/tls.rs"]
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_electric::protocol::query::encode_component;
use tower_electric::protocol::QueryPairs;
use tower_electric::testing::{ElectricStandIn, Row, StandInBody};

use app::BoxError;
use columns::TenantKeys;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secret = std::env::var("ELECTRIC_SECRET").map_err(|_| "ELECTRIC_SECRET is required")?;
    let hold = app::env_millis("STAND_IN_LONG_POLL_HOLD_MS")?.unwrap_or(Duration::from_secs(20));
    let database = ElectricStandIn::builder()
        .electric_timing()
        .long_poll_hold(hold)
        .secret(secret)
        .with_demo_data()
        .build();
    let keys = app::tenant_keys_from_env()?;
    if let Some(keys) = &keys {
        app::encrypt_at_rest(&database, keys)?;
    }
    match std::env::var_os("STANDIN_TLS_DIR") {
        Some(dir) => {
            let (url, ca_file) = serve_tls(&database, Path::new(&dir)).await?;
            println!("{url}");
            println!("CA certificate: {}", ca_file.display());
        }
        None => {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            println!("http://{}", listener.local_addr()?);
            let control = std::env::var_os("STANDIN_CONTROL")
                .is_some()
                .then(|| Control {
                    database: database.clone(),
                    keys: keys.clone(),
                });
            let counts = Arc::new(Counts::default());
            tokio::spawn(serve(listener, database.clone(), counts, control));
        }
    }

    if let Ok(path) = std::env::var("STANDIN_QUERY_FILE") {
        database.wait_for_requests(1).await;
        if let Some(first) = database.requests().first() {
            let query = first
                .query
                .iter()
                .filter(|(key, _)| key != "secret" && key != "api_secret")
                .map(|(key, value)| {
                    format!("{}={}", encode_component(key), encode_component(value))
                })
                .collect::<Vec<_>>()
                .join("&");
            std::fs::write(path, query)?;
        }
    }
    let report_live = std::env::var_os("STANDIN_REPORT_LIVE").is_some();
    let mut live = 0;
    let mut ticks = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ticks = ticks.wrapping_add(1);
        if ticks % 5 == 0 {
            // The stand-in records every request for tests; a benchmark sends millions.
            database.clear_requests();
        }
        if report_live && database.live_in_flight() != live {
            live = database.live_in_flight();
            println!("live_in_flight {live}");
        }
    }
}

/// Serves `database` over TLS with a certificate for `localhost` and `127.0.0.1` from a CA made
/// for this run, whose certificate it writes to `dir/ca.pem`. Returns the `https://` URL and
/// that file.
async fn serve_tls(database: &ElectricStandIn, dir: &Path) -> Result<(String, PathBuf), BoxError> {
    let ca = tls::Ca::new("tower-electric stand-in CA");
    std::fs::create_dir_all(dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem)?;
    let identity = ca.server(&["localhost", "127.0.0.1"]);
    let server = tls::TlsStandIn::serve(database, &tls::ServerTls::new(identity)).await;
    Ok((server.url(), ca_file))
}

/// `/v1/shape` requests received, by kind.
#[derive(Default)]
struct Counts {
    shape: AtomicU64,
    snapshot: AtomicU64,
    live: AtomicU64,
}

impl Counts {
    fn count(&self, query: &str) {
        self.shape.fetch_add(1, Ordering::Relaxed);
        let Ok(pairs) = QueryPairs::parse(query) else {
            return;
        };
        if pairs.get("offset") == Some("-1") {
            self.snapshot.fetch_add(1, Ordering::Relaxed);
        }
        if pairs.get("live").is_some_and(|live| live != "false") {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn json(&self) -> String {
        serde_json::json!({
            "shape": self.shape.load(Ordering::Relaxed),
            "snapshot": self.snapshot.load(Ordering::Relaxed),
            "live": self.live.load(Ordering::Relaxed),
        })
        .to_string()
    }
}

/// The back door's state, when `STANDIN_CONTROL` is set.
#[derive(Clone)]
struct Control {
    database: ElectricStandIn,
    /// The keys the titles are stored under, if any (`TENANT_KEYS`).
    keys: Option<TenantKeys>,
}

type Answer = Response<Either<StandInBody, Full<Bytes>>>;

/// Serves the stand-in (HTTP/1.1 and h2c, as `ElectricStandIn::serve` does), counting its
/// shape requests, with the back door in front when there is one.
async fn serve(
    listener: TcpListener,
    database: ElectricStandIn,
    counts: Arc<Counts>,
    control: Option<Control>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: wait for some to be released.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (database, counts, control) = (database.clone(), Arc::clone(&counts), control.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (database, counts, control) =
                    (database.clone(), Arc::clone(&counts), control.clone());
                async move { Ok::<_, Infallible>(route(request, database, &counts, control).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(None);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    request: Request<Incoming>,
    database: ElectricStandIn,
    counts: &Counts,
    control: Option<Control>,
) -> Answer {
    let path = request.uri().path().to_owned();
    match (control, request.method().clone(), path.as_str()) {
        (Some(_), Method::GET, "/_standin/counts") => json(StatusCode::OK, counts.json()),
        (Some(control), Method::POST, "/_standin/items") => {
            let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return json(StatusCode::BAD_REQUEST, r#"{"error":"unreadable body"}"#),
            };
            match write_item(&control, &body) {
                Ok(offset) => json(
                    StatusCode::OK,
                    serde_json::json!({ "offset": offset }).to_string(),
                ),
                Err(error) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": error.to_string() }).to_string(),
                ),
            }
        }
        _ => {
            if path == "/v1/shape" {
                counts.count(request.uri().query().unwrap_or_default());
            }
            match database.oneshot(request).await {
                Ok(response) => response.map(Either::Left),
                Err(never) => match never {},
            }
        }
    }
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A row change from outside: the item inserted, or updated when its id exists.
fn write_item(control: &Control, body: &[u8]) -> Result<String, BoxError> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    let text = |field: &str| -> Result<String, BoxError> {
        match value.get(field) {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
            Some(serde_json::Value::Bool(flag)) => Ok(flag.to_string()),
            _ => Err(format!("{field} is missing").into()),
        }
    };
    let id = text("id")?;
    let row = Row::new()
        .with("id", id.clone())
        .with("tenant_id", text("tenant_id")?)
        .with("title", text("title")?)
        .with("done", text("done").unwrap_or_else(|_| "false".into()));
    let row = match &control.keys {
        Some(keys) => app::encrypt_row(&row, keys)?.unwrap_or(row),
        None => row,
    };
    let exists = control
        .database
        .rows("items")?
        .iter()
        .any(|stored| stored.get("id") == Some(Some(id.as_str())));
    let offset = match exists {
        true => control.database.update("items", row)?,
        false => control.database.insert("items", row)?,
    };
    Ok(offset.to_string())
}
