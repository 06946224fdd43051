//! SQL fragments (`where`, `subset__where`, `subset__order_by`, a policy's row filter), read
//! with Postgres's own parser.
//!
//! Text is parsed by libpg_query, the parser Electric itself reads `where` with, in the very
//! statement Electric builds around it: a where as `SELECT 1 WHERE <text>`, an order-by list as
//! `SELECT 1 ORDER BY <text>`. It is refused when it holds a comment (`x=1 --`, `/* ... */`: a
//! comment is how an injected suffix hides the rest of a string-built clause), a `;`, a
//! placeholder not written `$1`, `$2`, ..., a `)` that closes more than the text opened, or
//! anything that makes the statement more than that one SELECT with that one clause
//! (`true UNION SELECT secret FROM keys`, `id LIMIT 1`), and when it is longer or nested deeper
//! than the [`SqlLimits`].
//!
//! The layers compose these trees and render them with libpg_query's deparser; what is sent is
//! read back with the same parser and compared with the tree it was rendered from
//! ([`SqlExpr::to_sql`]), so it means upstream what it meant when it was checked. No SQL is
//! ever built by pasting text.
//!
//! What a client's expression may contain (which columns, functions, casts and operators) is
//! the policy's rule, not the protocol's: see [`crate::policy`].

mod parse;
mod render;
mod tree;

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use pg_query::protobuf::{Node, SortBy, SortByDir, SortByNulls};
use pg_query::NodeEnum;

use parse::Clause;
pub(crate) use tree::column_name;

/// Limits on a client's SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlLimits {
    /// The longest text accepted, in bytes.
    pub max_len: usize,
    /// The deepest nesting accepted: of parentheses and brackets in the text, and of the
    /// expression tree a client's text parses to.
    pub max_depth: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_len: 4 * 1024,
            max_depth: 32,
        }
    }
}

impl SqlLimits {
    /// Limits with the given maximum length and depth.
    pub fn new(max_len: usize, max_depth: usize) -> Self {
        Self { max_len, max_depth }
    }
}

/// The deepest parenthesis nesting of a server-owned expression (a policy's row filter). The
/// tree itself is bounded by the parser: libpg_query hands trees over as protobuf messages,
/// which are not read past 100 levels (about 48 levels of expression).
pub(crate) const POLICY_MAX_DEPTH: usize = 128;

/// Why a client's SQL expression was refused. Messages are the crate's own; they never
/// repeat the client's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// Longer than [`SqlLimits::max_len`].
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    /// Nested deeper than [`SqlLimits::max_depth`].
    #[error("is nested too deeply")]
    TooDeep,
    /// An empty expression.
    #[error("is empty")]
    Empty,
    /// Contains a `--` or `/* */` comment.
    #[error("must not contain comments")]
    Comment,
    /// Contains `;`.
    #[error("must be a single expression (no `;`)")]
    StatementSeparator,
    /// Text after one complete expression.
    #[error("has unexpected text after the expression")]
    TrailingInput,
    /// Not a valid expression.
    #[error("is not a valid SQL expression")]
    Syntax,
    /// Contains a subquery (`EXISTS`, `IN (SELECT ...)`, `(SELECT ...)`): it would read other
    /// tables.
    #[error("must not contain subqueries")]
    Subquery,
    /// Names a column the client may not see (the name is the client's own, cut short).
    #[error("references a column that is not visible: {0}")]
    HiddenColumn(String),
    /// Names a column with a table or schema (`items.x`, `other.x`).
    #[error("must name columns without a table or schema")]
    QualifiedColumn,
    /// Calls a function outside the allow-list (the name is the client's own, cut short).
    #[error("calls a function that is not allowed: {0}")]
    FunctionNotAllowed(String),
    /// Uses a construct outside the allow-list (custom operators, casts to catalog types,
    /// window functions, ...).
    #[error("uses {0}, which is not allowed")]
    NotAllowed(&'static str),
    /// A placeholder that is not `$n` with `n` a positive integer written without leading
    /// zeros.
    #[error("has a placeholder that is not $n")]
    BadPlaceholder,
    /// `$n` with no value given for it.
    #[error("uses ${0} but no value is given for it")]
    MissingParam(usize),
    /// A value given for `$n` that the expression does not use.
    #[error("does not use ${0}, for which a value is given")]
    UnusedParam(usize),
    /// The expression could not be written as SQL text that reads back as itself.
    #[error("cannot be forwarded as written")]
    NotRenderable,
}

