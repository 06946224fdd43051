//! The JSON framings: the message array of `GET /v1/shape` and the subset object of
//! `POST /v1/shape`, scanned for the ends of messages (strings, escapes, nesting), with the
//! separators and the subset's other members checked as they pass on.

use bytes::Bytes;

use super::{OnMessage, Outcome, Splitter, State, Whole};
use crate::transform::TransformError;

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

impl Splitter {
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

    pub(super) fn push_json<F>(
        &mut self,
        chunk: &Bytes,
        on_message: &mut F,
    ) -> Result<(), TransformError>
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
}
