//! [`TelemetryLayer`]: one `tracing` span per shape request, and the request metrics.
//!
//! Put it outermost in a gateway's stack. For every request it opens an INFO span named
//! `shape request` (target `tower_electric::telemetry`) whose fields, all declared up front,
//! are filled in as the request goes through:
//!
//! | field | recorded by | value |
//! | --- | --- | --- |
//! | [`http.request.method`](field::METHOD) | this layer | `GET`, `POST`, ... |
//! | [`trace_id`](field::TRACE_ID) | this layer | the W3C trace id of a valid `traceparent` |
//! | [`electric.live`](field::LIVE), [`electric.sse`](field::SSE) | the policy layer | `true`/`false` |
//! | [`electric.table`](field::TABLE), [`electric.subset`](field::SUBSET) | the policy layer | the allowed table; whether a subset |
//! | [`electric.decision`](field::DECISION) | the policy layer | `forwarded`, `refused` |
//! | [`electric.upstream.status_code`](field::UPSTREAM_STATUS), [`electric.upstream.duration_ms`](field::UPSTREAM_DURATION_MS) | `ElectricUpstream` | Electric's status; ms to its head |
//! | [`http.response.status_code`](field::STATUS), [`electric.outcome`](field::OUTCOME), [`electric.refusal`](field::REFUSAL) | this layer | status; `forwarded`/`refused`/`failed`/`error`; the refusal's kind |
//!
//! The span covers the request up to the response head (a long-poll's whole wait; an SSE
//! stream's head, not the stream). No field holds the URI, a `where`, a param or a token:
//! the URI may carry Electric's `secret=`. Inner layers record into the current span, so the
//! fields are filled only when they run inside this layer's span (they are no-ops elsewhere).
//!
//! With the `metrics` feature (on by default) it also counts [`metric::REQUESTS`] by outcome
//! and [`metric::REFUSALS`] by reason and status, reading the [`Rejection`] every refusal of
//! this crate puts in its response's extensions. The other metrics are recorded where they
//! happen (`ElectricUpstream`, [`BodyTransformLayer`](crate::BodyTransformLayer)), whether or
//! not this layer is in the stack. Install any `metrics` recorder (a Prometheus exporter, ...)
//! to export them; [`describe_metrics`] gives it their units and help texts.
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_electric::TelemetryLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let electric = service_fn(|_request: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("[]"))))
//! });
//! let gateway = ServiceBuilder::new()
//!     .layer(TelemetryLayer::new()) // outermost: the span covers every layer below
//!     // .layer(IpAllowLayer::new(..)).layer(ShapeParamPolicyLayer::new(..)) ...
//!     .service(electric);
//!
//! let request = Request::get("/v1/shape?table=items&offset=-1")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(Full::new(Bytes::new()))?;
//! let response = gateway.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;
use tracing::Span;

use crate::observe::metrics::{count_refusal, count_request, Outcome};
use crate::observe::trace;
pub use crate::observe::{field, metric};
use crate::rejection::Rejection;

/// Gives the metrics' units and help texts to the installed `metrics` recorder. Call it once
/// after installing the recorder. Does nothing without the `metrics` feature.
pub fn describe_metrics() {
    crate::observe::metrics::describe();
}

/// Opens a span per request and counts the request metrics (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TelemetryLayer {
    _private: (),
}

impl TelemetryLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Telemetry { inner }
    }
}

/// The service of [`TelemetryLayer`].
#[derive(Debug, Clone)]
pub struct Telemetry<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Telemetry<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let span = tracing::info_span!(
            target: "tower_electric::telemetry",
            "shape request",
            { field::METHOD } = request.method().as_str(),
            { field::TRACE_ID } = trace::trace_id(request.headers()),
            { field::TABLE } = Empty,
            { field::LIVE } = Empty,
            { field::SSE } = Empty,
            { field::SUBSET } = Empty,
            { field::DECISION } = Empty,
            { field::UPSTREAM_STATUS } = Empty,
            { field::UPSTREAM_DURATION_MS } = Empty,
            { field::STATUS } = Empty,
            { field::OUTCOME } = Empty,
            { field::REFUSAL } = Empty,
        );
        let future = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner: future,
            span,
        }
    }
}

pin_project! {
    /// The response future of [`Telemetry`]: the inner future, polled inside the request's
    /// span; on its answer, the status, outcome and refusal are recorded and counted.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        let outcome = match &result {
            Ok(response) => {
                this.span.record(field::STATUS, response.status().as_u16());
                let refusal = response
                    .extensions()
                    .get::<Rejection>()
                    .map(Rejection::kind);
                if let Some(kind) = refusal {
                    this.span.record(field::REFUSAL, kind.as_str());
                    count_refusal(kind);
                }
                Outcome::of(refusal)
            }
            Err(_) => Outcome::Error,
        };
        this.span.record(field::OUTCOME, outcome.as_str());
        count_request(outcome);
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use tower::{service_fn, ServiceExt};

    #[tokio::test]
    async fn answers_and_errors_pass_through_untouched() {
        let refuse = service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Rejection::forbidden().into_response::<Full<Bytes>>())
        });
        let response = TelemetryLayer::new()
            .layer(refuse)
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        assert!(response.extensions().get::<Rejection>().is_some());

        let fail = service_fn(|_: Request<()>| async { Err::<Response<()>, _>("boom") });
        let error = TelemetryLayer::new()
            .layer(fail)
            .oneshot(Request::new(()))
            .await;
        assert_eq!(error.unwrap_err(), "boom");
    }

    #[test]
    fn outcomes_follow_the_refusal_kind() {
        use crate::rejection::RejectionKind;
        assert_eq!(Outcome::of(None), Outcome::Forwarded);
        assert_eq!(
            Outcome::of(Some(RejectionKind::Forbidden)),
            Outcome::Refused
        );
        assert_eq!(
            Outcome::of(Some(RejectionKind::GatewayTimeout)),
            Outcome::Failed
        );
    }
}
