//! What a policy decides: the [`ShapeDefinition`] a client may see, and the [`Policy`] trait.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::protocol::{
    Identifier, LogMode, Replica, ShapeRequest, SqlExpr, SqlLimits, TableName, POLICY_MAX_DEPTH,
};
use crate::rejection::Rejection;

use super::rules::PolicyError;

/// The future a [`Policy`] returns.
pub type DecisionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ShapeDefinition, Rejection>> + Send + 'a>>;

/// Decides which shape a client may see.
///
/// A policy sees the request's parts (headers, and extensions, where the app's own auth layer
/// put its principal) and the client's parsed [`ShapeRequest`] (including unknown keys the
/// client sent as hints, in [`ShapeRequest::extras`]), and answers with the server-owned
/// [`ShapeDefinition`] or a [`Rejection`] (401 without a principal, 403 for a forbidden table).
/// [`ShapePolicy`](super::ShapePolicy) is the declarative one; [`policy_fn`] turns a closure
/// into one.
pub trait Policy: Send + Sync + 'static {
    /// The shape this client may see.
    fn decide<'a>(&'a self, parts: &'a Parts, request: &'a ShapeRequest) -> DecisionFuture<'a>;
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn decide<'a>(&'a self, parts: &'a Parts, request: &'a ShapeRequest) -> DecisionFuture<'a> {
        (**self).decide(parts, request)
    }
}

/// A [`Policy`] from a closure; see [`policy_fn`].
#[derive(Clone)]
pub struct PolicyFn<F> {
    decide: F,
}

impl<F> fmt::Debug for PolicyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyFn").finish_non_exhaustive()
    }
}

/// A [`Policy`] from a closure over the request parts and the client's parsed request,
/// returning a future of the decision. Take what the decision needs out of the borrowed
/// arguments before the `async move` block (the future may outlive them):
///
/// ```
/// use tower_electric::policy::{policy_fn, ShapeDefinition};
/// use tower_electric::protocol::TableName;
/// use tower_electric::rejection::Rejection;
///
/// let items = TableName::parse("items")?;
/// let policy = policy_fn(move |_parts: &http::request::Parts, request: &tower_electric::protocol::ShapeRequest| {
///     let allowed = request.table.as_ref() == Some(&items);
///     let definition = ShapeDefinition::new(items.clone()).depends_on_principal(false);
///     async move { if allowed { Ok(definition) } else { Err(Rejection::forbidden()) } }
/// });
/// # let _ = policy;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn policy_fn<F, Fut>(decide: F) -> PolicyFn<F>
where
    F: Fn(&Parts, &ShapeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ShapeDefinition, Rejection>> + Send + 'static,
{
    PolicyFn { decide }
}

impl<F, Fut> Policy for PolicyFn<F>
where
    F: Fn(&Parts, &ShapeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ShapeDefinition, Rejection>> + Send + 'static,
{
    fn decide<'a>(&'a self, parts: &'a Parts, request: &'a ShapeRequest) -> DecisionFuture<'a> {
        Box::pin((self.decide)(parts, request))
    }
}

/// The limits on a policy's own row filter text: server-owned, so generous.
const POLICY_SQL_LIMITS: SqlLimits = SqlLimits {
    max_len: 64 * 1024,
    max_depth: POLICY_MAX_DEPTH,
};

/// A server-owned row filter, parsed once: a where expression with `$1..$n` placeholders whose
/// values are given per request (see [`ShapeDefinition::row_filter`]).
///
/// Unlike a client's where, it may use any column (hidden ones included) and any construct
/// Electric accepts, subqueries included: it is the server's text. Its values are only ever
/// sent as `params[n]`, never pasted into the SQL. It is read with Postgres's own parser, like
/// a client's where; a filter whose `$n` sit inside a construct the renumbering walk does not
/// enter (none a where clause needs) is refused when it is parsed.
#[derive(Clone)]
pub struct RowFilter {
    expr: Arc<SqlExpr>,
    /// The expression as sent upstream, rendered and read back once, at build time.
    sql: Arc<str>,
    param_count: usize,
}

impl RowFilter {
    /// Parses the filter with Postgres's parser, refusing comments, `;`, trailing text, and
    /// placeholders other than exactly `$1..$n`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let invalid = |reason: String| PolicyError::RowFilter { reason };
        let expr = SqlExpr::parse(text, POLICY_SQL_LIMITS).map_err(|e| invalid(e.to_string()))?;
        let used = expr.placeholders().map_err(|e| invalid(e.to_string()))?;
        let param_count = used.len();
        if used.iter().copied().ne(1..=param_count) {
            return Err(invalid("placeholders must be $1..$n without gaps".into()));
        }
        // Refused here, at build time, rather than on every request: a filter that does not
        // render, or whose placeholders cannot all be moved after a client's own, or that does
        // not render once ANDed after a client's where.
        let sql = expr.to_sql().map_err(|e| invalid(e.to_string()))?;
        if !expr.renumbers_fully() {
            return Err(invalid(
                "uses $n inside a construct whose placeholders cannot be renumbered".into(),
            ));
        }
        let composed = SqlExpr::parse("true", SqlLimits::default())
            .map(|client| client.and(expr.clone()))
            .and_then(|composed| composed.to_sql());
        if let Err(error) = composed {
            return Err(invalid(error.to_string()));
        }
        Ok(Self {
            expr: Arc::new(expr),
            sql: sql.into(),
            param_count,
        })
    }

    /// How many values the filter takes.
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    pub(crate) fn expr(&self) -> &SqlExpr {
        &self.expr
    }

    /// The filter as sent upstream when no client `where` shifts its placeholders.
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }
}

