//! Reading back a `where` that a gateway forwarded, with Postgres's own parser (libpg_query),
//! as Electric reads it: `SELECT 1 WHERE <where>`.
//!
//! Trees are compared as JSON values without their text positions (`location` and the like),
//! so `id=1` and `id = 1` are the same tree and `'a''b'` and `E'a\'b'` the same string.
#![allow(dead_code)] // not every test file (nor the fuzz crate) that includes it uses all of it

use pg_query::protobuf::Token;
use pg_query::NodeEnum;
use serde_json::Value;

fn strip_positions(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|field, _| {
                !(field == "location"
                    || field.ends_with("_location")
                    || matches!(
                        field.as_str(),
                        "list_start" | "list_end" | "rexpr_list_start" | "rexpr_list_end"
                    ))
            });
            fields.values_mut().for_each(strip_positions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_positions),
        _ => {}
    }
}

/// `text` as `SELECT 1 <clause> <text>`, checked to be that one statement, and its parse tree.
fn statement(clause: &str, text: &str) -> Value {
    let tokens = pg_query::scan(text).unwrap_or_else(|error| panic!("{text:?}: {error}"));
    for token in &tokens.tokens {
        let token = Token::try_from(token.token).unwrap();
        assert!(
            !matches!(token, Token::SqlComment | Token::CComment),
            "a comment in {text:?}"
        );
        assert_ne!(token, Token::Ascii59, "a `;` in {text:?}");
    }
    let parsed = pg_query::parse(&format!("SELECT 1 {clause} {text}"), 0)
        .unwrap_or_else(|error| panic!("{text:?} does not parse: {error}"));
    assert_eq!(parsed.protobuf.stmts.len(), 1, "{text:?}");
    let stmt = parsed.protobuf.stmts[0].stmt.as_ref().unwrap();
    let Some(NodeEnum::SelectStmt(select)) = stmt.node.as_ref() else {
        panic!("{text:?} is not a SELECT");
    };
    let mut value = serde_json::to_value(select.as_ref()).unwrap();
    strip_positions(&mut value);
    value
}

/// The `SELECT 1` around a clause, for checking that a clause added nothing else.
fn rest_of(mut select: Value, field: &str) -> (Value, Value) {
    let object = select.as_object_mut().unwrap();
    let clause = object.insert(field.to_owned(), Value::Null).unwrap();
    (clause, select)
}

/// The expression `text` parses to, read the way Postgres reads it. Panics when the text holds
/// a comment, a `;`, or anything that makes `SELECT 1 WHERE <text>` more than a SELECT with
/// a WHERE: a forwarded where must be exactly one expression.
pub(crate) fn parse_where(text: &str) -> Value {
    let (clause, rest) = rest_of(statement("WHERE", text), "where_clause");
    let (_, expected) = rest_of(statement("WHERE", "true"), "where_clause");
    assert_eq!(rest, expected, "text after the expression in {text:?}");
    clause
}

/// The order-by items `text` parses to (see [`parse_where`]).
pub(crate) fn parse_order_by(text: &str) -> Vec<Value> {
    let (clause, rest) = rest_of(statement("ORDER BY", text), "sort_clause");
    let (_, expected) = rest_of(statement("ORDER BY", "1"), "sort_clause");
    assert_eq!(rest, expected, "text after the order in {text:?}");
    match clause {
        Value::Array(items) => items,
        other => panic!("{other}"),
    }
}

/// Splits a forwarded where into (client part, policy part), asserting the top level is the
/// tree of `(<client>) AND (<policy>)`: an AND whose last argument is the policy's filter. (Postgres
/// reads `a AND b AND (f)` as one AND of three; the client part is then the AND of the others.)
pub(crate) fn split_and(text: &str) -> (Value, Value) {
    let mut tree = parse_where(text);
    let and = tree
        .get_mut("node")
        .and_then(|node| node.get_mut("BoolExpr"))
        .filter(|bool_expr| bool_expr["boolop"] == 1)
        .unwrap_or_else(|| panic!("top level of {text:?} is not AND"));
    let args = and["args"].as_array_mut().unwrap();
    let policy = args.pop().unwrap();
    let client = match args.len() {
        0 => panic!("{text:?} has no client part"),
        1 => args.pop().unwrap(),
        _ => tree,
    };
    (client, policy)
}

/// Every column name the tree references, as Postgres reads it (qualified ones joined by `.`).
pub(crate) fn column_names(tree: &Value) -> Vec<String> {
    let mut names = Vec::new();
    walk(tree, &mut |key, value| {
        if key == "ColumnRef" {
            let parts: Vec<String> = value["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|field| match field["node"].get("String") {
                    Some(name) => name["sval"].as_str().unwrap().to_owned(),
                    None => "*".to_owned(),
                })
                .collect();
            names.push(parts.join("."));
        }
    });
    names
}

/// The `$n` numbers used in the tree, sorted and unique.
pub(crate) fn placeholder_numbers(tree: &Value) -> Vec<usize> {
    let mut found = Vec::new();
    walk(tree, &mut |key, value| {
        if key == "ParamRef" {
            found.push(usize::try_from(value["number"].as_i64().unwrap()).unwrap());
        }
    });
    found.sort_unstable();
    found.dedup();
    found
}

/// The node kinds in the tree (`SubLink`, `FuncCall`, ...), as many times as they occur.
pub(crate) fn node_kinds(tree: &Value) -> Vec<String> {
    let mut kinds = Vec::new();
    walk(tree, &mut |key, value| {
        if value.is_object() && key.chars().next().is_some_and(char::is_uppercase) {
            kinds.push(key.to_owned());
        }
    });
    kinds
}

/// Calls `visit` with every key and value in the tree, depth first.
pub(crate) fn walk(value: &Value, visit: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                visit(key, value);
                walk(value, visit);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, visit)),
        _ => {}
    }
}
