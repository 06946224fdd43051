//! Encryption in HTTP middleware, as Electric's security guide describes it: the database and
//! Electric only ever hold ciphertext; the gateway encrypts on the way in and decrypts on the
//! way out, with each tenant's key.
//!
//! ```sh
//! cargo run --example encryption
//! ```
//!
//! Electric's own encryption example encrypts in the browser; this one does the same in the
//! gateway of `examples/gateway` (its router is reused as is): an Electric stand-in with demo
//! data, the gateway in front of it, one item written through `POST /api/items` with a
//! plaintext title, then the item as the stand-in stores it and as alice receives it. The
//! flow lives in `demo.rs`, which `tests/gateway/` runs too.
#![allow(clippy::print_stdout)]

#[path = "../gateway/app.rs"]
mod app;
mod columns;
mod demo;

use tower_electric::testing::ElectricStandIn;

use app::BoxError;
use demo::{Demo, HttpClient};

/// Electric's secret in this demo: only the gateway (and this program) use it.
const ELECTRIC_SECRET: &str = "encryption-demo-secret";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let database = ElectricStandIn::builder()
        .secret(ELECTRIC_SECRET)
        .with_demo_data()
        .build();
    let demo = Demo::start(database, ELECTRIC_SECRET, "127.0.0.0/8,::1/128").await?;
    println!("Electric stand-in at {}", demo.electric.url());
    println!("Gateway at {}", demo.gateway);

    let title = "Plan the secret launch";
    println!("\nalice writes item 100 through POST /api/items with title {title:?}");
    let outcome = demo::write_and_read(&demo, &HttpClient::new(), 100, title).await?;
    println!("  the gateway answered {}", outcome.write_status);

    let stored = outcome
        .stored_title
        .ok_or("the stand-in does not have the item")?;
    println!("\nthe stand-in stores (read with Electric's secret, bypassing the gateway):");
    println!("  title = {stored:?}");
    let received = outcome
        .alice_title
        .ok_or("alice did not receive the item")?;
    println!("alice receives through the gateway:");
    println!("  title = {received:?}");
    println!(
        "bob (another tenant) receives it: {}",
        if outcome.bob_sees_it { "yes" } else { "no" }
    );

    if stored == title || received != title || outcome.bob_sees_it {
        return Err("the demo did not behave as described".into());
    }
    println!("\nciphertext at rest, plaintext only for the item's tenant.");
    Ok(())
}
