//! Postgres identifiers as Electric reads them in `table`, `columns` and `queryable_columns`.
//!
//! Unquoted identifiers must match `^[\pL_][\pL\pM_0-9$]*$` and are lowercased (ASCII only,
//! as Postgres does); quoted ones keep their case, `""` inside quotes is one `"`, and a `.` or
//! `,` inside quotes is part of the name. Names longer than 63 bytes are refused.

use std::fmt;

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Postgres' `NAMEDATALEN - 1`: the longest identifier, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// One Postgres identifier, normalised: the name as the database knows it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// Parses one identifier, quoted or not, the way Electric does.
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let name = if let Some(inner) = text
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|_| text.len() >= 2)
        {
            unquote(inner)?
        } else {
            if text.is_empty() {
                return Err(IdentifierError::Empty);
            }
            if !is_valid_unquoted(text) {
                return Err(IdentifierError::InvalidUnquoted);
            }
            text.to_ascii_lowercase()
        };
        Self::new(name)
    }

    /// An identifier from a name as the database knows it (no quoting, case kept).
    pub fn new(name: impl Into<String>) -> Result<Self, IdentifierError> {
        let name = name.into();
        if name.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if name.len() > MAX_IDENTIFIER_BYTES {
            return Err(IdentifierError::TooLong);
        }
        if name.contains('\0') {
            return Err(IdentifierError::InvalidUnquoted);
        }
        Ok(Self(name))
    }

    /// The name as the database knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identifier as Electric reads it back: bare when it is plain lowercase, quoted
    /// otherwise.
    pub fn to_sql(&self) -> String {
        let mut sql = String::with_capacity(self.0.len() + 2);
        self.write_sql(&mut sql);
        sql
    }

    /// [`Identifier::to_sql`], appended to `out` (queries are built on every request).
    fn write_sql(&self, out: &mut String) {
        let plain = self.0.bytes().enumerate().all(|(index, byte)| {
            byte == b'_' || byte.is_ascii_lowercase() || (index > 0 && byte.is_ascii_digit())
        });
        if plain {
            out.push_str(&self.0);
            return;
        }
        out.push('"');
        let mut pieces = self.0.split('"');
        out.push_str(pieces.next().unwrap_or_default());
        for piece in pieces {
            out.push_str("\"\"");
            out.push_str(piece);
        }
        out.push('"');
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({:?})", self.0)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sql())
    }
}

fn unquote(inner: &str) -> Result<String, IdentifierError> {
    let mut name = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '"' {
            // Inside quotes a quote only stands doubled.
            if chars.next() != Some('"') {
                return Err(IdentifierError::UnescapedQuote);
            }
        }
        name.push(ch);
    }
    if name.is_empty() {
        return Err(IdentifierError::Empty);
    }
    Ok(name)
}

fn is_valid_unquoted(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|ch| ch == '_' || is_letter(ch))
        && chars.all(|ch| ch == '_' || ch == '$' || ch.is_ascii_digit() || is_letter_or_mark(ch))
}

// Of ASCII, only `A-Za-z` are letters and nothing is a mark: the Unicode tables are read only
// for the rest (they were 2.5% of a policy decision's time, for names that are all ASCII).
fn is_letter(ch: char) -> bool {
    match ch.is_ascii() {
        true => ch.is_ascii_alphabetic(),
        false => ch.general_category_group() == GeneralCategoryGroup::Letter,
    }
}

fn is_letter_or_mark(ch: char) -> bool {
    match ch.is_ascii() {
        true => ch.is_ascii_alphabetic(),
        false => matches!(
            ch.general_category_group(),
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark
        ),
    }
}

