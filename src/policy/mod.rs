//! Authorize shape requests: which shape a client may see, and an upstream request that can
//! ask for nothing else.
//!
//! [`ShapeParamPolicyLayer`] parses the client's request with the [`protocol`](crate::protocol)
//! types, asks a [`Policy`] for the [`ShapeDefinition`] this client may see, and builds the
//! upstream query **from scratch**: the protocol params the definition allows (`offset`,
//! `handle`, `live`, `live_sse`, `cursor`, `expired_handle`, `log`, `cache-buster`, checked
//! subset params) plus the definition's `table`, `columns`, `where`, `params[n]`,
//! `queryable_columns` and `replica`. Nothing else the client sent goes on: not its extras (a
//! policy may read them as hints), not `secret`/`api_secret`/`source_id` (an API-token layer
//! further in adds Electric's secret), not its `queryable_columns`.
//!
//! The rebuilt query is canonical, so that an HTTP cache between the gateway and Electric can
//! serve one upstream answer to every client allowed the same shape: one rendering per value,
//! `columns` in the visible list's order, Electric's defaults (`log=full`, `replica=default`)
//! left out, `cursor` only on live requests, `expired_handle` only on refetches from `-1`/`now`.
//!
//! # The rules it keeps
//! - **Columns.** A client's `columns` must be a subset of the visible ones; without one the
//!   visible list is sent, so hidden columns never sync.
//! - **Where.** A client `where` (when the definition allows one) is read by Postgres's own
//!   parser as Electric reads it, `SELECT 1 WHERE <where>` (see [`SqlExpr`](crate::protocol::SqlExpr)),
//!   and must be one expression with nothing left over (no comments, no `;`), within length and
//!   depth limits. Its parse tree must then pass the allow-list: no subqueries anywhere, only
//!   visible columns and unqualified names (no system columns), only the functions in
//!   [`HARMLESS_FUNCTIONS`], the operators in [`OPERATORS`], casts to the [`PLAIN_TYPES`], and
//!   `$n` placeholders that are exactly the `params[n]` it gave. It is then combined with the
//!   policy's row filter as a tree, the tree of `(<client>) AND (<row filter>)`, rendered with
//!   Postgres's deparser and read back to the same tree: the client's `$1..$k` keep their
//!   numbers, the row filter's `$1..$m` become `$k+1..$k+m`, and the row filter's values are
//!   sent only as those `params[n]`.
//! - **Subsets.** `subset__where` and `subset__order_by` (a list of `column [ASC|DESC]
//!   [NULLS FIRST|LAST]`) follow the same rules against the same visible columns, and
//!   `queryable_columns` is set to them; Electric ANDs a subset's where with the shape's, row
//!   filter included. The structured `subset__*_expr` forms are not checked, so they are
//!   dropped (refused when sent without the text form).
//! - **Methods.** `GET` and `HEAD`; `POST` only for subsets, when allowed, with a body of at most
//!   [`max_body_len`](ShapeParamPolicyLayer::max_body_len) bytes (413 past it) holding only
//!   `where, params, limit, offset, order_by`, re-serialised from its checked form (Electric
//!   merges any other body key, `table` included, over the URL); `OPTIONS` untouched, for an
//!   outer CORS layer; anything else 405.
//! - **Caches.** Electric marks its responses `public`. When the definition depends on the
//!   principal, the response is made unfit for shared caches ([`CacheSafety`]).
//! - **Refusals** are [`Rejection`](crate::rejection::Rejection)s: 400 naming the malformed
//!   field, 401 without a principal, 403 naming the rule (never the policy's values), 405, 413,
//!   414. Decisions are `tracing` events; values and secrets are never logged.
//! - **Repeats.** A client sends its shape's `where` again on every request; the composed text
//!   is kept in a bounded memo keyed on everything it depends on (never on the row filter's
//!   values, which are params), so only a client's first request pays for the parse and checks
//!   ([`where_memo_capacity`](ShapeParamPolicyLayer::where_memo_capacity)).
//!
//! # Policies
//! - [`ShapePolicy`]: declarative, tables with their columns and row filters.
//! - [`policy_fn`]: a closure, async-capable.
//! - [`GatekeeperPolicy`]: Electric's gatekeeper pattern, the shape a verified token's claim
//!   names, and nothing else.
//!
//! # Example: a declarative multi-tenant policy in under 15 lines
//! ```
//! use http::{request::Parts, Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_electric::policy::{RequestBody, ShapeParamPolicyLayer, ShapePolicy, TablePolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! #[derive(Clone)]
//! struct Principal { tenant: String } // put in the extensions by the app's own auth layer
//!
//! fn tenant(parts: &Parts) -> Option<Vec<String>> {
//!     parts.extensions.get::<Principal>().map(|p| vec![p.tenant.clone()])
//! }
//! let policy = ShapePolicy::builder()
//!     .table(TablePolicy::new("items").columns(["id", "tenant_id", "title", "done"])
//!         .row_filter("tenant_id = $1", tenant).client_where(true).subsets(true))
//!     .table(TablePolicy::new("tenants").columns(["id", "name", "keys"]).row_filter("id = $1", tenant))
//!     .build()?;
//!
//! let electric = service_fn(|request: Request<RequestBody<Full<Bytes>>>| async move {
//!     // Stands in for the upstream: shows what it was asked.
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(request.uri().to_string()))))
//! });
//! let service = ServiceBuilder::new().layer(ShapeParamPolicyLayer::new(policy)).service(electric);
//!
//! let mut request = Request::get("/v1/shape?table=items&offset=-1&where=done&secret=guess")
//!     .body(Full::new(Bytes::new()))?;
//! request.extensions_mut().insert(Principal { tenant: "t1".into() });
//! let response = service.oneshot(request).await?;
//! let asked = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
//! assert_eq!(
//!     asked,
//!     "/v1/shape?columns=id%2Ctenant_id%2Ctitle%2Cdone&offset=-1&params[1]=t1\
//!      &queryable_columns=id%2Ctenant_id%2Ctitle%2Cdone&table=public.items\
//!      &where=done%20AND%20tenant_id%20%3D%20%241"
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a closure policy reading a principal
//! ```
//! use http::{request::Parts, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{service_fn, ServiceExt};
//! use tower_electric::policy::{policy_fn, CacheSafety, RequestBody, RowFilter, ShapeDefinition, ShapeParamPolicyLayer};
//! use tower_electric::protocol::{Identifier, ShapeRequest, TableName};
//! use tower_electric::rejection::Rejection;
//! use tower::Layer;
//!
//! #[derive(Clone)]
//! struct Principal { user: String, admin: bool }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Parsed once at startup; the closure only clones.
//! let projects = TableName::parse("projects")?;
//! let members_only = RowFilter::parse("owner = $1 OR $1 = ANY(member_ids)")?;
//! let columns = vec![Identifier::parse("id")?, Identifier::parse("name")?];
//!
//! let policy = policy_fn(move |parts: &Parts, request: &ShapeRequest| {
//!     let principal = parts.extensions.get::<Principal>().cloned();
//!     let asked = request.table.clone();
//!     let decision = match principal {
//!         None => Err(Rejection::unauthorized()),
//!         Some(_) if asked.as_ref() != Some(&projects) => Err(Rejection::forbidden()
//!             .with_message("table is not allowed")),
//!         // Admins see every project (still only the listed columns).
//!         Some(p) if p.admin => Ok(ShapeDefinition::new(projects.clone()).columns(columns.clone())),
//!         Some(p) => Ok(ShapeDefinition::new(projects.clone())
//!             .columns(columns.clone())
//!             .row_filter(&members_only, [p.user])
//!             .allow_client_where(true)),
//!     };
//!     async move { decision } // could await a database here
//! });
//! let layer = ShapeParamPolicyLayer::new(policy)
//!     .cache_safety(CacheSafety::Private)
//!     .vary_on([http::header::AUTHORIZATION]);
//!
//! let electric = service_fn(|_request: Request<RequestBody<Full<Bytes>>>| async move {
//!     let mut response = Response::new(Full::new(Bytes::new()));
//!     response.headers_mut().insert("cache-control", "public, max-age=60".parse()?);
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
//! });
//! let service = layer.layer(electric);
//!
//! let anonymous = Request::get("/v1/shape?table=projects&offset=-1").body(Full::new(Bytes::new()))?;
//! let response = service.clone().oneshot(anonymous).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! let mut request = Request::get("/v1/shape?table=projects&offset=-1").body(Full::new(Bytes::new()))?;
//! request.extensions_mut().insert(Principal { user: "u1".into(), admin: false });
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.headers()["cache-control"], "private, max-age=60");
//! assert_eq!(response.headers()["vary"], "authorization");
//! # Ok(())
//! # }
//! ```

mod allow;
mod body;
mod cache;
mod canonical;
mod decision;
mod gatekeeper;
mod layer;
mod memo;
mod rebuild;
mod rules;

pub use allow::{HARMLESS_FUNCTIONS, OPERATORS, PLAIN_TYPES};
pub use body::RequestBody;
pub use cache::{CacheSafety, DEFAULT_PRIVATE_MAX_AGE};
pub use decision::{policy_fn, DecisionFuture, Policy, PolicyFn, RowFilter, ShapeDefinition};
/// The response future of [`ShapeParamPolicy`]: the policy decision (possibly async), the
/// body read for `POST`, then the inner service's response.
pub type ResponseFuture<B, E> = crate::future::BoxedResponseFuture<crate::body::ResponseBody<B>, E>;
pub use gatekeeper::{GatekeeperPolicy, DEFAULT_SHAPE_CLAIM};
pub use layer::{ShapeParamPolicy, ShapeParamPolicyLayer, DEFAULT_MAX_BODY_LEN};
pub use memo::DEFAULT_WHERE_MEMO_CAPACITY;
pub use rules::{PolicyError, ShapePolicy, ShapePolicyBuilder, TablePolicy};
