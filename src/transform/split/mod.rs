//! An incremental splitter that finds shape-log messages in a byte stream.
//!
//! A message that starts in a chunk is first offered to [`OnMessage::prefix`], which reads it
//! and finds its end in one pass when it is whole there. Otherwise the splitter tracks
//! strings, escapes and nesting depth byte by byte (strings are skipped with `memchr`), so
//! that the message can be handed to the parser on its own as soon as its last byte arrives,
//! wherever the chunk boundaries fall. Only the
//! message in progress is buffered, and only when it spans chunks; everything else is passed
//! on as slices of the input chunks.
//!
//! Three framings are understood:
//! - a JSON array of messages (`GET /v1/shape`);
//! - the subset object `{"metadata": ..., "data": [messages]}` (`POST /v1/shape`): the
//!   messages of `data` are split out, every other member is passed on as it is;
//! - server-sent events (`live_sse`): each `data:` line is one message, every other line
//!   (comments such as `: keep-alive`, blank lines) is passed on as soon as it ends.

mod json;
mod output;
mod sse;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use self::output::Output;
use super::TransformError;

/// What the message callback did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Pass the message's bytes on exactly as they came.
    Unchanged,
    /// The new message was written into the scratch buffer.
    Replaced,
    /// Leave the message out.
    Dropped,
}

/// Where the splitter hands messages.
pub(crate) trait OnMessage {
    /// Reads the message at the start of `text` if it ends within `text` and its form is
    /// one read in a single pass, and handles it as [`OnMessage::whole`] would: returns its
    /// length and outcome. `Ok(None)` (nothing done) leaves the message to the splitter,
    /// which finds its end and calls [`OnMessage::whole`].
    fn prefix(
        &mut self,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, Outcome)>, TransformError>;

    /// Handles one whole message; a replacement is written into `out`.
    fn whole(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<Outcome, TransformError>;
}

/// Which framing the body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A JSON array, or the subset object (decided by the first byte).
    Json,
    /// Server-sent events.
    Sse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first value: whitespace, then `[` or `{`.
    Start,
    /// After `[`: whitespace, then a message or `]`.
    ArrayOpen,
    /// After a message: whitespace, then `,` or `]`.
    ArrayAfterMessage,
    /// After `,`: whitespace, then a message.
    ArrayAfterComma,
    /// Inside a message.
    Message,
    /// After the subset object's `{`: whitespace, then a key or `}`.
    ObjectOpen,
    /// Inside a member key of the subset object.
    ObjectKey,
    /// After a key: whitespace, then `:`.
    ObjectColon,
    /// After `:`: whitespace, then the member's value.
    ObjectValue,
    /// Inside an object or array member value other than `data`.
    RawValue,
    /// Inside a string member value.
    RawString,
    /// Inside a bare scalar member value (number, `true`, `false`, `null`).
    RawScalar,
    /// After a member value: whitespace, then `,` or `}`.
    ObjectAfterValue,
    /// After `,` in the object: whitespace, then a key.
    ObjectAfterComma,
    /// After the top-level value: only whitespace.
    End,
    /// Server-sent events, at the start of a line or inside one.
    SseLine,
}

/// The splitter's state between chunks.
#[derive(Debug)]
pub(crate) struct Splitter {
    state: State,
    framing: Framing,
    max_message_bytes: usize,
    /// Whether the message array is the subset object's `data` (so `]` returns to the object).
    in_subset: bool,
    /// Nesting depth inside the value being scanned.
    depth: u32,
    in_string: bool,
    escape: bool,
    /// The message (or SSE line) in progress when it spans chunks.
    partial: BytesMut,
    /// The separator before the next message (or `]`), as far as earlier chunks held it.
    held_separator: BytesMut,
    /// The start of that separator within the current chunk.
    separator_start: usize,
    /// The member key in progress (subset object).
    key: Vec<u8>,
    /// A member value of the subset object other than `data`, as far as earlier chunks held
    /// it: its bytes pass on as they come, and a copy is kept to check that it is JSON.
    raw_member: BytesMut,
    /// Messages seen and messages passed on in the array, for commas after drops.
    messages_seen: u64,
    messages_kept: u64,
    /// In SSE: the current event's data was dropped; leave out the rest of the event.
    skip_event: bool,
    /// Where the message callback writes a rewritten message; reused for every message.
    scratch: Vec<u8>,
    pub(crate) output: Output,
}

/// Where a complete message or line is: in the current chunk, or gathered from several.
enum Whole {
    InChunk(usize, usize),
    Gathered(Bytes),
}

impl Whole {
    fn bytes<'a>(&'a self, chunk: &'a Bytes) -> &'a [u8] {
        match self {
            Self::InChunk(start, end) => chunk.get(*start..*end).unwrap_or_default(),
            Self::Gathered(bytes) => bytes,
        }
    }
}

impl Splitter {
    pub(crate) fn new(framing: Framing, max_message_bytes: usize) -> Self {
        Self {
            state: match framing {
                Framing::Json => State::Start,
                Framing::Sse => State::SseLine,
            },
            framing,
            max_message_bytes,
            in_subset: false,
            depth: 0,
            in_string: false,
            escape: false,
            partial: BytesMut::new(),
            held_separator: BytesMut::new(),
            separator_start: 0,
            key: Vec::new(),
            raw_member: BytesMut::new(),
            messages_seen: 0,
            messages_kept: 0,
            skip_event: false,
            scratch: Vec::new(),
            output: Output::default(),
        }
    }

    /// Splits one chunk, calling `on_message` with each complete message; the result is
    /// queued in [`Splitter::output`].
    pub(crate) fn push<F>(
        &mut self,
        chunk: &Bytes,
        on_message: &mut F,
    ) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let result = match self.framing {
            Framing::Json => self.push_json(chunk, on_message),
            Framing::Sse => self.push_sse(chunk, on_message),
        };
        self.output.flush(chunk);
        result
    }

    /// Checks that the body ended where a body may end: a JSON body after its closing
    /// bracket, an SSE stream at the end of a line.
    pub(crate) fn finish(&self) -> Result<(), TransformError> {
        match self.state {
            State::End => Ok(()),
            State::SseLine if self.partial.is_empty() => Ok(()),
            _ => Err(TransformError::Truncated),
        }
    }

    fn check_size(&self, len: usize) -> Result<(), TransformError> {
        if len > self.max_message_bytes {
            Err(TransformError::MessageTooLarge {
                limit: self.max_message_bytes,
            })
        } else {
            Ok(())
        }
    }
}
