//! Writing a changed message back: spliced into its text as read, only the values a transform
//! changed written anew, or (a row that gained or lost a column, a message serde read) written
//! member by member. Strings are escaped exactly as `serde_json` escapes them.

use super::{reader, Column, Field, Message, Row};

/// Where a column's value was in its message's text (a string with its quotes, or `null`),
/// counted from the message's `{`. `u32`: it is in every column the reader reads, and a
/// message is far below 4 GiB (`max_message_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    pub(super) start: u32,
    pub(super) end: u32,
    /// The string had no escapes: its text is the token's inside.
    pub(super) plain: bool,
}

impl Column<'_> {
    /// Whether the value is still the one read at `origin` in `text`. A string read with
    /// escapes counts as changed: it is written anew, to the same JSON value.
    fn is_as_read(&self, text: &str, origin: Origin) -> bool {
        let Some(token) = text.get(origin.start as usize..origin.end as usize) else {
            return false;
        };
        match &self.value {
            None => token == "null",
            Some(value) => {
                origin.plain
                    && token
                        .strip_prefix('"')
                        .and_then(|inner| inner.strip_suffix('"'))
                        == Some(value.as_ref())
            }
        }
    }
}

impl Row<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        for (index, column) in self.columns.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_str(out, &column.name)?;
            out.push(b':');
            match &column.value {
                Some(text) => write_str(out, text)?,
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(())
    }
}

impl Message<'_> {
    /// Writes the message with its changed rows: spliced into its text as read where it can
    /// be, else written anew (members other than the rows copied as they came).
    pub(super) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let mark = out.len();
        if self.splice_into(out).is_some() {
            return Ok(());
        }
        out.truncate(mark);
        self.write_anew(out)
    }

    /// The message's text as read, with only the values that differ from what was read
    /// written anew. `None` (with part of it written) when it cannot be: the message was read
    /// by serde, or a row gained or lost a column or is not the one read in its place.
    fn splice_into(&self, out: &mut Vec<u8>) -> Option<()> {
        let text = self.text?;
        let mut copied = 0;
        for field in &self.fields {
            let (row, old_value) = match field {
                Field::Value => (self.value.as_ref()?, false),
                Field::OldValue => (self.old_value.as_ref()?, true),
                Field::Other(..) => continue,
            };
            if !row.was_read_from(text, old_value) {
                return None;
            }
            // Origins increase through a row, and rows come in the order of `fields`.
            let mut after = copied;
            for column in &row.columns {
                let origin = column.origin?;
                if (origin.start as usize) < after {
                    return None;
                }
                after = origin.end as usize;
                if column.is_as_read(text, origin) {
                    continue;
                }
                out.extend_from_slice(text.get(copied..origin.start as usize)?.as_bytes());
                match &column.value {
                    Some(value) => write_str(out, value).ok()?,
                    None => out.extend_from_slice(b"null"),
                }
                copied = origin.end as usize;
            }
        }
        out.extend_from_slice(text.get(copied..)?.as_bytes());
        Some(())
    }

    /// The message written member by member.
    fn write_anew(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        for (index, field) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let (name, row) = match field {
                Field::Value => ("value", self.value.as_ref()),
                Field::OldValue => ("old_value", self.old_value.as_ref()),
                Field::Other(name, raw) => {
                    write_str(out, name)?;
                    out.push(b':');
                    out.extend_from_slice(raw.as_bytes());
                    continue;
                }
            };
            write_str(out, name)?;
            out.push(b':');
            match row {
                Some(row) => row.write_json(out)?,
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Ok(())
    }
}

/// Writes `message` into `out` if a transform changed it; `Ok(false)` if it is unchanged.
pub(crate) fn write_if_changed(
    message: &Message<'_>,
    out: &mut Vec<u8>,
) -> Result<bool, serde_json::Error> {
    if !message.is_changed() {
        return Ok(false);
    }
    message.write_json(out)?;
    Ok(true)
}

