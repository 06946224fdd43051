//! `ShapeRequest`: every query param of `/v1/shape`, typed.

use std::collections::BTreeMap;

use super::ident::{parse_column_list, render_column_list, Identifier, TableName};
use super::offset::Offset;
use super::query::{push_decimal, push_pair, QueryPairs};
use super::ProtocolError;
use crate::secret::SecretString;

/// `replica`: what an update carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replica {
    /// Primary key plus changed columns.
    Default,
    /// The whole row, plus `old_value`.
    Full,
}

impl Replica {
    /// The param value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Full => "full",
        }
    }
}

/// `log`: whether the shape starts with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogMode {
    /// Snapshot then changes.
    Full,
    /// Changes only, no initial snapshot.
    ChangesOnly,
}

impl LogMode {
    /// The param value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ChangesOnly => "changes_only",
        }
    }
}

/// The `subset__*` params of a subset snapshot request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubsetParams {
    /// `subset__where`, as text.
    pub where_clause: Option<String>,
    /// `subset__params`: a JSON object `{"1": "...", ...}`, as positional values 1..n.
    pub params: Option<Vec<String>>,
    /// `subset__limit`.
    pub limit: Option<u64>,
    /// `subset__offset`.
    pub offset: Option<u64>,
    /// `subset__order_by`, as text.
    pub order_by: Option<String>,
    /// `subset__where_expr`: the client's structured where, kept as its raw JSON text.
    pub where_expr: Option<String>,
    /// `subset__order_by_expr`: the client's structured order, kept as its raw JSON text.
    pub order_by_expr: Option<String>,
}

impl SubsetParams {
    /// Whether any subset param is present.
    pub fn is_present(&self) -> bool {
        *self != Self::default()
    }
}

/// A `/v1/shape` request's query, parsed and validated with Electric's rules.
///
/// Fields are public so that a policy can build the upstream request from scratch; a request
/// built by hand is checked with [`ShapeRequest::validate`]. Unknown keys are kept apart in
/// [`ShapeRequest::extras`] for a policy to read as hints; rendering includes them, so a layer
/// that forwards must build a request without them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShapeRequest {
    /// `table`. Required by Electric; optional here because a proxy may own it.
    pub table: Option<TableName>,
    /// `offset`. Required.
    pub offset: Offset,
    /// `handle`. Required unless offset is `-1` or `now`.
    pub handle: Option<String>,
    /// `live`: any value but `false` is true.
    pub live: bool,
    /// `live_sse` (or legacy `experimental_live_sse`): any value but `false` is true.
    pub live_sse: bool,
    /// `cursor`: kept as given, empty included.
    pub cursor: Option<String>,
    /// `where`, as text.
    pub where_clause: Option<String>,
    /// `params[1]..params[n]`, in order.
    pub params: Vec<String>,
    /// `columns`.
    pub columns: Option<Vec<Identifier>>,
    /// `queryable_columns`.
    pub queryable_columns: Option<Vec<Identifier>>,
    /// `replica`.
    pub replica: Option<Replica>,
    /// `log`.
    pub log: Option<LogMode>,
    /// The `subset__*` params.
    pub subset: SubsetParams,
    /// `expired_handle`.
    pub expired_handle: Option<String>,
    /// `cache-buster`.
    pub cache_buster: Option<String>,
    /// `secret`.
    pub secret: Option<SecretString>,
    /// `api_secret` (legacy name of `secret`).
    pub api_secret: Option<SecretString>,
    /// `source_id` (Electric Cloud).
    pub source_id: Option<String>,
    /// Keys Electric does not know, in key order (as rendered, so that a parsed request
    /// renders and parses back to itself).
    pub extras: QueryPairs,
}

/// Every key this module reads; a bracketed form of any of them is refused.
const KNOWN_KEYS: &[&str] = &[
    "table",
    "offset",
    "handle",
    "live",
    "live_sse",
    "experimental_live_sse",
    "cursor",
    "where",
    "params",
    "columns",
    "queryable_columns",
    "replica",
    "log",
    "subset__where",
    "subset__params",
    "subset__limit",
    "subset__offset",
    "subset__order_by",
    "subset__where_expr",
    "subset__order_by_expr",
    "expired_handle",
    "cache-buster",
    "secret",
    "api_secret",
    "source_id",
];

impl ShapeRequest {
    /// Parses and validates a raw query string (without `?`).
    pub fn parse(raw_query: &str) -> Result<Self, ProtocolError> {
        Self::from_pairs(QueryPairs::parse(raw_query)?)
    }

