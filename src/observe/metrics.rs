//! The metric helpers the layers call, through the `metrics` facade (feature `metrics`);
//! without the feature they are empty and their handles zero-sized.
//!
//! Every label set is a `static` table of `&'static str` pairs, so recording allocates
//! nothing; a handle (counter, gauge) is looked up once per response and then only touched
//! with atomic adds.

use std::time::Duration;

use http::StatusCode;

use crate::rejection::RejectionKind;

use super::LiveMode;

/// How a request ended, as the requests counter labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Electric (or the inner service) answered.
    Forwarded,
    /// A refusal of this crate, before or instead of forwarding.
    Refused,
    /// This crate's 502/504 after forwarding.
    Failed,
    /// The inner service returned an error.
    Error,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Error => "error",
        }
    }

    /// The outcome of a response, from the refusal it carries (if any).
    pub(crate) fn of(rejection: Option<RejectionKind>) -> Self {
        match rejection {
            None => Self::Forwarded,
            Some(RejectionKind::BadGateway | RejectionKind::GatewayTimeout) => Self::Failed,
            Some(_) => Self::Refused,
        }
    }
}

/// The status class label of Electric's answer; `None` when none came.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn status_class(status: Option<StatusCode>) -> usize {
    match status.map(|status| status.as_u16() / 100) {
        Some(1) => 0,
        Some(2) => 1,
        Some(3) => 2,
        Some(4) => 3,
        Some(5) => 4,
        _ => 5,
    }
}

#[cfg(feature = "metrics")]
mod imp {
    use std::fmt;

