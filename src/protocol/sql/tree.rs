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

/// The tree as a JSON value without its text positions: two trees mean the same when these are
/// equal. Every node type and field takes part (the protobuf types serialise themselves), so
/// nothing a later parser version adds is skipped.
fn canonical(node: &Node) -> Option<Value> {
    let mut value = serde_json::to_value(node).ok()?;
    strip_positions(&mut value);
    Some(value)
}

fn strip_positions(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.retain(|field, _| !is_position(field));
            fields.values_mut().for_each(strip_positions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_positions),
        _ => {}
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

/// The canonical form as text, for hashing.
pub(super) fn canonical_text(node: &Node) -> String {
    canonical(node)
        .map(|value| value.to_string())
        .unwrap_or_default()
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
