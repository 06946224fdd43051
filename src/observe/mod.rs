//! What the layers record for observability, shared by all of them and tower-free (like
//! `crate::future`): the names of the span fields and metrics (public through
//! [`telemetry`](crate::telemetry)), the helpers that record into the current span, the metric
//! helpers ([`metrics`](self::metrics); nothing without the `metrics` feature) and W3C trace
//! context checks ([`trace`]).
//!
//! A layer records into `tracing::Span::current()`: inside a
//! [`TelemetryLayer`](crate::telemetry::TelemetryLayer) that is the request's span, which
//! declared every field up front; elsewhere the current span has none of these fields (or there
//! is none) and recording is a no-op. So no layer needs another layer's types.
// Without `proxy` there is no upstream to record its part.
#![cfg_attr(not(feature = "proxy"), allow(dead_code))]

pub(crate) mod metrics;
pub(crate) mod trace;

use std::time::Duration;

use tracing::field::display;

/// The names of the request span's fields, as a tracing subscriber (or an OpenTelemetry
/// bridge) sees them. Dotted, after OpenTelemetry's attribute naming.
pub mod field {
    /// `http.request.method`: the request's method.
    pub const METHOD: &str = "http.request.method";
    /// `electric.table`: the table the policy allowed (`public.items`), never the one a
    /// refused client asked for.
    pub const TABLE: &str = "electric.table";
    /// `electric.live`: whether the request is live (long-poll or SSE).
    pub const LIVE: &str = "electric.live";
    /// `electric.sse`: whether the request asks for an SSE stream (`live_sse`).
    pub const SSE: &str = "electric.sse";
    /// `electric.subset`: whether the forwarded request is a subset snapshot.
    pub const SUBSET: &str = "electric.subset";
    /// `electric.decision`: the policy's decision, `forwarded` or `refused`.
    pub const DECISION: &str = "electric.decision";
    /// `electric.outcome`: how the request ended, as the requests metric labels it:
    /// `forwarded`, `refused`, `failed` or `error`.
    pub const OUTCOME: &str = "electric.outcome";
    /// `electric.refusal`: the refusal's kind, snake_case
    /// ([`RejectionKind::as_str`](crate::rejection::RejectionKind::as_str)).
    pub const REFUSAL: &str = "electric.refusal";
    /// `http.response.status_code`: the status the client got.
    pub const STATUS: &str = "http.response.status_code";
    /// `electric.upstream.status_code`: the status Electric answered with (absent when it did
    /// not answer).
    pub const UPSTREAM_STATUS: &str = "electric.upstream.status_code";
    /// `electric.upstream.duration_ms`: milliseconds from sending the request to Electric to
    /// its response head (or to the failure).
    pub const UPSTREAM_DURATION_MS: &str = "electric.upstream.duration_ms";
    /// `trace_id`: the W3C trace id of a valid `traceparent` the client sent.
    pub const TRACE_ID: &str = "trace_id";
}

/// The names of the metrics and of their labels. Label values are fixed sets of words,
/// never client text.
pub mod metric {
    /// Counter: requests by `outcome` (`forwarded`: answered with no refusal of this crate,
    /// by Electric or by a layer inside such as CORS for a preflight; `refused`: a
    /// refusal of this crate before or instead of forwarding; `failed`: this crate's
    /// 502/504 after forwarding; `error`: the inner service failed).
    pub const REQUESTS: &str = "tower_electric_requests_total";
    /// Counter: refusals by `reason` (the rejection kind, snake_case) and `status`.
    pub const REFUSALS: &str = "tower_electric_refusals_total";
    /// Histogram, seconds: time from sending a request to Electric to its response head, by
    /// `status_class` (`1xx` ... `5xx`, or `failed` when no head came) and `live`
    /// (`true`/`false`).
    pub const UPSTREAM_DURATION: &str = "tower_electric_upstream_duration_seconds";
    /// Gauge: live requests held at Electric now, by `mode` (`long_poll`, `sse`): up when one
    /// is sent, down when its response body ends or is dropped (a client that goes away).
    pub const UPSTREAM_LIVE: &str = "tower_electric_upstream_live_requests";
    /// Counter, bytes: bytes of transformed response bodies, by `direction` (`in`: from the
    /// inner service, `out`: to the client).
    pub const TRANSFORM_BYTES: &str = "tower_electric_transform_bytes_total";
    /// Counter: body transform failures, by `class` (`setup_failed`, `schema_rewrite_failed`,
    /// `transform_failed`, `malformed_message`, `message_too_large`, `truncated_body`,
    /// `upstream_body_failed`, `compressed`).
    pub const TRANSFORM_FAILURES: &str = "tower_electric_transform_failures_total";

