//! The response futures the layers share: [`ResponseFuture`] for those that either call the
//! inner service or refuse by themselves ([`IpAllow`](crate::ip::IpAllow),
//! [`ApiToken`](crate::token::ApiToken)), and [`BoxedResponseFuture`] for those whose work
//! around the inner call is itself async ([`ShapeParamPolicy`](crate::policy::ShapeParamPolicy),
//! the JWT and revocation layers).

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

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// The response future of a layer whose work around the inner call is async (a policy
/// decision, a body read, a key reload, a wait for revocation): that work and the inner
/// service's response, boxed. `B` is the response body the layer answers with.
pub struct BoxedResponseFuture<B, E> {
    pub(crate) inner: Boxed<B, E>,
}

impl<B, E> std::fmt::Debug for BoxedResponseFuture<B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for BoxedResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