/// Splits `text` on `separator` outside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, ch) in text.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == separator && !quoted {
            parts.push(text.get(start..index).unwrap_or_default());
            start = index + ch.len_utf8();
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// `""` or nothing at all.
    #[error("Invalid zero-length delimited identifier")]
    Empty,
    /// An unquoted identifier with characters outside `[\pL_][\pL\pM_0-9$]*`.
    #[error("Invalid unquoted identifier contains special characters")]
    InvalidUnquoted,
    /// A lone `"` inside a quoted identifier.
    #[error("Invalid identifier with unescaped quote")]
    UnescapedQuote,
    /// Longer than 63 bytes.
    #[error("Identifier is longer than 63 bytes")]
    TooLong,
    /// A table name with more than two dot-separated parts.
    #[error("Table name has more than two parts")]
    TooManyParts,
}

/// A table as Electric names it: schema and name, `public` when no schema is given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    schema: Identifier,
    name: Identifier,
}

impl TableName {
    /// Parses `items`, `public.items`, `"public"."items"` or `"My.Table"`.
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        match split_outside_quotes(text, '.').as_slice() {
            [name] => Ok(Self {
                schema: public(),
                name: Identifier::parse(name)?,
            }),
            [schema, name] => Ok(Self {
                schema: Identifier::parse(schema)?,
                name: Identifier::parse(name)?,
            }),
            _ => Err(IdentifierError::TooManyParts),
        }
    }

    /// A table from its schema and name.
    pub fn new(schema: Identifier, name: Identifier) -> Self {
        Self { schema, name }
    }

    /// The schema.
    pub fn schema(&self) -> &Identifier {
        &self.schema
    }

    /// The table's name within its schema.
    pub fn name(&self) -> &Identifier {
        &self.name
    }

    /// `schema.name`, each part quoted when needed, as sent in the `table` param.
    pub fn to_param(&self) -> String {
        let mut param = String::with_capacity(self.schema.0.len() + self.name.0.len() + 5);
        self.schema.write_sql(&mut param);
        param.push('.');
        self.name.write_sql(&mut param);
        param
    }
}

fn public() -> Identifier {
    Identifier("public".to_owned())
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableName({})", self.to_param())
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_param())
    }
}

