//! [`ShapeParamPolicyLayer`] and its service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::observe;
use crate::protocol::query::{with_query, DEFAULT_MAX_QUERY_LEN};
use crate::protocol::{QueryPairs, ShapeRequest, SqlLimits, SubsetParams};
use crate::rejection::Rejection;

use super::body::RequestBody;
use super::cache::{make_cache_safe, CacheRules, CacheSafety, VaryOn, DEFAULT_PRIVATE_MAX_AGE};
use super::decision::Policy;
use super::memo::{WhereMemo, DEFAULT_WHERE_MEMO_CAPACITY};
use super::rebuild::{rebuild, subset_from_body, subset_to_body};
use super::ResponseFuture;

/// The largest subset `POST` body read by default, in bytes.
pub const DEFAULT_MAX_BODY_LEN: usize = 64 * 1024;

/// The methods the layer serves, as the `allow` header of a 405 names them.
const ALLOWED_METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::OPTIONS];

#[derive(Clone)]
struct Config {
    policy: Arc<dyn Policy>,
    max_query_len: usize,
    max_body_len: usize,
    sql_limits: SqlLimits,
    cache_safety: CacheSafety,
    vary_on: VaryOn,
    private_max_age: Duration,
    where_memo: Arc<WhereMemo>,
}

/// Decides, with a [`Policy`], which shape a client may see, and rebuilds the upstream request
/// so that only that shape can be asked for. See the [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct ShapeParamPolicyLayer {
    config: Config,
}

impl fmt::Debug for ShapeParamPolicyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShapeParamPolicyLayer")
            .field("max_query_len", &self.config.max_query_len)
            .field("max_body_len", &self.config.max_body_len)
            .field("sql_limits", &self.config.sql_limits)
            .field("cache_safety", &self.config.cache_safety)
            .field("vary_on", &self.config.vary_on.names())
            .field("private_max_age", &self.config.private_max_age)
            .field("where_memo", &self.config.where_memo)
            .finish_non_exhaustive()
    }
}

impl ShapeParamPolicyLayer {
    /// A layer asking `policy`, with default limits, [`CacheSafety::Private`] and
    /// `Vary: authorization, cookie` on responses that depend on the principal.
    pub fn new(policy: impl Policy) -> Self {
        Self {
            config: Config {
                policy: Arc::new(policy),
                max_query_len: DEFAULT_MAX_QUERY_LEN,
                max_body_len: DEFAULT_MAX_BODY_LEN,
                sql_limits: SqlLimits::default(),
                cache_safety: CacheSafety::default(),
                vary_on: VaryOn::new(vec![AUTHORIZATION, COOKIE]),
                private_max_age: DEFAULT_PRIVATE_MAX_AGE,
                where_memo: Arc::new(WhereMemo::new(DEFAULT_WHERE_MEMO_CAPACITY)),
            },
        }
    }

    /// The longest query string accepted (414 past it).
    pub fn max_query_len(mut self, max_len: usize) -> Self {
        self.config.max_query_len = max_len;
        self
    }

    /// The largest subset `POST` body accepted (413 past it).
    pub fn max_body_len(mut self, max_len: usize) -> Self {
        self.config.max_body_len = max_len;
        self
    }

    /// The limits on client `where`, `subset__where` and `subset__order_by`.
    pub fn sql_limits(mut self, limits: SqlLimits) -> Self {
        self.config.sql_limits = limits;
        self
    }

    /// How responses that depend on the principal are made safe for shared caches.
    pub fn cache_safety(mut self, safety: CacheSafety) -> Self {
        self.config.cache_safety = safety;
        self
    }

    /// The longest a browser may keep a response made private by [`CacheSafety::Private`]
    /// (default [`DEFAULT_PRIVATE_MAX_AGE`], 60 s): `max-age`, `stale-while-revalidate` and
    /// `stale-if-error` are capped at it (whole seconds), and `Expires` is dropped.
    ///
    /// Electric gives an initial snapshot a week's `max-age`, right for a CDN in front of
    /// Electric, whose handles it rotates; a browser keeping that long would replay a handle
    /// Electric has retired and then sync through 409s.
    pub fn private_max_age(mut self, max_age: Duration) -> Self {
        self.config.private_max_age = max_age;
        self
    }

    /// The request headers that carry the principal's credentials, named in `Vary` on
    /// responses that depend on the principal (default: `authorization`, `cookie`).
    pub fn vary_on(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.config.vary_on = VaryOn::new(headers.into_iter().collect());
        self
    }

    /// How many composed `where` clauses to keep (default
    /// [`DEFAULT_WHERE_MEMO_CAPACITY`]; `0` keeps none).
    ///
    /// Clients repeat their shape's `where` on every request, and checking and composing it is
    /// most of this layer's work. The composed text depends only on the client's text, its
    /// number of params, the visible columns, the row filter's text and the SQL limits (never
    /// on the row filter's values, which are sent as params), and the memo is keyed on all of
    /// them, so a kept clause is exactly the one that would be composed again. Texts over 4 KiB
    /// are not kept; a full memo is emptied.
    ///
    /// One entry serves every principal with the same columns and row filter, so how fast a
    /// request is answered can tell a caller whether someone recently sent the same `where`
    /// text. Values passed as `params[n]` are not part of the text; if
    /// the literals clients write into `where` are sensitive, set `0`.
    pub fn where_memo_capacity(mut self, capacity: usize) -> Self {
        self.config.where_memo = Arc::new(WhereMemo::new(capacity));
        self
    }
}

