//! One shape-log message as a transform sees it, read with borrowing and written back only
//! when something changed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

mod reader;
mod write;
pub(crate) use reader::read_prefix;
pub(crate) use write::write_if_changed;
use write::Origin;

/// The operation of a change message (`headers.operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A row entered the shape.
    Insert,
    /// A row changed.
    Update,
    /// A row left the shape.
    Delete,
}

impl Operation {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "insert" => Some(Self::Insert),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// The table a message belongs to: `schema` and `table`, unquoted, as Electric names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Relation<'a> {
    /// The schema, for example `public`.
    pub schema: &'a str,
    /// The table within its schema.
    pub table: &'a str,
}

/// A string that borrows from the input when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// The columns of a row (`value` or `old_value`): each a Postgres text value or SQL `NULL`,
/// in the order Electric sent them.
///
/// Reading does not count as a change. Any `_mut` accessor, [`Row::set`] or [`Row::remove`]
/// marks the row changed, and a message with a changed row is written anew: an unchanged
/// message passes on byte for byte, and in a changed one only the values that differ from
/// what was read are written anew (unless columns were added or removed).
#[derive(Clone, Default)]
pub struct Row<'a> {
    columns: Vec<Column<'a>>,
    changed: bool,
    /// Where the row was read, while its columns' origins still describe it: `None` once a
    /// column is added or removed, and for a row serde read or a transform made.
    source: Option<RowSource<'a>>,
}

/// The message text a row was read from, and as which member.
#[derive(Debug, Clone, Copy)]
struct RowSource<'a> {
    message: &'a str,
    old_value: bool,
}

impl<'a> Row<'a> {
    fn read(columns: Vec<Column<'a>>, source: Option<RowSource<'a>>) -> Self {
        Self {
            columns,
            changed: false,
            source,
        }
    }

    /// Whether the columns' origins point into `message`'s text, as its `value`
    /// (`old_value: false`) or `old_value`: not so for a row moved or cloned from elsewhere,
    /// nor for one whose columns changed in number.
    fn was_read_from(&self, message: &str, old_value: bool) -> bool {
        self.source.is_some_and(|source| {
            // The same text by address, not by content: another message may read alike.
            std::ptr::eq(source.message, message) && source.old_value == old_value
        })
    }
}

/// Columns and whether changed: where a row was read is not part of what it is.
impl PartialEq for Row<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns && self.changed == other.changed
    }
}

impl Eq for Row<'_> {}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.columns)
            .field("changed", &self.changed)
            .finish()
    }
}

/// One column of a row, and where its value was in the message as read.
#[derive(Clone, Eq)]
struct Column<'a> {
    name: Cow<'a, str>,
    value: Option<Cow<'a, str>>,
    /// `None` for a column added by a transform, or read where the message's text was not
    /// kept (by serde).
    origin: Option<Origin>,
}

impl<'a> Column<'a> {
    fn new(name: Cow<'a, str>, value: Option<Cow<'a, str>>, origin: Option<Origin>) -> Self {
        Self {
            name,
            value,
            origin,
        }
    }
}

/// Name and value: where a column was read is not part of what it is.
impl PartialEq for Column<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl fmt::Debug for Column<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("")
            .field(&self.name)
            .field(&self.value)
            .finish()
    }
}

impl<'a> Row<'a> {
    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether a transform changed the row.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The value of `column`: `None` if the row has no such column, `Some(None)` for `NULL`.
    pub fn get(&self, column: &str) -> Option<Option<&str>> {
        self.columns
            .iter()
            .find(|found| found.name == column)
            .map(|found| found.value.as_deref())
    }

    /// The columns and their values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.columns
            .iter()
            .map(|column| (column.name.as_ref(), column.value.as_deref()))
    }

    /// The value of `column` to change in place, if the row has it.
    pub fn get_mut(&mut self, column: &str) -> Option<&mut Option<Cow<'a, str>>> {
        let value = self
            .columns
            .iter_mut()
            .find(|found| found.name == column)
            .map(|found| &mut found.value)?;
        self.changed = true;
        Some(value)
    }

    /// Every column with its value to change in place.
    pub fn values_mut(&mut self) -> impl Iterator<Item = (&str, &mut Option<Cow<'a, str>>)> {
        self.changed = true;
        self.columns
            .iter_mut()
            .map(|column| (column.name.as_ref(), &mut column.value))
    }

    /// Sets `column` to `value` (`None` is `NULL`), adding the column if the row lacks it.
    pub fn set(&mut self, column: &str, value: Option<String>) {
        self.changed = true;
        let value = value.map(Cow::Owned);
        match self.columns.iter_mut().find(|found| found.name == column) {
            Some(found) => found.value = value,
            None => {
                self.columns
                    .push(Column::new(Cow::Owned(column.to_owned()), value, None));
                self.source = None;
            }
        }
    }

    /// Removes `column`, returning whether the row had it.
    pub fn remove(&mut self, column: &str) -> bool {
        let before = self.columns.len();
        self.columns.retain(|found| found.name != column);
        let removed = self.columns.len() != before;
        if removed {
            // The removed value's text is still between the others': the row is written anew.
            self.source = None;
        }
        self.changed |= removed;
        removed
    }
}

