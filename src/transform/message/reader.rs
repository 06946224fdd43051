//! A one-pass reader of messages in the form Electric writes them.
//!
//! Reading a message with serde costs more than the rest of the transform together, and the
//! splitter has to find the message's end before serde may start. This reader does both in
//! one pass over the bytes: it reads a message at the start of its input, checking it as
//! strictly as `serde_json` does, and says where it ended. It only takes on the forms it
//! reads exactly as serde would (member names without escapes, no `\u` escape in row
//! strings, each of `headers`, `value`, `old_value` at most once, shallow nesting, headers in
//! their common form: see [`Reader::headers`]); for anything else, valid or not, it answers
//! `None` and the caller reads the message with serde, so results and errors stay serde's.

use std::borrow::Cow;

use super::{
    Column, Field, HeaderFacts, Message, Operation, Origin, Parsed, Relation, Row, RowSource,
};

/// How deep values other than rows may nest before the reader leaves them to serde.
const MAX_DEPTH: u32 = 32;

/// Reads the message at the start of `text` (after any whitespace), returning it and the
/// index just past its closing brace. `None` if it does not end within `text` or is not in
/// the form this reader takes on.
pub(crate) fn read_prefix<'a>(
    text: &'a str,
    shape_table: Option<Relation<'a>>,
) -> Option<(Parsed<'a>, usize)> {
    let mut reader = Reader::new(text);
    let parsed = reader.message(shape_table)?;
    Some((parsed, reader.at))
}

/// Reads `text` as one whole message (whitespace around it allowed), or `None` as
/// [`read_prefix`].
pub(super) fn read_whole<'a>(
    text: &'a str,
    shape_table: Option<Relation<'a>>,
) -> Option<Parsed<'a>> {
    let mut reader = Reader::new(text);
    let parsed = reader.message(shape_table)?;
    reader.whitespace();
    (reader.at == text.len()).then_some(parsed)
}