impl<S> Layer<S> for ShapeParamPolicyLayer {
    type Service = ShapeParamPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShapeParamPolicy {
            inner,
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The service of [`ShapeParamPolicyLayer`].
#[derive(Clone)]
pub struct ShapeParamPolicy<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for ShapeParamPolicy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShapeParamPolicy")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ShapeParamPolicy<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone waits its turn; the instance that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture {
            inner: Box::pin(async move {
                if request.method() == Method::OPTIONS {
                    // A CORS preflight that no outer CORS layer answered: Electric answers it
                    // from its headers alone, so nothing the client put in the query or body
                    // goes on (nothing unchecked is ever forwarded).
                    let (mut parts, _) = request.into_parts();
                    parts.uri = with_query(std::mem::take(&mut parts.uri), "").unwrap_or_default();
                    let bare = Request::from_parts(parts, RequestBody::full(Bytes::new()));
                    let response = inner.call(bare).await?;
                    return Ok(response.map(ResponseBody::inner));
                }
                let (upstream, depends_on_principal) = match authorize(&config, request).await {
                    Ok(authorized) => {
                        observe::record_decision(true);
                        authorized
                    }
                    Err(rejection) => {
                        observe::record_decision(false);
                        tracing::info!(
                            status = rejection.status().as_u16(),
                            reason = rejection.message(),
                            fields = ?rejection.field_errors().collect::<Vec<_>>(),
                            "shape request refused"
                        );
                        return Ok(rejection.into_response());
                    }
                };
                let mut response = inner.call(upstream).await?;
                if depends_on_principal {
                    make_cache_safe(
                        response.headers_mut(),
                        CacheRules {
                            safety: config.cache_safety,
                            vary_on: &config.vary_on,
                            private_max_age: config.private_max_age,
                        },
                    );
                }
                Ok(response.map(ResponseBody::inner))
            }),
        }
    }
}

/// Checks the request and builds the upstream one; also says whether the response depends on
/// the principal.
async fn authorize<B>(
    config: &Config,
    request: Request<B>,
) -> Result<(Request<RequestBody<B>>, bool), Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    let is_post = match parts.method {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return Err(Rejection::method_not_allowed(&ALLOWED_METHODS)),
    };
    let raw_query = parts.uri.query().unwrap_or_default();
    let mut client =
        ShapeRequest::from_pairs(QueryPairs::parse_limited(raw_query, config.max_query_len)?)?;
    observe::record_live(client.live, client.live_sse);
    if is_post {
        let subset = read_subset_body(&parts, body, config.max_body_len).await?;
        if client.subset.is_present() && subset.is_present() {
            return Err(Rejection::invalid_request()
                .with_field_error("subset", "given both in the query and in the body"));
        }
        if subset.is_present() {
            client.subset = subset;
        }
        client.validate()?;
    }

    let definition = config.policy.decide(&parts, &client).await?;
    if definition.client_shape_matched {
        // The client's shape is the definition's (the policy compared them): what goes on is
        // the definition's own where, params and columns, rendered from the server's text.
        client.where_clause = None;
        client.params.clear();
        client.columns = None;
    }
    if is_post && !definition.subsets {
        return Err(Rejection::forbidden()
            .with_field_error("subset", "subsets are not allowed for this shape"));
    }
    let mut upstream = rebuild(&client, &definition, config.sql_limits, &config.where_memo)?;
    // The server-owned table the policy allowed, never the text a refused client sent.
    observe::record_shape(&definition.table, upstream.subset.is_present());
    tracing::debug!(
        table = %definition.table,
        client_where = client.where_clause.is_some(),
        subset = upstream.subset.is_present(),
        row_filter = definition.row_filter.is_some(),
        depends_on_principal = definition.depends_on_principal,
        extras_dropped = client.extras.len(),
        credentials_dropped = client.secret.is_some() || client.api_secret.is_some(),
        "shape request authorized"
    );

    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(TRANSFER_ENCODING);
    let body = if is_post {
        let bytes = subset_to_body(&std::mem::take(&mut upstream.subset));
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        bytes
    } else {
        parts.headers.remove(CONTENT_TYPE);
        Bytes::new()
    };
    parts.uri = with_query(std::mem::take(&mut parts.uri), &upstream.to_query_string())
        .ok_or_else(|| Rejection::invalid_request().with_field_error("query", "is invalid"))?;
    Ok((
        Request::from_parts(parts, RequestBody::full(body)),
        definition.depends_on_principal,
    ))
}

async fn read_subset_body<B>(
    parts: &Parts,
    body: B,
    max_len: usize,
) -> Result<SubsetParams, Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_len as u64) {
        return Err(Rejection::payload_too_large());
    }
    let bytes = match Limited::new(body, max_len).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(Rejection::payload_too_large())
        }
        Err(_) => {
            return Err(Rejection::invalid_request().with_field_error("body", "could not be read"))
        }
    };
    subset_from_body(&bytes)
}
