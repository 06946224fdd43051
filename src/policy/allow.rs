//! What a client's SQL may hold: the allow-list its `where`, `subset__where` and
//! `subset__order_by` are held to, on Postgres's parse tree.
//!
//! Allowed: visible column names, literals (strings however spelled: `'a'`, `E'a'`, `U&'a'`,
//! `$$a$$` are one and the same string to Postgres), `$n` placeholders, `AND`/`OR`/`NOT`, the
//! operators in [`OPERATORS`] (and unary `-`/`+`), `IN (list)`, `BETWEEN`, `LIKE`/`ILIKE`
//! (with `ESCAPE`), `SIMILAR TO`, `IS [NOT] NULL|TRUE|FALSE|UNKNOWN|DISTINCT FROM`, `CASE`,
//! `ARRAY[...]`, rows, `ANY`/`ALL` over arrays, casts to the plain types in [`PLAIN_TYPES`]
//! and plain calls of [`HARMLESS_FUNCTIONS`]. Everything else is refused:
//! - subqueries anywhere (`EXISTS`, `IN (SELECT ...)`, `ARRAY(SELECT ...)`, `(SELECT ...)`):
//!   they read other tables;
//! - columns outside the visible set, qualified ones (`items.x`, `other.x`, `x.*`), and the
//!   system columns (`ctid`, `xmin`, `tableoid`, ...): a where on a hidden column reveals it by
//!   which rows come back;
//! - other functions (`pg_sleep`, `current_setting`, `pg_read_file`, set-returning ones like
//!   `generate_series` would run inside Electric's snapshot query), qualified function names,
//!   `current_user` and the other SQL value functions, aggregates, window functions, `FILTER`,
//!   `ORDER BY`, `DISTINCT`, `VARIADIC` and named arguments in calls;
//! - casts to catalog types (`'t'::regclass` probes for tables) or any other type;
//! - custom and schema-qualified operators (`OPERATOR(pg_catalog.=)`), `COLLATE`, subscripts
//!   and field selection, bit-string literals.
//!
//! Changing what clients may write means changing the lists here.

use std::collections::BTreeSet;

use pg_query::protobuf::{
    a_const, AConst, AExpr, AExprKind, BoolExpr, BoolExprType, BoolTestType, BooleanTest, CaseExpr,
    CaseWhen, CoercionForm, ColumnRef, FuncCall, MinMaxExpr, MinMaxOp, Node, NullTest,
    NullTestType, RowExpr, TypeCast, TypeName,
};
use pg_query::NodeEnum;

use crate::protocol::{column_name, Identifier, SqlError, SqlExpr, SqlOrderBy};
use crate::rejection::echo;

/// The functions a client expression may call: pure, cheap, reading only their arguments.
/// (`coalesce`, `greatest` and `least` are Postgres syntax rather than calls; they are allowed
/// when listed here all the same.)
pub const HARMLESS_FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "abs",
    "coalesce",
];

/// The binary operators a client expression may use, as Postgres names them (`!=` is read as
/// `<>`, `LIKE` as `~~`): comparisons, arithmetic, concatenation, pattern matching, bit
/// operations, and the array, range and JSON operators.
pub const OPERATORS: &[&str] = &[
    "=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "^", "||", "~", "~*", "!~", "!~*",
    "~~", "~~*", "!~~", "!~~*", "&", "|", "#", "<<", ">>", "@>", "<@", "&&", "->", "->>", "#>",
    "#>>", "?", "?|", "?&", "@?", "@@", "#-",
];

/// The types a client expression may cast to, as Postgres names them (`int` is `int4`,
/// `varchar(n)` is `varchar`, `double precision` is `float8`, `timestamp with time zone` is
/// `timestamptz`); each may also be written with its schema, `pg_catalog`. Catalog types
/// (`regclass`, `regproc`, ...) are left out because their input functions look things up.
pub const PLAIN_TYPES: &[&str] = &[
    "bpchar",
    "varchar",
    "text",
    "uuid",
    "numeric",
    "float4",
    "float8",
    "int2",
    "int4",
    "int8",
    "bool",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "json",
    "jsonb",
    "bytea",
];

