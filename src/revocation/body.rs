//! The response body of [`Revocation`](super::Revocation): the inner body, ended at once when
//! its principal is revoked.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Cut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The error a non-SSE body ends with when its principal is revoked mid-way: the connection is
/// aborted, so the client never reads a truncated shape log as a complete one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the principal's access was revoked")]
pub struct Revoked;

pin_project! {
    /// The inner body, watched for its principal's revocation; or the layer's own refusal.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Untouched { #[pin] body: B },
        Watched { #[pin] body: B, cut: Cut, sse: bool },
        Full { data: Option<Bytes> },
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    /// A body with no principal to watch.
    pub(crate) fn untouched(body: B) -> Self {
        Self {
            kind: Kind::Untouched { body },
        }
    }

    /// A body that ends once `cut` resolves: cleanly for SSE, with [`Revoked`] otherwise.
    pub(crate) fn watched(body: B, cut: Cut, sse: bool) -> Self {
        Self {
            kind: Kind::Watched { body, cut, sse },
        }
    }
}

impl<B> From<Bytes> for ResponseBody<B> {
    fn from(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut kind = self.project().kind;
        // Revocation first: a stream that always has a frame ready is cut all the same.
        if let KindProj::Watched { cut, sse, .. } = kind.as_mut().project() {
            if cut.as_mut().poll(cx).is_ready() {
                let sse = *sse;
                // Dropping the inner body here cancels the upstream request at once, whatever
                // the client does with this body next; later polls see the end.
                kind.set(Kind::Full { data: None });
                return Poll::Ready(if sse { None } else { Some(Err(Revoked.into())) });
            }
        }
        match kind.project() {
            KindProj::Untouched { body } | KindProj::Watched { body, .. } => {
                body.poll_frame(cx).map_err(Into::into)
            }
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Untouched { body } | Kind::Watched { body, .. } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Untouched { body } | Kind::Watched { body, .. } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}
