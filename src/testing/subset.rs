//! Subset snapshots: a `POST` body merged over the URL's query params, and the subset's
//! rows filtered, ordered and cut by the `subset__*` params.

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::StatusCode;
use serde_json::{json, Value};

use crate::protocol::headers::{
    ELECTRIC_HANDLE, ELECTRIC_OFFSET, ELECTRIC_SCHEMA, ELECTRIC_SNAPSHOT,
};
use crate::protocol::{LogOffset, Offset, QueryPairs, ShapeRequest};
use crate::rejection::Rejection;

use super::answer::{invalid, json_response, put, Answer, Early};
use super::filter::subset_rows;
use super::messages::ShapeView;
use super::service::BodyError;
use super::shape::{must_refetch, read_shape};
use super::store::ColumnDef;
use super::Shared;

/// Electric's `POST` body: subset keys go to the subset, every other key is merged over
/// the URL's query params (so `{"table": "other"}` replaces the URL's `table`).
pub(super) fn merge_body(
    mut pairs: QueryPairs,
    body: Result<Bytes, BodyError>,
) -> Result<QueryPairs, Early> {
    let body = body.map_err(|error| match error {
        BodyError::TooLarge => json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": "Request body too large"}),
        ),
        BodyError::Unreadable => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Invalid request body"}),
        ),
    })?;
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "Invalid JSON in request body", "details": error.to_string()}),
            )
        })?
    };
    let Value::Object(object) = value else {
        return Err(Box::new(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Request body must be a JSON object"}),
        )));
    };
    for (key, value) in object {
        match key.as_str() {
            "subset" => {
                let Value::Object(subset) = value else {
                    return Err(invalid("subset", "is invalid"));
                };
                for (key, value) in subset {
                    set_subset_pair(&mut pairs, &key, value)?;
                }
            }
            "where" | "order_by" | "limit" | "offset" | "params" => {
                set_subset_pair(&mut pairs, &key, value)?;
            }
            _ => {
                let text = scalar_text(&value).ok_or_else(|| {
                    Rejection::invalid_request()
                        .with_field_error(key.clone(), "is invalid")
                        .into_response()
                })?;
                pairs.set(key, text);
            }
        }
    }
    Ok(pairs)
}

fn set_subset_pair(pairs: &mut QueryPairs, key: &str, value: Value) -> Result<(), Early> {
    let field = match key {
        "where" => "subset__where",
        "order_by" => "subset__order_by",
        "limit" => "subset__limit",
        "offset" => "subset__offset",
        "params" => "subset__params",
        _ => return Err(invalid("subset", "has an unknown key")),
    };
    let text = match (key, &value) {
        ("params", Value::Object(params)) => {
            let mut as_text = serde_json::Map::new();
            for (index, value) in params {
                let value = scalar_text(value).ok_or_else(|| invalid(field, "is invalid"))?;
                as_text.insert(index.clone(), value.into());
            }
            Some(Value::Object(as_text).to_string())
        }
        ("params", _) => None,
        _ => scalar_text(&value),
    };
    pairs.set(field, text.ok_or_else(|| invalid(field, "is invalid"))?);
    Ok(())
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A subset snapshot: the shape's rows now, filtered, ordered and cut by the subset params.
pub(super) fn serve_subset(
    shared: &Shared,
    request: &ShapeRequest,
    view: &ShapeView,
) -> Result<Answer, Early> {
    if request.live {
        return Err(invalid("live", "can't be true for a subset snapshot"));
    }
    let subset = &request.subset;
    if subset.where_expr.is_some() || subset.order_by_expr.is_some() {
        return Err(invalid(
            "subset",
            "where_expr and order_by_expr are not supported by the Electric stand-in",
        ));
    }
    let read = read_shape(shared, view, LogOffset::end_of(u64::MAX));
    if let Offset::At(_) = request.offset {
        if request.handle.as_deref() != Some(read.handle.as_str()) {
            return Ok(must_refetch(&read.handle, request.offset));
        }
    }
    let store = shared.store();
    let Some(table) = store.table(&view.key.table) else {
        return Err(invalid("table", "does not exist"));
    };
    // A subset may only reference the queryable columns, when they are given.
    let queryable: Vec<ColumnDef> = match &request.queryable_columns {
        Some(_) => view.selected.clone(),
        None => table.columns.clone(),
    };
    let rows = subset_rows(
        &shared.postgres,
        &view.key.table,
        &view.filter,
        table.rows(),
        &queryable,
        subset,
    )
    .map_err(|(field, message)| invalid(field, message))?;
    drop(store);
    let mark = shared.next_sequence();
    let data: Vec<Value> = rows
        .iter()
        .map(|row| view.snapshot_insert(row, Some(("snapshot_mark", mark.into()))))
        .collect();
    let body = json!({
        "metadata": {
            "xmin": read.lsn.to_string(),
            "xmax": (read.lsn + 1).to_string(),
            "xip_list": [],
            "snapshot_mark": mark,
            "database_lsn": read.lsn.to_string(),
        },
        "data": data,
    });
    let mut response = json_response(StatusCode::OK, &body);
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, "no-cache");
    put(headers, ELECTRIC_SNAPSHOT, "true");
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_OFFSET, read.last_offset.to_string());
    put(headers, ELECTRIC_SCHEMA, view.schema_header());
    Ok(response)
}
