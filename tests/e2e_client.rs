#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout
)]
//! End to end with software nobody on this team wrote: Electric's own TypeScript client
//! (`@electric-sql/client`, pinned in `e2e/package-lock.json`) drives the example gateway (all
//! four layers, `examples/gateway/app.rs`) in front of the Electric stand-in.
//!
//! This test starts the stand-in (demo data, titles encrypted at rest, short long-poll hold
//! and SSE window), the gateway, the gatekeeper example (`examples/gatekeeper.rs`, in front of
//! a stand-in of its own with plaintext demo data), and a small control server through which the node suite
//! changes rows and rotates shapes upstream; then it runs `node --test` on `e2e/tests/` and
//! passes when node does. Node and npm are required: without them the test fails and says
//! what to install.

#[path = "../examples/gateway/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/encryption/columns.rs"]
mod columns;
#[path = "../examples/gatekeeper.rs"]
mod gatekeeper;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tower_electric::ip::IpLists;
use tower_electric::testing::{ElectricStandIn, Row, StandInError};
use tower_electric::token::InjectSecret;
use tower_electric::SecretString;

use app::GatewayConfig;
use columns::TenantKeys;

const ELECTRIC_SECRET: &str = "e2e-electric-secret";
const GATEKEEPER_ADMIN_TOKEN: &str = "e2e-admin-token";

#[test]
fn electric_typescript_client_through_the_gateway() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    require_node();
    require_tool("npm");
    install_client(&e2e);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let urls = runtime.block_on(start_servers());

    let tests = test_files(&e2e.join("tests"));
    assert!(!tests.is_empty(), "no e2e/tests/*.test.mjs files");
    let output = Command::new("node")
        .current_dir(&e2e)
        .arg("--test")
        .arg("--test-concurrency=1")
        .arg("--test-timeout=30000")
        // The client keeps a 60 s timer after an up-to-date (a throttled localStorage write of its
        // up-to-date tracker), which would hold every test file open for a minute.
        .arg("--test-force-exit")
        .args(&tests)
        .env("GATEWAY_URL", &urls.gateway)
        .env("CONTROL_URL", &urls.control)
        .env("GATEKEEPER_URL", &urls.gatekeeper)
        .env("GATEKEEPER_ADMIN_TOKEN", GATEKEEPER_ADMIN_TOKEN)
        .env("STANDIN_URL", &urls.standin)
        .env("STANDIN_SECRET", ELECTRIC_SECRET)
        .output()
        .expect("node runs");
    let report = describe(&output);
    println!("{report}");
    drop(runtime);
    assert!(
        output.status.success(),
        "the node suite failed ({}):\n{report}",
        output.status
    );
}

struct Urls {
    gateway: String,
    gatekeeper: String,
    control: String,
    standin: String,
}

/// The stand-in, the gateway in front of it, and the control server, each on a free port.
async fn start_servers() -> Urls {
    let database = ElectricStandIn::builder()
        .secret(ELECTRIC_SECRET)
        .long_poll_hold(Duration::from_secs(1))
        .sse_duration(Duration::from_secs(4))
        .with_demo_data()
        .build();
    let keys = TenantKeys::new(
        HashMap::from([
            ("acme".to_owned(), [0x11; 32]),
            ("globex".to_owned(), [0x22; 32]),
        ]),
        app::ENCRYPTED_COLUMNS,
    );
    app::encrypt_at_rest(&database, &keys).unwrap();
    let standin = database.serve().await.unwrap();
    let standin_url = standin.url().to_owned();
    // The server stops when its handle is dropped: keep it for the runtime's lifetime.
    tokio::spawn(async move {
        let _standin = standin;
        std::future::pending::<()>().await;
    });

    let router = app::router(GatewayConfig {
        electric_url: standin_url.clone(),
        secret: InjectSecret::new(SecretString::new(ELECTRIC_SECRET)).unwrap(),
        tokens: app::parse_tokens("alice-token=acme,bob-token=globex").unwrap(),
        lists: IpLists::new().allow("127.0.0.0/8,::1/128").unwrap(),
        require_tokens: None,
        upstream_http2: false,
        upstream_tls: Default::default(),
        keys: Some(keys.clone()),
        writes: Some(database.clone()),
    })
    .unwrap();
    let gateway = listener().await;
    let gateway_addr = gateway.local_addr().unwrap();
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(gateway, service).await.unwrap();
    });
    let gatekeeper = start_gatekeeper().await;
    let control = listener().await;
    let control_addr = control.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(control, control_router(database, &keys))
            .await
            .unwrap();
    });
    Urls {
        gateway: format!("http://{gateway_addr}"),
        gatekeeper,
        control: format!("http://{control_addr}"),
        standin: standin_url,
    }
}

