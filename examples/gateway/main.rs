//! The example gateway: an authorizing proxy in front of Electric, built from this crate's
//! layers on an axum router (see `app.rs` for the stack).
//!
//! ```sh
//! cargo run --example gateway
//! ```
//!
//! Configuration (environment):
//! - `LISTEN_ADDR` (default `127.0.0.1:3001`): where the gateway listens.
//! - `ELECTRIC_URL`: Electric's base URL. Unset, an in-process Electric stand-in is started,
//!   seeded with demo data (item titles encrypted at rest with per-tenant keys) and requiring a
//!   random `ELECTRIC_SECRET`; `POST /api/items` then writes to it.
//! - `ELECTRIC_SECRET`: Electric's API secret, injected into every upstream request.
//! - `GATEWAY_TOKENS` (default `alice-token=acme,bob-token=globex`): demo bearer tokens and the
//!   tenant each one is. **Demo only**: a real app puts its own authentication here.
//! - `TENANT_KEYS`: `tenant=<64 hex digits>,...`, the AES-256 keys of the encrypted `title`
//!   column. Unset, each tenant gets a random key for this run.
//! - `ALLOW_CIDRS` (default `127.0.0.0/8,::1/128`), `TRUSTED_PROXIES` (default empty): the
//!   network rule; forwarding headers are read only from trusted proxies.
//! - `GATEWAY_REQUIRE_TOKEN`: if set, `/internal/v1/shape` serves trusted callers (server-side
//!   sync jobs) that present one of these comma-separated tokens, without the tenant policy.
#![allow(clippy::print_stdout)]

mod app;
#[path = "../encryption/columns.rs"]
mod columns;

use std::collections::HashMap;
use std::net::SocketAddr;

use tower_electric::ip::IpLists;
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{InjectSecret, RequireToken};
use tower_electric::SecretString;

use app::{BoxError, GatewayConfig};
use columns::TenantKeys;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_electric=debug".into()),
        )
        .init();

    let listen: SocketAddr = env_or("LISTEN_ADDR", "127.0.0.1:3001").parse()?;
    let tokens = app::parse_tokens(&env_or(
        "GATEWAY_TOKENS",
        "alice-token=acme,bob-token=globex",
    ))?;
    let keys = tenant_keys(tokens.values())?;

    let (electric_url, secret, stand_in) = match std::env::var("ELECTRIC_URL") {
        Ok(url) => (url, InjectSecret::from_env("ELECTRIC_SECRET")?, None),
        Err(_) => {
            let secret = std::env::var("ELECTRIC_SECRET").unwrap_or_else(|_| random_hex(16));
            let database = ElectricStandIn::builder()
                .electric_timing()
                .secret(secret.clone())
                .with_demo_data()
                .build();
            app::encrypt_at_rest(&database, &keys)?;
            let server = database.serve().await?;
            println!("Electric stand-in with demo data at {}", server.url());
            let url = server.url().to_owned();
            let secret = InjectSecret::new(SecretString::new(secret))?;
            (url, secret, Some((database, server)))
        }
    };

    let router = app::router(GatewayConfig {
        electric_url: electric_url.clone(),
        secret,
        tokens: tokens.clone(),
        lists: IpLists::new()
            .allow(env_or("ALLOW_CIDRS", "127.0.0.0/8,::1/128"))?
            .trust_proxies(env_or("TRUSTED_PROXIES", ""))?,
        require_tokens: match std::env::var("GATEWAY_REQUIRE_TOKEN") {
            Ok(_) => Some(RequireToken::from_env("GATEWAY_REQUIRE_TOKEN")?),
            Err(_) => None,
        },
        keys,
        writes: stand_in.as_ref().map(|(database, _)| database.clone()),
    })?;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let mut demo: Vec<_> = tokens
        .iter()
        .map(|(t, tenant)| format!("{t} → {tenant}"))
        .collect();
    demo.sort();
    println!("Gateway on http://{local} in front of {electric_url}");
    println!("Demo tokens (demo only): {}", demo.join(", "));
    println!("Try:");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1' -H 'Authorization: Bearer alice-token'");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1&where=done%20%3D%20false' -H 'Authorization: Bearer bob-token'");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1&columns=id,internal_note' -H 'Authorization: Bearer alice-token'   # 403");
    println!("  curl -i 'http://{local}/v1/shape?table=items&offset=-1'   # 401");
    if stand_in.is_some() {
        println!("  curl -i 'http://{local}/api/items' -H 'Authorization: Bearer alice-token' -H 'content-type: application/json' -d '{{\"id\": 10, \"title\": \"Written through the gateway\"}}'");
    }

    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The tenants' keys: from `TENANT_KEYS`, or random for this run.
fn tenant_keys<'a>(tenants: impl Iterator<Item = &'a String>) -> Result<TenantKeys, BoxError> {
    let mut keys = HashMap::new();
    match std::env::var("TENANT_KEYS") {
        Ok(text) => {
            for entry in text
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
            {
                let (tenant, hex) = entry
                    .split_once('=')
                    .ok_or("TENANT_KEYS entries are tenant=hex")?;
                keys.insert(tenant.trim().to_owned(), key_from_hex(hex.trim())?);
            }
        }
        Err(_) => {
            for tenant in tenants {
                keys.insert(tenant.clone(), key_from_hex(&random_hex(32))?);
            }
        }
    }
    Ok(TenantKeys::new(keys, app::ENCRYPTED_COLUMNS))
}

fn key_from_hex(hex: &str) -> Result<[u8; 32], BoxError> {
    let mut key = [0u8; 32];
    if hex.len() != 64 {
        return Err("a tenant key is 64 hex digits".into());
    }
    for (index, byte) in key.iter_mut().enumerate() {
        let digits = hex
            .get(index * 2..index * 2 + 2)
            .ok_or("a tenant key is 64 hex digits")?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| "a tenant key is 64 hex digits")?;
    }
    Ok(key)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `len` random bytes from the OS, hex-encoded.
fn random_hex(len: usize) -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; len];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