impl<'de> Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of column values (strings or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut columns = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    let value = map.next_value::<Option<Text<'de>>>()?;
                    columns.push(Column::new(name, value.map(|Text(text)| text), None));
                }
                Ok(Row::read(columns, None))
            }
        }
        deserializer.deserialize_map(RowVisitor)
    }
}

/// The parts of `headers` a transform needs, as serde reads them.
#[derive(Deserialize)]
struct Headers<'a> {
    #[serde(borrow, default)]
    operation: Option<Text<'a>>,
    #[serde(borrow, default)]
    relation: Option<(Text<'a>, Text<'a>)>,
    #[serde(default)]
    control: Option<IgnoredAny>,
    #[serde(default)]
    event: Option<IgnoredAny>,
}

/// What a message's `headers` say.
struct HeaderFacts<'a> {
    control: bool,
    operation: Option<Operation>,
    relation: Option<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> HeaderFacts<'a> {
    /// Reads `raw`, a JSON value serde_json has already checked as a raw value: the common
    /// form by the one-pass reader, anything else with serde, with the same result or error.
    fn read(raw: &'a str) -> Result<Self, serde_json::Error> {
        if let Some(facts) = reader::read_headers(raw) {
            return Ok(facts);
        }
        let headers: Headers<'a> = serde_json::from_str(raw)?;
        Ok(Self {
            control: headers.control.is_some() || headers.event.is_some(),
            operation: headers
                .operation
                .and_then(|Text(operation)| Operation::parse(&operation)),
            relation: headers
                .relation
                .map(|(Text(schema), Text(table))| (schema, table)),
        })
    }
}

/// Which member of the message a field is, in the order they came.
enum Field<'a> {
    Value,
    OldValue,
    /// A member passed on as it came: its name and its raw JSON text.
    Other(Cow<'a, str>, &'a str),
}

/// A change message, handed to a [`MessageTransform`](super::MessageTransform).
///
/// Control messages (`up-to-date`, `must-refetch`, `snapshot-end`) and move events never
/// reach a transform: they pass on byte for byte.
pub struct Message<'a> {
    fields: Vec<Field<'a>>,
    value: Option<Row<'a>>,
    old_value: Option<Row<'a>>,
    /// The raw JSON text of `key`.
    key: Option<&'a str>,
    operation: Option<Operation>,
    relation: Option<(Cow<'a, str>, Cow<'a, str>)>,
    shape_table: Option<Relation<'a>>,
    discarded: bool,
    /// The message's text as read, from its `{` to its `}`, which the rows' origins point
    /// into; `None` where serde read it.
    text: Option<&'a str>,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Column values may be secrets (plaintext after decryption): keep them out of logs.
        f.debug_struct("Message")
            .field("relation", &self.relation())
            .field("operation", &self.operation)
            .field("discarded", &self.discarded)
            .finish_non_exhaustive()
    }
}

impl<'a> Message<'a> {
    /// A message with no members yet, as a reader starts it.
    fn empty(shape_table: Option<Relation<'a>>) -> Self {
        Self {
            fields: Vec::with_capacity(4),
            value: None,
            old_value: None,
            key: None,
            operation: None,
            relation: None,
            shape_table,
            discarded: false,
            text: None,
        }
    }

