//! The stand-in's HTTP handling: routing, validation, shape logs, live requests, subsets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    CACHE_CONTROL, CONNECTION, CONTENT_TYPE, ETAG, IF_NONE_MATCH, ORIGIN,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::headers::{
    ALLOW_METHODS_VALUE, ELECTRIC_CURSOR, ELECTRIC_HANDLE, ELECTRIC_HAS_DATA, ELECTRIC_OFFSET,
    ELECTRIC_SCHEMA, ELECTRIC_SERVER, ELECTRIC_SNAPSHOT, ELECTRIC_UP_TO_DATE, EXPOSE_HEADERS_VALUE,
    JSON_CONTENT_TYPE, SHAPE_PATH, SSE_CONTENT_TYPE,
};
use crate::protocol::query::decode_component;
use crate::protocol::{LogOffset, Offset, QueryPairs, Replica, ShapeRequest, SqlExpr, SqlLimits};
use crate::rejection::Rejection;

use super::filter::{subset_rows, ShapeFilter};
use super::messages::{self, ShapeView};
use super::store::{ColumnDef, ShapeKey, SNAPSHOT_END};
use super::{ElectricStandIn, RecordedRequest, Shared};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest `POST` body read, as Electric's own limit is for a real server.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const SERVER_VALUE: &str = "ElectricSQL/1.7.12";
const CACHE_INITIAL: &str = "public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746";
const CACHE_LIVE: &str = "public, max-age=5, stale-while-revalidate=5";
const CACHE_NON_LIVE: &str = "public, max-age=60, stale-while-revalidate=300";
const CACHE_MUST_REFETCH: &str = "public, max-age=60, must-revalidate";
/// The request headers Electric's preflight allows.
const PREFLIGHT_HEADERS: [&str; 2] = ["if-none-match", "traceparent"];
/// Electric's long-poll cursor epoch: 2024-10-09T00:00:00Z.
const CURSOR_EPOCH_SECS: u64 = 1_728_432_000;

type Answer = Response<StandInBody>;
/// An answer a helper gives instead of going on (a refusal); boxed to keep `Result`s small.
type Early = Box<Answer>;

impl<B> tower_service::Service<Request<B>> for ElectricStandIn
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        ResponseFuture {
            inner: Box::pin(async move { Ok(handle(shared, request).await) }),
        }
    }
}

/// The future of [`ElectricStandIn`]'s responses.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>,
}

impl Future for ResponseFuture {
    type Output = Result<Answer, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// The body of [`ElectricStandIn`]'s responses: complete JSON, or an SSE stream whose frames
/// come as changes happen.
pub struct StandInBody {
    kind: BodyKind,
}

enum BodyKind {
    Full(Option<Bytes>),
    Stream(Pin<Box<dyn Stream<Item = Bytes> + Send>>),
}

impl StandInBody {
    fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            kind: BodyKind::Full((!data.is_empty()).then_some(data)),
        }
    }

    fn empty() -> Self {
        Self::full(Bytes::new())
    }
}

impl From<Bytes> for StandInBody {
    fn from(data: Bytes) -> Self {
        Self::full(data)
    }
}

impl fmt::Debug for StandInBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Full(data) => f.debug_tuple("StandInBody").field(data).finish(),
            BodyKind::Stream(_) => f.write_str("StandInBody(<stream>)"),
        }
    }
}

impl Body for StandInBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            BodyKind::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            BodyKind::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|frame| frame.map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            BodyKind::Stream(_) => SizeHint::default(),
        }
    }
}

/// Counts a live request in flight; dropped before [`LiveGuard::finish`] it counts as
/// cancelled by the client.
struct LiveGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl LiveGuard {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.live_started();
        Self {
            shared: Arc::clone(shared),
            finished: false,
        }
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.shared.live_ended(self.finished);
    }
}

enum BodyError {
    TooLarge,
    Unreadable,
}

