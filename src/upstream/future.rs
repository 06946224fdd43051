//! The response future: Electric's response head, or a 502/504 in its place.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use hyper::body::Incoming;
use hyper_util::client::legacy;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::headers::remove_hop_by_hop;
use super::{ErrorChain, ResponseBody};
use crate::rejection::Rejection;

pin_project! {
    /// The response future of [`ElectricUpstream`](super::ElectricUpstream).
    ///
    /// Dropping it before the response head arrives cancels the upstream request.
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Waiting {
            #[pin]
            response: legacy::ResponseFuture,
            #[pin]
            timeout: Sleep,
            idle_timeout: Duration,
            tls: bool,
        },
        Answered { rejection: Option<Rejection> },
    }
}

impl ResponseFuture {
    /// `tls`: whether the upstream is `https://`, so that a failure may be a TLS failure.
    pub(super) fn waiting(
        response: legacy::ResponseFuture,
        idle_timeout: Duration,
        tls: bool,
    ) -> Self {
        Self {
            state: State::Waiting {
                response,
                timeout: tokio::time::sleep(idle_timeout),
                idle_timeout,
                tls,
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
                tls,
            } => match response.poll(cx) {
                Poll::Ready(Ok(response)) => client_response(response, *idle_timeout),
                Poll::Ready(Err(error)) => upstream_failure(&error, *tls).into_response(),
                Poll::Pending => {
                    if timeout.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
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
fn upstream_failure(error: &legacy::Error, tls: bool) -> Rejection {
    // The chain names the cause (refused, reset, DNS, the certificate check that failed);
    // the URI, which may carry `secret=`, is in none of its parts.
    #[cfg(feature = "tls")]
    if tls && super::tls::is_tls_failure(error) {
        tracing::warn!(error = %ErrorChain(error), "upstream TLS failed");
        return Rejection::bad_gateway().with_message(TLS_FAILED);
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    tracing::warn!(error = %ErrorChain(error), "upstream request failed");
    Rejection::bad_gateway()
}

/// The message of a TLS failure's 502.
#[cfg(feature = "tls")]
const TLS_FAILED: &str = "Bad gateway: TLS with the upstream failed";

/// Electric's response for the client: status, end-to-end headers and streamed body as they
/// are; nothing from the upstream connection (hop-by-hop headers, connection info in the
/// extensions) comes along.
fn client_response(response: Response<Incoming>, idle_timeout: Duration) -> Response<ResponseBody> {
    let (parts, body) = response.into_parts();
    let mut client = Response::new(ResponseBody::upstream(body, idle_timeout));
    *client.status_mut() = parts.status;
    *client.headers_mut() = parts.headers;
    remove_hop_by_hop(client.headers_mut());
    client
}
