//! Work on parse trees: comparing them, finding and renumbering `$n`, composing with `AND`.

use pg_query::protobuf::{
    BoolExpr, BoolExprType, ColumnRef, Node, SelectStmt, TypeName, WindowDef,
};
use pg_query::NodeEnum;
use serde_json::Value;

use super::SqlError;

/// The fields of a parse tree that say where in the text a token stood, not what it means.
fn is_position(field: &str) -> bool {
    field == "location"
        || field.ends_with("_location")
        || matches!(
            field,
            "list_start" | "list_end" | "rexpr_list_start" | "rexpr_list_end" | "stmt_len"
        )
}

/// The tree as compact JSON without its text positions: two trees mean the same when these
/// are equal. Every node type and field takes part (the protobuf types serialise themselves),
/// so nothing a later parser version adds is skipped.
fn canonical(node: &Node) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(node).ok()?;
    without_positions(&json)
}

/// `json` (compact, as serde_json writes it) without the members whose key is a position
/// field. In compact JSON a string followed by `:` is a key; a position's value is an integer.
fn without_positions(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        if byte != b'"' {
            out.push(byte);
            at += 1;
            continue;
        }
        let end = string_end(json, at)?;
        let text = json.get(at + 1..end - 1)?;
        let is_key = json.get(end) == Some(&b':');
        if !(is_key && std::str::from_utf8(text).is_ok_and(is_position)) {
            out.extend_from_slice(json.get(at..end)?);
            at = end;
            continue;
        }
        let mut next = end + 1;
        while json
            .get(next)
            .is_some_and(|byte| *byte == b'-' || byte.is_ascii_digit())
        {
            next += 1;
        }
        // Drop the member and one of the commas around it.
        if json.get(next) == Some(&b',') {
            next += 1;
        } else if out.last() == Some(&b',') {
            out.pop();
        }
        at = next;
    }
    Some(out)
}

/// The index just past the JSON string that starts at `start`.
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match json.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// Whether two trees are the same but for text positions (never for a tree that cannot be
/// serialised).
pub(super) fn same(a: &Node, b: &Node) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The canonical form, for hashing.
pub(super) fn canonical_bytes(node: &Node) -> Vec<u8> {
    canonical(node).unwrap_or_default()
}

/// The number of every `ParamRef` in the tree, in the order met, as many times as it occurs.
/// Read from the serialised tree, so no node type is missed.
pub(super) fn param_numbers(node: &Node) -> Result<Vec<i64>, SqlError> {
    fn collect(value: &Value, found: &mut Vec<i64>) -> Result<(), SqlError> {
        match value {
            Value::Object(fields) => {
                if let Some(param) = fields.get("ParamRef") {
                    let number = param.get("number").and_then(Value::as_i64);
                    found.push(number.ok_or(SqlError::BadPlaceholder)?);
                }
                fields.values().try_for_each(|value| collect(value, found))
            }
            Value::Array(items) => items.iter().try_for_each(|value| collect(value, found)),
            _ => Ok(()),
        }
    }
    let value = serde_json::to_value(node).map_err(|_| SqlError::NotRenderable)?;
    let mut found = Vec::new();
    collect(&value, &mut found)?;
    Ok(found)
}

/// Adds `by` to every `ParamRef` the walk reaches (see [`children_mut`]).
pub(super) fn shift_params(node: &mut Node, by: i32) -> Result<(), SqlError> {
    match node.node.as_mut() {
        Some(NodeEnum::ParamRef(param)) => {
            param.number = param
                .number
                .checked_add(by)
                .ok_or(SqlError::BadPlaceholder)?;
            Ok(())
        }
        Some(other) => children_mut(other)
            .into_iter()
            .try_for_each(|child| shift_params(child, by)),
        None => Ok(()),
    }
}

