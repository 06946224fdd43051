//! The response body: Electric's body streamed through under an idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::http1::Http1Body;
use super::ErrorChain;
use crate::body::ResponseBody as EitherBody;
use crate::observe::metrics::LiveGuard;

/// A boxed error, as the body carries an upstream failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why [`ResponseBody`] stopped before its end.
///
/// The response head has already gone to the client when this happens, so it cannot become a
/// 502/504: the server answering the client cuts the response short instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Electric sent nothing for longer than the idle timeout.
    #[error("upstream response body was idle for longer than the timeout")]
    IdleTimeout,
    /// Electric's connection failed while the body was streaming.
    #[error("upstream response body failed")]
    Upstream(#[source] BoxError),
}

pin_project! {
    /// The body of [`ElectricUpstream`](super::ElectricUpstream)'s responses.
    ///
    /// Electric's body, frame by frame as it arrives (an SSE frame reaches the client when
    /// Electric writes it), or the JSON body of a 502/504 the upstream wrote itself. While
    /// streaming, a wait longer than the idle timeout for the next frame ends the body with
    /// [`BodyError::IdleTimeout`]. Dropping the body drops the upstream connection's stream:
    /// a client that goes away cancels the upstream request.
    #[derive(Debug)]
    pub struct ResponseBody {
        #[pin]
        inner: EitherBody<IdleTimeout<Received>>,
        // A live response's place in the held-requests gauge: released when the body ends,
        // fails or is dropped (a client that went away).
        live: Option<LiveGuard>,
    }
}

impl ResponseBody {
    /// `timer`: the response head's timer, reused (see [`IdleTimeout::with_timer`]).
    pub(super) fn upstream(
        body: Received,
        timer: Pin<Box<Sleep>>,
        idle_timeout: Duration,
        live: Option<LiveGuard>,
    ) -> Self {
        Self {
            inner: EitherBody::inner(IdleTimeout::with_timer(body, timer, idle_timeout)),
            live,
        }
    }
}

impl From<Bytes> for ResponseBody {
    fn from(data: Bytes) -> Self {
        Self {
            inner: EitherBody::full(data),
            live: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = frame {
            *this.live = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Electric's body as the client that sent the request reads it: `Left` from hyper-util's
/// pooled client (h2c, `https://`), `Right` from the own HTTP/1.1 client (`http://`).
pub(super) type Received = http_body_util::Either<Incoming, Http1Body>;

pin_project! {
    /// Electric's body, ended with an error when idle for longer than `idle_timeout`.
    #[derive(Debug)]
    pub(super) struct IdleTimeout<B> {
        // `None` once ended: the upstream stream is dropped as soon as it cannot go on.
        body: Option<B>,
        // Reset lazily: a frame only moves `deadline`; the timer catches up when it fires.
        // Boxed so that the body is `Unpin`, as callers of `BodyExt::frame` need.
        timer: Pin<Box<Sleep>>,
        deadline: Instant,
        idle_timeout: Duration,
    }
}

impl<B> IdleTimeout<B> {
    #[cfg(test)]
    fn new(body: B, idle_timeout: Duration) -> Self {
        Self::with_timer(
            body,
            Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
        )
    }

    /// The first window ends `idle_timeout` from now. `timer` may be set to fire earlier (the
    /// response head's, already in the timer wheel): the lazy reset moves it on, and one
    /// timer serves the request from send to the body's end.
    fn with_timer(body: B, timer: Pin<Box<Sleep>>, idle_timeout: Duration) -> Self {
        Self {
            body: Some(body),
            timer,
            deadline: Instant::now() + idle_timeout,
            idle_timeout,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.deadline = Instant::now() + *this.idle_timeout;
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(error))) => {
                *this.body = None;
                let error = error.into();
                tracing::warn!(error = %ErrorChain(&*error), "upstream response body failed");
                return Poll::Ready(Some(Err(BodyError::Upstream(error))));
            }
            Poll::Ready(None) => {
                *this.body = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() < *this.deadline {
                this.timer.as_mut().reset(*this.deadline);
                continue;
            }
            *this.body = None;
            tracing::warn!(
                idle_timeout = ?this.idle_timeout,
                "upstream response body idle for longer than the timeout"
            );
            return Poll::Ready(Some(Err(BodyError::IdleTimeout)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::sync::mpsc;

    /// A body whose frames the test pushes.
    fn pushed() -> (
        mpsc::UnboundedSender<Bytes>,
        impl Body<Data = Bytes, Error = Infallible> + Unpin,
    ) {
        let (push, mut frames) = mpsc::unbounded_channel();
        let frames = futures_util::stream::poll_fn(move |cx| {
            frames
                .poll_recv(cx)
                .map(|data| data.map(|data| Ok(Frame::data(data))))
        });
        (push, http_body_util::StreamBody::new(frames))
    }

    async fn poll_once<B: Body + Unpin>(
        body: &mut B,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await
    }

    fn data(poll: Poll<Option<Result<Frame<Bytes>, BodyError>>>) -> Bytes {
        match poll {
            Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap(),
            other => panic!("expected a data frame, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_timer_handed_on_still_gives_the_body_its_whole_window() {
        // The response head's timer, 0.8 s into its 1 s when the head arrives.
        let timer = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(800)).await;
        let (push, frames) = pushed();
        let mut body = IdleTimeout::with_timer(frames, timer, Duration::from_secs(1));
        assert!(poll_once(&mut body).await.is_pending());

        // The head's timer has fired (1.3 s after send), the body's window (0.5 s old) has not.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(poll_once(&mut body).await.is_pending());
        push.send(Bytes::from_static(b"a")).unwrap();
        assert_eq!(data(poll_once(&mut body).await), "a");

        tokio::time::advance(Duration::from_millis(1100)).await;
        match poll_once(&mut body).await {
            Poll::Ready(Some(Err(BodyError::IdleTimeout))) => {}
            other => panic!("expected the idle timeout, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_frame_restarts_the_idle_window() {
        let (push, frames) = pushed();
        let mut body = IdleTimeout::new(frames, Duration::from_secs(1));
        assert!(poll_once(&mut body).await.is_pending());

        tokio::time::advance(Duration::from_millis(600)).await;
        push.send(Bytes::from_static(b"a")).unwrap();
        assert_eq!(data(poll_once(&mut body).await), "a");

        // 1.2 s since the start, 0.6 s since the last frame: the first timer fired, not the window.
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(poll_once(&mut body).await.is_pending());
        push.send(Bytes::from_static(b"b")).unwrap();
        assert_eq!(data(poll_once(&mut body).await), "b");

        tokio::time::advance(Duration::from_millis(1100)).await;
        match poll_once(&mut body).await {
            Poll::Ready(Some(Err(BodyError::IdleTimeout))) => {}
            other => panic!("expected the idle timeout, got {other:?}"),
        }
        assert!(matches!(poll_once(&mut body).await, Poll::Ready(None)));
        assert!(body.is_end_stream());
        // The stream is dropped: nothing upstream is kept alive by an ended body.
        assert!(push.is_closed());
    }
}
