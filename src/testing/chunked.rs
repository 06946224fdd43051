//! A body delivered in chosen chunks, for testing how a layer copes with a response split
//! anywhere (a message over many frames, many messages in one frame).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// A body that yields its chunks one frame each, always ready.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use tower_electric::testing::ChunkedBody;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ChunkedBody::split(Bytes::from_static(b"[1,2,3]"), &[1, 4]);
/// let collected = body.collect().await.unwrap().to_bytes();
/// assert_eq!(collected, Bytes::from_static(b"[1,2,3]"));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChunkedBody(VecDeque<Bytes>);

impl ChunkedBody {
    /// The given chunks, in order.
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self(chunks.into_iter().collect())
    }

    /// `body` cut at the given offsets (ascending, each at most `body.len()`; others are
    /// clamped), without copying.
    pub fn split(body: Bytes, cuts: &[usize]) -> Self {
        let mut chunks = VecDeque::with_capacity(cuts.len() + 1);
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, body.len());
            chunks.push_back(body.slice(start..cut));
            start = cut;
        }
        chunks.push_back(body.slice(start..));
        Self(chunks)
    }

    /// `body` in chunks of `size` bytes (the last one shorter), without copying.
    pub fn every(body: Bytes, size: usize) -> Self {
        let size = size.max(1);
        let cuts: Vec<usize> = (size..body.len()).step_by(size).collect();
        Self::split(body, &cuts)
    }
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn frames(body: ChunkedBody) -> Vec<Bytes> {
        let mut body = body;
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        frames
    }

    #[tokio::test]
    async fn split_cuts_where_asked_and_every_cuts_evenly() {
        let body = Bytes::from_static(b"abcdefg");
        assert_eq!(
            frames(ChunkedBody::split(body.clone(), &[2, 2, 5])).await,
            ["ab", "", "cde", "fg"]
        );
        assert_eq!(
            frames(ChunkedBody::every(body.clone(), 3)).await,
            ["abc", "def", "g"]
        );
        assert_eq!(
            frames(ChunkedBody::split(body, &[99])).await,
            ["abcdefg", ""]
        );
    }
}