    /// The table the message belongs to: `headers.relation` when the message names it, else
    /// the table of the shape request (its `table` query parameter), else `None`.
    pub fn relation(&self) -> Option<Relation<'_>> {
        match &self.relation {
            Some((schema, table)) => Some(Relation { schema, table }),
            None => self.shape_table,
        }
    }

    /// `insert`, `update` or `delete`, if the message says which.
    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    /// The row's key (`"public"."items"/"1"`), if the message has one.
    pub fn key(&self) -> Option<Cow<'a, str>> {
        let raw = self.key?;
        serde_json::from_str::<Text<'a>>(raw)
            .ok()
            .map(|Text(key)| key)
    }

    /// The row's values (`value`), if the message has them.
    pub fn value(&self) -> Option<&Row<'a>> {
        self.value.as_ref()
    }

    /// The row's values to change.
    pub fn value_mut(&mut self) -> Option<&mut Row<'a>> {
        self.value.as_mut()
    }

    /// The changed columns' previous values (`old_value`, with `replica=full`).
    pub fn old_value(&self) -> Option<&Row<'a>> {
        self.old_value.as_ref()
    }

    /// The previous values to change.
    pub fn old_value_mut(&mut self) -> Option<&mut Row<'a>> {
        self.old_value.as_mut()
    }

    /// `value` and `old_value`, those the message has, to change alike (for example to
    /// decrypt the same columns in both).
    pub fn rows_mut(&mut self) -> impl Iterator<Item = &mut Row<'a>> {
        self.value.iter_mut().chain(self.old_value.iter_mut())
    }

    /// Leaves this message out of the response.
    pub fn discard(&mut self) {
        self.discarded = true;
    }

    /// Whether [`Message::discard`] was called.
    pub fn is_discarded(&self) -> bool {
        self.discarded
    }

    /// Whether a row was changed, or replaced by another (a transform's own, a clone, the
    /// other member's; seen where the reader kept the message's text).
    fn is_changed(&self) -> bool {
        let changed = |row: &Row<'_>, old_value| {
            row.is_changed()
                || self
                    .text
                    .is_some_and(|text| !row.was_read_from(text, old_value))
        };
        self.value.as_ref().is_some_and(|row| changed(row, false))
            || self
                .old_value
                .as_ref()
                .is_some_and(|row| changed(row, true))
    }
}

/// A message as read: a change for a transform, or a control message to pass on.
// Returned by value and taken apart at once: boxing the change would cost an allocation per
// message on the transform's hot path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed<'a> {
    Change(Message<'a>),
    Control,
}

/// Reads one message. Every message is read in full, so malformed JSON is always caught.
pub(crate) fn parse<'a>(
    bytes: &'a [u8],
    shape_table: Option<Relation<'a>>,
) -> Result<Parsed<'a>, serde_json::Error> {
    // UTF-8 checked once for the whole message is cheaper than string by string; a message
    // that is not UTF-8 is read byte-wise as ever, so that its error stays the same.
    match std::str::from_utf8(bytes) {
        Ok(text) => match reader::read_whole(text, shape_table) {
            Some(parsed) => Ok(parsed),
            None => parse_from(serde_json::Deserializer::from_str(text), shape_table),
        },
        Err(_) => parse_from(serde_json::Deserializer::from_slice(bytes), shape_table),
    }
}

