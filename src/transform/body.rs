//! The response body of [`BodyTransform`](super::BodyTransform).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::message::{self, Parsed, Relation};
use super::split::{Framing, OnMessage, Outcome, Splitter};
use super::{BoxError, MessageTransform, TransformError};

pin_project! {
    /// The inner body, passed through or transformed message by message, or a refusal the
    /// layer wrote itself.
    pub struct ResponseBody<B, M> {
        #[pin]
        kind: Kind<B, M>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B, M> {
        PassThrough { #[pin] body: B },
        Full { data: Option<Bytes> },
        Transform { #[pin] body: B, engine: Box<Engine<M>> },
    }
}

/// The per-response transform state: the splitter and the message transform.
struct Engine<M> {
    splitter: Splitter,
    messages: M,
    shape_table: Option<(String, String)>,
    done: bool,
}

impl<B, M> fmt::Debug for ResponseBody<B, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::PassThrough { .. } => "PassThrough",
            Kind::Full { .. } => "Full",
            Kind::Transform { .. } => "Transform",
        };
        f.debug_struct("ResponseBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<B, M> ResponseBody<B, M> {
    pub(super) fn pass_through(body: B) -> Self {
        Self {
            kind: Kind::PassThrough { body },
        }
    }

    pub(super) fn transform(
        body: B,
        messages: M,
        framing: Framing,
        max_message_bytes: usize,
        shape_table: Option<(String, String)>,
    ) -> Self {
        Self {
            kind: Kind::Transform {
                body,
                engine: Box::new(Engine {
                    splitter: Splitter::new(framing, max_message_bytes),
                    messages,
                    shape_table,
                    done: false,
                }),
            },
        }
    }
}

impl<B, M> From<Bytes> for ResponseBody<B, M> {
    fn from(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
        }
    }
}

/// Hands the splitter's messages to the transform.
struct Handler<'t, M> {
    messages: &'t mut M,
    shape_table: Option<Relation<'t>>,
}

impl<M: MessageTransform> OnMessage for Handler<'_, M> {
    fn prefix(
        &mut self,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, Outcome)>, TransformError> {
        match message::read_prefix(text, self.shape_table) {
            Some((parsed, len)) => Ok(Some((len, transform_message(self.messages, parsed, out)?))),
            None => Ok(None),
        }
    }

    fn whole(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<Outcome, TransformError> {
        let parsed = message::parse(bytes, self.shape_table).map_err(malformed)?;
        transform_message(self.messages, parsed, out)
    }
}

/// Lets the transform change one message, and writes it anew if it changed.
fn transform_message<M: MessageTransform>(
    messages: &mut M,
    parsed: Parsed<'_>,
    out: &mut Vec<u8>,
) -> Result<Outcome, TransformError> {
    let Parsed::Change(mut message) = parsed else {
        return Ok(Outcome::Unchanged);
    };
    messages
        .transform(&mut message)
        .map_err(TransformError::Transform)?;
    if message.is_discarded() {
        return Ok(Outcome::Dropped);
    }
    if message::write_if_changed(&message, out).map_err(malformed)? {
        Ok(Outcome::Replaced)
    } else {
        Ok(Outcome::Unchanged)
    }
}

/// A parse error as a [`TransformError`]: its kind and place, never the text (which may be
/// a column value) that it would otherwise quote.
fn malformed(error: serde_json::Error) -> TransformError {
    TransformError::Malformed {
        reason: format!(
            "{:?} error in a message at column {}",
            error.classify(),
            error.column()
        )
        .into(),
    }
}

impl<M: MessageTransform> Engine<M> {
    fn push(&mut self, chunk: &Bytes) -> Result<(), TransformError> {
        let Self {
            splitter,
            messages,
            shape_table,
            ..
        } = self;
        let shape_table = shape_table
            .as_ref()
            .map(|(schema, table)| Relation { schema, table });
        splitter.push(
            chunk,
            &mut Handler {
                messages,
                shape_table,
            },
        )
    }

    fn fail(&mut self, error: TransformError) -> TransformError {
        tracing::warn!(%error, "shape log transform ended the response");
        self.done = true;
        while self.splitter.output.pop().is_some() {}
        error
    }
}

impl<B, M> Body for ResponseBody<B, M>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    M: MessageTransform,
{
    type Data = Bytes;
    type Error = TransformError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransformError>>> {
        match self.project().kind.project() {
            KindProj::PassThrough { body } => body
                .poll_frame(cx)
                .map_err(|error| TransformError::Upstream(error.into())),
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            KindProj::Transform { mut body, engine } => loop {
                if let Some(frame) = engine.splitter.output.pop() {
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                if engine.done {
                    return Poll::Ready(None);
                }
                match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(chunk) => {
                            if let Err(error) = engine.push(&chunk) {
                                return Poll::Ready(Some(Err(engine.fail(error))));
                            }
                        }
                        // Trailers come after the last data frame: pass them on.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    Some(Err(error)) => {
                        let error = TransformError::Upstream(error.into());
                        return Poll::Ready(Some(Err(engine.fail(error))));
                    }
                    None => {
                        if let Err(error) = engine.splitter.finish() {
                            return Poll::Ready(Some(Err(engine.fail(error))));
                        }
                        engine.done = true;
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::PassThrough { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Transform { engine, .. } => engine.done && engine.splitter.output.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::PassThrough { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Transform { .. } => SizeHint::default(),
        }
    }
}
