//! The client side of the scale-out benchmark (`benches/scale.sh`): `CLIENTS` clients of one
//! tenant (alice's token, tenant `acme`) and `OTHER_CLIENTS` of another (bob's, `globex`) do an
//! initial sync through `LB_URL`, then hold live long-polls while `CHANGES` rows of the first
//! tenant are written from outside (the stand-in's `POST /_standin/items`). It reads what
//! Electric saw from the stand-in's `GET /_standin/counts`.
//!
//! Environment: `LB_URL`, `STANDIN_URL` (required), `CLIENTS` (default 1000), `OTHER_CLIENTS`
//! (default 100), `CHANGES` (default 5).
//!
//! Prints one line per phase (`initial ...`, `change ...`) and a `summary ...` line of
//! `key=value` pairs; every value any client received is checked for the other tenant's rows
//! and the hidden `internal_note` column.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The first id of the rows the benchmark writes.
const FIRST_CHANGE_ID: u64 = 100_000;

/// What all clients share: counters the harness reads.
#[derive(Default)]
struct Shared {
    /// Live requests sent and not yet answered.
    live_in_flight: AtomicUsize,
    /// Values of another tenant's rows received.
    cross_tenant: AtomicU64,
    /// Values with a hidden column received.
    hidden: AtomicU64,
    /// Answers that were neither 200 nor a 409 to follow.
    errors: AtomicU64,
    /// When each client first saw each written row: id → arrival times.
    seen: Mutex<HashMap<u64, Vec<Instant>>>,
    stop: AtomicBool,
}

impl Shared {
    /// Checks every value against the client's tenant and records written rows' arrival.
    fn received(&self, tenant: &str, values: &[Value]) {
        let now = Instant::now();
        for value in values {
            if value.get("tenant_id").and_then(Value::as_str) != Some(tenant) {
                self.cross_tenant.fetch_add(1, Ordering::Relaxed);
            }
            if value.get("internal_note").is_some() {
                self.hidden.fetch_add(1, Ordering::Relaxed);
            }
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse::<u64>().ok());
            if let Some(id) = id.filter(|id| *id >= FIRST_CHANGE_ID) {
                self.seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(id)
                    .or_default()
                    .push(now);
            }
        }
    }

    fn seen_count(&self, id: u64) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map_or(0, Vec::len)
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    fn values(&self) -> Vec<Value> {
        let messages: Vec<Value> = serde_json::from_slice(&self.body).unwrap_or_default();
        messages
            .into_iter()
            .filter_map(|mut message| message.get_mut("value").map(Value::take))
            .collect()
    }
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: String,
) -> Result<Answer, BoxError> {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body)))?)
        .await?;
    let (parts, body) = response.into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// `(shape, snapshot, live)`: the `/v1/shape` requests the stand-in has received.
async fn counts(client: &HttpClient, standin: &str) -> Result<(u64, u64, u64), BoxError> {
    let answer = send(
        client,
        Method::GET,
        &format!("{standin}/_standin/counts"),
        None,
        String::new(),
    )
    .await?;
    let counts: Value = serde_json::from_slice(&answer.body)?;
    let field = |name: &str| counts.get(name).and_then(Value::as_u64).unwrap_or(0);
    Ok((field("shape"), field("snapshot"), field("live")))
}

/// The stand-in's counts once they have not moved for a second (at most 30 s of waiting).
async fn settled_counts(client: &HttpClient, standin: &str) -> Result<(u64, u64, u64), BoxError> {
    let started = Instant::now();
    let mut last = counts(client, standin).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = counts(client, standin).await?;
        if now == last || started.elapsed() > Duration::from_secs(30) {
            return Ok(now);
        }
        last = now;
    }
}

/// One client: where it is in the shape log.
struct Position {
    handle: String,
    offset: String,
    cursor: String,
}

/// The initial sync: the snapshot from offset `-1`.
async fn initial_sync(
    client: &HttpClient,
    base: &str,
    token: &str,
    tenant: &str,
    shared: &Shared,
) -> Result<Position, BoxError> {
    let answer = send(
        client,
        Method::GET,
        &format!("{base}&offset=-1"),
        Some(token),
        String::new(),
    )
    .await?;
    if answer.status != StatusCode::OK {
        return Err(format!("initial sync answered {}", answer.status).into());
    }
    shared.received(tenant, &answer.values());
    Ok(Position {
        handle: answer.header("electric-handle").ok_or("no handle")?,
        offset: answer.header("electric-offset").ok_or("no offset")?,
        cursor: String::new(),
    })
}

