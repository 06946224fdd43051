//! The shape endpoint's answers from the log: the definition resolved to a view, the
//! snapshot at `-1`, `now`, log offsets and long-polls held for a change, the live cursor,
//! and `409 must-refetch`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, ETAG};
use http::request::Parts;
use http::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::protocol::headers::{
    ELECTRIC_CURSOR, ELECTRIC_HANDLE, ELECTRIC_HAS_DATA, ELECTRIC_OFFSET, ELECTRIC_SCHEMA,
    ELECTRIC_UP_TO_DATE,
};
use crate::protocol::{LogOffset, Offset, Replica, ShapeRequest, SqlExpr, SqlLimits};

use super::answer::{
    etag_matches, invalid, json_response, not_modified, not_modified_if_matching, put, Answer,
    Early,
};
use super::filter::ShapeFilter;
use super::messages::{self, ShapeView};
use super::store::{ColumnDef, ShapeKey, SNAPSHOT_END};
use super::Shared;

const CACHE_INITIAL: &str = "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746";
const CACHE_LIVE: &str = "public, max-age=5, stale-while-revalidate=5";
const CACHE_NON_LIVE: &str = "public, max-age=60, stale-while-revalidate=300";
const CACHE_MUST_REFETCH: &str = "public, max-age=60, must-revalidate";
/// Electric's long-poll cursor epoch: 2024-10-09T00:00:00Z.
const CURSOR_EPOCH_SECS: u64 = 1_728_432_000;

/// Counts a live request in flight; dropped before [`LiveGuard::finish`] it counts as
/// cancelled by the client.
pub(super) struct LiveGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl LiveGuard {
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        shared.live_started();
        Self {
            shared: Arc::clone(shared),
            finished: false,
        }
    }

    pub(super) fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.shared.live_ended(self.finished);
    }
}

/// Resolves the shape definition against the table: columns, where, params.
pub(super) fn shape_view(shared: &Shared, request: &ShapeRequest) -> Result<ShapeView, Early> {
    let Some(table_name) = &request.table else {
        return Err(invalid("table", "can't be blank"));
    };
    let store = shared.store();
    let Some(table) = store.table(table_name) else {
        return Err(invalid(
            "table",
            format!(
                "Table \"{}\".\"{}\" does not exist. If the table name contains capitals or special characters you must quote it.",
                table_name.schema().as_str(),
                table_name.name().as_str()
            ),
        ));
    };
    // `queryable_columns` bounds what `columns` may name, and is its default.
    let available = match &request.queryable_columns {
        Some(names) => pick_columns(&table.columns, names, "queryable_columns")?,
        None => table.columns.clone(),
    };
    let selected = match &request.columns {
        Some(names) => pick_columns(&available, names, "columns")?,
        None => available,
    };
    let filter = match &request.where_clause {
        Some(text) => {
            let expr = SqlExpr::parse(text, SqlLimits::default())
                .map_err(|error| invalid("where", error.to_string()))?;
            ShapeFilter::compile(
                &shared.postgres,
                table_name,
                &table.columns,
                text,
                &expr,
                &request.params,
            )
            .map_err(|message| invalid("where", message))?
        }
        None => ShapeFilter::default(),
    };
    let primary_key: Vec<String> = table.primary_key().map(|c| c.name.clone()).collect();
    let key = ShapeKey {
        table: table_name.clone(),
        where_sql: request
            .where_clause
            .as_ref()
            .and_then(|text| SqlExpr::parse(text, SqlLimits::default()).ok())
            .map(|expr| expr.to_string()),
        params: request.params.clone(),
        columns: request
            .columns
            .as_ref()
            .or(request.queryable_columns.as_ref())
            .map(|_| selected.iter().map(|c| c.name.clone()).collect()),
        replica: request.replica.unwrap_or(Replica::Default),
    };
    Ok(ShapeView {
        key,
        filter,
        selected,
        primary_key,
    })
}