/// One parsed SQL boolean expression: the `WHERE` clause of Postgres's parse of
/// `SELECT 1 WHERE <text>`.
///
/// Two expressions are equal when their trees are, wherever their tokens stood in the text
/// (`id=1` and `id = 1` are equal; `id = 1` and `1 = id` are not).
#[derive(Clone)]
pub struct SqlExpr {
    node: Box<Node>,
}

impl SqlExpr {
    /// Parses a where-style boolean expression from client text.
    pub fn parse(text: &str, limits: SqlLimits) -> Result<Self, SqlError> {
        let select = parse::statement(Clause::Where, text, limits)?;
        let node = select.where_clause.ok_or(SqlError::Empty)?;
        Ok(Self { node })
    }

    /// The root of the expression tree.
    pub(crate) fn node(&self) -> Option<&NodeEnum> {
        self.node.node.as_ref()
    }

    /// The `$n` placeholders used, by number, wherever they are (subqueries included).
    pub(crate) fn placeholders(&self) -> Result<BTreeSet<usize>, SqlError> {
        tree::param_numbers(&self.node)?
            .into_iter()
            .map(|number| {
                usize::try_from(number)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(SqlError::BadPlaceholder)
            })
            .collect()
    }

    /// Adds `by` to every `$n` placeholder, so this expression's values can follow `by` others.
    ///
    /// The walk knows the nodes a where clause is made of, subqueries' clauses included;
    /// [`renumbers_fully`](Self::renumbers_fully) tells whether it reaches every placeholder of
    /// this expression, and a row filter is only accepted when it does.
    pub(crate) fn shift_placeholders(&mut self, by: usize) -> Result<(), SqlError> {
        let by = i32::try_from(by).map_err(|_| SqlError::BadPlaceholder)?;
        tree::shift_params(&mut self.node, by)
    }

    /// Whether [`shift_placeholders`](Self::shift_placeholders) moves every placeholder of this
    /// expression (the parse tree holds nodes its walk does not enter only in constructs no
    /// where clause needs).
    pub(crate) fn renumbers_fully(&self) -> bool {
        let mut shifted = self.clone();
        let (Ok(before), Ok(()), Ok(after)) = (
            tree::param_numbers(&self.node),
            shifted.shift_placeholders(1),
            tree::param_numbers(&shifted.node),
        ) else {
            return false;
        };
        before.len() == after.len() && before.iter().zip(&after).all(|(b, a)| b + 1 == *a)
    }

    /// `(self) AND (other)` as one tree, the tree Postgres reads from that text: both sides
    /// stay whole (neither can reach into the other whatever its operators), and a left side
    /// that is itself an `AND` lends its arguments, as Postgres's parser flattens `AND` chains.
    pub(crate) fn and(self, other: SqlExpr) -> SqlExpr {
        Self {
            node: tree::and(self.node, other.node),
        }
    }

    /// The expression as the SQL text sent upstream, refused unless that text reads back, with
    /// the same parser and the same checks on its tokens, as this very tree.
    ///
    /// The read-back is what keeps "what is checked is what is sent" true across the deparser:
    /// with two parsers that disagreed about a backslash before a quote, `'x\'') OR true --'`
    /// once went upstream as text that Postgres ended after the backslash, leaving the rest
    /// (and a comment swallowing the row filter) as SQL.
    pub(crate) fn to_sql(&self) -> Result<String, SqlError> {
        let text = render::clause(Clause::Where, render::with_where(&self.node))?;
        let read = parse::statement(Clause::Where, &text, render::READ_BACK_LIMITS)
            .map_err(|_| SqlError::NotRenderable)?;
        let same = match read.where_clause {
            Some(read) => tree::same(&read, &self.node),
            None => false,
        };
        if same {
            Ok(text)
        } else {
            Err(SqlError::NotRenderable)
        }
    }
}

impl PartialEq for SqlExpr {
    fn eq(&self, other: &Self) -> bool {
        tree::same(&self.node, &other.node)
    }
}

impl Eq for SqlExpr {}

impl Hash for SqlExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        tree::canonical_bytes(&self.node).hash(state);
    }
}

impl fmt::Display for SqlExpr {
    /// The expression as libpg_query's deparser writes it (a layer that sends it upstream also
    /// reads the text back and compares the trees first).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match render::clause(Clause::Where, render::with_where(&self.node)) {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("<not renderable>"),
        }
    }
}

impl fmt::Debug for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlExpr({self})")
    }
}

