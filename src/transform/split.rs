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

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::TransformError;

/// Copies under this many bytes go into the owned output buffer instead of becoming a frame
/// of their own, so a transformed chunk becomes a few frames, not one per separator.
const SMALL_COPY: usize = 4096;

/// The owned buffer grows in blocks of this size, each shared by the frames cut from it.
const OWNED_BLOCK: usize = 64 * 1024;

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

/// The output of one chunk: slices of the chunk where bytes pass unchanged, one owned buffer
/// for what was rewritten, in order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    frames: VecDeque<Bytes>,
    owned: BytesMut,
    /// A range of the current chunk to pass on, not yet turned into a frame. At most one of
    /// `pending` and `owned` holds bytes at any time, which keeps the order.
    pending: Option<(usize, usize)>,
}

impl Output {
    /// The next frame ready to be sent.
    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        self.frames.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The bytes queued in frames ready to be sent.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    fn range(&mut self, chunk: &Bytes, start: usize, end: usize) {
        if start >= end {
            return;
        }
        if !self.owned.is_empty() {
            if end - start < SMALL_COPY {
                self.append(chunk.get(start..end).unwrap_or_default());
                return;
            }
            self.frames.push_back(self.owned.split().freeze());
        }
        match self.pending {
            Some((pending_start, pending_end)) if pending_end == start => {
                self.pending = Some((pending_start, end));
            }
            _ => {
                self.flush_pending(chunk);
                self.pending = Some((start, end));
            }
        }
    }

    fn copy(&mut self, chunk: &Bytes, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some((start, end)) = self.pending {
            if end - start < SMALL_COPY {
                self.pending = None;
                self.append(chunk.get(start..end).unwrap_or_default());
            } else {
                self.flush_pending(chunk);
            }
        }
        self.append(bytes);
    }

    /// Appends to the owned buffer without moving what it holds: when its block is full,
    /// that becomes a frame and a new block is started (growing in place would copy it).
    fn append(&mut self, bytes: &[u8]) {
        if self.owned.capacity() - self.owned.len() < bytes.len() {
            if !self.owned.is_empty() {
                self.frames.push_back(self.owned.split().freeze());
            }
            self.owned.reserve(bytes.len().max(OWNED_BLOCK));
        }
        self.owned.extend_from_slice(bytes);
    }

    fn frame(&mut self, chunk: &Bytes, frame: Bytes) {
        self.flush(chunk);
        if !frame.is_empty() {
            self.frames.push_back(frame);
        }
    }

    fn flush_pending(&mut self, chunk: &Bytes) {
        if let Some((start, end)) = self.pending.take() {
            self.frames.push_back(chunk.slice(start..end));
        }
    }

    fn flush(&mut self, chunk: &Bytes) {
        self.flush_pending(chunk);
        if !self.owned.is_empty() {
            self.frames.push_back(self.owned.split().freeze());
        }
    }
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

fn is_ws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn malformed(reason: &'static str) -> TransformError {
    TransformError::Malformed {
        reason: reason.into(),
    }
}

/// The longest prefix of `bytes` that is UTF-8 (a chunk may end inside a character).
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => bytes
            .get(..error.valid_up_to())
            .and_then(|valid| std::str::from_utf8(valid).ok())
            .unwrap_or_default(),
    }
}