/// The columns `names` picks from `columns`, in table order; every primary-key column must
/// be among them.
fn pick_columns(
    columns: &[ColumnDef],
    names: &[crate::protocol::Identifier],
    field: &'static str,
) -> Result<Vec<ColumnDef>, Early> {
    let refuse_if_any = |problem: &str, culprits: Vec<&str>| -> Result<(), Early> {
        if culprits.is_empty() {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!("{problem}: {}", culprits.join(", ")),
            ))
        }
    };
    refuse_if_any(
        "The list of columns must include all primary key columns, missing",
        columns
            .iter()
            .filter(|c| c.pk_index.is_some() && !names.iter().any(|n| n.as_str() == c.name))
            .map(|c| c.name.as_str())
            .collect(),
    )?;
    refuse_if_any(
        "The following columns are not found on the table",
        names
            .iter()
            .map(|name| name.as_str())
            .filter(|name| !columns.iter().any(|c| c.name == *name))
            .collect(),
    )?;
    Ok(columns
        .iter()
        .filter(|c| names.iter().any(|n| n.as_str() == c.name))
        .cloned()
        .collect())
}

/// What a request reads of its shape at one moment.
pub(super) struct ShapeRead {
    pub(super) handle: String,
    /// Messages after the requested offset, with their offsets.
    pub(super) messages: Vec<(LogOffset, Value)>,
    /// The offset of the shape's last message (`0_inf` before any).
    pub(super) last_offset: LogOffset,
    /// The stand-in's last transaction.
    pub(super) lsn: u64,
}

impl ShapeRead {
    pub(super) fn end_offset(&self) -> LogOffset {
        self.messages
            .last()
            .map_or(self.last_offset, |(offset, _)| *offset)
    }
}

pub(super) fn read_shape(shared: &Shared, view: &ShapeView, since: LogOffset) -> ShapeRead {
    let mut store = shared.store();
    let shape = store.shape(&view.key, &view.filter);
    let (handle, snapshot_tx) = (shape.handle.clone(), shape.snapshot_tx);
    let mut last_offset = SNAPSHOT_END;
    let mut messages = Vec::new();
    for change in store.changes_after(&view.key, snapshot_tx, SNAPSHOT_END) {
        if let Some(message) = view.change_message(change) {
            last_offset = change.offset();
            if last_offset > since {
                messages.push((last_offset, message));
            }
        }
    }
    ShapeRead {
        handle,
        messages,
        last_offset,
        lsn: store.lsn(),
    }
}

/// Offset `-1`: the shape's snapshot, ending at `0_inf` without up-to-date.
pub(super) fn snapshot(
    shared: &Shared,
    parts: &Parts,
    request: &ShapeRequest,
    view: &ShapeView,
) -> Answer {
    let (handle, snapshot_tx, rows) = {
        let mut store = shared.store();
        let shape = store.shape(&view.key, &view.filter);
        (
            shape.handle.clone(),
            shape.snapshot_tx,
            shape.snapshot.clone(),
        )
    };
    let changes_only = request.log == Some(crate::protocol::LogMode::ChangesOnly);
    let mut body: Vec<Value> = if changes_only {
        Vec::new()
    } else {
        rows.iter()
            .map(|row| view.snapshot_insert(row, None))
            .collect()
    };
    let has_data = !body.is_empty();
    body.push(messages::snapshot_end(snapshot_tx));
    let etag = format!("\"{handle}:-1:{SNAPSHOT_END}\"");
    let mut response = json_response(StatusCode::OK, &Value::Array(body));
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, CACHE_INITIAL);
    put(headers, ETAG, &etag);
    put(headers, ELECTRIC_HANDLE, &handle);
    put(headers, ELECTRIC_OFFSET, SNAPSHOT_END.to_string());
    put(headers, ELECTRIC_SCHEMA, view.schema_header());
    put(headers, ELECTRIC_HAS_DATA, has_data.to_string());
    not_modified_if_matching(parts, &etag, response)
}

/// Offset `now`: up-to-date at the shape's current end.
pub(super) fn now(shared: &Shared, view: &ShapeView) -> Answer {
    let read = read_shape(shared, view, LogOffset::end_of(u64::MAX));
    let mut response = json_response(StatusCode::OK, &json!([messages::up_to_date(read.lsn)]));
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, CACHE_NON_LIVE);
    put(
        headers,
        ETAG,
        format!(
            "\"{}:now:{}:{}\"",
            read.handle,
            read.last_offset,
            unique_suffix(shared)
        ),
    );
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_OFFSET, read.last_offset.to_string());
    put(headers, ELECTRIC_SCHEMA, view.schema_header());
    put(headers, ELECTRIC_UP_TO_DATE, "");
    put(headers, ELECTRIC_HAS_DATA, "false");
    response
}

/// Electric's etag suffix for answers without changes, so they never revalidate.
fn unique_suffix(shared: &Shared) -> String {
    format!("-{}", shared.next_sequence())
}

