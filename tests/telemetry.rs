//! What a gateway records: the request span's fields and the metrics, read back from a
//! per-test `metrics` recorder and a per-test tracing subscriber (both set for this thread
//! only, so tests run in parallel; `#[tokio::test]` runs everything on this thread), through
//! the stack TelemetryLayer → ShapeParamPolicyLayer → [BodyTransformLayer] → ApiTokenLayer →
//! ElectricUpstream → the Electric stand-in on a real TCP port.
#![cfg(all(feature = "proxy", feature = "testing", feature = "metrics"))]
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "support/spans.rs"]
mod spans;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_electric::policy::{ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
use tower_electric::telemetry::{field, metric};
use tower_electric::testing::{ElectricStandIn, StandInServer};
use tower_electric::token::{ApiTokenLayer, InjectSecret};
use tower_electric::transform::{each_message, BoxError, Message};
use tower_electric::{BodyTransformLayer, ElectricUpstream, SecretString, TelemetryLayer};

use spans::{CapturedSpans, ClosedSpan};

const SECRET: &str = "electric-secret";
const SPAN: &str = "shape request";
/// A guard against a hang, never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(20);

type Gateway = BoxCloneService<Request<Full<Bytes>>, Response<axum::body::Body>, Infallible>;

#[derive(Clone)]
struct Tenant(String);

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts.extensions.get::<Tenant>().map(|t| vec![t.0.clone()])
}

/// What a test reads back: the metrics recorder and the spans, both for this thread.
struct Recorded {
    snapshotter: Snapshotter,
    totals: RefCell<BTreeMap<MetricId, Total>>,
    spans: CapturedSpans,
    _metrics: metrics::LocalRecorderGuard<'static>,
    _tracing: tracing::subscriber::DefaultGuard,
}

impl Recorded {
    fn new() -> Self {
        // Leaked so that the guard may live in the struct; a few bytes per test.
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let spans = CapturedSpans::default();
        Self {
            snapshotter: recorder.snapshotter(),
            totals: RefCell::default(),
            _metrics: metrics::set_default_local_recorder(recorder),
            _tracing: tracing::subscriber::set_default(spans.subscriber()),
            spans,
        }
    }

    /// Every metric since the test began. A snapshot of the debugging recorder consumes what
    /// it shows (counters and gauges back to 0, histograms emptied), so snapshots are added up
    /// here: a gauge's value is the sum of its deltas.
    fn metrics(&self) -> Metrics {
        let mut totals = self.totals.borrow_mut();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let entry = totals
                .entry((kind, key.name().to_owned(), labels))
                .or_insert_with(|| Total::of(kind));
            match (entry, value) {
                (Total::Counter(total), DebugValue::Counter(value)) => *total += value,
                (Total::Gauge(total), DebugValue::Gauge(value)) => *total += value.into_inner(),
                (Total::Histogram(total), DebugValue::Histogram(values)) => {
                    total.extend(values.into_iter().map(|value| value.into_inner()));
                }
                (total, value) => panic!("{total:?} and {value:?}"),
            }
        }
        Metrics(totals.clone())
    }

    /// The one request span that closed.
    fn span(&self) -> ClosedSpan {
        let spans = self.spans.named(SPAN);
        assert_eq!(spans.len(), 1, "{spans:?}");
        spans.into_iter().next().unwrap()
    }
}

type MetricId = (MetricKind, String, Vec<(String, String)>);

#[derive(Debug, Clone)]
enum Total {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

impl Total {
    fn of(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Counter => Self::Counter(0),
            MetricKind::Gauge => Self::Gauge(0.0),
            MetricKind::Histogram => Self::Histogram(Vec::new()),
        }
    }
}

struct Metrics(BTreeMap<MetricId, Total>);

