//! SQL expressions from clients (`where`, `subset__where`), parsed once with a real parser.
//!
//! Client text is tokenized and parsed with `sqlparser`'s PostgreSQL dialect into one
//! expression tree, and refused when anything is left over (`x=1; drop ...`, `true) OR (true`),
//! when it contains a comment (`x=1 --`, `/* ... */`: a comment is how an injected suffix hides
//! the rest of a string-built clause), or when it is longer or deeper than the limits. Layers
//! compose and render these trees; no SQL is ever built by pasting client text.
//!
//! A client's expression is then held to an allow-list ([`SqlExpr::check_client`]): column
//! names, literals, `$n` placeholders, operators, `IN (list)`, `BETWEEN`, `LIKE`/`ILIKE`,
//! `IS [NOT] ...`, `CASE`, arrays and rows, `ANY`/`ALL` over arrays, casts to plain types and
//! calls of a few pure functions ([`HARMLESS_FUNCTIONS`]). Everything else is refused:
//! subqueries anywhere (they read other tables), columns outside the visible set or qualified
//! with a table (a where on a hidden column reveals it by which rows come back), other
//! functions (`pg_sleep`, `current_setting`, `pg_read_file` would run inside Electric's snapshot
//! query), casts to catalog types (`'t'::regclass` probes for tables), custom operators, window
//! and aggregate clauses.

use std::fmt;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, ArrayElemTypeDef, BinaryOperator, CastKind, DataType,
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, InTarget, ObjectName,
    ObjectNamePart, OrderByExpr, OrderBySort, Query, UnaryOperator, Value, ValueWithSpan, Visit,
    VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::ident::Identifier;
use crate::rejection::echo;

/// Limits on a client's SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlLimits {
    /// The longest text accepted, in bytes.
    pub max_len: usize,
    /// The deepest nesting accepted (the parser's recursion limit).
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
    /// A placeholder that is not `$n` with `n` a positive integer.
    #[error("has a placeholder that is not $n")]
    BadPlaceholder,
    /// `$n` with no value given for it.
    #[error("uses ${0} but no value is given for it")]
    MissingParam(usize),
    /// A value given for `$n` that the expression does not use.
    #[error("does not use ${0}, for which a value is given")]
    UnusedParam(usize),
    /// The expression could not be written as SQL text that reads back as itself.
    #[error("cannot be forwarded as written (a quoted name holding \"\"?)")]
    NotRenderable,
}

/// One parsed SQL expression.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqlExpr {
    expr: Expr,
}

impl SqlExpr {
    /// Parses a where-style boolean expression from client text.
    pub fn parse(text: &str, limits: SqlLimits) -> Result<Self, SqlError> {
        let mut parser = parser_for(text, limits)?;
        let expr = parser.parse_expr().map_err(|error| parse_error(&error))?;
        if parser.peek_token().token != Token::EOF {
            return Err(SqlError::TrailingInput);
        }
        Ok(Self { expr })
    }

    /// The expression tree.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // for the layers that evaluate it
    pub(crate) fn expr(&self) -> &Expr {
        &self.expr
    }
}

/// The functions a client expression may call: pure, cheap, reading only their arguments.
pub const HARMLESS_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "abs",
    "coalesce",
];

/// What a client's expression may reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientRules<'a> {
    /// The columns the client may see; `None` when every column is visible.
    pub(crate) visible: Option<&'a [Identifier]>,
    /// How many `$n` values the client gave: the expression must use exactly `$1..$n`.
    pub(crate) param_count: usize,
    /// The deepest expression tree accepted.
    pub(crate) max_depth: usize,
}

impl SqlExpr {
    /// Holds a client's expression to the allow-list described in the module docs, and checks
    /// that its placeholders are exactly `$1..$n` for the `n` values the client gave.
    pub(crate) fn check_client(&self, rules: &ClientRules<'_>) -> Result<(), SqlError> {
        let mut check = ClientCheck {
            rules,
            depth: 0,
            placeholders: BTreeSet::new(),
        };
        if let ControlFlow::Break(error) = self.expr.visit(&mut check) {
            return Err(*error);
        }
        if let Some(&missing) = check
            .placeholders
            .iter()
            .find(|&&index| index > rules.param_count)
        {
            return Err(SqlError::MissingParam(missing));
        }
        if let Some(unused) =
            (1..=rules.param_count).find(|index| !check.placeholders.contains(index))
        {
            return Err(SqlError::UnusedParam(unused));
        }
        Ok(())
    }