/// Live long-polls, one after the other, until told to stop.
async fn hold_live(
    client: HttpClient,
    base: String,
    token: &'static str,
    tenant: &'static str,
    mut position: Position,
    shared: Arc<Shared>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let url = format!(
            "{base}&handle={}&offset={}&live=true&cursor={}",
            position.handle, position.offset, position.cursor
        );
        shared.live_in_flight.fetch_add(1, Ordering::Relaxed);
        let answer = send(&client, Method::GET, &url, Some(token), String::new()).await;
        shared.live_in_flight.fetch_sub(1, Ordering::Relaxed);
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => {
                shared.received(tenant, &answer.values());
                if let Some(offset) = answer.header("electric-offset") {
                    position.offset = offset;
                }
                if let Some(cursor) = answer.header("electric-cursor") {
                    position.cursor = cursor;
                }
            }
            Ok(answer) if answer.status == StatusCode::CONFLICT => {
                // The shape was rotated: start again from the snapshot, as the TS client does.
                match initial_sync(&client, &base, token, tenant, &shared).await {
                    Ok(fresh) => position = fresh,
                    Err(_) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            _ => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn env_number(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(text) => Ok(text.trim().parse()?),
        Err(_) => Ok(default),
    }
}

/// Waits until `done` holds, checking every 20 ms, for at most `limit`; says whether it did.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let lb = std::env::var("LB_URL").map_err(|_| "LB_URL is required")?;
    let standin = std::env::var("STANDIN_URL").map_err(|_| "STANDIN_URL is required")?;
    let clients = usize::try_from(env_number("CLIENTS", 1000)?)?;
    let others = usize::try_from(env_number("OTHER_CLIENTS", 100)?)?;
    let changes = env_number("CHANGES", 5)?;

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let shared = Arc::new(Shared::default());
    let base = format!("{lb}/v1/shape?table=items");
    let tenants: [(&'static str, &'static str, usize); 2] = [
        ("alice-token", "acme", clients),
        ("bob-token", "globex", others),
    ];

    // Initial sync, one tenant after the other, all of a tenant's clients at once (in waves
    // of connects: a burst of thousands of SYNs overflows a listen backlog).
    let mut positions = Vec::new();
    for (token, tenant, count) in tenants {
        let before = counts(&client, &standin).await?;
        let started = Instant::now();
        let connecting = Arc::new(Semaphore::new(256));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..count {
            let (client, base, shared, connecting) = (
                client.clone(),
                base.clone(),
                Arc::clone(&shared),
                Arc::clone(&connecting),
            );
            tasks.spawn(async move {
                let _permit = connecting.acquire_owned().await?;
                initial_sync(&client, &base, token, tenant, &shared).await
            });
        }
        let mut failed = 0;
        while let Some(done) = tasks.join_next().await {
            match done? {
                Ok(position) => positions.push((token, tenant, position)),
                Err(_) => failed += 1,
            }
        }
        let elapsed = started.elapsed();
        let after = counts(&client, &standin).await?;
        println!(
            "initial tenant={tenant} clients={count} failed={failed} snapshot_requests={} shape_requests={} seconds={:.2}",
            after.1 - before.1,
            after.0 - before.0,
            elapsed.as_secs_f64()
        );
    }

    // Everyone holds a live poll.
    let total = positions.len();
    let mut live = tokio::task::JoinSet::new();
    for (token, tenant, position) in positions {
        live.spawn(hold_live(
            client.clone(),
            base.clone(),
            token,
            tenant,
            position,
            Arc::clone(&shared),
        ));
    }
    let all_holding = || shared.live_in_flight.load(Ordering::Relaxed) >= total;
    if !wait_until(Duration::from_secs(60), all_holding).await {
        return Err("not every client got to hold a live poll".into());
    }

    let mut latencies = Vec::new();
    let mut per_change = Vec::new();
    let mut missing = 0;
    for change in 1..=changes {
        // Settled: every client holding, and their requests through to the cache or Electric
        // (a loaded machine can take a while to forward a thousand of them).
        wait_until(Duration::from_secs(60), all_holding).await;
        let before = settled_counts(&client, &standin).await?;
        let id = FIRST_CHANGE_ID + change;
        let written = Instant::now();
        let row =
            serde_json::json!({"id": id, "tenant_id": "acme", "title": format!("change {change}")});
        let answer = send(
            &client,
            Method::POST,
            &format!("{standin}/_standin/items"),
            None,
            row.to_string(),
        )
        .await?;
        if answer.status != StatusCode::OK {
            return Err(format!("the write answered {}", answer.status).into());
        }
        let everyone =
            wait_until(Duration::from_secs(60), || shared.seen_count(id) >= clients).await;
        let mut times: Vec<f64> = shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map(|times| {
                times
                    .iter()
                    .map(|t| millis(t.duration_since(written)))
                    .collect()
            })
            .unwrap_or_default();
        if !everyone {
            missing += clients.saturating_sub(times.len());
        }
        times.sort_by(f64::total_cmp);
        wait_until(Duration::from_secs(60), all_holding).await;
        let after = settled_counts(&client, &standin).await?;
        let requests = after.0 - before.0;
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let max = times.last().copied().unwrap_or(f64::NAN);
        println!(
            "change {change} clients_with_it={} requests={requests} live_requests={} latency_ms_median={median:.1} latency_ms_max={max:.1}",
            times.len(),
            after.2 - before.2
        );
        per_change.push(requests);
        latencies.extend(times);
    }
    shared.stop.store(true, Ordering::Relaxed);
    live.abort_all();

    latencies.sort_by(f64::total_cmp);
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    let worst = per_change.iter().copied().max().unwrap_or(0);
    let mean = per_change.iter().sum::<u64>() as f64 / per_change.len().max(1) as f64;
    println!(
        "summary clients={clients} other_clients={others} changes={changes} requests_per_change_mean={mean:.1} requests_per_change_max={worst} latency_ms_median={median:.1} latency_ms_max={max:.1} missing={missing} cross_tenant_rows={} hidden_columns={} errors={}",
        shared.cross_tenant.load(Ordering::Relaxed),
        shared.hidden.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
    );
    Ok(())
}