impl std::str::FromStr for TableName {
    type Err = IdentifierError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl std::str::FromStr for Identifier {
    type Err = IdentifierError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Parses a `columns`-style list: identifiers separated by commas outside quotes.
pub fn parse_column_list(text: &str) -> Result<Vec<Identifier>, IdentifierError> {
    split_outside_quotes(text, ',')
        .into_iter()
        .map(Identifier::parse)
        .collect()
}

/// Renders a column list the way [`parse_column_list`] reads it.
pub fn render_column_list(columns: &[Identifier]) -> String {
    let mut list = String::with_capacity(columns.iter().map(|column| column.0.len() + 1).sum());
    for (index, column) in columns.iter().enumerate() {
        if index > 0 {
            list.push(',');
        }
        column.write_sql(&mut list);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> TableName {
        TableName::parse(text).unwrap()
    }

    #[test]
    fn table_names_that_name_public_items() {
        let expected = table("public.items");
        for text in [
            "items",
            "public.items",
            "\"public\".\"items\"",
            "Items",
            "PUBLIC.ITEMS",
        ] {
            assert_eq!(table(text), expected, "{text}");
        }
        assert_eq!(expected.schema().as_str(), "public");
        assert_eq!(expected.name().as_str(), "items");
    }

    #[test]
    fn quoted_names_keep_case_and_dots() {
        assert_ne!(table("\"Items\""), table("items"));
        assert_eq!(table("\"Items\"").name().as_str(), "Items");
        let dotted = table("\"my.table\"");
        assert_eq!(dotted.schema().as_str(), "public");
        assert_eq!(dotted.name().as_str(), "my.table");
        assert_eq!(table("\"a\"\"b\"").name().as_str(), "a\"b");
    }

    #[test]
    fn bad_table_names_are_refused() {
        assert_eq!(
            TableName::parse("a.b.c"),
            Err(IdentifierError::TooManyParts)
        );
        assert_eq!(TableName::parse(""), Err(IdentifierError::Empty));
        assert_eq!(TableName::parse("\"\""), Err(IdentifierError::Empty));
        assert_eq!(
            TableName::parse("\"a\"b\""),
            Err(IdentifierError::UnescapedQuote)
        );
        assert_eq!(
            TableName::parse("foo bar"),
            Err(IdentifierError::InvalidUnquoted)
        );
        assert_eq!(
            TableName::parse("1abc"),
            Err(IdentifierError::InvalidUnquoted)
        );
        assert_eq!(
            TableName::parse("a;drop"),
            Err(IdentifierError::InvalidUnquoted)
        );
        assert_eq!(TableName::parse("items."), Err(IdentifierError::Empty));
    }

    #[test]
    fn identifier_of_64_bytes_is_refused_and_63_accepted() {
        assert_eq!(
            Identifier::parse(&"a".repeat(64)),
            Err(IdentifierError::TooLong)
        );
        assert_eq!(
            Identifier::parse(&format!("\"{}\"", "A".repeat(64))),
            Err(IdentifierError::TooLong)
        );
        assert!(Identifier::parse(&"a".repeat(63)).is_ok());
        // bytes, not characters: 32 two-byte letters are 64 bytes
        assert_eq!(
            Identifier::parse(&"é".repeat(32)),
            Err(IdentifierError::TooLong)
        );
    }

    #[test]
    fn the_ascii_shortcut_agrees_with_the_unicode_tables() {
        for ch in (0..=0x7f_u8).map(char::from) {
            let group = ch.general_category_group();
            assert_eq!(
                is_letter(ch),
                group == GeneralCategoryGroup::Letter,
                "{ch:?}"
            );
            assert_eq!(
                is_letter_or_mark(ch),
                matches!(
                    group,
                    GeneralCategoryGroup::Letter | GeneralCategoryGroup::Mark
                ),
                "{ch:?}"
            );
        }
    }

    #[test]
    fn unicode_letters_and_marks_as_electric_allows() {
        assert_eq!(Identifier::parse("café").unwrap().as_str(), "café");
        assert_eq!(Identifier::parse("a$1").unwrap().as_str(), "a$1");
        assert!(Identifier::parse("$a").is_err());
        // ASCII-only lowercasing, as Postgres does
        assert_eq!(Identifier::parse("ÉTÉ").unwrap().as_str(), "ÉtÉ");
    }

    #[test]
    fn column_lists_split_outside_quotes() {
        let quoted = parse_column_list("\"id\",\"Title\"").unwrap();
        let bare = parse_column_list("id,title").unwrap();
        assert_eq!(quoted[0], bare[0]);
        assert_ne!(
            quoted[1], bare[1],
            "\"Title\" keeps its case, title does not"
        );
        assert_eq!(quoted[1].as_str(), "Title");
        let with_comma = parse_column_list("\"a,b\",c").unwrap();
        assert_eq!(with_comma.len(), 2);
        assert_eq!(with_comma[0].as_str(), "a,b");
        assert!(parse_column_list("id,,title").is_err());
    }

    #[test]
    fn rendering_reads_back_the_same() {
        for text in [
            "items",
            "\"Items\"",
            "\"a\"\"b\"",
            "\"my.table\"",
            "\"has space\"",
            "café",
            "\"select\"",
        ] {
            let ident = Identifier::parse(text).unwrap();
            assert_eq!(Identifier::parse(&ident.to_sql()).unwrap(), ident, "{text}");
        }
        let t = table("\"S\".\"T.x\"");
        assert_eq!(TableName::parse(&t.to_param()).unwrap(), t);
        // Exactly as Electric reads them back: quotes doubled, plain names bare.
        assert_eq!(t.to_param(), "\"S\".\"T.x\"");
        assert_eq!(table("items").to_param(), "public.items");
        let columns = parse_column_list("id,\"a\"\"b\",\"Has Space\"").unwrap();
        assert_eq!(render_column_list(&columns), "id,\"a\"\"b\",\"Has Space\"");
        assert_eq!(render_column_list(&[]), "");
    }
}