    /// The `$n` placeholders used, by number; any other placeholder form is refused.
    pub(crate) fn placeholders(&self) -> Result<BTreeSet<usize>, SqlError> {
        let mut found = BTreeSet::new();
        let flow = visit_expressions(&self.expr, |expr| match expr {
            Expr::Value(value) => match &value.value {
                Value::Placeholder(text) => match placeholder_index(text) {
                    Some(index) => {
                        found.insert(index);
                        ControlFlow::Continue(())
                    }
                    None => ControlFlow::Break(SqlError::BadPlaceholder),
                },
                _ => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        });
        match flow {
            ControlFlow::Break(error) => Err(error),
            ControlFlow::Continue(()) => Ok(found),
        }
    }

    /// Adds `by` to every `$n` placeholder, so this expression's values can follow `by` others.
    pub(crate) fn shift_placeholders(&mut self, by: usize) {
        let _ = visit_expressions_mut(&mut self.expr, |expr| {
            if let Expr::Value(value) = expr {
                if let Value::Placeholder(text) = &mut value.value {
                    if let Some(index) = placeholder_index(text) {
                        *text = format!("${}", index + by);
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }

    /// The expression as the SQL text sent upstream, refused unless that text reads back as
    /// this very expression.
    ///
    /// The check is what keeps "what is checked is what is sent" true across the printer:
    /// sqlparser writes a string literal holding `\'` (or `''`) without doubling the quotes, so
    /// `'x\'') OR true --'` (one string when read) would be printed `'x\') OR true --'`, which
    /// PostgreSQL, where a backslash is a plain character, ends after the backslash, leaving
    /// the rest (and a comment swallowing the row filter) as SQL.
    ///
    /// String literals holding a quote or a backslash are therefore written as `E'...'`
    /// escape strings (see [`postgres_form`]), which print and read back exactly; what still
    /// does not read back (a quoted name holding `""`) is refused.
    pub(crate) fn to_sql(&self) -> Result<String, SqlError> {
        let sent = postgres_form(&self.expr);
        let text = sent.to_string();
        if read_back(&text, Parser::parse_expr).as_ref() == Some(&sent) {
            Ok(text)
        } else {
            Err(SqlError::NotRenderable)
        }
    }

    /// `(self) AND (other)` as one tree: each side parenthesised, so neither can reach into
    /// the other whatever its operators.
    pub(crate) fn and(self, other: SqlExpr) -> SqlExpr {
        Self {
            expr: Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(self.expr))),
                op: BinaryOperator::And,
                right: Box::new(Expr::Nested(Box::new(other.expr))),
            },
        }
    }
}

/// `$n` with `n` a positive integer written without leading zeros → `n`.
fn placeholder_index(text: &str) -> Option<usize> {
    let digits = text.strip_prefix('$')?;
    let canonical = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    digits.parse().ok().filter(|_| canonical)
}

/// The walk behind [`SqlExpr::check_client`]. The break value is boxed to keep the visitor's
/// recursion frames small.
struct ClientCheck<'r, 'a> {
    rules: &'r ClientRules<'a>,
    depth: usize,
    placeholders: BTreeSet<usize>,
}

impl Visitor for ClientCheck<'_, '_> {
    type Break = Box<SqlError>;

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<Self::Break> {
        ControlFlow::Break(Box::new(SqlError::Subquery))
    }

    fn pre_visit_relation(&mut self, _relation: &ObjectName) -> ControlFlow<Self::Break> {
        ControlFlow::Break(Box::new(SqlError::Subquery))
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth += 1;
        if self.depth > self.rules.max_depth {
            return ControlFlow::Break(Box::new(SqlError::TooDeep));
        }
        match self.allow(expr) {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(Box::new(error)),
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Self::Break> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

impl ClientCheck<'_, '_> {
    /// One node against the allow-list; its children are visited after it.
    fn allow(&mut self, expr: &Expr) -> Result<(), SqlError> {
        match expr {
            Expr::Identifier(ident) => self.allow_column(ident),
            Expr::CompoundIdentifier(_) => Err(SqlError::QualifiedColumn),
            Expr::Value(value) => self.allow_value(&value.value),
            Expr::Exists { .. } | Expr::Subquery(_) => Err(SqlError::Subquery),
            Expr::In { target, .. } => match target {
                InTarget::List(_) => Ok(()),
                InTarget::Subquery(_) | InTarget::Table { .. } => Err(SqlError::Subquery),
                InTarget::Unnest(_) => Err(SqlError::NotAllowed("IN UNNEST")),
            },
            Expr::BinaryOp { op, .. } => match op {
                BinaryOperator::PGCustomBinaryOperator(_) | BinaryOperator::Custom(_) => {
                    Err(SqlError::NotAllowed("a custom operator"))
                }
                _ => Ok(()),
            },
            Expr::UnaryOp { op, .. } => match op {
                UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus => Ok(()),
                _ => Err(SqlError::NotAllowed("this unary operator")),
            },
            Expr::AnyOp { compare_op, .. } | Expr::AllOp { compare_op, .. } => match compare_op {
                BinaryOperator::PGCustomBinaryOperator(_) | BinaryOperator::Custom(_) => {
                    Err(SqlError::NotAllowed("a custom operator"))
                }
                _ => Ok(()),
            },
            Expr::Cast {
                kind,
                data_type,
                format,
                ..
            } => {
                let plain_kind = matches!(kind, CastKind::Cast | CastKind::DoubleColon);
                if plain_kind && format.is_none() && plain_type(data_type) {
                    Ok(())
                } else {
                    Err(SqlError::NotAllowed("a cast to this type"))
                }
            }
            Expr::Function(function) => allow_function(function),
            Expr::Nested(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::IsUnknown(_)
            | Expr::IsNotUnknown(_)
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::Between { .. }
            | Expr::Like { any: false, .. }
            | Expr::ILike { any: false, .. }
            | Expr::SimilarTo { .. }
            | Expr::Case { .. }
            | Expr::Tuple(_)
            | Expr::Array(_) => Ok(()),
            _ => Err(SqlError::NotAllowed("this kind of expression")),
        }
    }

    fn allow_column(&self, ident: &Ident) -> Result<(), SqlError> {
        allow_column(self.rules.visible, ident)
    }

    fn allow_value(&mut self, value: &Value) -> Result<(), SqlError> {
        match value {
            Value::Placeholder(text) => {
                let index = placeholder_index(text).ok_or(SqlError::BadPlaceholder)?;
                self.placeholders.insert(index);
                Ok(())
            }
            Value::Number(..)
            | Value::SingleQuotedString(_)
            | Value::EscapedStringLiteral(_)
            | Value::Boolean(_)
            | Value::Null => Ok(()),
            _ => Err(SqlError::NotAllowed("this kind of literal")),
        }
    }
}

/// Refuses a column the client may not see (`visible: None` is every column). Unquoted names
/// are lowercased as Postgres does; only double quotes quote a name.
fn allow_column(visible: Option<&[Identifier]>, ident: &Ident) -> Result<(), SqlError> {
    let name = match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some('"') => ident.value.clone(),
        Some(_) => return Err(SqlError::Syntax),
    };
    let seen = match visible {
        None => true,
        Some(columns) => columns.iter().any(|column| column.as_str() == name),
    };
    if seen {
        Ok(())
    } else {
        Err(SqlError::HiddenColumn(echo(&name).into_owned()))
    }
}

fn allow_function(function: &Function) -> Result<(), SqlError> {
    let name = match function.name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] if ident.quote_style.is_none() => {
            ident.value.to_ascii_lowercase()
        }
        _ => {
            return Err(SqlError::FunctionNotAllowed(
                echo(&function.name.to_string()).into_owned(),
            ))
        }
    };
    if !HARMLESS_FUNCTIONS.contains(&name.as_str()) {
        return Err(SqlError::FunctionNotAllowed(echo(&name).into_owned()));
    }
    let plain_call = !function.uses_odbc_syntax
        && matches!(function.parameters, FunctionArguments::None)
        && function.within_group.is_empty()
        && function.filter.is_none()
        && function.null_treatment.is_none()
        && function.over.is_none();
    let plain_args = match &function.args {
        FunctionArguments::List(list) => {
            list.duplicate_treatment.is_none()
                && list.clauses.is_empty()
                && list
                    .args
                    .iter()
                    .all(|arg| matches!(arg, FunctionArg::Unnamed(FunctionArgExpr::Expr(_))))
        }
        FunctionArguments::None => true,
        FunctionArguments::Subquery(_) => return Err(SqlError::Subquery),
    };
    if plain_call && plain_args {
        Ok(())
    } else {
        Err(SqlError::NotAllowed("this form of function call"))
    }
}

/// Casts to the plain types a where compares against; catalog types (`regclass`, `regproc`,
/// any custom name) are refused because their input functions look things up.
fn plain_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Array(ArrayElemTypeDef::SquareBracket(inner, _)) => plain_type(inner),
        DataType::Character(_)
        | DataType::Char(_)
        | DataType::CharacterVarying(_)
        | DataType::CharVarying(_)
        | DataType::Varchar(_)
        | DataType::Text
        | DataType::Uuid
        | DataType::Numeric(_)
        | DataType::Decimal(_)
        | DataType::Dec(_)
        | DataType::Float(_)
        | DataType::Float4
        | DataType::Float8
        | DataType::Real
        | DataType::Double(_)
        | DataType::DoublePrecision
        | DataType::Int2(_)
        | DataType::Int4(_)
        | DataType::Int8(_)
        | DataType::SmallInt(_)
        | DataType::Int(_)
        | DataType::Integer(_)
        | DataType::BigInt(_)
        | DataType::Bool
        | DataType::Boolean
        | DataType::Date
        | DataType::Time(..)
        | DataType::Timestamp(..)
        | DataType::Interval { .. }
        | DataType::JSON
        | DataType::JSONB
        | DataType::Bytea => true,
        _ => false,
    }
}

/// A client's `order_by` (`subset__order_by`): a list of `column [ASC|DESC] [NULLS FIRST|LAST]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SqlOrderBy {
    items: Vec<OrderByExpr>,
}

impl SqlOrderBy {
    /// Parses an order-by list from client text, refusing anything but bare column names with
    /// optional direction and null ordering.
    pub fn parse(text: &str, limits: SqlLimits) -> Result<Self, SqlError> {
        let mut parser = parser_for(text, limits)?;
        let items = parser
            .parse_comma_separated(Parser::parse_order_by_expr)
            .map_err(|error| parse_error(&error))?;
        if parser.peek_token().token != Token::EOF {
            return Err(SqlError::TrailingInput);
        }
        for item in &items {
            match (&item.expr, &item.options.sort, &item.with_fill) {
                (Expr::Identifier(_), None | Some(OrderBySort::Asc | OrderBySort::Desc), None) => {}
                (Expr::CompoundIdentifier(_), _, _) => return Err(SqlError::QualifiedColumn),
                _ => {
                    return Err(SqlError::NotAllowed(
                        "an order other than column [ASC|DESC] [NULLS FIRST|LAST]",
                    ))
                }
            }
        }
        Ok(Self { items })
    }

