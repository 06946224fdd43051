//! The gateway's `/metrics`, for Prometheus, on a listener of its own (`METRICS_ADDR`), so
//! that it is never reachable through the public port.
//!
//! The crate records through the `metrics` facade; this installs the Prometheus recorder
//! (`metrics-exporter-prometheus`, without its built-in listener) and renders its handle on
//! `GET /metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_electric::telemetry::{describe_metrics, metric};

use crate::app::BoxError;

/// Where `/metrics` is served unless `METRICS_ADDR` says otherwise (`off`: nowhere).
const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// Upstream latency buckets, seconds: snapshots in milliseconds, long-polls up to Electric's
/// 20 s, SSE heads, and the 90 s idle timeout.
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0,
];

/// Installs the recorder and serves `/metrics` on `METRICS_ADDR` in the background (see
/// [`serve`]).
pub(crate) async fn serve_from_env() -> Result<Option<SocketAddr>, BoxError> {
    serve(std::env::var("METRICS_ADDR").ok()).await
}

/// Installs the Prometheus recorder (process-wide) and serves `/metrics` on `asked` (default
/// [`DEFAULT_ADDR`]; `off`: nowhere) in the background; the address it listens on. An address
/// that was asked for and cannot be bound is an error; the default one is only a warning, so
/// that a second gateway on the same machine still starts.
pub(crate) async fn serve(asked: Option<String>) -> Result<Option<SocketAddr>, BoxError> {
    let text = asked.as_deref().unwrap_or(DEFAULT_ADDR);
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let address: SocketAddr = text
        .parse()
        .map_err(|_| "METRICS_ADDR is host:port or off")?;
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) if asked.is_none() => {
            tracing::warn!(%error, %address, "no /metrics: the default address is taken");
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metric::UPSTREAM_DURATION.to_owned()),
            UPSTREAM_BUCKETS,
        )?
        .install_recorder()?;
    describe_metrics();
    let local = listener.local_addr()?;

    // Without its own listener the exporter leaves upkeep (draining histograms) to its user.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = Router::new().route("/metrics", get(move || render(handle.clone())));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "the metrics listener failed");
        }
    });
    Ok(Some(local))
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}
