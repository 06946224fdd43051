//! The example gateway: an authorizing proxy in front of Electric, built from this crate's
//! layers on an axum router (see `app.rs` for the stack).
//!
//! ```sh
//! cargo run --example gateway
//! ```
//!
//! Configuration (environment):
//! - `LISTEN_ADDR` (default `127.0.0.1:3001`): where the gateway listens. It serves HTTP/1.1
//!   and HTTP/2 there (`serve.rs`): a browser's live shapes then share one connection instead
//!   of queueing behind its 6 HTTP/1.1 connections per origin.
//! - `WORKERS` (default: one per CPU, on Linux): serving threads, each with its own runtime,
//!   listener on `LISTEN_ADDR` and router (`../support/per_core.rs`, as nginx's workers).
//! - `TLS_CERT_FILE`, `TLS_KEY_FILE`: PEM files of the gateway's certificate (chain) and key.
//!   Both set: it serves HTTPS only, ALPN `h2` or `http/1.1`. Neither: plain HTTP/1.1 and h2c
//!   (HTTP/2 with prior knowledge, for a TLS-terminating proxy in front). Both or neither.
//! - `ELECTRIC_URL`: Electric's base URL, `http://` or `https://` (verified against Mozilla's
//!   roots, plus `ELECTRIC_CA_FILE`; for Electric Cloud, `https://api.electric-sql.cloud`).
//!   Set, the gateway decrypts nothing unless `TENANT_KEYS` is set too: values pass as
//!   Electric stores them. Unset, an in-process Electric stand-in is started, seeded with demo
//!   data (item titles encrypted at rest with per-tenant keys, decrypted by the gateway) and
//!   requiring a random `ELECTRIC_SECRET`; `POST /api/items` then writes to it.
//! - `STAND_IN_LONG_POLL_HOLD_MS`, `STAND_IN_SSE_DURATION_MS` (stand-in only; default Electric's
//!   20 s and 60 s): how long the stand-in holds a long-poll and keeps an SSE stream open.
//!   Short values keep scripted runs against the demo (`e2e/schemathesis.sh`) fast.
//! - `ELECTRIC_SECRET`: Electric's API secret (Electric Cloud: the source's secret), injected
//!   into every upstream request.
//! - `ELECTRIC_SOURCE_ID`: Electric Cloud's source id, injected as `source_id` beside the
//!   secret. With the stand-in, the stand-in then requires it, as Cloud does.
//! - `ELECTRIC_HTTP2`: if set, talk to Electric over HTTP/2 only (h2c for `http://`; h2 for
//!   `https://`, where ALPN otherwise lets Electric choose) instead of pooled HTTP/1.1
//!   connections: one connection carries every long-poll, which saves descriptors, not memory
//!   (the HTTP/1.1 upstream is the leaner per held poll; README, Benchmarks).
//! - `ELECTRIC_CA_FILE`: a PEM file of CA certificates trusted beside the web roots, for a
//!   self-hosted Electric whose certificate a private CA issued.
//! - `ELECTRIC_CLIENT_CERT`, `ELECTRIC_CLIENT_KEY`: PEM files of a client certificate (chain)
//!   and its key, presented to an `https://` Electric that requires one (mTLS). Both or neither.
//! - `GATEWAY_TOKENS` (default `alice-token=acme,bob-token=globex`): demo bearer tokens and the
//!   tenant each one is. **Demo only**: a real app puts its own authentication here.
//! - `TENANT_KEYS`: `tenant=<64 hex digits>,...`, the AES-256 keys of the encrypted `title`
//!   column; setting it turns decryption on in front of `ELECTRIC_URL`. Unset, with the
//!   stand-in each tenant gets a random key for this run.
//! - `ALLOW_CIDRS` (default `127.0.0.0/8,::1/128`), `TRUSTED_PROXIES` (default empty): the
//!   network rule; forwarding headers are read only from trusted proxies.
//! - `METRICS_ADDR` (default `127.0.0.1:9464`; `off` for none): where Prometheus scrapes
//!   `GET /metrics` (see `metrics.rs`), a listener apart from `LISTEN_ADDR` so that the
//!   public port never serves it. Keep it on a private interface.
//! - `GATEWAY_REQUIRE_TOKEN`: if set, `/internal/v1/shape` serves trusted callers (server-side
//!   sync jobs) that present one of these comma-separated tokens, without the tenant policy.
#![allow(clippy::print_stdout)]

/// jemalloc leaves the pages of hyper's per-connection buffers that a held long-poll never
/// writes untouched, so they cost no memory (glibc's malloc makes them resident).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod app;
#[path = "../encryption/columns.rs"]
mod columns;
mod metrics;
#[path = "../support/per_core.rs"]
mod per_core;
mod serve;

use std::net::SocketAddr;

use tower_electric::ip::IpLists;
use tower_electric::testing::ElectricStandIn;
use tower_electric::token::{InjectSecret, RequireToken};
use tower_electric::SecretString;

use app::{random_hex, BoxError, GatewayConfig};