/// A client's `order_by` (`subset__order_by`): a list of `column [ASC|DESC] [NULLS FIRST|LAST]`,
/// the `ORDER BY` clause of Postgres's parse of `SELECT 1 ORDER BY <text>`.
#[derive(Clone)]
pub struct SqlOrderBy {
    /// `SortBy` nodes, each of one unqualified column.
    items: Vec<Node>,
}

/// One key of an order-by list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderKey<'a> {
    /// The column, as Postgres reads the name (unquoted names lowercased).
    pub(crate) column: &'a str,
    pub(crate) descending: bool,
    /// `NULLS FIRST` (`Some(true)`), `NULLS LAST` (`Some(false)`), or the direction's default.
    pub(crate) nulls_first: Option<bool>,
}

impl SqlOrderBy {
    /// Parses an order-by list from client text, refusing anything but bare column names with
    /// optional direction and null ordering.
    pub fn parse(text: &str, limits: SqlLimits) -> Result<Self, SqlError> {
        let select = parse::statement(Clause::OrderBy, text, limits)?;
        let order = Self {
            items: select.sort_clause,
        };
        for item in &order.items {
            key(item)?;
        }
        Ok(order)
    }

    /// The keys, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = OrderKey<'_>> {
        // Every item was read by `key` in `parse`.
        self.items.iter().filter_map(|item| key(item).ok())
    }

    /// The list as the SQL text sent upstream, refused unless that text reads back as this
    /// very list (see [`SqlExpr::to_sql`]).
    pub(crate) fn to_sql(&self) -> Result<String, SqlError> {
        let text = render::clause(Clause::OrderBy, render::with_order(&self.items))?;
        let read = parse::statement(Clause::OrderBy, &text, render::READ_BACK_LIMITS)
            .map_err(|_| SqlError::NotRenderable)?;
        let same = read.sort_clause.len() == self.items.len()
            && read
                .sort_clause
                .iter()
                .zip(&self.items)
                .all(|(read, item)| tree::same(read, item));
        if same {
            Ok(text)
        } else {
            Err(SqlError::NotRenderable)
        }
    }
}

/// The one form of order-by item accepted.
fn key(item: &Node) -> Result<OrderKey<'_>, SqlError> {
    const ONLY_COLUMNS: SqlError =
        SqlError::NotAllowed("an order other than column [ASC|DESC] [NULLS FIRST|LAST]");
    let Some(NodeEnum::SortBy(sort)) = item.node.as_ref() else {
        return Err(ONLY_COLUMNS);
    };
    let SortBy {
        node,
        sortby_dir,
        sortby_nulls,
        use_op,
        location: _,
    } = sort.as_ref();
    let descending = match SortByDir::try_from(*sortby_dir) {
        Ok(SortByDir::SortbyDefault | SortByDir::SortbyAsc) => false,
        Ok(SortByDir::SortbyDesc) => true,
        _ => return Err(ONLY_COLUMNS),
    };
    let nulls_first = match SortByNulls::try_from(*sortby_nulls) {
        Ok(SortByNulls::SortbyNullsDefault) => None,
        Ok(SortByNulls::SortbyNullsFirst) => Some(true),
        Ok(SortByNulls::SortbyNullsLast) => Some(false),
        _ => return Err(ONLY_COLUMNS),
    };
    if !use_op.is_empty() {
        return Err(ONLY_COLUMNS);
    }
    let column = match node.as_ref().and_then(|node| node.node.as_ref()) {
        Some(NodeEnum::ColumnRef(column)) => tree::column_name(column)?,
        _ => return Err(ONLY_COLUMNS),
    };
    Ok(OrderKey {
        column,
        descending,
        nulls_first,
    })
}

impl PartialEq for SqlOrderBy {
    fn eq(&self, other: &Self) -> bool {
        self.items.len() == other.items.len()
            && self
                .items
                .iter()
                .zip(&other.items)
                .all(|(a, b)| tree::same(a, b))
    }
}

impl Eq for SqlOrderBy {}

impl Hash for SqlOrderBy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for item in &self.items {
            tree::canonical_bytes(item).hash(state);
        }
    }
}

impl fmt::Display for SqlOrderBy {
    /// The list as libpg_query's deparser writes it, as it is sent upstream (after the same
    /// read-back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match render::clause(Clause::OrderBy, render::with_order(&self.items)) {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("<not renderable>"),
        }
    }
}

impl fmt::Debug for SqlOrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlOrderBy({self})")
    }
}

#[cfg(test)]
mod tests;
