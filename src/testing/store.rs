//! Tables, rows, the change log and the shapes served from it.
//!
//! Every change made through the stand-in's API is one transaction with one operation, logged
//! at offset `<tx>_0` where `tx` counts up from 1 (the stand-in's LSN). A shape remembers the
//! rows it matched when it was created (its snapshot, served at offset `-1` and ending at
//! `0_inf`) and reads every later change of its table from the log, filtered by its where
//! clause at read time.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{LogOffset, Replica, TableName};

use super::eval::Kind;
use super::filter::ShapeFilter;

/// One column of a [`TableSchema`]: name, Postgres type, and constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    pg_type: String,
    primary_key: bool,
    not_null: bool,
}

impl Column {
    /// A nullable column. `name` is the name as the database knows it (no quoting); `pg_type`
    /// is the type as Electric reports it in `electric-schema` (`int8`, `text`, `bool`, ...).
    pub fn new(name: impl Into<String>, pg_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            pg_type: pg_type.into(),
            primary_key: false,
            not_null: false,
        }
    }

    /// Makes the column part of the primary key (which implies `NOT NULL`). Primary-key
    /// columns are numbered in table order.
    #[must_use]
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self.not_null = true;
        self
    }

    /// Makes the column `NOT NULL`.
    #[must_use]
    pub fn not_null(mut self) -> Self {
        self.not_null = true;
        self
    }
}

/// A table definition for [`ElectricStandIn::create_table`](super::ElectricStandIn::create_table).
///
/// ```
/// use tower_electric::testing::{Column, TableSchema};
///
/// let items = TableSchema::new("items")
///     .column(Column::new("id", "int8").primary_key())
///     .column(Column::new("title", "text").not_null());
/// # let _ = items;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    name: String,
    columns: Vec<Column>,
}

impl TableSchema {
    /// The table name as given.
    pub(crate) fn table_text(&self) -> &str {
        &self.name
    }
}

impl TableSchema {
    /// A table named as the `table` param names it: `items`, `public.items`, `"Items"`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            columns: Vec::new(),
        }
    }

    /// Adds a column.
    #[must_use]
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }
}

/// A row, or part of one: column name → value in Postgres text format (`None` is `NULL`).
///
/// ```
/// use tower_electric::testing::Row;
///
/// let row = Row::from([("id", "1"), ("title", "a")]).with_null("note");
/// assert_eq!(row.get("title"), Some(Some("a")));
/// assert_eq!(row.get("note"), Some(None));
/// assert_eq!(row.get("missing"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    values: BTreeMap<String, Option<String>>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a column to a value.
    #[must_use]
    pub fn with(mut self, column: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(column.into(), Some(value.into()));
        self
    }

    /// Sets a column to `NULL`.
    #[must_use]
    pub fn with_null(mut self, column: impl Into<String>) -> Self {
        self.values.insert(column.into(), None);
        self
    }

    /// The value of `column`: `None` when the row has no such column, `Some(None)` for `NULL`.
    pub fn get(&self, column: &str) -> Option<Option<&str>> {
        self.values.get(column).map(Option::as_deref)
    }

    /// The columns and values, by column name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.values
            .iter()
            .map(|(column, value)| (column.as_str(), value.as_deref()))
    }

    fn set(&mut self, column: &str, value: Option<String>) {
        self.values.insert(column.to_owned(), value);
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Row {
    fn from(pairs: [(&str, &str); N]) -> Self {
        pairs
            .into_iter()
            .map(|(column, value)| (column.to_owned(), Some(value.to_owned())))
            .collect()
    }
}

impl<const N: usize> From<[(&str, Option<&str>); N]> for Row {
    fn from(pairs: [(&str, Option<&str>); N]) -> Self {
        pairs
            .into_iter()
            .map(|(column, value)| (column.to_owned(), value.map(str::to_owned)))
            .collect()
    }
}

impl FromIterator<(String, Option<String>)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Option<String>)>>(iter: I) -> Self {
        Self {
            values: iter.into_iter().collect(),
        }
    }
}