// This runtime runs what is not serving: the in-process stand-in, `/metrics`, the shutdown
// signal. The gateway itself serves on the per-core workers started below.
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_electric=debug".into()),
        )
        .init();

    let listen: SocketAddr = env_or("LISTEN_ADDR", "127.0.0.1:3001").parse()?;
    let tls = gateway_tls()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(address) = metrics::serve_from_env().await? {
        println!("Metrics on http://{address}/metrics");
    }
    let tokens = app::parse_tokens(&env_or(
        "GATEWAY_TOKENS",
        "alice-token=acme,bob-token=globex",
    ))?;
    let keys = app::tenant_keys_from_env()?;
    let source_id = app::source_id_from_env()?;

    let (electric_url, secret, stand_in, keys) = match std::env::var("ELECTRIC_URL") {
        Ok(url) => {
            if keys.is_none() {
                tracing::info!(
                    "ELECTRIC_URL is set and TENANT_KEYS is not: nothing is decrypted, values pass as Electric stores them"
                );
            }
            let mut secret = InjectSecret::from_env("ELECTRIC_SECRET")?;
            if let Some(source_id) = source_id {
                secret = secret.with_source_id(source_id);
            }
            (url, secret, None, keys)
        }
        Err(_) => {
            let secret = std::env::var("ELECTRIC_SECRET").unwrap_or_else(|_| random_hex(16));
            let mut builder = ElectricStandIn::builder().electric_timing();
            if let Some(hold) = app::env_millis("STAND_IN_LONG_POLL_HOLD_MS")? {
                builder = builder.long_poll_hold(hold);
            }
            if let Some(duration) = app::env_millis("STAND_IN_SSE_DURATION_MS")? {
                builder = builder.sse_duration(duration);
            }
            builder = match &source_id {
                Some(source_id) => builder.cloud_source(source_id.clone(), secret.clone()),
                None => builder.secret(secret.clone()),
            };
            let database = builder.with_demo_data().build();
            let keys = match keys {
                Some(keys) => keys,
                None => app::random_tenant_keys(tokens.values())?,
            };
            app::encrypt_at_rest(&database, &keys)?;
            let server = database.serve().await?;
            println!("Electric stand-in with demo data at {}", server.url());
            let url = server.url().to_owned();
            let mut secret = InjectSecret::new(SecretString::new(secret))?;
            if let Some(source_id) = source_id {
                secret = secret.with_source_id(source_id);
            }
            (url, secret, Some((database, server)), Some(keys))
        }
    };

    let config = GatewayConfig {
        electric_url: electric_url.clone(),
        upstream_http2: std::env::var_os("ELECTRIC_HTTP2").is_some(),
        upstream_tls: upstream_tls()?,
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
    };
    let serve_config = serve::ServeConfig {
        tls,
        ..serve::ServeConfig::default()
    };

    // Served per core (`../support/per_core.rs`): a router per worker, so each worker has its
    // own upstream pool; all of them stop on the one shutdown signal.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut routers = Vec::new();
    for _ in 0..per_core::workers_from_env()? {
        routers.push(app::router(config.clone())?);
    }
    let (local, workers) = per_core::spawn(
        listen,
        routers.into_iter().map(|router| {
            let (serve_config, mut stopped) = (serve_config.clone(), stopped.clone());
            move |listener| {
                serve::serve(listener, router, serve_config, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
            }
        }),
    )?;
    let mut demo: Vec<_> = tokens
        .iter()
        .map(|(t, tenant)| format!("{t} → {tenant}"))
        .collect();
    demo.sort();
    println!("Gateway on {scheme}://{local} in front of {electric_url}");
    println!("Demo tokens (demo only): {}", demo.join(", "));
    println!("Try:");
    println!("  curl -i '{scheme}://{local}/v1/shape?table=items&offset=-1' -H 'Authorization: Bearer alice-token'");
    println!("  curl -i '{scheme}://{local}/v1/shape?table=items&offset=-1&where=done%20%3D%20false' -H 'Authorization: Bearer bob-token'");
    println!("  curl -i '{scheme}://{local}/v1/shape?table=items&offset=-1&columns=id,internal_note' -H 'Authorization: Bearer alice-token'   # 403");
    println!("  curl -i '{scheme}://{local}/v1/shape?table=items&offset=-1'   # 401");
    if stand_in.is_some() {
        println!("  curl -i '{scheme}://{local}/api/items' -H 'Authorization: Bearer alice-token' -H 'content-type: application/json' -d '{{\"id\": 10, \"title\": \"Written through the gateway\"}}'");
    }

    serve::shutdown_signal().await;
    let _ = stop.send(true);
    tokio::task::spawn_blocking(move || workers.join()).await?;
    Ok(())
}

/// `ELECTRIC_CA_FILE`, `ELECTRIC_CLIENT_CERT` and `ELECTRIC_CLIENT_KEY`.
fn upstream_tls() -> Result<app::UpstreamTls, BoxError> {
    let client_identity = match (
        std::env::var_os("ELECTRIC_CLIENT_CERT"),
        std::env::var_os("ELECTRIC_CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => Some((cert.into(), key.into())),
        (None, None) => None,
        _ => {
            return Err("set both ELECTRIC_CLIENT_CERT and ELECTRIC_CLIENT_KEY, or neither".into())
        }
    };
    Ok(app::UpstreamTls {
        ca_file: std::env::var_os("ELECTRIC_CA_FILE").map(Into::into),
        client_identity,
    })
}

/// `TLS_CERT_FILE` and `TLS_KEY_FILE`.
fn gateway_tls() -> Result<Option<tokio_rustls::TlsAcceptor>, BoxError> {
    match (
        std::env::var_os("TLS_CERT_FILE"),
        std::env::var_os("TLS_KEY_FILE"),
    ) {
        (Some(cert), Some(key)) => Ok(Some(serve::tls_acceptor(cert.as_ref(), key.as_ref())?)),
        (None, None) => Ok(None),
        _ => Err("set both TLS_CERT_FILE and TLS_KEY_FILE, or neither".into()),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