/// Reads `raw` as a message's `headers` in their common form (see [`Reader::headers`]),
/// whitespace around it allowed; `None` for any other form.
pub(super) fn read_headers(raw: &str) -> Option<HeaderFacts<'_>> {
    let mut reader = Reader::new(raw);
    reader.whitespace();
    let facts = reader.headers()?;
    reader.whitespace();
    (reader.at == raw.len()).then_some(facts)
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
pub(super) fn string_special(bytes: &[u8], mut at: usize) -> Option<usize> {
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
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

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
    /// Returns the contents' span and where their first escape is, if they have one.
    fn string(&mut self) -> Option<(usize, usize, Option<usize>)> {
        let start = self.at;
        let mut first_escape = None;
        loop {
            let at = string_special(self.bytes, self.at)?;
            match *self.bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some((start, at, first_escape));
                }
                b'\\' => {
                    first_escape = first_escape.or(Some(at));
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
        let (start, end, first_escape) = self.string()?;
        let Some(mut escape) = first_escape else {
            return Some(Cow::Borrowed(self.text.get(start..end)?));
        };
        // Escapes are ASCII, so every piece between them is whole characters.
        let mut text = String::with_capacity(end - start);
        let mut from = start;
        loop {
            text.push_str(self.text.get(from..escape)?);
            text.push(match *self.bytes.get(escape + 1)? {
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
            from = escape + 2;
            match self
                .bytes
                .get(from..end)?
                .iter()
                .position(|&byte| byte == b'\\')
            {
                Some(offset) => escape = from + offset,
                None => break,
            }
        }
        text.push_str(self.text.get(from..end)?);
        Some(Cow::Owned(text))
    }

    /// After an opening quote: a member name without escapes.
    fn name(&mut self) -> Option<&'a str> {
        match self.string()? {
            (start, end, None) => self.text.get(start..end),
            _ => None,
        }
    }

    /// An object member's name without escapes and the colon after it, up to its value.
    fn member_name(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let name = self.name()?;
        self.whitespace();
        self.eat(b':')?;
        self.whitespace();
        Some(name)
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
            b'[' => self.container(depth, *b"[]", |reader| reader.skip_value(depth + 1)),
            b'{' => self.container(depth, *b"{}", |reader| {
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

    /// The array or object opened by `open` at the cursor, each element read by `element`.
    fn container(
        &mut self,
        depth: u32,
        [open, close]: [u8; 2],
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
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

    /// A change's headers in their common form: an object whose member names, `operation` and
    /// the two `relation` names are strings without escapes, with at most one `operation` and
    /// one `relation` and no `control` or `event` (a control message, which serde reads);
    /// other members are checked and skipped, as serde ignores them. Read at nesting depth 1,
    /// as a member of the message.
    fn headers(&mut self) -> Option<HeaderFacts<'a>> {
        let mut facts = HeaderFacts {
            control: false,
            operation: None,
            relation: None,
        };
        let (mut seen_operation, mut seen_relation) = (false, false);
        self.container(1, *b"{}", |reader| {
            match reader.member_name()? {
                "operation" if !seen_operation => {
                    seen_operation = true;
                    reader.eat(b'"')?;
                    facts.operation = Operation::parse(reader.name()?);
                }
                "relation" if !seen_relation => {
                    seen_relation = true;
                    reader.eat(b'[')?;
                    reader.whitespace();
                    reader.eat(b'"')?;
                    let schema = reader.name()?;
                    reader.whitespace();
                    reader.eat(b',')?;
                    reader.whitespace();
                    reader.eat(b'"')?;
                    let table = reader.name()?;
                    reader.whitespace();
                    reader.eat(b']')?;
                    facts.relation = Some((Cow::Borrowed(schema), Cow::Borrowed(table)));
                }
                "operation" | "relation" | "control" | "event" => return None,
                _ => reader.skip_value(2)?,
            }
            Some(())
        })?;
        Some(facts)
    }

    /// A row: an object of strings or `null`; each value's origin is counted from `base`,
    /// the index of the message's `{`. Its source's message text is set once the message has
    /// been read whole.
    fn row(&mut self, base: usize) -> Option<Row<'a>> {
        let mut columns = Vec::with_capacity(8);
        self.container(0, *b"{}", |reader| {
            reader.eat(b'"')?;
            let name = reader.text()?;
            reader.whitespace();
            reader.eat(b':')?;
            reader.whitespace();
            let start = reader.at;
            let value = if reader.peek()? == b'n' {
                reader.literal(b"null")?;
                None
            } else {
                reader.eat(b'"')?;
                Some(reader.text()?)
            };
            let origin = Origin {
                start: u32::try_from(start - base).ok()?,
                end: u32::try_from(reader.at - base).ok()?,
                // Borrowed: the string had no escapes, so its text is the token's inside.
                plain: matches!(value, Some(Cow::Borrowed(_))),
            };
            columns.push(Column::new(name, value, Some(origin)));
            Some(())
        })?;
        Some(Row::read(columns, None))
    }

    fn message(&mut self, shape_table: Option<Relation<'a>>) -> Option<Parsed<'a>> {
        let mut message = Message::empty(shape_table);
        let mut control = false;
        let mut seen_headers = false;
        self.whitespace();
        let base = self.at;
        self.container(0, *b"{}", |reader| {
            let name = reader.member_name()?;
            match name {
                "value" if message.value.is_none() => {
                    message.value = Some(reader.row(base)?);
                    message.fields.push(Field::Value);
                }
                "old_value" if message.old_value.is_none() => {
                    message.old_value = Some(reader.row(base)?);
                    message.fields.push(Field::OldValue);
                }
                "value" | "old_value" => return None,
                "headers" if seen_headers => return None,
                _ => {
                    let start = reader.at;
                    if name == "headers" {
                        seen_headers = true;
                        // Checked and read in one pass, as the rest of the message.
                        let facts = reader.headers()?;
                        control = facts.control;
                        message.operation = facts.operation;
                        message.relation = facts.relation;
                    } else {
                        reader.skip_value(1)?;
                    }
                    let raw = reader.text.get(start..reader.at)?;
                    if name == "key" {
                        message.key = Some(raw);
                    }
                    message.fields.push(Field::Other(Cow::Borrowed(name), raw));
                }
            }
            Some(())
        })?;
        let text = self.text.get(base..self.at)?;
        message.text = Some(text);
        for (row, old_value) in [(&mut message.value, false), (&mut message.old_value, true)] {
            if let Some(row) = row {
                row.source = Some(RowSource {
                    message: text,
                    old_value,
                });
            }
        }
        Some(if control {
            Parsed::Control
        } else {
            Parsed::Change(message)
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::parse_from;
    use super::*;

    /// Everything a message holds, to compare two readings.
    fn summary(parsed: &Parsed<'_>) -> String {
        match parsed {
            Parsed::Control => "control".to_owned(),
            Parsed::Change(message) => {
                let fields: Vec<String> = message
                    .fields
                    .iter()
                    .map(|field| match field {
                        Field::Value => "value".to_owned(),
                        Field::OldValue => "old_value".to_owned(),
                        Field::Other(name, raw) => format!("{name}={raw}"),
                    })
                    .collect();
                format!(
                    "{fields:?} {:?} {:?} {:?} {:?} {:?}",
                    message.value,
                    message.old_value,
                    message.key,
                    message.operation,
                    message.relation
                )
            }
        }
    }

    fn by_serde(text: &str) -> Result<String, serde_json::Error> {
        parse_from(serde_json::Deserializer::from_str(text), None).map(|parsed| summary(&parsed))
    }

    /// The reader either leaves `text` to serde or reads it exactly as serde does, alone and
    /// as the prefix of more messages.
    fn agrees_with_serde(text: &str) {
        let serde = by_serde(text);
        if let Some(parsed) = read_whole(text, None) {
            assert_eq!(
                Some(summary(&parsed)),
                serde.as_ref().ok().cloned(),
                "{text:?}"
            );
        }
        // Followed by more, it reads the first message, as serde reads that alone.
        let followed = format!("{text},{{\"a\":");
        if let Some((parsed, len)) = read_prefix(&followed, None) {
            let first = by_serde(followed.get(..len).unwrap()).ok();
            assert_eq!(Some(summary(&parsed)), first, "{text:?}");
            if serde.is_ok() {
                assert_eq!(len, text.trim_end().len(), "{text:?}");
            }
        }
    }

    #[test]
    fn electric_messages_are_read_in_one_pass() {
        for text in [
            r#"{"headers":{"operation":"insert","relation":["public","items"]},"key":"\"public\".\"items\"/\"1\"","value":{"id":"1","note":"a\"b\\c\/d\n\t","gone":null}}"#,
            r#"{"headers":{"operation":"update","relation":["public","items"],"txids":[1,2],"lsn":"9","op_position":0,"last":true},"key":"k","value":{"id":"1"},"old_value":{"id":"0"}}"#,
            r#" { "value" : { } , "headers" : { } } "#,
            "{}",
        ] {
            assert!(read_whole(text, None).is_some(), "{text}");
            agrees_with_serde(text);
        }
    }

    #[test]
    fn other_forms_are_left_to_serde() {
        for text in [
            r#"{"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}"#,
            r#"{"v\u0061lue":{}}"#,
            r#"{"value":{"a":"\u0041"}}"#,
            r#"{"value":{},"value":{}}"#,
            r#"{"headers":{},"headers":{}}"#,
            r#"{"headers":{"operation":null}}"#,
            r#"{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            r#"{"value":{"a":1}}"#,
            r#"{"value":null}"#,
            // Found by the `transform_stream` fuzz target: a row was read from any opening byte.
            r#"{"value": ;"id": "2"}}"#,
            r#"{"value":["a"]}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":1e}"#,
            r#"{"x":-}"#,
            r#"{"x":tru}"#,
            r#"{"x":[1,]}"#,
            r#"{"x":{"a":1,}}"#,
            r#"{"x":1,}"#,
            r#"{"x":"\x"}"#,
            r#"{"x":"\u00g1"}"#,
            "{\"x\":\"\u{1}\"}",
            r#"{"x":1} x"#,
            r#"{"x":1"#,
            "[]",
        ] {
            assert!(read_whole(text, None).is_none(), "{text}");
            agrees_with_serde(text);
        }
    }

    /// Mostly strings the reader takes on, some it leaves to serde or that are not JSON.
    fn json_string() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "\"([a-z é😀,:{}\\[\\]]|\\\\[\"\\\\/bfnrt])*\"",
            1 => "\"([a-z é😀,:{}\\[\\]]|\\\\[\"\\\\/bfnrtx]|\\\\u00[0-9a-fA-F]{2}|\u{1})*\"",
        ]
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            json_string(),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((json_string(), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(name, value)| format!("{name}: {value}"))
                        .collect();
                    format!("{{ {} }}", members.join(" ,"))
                }),
            ]
        })
    }

    fn row() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                json_string(),
                prop_oneof![json_string(), Just("null".to_owned())],
            ),
            0..4,
        )
        .prop_map(|columns| {
            let columns: Vec<String> = columns
                .into_iter()
                .map(|(name, value)| format!("{name}:{value}"))
                .collect();
            format!("{{{}}}", columns.join(","))
        })
    }

    fn message() -> impl Strategy<Value = String> {
        let headers = prop_oneof![
            Just(r#"{"operation":"insert","relation":["public","items"]}"#.to_owned()),
            Just(r#"{"control":"up-to-date"}"#.to_owned()),
            json_value(),
        ];
        let member = prop_oneof![
            headers.prop_map(|value| format!("\"headers\":{value}")),
            row().prop_map(|value| format!("\"value\":{value}")),
            row().prop_map(|value| format!("\"old_value\":{value}")),
            json_string().prop_map(|value| format!("\"key\":{value}")),
            (json_string(), json_value()).prop_map(|(name, value)| format!("{name}:{value}")),
        ];
        proptest::collection::vec(member, 0..5)
            .prop_map(|members| format!("{{{}}}", members.join(",")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_message_is_read_as_serde_reads_it(text in message()) {
            agrees_with_serde(&text);
        }

        #[test]
        fn any_damaged_message_is_read_as_serde_reads_it(
            text in message(),
            at in any::<proptest::sample::Index>(),
            damage in prop_oneof![Just(""), Just("\""), Just("\\"), Just(","), Just("}"), Just("]"), Just("0"), Just(" "), Just(";"), Just("[")],
            cut in any::<bool>(),
        ) {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let (head, tail) = text.split_at(at);
            let tail = if cut { tail.get(1..).unwrap_or(tail) } else { tail };
            let tail = if tail.is_char_boundary(0) { tail } else { "" };
            agrees_with_serde(&format!("{head}{damage}{tail}"));
        }
    }
}
