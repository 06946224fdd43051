//! Reading back a `where` that a gateway forwarded, with sqlparser's PostgreSQL dialect.

use sqlparser::ast::{BinaryOperator, Expr};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The expression `text` parses to.
pub(crate) fn parse_where(text: &str) -> Expr {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .unwrap()
        .parse_expr()
        .unwrap()
}

/// Splits a forwarded where into (client part, policy part), asserting the top level is
/// `(<client>) AND (<policy>)`.
pub(crate) fn split_and(text: &str) -> (Expr, Expr) {
    match parse_where(text) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => match (*left, *right) {
            (Expr::Nested(client), Expr::Nested(policy)) => (*client, *policy),
            other => panic!("sides not parenthesised: {other:?}"),
        },
        other => panic!("top level is not AND: {other}"),
    }
}