    /// Parses and validates already decoded pairs.
    pub fn from_pairs(pairs: QueryPairs) -> Result<Self, ProtocolError> {
        let mut request = Self::default();
        let mut offset = None;
        let mut params = BTreeMap::new();
        let mut live_sse = None;
        let mut extras = BTreeMap::new();
        for (key, value) in pairs.iter() {
            match key {
                "table" => {
                    request.table = Some(
                        TableName::parse(value)
                            .map_err(|error| ProtocolError::invalid("table", error.to_string()))?,
                    );
                }
                "offset" => {
                    offset =
                        Some(value.parse::<Offset>().map_err(|error| {
                            ProtocolError::invalid("offset", error.to_string())
                        })?);
                }
                "handle" => request.handle = Some(value.to_owned()),
                "live" => request.live = truthy(value),
                "live_sse" | "experimental_live_sse" => {
                    live_sse = Some(live_sse.unwrap_or(false) || truthy(value));
                }
                "cursor" => request.cursor = Some(value.to_owned()),
                "where" => request.where_clause = Some(value.to_owned()),
                "params" => {
                    return Err(ProtocolError::invalid(
                        "params",
                        "must be given as params[n] for the shape",
                    ))
                }
                "columns" => request.columns = Some(columns("columns", value)?),
                "queryable_columns" => {
                    request.queryable_columns = Some(columns("queryable_columns", value)?);
                }
                "replica" => {
                    request.replica = Some(match value {
                        "default" => Replica::Default,
                        "full" => Replica::Full,
                        _ => return Err(ProtocolError::invalid("replica", "is invalid")),
                    });
                }
                "log" => {
                    request.log = Some(match value {
                        "full" => LogMode::Full,
                        "changes_only" => LogMode::ChangesOnly,
                        _ => return Err(ProtocolError::invalid("log", "is invalid")),
                    });
                }
                "subset__where" => request.subset.where_clause = Some(value.to_owned()),
                "subset__params" => request.subset.params = Some(subset_params(value)?),
                "subset__limit" => request.subset.limit = Some(count("subset__limit", value)?),
                "subset__offset" => {
                    request.subset.offset = Some(count("subset__offset", value)?);
                }
                "subset__order_by" => request.subset.order_by = Some(value.to_owned()),
                "subset__where_expr" => request.subset.where_expr = Some(value.to_owned()),
                "subset__order_by_expr" => {
                    request.subset.order_by_expr = Some(value.to_owned());
                }
                "expired_handle" => request.expired_handle = Some(value.to_owned()),
                "cache-buster" => request.cache_buster = Some(value.to_owned()),
                "secret" => request.secret = Some(SecretString::new(value)),
                "api_secret" => request.api_secret = Some(SecretString::new(value)),
                "source_id" => request.source_id = Some(value.to_owned()),
                _ => {
                    if let Some(index) = param_index(key)? {
                        params.insert(index, value.to_owned());
                    } else if is_nested_known_key(key) {
                        return Err(ProtocolError::NestedKey {
                            key: key.to_owned(),
                        });
                    } else {
                        extras.insert(key, value);
                    }
                }
            }
        }
        request.extras = extras.into_iter().collect();
        request.offset = offset.ok_or(ProtocolError::Missing { field: "offset" })?;
        request.live_sse = live_sse.unwrap_or(false);
        request.params = contiguous("params", params)?;
        request.validate()?;
        Ok(request)
    }