/// Why a call to the stand-in's data API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandInError {
    /// The table name is not a valid `table` param.
    #[error("invalid table name {0:?}")]
    InvalidTableName(String),
    /// No such table.
    #[error("table {0} does not exist")]
    UnknownTable(String),
    /// A table of that name exists already.
    #[error("table {0} exists already")]
    TableExists(String),
    /// The table definition is unusable (no columns, no primary key, a repeated column).
    #[error("invalid table definition: {0}")]
    InvalidSchema(String),
    /// The row names a column the table does not have.
    #[error("column {0:?} does not exist")]
    UnknownColumn(String),
    /// A primary-key column is missing from the row.
    #[error("primary key column {0:?} is missing")]
    MissingPrimaryKey(String),
    /// `NULL` (or nothing) for a `NOT NULL` column.
    #[error("column {0:?} must not be null")]
    NullValue(String),
    /// A value that is not valid text for the column's type.
    #[error("invalid value for column {column:?} of type {pg_type}")]
    InvalidValue {
        /// The column.
        column: String,
        /// Its Postgres type.
        pg_type: String,
    },
    /// An insert whose primary key exists already.
    #[error("a row with this primary key exists already")]
    DuplicateKey,
    /// An update or delete whose primary key matches no row.
    #[error("no row has this primary key")]
    RowNotFound,
    /// Postgres refused to mirror a change (the stand-in's Postgres mode); the stand-in's
    /// own data has the change.
    #[error("Postgres: {0}")]
    Postgres(String),
}

/// A column as the stand-in uses it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnDef {
    pub(crate) name: String,
    pub(crate) pg_type: String,
    pub(crate) kind: Kind,
    pub(crate) pk_index: Option<usize>,
    pub(crate) not_null: bool,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: TableName,
    pub(crate) columns: Vec<ColumnDef>,
    rows: Vec<Row>,
}