fn parse_from<'a, R: serde_json::de::Read<'a>>(
    mut deserializer: serde_json::Deserializer<R>,
    shape_table: Option<Relation<'a>>,
) -> Result<Parsed<'a>, serde_json::Error> {
    struct MessageVisitor<'a>(Option<Relation<'a>>);
    impl<'de> Visitor<'de> for MessageVisitor<'de> {
        type Value = Parsed<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a shape-log message object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut message = Message::empty(self.0);
            let mut control = false;
            while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                match name.as_ref() {
                    "value" if message.value.is_none() => {
                        message.value = Some(map.next_value::<Row<'de>>()?);
                        message.fields.push(Field::Value);
                    }
                    "old_value" if message.old_value.is_none() => {
                        message.old_value = Some(map.next_value::<Row<'de>>()?);
                        message.fields.push(Field::OldValue);
                    }
                    "value" | "old_value" => {
                        return Err(de::Error::custom("duplicate row member"));
                    }
                    _ => {
                        let raw = map.next_value::<&'de RawValue>()?.get();
                        if name == "headers" {
                            let facts = HeaderFacts::read(raw).map_err(de::Error::custom)?;
                            control = facts.control;
                            message.operation = facts.operation;
                            message.relation = facts.relation;
                        } else if name == "key" {
                            message.key = Some(raw);
                        }
                        message.fields.push(Field::Other(name, raw));
                    }
                }
            }
            Ok(if control {
                Parsed::Control
            } else {
                Parsed::Change(message)
            })
        }
    }
    let parsed = deserializer.deserialize_map(MessageVisitor(shape_table))?;
    deserializer.end()?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The change message `bytes` holds (shared with `write`'s tests).
    pub(super) fn change(bytes: &[u8]) -> Message<'_> {
        match parse(bytes, None).unwrap() {
            Parsed::Change(message) => message,
            Parsed::Control => panic!("expected a change"),
        }
    }

    #[test]
    fn reads_relation_operation_key_and_rows() {
        let raw = br#"{"headers":{"operation":"update","relation":["public","items"]},"key":"\"public\".\"items\"/\"1\"","value":{"id":"1","title":null},"old_value":{"title":"a\"b"}}"#;
        let message = change(raw);
        assert_eq!(
            message.relation(),
            Some(Relation {
                schema: "public",
                table: "items"
            })
        );
        assert_eq!(message.operation(), Some(Operation::Update));
        assert_eq!(message.key().as_deref(), Some(r#""public"."items"/"1""#));
        let value = message.value().unwrap();
        assert_eq!(value.get("id"), Some(Some("1")));
        assert_eq!(value.get("title"), Some(None));
        assert_eq!(value.get("missing"), None);
        assert_eq!(
            message.old_value().unwrap().get("title"),
            Some(Some("a\"b"))
        );
    }

    #[test]
    fn shape_table_is_the_fallback_relation() {
        let table = Relation {
            schema: "public",
            table: "issues",
        };
        let Parsed::Change(message) = parse(br#"{"key":"k","value":{}}"#, Some(table)).unwrap()
        else {
            panic!("expected a change")
        };
        assert_eq!(message.relation(), Some(table));
    }

    #[test]
    fn control_and_move_messages_are_not_changes() {
        for raw in [
            &br#"{"headers":{"control":"up-to-date","global_last_seen_lsn":"1"}}"#[..],
            br#"{"headers":{"control":"must-refetch"}}"#,
            br#"{"headers":{"event":"move-out","patterns":[]}}"#,
        ] {
            assert!(matches!(parse(raw, None).unwrap(), Parsed::Control));
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        for raw in [
            &br#"{"value":{"a":1}}"#[..],
            br#"{"value":{"a":"1"}"#,
            br#"{"value":{"a":"1"}}x"#,
            br#"{"headers":{"relation":["public"]}}"#,
            br#"{"value":{},"value":{}}"#,
            br#"[]"#,
            b"{\"value\":{\"a\":\"\xff\"}}",
        ] {
            assert!(
                parse(raw, None).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn row_edits_mark_changes() {
        let mut message = change(br#"{"value":{"a":"1","b":"2"}}"#);
        let row = message.value_mut().unwrap();
        assert!(!row.is_changed());
        assert!(!row.remove("zzz"));
        assert!(!row.is_changed());
        assert!(row.remove("a"));
        assert!(row.is_changed());
        row.set("c", None);
        assert_eq!(
            row.iter().collect::<Vec<_>>(),
            [("b", Some("2")), ("c", None)]
        );
        assert_eq!(row.len(), 2);
    }

    /// Control, operation and relation as serde reads them, or serde's error.
    type Read = Result<(bool, Option<Operation>, Option<(String, String)>), String>;

    fn by_serde(raw: &str) -> Read {
        let headers: Headers<'_> = serde_json::from_str(raw).map_err(|error| error.to_string())?;
        Ok((
            headers.control.is_some() || headers.event.is_some(),
            headers
                .operation
                .and_then(|Text(operation)| Operation::parse(&operation)),
            headers
                .relation
                .map(|(Text(schema), Text(table))| (schema.into_owned(), table.into_owned())),
        ))
    }

    #[test]
    fn header_scan_agrees_with_serde_or_leaves_it_to_serde() {
        let scanned = [
            r#"{"operation":"insert","relation":["public","items"]}"#,
            r#" { "relation" : [ "s" , "t" ] , "operation" : "delete" } "#,
            r#"{"operation":"update","relation":["public","items"],"txids":[1,2],"lsn":"9","op_position":0,"last":true,"x":{"a":["}",{"b":null}]},"y":-1.5e3}"#,
            r#"{"operation":"truncate"}"#,
            r#"{"relation":["a b","ü"]}"#,
            r#"{}"#,
            r#"{"tags":["a\"b"],"operation":"insert"}"#,
        ];
        for raw in scanned {
            let facts = reader::read_headers(raw).unwrap_or_else(|| panic!("not scanned: {raw}"));
            let relation = facts
                .relation
                .map(|(schema, table)| (schema.into_owned(), table.into_owned()));
            assert_eq!(
                Ok((facts.control, facts.operation, relation)),
                by_serde(raw),
                "{raw}"
            );
        }
        let left_to_serde = [
            r#"{"control":"up-to-date"}"#,
            r#"{"event":"move-out"}"#,
            r#"{"control":null,"operation":"insert"}"#,
            r#"{"operation":"ins\u0065rt"}"#,
            r#"{"\u006fperation":"insert"}"#,
            r#"{"operation":"insert","operation":"delete"}"#,
            r#"{"relation":["public"]}"#,
            r#"{"relation":["public","items","x"]}"#,
            r#"{"relation":null}"#,
            r#"{"operation":null}"#,
            r#"{"operation":1}"#,
        ];
        for raw in left_to_serde {
            assert!(reader::read_headers(raw).is_none(), "{raw}");
            // The reading as a whole is serde's: its result, or its error.
            let read = HeaderFacts::read(raw).map(|facts| (facts.control, facts.operation));
            let serde = by_serde(raw).map(|(control, operation, _)| (control, operation));
            assert_eq!(read.map_err(|error| error.to_string()), serde, "{raw}");
        }
    }
}
