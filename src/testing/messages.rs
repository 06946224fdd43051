//! Shape log messages as Electric writes them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::protocol::Replica;

use super::filter::ShapeFilter;
use super::store::{Change, ColumnDef, Operation, Row, ShapeKey};

/// One shape as a request sees it: its definition, row filter and selected columns.
#[derive(Debug, Clone)]
pub(crate) struct ShapeView {
    pub(crate) key: ShapeKey,
    pub(crate) filter: ShapeFilter,
    /// The selected columns, in table order.
    pub(crate) selected: Vec<ColumnDef>,
    /// The primary-key column names, in key order.
    pub(crate) primary_key: Vec<String>,
}

impl ShapeView {
    /// `"schema"."table"`, the relation part of message keys.
    fn relation_sql(&self) -> String {
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        format!(
            "{}.{}",
            quote(self.key.table.schema().as_str()),
            quote(self.key.table.name().as_str())
        )
    }

    fn relation(&self) -> Value {
        json!([
            self.key.table.schema().as_str(),
            self.key.table.name().as_str()
        ])
    }

    /// Electric's row key: the relation, then each primary-key value quoted (`/` doubled),
    /// `_` for NULL, joined by `/`.
    fn key_of(&self, row: &Row) -> String {
        let mut key = self.relation_sql();
        for column in &self.primary_key {
            key.push('/');
            match row.get(column).flatten() {
                Some(value) => {
                    key.push('"');
                    key.push_str(&value.replace('/', "//"));
                    key.push('"');
                }
                None => key.push('_'),
            }
        }
        key
    }

    /// The selected columns of `row` for which `keep` says yes.
    fn values(&self, row: &Row, keep: impl Fn(&ColumnDef) -> bool) -> Value {
        let map: Map<String, Value> = self
            .selected
            .iter()
            .filter(|column| keep(column))
            .map(|column| {
                let value = row.get(&column.name).flatten().map(str::to_owned);
                (
                    column.name.clone(),
                    value.map_or(Value::Null, Value::String),
                )
            })
            .collect();
        Value::Object(map)
    }

    fn is_key(&self, column: &ColumnDef) -> bool {
        column.pk_index.is_some()
    }

    /// `electric-schema`: selected column → `{type, pk_index?, not_null?}`, columns by name,
    /// fields in the fixtures' order.
    pub(crate) fn schema_header(&self) -> String {
        #[derive(serde::Serialize)]
        struct ColumnSchema<'a> {
            #[serde(rename = "type")]
            pg_type: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            pk_index: Option<usize>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            not_null: bool,
        }
        let schema: BTreeMap<&str, ColumnSchema<'_>> = self
            .selected
            .iter()
            .map(|column| {
                let info = ColumnSchema {
                    pg_type: &column.pg_type,
                    pk_index: column.pk_index,
                    not_null: column.not_null,
                };
                (column.name.as_str(), info)
            })
            .collect();
        serde_json::to_string(&schema).unwrap_or_default()
    }

    /// An insert message of a snapshot row (no log headers).
    pub(crate) fn snapshot_insert(&self, row: &Row, extra_headers: Option<(&str, Value)>) -> Value {
        let mut headers = json!({"operation": "insert", "relation": self.relation()});
        if let (Some((name, value)), Value::Object(map)) = (extra_headers, &mut headers) {
            map.insert(name.to_owned(), value);
        }
        json!({
            "headers": headers,
            "key": self.key_of(row),
            "value": self.values(row, |_| true),
        })
    }

    /// The message a logged change becomes in this shape, if any: updates that move a row
    /// into or out of the shape become inserts or deletes, as in Electric.
    pub(crate) fn change_message(&self, change: &Change) -> Option<Value> {
        let old_in = change.old.as_ref().filter(|row| self.filter.matches(row));
        let new_in = change.new.as_ref().filter(|row| self.filter.matches(row));
        let full = self.key.replica == Replica::Full;
        let (operation, key, value, old_value) = match (change.operation, old_in, new_in) {
            (Operation::Update, Some(old), Some(new)) => {
                let changed = |column: &ColumnDef| old.get(&column.name) != new.get(&column.name);
                if !self.selected.iter().any(changed) {
                    return None;
                }
                let value = if full {
                    self.values(new, |_| true)
                } else {
                    self.values(new, |column| self.is_key(column) || changed(column))
                };
                let old_value = full.then(|| self.values(old, changed));
                ("update", self.key_of(new), value, old_value)
            }
            (Operation::Insert | Operation::Update, _, Some(new)) => {
                ("insert", self.key_of(new), self.values(new, |_| true), None)
            }
            (Operation::Delete | Operation::Update, Some(old), _) => {
                let value = self.values(old, |column| full || self.is_key(column));
                ("delete", self.key_of(old), value, None)
            }
            _ => return None,
        };
        let mut message = json!({
            "headers": {
                "operation": operation,
                "relation": self.relation(),
                "txids": [change.tx],
                "lsn": change.tx.to_string(),
                "op_position": 0,
                "last": true,
            },
            "key": key,
            "value": value,
        });
        if let (Some(old_value), Value::Object(map)) = (old_value, &mut message) {
            map.insert("old_value".into(), old_value);
        }
        Some(message)
    }
}

pub(crate) fn up_to_date(lsn: u64) -> Value {
    json!({"headers": {"control": "up-to-date", "global_last_seen_lsn": lsn.to_string()}})
}

pub(crate) fn must_refetch() -> Value {
    json!({"headers": {"control": "must-refetch"}})
}

pub(crate) fn snapshot_end(snapshot_tx: u64) -> Value {
    json!({"headers": {
        "control": "snapshot-end",
        "xmin": snapshot_tx.to_string(),
        "xmax": (snapshot_tx + 1).to_string(),
        "xip_list": [],
    }})
}
