//! What the fuzz targets share: a poll-to-completion executor, a recording inner service, the
//! fixed policy the policy targets run against, and checks of what that policy forwards.
//!
//! Everything here panics on a broken invariant: a panic is how libFuzzer learns of a finding.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower_electric::body::ResponseBody;
use tower_electric::policy::{ShapePolicy, TablePolicy, HARMLESS_FUNCTIONS};
use tower_electric::protocol::{ShapeRequest, TableName};
use tower_layer::Layer;
use tower_service::Service;

// Postgres's reading of a forwarded where or order-by, shared with the crate's own tests.
#[path = "../../tests/support/where_clause.rs"]
mod where_clause;

/// Polls `future` to completion. Every future the targets build is ready without waiting on
/// I/O or timers, so one that stays pending for long is a hang, and a finding.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("future still pending after 10000 polls: a hang");
}

/// What the inner service received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The URI, path and query.
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// What came of one request through a layer over the recording service.
#[derive(Debug)]
pub struct Outcome {
    /// The response's status.
    pub status: StatusCode,
    /// The response's body.
    pub body: Bytes,
    /// What the inner service received, if it was called.
    pub forwarded: Option<Recorded>,
}

/// The principal the policy's row filter reads, as the app's auth layer would insert it.
#[derive(Clone)]
pub struct Principal(pub String);

/// The tenant every policy request runs as. It contains characters a query must escape.
pub const TENANT: &str = "tenant 7&x=$1'";

/// The columns of `items` the client may see.
pub const VISIBLE: [&str; 4] = ["id", "tenant_id", "title", "done"];

fn tenant(parts: &Parts) -> Option<Vec<String>> {
    parts
        .extensions
        .get::<Principal>()
        .map(|principal| vec![principal.0.clone()])
}

/// The gateway example's declarative policy: `items` with a tenant row filter, client where
/// and subsets; `tenants` with neither.
pub fn policy() -> ShapePolicy {
    ShapePolicy::builder()
        .table(
            TablePolicy::new("items")
                .columns(VISIBLE)
                .row_filter("tenant_id = $1", tenant)
                .client_where(true)
                .subsets(true),
        )
        .table(
            TablePolicy::new("tenants")
                .columns(["id", "name", "keys"])
                .row_filter("id = $1", tenant),
        )
        .build()
        .expect("the fixed policy builds")
}

type Log = Arc<Mutex<Option<Recorded>>>;

/// Sends `request` through the service `layer` builds over a recording inner service.
pub fn through<L>(layer: &L, request: Request<Full<Bytes>>) -> Outcome
where
    L: Layer<RecordingService>,
    L::Service: Service<
        Request<Full<Bytes>>,
        Response = Response<ResponseBody<Full<Bytes>>>,
        Error = Infallible,
    >,
{
    let log: Log = Arc::default();
    let mut service = layer.layer(RecordingService {
        log: Arc::clone(&log),
    });
    block_on(async move {
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("infallible");
        let response = service.call(request).await.expect("infallible");
        finish(response, &log).await
    })
}

async fn finish<B>(response: Response<ResponseBody<B>>, log: &Log) -> Outcome
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    let forwarded = log.lock().expect("log lock").take();
    Outcome {
        status,
        body,
        forwarded,
    }
}

/// The inner service: records the request and answers 200 with an empty array.
#[derive(Clone)]
pub struct RecordingService {
    log: Log,
}

impl<B> Service<Request<B>> for RecordingService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let log = Arc::clone(&self.log);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.expect("request body").to_bytes();
            let mut recorded = Recorded {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            // Extensions are not `Debug`-friendly; keep what the IP target reads.
            if let Some(ip) = parts.extensions.get::<tower_electric::ip::ClientIp>() {
                recorded.headers.insert(
                    "x-fuzz-client-ip",
                    ip.0.to_string()
                        .parse()
                        .expect("an address is a header value"),
                );
            }
            *log.lock().expect("log lock") = Some(recorded);
            Ok(Response::new(Full::new(Bytes::from_static(b"[]"))))
        })
    }
}

/// A refusal must be a client error with an Electric-shaped JSON body, and nothing forwarded.
pub fn assert_refusal(outcome: &Outcome) {
    assert!(
        outcome.status.is_client_error(),
        "refused with {}: {:?}",
        outcome.status,
        outcome.body
    );
    let body: serde_json::Value =
        serde_json::from_slice(&outcome.body).expect("a refusal's body is JSON");
    assert!(body.get("message").is_some(), "{body}");
}

/// The upstream request the policy forwarded, parsed as Electric would.
pub fn upstream_of(forwarded: &Recorded) -> ShapeRequest {
    assert_eq!(forwarded.uri.path(), "/v1/shape");
    let query = forwarded.uri.query().unwrap_or_default();
    ShapeRequest::parse(query)
        .unwrap_or_else(|error| panic!("forwarded query {query:?} does not parse: {error}"))
}

/// Parses `text` as Electric does, `SELECT 1 WHERE <text>`, with Postgres's own parser: the
/// where's tree (without text positions), which must be all the statement holds. Panics on a
/// comment, a `;` or anything after the expression.
pub fn parse_expr(text: &str) -> Value {
    where_clause::parse_where(text)
}