    use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Unit};

    use super::super::metric::{
        CLASS, DIRECTION, LIVE, MODE, OUTCOME, REASON, REFUSALS, REQUESTS, STATUS, STATUS_CLASS,
        TRANSFORM_BYTES, TRANSFORM_FAILURES, UPSTREAM_DURATION, UPSTREAM_LIVE,
    };
    use super::*;

    static METADATA: Metadata<'static> =
        Metadata::new("tower_electric", Level::INFO, Some(module_path!()));

    /// A `&'static [Label]` of one or two `&'static str` pairs.
    macro_rules! labels {
        ($key:expr => $value:expr) => {{
            static LABELS: [Label; 1] = [Label::from_static_parts($key, $value)];
            &LABELS
        }};
        ($key:expr => $value:expr, $key2:expr => $value2:expr) => {{
            static LABELS: [Label; 2] = [
                Label::from_static_parts($key, $value),
                Label::from_static_parts($key2, $value2),
            ];
            &LABELS
        }};
    }

    fn counter(name: &'static str, labels: &'static [Label]) -> Counter {
        let key = Key::from_static_parts(name, labels);
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA))
    }

    pub(crate) fn count_request(outcome: Outcome) {
        let labels: &'static [Label] = match outcome {
            Outcome::Forwarded => labels!(OUTCOME => "forwarded"),
            Outcome::Refused => labels!(OUTCOME => "refused"),
            Outcome::Failed => labels!(OUTCOME => "failed"),
            Outcome::Error => labels!(OUTCOME => "error"),
        };
        counter(REQUESTS, labels).increment(1);
    }

    pub(crate) fn count_refusal(kind: RejectionKind) {
        let labels: &'static [Label] = match kind {
            RejectionKind::InvalidRequest => labels!(REASON => "invalid_request", STATUS => "400"),
            RejectionKind::Unauthorized => labels!(REASON => "unauthorized", STATUS => "401"),
            RejectionKind::Forbidden => labels!(REASON => "forbidden", STATUS => "403"),
            RejectionKind::MethodNotAllowed => {
                labels!(REASON => "method_not_allowed", STATUS => "405")
            }
            RejectionKind::PayloadTooLarge => {
                labels!(REASON => "payload_too_large", STATUS => "413")
            }
            RejectionKind::UriTooLong => labels!(REASON => "uri_too_long", STATUS => "414"),
            RejectionKind::BadGateway => labels!(REASON => "bad_gateway", STATUS => "502"),
            RejectionKind::GatewayTimeout => labels!(REASON => "gateway_timeout", STATUS => "504"),
        };
        counter(REFUSALS, labels).increment(1);
    }

    pub(crate) fn upstream_duration(status: Option<StatusCode>, live: bool, elapsed: Duration) {
        macro_rules! class {
            ($class:literal) => {
                [
                    labels!(STATUS_CLASS => $class, LIVE => "false"),
                    labels!(STATUS_CLASS => $class, LIVE => "true"),
                ]
            };
        }
        let table: [[&'static [Label]; 2]; 6] = [
            class!("1xx"),
            class!("2xx"),
            class!("3xx"),
            class!("4xx"),
            class!("5xx"),
            class!("failed"),
        ];
        let Some(labels) = table
            .get(status_class(status))
            .and_then(|row| row.get(usize::from(live)))
        else {
            return;
        };
        let key = Key::from_static_parts(UPSTREAM_DURATION, labels);
        metrics::with_recorder(|recorder| recorder.register_histogram(&key, &METADATA))
            .record(elapsed.as_secs_f64());
    }

    /// One live request held at Electric: the gauge is up while this lives.
    pub(crate) struct LiveGuard(Gauge);

    impl LiveGuard {
        pub(crate) fn held(mode: LiveMode) -> Self {
            let labels: &'static [Label] = match mode {
                LiveMode::LongPoll => labels!(MODE => "long_poll"),
                LiveMode::Sse => labels!(MODE => "sse"),
            };
            let key = Key::from_static_parts(UPSTREAM_LIVE, labels);
            let gauge = metrics::with_recorder(|recorder| recorder.register_gauge(&key, &METADATA));
            gauge.increment(1.0);
            Self(gauge)
        }
    }

    impl Drop for LiveGuard {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }

    impl fmt::Debug for LiveGuard {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("LiveGuard")
        }
    }

    /// The byte counters of one transformed response.
    pub(crate) struct TransformMeter {
        bytes_in: Counter,
        bytes_out: Counter,
    }

    impl TransformMeter {
        pub(crate) fn new() -> Self {
            Self {
                bytes_in: counter(TRANSFORM_BYTES, labels!(DIRECTION => "in")),
                bytes_out: counter(TRANSFORM_BYTES, labels!(DIRECTION => "out")),
            }
        }

        pub(crate) fn bytes_in(&self, len: usize) {
            self.bytes_in.increment(len as u64);
        }

        pub(crate) fn bytes_out(&self, len: usize) {
            self.bytes_out.increment(len as u64);
        }
    }

    /// `class`: one of the transform's failure classes (a fixed word).
    pub(crate) fn count_transform_failure(class: &'static str) {
        // Failures are rare: one small label vector for them is fine.
        let key = Key::from_parts(
            TRANSFORM_FAILURES,
            vec![Label::from_static_parts(CLASS, class)],
        );
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA)).increment(1);
    }

    pub(crate) fn describe() {
        metrics::with_recorder(|recorder| {
            let counters = [
                (REQUESTS, Unit::Count, "Shape requests, by outcome"),
                (REFUSALS, Unit::Count, "Refusals, by reason and status"),
                (
                    TRANSFORM_BYTES,
                    Unit::Bytes,
                    "Bytes of transformed response bodies",
                ),
                (
                    TRANSFORM_FAILURES,
                    Unit::Count,
                    "Body transform failures, by class",
                ),
            ];
            for (name, unit, help) in counters {
                recorder.describe_counter(name.into(), Some(unit), help.into());
            }
            recorder.describe_histogram(
                UPSTREAM_DURATION.into(),
                Some(Unit::Seconds),
                "Time from sending a request to Electric to its response head".into(),
            );
            recorder.describe_gauge(
                UPSTREAM_LIVE.into(),
                Some(Unit::Count),
                "Long-polls and SSE streams held at Electric now".into(),
            );
        });
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::*;

    pub(crate) fn count_request(_: Outcome) {}
    pub(crate) fn count_refusal(_: RejectionKind) {}
    pub(crate) fn upstream_duration(_: Option<StatusCode>, _: bool, _: Duration) {}
    pub(crate) fn count_transform_failure(_: &'static str) {}
    pub(crate) fn describe() {}

    #[derive(Debug)]
    pub(crate) struct LiveGuard;

    impl LiveGuard {
        pub(crate) fn held(_: LiveMode) -> Self {
            Self
        }
    }

    pub(crate) struct TransformMeter;

    impl TransformMeter {
        pub(crate) fn new() -> Self {
            Self
        }
        pub(crate) fn bytes_in(&self, _: usize) {}
        pub(crate) fn bytes_out(&self, _: usize) {}
    }
}

pub(crate) use imp::*;

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// `name{label=value,...}` and the value of every metric recorded by `record`.
    fn recorded(record: impl FnOnce()) -> Vec<(String, DebugValue)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, record);
        let mut metrics: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                (format!("{}{{{}}}", key.name(), labels.join(",")), value)
            })
            .collect();
        metrics.sort_by(|a, b| a.0.cmp(&b.0));
        metrics
    }

    #[test]
    fn each_helper_records_its_documented_name_and_labels() {
        let metrics = recorded(|| {
            count_request(Outcome::Error);
            count_refusal(RejectionKind::PayloadTooLarge);
            upstream_duration(None, true, Duration::from_millis(5));
            upstream_duration(Some(StatusCode::CONFLICT), false, Duration::from_millis(1));
            drop(LiveGuard::held(LiveMode::Sse));
            let meter = TransformMeter::new();
            meter.bytes_in(10);
            meter.bytes_out(7);
            count_transform_failure("truncated_body");
        });
        let names: Vec<&str> = metrics.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tower_electric_refusals_total{reason=payload_too_large,status=413}",
                "tower_electric_requests_total{outcome=error}",
                "tower_electric_transform_bytes_total{direction=in}",
                "tower_electric_transform_bytes_total{direction=out}",
                "tower_electric_transform_failures_total{class=truncated_body}",
                "tower_electric_upstream_duration_seconds{status_class=4xx,live=false}",
                "tower_electric_upstream_duration_seconds{status_class=failed,live=true}",
                "tower_electric_upstream_live_requests{mode=sse}",
            ]
        );
        let value = |name: &str| &metrics.iter().find(|(n, _)| n.contains(name)).unwrap().1;
        assert_eq!(value("direction=in"), &DebugValue::Counter(10));
        assert_eq!(value("direction=out"), &DebugValue::Counter(7));
        // Up, then down again when the guard dropped.
        assert_eq!(value("mode=sse"), &DebugValue::Gauge(0.0.into()));
    }
}