async fn handle<B>(shared: Arc<Shared>, request: Request<B>) -> Answer
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        Some(read_body(body).await)
    } else {
        None
    };
    shared.record(RecordedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: lenient_pairs(parts.uri.query().unwrap_or_default()),
        headers: parts.headers.clone(),
        body: body.as_ref().and_then(|body| body.as_ref().ok()).cloned(),
    });
    let mut response = match parts.uri.path() {
        "/v1/health" => health(&parts),
        SHAPE_PATH => shape_endpoint(&shared, &parts, body).await,
        _ => {
            let mut response = Response::new(StandInBody::full("Not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    put(response.headers_mut(), ELECTRIC_SERVER, SERVER_VALUE);
    if parts.method == Method::HEAD {
        *response.body_mut() = StandInBody::empty();
    }
    response
}

async fn read_body<B>(body: B) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// The query's pairs for the request log: decoded where possible, raw otherwise, repeats kept.
fn lenient_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            let decode = |text: &str| decode_component(text).unwrap_or_else(|_| text.to_owned());
            (decode(key), decode(value))
        })
        .collect()
}

fn health(parts: &Parts) -> Answer {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        json_response(StatusCode::OK, &json!({"status": "active"}))
    } else {
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": format!("{} not allowed", parts.method)}),
        )
    }
}

async fn shape_endpoint(
    shared: &Arc<Shared>,
    parts: &Parts,
    body: Option<Result<Bytes, BodyError>>,
) -> Answer {
    let mut response = match parts.method {
        Method::OPTIONS => preflight(parts),
        Method::GET | Method::HEAD | Method::POST | Method::DELETE => {
            match QueryPairs::parse(parts.uri.query().unwrap_or_default()) {
                Err(error) => Rejection::from(error).into_response(),
                Ok(pairs) => {
                    if !authorized(shared, &pairs) {
                        // Electric answers before its CORS plug runs: no CORS headers.
                        return unauthorized();
                    }
                    if parts.method == Method::DELETE {
                        json_response(
                            StatusCode::METHOD_NOT_ALLOWED,
                            &json!({"message": "DELETE not allowed"}),
                        )
                    } else {
                        serve_shape(shared, parts, pairs, body)
                            .await
                            .unwrap_or_else(|refusal| *refusal)
                    }
                }
            }
        }
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": format!("{} not allowed", parts.method)}),
        ),
    };
    let headers = response.headers_mut();
    let origin = parts
        .headers
        .get(ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    put(headers, ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS_VALUE);
    put(headers, ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS_VALUE);
    response
}

/// Electric's check: `secret`, else `api_secret`, equal to the configured secret; for a Cloud
/// source, `source_id` equal to its id too. Plain equality, as Electric compares; this is a
/// test double, not a gate.
fn authorized(shared: &Shared, pairs: &QueryPairs) -> bool {
    let source = match &shared.config.source_id {
        Some(source_id) => pairs.get("source_id") == Some(source_id.as_str()),
        None => true,
    };
    let Some(secret) = &shared.config.secret else {
        return source;
    };
    source
        && pairs
            .get("secret")
            .or_else(|| pairs.get("api_secret"))
            .is_some_and(|given| given == secret.expose())
}

fn unauthorized() -> Answer {
    let mut response = Response::new(StandInBody::full(
        json!({"message": "Unauthorized - Invalid API secret"}).to_string(),
    ));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    put(
        response.headers_mut(),
        CACHE_CONTROL,
        "max-age=0, private, must-revalidate",
    );
    response
}

fn preflight(parts: &Parts) -> Answer {
    let mut response = Response::new(StandInBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    put(headers, ACCESS_CONTROL_MAX_AGE, "86400");
    let allowed: Vec<String> = parts
        .headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| PREFLIGHT_HEADERS.contains(&name.as_str()))
        .collect();
    if !allowed.is_empty() {
        put(headers, ACCESS_CONTROL_ALLOW_HEADERS, allowed.join(", "));
    }
    put(headers, CONNECTION, "keep-alive");
    response
}

