//! Shared pieces of the transform benchmarks: a generated snapshot and a chunked body.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use tower_electric::transform::{BoxError, Message};

/// Electric writes shape logs in chunks of up to about this size.
pub(crate) const CHUNK: usize = 256 * 1024;

/// One insert message of a generated `public.items` snapshot, as Electric renders it.
pub(crate) fn message(id: u64) -> String {
    format!(
        concat!(
            r#"{{"headers":{{"operation":"insert","relation":["public","items"]}},"#,
            r#""key":"\"public\".\"items\"/\"{id}\"","#,
            r#""value":{{"id":"{id}","title":"Item number {id}","status":"backlog","#,
            r#""owner":"user-{owner}@example.com","notes":"Some free text, with \"quotes\" and commas, for row {id}.","#,
            r#""created_at":"2024-07-24 10:{minute:02}:00+00","priority":"{priority}","archived":null}}}}"#
        ),
        id = id,
        owner = id % 97,
        minute = id % 60,
        priority = id % 5,
    )
}

/// A generated snapshot body of about `size` bytes: a JSON array of inserts and the
/// closing `snapshot-end` control message.
pub(crate) fn snapshot(size: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(size + 1024);
    body.extend_from_slice(b"[");
    let mut id = 0;
    while body.len() < size {
        if id > 0 {
            body.extend_from_slice(b",\n");
        }
        body.extend_from_slice(message(id).as_bytes());
        id += 1;
    }
    body.extend_from_slice(
        br#",
{"headers":{"control":"snapshot-end","xmin":"1000","xmax":"1050","xip_list":[]}}]"#,
    );
    body.freeze()
}

/// A body that yields its chunks, always ready.
pub(crate) struct Chunks(pub(crate) VecDeque<Bytes>);

impl Chunks {
    /// `body` in slices of [`CHUNK`] bytes (no copy).
    pub(crate) fn of(body: &Bytes) -> Self {
        let mut chunks = VecDeque::new();
        let mut start = 0;
        while start < body.len() {
            let end = (start + CHUNK).min(body.len());
            chunks.push_back(body.slice(start..end));
            start = end;
        }
        Self(chunks)
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// The per-value transform measured: ASCII upper-case of every value and old value.
pub(crate) fn upper(message: &mut Message<'_>) -> Result<(), BoxError> {
    for row in message.rows_mut() {
        for (_, value) in row.values_mut() {
            if let Some(text) = value {
                *text = Cow::Owned(text.to_ascii_uppercase());
            }
        }
    }
    Ok(())
}
