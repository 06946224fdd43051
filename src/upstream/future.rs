//! The response future: Electric's response head, or a 502/504 in its place.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper_util::client::legacy::{self, Client};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::body::Received;
use super::headers::remove_hop_by_hop;
use super::http1::{Http1Body, Http1Error};
use super::{Connector, ErrorChain, ResponseBody, UpstreamBody};
use crate::observe::metrics::{upstream_duration, LiveGuard};
use crate::observe::{record_upstream, LiveMode};
use crate::rejection::Rejection;

/// What the upstream measures of one request: when it was sent, whether it is live, and the
/// held-requests gauge while it is.
#[derive(Debug)]
pub(super) struct Observed {
    sent: Instant,
    live: Option<LiveGuard>,
    is_live: bool,
}

impl Observed {
    pub(super) fn sent(live: Option<LiveMode>) -> Self {
        Self {
            sent: Instant::now(),
            live: live.map(LiveGuard::held),
            is_live: live.is_some(),
        }
    }

    /// Records Electric's answer (`None`: no head came) in the span and the latency
    /// histogram; hands the gauge guard on to the body.
    fn answered(&mut self, status: Option<http::StatusCode>) -> Option<LiveGuard> {
        let elapsed = self.sent.elapsed();
        record_upstream(status.map(|status| status.as_u16()), elapsed);
        upstream_duration(status, self.is_live, elapsed);
        self.live.take()
    }
}

pin_project! {
    /// The response future of [`ElectricUpstream`](super::ElectricUpstream).
    ///
    /// Dropping it before the response head arrives cancels the upstream request.
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

/// hyper-util's response future; with TLS, run with the request's watch on its connection.
#[cfg(feature = "tls")]
type Pending = tokio::task::futures::TaskLocalFuture<TlsWatch, legacy::ResponseFuture>;

#[cfg(not(feature = "tls"))]
type Pending = legacy::ResponseFuture;

#[cfg(feature = "tls")]
type TlsWatch = super::tls::Watch;
#[cfg(not(feature = "tls"))]
type TlsWatch = ();

#[cfg(feature = "tls")]
type Handoff = super::tls::Handoff;
#[cfg(not(feature = "tls"))]
type Handoff = ();

/// The own HTTP/1.1 client's response future.
type Http1Pending = Pin<Box<dyn Future<Output = Result<Response<Http1Body>, Http1Error>> + Send>>;

pin_project! {
    /// A request on its way: through hyper-util's pooled client (h2c, `https://`) or the own
    /// HTTP/1.1 client (`http://`).
    #[project = SentProj]
    pub(super) enum Sent {
        Pooled {
            #[pin]
            response: Pending,
            // `Some` for an `https://` upstream: a failure may then be a TLS failure.
            tls: Option<TlsWatch>,
            // Whether the connection made for the request closed without taking it (with TLS,
            // whose connector keeps the notes this needs).
            handoff: Handoff,
        },
        Http1 { response: Http1Pending },
    }
}

impl Sent {
    /// `request` sent with `client`. `tls`: whether the upstream is `https://`, so that a
    /// failure may be a TLS failure.
    pub(super) fn pooled(
        client: &Client<Connector, UpstreamBody>,
        request: Request<UpstreamBody>,
        tls: bool,
    ) -> Self {
        #[cfg(feature = "tls")]
        {
            let mut request = request;
            let watch = super::tls::Watch::default();
            let handoff = super::tls::Handoff::new(&mut request, &watch);
            let response = super::tls::watched(&watch, client.request(request));
            Self::Pooled {
                response,
                tls: tls.then_some(watch),
                handoff,
            }
        }
        #[cfg(not(feature = "tls"))]
        Self::Pooled {
            response: client.request(request),
            tls: tls.then_some(()),
            handoff: (),
        }
    }

    pub(super) fn http1(response: Http1Pending) -> Self {
        Self::Http1 { response }
    }

    /// Electric's response head, or the 502 for a request that got none (the cause logged).
    fn poll_head(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<Received>, Rejection>> {
        Poll::Ready(match self.project() {
            SentProj::Pooled {
                response,
                tls,
                handoff,
            } => match response.poll(cx) {
                Poll::Ready(Ok(response)) => {
                    #[cfg(feature = "tls")]
                    super::tls::answered(response.extensions());
                    Ok(response.map(Received::Left))
                }
                Poll::Ready(Err(error)) => Err(upstream_failure(&error, tls.as_ref())),
                Poll::Pending => {
                    #[cfg(feature = "tls")]
                    if let Some(lost) = handoff.lost(cx) {
                        return Poll::Ready(Err(connection_lost(lost, tls.is_some())));
                    }
                    #[cfg(not(feature = "tls"))]
                    let _ = handoff;
                    return Poll::Pending;
                }
            },
            SentProj::Http1 { response } => match ready!(response.as_mut().poll(cx)) {
                Ok(response) => Ok(response.map(Received::Right)),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "upstream request failed");
                    Err(Rejection::bad_gateway())
                }
            },
        })
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Waiting {
            #[pin]
            response: Sent,
            // Boxed to be handed on: the response body's idle timer is this one (`Some` until
            // then).
            timeout: Option<Pin<Box<Sleep>>>,
            idle_timeout: Duration,
            observed: Observed,
        },
        Answered { rejection: Option<Rejection> },
    }
}

