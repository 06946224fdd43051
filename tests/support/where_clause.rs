//! Reading back a `where` that a gateway forwarded, with sqlparser's PostgreSQL dialect.

use std::ops::ControlFlow;

use sqlparser::ast::{visit_expressions_mut, BinaryOperator, Expr, Value};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The expression `text` parses to, read the way Postgres reads it (standard-conforming
/// strings: a backslash in `'...'` is a plain character). Panics when the text holds a comment
/// or anything after the expression: a forwarded where must be exactly one expression.
pub(crate) fn parse_where(text: &str) -> Expr {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .unwrap();
    for token in &tokens {
        if let Token::Whitespace(
            Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
        ) = token.token
        {
            panic!("a comment in {text:?}");
        }
    }
    let mut parser = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens);
    let expr = parser.parse_expr().unwrap();
    assert_eq!(
        parser.peek_token().token,
        Token::EOF,
        "text after the expression in {text:?}"
    );
    expr
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

/// `expr` with every `E'...'` literal written as a plain `'...'` one: the two spellings of
/// the same text, for comparing what a client sent with what a gateway forwarded.
#[allow(dead_code)] // not every test file that includes this module compares literals
pub(crate) fn unify_string_literals(mut expr: Expr) -> Expr {
    let _ = visit_expressions_mut(&mut expr, |expr| {
        if let Expr::Value(value) = expr {
            if let Value::EscapedStringLiteral(text) = &value.value {
                value.value = Value::SingleQuotedString(text.clone());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}