/// `GET`/`HEAD`/`POST /v1/shape` once authorized.
async fn serve_shape(
    shared: &Arc<Shared>,
    parts: &Parts,
    pairs: QueryPairs,
    body: Option<Result<Bytes, BodyError>>,
) -> Result<Answer, Early> {
    let is_post = body.is_some();
    let pairs = match body {
        Some(body) => merge_body(pairs, body)?,
        None => pairs,
    };
    let request =
        ShapeRequest::from_pairs(pairs).map_err(|e| Rejection::from(e).into_response())?;
    let view = shape_view(shared, &request)?;
    if is_post || request.subset.is_present() {
        return serve_subset(shared, &request, &view);
    }
    match request.offset {
        Offset::BeforeAll => Ok(snapshot(shared, parts, &request, &view)),
        Offset::Now => Ok(now(shared, &view)),
        Offset::At(offset) if request.live_sse => Ok(sse(shared, &request, &view, offset)),
        Offset::At(offset) => Ok(log(shared, parts, &request, &view, offset).await),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> Early {
    Box::new(
        Rejection::invalid_request()
            .with_field_error(field, message)
            .into_response(),
    )
}

/// Resolves the shape definition against the table: columns, where, params.
fn shape_view(shared: &Shared, request: &ShapeRequest) -> Result<ShapeView, Early> {
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
struct ShapeRead {
    handle: String,
    /// Messages after the requested offset, with their offsets.
    messages: Vec<(LogOffset, Value)>,
    /// The offset of the shape's last message (`0_inf` before any).
    last_offset: LogOffset,
    /// The stand-in's last transaction.
    lsn: u64,
}

impl ShapeRead {
    fn end_offset(&self) -> LogOffset {
        self.messages
            .last()
            .map_or(self.last_offset, |(offset, _)| *offset)
    }
}

fn read_shape(shared: &Shared, view: &ShapeView, since: LogOffset) -> ShapeRead {
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
fn snapshot(shared: &Shared, parts: &Parts, request: &ShapeRequest, view: &ShapeView) -> Answer {
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
fn now(shared: &Shared, view: &ShapeView) -> Answer {
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

fn must_refetch(handle: &str, request_offset: Offset) -> Answer {
    let mut response = json_response(StatusCode::CONFLICT, &json!([messages::must_refetch()]));
    let headers = response.headers_mut();
    put(headers, CACHE_CONTROL, CACHE_MUST_REFETCH);
    put(headers, ELECTRIC_HANDLE, handle);
    put(headers, ETAG, format!("\"{handle}:{request_offset}:\""));
    response
}

/// A log offset: the changes after it, or (live) a wait for them.
async fn log(
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
fn cursor(shared: &Shared, request: &ShapeRequest) -> String {
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

/// `live_sse`: changes as `data:` frames as they happen, keep-alive comments in silence,
/// closed after the configured duration.
fn sse(
    shared: &Arc<Shared>,
    request: &ShapeRequest,
    view: &ShapeView,
    offset: LogOffset,
) -> Answer {
    let read = read_shape(shared, view, offset);
    if request.handle.as_deref() != Some(read.handle.as_str()) {
        return must_refetch(&read.handle, request.offset);
    }
    let config = &shared.config;
    let state = SseState {
        shared: Arc::clone(shared),
        view: view.clone(),
        handle: read.handle.clone(),
        offset,
        changes: shared.changes.subscribe(),
        deadline: Instant::now() + config.sse_duration,
        pending: VecDeque::new(),
        done: false,
        guard: LiveGuard::new(shared),
    };
    let stream = futures_util::stream::unfold(state, next_sse_frame);
    let mut response = Response::new(StandInBody {
        kind: BodyKind::Stream(Box::pin(stream)),
    });
    let headers = response.headers_mut();
    put(headers, CONTENT_TYPE, SSE_CONTENT_TYPE);
    put(headers, CONNECTION, "keep-alive");
    let max_age = config.sse_duration.as_secs().saturating_sub(1).max(1);
    put(headers, CACHE_CONTROL, format!("public, max-age={max_age}"));
    put(headers, ELECTRIC_CURSOR, cursor(shared, request));
    put(
        headers,
        ETAG,
        format!(
            "\"{}:{}:{}\"",
            read.handle,
            request.offset,
            read.end_offset()
        ),
    );
    put(headers, ELECTRIC_HANDLE, &read.handle);
    put(headers, ELECTRIC_OFFSET, read.last_offset.to_string());
    response
}

struct SseState {
    shared: Arc<Shared>,
    view: ShapeView,
    handle: String,
    offset: LogOffset,
    changes: watch::Receiver<u64>,
    deadline: Instant,
    pending: VecDeque<Bytes>,
    done: bool,
    guard: LiveGuard,
}

fn sse_frame(message: &Value) -> Bytes {
    Bytes::from(format!("data: {message}\n\n"))
}

async fn next_sse_frame(mut state: SseState) -> Option<(Bytes, SseState)> {
    loop {
        if let Some(frame) = state.pending.pop_front() {
            return Some((frame, state));
        }
        if state.done {
            state.guard.finish();
            return None;
        }
        state.changes.borrow_and_update();
        let read = read_shape(&state.shared, &state.view, state.offset);
        if read.handle != state.handle {
            state
                .pending
                .push_back(sse_frame(&messages::must_refetch()));
            state.done = true;
            continue;
        }
        if !read.messages.is_empty() {
            state.offset = read.end_offset();
            for (_, message) in &read.messages {
                state.pending.push_back(sse_frame(message));
            }
            state
                .pending
                .push_back(sse_frame(&messages::up_to_date(state.offset.tx)));
            continue;
        }
        let silence_ends =
            (Instant::now() + state.shared.config.sse_keep_alive).min(state.deadline);
        tokio::select! {
            changed = state.changes.changed() => {
                if changed.is_err() {
                    state.done = true;
                }
            }
            () = tokio::time::sleep_until(silence_ends) => {
                if Instant::now() >= state.deadline {
                    state.done = true;
                } else {
                    state.pending.push_back(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    }
}

/// Electric's `POST` body: subset keys go to the subset, every other key is merged over
/// the URL's query params (so `{"table": "other"}` replaces the URL's `table`).
fn merge_body(mut pairs: QueryPairs, body: Result<Bytes, BodyError>) -> Result<QueryPairs, Early> {
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
fn serve_subset(
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

fn json_response(status: StatusCode, body: &Value) -> Answer {
    let mut response = Response::new(StandInBody::full(body.to_string()));
    *response.status_mut() = status;
    put(response.headers_mut(), CONTENT_TYPE, JSON_CONTENT_TYPE);
    // Errors are never cached; a 409 is a redirect and gets its own caching.
    if (status.is_client_error() || status.is_server_error()) && status != StatusCode::CONFLICT {
        put(response.headers_mut(), CACHE_CONTROL, "no-store");
        put(
            response.headers_mut(),
            crate::protocol::headers::SURROGATE_CONTROL,
            "no-store",
        );
    }
    response
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: impl AsRef<[u8]>) {
    // Values are the stand-in's own (handles, offsets, JSON); one that is not a valid header
    // value (a control character in a column name) is left out rather than panicking.
    if let Ok(value) = HeaderValue::from_bytes(value.as_ref()) {
        headers.insert(name, value);
    }
}

/// Electric's `if-none-match`: a comma-separated list, quotes trimmed.
fn etag_matches(parts: &Parts, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    parts
        .headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim().trim_matches('"') == etag)
}

fn not_modified_if_matching(parts: &Parts, etag: &str, response: Answer) -> Answer {
    if etag_matches(parts, etag) {
        not_modified(response)
    } else {
        response
    }
}

/// The same answer as 304 with an empty body.
fn not_modified(mut response: Answer) -> Answer {
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response.headers_mut().remove(CONTENT_TYPE);
    *response.body_mut() = StandInBody::empty();
    response
}
