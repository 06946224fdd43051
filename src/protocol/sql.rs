//! SQL expressions from clients (`where`, `subset__where`), parsed once with a real parser.
//!
//! Client text is tokenized and parsed with `sqlparser`'s PostgreSQL dialect into one
//! expression tree, and refused when anything is left over (`x=1; drop ...`, `true) OR (true`),
//! when it contains a comment (`x=1 --`, `/* ... */`: a comment is how an injected suffix hides
//! the rest of a string-built clause), or when it is longer or deeper than the limits. Layers
//! compose and render these trees; no SQL is ever built by pasting client text.

use std::fmt;

use sqlparser::ast::Expr;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

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

    /// Wraps an expression tree built by the crate.
    #[allow(dead_code)] // for the layers that compose and evaluate expressions
    pub(crate) fn from_expr(expr: Expr) -> Self {
        Self { expr }
    }

    /// The expression tree.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // for the layers that evaluate it
    pub(crate) fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The expression tree, owned.
    #[allow(dead_code)] // for the layers that compose and evaluate expressions
    pub(crate) fn into_expr(self) -> Expr {
        self.expr
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
    /// The expression as SQL text, as it is sent upstream.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
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
    fn comment_markers_inside_strings_are_data() {
        assert!(parse("title = '-- not a comment /* */'").is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!("x = '{}'", "a".repeat(5000));
        assert_eq!(parse(&long), Err(SqlError::TooLong(4096)));
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(parse(&deep), Err(SqlError::TooDeep));
    }
}