impl Metrics {
    fn find(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&Total> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.0.get(&(kind, name.to_owned(), labels))
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(MetricKind::Counter, name, labels) {
            Some(Total::Counter(value)) => *value,
            _ => 0,
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(MetricKind::Gauge, name, labels) {
            Some(Total::Gauge(value)) => *value,
            _ => 0.0,
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(MetricKind::Histogram, name, labels) {
            Some(Total::Histogram(values)) => values.clone(),
            _ => Vec::new(),
        }
    }

    /// How many samples a histogram has, whatever their labels.
    fn samples(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|((_, n, _), _)| n == name)
            .map(|(_, total)| match total {
                Total::Histogram(values) => values.len(),
                _ => 0,
            })
            .sum()
    }
}

/// A stand-in holding long-polls and SSE streams for a minute, served on a local port.
async fn electric() -> (ElectricStandIn, StandInServer) {
    let database = ElectricStandIn::builder()
        .secret(SECRET)
        .long_poll_hold(Duration::from_secs(60))
        .sse_duration(Duration::from_secs(60))
        .sse_keep_alive(Duration::from_secs(60))
        .with_demo_data()
        .build();
    let server = database.serve().await.unwrap();
    (database, server)
}

/// The gateway; with `fail_on` set, the body transform fails on rows whose title has it.
fn gateway(server: &StandInServer, fail_on: Option<&'static str>) -> Gateway {
    let policy = ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(["id", "tenant_id", "title", "done"])
                .row_filter("tenant_id = $1", tenant),
        )
        .build()
        .unwrap();
    let transform = each_message(move |message: &mut Message<'_>| -> Result<(), BoxError> {
        if let Some(Some(title)) = message.value_mut().and_then(|row| row.get_mut("title")) {
            if fail_on.is_some_and(|text| title.contains(text)) {
                return Err("cannot transform this title".into());
            }
            *title = title.to_uppercase().into();
        }
        Ok(())
    });
    let service = ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(axum::body::Body::new))
        .layer(TelemetryLayer::new())
        .map_request(|mut request: Request<Full<Bytes>>| {
            request.extensions_mut().insert(Tenant("acme".into()));
            request
        })
        .layer(ShapeParamPolicyLayer::new(policy))
        .layer(BodyTransformLayer::new(transform))
        .layer(ApiTokenLayer::inject(
            InjectSecret::new(SecretString::new(SECRET)).unwrap(),
        ))
        .service(ElectricUpstream::new(server.url()).unwrap());
    BoxCloneService::new(service)
}