/// The gatekeeper example in front of a stand-in of its own (plaintext demo data: this app
/// decrypts nothing); its URL.
async fn start_gatekeeper() -> String {
    let database = ElectricStandIn::builder()
        .secret(ELECTRIC_SECRET)
        .long_poll_hold(Duration::from_secs(1))
        .sse_duration(Duration::from_secs(4))
        .with_demo_data()
        .build();
    let standin = database.serve().await.unwrap();
    let router = gatekeeper::router(gatekeeper::GatekeeperConfig {
        electric_url: standin.url().to_owned(),
        secret: InjectSecret::new(SecretString::new(ELECTRIC_SECRET)).unwrap(),
        signing_key: SecretString::new("e2e gatekeeper signing key, 32 bytes or more"),
        users: gatekeeper::parse_users("alice-token=alice@acme,bob-token=bob@globex").unwrap(),
        admin_token: SecretString::new(GATEKEEPER_ADMIN_TOKEN),
        token_ttl: Duration::from_secs(60),
        revocations: tower_electric::revocation::Revocations::new(),
    })
    .unwrap();
    tokio::spawn(async move {
        let _standin = standin;
        std::future::pending::<()>().await;
    });
    let listener = listener().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

// ---- the control server: the node suite's hands on the database -------------------------

/// `POST /{insert|update|delete}/{table}` with a JSON object of column values (strings,
/// numbers, booleans as Postgres text; `null` as NULL), `POST /rotate/{table}`, and
/// `GET /stats`: what the stand-in has seen.
fn control_router(database: ElectricStandIn, keys: &TenantKeys) -> Router {
    Router::new()
        .route("/{change}/{table}", post(change))
        .route("/stats", get(stats))
        .with_state(Upstream {
            database,
            keys: keys.clone(),
        })
}

/// The control server's state: the database, and the tenant keys its writes are encrypted
/// with (as the app's write path does), so the gateway can decrypt them.
#[derive(Clone)]
struct Upstream {
    database: ElectricStandIn,
    keys: TenantKeys,
}

async fn change(
    State(Upstream { database, keys }): State<Upstream>,
    UrlPath((change, table)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let row = || {
        let row = row_from_json(&body)?;
        match app::encrypt_row(&row, &keys) {
            Ok(encrypted) => Ok(encrypted.unwrap_or(row)),
            Err(error) => Err(error.to_string()),
        }
    };
    let result: Result<Option<String>, String> = match change.as_str() {
        "insert" => row().and_then(|row| to_text(database.insert(&table, row))),
        "update" => row().and_then(|row| to_text(database.update(&table, row))),
        "delete" => row().and_then(|row| to_text(database.delete(&table, row))),
        "rotate" => database
            .rotate(&table)
            .map(|()| None)
            .map_err(|error| error.to_string()),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match result {
        Ok(offset) => json_answer(StatusCode::OK, &json!({ "offset": offset })),
        Err(error) => json_answer(StatusCode::BAD_REQUEST, &json!({ "error": error })),
    }
}

fn to_text(
    offset: Result<tower_electric::protocol::LogOffset, StandInError>,
) -> Result<Option<String>, String> {
    offset
        .map(|offset| Some(offset.to_string()))
        .map_err(|error| error.to_string())
}

fn row_from_json(body: &[u8]) -> Result<Row, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    let object = value.as_object().ok_or("the body is a JSON object")?;
    let mut row = Row::new();
    for (column, value) in object {
        row = match value {
            Value::Null => row.with_null(column),
            Value::String(text) => row.with(column, text),
            Value::Number(_) | Value::Bool(_) => row.with(column, value.to_string()),
            _ => return Err(format!("{column}: not a scalar")),
        };
    }
    Ok(row)
}

async fn stats(State(Upstream { database, .. }): State<Upstream>) -> Response {
    let requests = database.requests();
    let sse_requests = requests
        .iter()
        .filter(|request| request.query_value("live_sse") == Some("true"))
        .count();
    json_answer(
        StatusCode::OK,
        &json!({
            "requests": requests.len(),
            "sse_requests": sse_requests,
            "live_in_flight": database.live_in_flight(),
            "live_cancelled": database.live_cancelled(),
        }),
    )
}

fn json_answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---- node and npm --------------------------------------------------------------------------

/// Fails (never skips) when a tool is missing, saying what to install.
fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "`{tool}` is required by the end-to-end test (Electric's TypeScript client runs on \
         node 20.14+): install it, e.g. `apt-get install nodejs npm`"
    );
}

/// Node 20.14 or newer: the first with `--test-force-exit`.
fn require_node() {
    require_tool("node");
    let output = Command::new("node")
        .arg("--version")
        .output()
        .expect("node runs");
    let version = String::from_utf8_lossy(&output.stdout);
    let mut numbers = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    assert!(
        (major, minor) >= (20, 14),
        "the end-to-end test needs node 20.14 or newer (found {}): install a newer nodejs",
        version.trim()
    );
}

/// `npm ci` in `e2e/` when `node_modules` is missing or older than the lock file.
fn install_client(e2e: &Path) {
    let modified = |path: PathBuf| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let installed = modified(e2e.join("node_modules").join(".package-lock.json"));
    let locked = modified(e2e.join("package-lock.json"));
    if installed.is_some() && installed >= locked {
        return;
    }
    let output = Command::new("npm")
        .current_dir(e2e)
        .args(["ci", "--no-audit", "--no-fund"])
        .output()
        .expect("npm runs");
    assert!(
        output.status.success(),
        "`npm ci` in e2e/ failed:\n{}",
        describe(&output)
    );
}

/// `e2e/tests/*.test.mjs`, sorted, relative to `e2e/`.
fn test_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("tests/{name}"))
        .collect();
    files.sort();
    files
}

fn describe(output: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