impl Table {
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|column| column.name == name)
    }

    pub(crate) fn primary_key(&self) -> impl Iterator<Item = &ColumnDef> {
        let mut pk: Vec<&ColumnDef> = self
            .columns
            .iter()
            .filter(|column| column.pk_index.is_some())
            .collect();
        pk.sort_by_key(|column| column.pk_index);
        pk.into_iter()
    }

    pub(crate) fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn position_of(&self, key: &Row) -> Result<Option<usize>, StandInError> {
        let mut wanted = Vec::new();
        for column in self.primary_key() {
            match key.get(&column.name) {
                Some(Some(value)) => wanted.push((column.name.as_str(), value)),
                _ => return Err(StandInError::MissingPrimaryKey(column.name.clone())),
            }
        }
        Ok(self.rows.iter().position(|row| {
            wanted
                .iter()
                .all(|(column, value)| row.get(column) == Some(Some(*value)))
        }))
    }

    fn check_values(&self, row: &Row) -> Result<(), StandInError> {
        for (name, value) in row.iter() {
            let column = self
                .column(name)
                .ok_or_else(|| StandInError::UnknownColumn(name.to_owned()))?;
            match value {
                None if column.not_null => return Err(StandInError::NullValue(name.to_owned())),
                Some(text) if !column.kind.accepts(text) => {
                    return Err(StandInError::InvalidValue {
                        column: name.to_owned(),
                        pg_type: column.pg_type.clone(),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Insert,
    Update,
    Delete,
}

/// One logged change of one row.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) tx: u64,
    table: TableName,
    pub(crate) operation: Operation,
    pub(crate) old: Option<Row>,
    pub(crate) new: Option<Row>,
}

impl Change {
    pub(crate) fn offset(&self) -> LogOffset {
        LogOffset::new(self.tx, 0)
    }
}

/// What defines a shape, and so its handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ShapeKey {
    pub(crate) table: TableName,
    pub(crate) where_sql: Option<String>,
    pub(crate) params: Vec<String>,
    pub(crate) columns: Option<Vec<String>>,
    pub(crate) replica: Replica,
}

#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) handle: String,
    /// The last transaction the snapshot includes.
    pub(crate) snapshot_tx: u64,
    pub(crate) snapshot: Vec<Row>,
}

/// The data behind one stand-in.
#[derive(Debug, Default)]
pub(crate) struct Store {
    tables: BTreeMap<TableName, Table>,
    log: Vec<Change>,
    shapes: HashMap<ShapeKey, Shape>,
    lsn: u64,
    last_handle_micros: u64,
}

/// The offset right after a shape's snapshot, before any real log offset.
pub(crate) const SNAPSHOT_END: LogOffset = LogOffset { tx: 0, op: None };

pub(crate) fn table_name(text: &str) -> Result<TableName, StandInError> {
    TableName::parse(text).map_err(|_| StandInError::InvalidTableName(text.to_owned()))
}

impl Store {
    pub(crate) fn lsn(&self) -> u64 {
        self.lsn
    }

    pub(crate) fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.get(name)
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut Table, StandInError> {
        let name = table_name(name)?;
        self.tables
            .get_mut(&name)
            .ok_or_else(|| StandInError::UnknownTable(name.to_param()))
    }

    pub(crate) fn create_table(&mut self, schema: TableSchema) -> Result<(), StandInError> {
        let name = table_name(&schema.name)?;
        if self.tables.contains_key(&name) {
            return Err(StandInError::TableExists(name.to_param()));
        }
        if schema.columns.is_empty() {
            return Err(StandInError::InvalidSchema("a table needs columns".into()));
        }
        let mut columns: Vec<ColumnDef> = Vec::with_capacity(schema.columns.len());
        let mut pk_count = 0;
        for column in schema.columns {
            if column.name.is_empty() || columns.iter().any(|seen| seen.name == column.name) {
                return Err(StandInError::InvalidSchema(format!(
                    "column {:?} is empty or repeated",
                    column.name
                )));
            }
            let pg_type = column.pg_type.to_ascii_lowercase();
            let pk_index = column.primary_key.then(|| {
                pk_count += 1;
                pk_count - 1
            });
            columns.push(ColumnDef {
                name: column.name,
                kind: Kind::of(&pg_type),
                pg_type,
                pk_index,
                not_null: column.not_null,
            });
        }
        if pk_count == 0 {
            // Electric needs a primary key to key its messages.
            return Err(StandInError::InvalidSchema(
                "a table needs a primary key".into(),
            ));
        }
        self.tables.insert(
            name.clone(),
            Table {
                name,
                columns,
                rows: Vec::new(),
            },
        );
        Ok(())
    }

    pub(crate) fn insert(&mut self, table: &str, row: Row) -> Result<LogOffset, StandInError> {
        let target = self.table_mut(table)?;
        target.check_values(&row)?;
        let mut full = Row::new();
        for column in &target.columns {
            let value = row.get(&column.name).flatten().map(str::to_owned);
            if value.is_none() && column.not_null {
                return Err(StandInError::NullValue(column.name.clone()));
            }
            full.set(&column.name, value);
        }
        if target.position_of(&full)?.is_some() {
            return Err(StandInError::DuplicateKey);
        }
        target.rows.push(full.clone());
        let name = target.name.clone();
        Ok(self.log_change(name, Operation::Insert, None, Some(full)))
    }

    pub(crate) fn update(&mut self, table: &str, changes: Row) -> Result<LogOffset, StandInError> {
        let target = self.table_mut(table)?;
        target.check_values(&changes)?;
        let index = target
            .position_of(&changes)?
            .ok_or(StandInError::RowNotFound)?;
        let row = target
            .rows
            .get_mut(index)
            .ok_or(StandInError::RowNotFound)?;
        let old = row.clone();
        for (column, value) in changes.iter() {
            row.set(column, value.map(str::to_owned));
        }
        let new = row.clone();
        let name = target.name.clone();
        Ok(self.log_change(name, Operation::Update, Some(old), Some(new)))
    }

    pub(crate) fn delete(&mut self, table: &str, key: Row) -> Result<LogOffset, StandInError> {
        let target = self.table_mut(table)?;
        target.check_values(&key)?;
        let index = target.position_of(&key)?.ok_or(StandInError::RowNotFound)?;
        let old = target.rows.remove(index);
        let name = target.name.clone();
        Ok(self.log_change(name, Operation::Delete, Some(old), None))
    }

    pub(crate) fn rows(&self, table: &str) -> Result<Vec<Row>, StandInError> {
        let name = table_name(table)?;
        self.tables
            .get(&name)
            .map(|table| table.rows.clone())
            .ok_or_else(|| StandInError::UnknownTable(name.to_param()))
    }

    /// Forgets every shape of `table`: their handles become unknown, so clients get a 409.
    pub(crate) fn rotate(&mut self, table: &str) -> Result<(), StandInError> {
        let name = table_name(table)?;
        if !self.tables.contains_key(&name) {
            return Err(StandInError::UnknownTable(name.to_param()));
        }
        self.shapes.retain(|key, _| key.table != name);
        Ok(())
    }

    fn log_change(
        &mut self,
        table: TableName,
        operation: Operation,
        old: Option<Row>,
        new: Option<Row>,
    ) -> LogOffset {
        self.lsn += 1;
        let change = Change {
            tx: self.lsn,
            table,
            operation,
            old,
            new,
        };
        let offset = change.offset();
        self.log.push(change);
        offset
    }

    /// The shape for `key`, created (with its snapshot) when it does not exist.
    pub(crate) fn shape(&mut self, key: &ShapeKey, filter: &ShapeFilter) -> &Shape {
        let tables = &self.tables;
        let snapshot_tx = self.lsn;
        let last_handle_micros = &mut self.last_handle_micros;
        self.shapes.entry(key.clone()).or_insert_with(|| Shape {
            handle: new_handle(key, last_handle_micros),
            snapshot_tx,
            snapshot: tables
                .get(&key.table)
                .map(|table| filter.keep(&table.rows).into_iter().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// The changes of `key`'s table after the shape's snapshot and after `since`.
    pub(crate) fn changes_after<'a>(
        &'a self,
        key: &'a ShapeKey,
        shape_snapshot_tx: u64,
        since: LogOffset,
    ) -> impl Iterator<Item = &'a Change> + 'a {
        self.log.iter().filter(move |change| {
            change.table == key.table && change.tx > shape_snapshot_tx && change.offset() > since
        })
    }
}

/// A handle in Electric's `<hash>-<timestamp>` form, unique within one store.
fn new_handle(key: &ShapeKey, last_micros: &mut u64) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let hash = hasher.finish() % 100_000_000;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    *last_micros = now.max(last_micros.saturating_add(1));
    format!("{hash}-{last_micros}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Store {
        let mut store = Store::default();
        store
            .create_table(
                TableSchema::new("items")
                    .column(Column::new("id", "int8").primary_key())
                    .column(Column::new("title", "text"))
                    .column(Column::new("done", "bool").not_null()),
            )
            .unwrap();
        store
    }

    #[test]
    fn changes_get_increasing_offsets() {
        let mut store = items();
        let first = store
            .insert("items", Row::from([("id", "1"), ("done", "false")]))
            .unwrap();
        let second = store
            .update("items", Row::from([("id", "1"), ("title", "a")]))
            .unwrap();
        let third = store.delete("items", Row::from([("id", "1")])).unwrap();
        assert_eq!(first.to_string(), "1_0");
        assert_eq!(second.to_string(), "2_0");
        assert_eq!(third.to_string(), "3_0");
        assert!(store.rows("items").unwrap().is_empty());
    }

    #[test]
    fn bad_changes_are_refused() {
        let mut store = items();
        assert_eq!(
            store.insert("items", Row::from([("id", "x"), ("done", "true")])),
            Err(StandInError::InvalidValue {
                column: "id".into(),
                pg_type: "int8".into()
            })
        );
        assert_eq!(
            store.insert("items", Row::from([("id", "1")])),
            Err(StandInError::NullValue("done".into()))
        );
        assert_eq!(
            store.insert("items", Row::from([("id", "1"), ("nope", "1")])),
            Err(StandInError::UnknownColumn("nope".into()))
        );
        store
            .insert("items", Row::from([("id", "1"), ("done", "t")]))
            .unwrap();
        assert_eq!(
            store.insert("items", Row::from([("id", "1"), ("done", "t")])),
            Err(StandInError::DuplicateKey)
        );
        assert_eq!(
            store.update("items", Row::from([("title", "a")])),
            Err(StandInError::MissingPrimaryKey("id".into()))
        );
        assert_eq!(
            store.delete("items", Row::from([("id", "2")])),
            Err(StandInError::RowNotFound)
        );
        assert_eq!(
            store.insert("nope", Row::new()),
            Err(StandInError::UnknownTable("public.nope".into()))
        );
    }
}
