//! The demo Electric stand-in in its own process, for benchmarks: the gateway and the bare
//! proxy are pointed at it with `ELECTRIC_URL`, so each one's CPU and memory are its own.
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
//!   encrypted with them, so the gateway's decryption has real work to do.
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
    let tenants = ["acme".to_owned(), "globex".to_owned()];
    let keys = app::tenant_keys(tenants.iter())?;
    app::encrypt_at_rest(&database, &keys)?;
    let server = database.serve().await?;
    println!("{}", server.url());

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