/// The longest prefix of `text` of at most `limit` bytes.
fn up_to(text: &str, limit: usize) -> &str {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
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

    /// Scans to the end of the string being scanned, returning the index just past its
    /// closing quote if it is in `bytes`.
    #[inline]
    fn scan_string(&mut self, bytes: &[u8], mut at: usize) -> Option<usize> {
        loop {
            if self.escape {
                if at >= bytes.len() {
                    return None;
                }
                self.escape = false;
                at += 1;
            }
            let rest = bytes.get(at..)?;
            let offset = memchr::memchr2(b'"', b'\\', rest)?;
            at += offset + 1;
            if rest.get(offset) == Some(&b'"') {
                self.in_string = false;
                return Some(at);
            }
            self.escape = true;
        }
    }

    /// Scans a value whose opening bracket was consumed, returning the index just past its
    /// closing bracket if it is in `bytes`. Brackets are only counted, not matched: the
    /// parser that reads each message afterwards refuses a mismatch.
    #[inline]
    fn scan_value(&mut self, bytes: &[u8], mut at: usize) -> Option<usize> {
        loop {
            if self.in_string {
                at = self.scan_string(bytes, at)?;
            }
            loop {
                let byte = *bytes.get(at)?;
                at += 1;
                match byte {
                    b'"' => {
                        self.in_string = true;
                        break;
                    }
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Some(at);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Holds a whole separator (ending at `end` in this chunk) to the message cap, as its part
    /// held over from earlier chunks is: otherwise whitespace between messages would be refused
    /// or not depending on where the chunks fall.
    fn check_separator(&self, end: usize) -> Result<(), TransformError> {
        self.check_size(self.held_separator.len() + end.saturating_sub(self.separator_start))
    }

    /// Passes on the held separator up to `end` (the message's start, or past the `]`).
    fn emit_separator(&mut self, chunk: &Bytes, end: usize) {
        if !self.held_separator.is_empty() {
            let held = self.held_separator.split();
            self.output.copy(chunk, &held);
        }
        self.output.range(chunk, self.separator_start, end);
    }

    /// Hands one complete array message to the callback and passes on what it decided.
    fn finish_message<F>(
        &mut self,
        chunk: &Bytes,
        whole: Whole,
        separator_end: usize,
        on_message: &mut F,
    ) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let message = whole.bytes(chunk);
        self.check_size(message.len())?;
        self.scratch.clear();
        let outcome = on_message.whole(message, &mut self.scratch)?;
        self.pass_message(chunk, outcome, whole, separator_end);
        Ok(())
    }

    /// Passes on an array message as the callback decided (its replacement is in
    /// `scratch`), preceded by its separator when kept.
    fn pass_message(
        &mut self,
        chunk: &Bytes,
        outcome: Outcome,
        whole: Whole,
        separator_end: usize,
    ) {
        let first_kept_after_drops = self.messages_kept == 0 && self.messages_seen > 0;
        self.messages_seen += 1;
        if outcome == Outcome::Dropped {
            self.held_separator.clear();
            return;
        }
        if first_kept_after_drops {
            // Its separator starts with a comma that would now follow `[`: leave it out.
            self.held_separator.clear();
        } else {
            self.emit_separator(chunk, separator_end);
        }
        self.messages_kept += 1;
        match (outcome, whole) {
            (Outcome::Unchanged, Whole::InChunk(start, end)) => {
                self.output.range(chunk, start, end)
            }
            (Outcome::Unchanged, Whole::Gathered(bytes)) => self.output.frame(chunk, bytes),
            _ => self.output.copy(chunk, &self.scratch),
        }
    }

    fn push_json<F>(&mut self, chunk: &Bytes, on_message: &mut F) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let bytes: &[u8] = chunk;
        let text = utf8_prefix(bytes);
        let mut at = 0;
        // Start of the bytes passed on as they are (outside the message array), not yet
        // given to the output.
        let mut emit_from = 0;
        // Start of the message in progress within this chunk, and the end of its separator.
        let mut message_start = 0;
        // Start of the subset member value in progress within this chunk.
        let mut raw_start = 0;
        self.separator_start = 0;
        while at < bytes.len() {
            let byte = bytes.get(at).copied().unwrap_or_default();
            match self.state {
                State::Start
                | State::End
                | State::ObjectOpen
                | State::ObjectAfterComma
                | State::ObjectColon
                | State::ObjectValue
                | State::ObjectAfterValue
                | State::ArrayOpen
                | State::ArrayAfterMessage
                | State::ArrayAfterComma
                    if is_ws(byte) =>
                {
                    at += 1;
                }
                State::Start if byte == b'[' || byte == b'{' => {
                    at += 1;
                    if byte == b'[' {
                        self.output.range(chunk, emit_from, at);
                        emit_from = at;
                        self.separator_start = at;
                        self.state = State::ArrayOpen;
                    } else {
                        self.state = State::ObjectOpen;
                    }
                }
                State::Start | State::End => {
                    return Err(malformed("expected one JSON array or object"));
                }
                State::ArrayOpen | State::ArrayAfterComma if byte == b'{' => {
                    self.check_separator(at)?;
                    message_start = at;
                    // Most messages are whole in the chunk: read them in one pass, up to
                    // the cap (a longer one is left to the scan below, which refuses it).
                    let rest = text
                        .get(at..)
                        .map(|rest| up_to(rest, self.max_message_bytes));
                    self.scratch.clear();
                    if let Some((len, outcome)) = match rest {
                        Some(rest) => on_message.prefix(rest, &mut self.scratch)?,
                        None => None,
                    } {
                        let end = at + len;
                        self.pass_message(chunk, outcome, Whole::InChunk(at, end), at);
                        at = end;
                        emit_from = at;
                        self.separator_start = at;
                        self.state = State::ArrayAfterMessage;
                        continue;
                    }
                    at += 1;
                    self.depth = 1;
                    self.in_string = false;
                    self.escape = false;
                    self.state = State::Message;
                }
                State::ArrayAfterMessage if byte == b',' => {
                    at += 1;
                    self.state = State::ArrayAfterComma;
                }
                State::ArrayOpen | State::ArrayAfterMessage if byte == b']' => {
                    self.check_separator(at)?;
                    at += 1;
                    self.emit_separator(chunk, at);
                    emit_from = at;
                    self.state = if self.in_subset {
                        State::ObjectAfterValue
                    } else {
                        State::End
                    };
                    self.in_subset = false;
                }
                State::ArrayOpen | State::ArrayAfterMessage | State::ArrayAfterComma => {
                    return Err(malformed("expected a message object in the array"));
                }
                State::Message => match self.scan_value(bytes, at) {
                    Some(end) => {
                        let (whole, separator_end) = if self.partial.is_empty() {
                            (Whole::InChunk(message_start, end), message_start)
                        } else {
                            self.partial
                                .extend_from_slice(bytes.get(..end).unwrap_or_default());
                            (Whole::Gathered(self.partial.split().freeze()), 0)
                        };
                        self.finish_message(chunk, whole, separator_end, on_message)?;
                        at = end;
                        emit_from = at;
                        self.separator_start = at;
                        self.state = State::ArrayAfterMessage;
                    }
                    None => {
                        let buffered = self.partial.len() + (bytes.len() - message_start);
                        self.check_size(buffered)?;
                        at = bytes.len();
                    }
                },
                State::ObjectOpen | State::ObjectAfterComma if byte == b'"' => {
                    at += 1;
                    self.key.clear();
                    self.state = State::ObjectKey;
                }
                State::ObjectOpen if byte == b'}' => {
                    at += 1;
                    self.state = State::End;
                }
                State::ObjectOpen | State::ObjectAfterComma => {
                    return Err(malformed("expected a member of the subset object"));
                }
                State::ObjectKey => {
                    let rest = bytes.get(at..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(offset) if rest.get(offset) == Some(&b'"') => {
                            self.key
                                .extend_from_slice(rest.get(..offset).unwrap_or_default());
                            at += offset + 1;
                            self.state = State::ObjectColon;
                        }
                        // Electric never escapes member names; an escaped one could hide `data`.
                        Some(_) => {
                            return Err(malformed("escaped member name in the subset object"))
                        }
                        None => {
                            self.key.extend_from_slice(rest);
                            at = bytes.len();
                        }
                    }
                    self.check_size(self.key.len())?;
                    // A complete name passes on as it came, so it must be a JSON string's
                    // contents (checked after the size, as a name split over chunks is).
                    if self.state == State::ObjectColon
                        && (self.key.iter().any(|&byte| byte < 0x20)
                            || std::str::from_utf8(&self.key).is_err())
                    {
                        return Err(malformed("a member name of the subset object is not JSON"));
                    }
                }
                State::ObjectColon if byte == b':' => {
                    at += 1;
                    self.state = State::ObjectValue;
                }
                State::ObjectColon => return Err(malformed("expected ':' in the subset object")),
                State::ObjectValue if self.key == b"data" => {
                    if byte != b'[' {
                        return Err(malformed("the subset's data is not an array"));
                    }
                    at += 1;
                    self.output.range(chunk, emit_from, at);
                    emit_from = at;
                    self.separator_start = at;
                    self.messages_seen = 0;
                    self.messages_kept = 0;
                    self.in_subset = true;
                    self.state = State::ArrayOpen;
                }
                State::ObjectValue => {
                    raw_start = at;
                    at += 1;
                    self.depth = 1;
                    self.in_string = false;
                    self.escape = false;
                    self.state = match byte {
                        b'{' | b'[' => State::RawValue,
                        b'"' => {
                            self.in_string = true;
                            State::RawString
                        }
                        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => State::RawScalar,
                        _ => return Err(malformed("expected a value in the subset object")),
                    };
                }
                State::RawString => match self.scan_string(bytes, at) {
                    Some(end) => {
                        at = end;
                        self.finish_raw_member(bytes, raw_start, end)?;
                        self.state = State::ObjectAfterValue;
                    }
                    None => at = bytes.len(),
                },
                State::RawValue => match self.scan_value(bytes, at) {
                    Some(end) => {
                        at = end;
                        self.finish_raw_member(bytes, raw_start, end)?;
                        self.state = State::ObjectAfterValue;
                    }
                    None => at = bytes.len(),
                },
                State::RawScalar => {
                    if byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.') {
                        at += 1;
                    } else {
                        self.finish_raw_member(bytes, raw_start, at)?;
                        self.state = State::ObjectAfterValue;
                    }
                }
                State::ObjectAfterValue if byte == b',' => {
                    at += 1;
                    self.state = State::ObjectAfterComma;
                }
                State::ObjectAfterValue if byte == b'}' => {
                    at += 1;
                    self.state = State::End;
                }
                State::ObjectAfterValue => {
                    return Err(malformed("expected ',' or '}' in the subset object"));
                }
                State::SseLine => return Err(malformed("unexpected framing")),
            }
        }
        match self.state {
            State::ArrayOpen | State::ArrayAfterMessage | State::ArrayAfterComma => {
                self.held_separator
                    .extend_from_slice(bytes.get(self.separator_start..).unwrap_or_default());
                self.check_size(self.held_separator.len())?;
            }
            State::Message => {
                self.held_separator.extend_from_slice(
                    bytes
                        .get(self.separator_start..message_start)
                        .unwrap_or_default(),
                );
                self.partial
                    .extend_from_slice(bytes.get(message_start..).unwrap_or_default());
            }
            state => {
                if matches!(state, State::RawString | State::RawValue | State::RawScalar) {
                    self.raw_member
                        .extend_from_slice(bytes.get(raw_start..).unwrap_or_default());
                    self.check_size(self.raw_member.len())?;
                }
                self.output.range(chunk, emit_from, bytes.len());
            }
        }
        Ok(())
    }

    /// Checks a complete member value of the subset object other than `data` (its last part
    /// is `bytes[start..end]`): it passes on as it came, so it must be one JSON value, not
    /// merely balanced brackets or a word that starts like `true`.
    fn finish_raw_member(
        &mut self,
        bytes: &[u8],
        start: usize,
        end: usize,
    ) -> Result<(), TransformError> {
        let last = bytes.get(start..end).unwrap_or_default();
        self.check_size(self.raw_member.len() + last.len())?;
        // UTF-8 is checked first: serde_json skips an ignored string without checking it.
        let is_json = |value: &[u8]| {
            std::str::from_utf8(value)
                .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
        };
        let valid = if self.raw_member.is_empty() {
            is_json(last)
        } else {
            self.raw_member.extend_from_slice(last);
            let valid = is_json(&self.raw_member);
            self.raw_member.clear();
            valid
        };
        if valid {
            Ok(())
        } else {
            Err(malformed("a member of the subset object is not JSON"))
        }
    }

    fn push_sse<F>(&mut self, chunk: &Bytes, on_message: &mut F) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let bytes: &[u8] = chunk;
        let mut at = 0;
        while at < bytes.len() {
            let rest = bytes.get(at..).unwrap_or_default();
            let Some(offset) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                // A last `\r` may be the start of the line ending, which a whole line's size
                // leaves out.
                let ending = usize::from(self.partial.ends_with(b"\r"));
                self.check_size(self.partial.len() - ending)?;
                break;
            };
            let end = at + offset + 1;
            let line = if self.partial.is_empty() {
                Whole::InChunk(at, end)
            } else {
                self.partial
                    .extend_from_slice(bytes.get(at..end).unwrap_or_default());
                Whole::Gathered(self.partial.split().freeze())
            };
            self.sse_line(chunk, line, on_message)?;
            at = end;
        }
        Ok(())
    }

    /// One complete SSE line, with its line ending.
    fn sse_line<F>(
        &mut self,
        chunk: &Bytes,
        line: Whole,
        on_message: &mut F,
    ) -> Result<(), TransformError>
    where
        F: OnMessage,
    {
        let text = line.bytes(chunk);
        let content_len = text.len() - if text.ends_with(b"\r\n") { 2 } else { 1 };
        let content = text.get(..content_len).unwrap_or_default();
        self.check_size(content_len)?;
        let outcome = if content.is_empty() {
            // The blank line that ends an event: left out with the event it ends.
            if std::mem::take(&mut self.skip_event) {
                Outcome::Dropped
            } else {
                Outcome::Unchanged
            }
        } else if self.skip_event {
            Outcome::Dropped
        } else if let Some(data) = content.strip_prefix(b"data:") {
            let payload = data.strip_prefix(b" ").unwrap_or(data);
            self.scratch.clear();
            let outcome = on_message.whole(payload, &mut self.scratch)?;
            if outcome == Outcome::Dropped {
                self.skip_event = true;
            } else if outcome == Outcome::Replaced {
                let prefix_len = content_len - payload.len();
                self.output
                    .copy(chunk, text.get(..prefix_len).unwrap_or_default());
                self.output.copy(chunk, &self.scratch);
                self.output
                    .copy(chunk, text.get(content_len..).unwrap_or_default());
            }
            outcome
        } else {
            // Comments (`: keep-alive`) and other fields pass as they come.
            Outcome::Unchanged
        };
        if outcome == Outcome::Unchanged {
            match line {
                Whole::InChunk(start, end) => self.output.range(chunk, start, end),
                Whole::Gathered(bytes) => self.output.frame(chunk, bytes),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drops messages containing `"drop"` and replaces those containing `"swap"` with
    /// `{"swapped":1}`. With `prefix`, it also reads messages at the start of a chunk's rest
    /// (finding their end with serde), as the transform's one-pass reader does.
    struct TestMessages {
        prefix: bool,
    }

    impl OnMessage for TestMessages {
        fn prefix(
            &mut self,
            text: &str,
            out: &mut Vec<u8>,
        ) -> Result<Option<(usize, Outcome)>, TransformError> {
            if !self.prefix {
                return Ok(None);
            }
            let mut values = serde_json::Deserializer::from_str(text)
                .into_iter::<serde_json::Map<String, serde_json::Value>>();
            let Some(Ok(_)) = values.next() else {
                return Ok(None);
            };
            let len = values.byte_offset();
            let message = text.get(..len).unwrap().as_bytes();
            Ok(Some((len, self.whole(message, out)?)))
        }

        fn whole(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<Outcome, TransformError> {
            let text = std::str::from_utf8(message).unwrap();
            if text.contains("\"drop\"") {
                Ok(Outcome::Dropped)
            } else if text.contains("\"swap\"") {
                out.extend_from_slice(br#"{"swapped":1}"#);
                Ok(Outcome::Replaced)
            } else {
                Ok(Outcome::Unchanged)
            }
        }
    }

    /// Runs `input` through a splitter in chunks of `size`, with and without the one-pass
    /// reading of messages; both must give the same result.
    fn run(framing: Framing, input: &[u8], size: usize) -> Result<Vec<u8>, TransformError> {
        let scanned = run_with(framing, input, size, false);
        let read = run_with(framing, input, size, true);
        assert_eq!(
            format!("{scanned:?}"),
            format!("{read:?}"),
            "{input:?} in chunks of {size}"
        );
        read
    }

    fn run_with(
        framing: Framing,
        input: &[u8],
        size: usize,
        prefix: bool,
    ) -> Result<Vec<u8>, TransformError> {
        let mut splitter = Splitter::new(framing, 64);
        let mut messages = TestMessages { prefix };
        let mut output = Vec::new();
        for chunk in input.chunks(size) {
            splitter.push(&Bytes::copy_from_slice(chunk), &mut messages)?;
            while let Some(frame) = splitter.output.pop() {
                output.extend_from_slice(&frame);
            }
        }
        splitter.finish()?;
        Ok(output)
    }

    fn every_chunking(framing: Framing, input: &str, expected: &str) {
        for size in 1..=input.len() {
            let output = run(framing, input.as_bytes(), size).unwrap();
            assert_eq!(
                String::from_utf8(output).unwrap(),
                expected,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn untouched_arrays_pass_byte_for_byte() {
        for input in [
            "[]",
            " [ ] \n",
            r#"[{"a":"]}\"{["},{"b":[1,{"c":null}]}]"#,
            "[\n{\"a\":\"\\\\\"}\n,\n{}\n]\n",
        ] {
            every_chunking(Framing::Json, input, input);
        }
    }

    #[test]
    fn dropped_messages_take_their_comma_with_them() {
        every_chunking(Framing::Json, r#"[{"x":"drop"}, {"a":1}]"#, r#"[{"a":1}]"#);
        every_chunking(Framing::Json, r#"[{"a":1}, {"x":"drop"}]"#, r#"[{"a":1}]"#);
        every_chunking(
            Framing::Json,
            r#"[{"a":1},{"x":"drop"},{"b":2}]"#,
            r#"[{"a":1},{"b":2}]"#,
        );
        every_chunking(Framing::Json, r#"[{"x":"drop"},{"x":"drop"}]"#, "[]");
    }

    #[test]
    fn replaced_messages_keep_their_separators() {
        every_chunking(
            Framing::Json,
            r#"[{"x":"swap"} , {"a":1}]"#,
            r#"[{"swapped":1} , {"a":1}]"#,
        );
    }

    #[test]
    fn subset_object_data_messages_are_split_out() {
        every_chunking(
            Framing::Json,
            r#"{"metadata":{"xmin":"1","l":["]"]},"n":-1.5e3,"t":true,"s":"da\"ta","data":[{"x":"swap"},{"x":"drop"}]}"#,
            r#"{"metadata":{"xmin":"1","l":["]"]},"n":-1.5e3,"t":true,"s":"da\"ta","data":[{"swapped":1}]}"#,
        );
    }

    #[test]
    fn sse_lines_are_transformed_and_dropped_events_vanish() {
        every_chunking(
            Framing::Sse,
            "data: {\"x\":\"swap\"}\n\ndata: {\"x\":\"drop\"}\n\n: keep-alive\n\ndata:{\"a\":1}\r\n\r\n",
            "data: {\"swapped\":1}\n\n: keep-alive\n\ndata:{\"a\":1}\r\n\r\n",
        );
    }

    #[test]
    fn truncated_and_malformed_bodies_are_errors() {
        for input in [
            "",
            "[",
            "[{\"a\":1}",
            "[{\"a\":1},",
            "[{\"a\":\"1}]",
            "{\"data\":[]",
            "[1]",
            "[{}}",
            "[{} {}]",
            "[{}]x",
            "{\"data\":{}}",
            "{\"d\\u0061ta\":[]}",
            "x",
        ] {
            for size in 1..=input.len().max(1) {
                assert!(
                    run(Framing::Json, input.as_bytes(), size).is_err(),
                    "{input:?} in chunks of {size}"
                );
            }
        }
        assert!(matches!(
            run(Framing::Sse, b"data: {}\n\ndata: {", 4),
            Err(TransformError::Truncated)
        ));
    }

    /// Found by the `transform_stream` fuzz target: members of the subset object other than
    /// `data` passed on unchecked, so a body that is not JSON ended without an error.
    #[test]
    fn subset_members_other_than_data_must_be_json() {
        for input in [
            "{\"metadata\":tru,\"data\":[]}",
            "{\"metadata\":[},\"data\":[]}",
            "{\"metadata\":{\"a\":},\"data\":[]}",
            "{\"metadata\":01,\"data\":[]}",
            "{\"metadata\":\"\u{1}\",\"data\":[]}",
            "{\"metadata\":\"\\x\",\"data\":[]}",
            "{\"meta\ndata\":1,\"data\":[]}",
        ] {
            for size in 1..=input.len() {
                assert!(
                    matches!(
                        run(Framing::Json, input.as_bytes(), size),
                        Err(TransformError::Malformed { .. })
                    ),
                    "{input:?} in chunks of {size}"
                );
            }
        }
        for input in [
            &b"{\"metadata\":{\"x\xff\":1},\"data\":[]}"[..],
            b"{\"metadata\":\"\xff\",\"data\":[]}",
            b"{\"\xff\":1,\"data\":[]}",
        ] {
            for size in 1..=input.len() {
                assert!(
                    matches!(
                        run(Framing::Json, input, size),
                        Err(TransformError::Malformed { .. })
                    ),
                    "{input:?} in chunks of {size}"
                );
            }
        }
        // Over the cap and not JSON: the same error in every chunking (the size is checked
        // first, as it must be for a name that spans chunks).
        let long_name = format!("{{\"{}\u{1}\":1,\"data\":[]}}", "n".repeat(70));
        for size in 1..=long_name.len() {
            assert!(matches!(
                run(Framing::Json, long_name.as_bytes(), size),
                Err(TransformError::MessageTooLarge { limit: 64 })
            ));
        }
        let valid = r#"{"metadata":{"xip":["1",[2]],"s":"a\"}"},"n":-1.5e3,"t":true,"data":[]}"#;
        every_chunking(Framing::Json, valid, valid);
    }

    /// Found by the `transform_stream` fuzz target: whitespace between messages longer than
    /// the cap was refused when it spanned chunks (it is held) and passed when it did not.
    #[test]
    fn long_separators_are_errors_in_any_chunking() {
        let spaces = " ".repeat(70);
        for input in [
            format!("[{spaces}]"),
            format!("[{{\"a\":1}},{spaces}{{\"b\":2}}]"),
            format!("{{\"data\":[{{\"a\":1}}{spaces}]}}"),
        ] {
            for size in 1..=input.len() {
                assert!(
                    matches!(
                        run(Framing::Json, input.as_bytes(), size),
                        Err(TransformError::MessageTooLarge { limit: 64 })
                    ),
                    "{input:?} in chunks of {size}"
                );
            }
        }
        let short = format!("[{{\"a\":1}},{}{{\"b\":2}}]", " ".repeat(60));
        every_chunking(Framing::Json, &short, &short);
    }

    /// Found by the `transform_stream` fuzz target: an SSE line of exactly the cap, ending in
    /// `\r\n`, was refused when the chunks split the `\r` from the `\n`.
    #[test]
    fn an_sse_line_of_the_cap_passes_in_any_chunking() {
        let line = format!(": {}\r\ndata: {{}}\r\n\r\n", "x".repeat(62));
        every_chunking(Framing::Sse, &line, &line);
    }

    #[test]
    fn oversized_messages_are_errors_in_any_chunking() {
        let long = format!(r#"[{{"a":"{}"}}]"#, "x".repeat(100));
        for size in [1, 7, long.len()] {
            assert!(matches!(
                run(Framing::Json, long.as_bytes(), size),
                Err(TransformError::MessageTooLarge { limit: 64 })
            ));
        }
        let line = format!("data: {}\n", "x".repeat(100));
        assert!(matches!(
            run(Framing::Sse, line.as_bytes(), 5),
            Err(TransformError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn untouched_chunks_become_slices_of_themselves() {
        let chunk = Bytes::from_static(br#"[{"a":1},{"b":2}]"#);
        let mut splitter = Splitter::new(Framing::Json, 64);
        splitter
            .push(&chunk, &mut TestMessages { prefix: true })
            .unwrap();
        let frame = splitter.output.pop().unwrap();
        assert_eq!(frame.as_ptr(), chunk.as_ptr());
        assert_eq!(frame.len(), chunk.len());
        assert!(splitter.output.pop().is_none());
    }
}