/// Two filters are equal when their rendered text is: the text was read back into the same
/// tree at build time, so equal texts are equal trees.
impl PartialEq for RowFilter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.expr, &other.expr) || self.sql == other.sql
    }
}

impl Eq for RowFilter {}

impl fmt::Debug for RowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowFilter({})", self.expr)
    }
}

/// The values of a row filter for one request. Kept out of `Debug`: they are other tenants'
/// keys as far as logs are concerned.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BoundFilter {
    pub(crate) filter: RowFilter,
    pub(crate) params: Vec<String>,
}

impl fmt::Debug for BoundFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundFilter")
            .field("filter", &self.filter)
            .field("params", &format_args!("[{} redacted]", self.params.len()))
            .finish()
    }
}

/// The shape a client may see, decided by a [`Policy`]: the server-owned shape definition
/// (table, columns, row filter, replica) and what the client may add to it (its own where,
/// subsets, replica and log modes).
///
/// The layer builds the upstream request from this and the protocol params of the client's
/// request, nothing else. Defaults are closed: no client where, no subsets, every column
/// visible unless [`columns`](Self::columns) says otherwise, and the response is treated as
/// depending on the principal (made private) unless
/// [`depends_on_principal(false)`](Self::depends_on_principal) says otherwise.
///
/// Cloning one is cheap (the column list is shared, the default modes are static), as
/// [`ShapePolicy`](super::ShapePolicy) clones a table's definition on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ShapeDefinition {
    pub(crate) table: TableName,
    pub(crate) columns: Option<Arc<[Identifier]>>,
    pub(crate) row_filter: Option<BoundFilter>,
    pub(crate) replica: Option<Replica>,
    pub(crate) replica_modes: Cow<'static, [Replica]>,
    pub(crate) log_modes: Cow<'static, [LogMode]>,
    pub(crate) client_where: bool,
    pub(crate) subsets: bool,
    pub(crate) depends_on_principal: bool,
    /// The policy compared the client's own table, where, params and columns with this very
    /// definition and found them the same shape ([`GatekeeperPolicy`](super::GatekeeperPolicy)):
    /// the layer then sends the definition in their place instead of ANDing or refusing them.
    pub(crate) client_shape_matched: bool,
}

impl ShapeDefinition {
    /// The shape of `table`: every column, every row, nothing added by the client.
    pub fn new(table: TableName) -> Self {
        Self {
            table,
            columns: None,
            row_filter: None,
            replica: None,
            replica_modes: Cow::Borrowed(&[Replica::Default, Replica::Full]),
            log_modes: Cow::Borrowed(&[LogMode::Full, LogMode::ChangesOnly]),
            client_where: false,
            subsets: false,
            depends_on_principal: true,
            client_shape_matched: false,
        }
    }

    /// The columns the client may see. A client's `columns` must be a subset; without one this
    /// list is sent, so other columns never sync. Client where, subset where and order_by may
    /// only name these. Include the primary key: Electric requires it.
    pub fn columns(mut self, columns: impl IntoIterator<Item = Identifier>) -> Self {
        self.columns = Some(columns.into_iter().collect());
        self
    }

    /// The rows the client may see: `filter` with its `$1..$n` bound to `params`, sent as
    /// `params[n]` (renumbered after the client's own). A count that does not match the
    /// filter's is refused by the layer (fail closed).
    pub fn row_filter<V: Into<String>>(
        mut self,
        filter: &RowFilter,
        params: impl IntoIterator<Item = V>,
    ) -> Self {
        self.row_filter = Some(BoundFilter {
            filter: filter.clone(),
            params: params.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Forces `replica`; a client asking for the other mode is refused.
    pub fn replica(mut self, replica: Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The `replica` modes a client may ask for (default: both; neither shows more columns).
    pub fn replica_modes(mut self, modes: &[Replica]) -> Self {
        self.replica_modes = Cow::Owned(modes.to_vec());
        self
    }

    /// The `log` modes a client may ask for (default: both).
    pub fn log_modes(mut self, modes: &[LogMode]) -> Self {
        self.log_modes = Cow::Owned(modes.to_vec());
        self
    }

    /// Whether the client may narrow the shape with its own `where` (checked, then ANDed with
    /// the row filter). Default: no.
    pub fn allow_client_where(mut self, allow: bool) -> Self {
        self.client_where = allow;
        self
    }

    /// Whether the client may ask for subset snapshots (`subset__*` params, POST bodies).
    /// Default: no.
    pub fn allow_subsets(mut self, allow: bool) -> Self {
        self.subsets = allow;
        self
    }

    /// Whether the rows depend on who asks. When they do (the default), the response is made
    /// unfit for shared caches (see [`CacheSafety`](super::CacheSafety)).
    pub fn depends_on_principal(mut self, depends: bool) -> Self {
        self.depends_on_principal = depends;
        self
    }

    /// Marks the client's where, params and columns as already compared with this definition
    /// (and found equal): see [`GatekeeperPolicy`](super::GatekeeperPolicy).
    pub(crate) fn client_shape_matched(mut self) -> Self {
        self.client_shape_matched = true;
        self
    }

    /// The table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The visible columns, `None` when all are.
    pub fn visible_columns(&self) -> Option<&[Identifier]> {
        self.columns.as_deref()
    }
}