/// The string parts of a name list (`["pg_catalog", "lower"]`).
fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|part| match part["node"].get("String") {
                    Some(name) => name["sval"].as_str().unwrap_or_default().to_owned(),
                    None => "*".to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `$n` numbers used in `tree`, sorted and unique.
pub fn placeholders(tree: &Value) -> Vec<usize> {
    where_clause::placeholder_numbers(tree)
}

/// Checks that a client expression, as forwarded, reads only visible columns, calls only the
/// harmless functions (and the grammar's own `LIKE ... ESCAPE` and `SIMILAR TO` helpers) and
/// holds no subquery, read off Postgres's tree.
pub fn assert_client_safe(tree: &Value, context: &str) {
    where_clause::walk(tree, &mut |key, value| match key {
        "ColumnRef" => {
            let name = names(&value["fields"]);
            assert!(
                matches!(name.as_slice(), [one] if VISIBLE.contains(&one.as_str())),
                "column {name:?} forwarded in {context}"
            );
        }
        "FuncCall" => {
            let name = names(&value["funcname"]);
            let allowed = match name.as_slice() {
                [one] => HARMLESS_FUNCTIONS.contains(&one.as_str()),
                [schema, helper] => {
                    schema == "pg_catalog"
                        && matches!(helper.as_str(), "like_escape" | "similar_to_escape")
                }
                _ => false,
            };
            assert!(allowed, "function {name:?} forwarded in {context}");
        }
        "SubLink" | "SelectStmt" | "RangeVar" | "SqlvalueFunction" | "CollateClause" => {
            panic!("{key} forwarded in {context}")
        }
        _ => {}
    });
}

/// Checks a forwarded request against the fixed policy, whichever of its tables it names.
pub fn assert_policy_shape(forwarded: &Recorded) -> ShapeRequest {
    let upstream = upstream_of(forwarded);
    if upstream.table == Some(TableName::parse("tenants").expect("name")) {
        // No client where, no subsets: exactly the policy's shape.
        assert_eq!(upstream.where_clause.as_deref(), Some("id = $1"));
        assert_eq!(upstream.params, [TENANT]);
        assert!(!upstream.subset.is_present(), "{:?}", upstream.subset);
        let columns = upstream.columns.as_ref().expect("columns are always sent");
        assert!(
            columns
                .iter()
                .all(|column| ["id", "name", "keys"].contains(&column.as_str())),
            "{columns:?}"
        );
        assert!(upstream.extras.is_empty() && upstream.secret.is_none());
        assert!(upstream.api_secret.is_none() && upstream.source_id.is_none());
        return upstream;
    }
    assert_items_shape(forwarded)
}

/// Checks a forwarded request of the `items` table against the policy's rules: the policy's
/// table and columns, no credentials or extras, a where that is the row filter or
/// `(client) AND (row filter)` with every placeholder numbered 1..n and bound, the client side
/// safe, and a checked subset. Returns the forwarded request.
pub fn assert_items_shape(forwarded: &Recorded) -> ShapeRequest {
    let upstream = upstream_of(forwarded);
    assert_eq!(
        upstream.table,
        Some(TableName::parse("items").expect("name"))
    );
    assert!(
        upstream.extras.is_empty(),
        "extras forwarded: {:?}",
        upstream.extras
    );
    assert!(upstream.secret.is_none() && upstream.api_secret.is_none());
    assert!(upstream.source_id.is_none());
    let columns = upstream.columns.as_ref().expect("columns are always sent");
    assert!(
        columns
            .iter()
            .all(|column| VISIBLE.contains(&column.as_str())),
        "{columns:?}"
    );

    let where_text = upstream
        .where_clause
        .as_deref()
        .expect("the row filter is always sent");
    let forwarded_where = parse_expr(where_text);
    let total = upstream.params.len();
    assert!(
        total >= 1,
        "the row filter's value is missing: {where_text}"
    );
    assert_eq!(upstream.params.last().map(String::as_str), Some(TENANT));
    let row_filter = parse_expr(&format!("tenant_id = ${total}"));
    if total == 1 && forwarded_where == row_filter {
        // No client where: the row filter alone.
    } else {
        let (client, policy) = split_and(where_text);
        assert_eq!(policy, row_filter, "policy side of {where_text:?}");
        assert_client_safe(&client, where_text);
    }
    assert_eq!(
        placeholders(&forwarded_where),
        (1..=total).collect::<Vec<_>>(),
        "placeholders of {where_text:?} against {total} params"
    );

    let subset = &upstream.subset;
    assert!(subset.where_expr.is_none() && subset.order_by_expr.is_none());
    if let Some(text) = &subset.where_clause {
        let expr = parse_expr(text);
        assert_client_safe(&expr, text);
        let given = subset.params.as_ref().map_or(0, Vec::len);
        assert_eq!(
            placeholders(&expr),
            (1..=given).collect::<Vec<_>>(),
            "{text}"
        );
    } else {
        assert!(subset.params.as_ref().is_none_or(Vec::is_empty));
    }
    if let Some(text) = &subset.order_by {
        assert_order_by_safe(text);
    }
    upstream
}

/// Splits a forwarded where into (client part, policy part): its tree must be the tree
/// Postgres reads from `(<client>) AND (<policy>)`.
pub fn split_and(where_text: &str) -> (Value, Value) {
    where_clause::split_and(where_text)
}

/// Checks a forwarded order-by list: bare visible columns with a direction, nothing else.
pub fn assert_order_by_safe(text: &str) {
    let items = where_clause::parse_order_by(text);
    assert!(!items.is_empty(), "order {text:?}");
    for item in &items {
        let sort = &item["node"]["SortBy"];
        assert!(
            sort["node"]["node"].get("ColumnRef").is_some(),
            "order {text:?}"
        );
        assert_eq!(sort["use_op"], Value::Array(Vec::new()), "order {text:?}");
        assert_client_safe(sort, text);
    }
}

/// A request to the policy layer, from an authenticated tenant.
pub fn shape_request(
    method: Method,
    path_and_query: &str,
    body: Bytes,
) -> Option<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("authorization", "Bearer fuzz")
        .body(Full::new(body))
        .ok()?;
    request
        .extensions_mut()
        .insert(Principal(TENANT.to_owned()));
    Some(request)
}