    /// Checks Electric's rules between fields: a handle unless offset is `-1`/`now`, no
    /// `live` with those offsets, `live_sse` only with `live`, `order_by` with subset
    /// limit/offset.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if !self.offset.is_start() && self.handle.is_none() {
            return Err(ProtocolError::invalid(
                "handle",
                "can't be blank when offset != -1",
            ));
        }
        if self.live && self.offset.is_start() {
            return Err(ProtocolError::invalid(
                "live",
                "can't be true when offset == -1",
            ));
        }
        if self.live_sse && !self.live {
            return Err(ProtocolError::invalid(
                "live_sse",
                "can't be true unless live is also true",
            ));
        }
        if (self.subset.limit.is_some() || self.subset.offset.is_some())
            && self.subset.order_by.is_none()
            && self.subset.order_by_expr.is_none()
        {
            return Err(ProtocolError::invalid(
                "subset__order_by",
                "is required when limit or offset is given",
            ));
        }
        Ok(())
    }

    /// Whether this is a live request (long-poll or SSE).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The request as a canonical query string: keys in sorted order, `params[n]` in numeric
    /// order, extras last (sorted), every value percent-encoded (keys too, but for their `[`
    /// and `]`), identifiers quoted where needed. [`ShapeRequest::parse`] reads it back to an
    /// equal request.
    pub fn to_query_string(&self) -> String {
        let mut out = String::with_capacity(256);
        let opt = |out: &mut String, key: &str, value: Option<&str>| {
            if let Some(value) = value {
                push_pair(out, key, value);
            }
        };
        opt(
            &mut out,
            "api_secret",
            self.api_secret.as_ref().map(SecretString::expose),
        );
        opt(&mut out, "cache-buster", self.cache_buster.as_deref());
        opt(
            &mut out,
            "columns",
            self.columns.as_deref().map(render_column_list).as_deref(),
        );
        opt(&mut out, "cursor", self.cursor.as_deref());
        opt(&mut out, "expired_handle", self.expired_handle.as_deref());
        opt(&mut out, "handle", self.handle.as_deref());
        opt(&mut out, "live", self.live.then_some("true"));
        opt(&mut out, "live_sse", self.live_sse.then_some("true"));
        opt(&mut out, "log", self.log.map(LogMode::as_str));
        push_pair(&mut out, "offset", &self.offset.to_string());
        for (index, value) in self.params.iter().enumerate() {
            // The brackets are written bare: Electric decodes `params[1]` and `params%5B1%5D`
            // alike, and the bare form is what people read in logs.
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str("params[");
            push_decimal(&mut out, u64::try_from(index + 1).unwrap_or(u64::MAX));
            out.push_str("]=");
            super::query::encode_into(&mut out, value);
        }
        opt(
            &mut out,
            "queryable_columns",
            self.queryable_columns
                .as_deref()
                .map(render_column_list)
                .as_deref(),
        );
        opt(&mut out, "replica", self.replica.map(Replica::as_str));
        opt(
            &mut out,
            "secret",
            self.secret.as_ref().map(SecretString::expose),
        );
        opt(&mut out, "source_id", self.source_id.as_deref());
        let subset = &self.subset;
        opt(
            &mut out,
            "subset__limit",
            subset.limit.map(|n| n.to_string()).as_deref(),
        );
        opt(
            &mut out,
            "subset__offset",
            subset.offset.map(|n| n.to_string()).as_deref(),
        );
        opt(&mut out, "subset__order_by", subset.order_by.as_deref());
        opt(
            &mut out,
            "subset__order_by_expr",
            subset.order_by_expr.as_deref(),
        );
        opt(
            &mut out,
            "subset__params",
            subset
                .params
                .as_deref()
                .map(render_subset_params)
                .as_deref(),
        );
        opt(&mut out, "subset__where", subset.where_clause.as_deref());
        opt(&mut out, "subset__where_expr", subset.where_expr.as_deref());
        opt(
            &mut out,
            "table",
            self.table.as_ref().map(TableName::to_param).as_deref(),
        );
        opt(&mut out, "where", self.where_clause.as_deref());
        let mut extras: Vec<_> = self.extras.iter().collect();
        extras.sort_unstable();
        for (key, value) in extras {
            push_pair(&mut out, key, value);
        }
        out
    }
}

/// Electric's truthiness for `live` and `live_sse`: anything but the literal `false`.
fn truthy(value: &str) -> bool {
    value != "false"
}

fn columns(field: &'static str, value: &str) -> Result<Vec<Identifier>, ProtocolError> {
    parse_column_list(value).map_err(|error| ProtocolError::invalid(field, error.to_string()))
}

fn count(field: &'static str, value: &str) -> Result<u64, ProtocolError> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ProtocolError::invalid(
            field,
            "must be a non-negative integer",
        ));
    }
    value
        .parse()
        .map_err(|_| ProtocolError::invalid(field, "must be a non-negative integer"))
}

/// `params[n]` → `Some(n)`; other keys → `None`; a malformed index is refused.
fn param_index(key: &str) -> Result<Option<u32>, ProtocolError> {
    let Some(inner) = key
        .strip_prefix("params[")
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return Ok(None);
    };
    let canonical = !inner.is_empty()
        && !inner.starts_with('0')
        && inner.bytes().all(|byte| byte.is_ascii_digit());
    match inner.parse::<u32>() {
        Ok(index) if canonical => Ok(Some(index)),
        _ => Err(ProtocolError::invalid(
            "params",
            "keys must be params[n] with n a positive integer",
        )),
    }
}

fn is_nested_known_key(key: &str) -> bool {
    key.split_once('[')
        .is_some_and(|(base, _)| KNOWN_KEYS.contains(&base))
}

/// Checks that `numbered` holds exactly 1..=n and returns the values in order.
fn contiguous(
    field: &'static str,
    numbered: BTreeMap<u32, String>,
) -> Result<Vec<String>, ProtocolError> {
    let mut values = Vec::with_capacity(numbered.len());
    for (expected, (index, value)) in (1u32..).zip(numbered) {
        if index != expected {
            return Err(ProtocolError::invalid(
                field,
                format!("must be numbered 1..n without gaps (${expected} is missing)"),
            ));
        }
        values.push(value);
    }
    Ok(values)
}

pub(crate) fn subset_params(value: &str) -> Result<Vec<String>, ProtocolError> {
    let invalid = || {
        ProtocolError::invalid(
            "subset__params",
            "must be a JSON object of strings keyed 1..n",
        )
    };
    let object: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(value).map_err(|_| invalid())?;
    let mut numbered = BTreeMap::new();
    for (key, value) in object {
        let index = param_index(&format!("params[{key}]")).map_err(|_| invalid())?;
        let (Some(index), serde_json::Value::String(value)) = (index, value) else {
            return Err(invalid());
        };
        numbered.insert(index, value);
    }
    contiguous("subset__params", numbered)
}

fn render_subset_params(values: &[String]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(index, value)| ((index + 1).to_string(), value.clone().into()))
        .collect();
    serde_json::Value::Object(object).to_string()
}