pub(super) fn must_refetch(handle: &str, request_offset: Offset) -> Answer {
    let mut response = json_response(StatusCode::CONFLICT, &json!([messages::must_refetch()]));
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, CACHE_MUST_REFETCH);
    put(headers, ELECTRIC_HANDLE, handle);
    put(headers, ETAG, format!("\"{handle}:{request_offset}:\""));
    response
}

/// A log offset: the changes after it, or (live) a wait for them.
pub(super) async fn log(
    shared: &Arc<Shared>,
    parts: &Parts,
    request: &ShapeRequest,
    view: &ShapeView,
    offset: LogOffset,
) -> Answer {
    let mut changes = shared.changes.subscribe();
    let mut guard = request.live.then(|| LiveGuard::new(shared));
    let deadline = Instant::now() + shared.config.long_poll_hold;
    let mut first = true;
    loop {
        changes.borrow_and_update();
        let read = read_shape(shared, view, offset);
        if request.handle.as_deref() != Some(read.handle.as_str()) {
            finish(&mut guard);
            return must_refetch(&read.handle, request.offset);
        }
        let etag = format!(
            "\"{}:{}:{}\"",
            read.handle,
            request.offset,
            read.end_offset()
        );
        if first && etag_matches(parts, &etag) {
            finish(&mut guard);
            return not_modified(log_answer(shared, request, view, read, etag));
        }
        first = false;
        if !read.messages.is_empty() || !request.live {
            finish(&mut guard);
            return log_answer(shared, request, view, read, etag);
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            finish(&mut guard);
            return no_change_answer(shared, request, read);
        }
    }
}

fn finish(guard: &mut Option<LiveGuard>) {
    if let Some(guard) = guard {
        guard.finish();
    }
}

fn log_answer(
    shared: &Shared,
    request: &ShapeRequest,
    view: &ShapeView,
    read: ShapeRead,
    etag: String,
) -> Answer {
    let end = read.end_offset();
    let has_data = !read.messages.is_empty();
    let up_to_date_lsn = if request.live {
        end.tx
    } else {
        read.lsn.max(end.tx)
    };
    let mut body: Vec<Value> = read.messages.into_iter().map(|(_, m)| m).collect();
    body.push(messages::up_to_date(up_to_date_lsn));
    let mut response = json_response(StatusCode::OK, &Value::Array(body));
    let headers = response.headers_mut();
    if request.live {
        put(headers, CACHE_CONTROL, CACHE_LIVE);
        put(headers, ELECTRIC_CURSOR, cursor(shared, request));
    } else {
        put(headers, CACHE_CONTROL, CACHE_NON_LIVE);
        put(headers, ELECTRIC_SCHEMA, view.schema_header());
    }
    put(headers, ETAG, etag);
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_UP_TO_DATE, "");
    put(headers, ELECTRIC_HAS_DATA, has_data.to_string());
    put(headers, ELECTRIC_OFFSET, end.to_string());
    response
}

/// A long-poll that saw no change within the hold.
fn no_change_answer(shared: &Shared, request: &ShapeRequest, read: ShapeRead) -> Answer {
    let mut response = json_response(StatusCode::OK, &json!([messages::up_to_date(read.lsn)]));
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, CACHE_LIVE);
    put(headers, ELECTRIC_CURSOR, cursor(shared, request));
    put(
        headers,
        ETAG,
        format!(
            "\"{}:{}:{}:{}\"",
            read.handle,
            request.offset,
            read.last_offset,
            unique_suffix(shared)
        ),
    );
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_UP_TO_DATE, "");
    put(headers, ELECTRIC_HAS_DATA, "false");
    put(headers, ELECTRIC_OFFSET, read.last_offset.to_string());
    response
}

/// Electric's live cursor: the end of the current hold-length interval since its epoch,
/// bumped when it equals the client's, so that caches never serve a live answer twice.
pub(super) fn cursor(shared: &Shared, request: &ShapeRequest) -> String {
    let hold = shared.config.long_poll_hold.as_secs();
    if hold == 0 {
        return "0".into();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let since_epoch = now.saturating_sub(CURSOR_EPOCH_SECS);
    let next = since_epoch.div_ceil(hold) * hold;
    if request.cursor.as_deref() == Some(next.to_string().as_str()) {
        (next + 1 + shared.next_sequence() % 3600).to_string()
    } else {
        next.to_string()
    }
}