/// Writes `text` as a JSON string, byte for byte as `serde_json` writes it: most values need
/// no escape, and the pieces between escapes are copied whole.
fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // No early exit: the whole check vectorises, and values are short.
    let needs_escape = bytes.iter().fold(false, |escape, &byte| {
        escape | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    });
    if !needs_escape {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return Ok(());
    }
    let mut from = 0;
    while let Some(at) = reader::string_special(bytes, from) {
        out.extend_from_slice(bytes.get(from..at).unwrap_or_default());
        let byte = bytes.get(at).copied().unwrap_or_default();
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                let hex = |nibble: u8| HEX_DIGITS.get(usize::from(nibble)).copied();
                out.extend_from_slice(b"\\u00");
                out.extend(hex(byte >> 4));
                out.extend(hex(byte & 0xf));
            }
        }
        from = at + 1;
    }
    out.extend_from_slice(bytes.get(from..).unwrap_or_default());
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::tests::change;
    use super::*;

    #[test]
    fn unchanged_message_is_not_written() {
        let raw = br#"{"value":{"a":"1"}}"#;
        let mut message = change(raw);
        assert_eq!(message.value().unwrap().iter().count(), 1);
        let mut out = Vec::new();
        assert!(!write_if_changed(&message, &mut out).unwrap());
        message.value_mut().unwrap().set("a", Some("2".into()));
        assert!(write_if_changed(&message, &mut out).unwrap());
        assert_eq!(out, br#"{"value":{"a":"2"}}"#);
    }

    /// Appends `suffix` to every non-null value of the message's `value`.
    fn append_to_values(message: &mut Message<'_>, suffix: &str) {
        for (_, value) in message.value_mut().unwrap().values_mut() {
            if let Some(text) = value {
                *text = Cow::Owned(format!("{text}{suffix}"));
            }
        }
    }

    fn written(message: &Message<'_>) -> String {
        let mut out = Vec::new();
        assert!(write_if_changed(message, &mut out).unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_changed_values_are_written_anew_into_the_message_as_read() {
        let raw = br#"{ "key" : "k\u0041", "value":{"a":"x", "b" : null,"c":"same"}, "old_value":{"a":"w"}, "headers":{"operation":"update"} }"#;
        let mut message = change(raw);
        append_to_values(&mut message, "\n\u{1}");
        // Set back to what was read: its bytes stay.
        message.value_mut().unwrap().set("c", Some("same".into()));
        message.old_value_mut().unwrap().set("a", None);
        assert_eq!(
            written(&message),
            r#"{ "key" : "k\u0041", "value":{"a":"x\n\u0001", "b" : null,"c":"same"}, "old_value":{"a":null}, "headers":{"operation":"update"} }"#
        );

        // A value that was NULL, and one read with escapes (written anew, the same value).
        let mut message = change(br#"{"value":{"a":null,"b":"q\"\u0041"}}"#);
        message.value_mut().unwrap().set("a", Some("1".into()));
        let b = message.value_mut().unwrap().get_mut("b").unwrap();
        assert_eq!(b.as_deref(), Some("q\"A"));
        assert_eq!(written(&message), r#"{"value":{"a":"1","b":"q\"A"}}"#);
    }

    #[test]
    fn a_row_that_gains_or_loses_a_column_is_written_anew_member_by_member() {
        let raw = br#"{ "key" : "k\u0041", "value":{"a":"x","b":null}, "headers":{"operation":"insert"} }"#;
        let mut message = change(raw);
        append_to_values(&mut message, "\n\u{1}");
        message.value_mut().unwrap().set("c", Some("new".into()));
        assert_eq!(
            written(&message),
            r#"{"key":"k\u0041","value":{"a":"x\n\u0001","b":null,"c":"new"},"headers":{"operation":"insert"}}"#
        );

        let mut message = change(raw);
        assert!(message.value_mut().unwrap().remove("b"));
        assert_eq!(
            written(&message),
            r#"{"key":"k\u0041","value":{"a":"x"},"headers":{"operation":"insert"}}"#
        );
    }

    #[test]
    fn a_row_emptied_of_its_columns_loses_them_all() {
        let mut message = change(br#"{"old_value":{"secret":"s"}, "value":{"a":"1"}}"#);
        assert!(message.old_value_mut().unwrap().remove("secret"));
        assert_eq!(written(&message), r#"{"old_value":{},"value":{"a":"1"}}"#);
    }

    #[test]
    fn a_row_moved_from_another_member_or_message_is_written_as_it_now_is() {
        let raw = br#"{"value":{"a":"1","b":"x"}, "old_value":{"a":"0","b":"x"}}"#;
        // `value`'s row, changed, put in `old_value`: its origins point into `value`.
        let mut message = change(raw);
        let mut row = message.value().unwrap().clone();
        row.set("a", Some("2".into()));
        *message.old_value_mut().unwrap() = row;
        assert_eq!(
            written(&message),
            r#"{"value":{"a":"1","b":"x"},"old_value":{"a":"2","b":"x"}}"#
        );

        // Swapped, neither row changed in itself.
        let mut message = change(raw);
        let value = message.value.take();
        message.value = std::mem::replace(&mut message.old_value, value);
        assert_eq!(
            written(&message),
            r#"{"value":{"a":"0","b":"x"},"old_value":{"a":"1","b":"x"}}"#
        );

        // From another message read alike (the same offsets, other text).
        let other = change(br#"{"value":{"a":"7","b":"y"}, "old_value":{"a":"0","b":"x"}}"#);
        let mut message = change(raw);
        *message.value_mut().unwrap() = other.value().unwrap().clone();
        assert_eq!(
            written(&message),
            r#"{"value":{"a":"7","b":"y"},"old_value":{"a":"0","b":"x"}}"#
        );
    }

    #[test]
    fn a_message_read_by_serde_is_written_anew() {
        // A `\u` escape in a member name: the one-pass reader leaves the message to serde.
        let mut message = change(br#"{"value":{"a":"x"}, "\u006bey":"k"}"#);
        assert!(message.text.is_none());
        append_to_values(&mut message, "!");
        assert_eq!(written(&message), r#"{"value":{"a":"x!"},"key":"k"}"#);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Spliced or written anew, the message is the same JSON value.
        #[test]
        fn splicing_and_writing_anew_give_the_same_json(
            values in proptest::collection::vec(proptest::option::of("(?s)(.|[\"\\\\\\x00-\\x1f])*"), 1..5),
            edits in proptest::collection::vec(proptest::option::of(proptest::option::of("[a-z\"\\\\\n]*")), 1..5),
        ) {
            let row: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .enumerate()
                .map(|(index, value)| (format!("c{index}"), serde_json::json!(value)))
                .collect();
            let raw = serde_json::to_vec(&serde_json::json!({"headers":{"operation":"insert"},"value":row}))
                .unwrap();
            let mut message = change(&raw);
            for (index, edit) in edits.into_iter().enumerate() {
                if let Some(edit) = edit {
                    message.value_mut().unwrap().set(&format!("c{index}"), edit);
                }
            }
            if message.is_changed() {
                let mut spliced = Vec::new();
                message.write_json(&mut spliced).unwrap();
                let mut anew = Vec::new();
                message.write_anew(&mut anew).unwrap();
                let spliced: serde_json::Value = serde_json::from_slice(&spliced).unwrap();
                let anew: serde_json::Value = serde_json::from_slice(&anew).unwrap();
                proptest::prop_assert_eq!(spliced, anew);
            }
        }
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}\u{1f}",
            "ü€😀",
            "\u{7f}/",
            "\u{0}\u{8}\u{c}\n\r\t\u{b}\u{1b}",
            "x\"\\\"\\y",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text).unwrap();
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in "(?s)(.|[\"\\\\\\x00-\\x1f])*") {
            let mut out = Vec::new();
            write_str(&mut out, &text).unwrap();
            proptest::prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }
    }
}
