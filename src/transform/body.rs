//! The response body of [`BodyTransform`](super::BodyTransform).

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::message::{self, Parsed, Relation};
use super::split::{Framing, OnMessage, Outcome, Splitter};
use super::{BoxError, MessageTransform, TransformError};
use crate::observe::metrics::{count_transform_failure, TransformMeter};

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
        Transform { transforming: Transforming<B, M> },
    }
}

/// A body being transformed: the upstream body and the transform's state.
///
/// The upstream body is boxed so that the response future can read the first message before
/// it hands the body on (a pinned body could not move into the response after that).
pub(super) struct Transforming<B, M> {
    body: Pin<Box<B>>,
    engine: Box<Engine<M>>,
}

/// The per-response transform state: the splitter and the message transform.
struct Engine<M> {
    splitter: Splitter,
    messages: M,
    shape_table: Option<(String, String)>,
    /// Whether a whole message has been handled (and its output queued).
    seen_message: bool,
    /// Trailers that came while output was still queued; sent after it.
    trailers: Option<HeaderMap>,
    /// The most output [`Transforming::poll_first`] queues before it stops waiting.
    hold_limit: usize,
    done: bool,
    /// The bytes metric's handles, looked up once per response.
    meter: TransformMeter,
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

    pub(super) fn transform(transforming: Transforming<B, M>) -> Self {
        Self {
            kind: Kind::Transform { transforming },
        }
    }
}

impl<B, M> Transforming<B, M> {
    pub(super) fn new(
        body: B,
        messages: M,
        framing: Framing,
        max_message_bytes: usize,
        shape_table: Option<(String, String)>,
    ) -> Self {
        Self {
            body: Box::pin(body),
            engine: Box::new(Engine {
                splitter: Splitter::new(framing, max_message_bytes),
                messages,
                shape_table,
                seen_message: false,
                trailers: None,
                hold_limit: max_message_bytes,
                done: false,
                meter: TransformMeter::new(),
            }),
        }
    }
}

impl<B, M> Transforming<B, M>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    M: MessageTransform,
{
    /// Reads the upstream body until the first message has been transformed (its output is
    /// queued, with whatever else that chunk held), the body ends, or trailers come: the most
    /// this buffers is the chunks up to the end of the first message. An error here is one
    /// before any byte was sent.
    ///
    /// Output that is not a message (whitespace, a subset's `metadata`) counts against the
    /// message cap: past it, the wait ends and the body streams, so a body that never gets to
    /// a message is not gathered in memory.
    pub(super) fn poll_first(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransformError>> {
        loop {
            let engine = &self.engine;
            if engine.seen_message
                || engine.done
                || engine.trailers.is_some()
                || engine.splitter.output.queued_bytes() > engine.hold_limit
            {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_read(cx))?;
        }
    }

    /// Reads one upstream frame into the engine. After an error the engine is done and its
    /// output dropped.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransformError>> {
        let engine = &mut self.engine;
        let result = match ready!(self.body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    engine.meter.bytes_in(chunk.len());
                    engine.push(&chunk)
                }
                // Trailers come after the last data frame: pass them on.
                Err(frame) => {
                    engine.trailers = frame.into_trailers().ok();
                    Ok(())
                }
            },
            Some(Err(error)) => Err(TransformError::Upstream(error.into())),
            None => engine.splitter.finish().map(|()| engine.done = true),
        };
        Poll::Ready(result.map_err(|error| engine.fail(error)))
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
    seen_message: &'t mut bool,
}

impl<M: MessageTransform> OnMessage for Handler<'_, M> {
    fn prefix(
        &mut self,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, Outcome)>, TransformError> {
        match message::read_prefix(text, self.shape_table) {
            Some((parsed, len)) => {
                let outcome = transform_message(self.messages, parsed, out)?;
                *self.seen_message = true;
                Ok(Some((len, outcome)))
            }
            None => Ok(None),
        }
    }

    fn whole(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<Outcome, TransformError> {
        let parsed = message::parse(bytes, self.shape_table).map_err(malformed)?;
        let outcome = transform_message(self.messages, parsed, out)?;
        *self.seen_message = true;
        Ok(outcome)
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
            seen_message,
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
                seen_message,
            },
        )
    }

    fn fail(&mut self, error: TransformError) -> TransformError {
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
            // An error here ends a body whose status line and first bytes are already sent:
            // a 502 can no longer be given. Ending the body with an error makes the server
            // abort the response (a chunked body without its last chunk, an HTTP/2 reset), so
            // the client sees a broken response, never a shorter array that still parses.
            KindProj::Transform { transforming } => loop {
                let engine = &mut transforming.engine;
                if let Some(frame) = engine.splitter.output.pop() {
                    engine.meter.bytes_out(frame.len());
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                if let Some(trailers) = engine.trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                if engine.done {
                    return Poll::Ready(None);
                }
                if let Err(error) = ready!(transforming.poll_read(cx)) {
                    tracing::warn!(%error, "shape log transform ended the response");
                    count_transform_failure(super::future::class_of(&error).label);
                    return Poll::Ready(Some(Err(error)));
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::PassThrough { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Transform { transforming } => {
                let engine = &transforming.engine;
                engine.done && engine.splitter.output.is_empty() && engine.trailers.is_none()
            }
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
