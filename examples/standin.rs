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
//!   side records each request's HTTP version, for the tests that share it.
//! - `STAND_IN_LONG_POLL_HOLD_MS` (default 20000, Electric's): how long a live long-poll is held.
//! - `STANDIN_QUERY_FILE`: if set, the query of the first request it receives (decoded pairs
//!   re-encoded, `secret` left out) is written to this file: what the gateway's policy
//!   composed, so that the bare proxy can be driven with the same upstream query.
//! - `STANDIN_REPORT_LIVE`: if set, prints `live_in_flight <n>` whenever the number of held
//!   live requests changes (checked each 200 ms).
#![allow(clippy::print_stdout)]

#[path = "gateway/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "encryption/columns.rs"]
mod columns;
// The tests' PKI and TLS-serving stand-in: the demo serves what the tests check.
#[path = "../tests/support/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tower_electric::protocol::query::encode_component;
use tower_electric::testing::ElectricStandIn;

use app::BoxError;

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
    if let Some(keys) = app::tenant_keys_from_env()? {
        app::encrypt_at_rest(&database, &keys)?;
    }
    // Held to the end of main: dropping the plain server stops it, while the TLS one serves
    // until the runtime ends.
    let mut plain = None;
    match std::env::var_os("STANDIN_TLS_DIR") {
        Some(dir) => {
            let (url, ca_file) = serve_tls(&database, Path::new(&dir)).await?;
            println!("{url}");
            println!("CA certificate: {}", ca_file.display());
        }
        None => println!("{}", plain.insert(database.serve().await?).url()),
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