fn get(query: &str) -> Request<Full<Bytes>> {
    Request::get(format!("/v1/shape?{query}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The handle and offset of a first snapshot, for the live requests after it.
async fn initial(gateway: &Gateway) -> (String, String) {
    let response = gateway
        .clone()
        .oneshot(get("table=items&offset=-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    let handle_offset = (header("electric-handle"), header("electric-offset"));
    response.into_body().collect().await.unwrap();
    handle_offset
}

#[tokio::test]
async fn a_forwarded_snapshot_is_counted_timed_and_described_in_its_span() {
    let recorded = Recorded::new();
    let (_database, server) = electric().await;
    let gateway = gateway(&server, None);

    let response = gateway
        .oneshot(get("table=items&offset=-1&secret=guess"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();

    let metrics = recorded.metrics();
    assert_eq!(
        metrics.counter(metric::REQUESTS, &[("outcome", "forwarded")]),
        1
    );
    assert_eq!(
        metrics.counter(metric::REQUESTS, &[("outcome", "refused")]),
        0
    );
    let samples = metrics.histogram(
        metric::UPSTREAM_DURATION,
        &[("status_class", "2xx"), ("live", "false")],
    );
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert!(samples[0] > 0.0 && samples[0] < HANG_GUARD.as_secs_f64());
    assert_eq!(metrics.samples(metric::UPSTREAM_DURATION), 1);

    let span = recorded.span();
    assert_eq!(span.field(field::METHOD), Some("GET"));
    assert_eq!(span.field(field::TABLE), Some("public.items"));
    assert_eq!(span.field(field::LIVE), Some("false"));
    assert_eq!(span.field(field::SSE), Some("false"));
    assert_eq!(span.field(field::SUBSET), Some("false"));
    assert_eq!(span.field(field::DECISION), Some("forwarded"));
    assert_eq!(span.field(field::UPSTREAM_STATUS), Some("200"));
    assert!(span.field(field::UPSTREAM_DURATION_MS).is_some());
    assert_eq!(span.field(field::STATUS), Some("200"));
    assert_eq!(span.field(field::OUTCOME), Some("forwarded"));
    assert_eq!(span.field(field::REFUSAL), None);
    // Nothing of the query, the client's guess or Electric's secret.
    let text = format!("{:?}", span.fields);
    assert!(!text.contains("secret") && !text.contains("guess") && !text.contains(SECRET));
}

#[tokio::test]
async fn a_refusal_is_counted_by_reason_and_named_in_its_span() {
    let recorded = Recorded::new();
    let (database, server) = electric().await;
    let gateway = gateway(&server, None);

    let response = gateway
        .oneshot(get("table=items&offset=-1&columns=id,internal_note"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let metrics = recorded.metrics();
    assert_eq!(
        metrics.counter(metric::REQUESTS, &[("outcome", "refused")]),
        1
    );
    assert_eq!(
        metrics.counter(metric::REQUESTS, &[("outcome", "forwarded")]),
        0
    );
    assert_eq!(
        metrics.counter(
            metric::REFUSALS,
            &[("reason", "forbidden"), ("status", "403")]
        ),
        1
    );
    assert_eq!(metrics.samples(metric::UPSTREAM_DURATION), 0);
    assert!(database.requests().is_empty());

    let span = recorded.span();
    assert_eq!(span.field(field::DECISION), Some("refused"));
    assert_eq!(span.field(field::REFUSAL), Some("forbidden"));
    assert_eq!(span.field(field::STATUS), Some("403"));
    assert_eq!(span.field(field::OUTCOME), Some("refused"));
    // A refused request names no table (not even the allowed one it asked for).
    assert_eq!(span.field(field::TABLE), None);
    assert_eq!(span.field(field::UPSTREAM_STATUS), None);
}

#[tokio::test]
async fn a_held_long_poll_raises_the_gauge_and_a_client_drop_brings_it_down() {
    let recorded = Recorded::new();
    let (database, server) = electric().await;
    let gateway = gateway(&server, None);
    let (handle, offset) = initial(&gateway).await;
    let long_poll = [("mode", "long_poll")];
    assert_eq!(
        recorded.metrics().gauge(metric::UPSTREAM_LIVE, &long_poll),
        0.0
    );

    let live = format!("table=items&offset={offset}&handle={handle}&live=true");
    let mut held = Box::pin(gateway.clone().oneshot(get(&live)));
    tokio::select! {
        _ = &mut held => panic!("the long-poll was answered at once"),
        () = database.wait_for_live_in_flight(1) => {}
    }
    assert_eq!(
        recorded.metrics().gauge(metric::UPSTREAM_LIVE, &long_poll),
        1.0
    );

    // The client goes away before Electric answers.
    drop(held);
    tokio::time::timeout(HANG_GUARD, database.wait_for_live_cancelled(1))
        .await
        .expect("the upstream long-poll was not cancelled");
    let metrics = recorded.metrics();
    assert_eq!(metrics.gauge(metric::UPSTREAM_LIVE, &long_poll), 0.0);
    // No head came, the client cut the wait: no latency sample but the snapshot's.
    assert_eq!(metrics.samples(metric::UPSTREAM_DURATION), 1);
}

#[tokio::test]
async fn a_long_poll_that_electric_answers_brings_the_gauge_down_when_its_body_ends() {
    let recorded = Recorded::new();
    let database = ElectricStandIn::builder()
        .secret(SECRET)
        .long_poll_hold(Duration::from_millis(50))
        .with_demo_data()
        .build();
    let server = database.serve().await.unwrap();
    let gateway = gateway(&server, None);
    let (handle, offset) = initial(&gateway).await;

    let live = format!("table=items&offset={offset}&handle={handle}&live=true");
    let response = gateway.oneshot(get(&live)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let long_poll = [("mode", "long_poll")];
    assert_eq!(
        recorded.metrics().gauge(metric::UPSTREAM_LIVE, &long_poll),
        1.0
    );
    response.into_body().collect().await.unwrap();

    let metrics = recorded.metrics();
    assert_eq!(metrics.gauge(metric::UPSTREAM_LIVE, &long_poll), 0.0);
    assert_eq!(
        metrics
            .histogram(
                metric::UPSTREAM_DURATION,
                &[("status_class", "2xx"), ("live", "true")]
            )
            .len(),
        1
    );
    let spans = recorded.spans.named(SPAN);
    let last = spans.last().unwrap();
    assert_eq!(last.field(field::LIVE), Some("true"));
    assert_eq!(last.field(field::SSE), Some("false"));
}

#[tokio::test]
async fn an_sse_stream_holds_the_gauge_until_its_client_drops_the_body() {
    let recorded = Recorded::new();
    let (database, server) = electric().await;
    let gateway = gateway(&server, None);
    let (handle, offset) = initial(&gateway).await;

    let live = format!("table=items&offset={offset}&handle={handle}&live=true&live_sse=true");
    let response = gateway.oneshot(get(&live)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    database.wait_for_live_in_flight(1).await;
    let sse = [("mode", "sse")];
    let metrics = recorded.metrics();
    assert_eq!(metrics.gauge(metric::UPSTREAM_LIVE, &sse), 1.0);
    assert_eq!(
        metrics.gauge(metric::UPSTREAM_LIVE, &[("mode", "long_poll")]),
        0.0
    );
    let spans = recorded.spans.named(SPAN);
    assert_eq!(spans.last().unwrap().field(field::SSE), Some("true"));

    // The client disconnects mid-stream.
    drop(response);
    tokio::time::timeout(HANG_GUARD, database.wait_for_live_cancelled(1))
        .await
        .expect("the upstream SSE stream was not cancelled");
    assert_eq!(recorded.metrics().gauge(metric::UPSTREAM_LIVE, &sse), 0.0);
}

#[tokio::test]
async fn transformed_bytes_are_counted_and_a_failure_is_counted_by_class() {
    let recorded = Recorded::new();
    let (_database, server) = electric().await;

    let response = gateway(&server, None)
        .oneshot(get("table=items&offset=-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let metrics = recorded.metrics();
    let bytes_out = metrics.counter(metric::TRANSFORM_BYTES, &[("direction", "out")]);
    let bytes_in = metrics.counter(metric::TRANSFORM_BYTES, &[("direction", "in")]);
    assert_eq!(bytes_out, body.len() as u64);
    // Upper-casing keeps the length: what came in is what went out.
    assert_eq!(bytes_in, bytes_out);

    // Fails on every title.
    let response = gateway(&server, Some(""))
        .oneshot(get("table=items&offset=-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let metrics = recorded.metrics();
    assert_eq!(
        metrics.counter(metric::TRANSFORM_FAILURES, &[("class", "transform_failed")]),
        1
    );
    assert_eq!(
        metrics.counter(metric::REQUESTS, &[("outcome", "failed")]),
        1
    );
    assert_eq!(
        metrics.counter(
            metric::REFUSALS,
            &[("reason", "bad_gateway"), ("status", "502")]
        ),
        1
    );
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_valid_trace_context_reaches_electric_and_a_malformed_one_does_not() {
    let recorded = Recorded::new();
    let (database, server) = electric().await;
    let gateway = gateway(&server, None);
    let traced = |traceparent: &str| {
        let mut request = get("table=items&offset=-1");
        let headers = request.headers_mut();
        headers.insert("traceparent", traceparent.parse().unwrap());
        headers.insert("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
        request
    };

    let response = gateway.clone().oneshot(traced(TRACEPARENT)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = database.requests().pop().unwrap();
    assert_eq!(seen.headers["traceparent"], TRACEPARENT);
    assert_eq!(seen.headers["tracestate"], "rojo=00f067aa0ba902b7");
    let span = recorded.span();
    assert_eq!(
        span.field(field::TRACE_ID),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    // Upper-case hex is not W3C syntax: dropped, and its tracestate with it.
    let malformed = TRACEPARENT.to_uppercase();
    let response = gateway.oneshot(traced(&malformed)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = database.requests().pop().unwrap();
    assert!(
        !seen.headers.contains_key("traceparent"),
        "{:?}",
        seen.headers
    );
    assert!(
        !seen.headers.contains_key("tracestate"),
        "{:?}",
        seen.headers
    );
    let spans = recorded.spans.named(SPAN);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].field(field::TRACE_ID), None);
}
