//! A one-pass reader of messages in the form Electric writes them.
//!
//! Reading a message with serde costs more than the rest of the transform together, and the
//! splitter has to find the message's end before serde may start. This reader does both in
//! one pass over the bytes: it reads a message at the start of its input, checking it as
//! strictly as `serde_json` does, and says where it ended. It only takes on the forms it
//! reads exactly as serde would (member names without escapes, no `\u` escape in row
//! strings, each of `headers`, `value`, `old_value` at most once, shallow nesting, headers
//! [`HeaderFacts::scan`] reads); for anything else, valid or not, it answers `None` and the
//! caller reads the message with serde, so results and errors stay serde's.

use std::borrow::Cow;

use super::{Field, HeaderFacts, Message, Parsed, Relation, Row};

/// How deep values other than rows may nest before the reader leaves them to serde.
const MAX_DEPTH: u32 = 32;

/// Reads the message at the start of `text` (after any whitespace), returning it and the
/// index just past its closing brace. `None` if it does not end within `text` or is not in
/// the form this reader takes on.
pub(crate) fn read_prefix<'a>(
    text: &'a str,
    shape_table: Option<Relation<'a>>,
) -> Option<(Parsed<'a>, usize)> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let parsed = reader.message(shape_table)?;
    Some((parsed, reader.at))
}

/// Reads `text` as one whole message (whitespace around it allowed), or `None` as
/// [`read_prefix`].
pub(super) fn read_whole<'a>(
    text: &'a str,
    shape_table: Option<Relation<'a>>,
) -> Option<Parsed<'a>> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let parsed = reader.message(shape_table)?;
    reader.whitespace();
    (reader.at == text.len()).then_some(parsed)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Eight copies of `byte`, for comparing a word's bytes at once.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `word` below `limit` (at most 0x80) is set, and possibly
/// bits of later bytes; the lowest set bit always marks the first such byte.
const fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(splat(limit)) & !word & splat(0x80)
}

/// The index of the first `"`, `\` or control character at or after `at`, if any.
fn string_special(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let found = bytes_below(word ^ splat(b'"'), 1)
            | bytes_below(word ^ splat(b'\\'), 1)
            | bytes_below(word, 0x20);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return Some(at);
        }
        at += 1;
    }
    None
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end) == Some(word)).then(|| self.at = end)
    }

    /// After an opening quote: reads to the closing one, checking escapes as serde does.
    /// Returns the contents' span and whether they hold an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.at;
        let mut escaped = false;
        loop {
            let at = string_special(self.bytes, self.at)?;
            match *self.bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some((start, at, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.at = at
                        + match *self.bytes.get(at + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                            b'u' => {
                                let hex = self.bytes.get(at + 2..at + 6)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return None;
                                }
                                6
                            }
                            _ => return None,
                        };
                }
                // A control character, which serde refuses.
                _ => return None,
            }
        }
    }

    /// After an opening quote: the string's text, borrowed unless it has escapes. A `\u`
    /// escape is left to serde (surrogates).
    fn text(&mut self) -> Option<Cow<'a, str>> {
        let (start, end, escaped) = self.string()?;
        let contents = self.text.get(start..end)?;
        if !escaped {
            return Some(Cow::Borrowed(contents));
        }
        let mut text = String::with_capacity(contents.len());
        let mut rest = contents;
        while let Some(slash) = rest.find('\\') {
            text.push_str(rest.get(..slash)?);
            let escape = rest.as_bytes().get(slash + 1)?;
            text.push(match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                _ => return None,
            });
            rest = rest.get(slash + 2..)?;
        }
        text.push_str(rest);
        Some(Cow::Owned(text))
    }

    /// After an opening quote: a member name without escapes.
    fn name(&mut self) -> Option<&'a str> {
        let (start, end, escaped) = self.string()?;
        if escaped {
            return None;
        }
        self.text.get(start..end)
    }

    /// Skips the JSON value at the cursor, checking it as serde does.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string().map(drop)
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' => self.container(depth, b']', |reader| reader.skip_value(depth + 1)),
            b'{' => self.container(depth, b'}', |reader| {
                reader.eat(b'"')?;
                reader.string()?;
                reader.whitespace();
                reader.eat(b':')?;
                reader.whitespace();
                reader.skip_value(depth + 1)
            }),
            _ => None,
        }
    }

    /// An array or object at the cursor, each element read by `element`.
    fn container(
        &mut self,
        depth: u32,
        close: u8,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.whitespace();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            self.whitespace();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.whitespace();
                }
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// A number as JSON (and serde) writes them: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A row: an object of strings or `null`.
    fn row(&mut self) -> Option<Row<'a>> {
        let mut columns = Vec::with_capacity(8);
        self.container(0, b'}', |reader| {
            reader.eat(b'"')?;
            let name = reader.text()?;
            reader.whitespace();
            reader.eat(b':')?;
            reader.whitespace();
            let value = if reader.peek()? == b'n' {
                reader.literal(b"null")?;
                None
            } else {
                reader.eat(b'"')?;
                Some(reader.text()?)
            };
            columns.push((name, value));
            Some(())
        })?;
        Some(Row {
            columns,
            changed: false,
        })
    }

    fn message(&mut self, shape_table: Option<Relation<'a>>) -> Option<Parsed<'a>> {
        let mut message = Message {
            fields: Vec::with_capacity(4),
            value: None,
            old_value: None,
            key: None,
            operation: None,
            relation: None,
            shape_table,
            discarded: false,
        };
        let mut control = false;
        let mut seen_headers = false;
        self.whitespace();
        if self.peek()? != b'{' {
            return None;
        }
        self.container(0, b'}', |reader| {
            reader.eat(b'"')?;
            let name = reader.name()?;
            reader.whitespace();
            reader.eat(b':')?;
            reader.whitespace();
            match name {
                "value" if message.value.is_none() => {
                    message.value = Some(reader.row()?);
                    message.fields.push(Field::Value);
                }
                "old_value" if message.old_value.is_none() => {
                    message.old_value = Some(reader.row()?);
                    message.fields.push(Field::OldValue);
                }
                "value" | "old_value" => return None,
                "headers" if seen_headers => return None,
                _ => {
                    let start = reader.at;
                    reader.skip_value(1)?;
                    let raw = reader.text.get(start..reader.at)?;
                    if name == "headers" {
                        seen_headers = true;
                        let facts = HeaderFacts::scan(raw)?;
                        control = facts.control;
                        message.operation = facts.operation;
                        message.relation = facts.relation;
                    } else if name == "key" {
                        message.key = Some(raw);
                    }
                    message.fields.push(Field::Other(Cow::Borrowed(name), raw));
                }
            }
            Some(())
        })?;
        Some(if control {
            Parsed::Control
        } else {
            Parsed::Change(message)
        })
    }
}