/// The child nodes of the node types a where clause (and a subquery in a row filter) is made
/// of. Any other node's children are not entered; [`super::SqlExpr::renumbers_fully`] finds a
/// placeholder left behind by comparing with [`param_numbers`].
fn children_mut(node: &mut NodeEnum) -> Vec<&mut Node> {
    let mut out: Vec<&mut Node> = Vec::new();
    match node {
        NodeEnum::AExpr(e) => out.extend(
            e.lexpr
                .as_deref_mut()
                .into_iter()
                .chain(e.rexpr.as_deref_mut()),
        ),
        NodeEnum::BoolExpr(e) => out.extend(e.args.iter_mut()),
        NodeEnum::NullTest(e) => out.extend(e.arg.as_deref_mut()),
        NodeEnum::BooleanTest(e) => out.extend(e.arg.as_deref_mut()),
        NodeEnum::TypeCast(e) => {
            out.extend(e.arg.as_deref_mut());
            if let Some(TypeName { typmods, .. }) = e.type_name.as_mut() {
                out.extend(typmods.iter_mut());
            }
        }
        NodeEnum::FuncCall(e) => {
            out.extend(e.args.iter_mut().chain(e.agg_order.iter_mut()));
            out.extend(e.agg_filter.as_deref_mut());
            if let Some(window) = e.over.as_deref_mut() {
                window_children(window, &mut out);
            }
        }
        NodeEnum::NamedArgExpr(e) => out.extend(e.arg.as_deref_mut()),
        NodeEnum::CaseExpr(e) => {
            out.extend(e.arg.as_deref_mut());
            out.extend(e.args.iter_mut());
            out.extend(e.defresult.as_deref_mut());
        }
        NodeEnum::CaseWhen(e) => out.extend(
            e.expr
                .as_deref_mut()
                .into_iter()
                .chain(e.result.as_deref_mut()),
        ),
        NodeEnum::AArrayExpr(e) => out.extend(e.elements.iter_mut()),
        NodeEnum::RowExpr(e) => out.extend(e.args.iter_mut()),
        NodeEnum::CoalesceExpr(e) => out.extend(e.args.iter_mut()),
        NodeEnum::MinMaxExpr(e) => out.extend(e.args.iter_mut()),
        NodeEnum::List(e) => out.extend(e.items.iter_mut()),
        NodeEnum::CollateClause(e) => out.extend(e.arg.as_deref_mut()),
        NodeEnum::AIndirection(e) => {
            out.extend(e.arg.as_deref_mut());
            out.extend(e.indirection.iter_mut());
        }
        NodeEnum::AIndices(e) => out.extend(
            e.lidx
                .as_deref_mut()
                .into_iter()
                .chain(e.uidx.as_deref_mut()),
        ),
        NodeEnum::SubLink(e) => out.extend(
            e.testexpr
                .as_deref_mut()
                .into_iter()
                .chain(e.subselect.as_deref_mut()),
        ),
        NodeEnum::SelectStmt(e) => select_children(e, &mut out),
        NodeEnum::ResTarget(e) => {
            out.extend(e.indirection.iter_mut());
            out.extend(e.val.as_deref_mut());
        }
        NodeEnum::JoinExpr(e) => {
            out.extend(
                e.larg
                    .as_deref_mut()
                    .into_iter()
                    .chain(e.rarg.as_deref_mut()),
            );
            out.extend(e.quals.as_deref_mut());
        }
        NodeEnum::RangeSubselect(e) => out.extend(e.subquery.as_deref_mut()),
        NodeEnum::RangeFunction(e) => out.extend(e.functions.iter_mut()),
        NodeEnum::CommonTableExpr(e) => out.extend(e.ctequery.as_deref_mut()),
        NodeEnum::SortBy(e) => out.extend(e.node.as_deref_mut()),
        NodeEnum::GroupingSet(e) => out.extend(e.content.iter_mut()),
        _ => {}
    }
    out
}

fn window_children<'a>(window: &'a mut WindowDef, out: &mut Vec<&'a mut Node>) {
    out.extend(
        window
            .partition_clause
            .iter_mut()
            .chain(window.order_clause.iter_mut()),
    );
    out.extend(
        window
            .start_offset
            .as_deref_mut()
            .into_iter()
            .chain(window.end_offset.as_deref_mut()),
    );
}

fn select_children<'a>(select: &'a mut SelectStmt, out: &mut Vec<&'a mut Node>) {
    let SelectStmt {
        distinct_clause,
        target_list,
        from_clause,
        where_clause,
        group_clause,
        having_clause,
        window_clause,
        values_lists,
        sort_clause,
        limit_offset,
        limit_count,
        with_clause,
        larg,
        rarg,
        ..
    } = select;
    out.extend(distinct_clause.iter_mut().chain(target_list.iter_mut()));
    out.extend(from_clause.iter_mut());
    out.extend(where_clause.as_deref_mut());
    out.extend(group_clause.iter_mut());
    out.extend(having_clause.as_deref_mut());
    out.extend(window_clause.iter_mut());
    out.extend(values_lists.iter_mut().chain(sort_clause.iter_mut()));
    out.extend(
        limit_offset
            .as_deref_mut()
            .into_iter()
            .chain(limit_count.as_deref_mut()),
    );
    if let Some(with) = with_clause.as_mut() {
        out.extend(with.ctes.iter_mut());
    }
    for side in [larg, rarg].into_iter().flatten() {
        select_children(side, out);
    }
}

/// `(left) AND (right)` as Postgres's parser builds it: an `AND` on the left takes `right` as
/// one more argument, anything else becomes the first of two.
pub(super) fn and(left: Box<Node>, right: Box<Node>) -> Box<Node> {
    let mut left = left;
    if let Some(NodeEnum::BoolExpr(chain)) = left.node.as_mut() {
        if chain.boolop == BoolExprType::AndExpr as i32 && chain.xpr.is_none() {
            chain.args.push(*right);
            return left;
        }
    }
    Box::new(Node {
        node: Some(NodeEnum::BoolExpr(Box::new(BoolExpr {
            xpr: None,
            boolop: BoolExprType::AndExpr as i32,
            args: vec![*left, *right],
            location: -1,
        }))),
    })
}

/// The name of a column reference that is one unqualified name.
pub(crate) fn column_name(column: &ColumnRef) -> Result<&str, SqlError> {
    match column.fields.as_slice() {
        [Node {
            node: Some(NodeEnum::String(name)),
        }] => Ok(&name.sval),
        _ => Err(SqlError::QualifiedColumn),
    }
}