    /// Checks that every column ordered by is visible.
    pub(crate) fn check_visible(&self, visible: Option<&[Identifier]>) -> Result<(), SqlError> {
        self.items.iter().try_for_each(|item| match &item.expr {
            Expr::Identifier(ident) => allow_column(visible, ident),
            _ => Err(SqlError::QualifiedColumn),
        })
    }
}

impl SqlOrderBy {
    /// The list as the SQL text sent upstream, refused unless that text reads back as this
    /// very list (see [`SqlExpr::to_sql`]: quoted names go through the same printer).
    pub(crate) fn to_sql(&self) -> Result<String, SqlError> {
        let text = self.to_string();
        let read = read_back(&text, |parser| {
            parser.parse_comma_separated(Parser::parse_order_by_expr)
        });
        if read.as_ref() == Some(&self.items) {
            Ok(text)
        } else {
            Err(SqlError::NotRenderable)
        }
    }
}

/// Reads back text this module printed, with the same tokenizer rules as client text and room
/// for the depth of a composed expression; `None` unless it reads as one whole `T`.
fn read_back<T>(
    text: &str,
    parse: impl FnOnce(&mut Parser<'static>) -> Result<T, sqlparser::parser::ParserError>,
) -> Option<T> {
    // The parts were read within their own limits; the composition adds two levels.
    let limits = SqlLimits::new(usize::MAX, 2 * POLICY_MAX_DEPTH + 8);
    let mut parser = parser_for(text, limits).ok()?;
    let read = parse(&mut parser).ok()?;
    (parser.peek_token().token == Token::EOF).then_some(read)
}

/// The deepest a server-owned expression (a policy's row filter) is read.
pub(crate) const POLICY_MAX_DEPTH: usize = 128;

impl fmt::Display for SqlOrderBy {
    /// The list as SQL text, as it is sent upstream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.items.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SqlOrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlOrderBy({self})")
    }
}

/// A parser over `text` after the token-level checks: length, comments, `;`, emptiness.
pub(crate) fn parser_for(text: &str, limits: SqlLimits) -> Result<Parser<'static>, SqlError> {
    if text.len() > limits.max_len {
        return Err(SqlError::TooLong(limits.max_len));
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .map_err(|_| SqlError::Syntax)?;
    let mut meaningful = 0usize;
    for token in &tokens {
        match &token.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => return Err(SqlError::Comment),
            Token::Whitespace(_) => {}
            Token::SemiColon => return Err(SqlError::StatementSeparator),
            _ => meaningful += 1,
        }
    }
    if meaningful == 0 {
        return Err(SqlError::Empty);
    }
    Ok(Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(limits.max_depth)
        .with_tokens_with_locations(tokens))
}