impl ResponseFuture {
    pub(super) fn waiting(response: Sent, idle_timeout: Duration, observed: Observed) -> Self {
        Self {
            state: State::Waiting {
                response,
                timeout: Some(Box::pin(tokio::time::sleep(idle_timeout))),
                idle_timeout,
                observed,
            },
        }
    }

    pub(super) fn rejected(rejection: Rejection) -> Self {
        Self {
            state: State::Answered {
                rejection: Some(rejection),
            },
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let response = match state.as_mut().project() {
            StateProj::Waiting {
                response,
                timeout,
                idle_timeout,
                observed,
            } => match response.poll_head(cx) {
                Poll::Ready(Ok(response)) => {
                    let live = observed.answered(Some(response.status()));
                    let timer = timeout
                        .take()
                        .unwrap_or_else(|| Box::pin(tokio::time::sleep(*idle_timeout)));
                    client_response(response, timer, *idle_timeout, live)
                }
                Poll::Ready(Err(rejection)) => {
                    observed.answered(None);
                    rejection.into_response()
                }
                Poll::Pending => {
                    if timeout
                        .as_mut()
                        .is_some_and(|timer| timer.as_mut().poll(cx).is_pending())
                    {
                        return Poll::Pending;
                    }
                    observed.answered(None);
                    tracing::warn!(
                        timeout = ?idle_timeout,
                        "upstream sent no response head within the timeout"
                    );
                    Rejection::gateway_timeout().into_response()
                }
            },
            StateProj::Answered { rejection } => rejection
                .take()
                .unwrap_or_else(Rejection::bad_gateway)
                .into_response(),
        };
        // Drops the upstream future: polled again, this future answers, never panics.
        state.set(State::Answered { rejection: None });
        Poll::Ready(Ok(response))
    }
}

/// The 502 for a request that got no response head: the plain one, or for a TLS failure one
/// that says so (and no more: which certificate, host or check is in the log only).
fn upstream_failure(error: &legacy::Error, tls: Option<&TlsWatch>) -> Rejection {
    // The chain names the cause (refused, reset, DNS, the certificate check that failed);
    // the URI, which may carry `secret=`, is in none of its parts.
    #[cfg(feature = "tls")]
    if let Some(failure) = tls.and_then(|watch| super::tls::tls_failure(error, watch)) {
        match failure {
            super::tls::TlsFailure::InError => {
                tracing::warn!(error = %ErrorChain(error), "upstream TLS failed");
            }
            super::tls::TlsFailure::Seen(super::tls::SeenTls::Error(tls_error)) => {
                tracing::warn!(error = %ErrorChain(error), %tls_error, "upstream TLS failed");
            }
            super::tls::TlsFailure::Seen(super::tls::SeenTls::CertificateRefused) => {
                tracing::warn!(
                    error = %ErrorChain(error),
                    "upstream TLS failed: the server asked for a client certificate, then \
                     closed the connection before any answer (most likely refusing the \
                     certificate, or its absence)"
                );
            }
        }
        return Rejection::bad_gateway().with_message(TLS_FAILED);
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    tracing::warn!(error = %ErrorChain(error), "upstream request failed");
    Rejection::bad_gateway()
}

/// The 502 for a request whose connection, made for it, closed before taking it (see
/// `tls::Handoff`): hyper had not answered it, and either was about to hand it back failed or
/// never would. `https`: whether what the connection saw of its TLS may make this a TLS
/// failure.
#[cfg(feature = "tls")]
fn connection_lost(lost: super::tls::ConnectionLost, https: bool) -> Rejection {
    const CLOSED: &str = "the upstream connection made for the request closed before sending it";
    // Once per request (the future answers then). There is no error of hyper's to log: if one
    // was coming, this answer came first, and which of the two it was is not known.
    tracing::debug!(
        https,
        certificate_requested = lost.certificate_requested,
        answered_on_it = lost.answered,
        "upstream request ended by its connection's close, not by an error from hyper: {CLOSED}, \
         the request still queued (hyper was about to hand it back failed, or had lost it)"
    );
    match lost.tls.filter(|_| https) {
        Some(super::tls::SeenTls::Error(tls_error)) => {
            tracing::warn!(%tls_error, "upstream TLS failed: {CLOSED}");
        }
        Some(super::tls::SeenTls::CertificateRefused) => {
            tracing::warn!(
                "upstream TLS failed: {CLOSED}; the server had asked for a client certificate \
                 (most likely refusing the certificate, or its absence)"
            );
        }
        None => {
            tracing::warn!("upstream request failed: {CLOSED}");
            return Rejection::bad_gateway();
        }
    }
    Rejection::bad_gateway().with_message(TLS_FAILED)
}

/// The message of a TLS failure's 502.
#[cfg(feature = "tls")]
const TLS_FAILED: &str = "Bad gateway: TLS with the upstream failed";

/// Electric's response for the client: status, end-to-end headers and streamed body as they
/// are; nothing from the upstream connection (hop-by-hop headers, connection info in the
/// extensions) comes along.
fn client_response(
    response: Response<Received>,
    timer: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    live: Option<LiveGuard>,
) -> Response<ResponseBody> {
    let (parts, body) = response.into_parts();
    let mut client = Response::new(ResponseBody::upstream(body, timer, idle_timeout, live));
    *client.status_mut() = parts.status;
    *client.headers_mut() = parts.headers;
    remove_hop_by_hop(client.headers_mut());
    client
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    use crate::upstream::tls::{ConnectionLost, SeenTls};

    fn lost(tls: Option<SeenTls>) -> ConnectionLost {
        ConnectionLost {
            certificate_requested: matches!(tls, Some(SeenTls::CertificateRefused)),
            tls,
            answered: false,
        }
    }

    fn alert() -> Option<SeenTls> {
        Some(SeenTls::Error(
            "received fatal alert: CertificateRequired".to_owned(),
        ))
    }

    #[test]
    fn a_lost_request_is_the_tls_502_over_https_when_its_connection_saw_a_tls_failure() {
        let plain = Rejection::bad_gateway();
        for seen in [alert(), Some(SeenTls::CertificateRefused)] {
            let rejection = connection_lost(lost(seen), true);
            assert_eq!(rejection.status(), 502);
            assert_eq!(rejection.message(), TLS_FAILED);
        }
        // Nothing seen of TLS: the plain 502.
        let rejection = connection_lost(lost(None), true);
        assert_eq!(rejection.status(), 502);
        assert_eq!(rejection.message(), plain.message());
    }

    #[test]
    fn a_lost_request_is_the_plain_502_over_h2c_whatever_its_connection_saw() {
        let plain = Rejection::bad_gateway();
        for seen in [alert(), Some(SeenTls::CertificateRefused), None] {
            let rejection = connection_lost(lost(seen), false);
            assert_eq!(rejection.status(), 502);
            assert_eq!(rejection.message(), plain.message());
        }
    }
}