/// Postgres's system columns: every table has them, whatever its visible columns.
const SYSTEM_COLUMNS: &[&str] = &["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

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

/// Holds a client's expression to the allow-list described in the module docs, and checks that
/// its placeholders are exactly `$1..$n` for the `n` values the client gave.
pub(crate) fn check_client(expr: &SqlExpr, rules: &ClientRules<'_>) -> Result<(), SqlError> {
    let mut check = Check {
        rules,
        placeholders: BTreeSet::new(),
    };
    check.node(expr.node(), 1)?;
    if let Some(&missing) = check
        .placeholders
        .iter()
        .find(|&&index| index > rules.param_count)
    {
        return Err(SqlError::MissingParam(missing));
    }
    if let Some(unused) = (1..=rules.param_count).find(|index| !check.placeholders.contains(index))
    {
        return Err(SqlError::UnusedParam(unused));
    }
    Ok(())
}

/// Checks that every column a client's order-by list names is one it may see.
pub(crate) fn check_order_by(
    order: &SqlOrderBy,
    visible: Option<&[Identifier]>,
) -> Result<(), SqlError> {
    order
        .keys()
        .try_for_each(|key| allow_column(visible, key.column))
}

/// Refuses a system column, and a column the client may not see (`visible: None` is every
/// column). The name is Postgres's reading of it: unquoted names lowercased.
fn allow_column(visible: Option<&[Identifier]>, name: &str) -> Result<(), SqlError> {
    if SYSTEM_COLUMNS.contains(&name) {
        return Err(SqlError::NotAllowed("a system column"));
    }
    let seen = match visible {
        None => true,
        Some(columns) => columns.iter().any(|column| column.as_str() == name),
    };
    if seen {
        Ok(())
    } else {
        Err(SqlError::HiddenColumn(echo(name).into_owned()))
    }
}

/// The walk behind [`check_client`]: every node must be of an allowed kind, with every field
/// that is not one of its allowed children empty. Structs are taken apart field by field, so a
/// field a later parser version adds must be looked at here before it compiles.
struct Check<'r, 'a> {
    rules: &'r ClientRules<'a>,
    placeholders: BTreeSet<usize>,
}

const NOT_PLAIN_CALL: SqlError = SqlError::NotAllowed("this form of function call");
const ANY_OTHER: SqlError = SqlError::NotAllowed("this kind of expression");

impl Check<'_, '_> {
    fn child(&mut self, node: Option<&Node>, depth: usize) -> Result<(), SqlError> {
        match node {
            Some(node) => self.node(node.node.as_ref(), depth + 1),
            None => Err(ANY_OTHER),
        }
    }

    fn children(&mut self, nodes: &[Node], depth: usize) -> Result<(), SqlError> {
        nodes
            .iter()
            .try_for_each(|node| self.node(node.node.as_ref(), depth + 1))
    }

    fn node(&mut self, node: Option<&NodeEnum>, depth: usize) -> Result<(), SqlError> {
        if depth > self.rules.max_depth {
            return Err(SqlError::TooDeep);
        }
        match node.ok_or(ANY_OTHER)? {
            NodeEnum::ColumnRef(column) => {
                let ColumnRef {
                    fields: _,
                    location: _,
                } = column;
                allow_column(self.rules.visible, column_name(column)?)
            }
            NodeEnum::ParamRef(param) => {
                let index = usize::try_from(param.number)
                    .ok()
                    .filter(|&index| index > 0)
                    .ok_or(SqlError::BadPlaceholder)?;
                self.placeholders.insert(index);
                Ok(())
            }
            NodeEnum::AConst(constant) => allow_constant(constant),
            NodeEnum::SubLink(_) => Err(SqlError::Subquery),
            NodeEnum::BoolExpr(expr) => {
                let BoolExpr {
                    xpr,
                    boolop,
                    args,
                    location: _,
                } = expr.as_ref();
                let known = matches!(
                    BoolExprType::try_from(*boolop),
                    Ok(BoolExprType::AndExpr | BoolExprType::OrExpr | BoolExprType::NotExpr)
                );
                if !known || xpr.is_some() {
                    return Err(ANY_OTHER);
                }
                self.children(args, depth)
            }
            NodeEnum::AExpr(expr) => self.operator(expr, depth),
            NodeEnum::NullTest(test) => {
                let NullTest {
                    xpr,
                    arg,
                    nulltesttype,
                    argisrow,
                    location: _,
                } = test.as_ref();
                let known = matches!(
                    NullTestType::try_from(*nulltesttype),
                    Ok(NullTestType::IsNull | NullTestType::IsNotNull)
                );
                if !known || xpr.is_some() || *argisrow {
                    return Err(ANY_OTHER);
                }
                self.child(arg.as_deref(), depth)
            }
            NodeEnum::BooleanTest(test) => {
                let BooleanTest {
                    xpr,
                    arg,
                    booltesttype,
                    location: _,
                } = test.as_ref();
                let known = BoolTestType::try_from(*booltesttype)
                    .is_ok_and(|kind| kind != BoolTestType::Undefined);
                if !known || xpr.is_some() {
                    return Err(ANY_OTHER);
                }
                self.child(arg.as_deref(), depth)
            }
            NodeEnum::TypeCast(cast) => {
                let TypeCast {
                    arg,
                    type_name,
                    location: _,
                } = cast.as_ref();
                if !type_name.as_ref().is_some_and(plain_type) {
                    return Err(SqlError::NotAllowed("a cast to this type"));
                }
                self.child(arg.as_deref(), depth)
            }
            NodeEnum::FuncCall(call) => {
                allow_call(call)?;
                self.children(&call.args, depth)
            }
            NodeEnum::CoalesceExpr(coalesce) => {
                if !HARMLESS_FUNCTIONS.contains(&"coalesce") {
                    return Err(SqlError::FunctionNotAllowed("coalesce".into()));
                }
                if coalesce.xpr.is_some()
                    || coalesce.coalescetype != 0
                    || coalesce.coalescecollid != 0
                {
                    return Err(ANY_OTHER);
                }
                self.children(&coalesce.args, depth)
            }
            NodeEnum::MinMaxExpr(expr) => {
                let MinMaxExpr {
                    xpr,
                    minmaxtype,
                    minmaxcollid,
                    inputcollid,
                    op,
                    args,
                    location: _,
                } = expr.as_ref();
                let name = match MinMaxOp::try_from(*op) {
                    Ok(MinMaxOp::IsGreatest) => "greatest",
                    Ok(MinMaxOp::IsLeast) => "least",
                    _ => return Err(ANY_OTHER),
                };
                if !HARMLESS_FUNCTIONS.contains(&name) {
                    return Err(SqlError::FunctionNotAllowed(name.into()));
                }
                if xpr.is_some() || *minmaxtype != 0 || *minmaxcollid != 0 || *inputcollid != 0 {
                    return Err(ANY_OTHER);
                }
                self.children(args, depth)
            }
            NodeEnum::CaseExpr(case) => {
                let CaseExpr {
                    xpr,
                    casetype,
                    casecollid,
                    arg,
                    args,
                    defresult,
                    location: _,
                } = case.as_ref();
                if xpr.is_some() || *casetype != 0 || *casecollid != 0 {
                    return Err(ANY_OTHER);
                }
                if let Some(arg) = arg.as_deref() {
                    self.child(Some(arg), depth)?;
                }
                for when in args {
                    let Some(NodeEnum::CaseWhen(when)) = when.node.as_ref() else {
                        return Err(ANY_OTHER);
                    };
                    let CaseWhen {
                        xpr,
                        expr,
                        result,
                        location: _,
                    } = when.as_ref();
                    if xpr.is_some() {
                        return Err(ANY_OTHER);
                    }
                    self.child(expr.as_deref(), depth + 1)?;
                    self.child(result.as_deref(), depth + 1)?;
                }
                match defresult.as_deref() {
                    Some(default) => self.child(Some(default), depth),
                    None => Ok(()),
                }
            }
            NodeEnum::AArrayExpr(array) => self.children(&array.elements, depth),
            NodeEnum::RowExpr(row) => {
                let RowExpr {
                    xpr,
                    args,
                    row_typeid,
                    row_format: _,
                    colnames,
                    location: _,
                } = row.as_ref();
                if xpr.is_some() || *row_typeid != 0 || !colnames.is_empty() {
                    return Err(ANY_OTHER);
                }
                self.children(args, depth)
            }
            NodeEnum::CollateClause(_) => Err(SqlError::NotAllowed("COLLATE")),
            NodeEnum::AIndirection(_) => {
                Err(SqlError::NotAllowed("subscripts and field selection"))
            }
            NodeEnum::SqlvalueFunction(_) => Err(SqlError::NotAllowed(
                "a SQL value function (CURRENT_USER, CURRENT_DATE, ...)",
            )),
            _ => Err(ANY_OTHER),
        }
    }

    /// An `A_Expr`: the operator forms.
    fn operator(&mut self, expr: &AExpr, depth: usize) -> Result<(), SqlError> {
        let AExpr {
            kind,
            name,
            lexpr,
            rexpr,
            rexpr_list_start: _,
            rexpr_list_end: _,
            location: _,
        } = expr;
        let operator = match name.as_slice() {
            [Node {
                node: Some(NodeEnum::String(name)),
            }] => name.sval.as_str(),
            // `OPERATOR(pg_catalog.=)`, `OPERATOR(public.===)`.
            _ => return Err(SqlError::NotAllowed("a custom operator")),
        };
        let kind = AExprKind::try_from(*kind).map_err(|_| ANY_OTHER)?;
        match kind {
            AExprKind::AexprOp => {
                match lexpr.as_deref() {
                    None if matches!(operator, "-" | "+") => {}
                    None => return Err(SqlError::NotAllowed("this unary operator")),
                    Some(_) if OPERATORS.contains(&operator) => {}
                    Some(_) => return Err(SqlError::NotAllowed("a custom operator")),
                }
                if let Some(left) = lexpr.as_deref() {
                    self.child(Some(left), depth)?;
                }
                self.child(rexpr.as_deref(), depth)
            }
            AExprKind::AexprOpAny | AExprKind::AexprOpAll => {
                if !OPERATORS.contains(&operator) {
                    return Err(SqlError::NotAllowed("a custom operator"));
                }
                self.child(lexpr.as_deref(), depth)?;
                self.child(rexpr.as_deref(), depth)
            }
            AExprKind::AexprDistinct | AExprKind::AexprNotDistinct => {
                self.child(lexpr.as_deref(), depth)?;
                self.child(rexpr.as_deref(), depth)
            }
            AExprKind::AexprIn
            | AExprKind::AexprBetween
            | AExprKind::AexprNotBetween
            | AExprKind::AexprBetweenSym
            | AExprKind::AexprNotBetweenSym => {
                self.child(lexpr.as_deref(), depth)?;
                match rexpr.as_deref().and_then(|list| list.node.as_ref()) {
                    Some(NodeEnum::List(list)) => self.children(&list.items, depth + 1),
                    _ => Err(ANY_OTHER),
                }
            }
            AExprKind::AexprLike | AExprKind::AexprIlike | AExprKind::AexprSimilar => {
                self.child(lexpr.as_deref(), depth)?;
                // The grammar writes `x LIKE p ESCAPE e` as `x LIKE pg_catalog.like_escape(p, e)`
                // and `x SIMILAR TO p` as `x SIMILAR TO pg_catalog.similar_to_escape(p)`.
                let escape = if kind == AExprKind::AexprSimilar {
                    "similar_to_escape"
                } else {
                    "like_escape"
                };
                match rexpr.as_deref().and_then(|pattern| pattern.node.as_ref()) {
                    Some(NodeEnum::FuncCall(call)) if is_catalog_call(call, escape) => {
                        allow_plain_call(call)?;
                        self.children(&call.args, depth + 1)
                    }
                    _ => self.child(rexpr.as_deref(), depth),
                }
            }
            AExprKind::AexprNullif => Err(SqlError::FunctionNotAllowed("nullif".into())),
            AExprKind::Undefined => Err(ANY_OTHER),
        }
    }
}

fn allow_constant(constant: &AConst) -> Result<(), SqlError> {
    let AConst {
        isnull,
        val,
        location: _,
    } = constant;
    match val {
        None if *isnull => Ok(()),
        Some(
            a_const::Val::Ival(_)
            | a_const::Val::Fval(_)
            | a_const::Val::Boolval(_)
            | a_const::Val::Sval(_),
        ) if !isnull => Ok(()),
        _ => Err(SqlError::NotAllowed("this kind of literal")),
    }
}

/// `pg_catalog.<name>(...)`, as the grammar writes its own calls.
fn is_catalog_call(call: &FuncCall, name: &str) -> bool {
    match call.funcname.as_slice() {
        [Node {
            node: Some(NodeEnum::String(schema)),
        }, Node {
            node: Some(NodeEnum::String(function)),
        }] => schema.sval == "pg_catalog" && function.sval == name,
        _ => false,
    }
}

/// A call of a function in [`HARMLESS_FUNCTIONS`], by its bare name, in plain form.
fn allow_call(call: &FuncCall) -> Result<(), SqlError> {
    let name = match call.funcname.as_slice() {
        [Node {
            node: Some(NodeEnum::String(name)),
        }] => name.sval.as_str(),
        qualified => {
            let parts: Vec<&str> = qualified
                .iter()
                .filter_map(|part| match part.node.as_ref() {
                    Some(NodeEnum::String(part)) => Some(part.sval.as_str()),
                    _ => None,
                })
                .collect();
            return Err(SqlError::FunctionNotAllowed(
                echo(&parts.join(".")).into_owned(),
            ));
        }
    };
    if !HARMLESS_FUNCTIONS.contains(&name) {
        return Err(SqlError::FunctionNotAllowed(echo(name).into_owned()));
    }
    allow_plain_call(call)
}

/// `f(a, b)`: positional arguments only, none of the aggregate or window forms.
fn allow_plain_call(call: &FuncCall) -> Result<(), SqlError> {
    let FuncCall {
        funcname: _,
        args,
        agg_order,
        agg_filter,
        over,
        agg_within_group,
        agg_star,
        agg_distinct,
        func_variadic,
        funcformat,
        location: _,
    } = call;
    let plain = agg_order.is_empty()
        && agg_filter.is_none()
        && over.is_none()
        && !agg_within_group
        && !agg_star
        && !agg_distinct
        && !func_variadic
        && *funcformat == CoercionForm::CoerceExplicitCall as i32
        && !args
            .iter()
            .any(|arg| matches!(arg.node, Some(NodeEnum::NamedArgExpr(_))));
    if plain {
        Ok(())
    } else {
        Err(NOT_PLAIN_CALL)
    }
}

/// A cast target in [`PLAIN_TYPES`], bare or in `pg_catalog`, with at most integer modifiers
/// (`varchar(10)`, `numeric(10, 2)`, `interval day`) and array bounds.
fn plain_type(type_name: &TypeName) -> bool {
    let TypeName {
        names,
        type_oid,
        setof,
        pct_type,
        typmods,
        typemod,
        array_bounds,
        location: _,
    } = type_name;
    let name = match names.as_slice() {
        [Node {
            node: Some(NodeEnum::String(name)),
        }] => Some(name.sval.as_str()),
        [Node {
            node: Some(NodeEnum::String(schema)),
        }, Node {
            node: Some(NodeEnum::String(name)),
        }] if schema.sval == "pg_catalog" => Some(name.sval.as_str()),
        _ => None,
    };
    let integer_modifiers = typmods.iter().all(|modifier| {
        matches!(
            modifier.node,
            Some(NodeEnum::AConst(AConst {
                isnull: false,
                val: Some(a_const::Val::Ival(_)),
                ..
            }))
        )
    });
    let bounds = array_bounds
        .iter()
        .all(|bound| matches!(bound.node, Some(NodeEnum::Integer(_))));
    name.is_some_and(|name| PLAIN_TYPES.contains(&name))
        && *type_oid == 0
        && !setof
        && !pct_type
        && *typemod == -1
        && integer_modifiers
        && bounds
}

#[cfg(test)]
mod tests;