pub(crate) fn parse_error(error: &sqlparser::parser::ParserError) -> SqlError {
    match error {
        sqlparser::parser::ParserError::RecursionLimitExceeded => SqlError::TooDeep,
        _ => SqlError::Syntax,
    }
}

impl fmt::Display for SqlExpr {
    /// The expression as SQL text for Postgres (string literals with quotes or backslashes
    /// as `E'...'`). Upstream requests also read the text back before sending it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        postgres_form(&self.expr).fmt(f)
    }
}
/// `expr` in the form it is written as SQL text for Postgres.
///
/// sqlparser's own `Display` is not enough: it leaves a quote that follows a backslash
/// undoubled (`'\'` for the value `\'`), while Postgres, with standard-conforming strings,
/// reads a backslash in `'...'` as a plain character, so such a literal would end early and
/// the rest of the client's string would be read as SQL. Every string literal holding a quote
/// or a backslash is therefore written as an escape string, `E'...'`, in which both are
/// escaped with a backslash and mean exactly one character each.
fn postgres_form(expr: &Expr) -> Expr {
    struct EscapeStrings;
    impl VisitorMut for EscapeStrings {
        type Break = ();
        fn post_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
            if let Value::SingleQuotedString(text) = &value.value {
                if text.contains(['\'', '\\']) {
                    value.value = Value::EscapedStringLiteral(text.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut expr = expr.clone();
    let _ = VisitMut::visit(&mut expr, &mut EscapeStrings);
    expr
}

impl fmt::Debug for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlExpr({})", self.expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SqlExpr, SqlError> {
        SqlExpr::parse(text, SqlLimits::default())
    }

    #[test]
    fn one_expression_parses_and_renders() {
        let expr = parse("id >= $1 AND title ILIKE '%a%'").unwrap();
        assert_eq!(expr.to_string(), "id >= $1 AND title ILIKE '%a%'");
    }

    #[test]
    fn injection_shapes_are_refused() {
        assert_eq!(parse("true) OR (true"), Err(SqlError::TrailingInput));
        assert_eq!(parse("x = 1 --"), Err(SqlError::Comment));
        assert_eq!(parse("x = 1 /* */ OR true"), Err(SqlError::Comment));
        assert_eq!(
            parse("x = 1; drop table items"),
            Err(SqlError::StatementSeparator)
        );
        assert_eq!(parse("x = 1 x = 2"), Err(SqlError::TrailingInput));
        assert_eq!(parse("   "), Err(SqlError::Empty));
        assert_eq!(parse("x = '1"), Err(SqlError::Syntax));
    }

    #[test]
    fn strings_with_quotes_or_backslashes_are_sent_as_escape_strings_that_read_back_the_same() {
        let expr = parse(r"title = '\'') OR true --' OR title = 'plain'").unwrap();
        let sent = expr.to_sql().unwrap();
        assert_eq!(sent, r"title = E'\\\') OR true --' OR title = 'plain'");
        let read = read_back(&sent, Parser::parse_expr).unwrap();
        assert_eq!(read, postgres_form(expr.expr()));
    }

    #[test]
    fn comment_markers_inside_strings_are_data() {
        assert!(parse("title = '-- not a comment /* */'").is_ok());
    }

    fn visible() -> Vec<Identifier> {
        ["id", "title", "done", "Mixed"]
            .iter()
            .map(|name| Identifier::new(*name).unwrap())
            .collect()
    }

    fn check(text: &str, param_count: usize) -> Result<(), SqlError> {
        let columns = visible();
        let rules = ClientRules {
            visible: Some(&columns),
            param_count,
            max_depth: 32,
        };
        parse(text)?.check_client(&rules)
    }

    #[test]
    fn allowed_client_expressions_pass() {
        for text in [
            "id = 1",
            "ID = 1 AND \"Mixed\" IS NOT NULL",
            "title ILIKE '%a%' OR NOT done",
            "id IN (1, 2, 3) AND id BETWEEN 1 AND 9",
            "lower(title) = 'a' AND coalesce(done, false)",
            "id::text = '1' AND CAST(id AS bigint) > 0",
            "id = ANY(ARRAY[1, 2])",
            "CASE WHEN done THEN 1 ELSE 0 END = 1",
            "(id, title) = (1, 'a')",
            "title = E'a\\'b'",
        ] {
            assert_eq!(check(text, 0), Ok(()), "{text}");
        }
    }

    #[test]
    fn subqueries_are_refused_wherever_they_are() {
        for text in [
            "EXISTS (SELECT 1 FROM secrets)",
            "id IN (SELECT id FROM other)",
            "id = (SELECT max(id) FROM other)",
            "lower((SELECT name FROM other LIMIT 1)) = 'a'",
            "id = ANY(SELECT id FROM other)",
            "NOT EXISTS (SELECT 1)",
        ] {
            assert_eq!(check(text, 0), Err(SqlError::Subquery), "{text}");
        }
    }

    #[test]
    fn hidden_and_qualified_columns_are_refused() {
        assert_eq!(
            check("internal_note = 'x'", 0),
            Err(SqlError::HiddenColumn("internal_note".into()))
        );
        assert_eq!(
            check("\"ID\" = 1", 0),
            Err(SqlError::HiddenColumn("ID".into()))
        );
        assert_eq!(
            check("mixed = 1", 0),
            Err(SqlError::HiddenColumn("mixed".into()))
        );
        assert_eq!(
            check("lower(internal_note) = 'x'", 0),
            Err(SqlError::HiddenColumn("internal_note".into()))
        );
        assert_eq!(check("items.id = 1", 0), Err(SqlError::QualifiedColumn));
        assert_eq!(check("other.secret = 1", 0), Err(SqlError::QualifiedColumn));
    }

    #[test]
    fn functions_casts_and_operators_outside_the_allow_list_are_refused() {
        assert_eq!(
            check("pg_sleep(10) IS NULL", 0),
            Err(SqlError::FunctionNotAllowed("pg_sleep".into()))
        );
        assert_eq!(
            check("current_setting('x') = 'y'", 0),
            Err(SqlError::FunctionNotAllowed("current_setting".into()))
        );
        assert!(matches!(
            check("pg_catalog.lower(title) = 'a'", 0),
            Err(SqlError::FunctionNotAllowed(_))
        ));
        assert!(matches!(
            check("count(id) OVER () > 1", 0),
            Err(SqlError::FunctionNotAllowed(_))
        ));
        assert!(matches!(
            check("lower(title) FILTER (WHERE done) = 'a'", 0),
            Err(SqlError::NotAllowed(_))
        ));
        assert!(matches!(
            check("'secrets'::regclass IS NOT NULL", 0),
            Err(SqlError::NotAllowed(_))
        ));
        assert!(matches!(
            check("title::my_type IS NOT NULL", 0),
            Err(SqlError::NotAllowed(_))
        ));
        assert!(matches!(
            check("id OPERATOR(pg_catalog.=) 1", 0),
            Err(SqlError::NotAllowed(_))
        ));
    }

    #[test]
    fn placeholders_must_match_the_values_given() {
        assert_eq!(check("id = $1 AND title = $2", 2), Ok(()));
        assert_eq!(check("id = $2", 2), Err(SqlError::UnusedParam(1)));
        assert_eq!(check("id = $3", 2), Err(SqlError::MissingParam(3)));
        assert_eq!(check("id = $1", 0), Err(SqlError::MissingParam(1)));
        assert_eq!(check("id = $01", 1), Err(SqlError::BadPlaceholder));
        assert!(check("id = ?", 1).is_err());
    }

    #[test]
    fn tree_depth_is_limited_even_for_flat_chains() {
        let chain = vec!["id = 1"; 40].join(" AND ");
        assert_eq!(check(&chain, 0), Err(SqlError::TooDeep));
    }

    #[test]
    fn composition_parenthesises_both_sides_and_shifts_the_second() {
        let client = parse("id = $1 OR title = $2").unwrap();
        let mut policy = parse("tenant_id = $1").unwrap();
        policy.shift_placeholders(2);
        let composed = client.and(policy);
        assert_eq!(
            composed.to_string(),
            "(id = $1 OR title = $2) AND (tenant_id = $3)"
        );
        assert_eq!(
            composed
                .placeholders()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    /// Found by the `policy_where` fuzz target (and in review): sqlparser prints `\'` and `''`
    /// inside a string value as they are, so the printed text read back as something else (for
    /// PostgreSQL, `'x\') OR true --'` ends after the backslash). Strings are now sent as
    /// `E'...'` and read back the same; a quoted name holding `""` still cannot be.
    #[test]
    fn only_what_prints_back_as_itself_is_sent() {
        assert_eq!(
            parse("title = 'It''s' AND id = E'a\\'b'").unwrap().to_sql(),
            Ok(r"title = E'It\'s' AND id = E'a\'b'".to_owned())
        );
        for (text, sent) in [
            (
                r"title = 'x\'') OR true --'",
                r"title = E'x\\\') OR true --'",
            ),
            ("title = 'a''''b'", r"title = E'a\'\'b'"),
            ("'''''''s1' = title", r"E'\'\'\'s1' = title"),
        ] {
            assert_eq!(parse(text).unwrap().to_sql().as_deref(), Ok(sent), "{text}");
        }
        let quoted_name = parse("\"a\"\"\"\"b\" = 1").unwrap();
        assert_eq!(quoted_name.to_sql(), Err(SqlError::NotRenderable));
        let order = SqlOrderBy::parse("\"a\"\"\"\"b\" DESC", SqlLimits::default()).unwrap();
        assert_eq!(order.to_sql(), Err(SqlError::NotRenderable));
        let order = SqlOrderBy::parse("\"a\"\"b\" DESC", SqlLimits::default()).unwrap();
        assert_eq!(order.to_sql(), Ok("\"a\"\"b\" DESC".to_owned()));
    }

    #[test]
    fn order_by_accepts_columns_with_direction_only() {
        let order =
            SqlOrderBy::parse("id DESC NULLS LAST, \"Mixed\"", SqlLimits::default()).unwrap();
        assert_eq!(order.to_string(), "id DESC NULLS LAST, \"Mixed\"");
        let columns = visible();
        assert_eq!(order.check_visible(Some(&columns)), Ok(()));
        let hidden = SqlOrderBy::parse("internal_note", SqlLimits::default()).unwrap();
        assert_eq!(
            hidden.check_visible(Some(&columns)),
            Err(SqlError::HiddenColumn("internal_note".into()))
        );
        for text in [
            "lower(title)",
            "id USING <",
            "(SELECT 1)",
            "id; drop",
            "id --",
        ] {
            assert!(
                SqlOrderBy::parse(text, SqlLimits::default()).is_err(),
                "{text}"
            );
        }
        assert_eq!(
            SqlOrderBy::parse("items.id", SqlLimits::default()),
            Err(SqlError::QualifiedColumn)
        );
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!("x = '{}'", "a".repeat(5000));
        assert_eq!(parse(&long), Err(SqlError::TooLong(4096)));
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(parse(&deep), Err(SqlError::TooDeep));
    }
}
