//! The response future of the layers that either call the inner service or refuse by
//! themselves ([`IpAllow`](crate::ip::IpAllow), [`ApiToken`](crate::token::ApiToken)).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::rejection::Rejection;

pin_project! {
    /// The inner service's response, or the layer's own refusal.
    ///
    /// Both become a `Response<ResponseBody<B>>`: the inner body streamed through, or the
    /// refusal's JSON body.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Refused { rejection: Rejection },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn refused(rejection: Rejection) -> Self {
        Self {
            kind: Kind::Refused { rejection },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => Poll::Ready(
                ready!(future.poll(cx)).map(|response| response.map(ResponseBody::inner)),
            ),
            // Cloned rather than taken so that a poll after completion answers the same
            // refusal again instead of panicking.
            KindProj::Refused { rejection } => Poll::Ready(Ok(rejection.clone().into_response())),
        }
    }
}