    /// Label of [`REQUESTS`].
    pub const OUTCOME: &str = "outcome";
    /// Label of [`REFUSALS`].
    pub const REASON: &str = "reason";
    /// Label of [`REFUSALS`]: the HTTP status, `403`.
    pub const STATUS: &str = "status";
    /// Label of [`UPSTREAM_DURATION`].
    pub const STATUS_CLASS: &str = "status_class";
    /// Label of [`UPSTREAM_DURATION`].
    pub const LIVE: &str = "live";
    /// Label of [`UPSTREAM_LIVE`].
    pub const MODE: &str = "mode";
    /// Label of [`TRANSFORM_BYTES`].
    pub const DIRECTION: &str = "direction";
    /// Label of [`TRANSFORM_FAILURES`].
    pub const CLASS: &str = "class";
}

/// What the policy saw of the client's request: whether it is live, and SSE.
pub(crate) fn record_live(live: bool, sse: bool) {
    let span = tracing::Span::current();
    span.record(field::LIVE, live);
    span.record(field::SSE, sse);
}

/// The shape the policy allowed: its (server-owned) table, and whether it is a subset.
pub(crate) fn record_shape(table: &dyn std::fmt::Display, subset: bool) {
    let span = tracing::Span::current();
    span.record(field::TABLE, display(table));
    span.record(field::SUBSET, subset);
}

/// The policy's decision.
pub(crate) fn record_decision(forwarded: bool) {
    let decision = if forwarded { "forwarded" } else { "refused" };
    tracing::Span::current().record(field::DECISION, decision);
}

/// Electric's answer: its status (`None`: no head came) and the time to it.
pub(crate) fn record_upstream(status: Option<u16>, elapsed: Duration) {
    let span = tracing::Span::current();
    if let Some(status) = status {
        span.record(field::UPSTREAM_STATUS, status);
    }
    span.record(field::UPSTREAM_DURATION_MS, elapsed.as_secs_f64() * 1000.0);
}

/// A live request's kind, as the held-requests gauge labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveMode {
    LongPoll,
    Sse,
}

impl LiveMode {
    /// The mode a raw (already checked) query asks for, `None` when it is not live. Read the
    /// way Electric reads `live` and `live_sse`: any value but `false` is true.
    pub(crate) fn of_query(raw: &str) -> Option<Self> {
        use crate::protocol::query::asks_flag;
        if !asks_flag(raw, "live") {
            return None;
        }
        if asks_flag(raw, "live_sse") || asks_flag(raw, "experimental_live_sse") {
            Some(Self::Sse)
        } else {
            Some(Self::LongPoll)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_mode_reads_live_and_live_sse_as_electric_does() {
        assert_eq!(LiveMode::of_query("offset=-1&table=items"), None);
        assert_eq!(LiveMode::of_query("live=false&live_sse=true"), None);
        assert_eq!(
            LiveMode::of_query("live=true&offset=0_0"),
            Some(LiveMode::LongPoll)
        );
        assert_eq!(
            LiveMode::of_query("live=true&live_sse=false"),
            Some(LiveMode::LongPoll)
        );
        assert_eq!(
            LiveMode::of_query("live=true&live_sse=true"),
            Some(LiveMode::Sse)
        );
        assert_eq!(
            LiveMode::of_query("%6Cive&experimental_live_sse=1"),
            Some(LiveMode::Sse)
        );
    }
}
