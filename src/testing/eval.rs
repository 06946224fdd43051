//! The subset of Postgres `WHERE` and `ORDER BY` the stand-in evaluates.
//!
//! Supported: comparisons (`=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`), `AND`, `OR`, `NOT`,
//! `IN (list)` and `NOT IN`, `IS [NOT] NULL`, `IS [NOT] TRUE|FALSE`, string, number, boolean
//! and `NULL` literals, `$n` placeholders, column references (unquoted ones lowercased, as
//! Postgres does) and parentheses, with SQL's three-valued logic. Values are compared by the
//! column's type: integer types and `float`/`numeric` numerically, `bool` as booleans,
//! everything else as text (byte order). An untyped literal or a `$n` value takes the type of
//! the column it is compared with, as in Postgres. Anything else (subqueries, functions,
//! casts, `LIKE`, qualified names, unknown columns) is refused: the stand-in answers 400
//! where Electric might have served it.
//!
//! It reads the same parse tree as the policy layer (Postgres's, see
//! [`SqlExpr`](crate::protocol::SqlExpr)): the crate has one SQL parser.

use std::cmp::Ordering;

use pg_query::protobuf::{a_const, AExprKind, BoolExprType, BoolTestType, Node, NullTestType};
use pg_query::NodeEnum;

use crate::protocol::{column_name, SqlExpr, SqlLimits, SqlOrderBy};

use super::store::{ColumnDef, Row};

/// How the stand-in compares a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

impl Kind {
    pub(crate) fn of(pg_type: &str) -> Self {
        match pg_type {
            "int2" | "int4" | "int8" | "smallint" | "integer" | "bigint" | "oid" => Self::Int,
            "float4" | "float8" | "real" | "double precision" | "numeric" | "decimal" => {
                Self::Float
            }
            "bool" | "boolean" => Self::Bool,
            _ => Self::Text,
        }
    }

    /// Whether `text` is valid input for this kind.
    pub(crate) fn accepts(self, text: &str) -> bool {
        self.parse(text).is_some()
    }

    fn parse(self, text: &str) -> Option<Scalar> {
        match self {
            Self::Int => text.parse().ok().map(Scalar::Int),
            Self::Float => text.parse().ok().map(Scalar::Float),
            Self::Bool => parse_bool(text).map(Scalar::Bool),
            Self::Text => Some(Scalar::Text(text.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Int => "bigint",
            Self::Float => "numeric",
            Self::Bool => "boolean",
            Self::Text => "text",
        }
    }
}

/// Postgres' boolean input words.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(b)),
            (Self::Bool(a), Self::Bool(b)) => Some(a.cmp(b)),
            (Self::Text(a), Self::Text(b)) => Some(a.cmp(b)),
            (a, b) => a.as_float()?.partial_cmp(&b.as_float()?),
        }
    }

    fn as_float(&self) -> Option<f64> {
        match self {
            // Test data: the precision lost above 2^53 does not matter here.
            #[allow(clippy::cast_precision_loss)]
            Self::Int(value) => Some(*value as f64),
            Self::Float(value) => Some(*value),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Operand {
    Column { name: String, kind: Kind },
    Const(Option<Scalar>),
}

impl Operand {
    fn eval(&self, row: &Row) -> Option<Scalar> {
        match self {
            Self::Column { name, kind } => kind.parse(row.get(name).flatten()?),
            Self::Const(value) => value.clone(),
        }
    }
}

/// The comparison operators, as Postgres names them (`!=` is read as `<>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "=" => Self::Eq,
            "<>" => Self::NotEq,
            "<" => Self::Lt,
            "<=" => Self::LtEq,
            ">" => Self::Gt,
            ">=" => Self::GtEq,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
        }
    }
}

#[derive(Debug, Clone)]
enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Compare(Operand, CmpOp, Operand),
    In {
        operand: Operand,
        list: Vec<Operand>,
        negated: bool,
    },
    IsNull(Operand, bool),
    /// `IS [NOT] TRUE|FALSE`: never null.
    Is {
        pred: Box<Pred>,
        value: bool,
        negated: bool,
    },
    Truth(Operand),
}

impl Pred {
    /// SQL's three-valued result: `None` is unknown.
    fn eval(&self, row: &Row) -> Option<bool> {
        match self {
            Self::And(left, right) => match (left.eval(row), right.eval(row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Self::Or(left, right) => match (left.eval(row), right.eval(row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Self::Not(inner) => inner.eval(row).map(|value| !value),
            Self::Compare(left, op, right) => {
                let ordering = left.eval(row)?.compare(&right.eval(row)?)?;
                Some(match op {
                    CmpOp::Eq => ordering == Ordering::Equal,
                    CmpOp::NotEq => ordering != Ordering::Equal,
                    CmpOp::Lt => ordering == Ordering::Less,
                    CmpOp::LtEq => ordering != Ordering::Greater,
                    CmpOp::Gt => ordering == Ordering::Greater,
                    CmpOp::GtEq => ordering != Ordering::Less,
                })
            }
            Self::In {
                operand,
                list,
                negated,
            } => {
                let value = operand.eval(row)?;
                let mut unknown = false;
                for item in list {
                    match item.eval(row).and_then(|item| value.compare(&item)) {
                        Some(Ordering::Equal) => return Some(!negated),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(*negated)
            }
            Self::IsNull(operand, negated) => Some(operand.eval(row).is_none() != *negated),
            Self::Is {
                pred,
                value,
                negated,
            } => Some((pred.eval(row) == Some(*value)) != *negated),
            Self::Truth(operand) => match operand.eval(row)? {
                Scalar::Bool(value) => Some(value),
                _ => None,
            },
        }
    }
}

/// A compiled row filter: all rows when there is no where clause.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    preds: Vec<Pred>,
}

impl Filter {
    /// Compiles `where_clause` against `columns`, with `$n` taken from `params`. The error is
    /// the message for the `where` field.
    pub(crate) fn compile(
        where_clause: &SqlExpr,
        columns: &[ColumnDef],
        params: &[String],
    ) -> Result<Self, String> {
        let compiler = Compiler { columns, params };
        Ok(Self {
            preds: vec![compiler.pred(where_clause.node())?],
        })
    }

    /// This filter and `other`: rows must match both.
    pub(crate) fn and(mut self, other: Self) -> Self {
        self.preds.extend(other.preds);
        self
    }

    pub(crate) fn matches(&self, row: &Row) -> bool {
        self.preds.iter().all(|pred| pred.eval(row) == Some(true))
    }
}

/// A parsed `ORDER BY` list of columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderBy {
    keys: Vec<SortKey>,
}

#[derive(Debug, Clone)]
struct SortKey {
    column: Operand,
    descending: bool,
    nulls_first: bool,
}

impl OrderBy {
    /// Parses `col [ASC|DESC] [NULLS FIRST|LAST], ...` against `columns`.
    pub(crate) fn parse(text: &str, columns: &[ColumnDef]) -> Result<Self, String> {
        let order = SqlOrderBy::parse(text, SqlLimits::default()).map_err(|e| e.to_string())?;
        let compiler = Compiler {
            columns,
            params: &[],
        };
        let mut keys = Vec::new();
        for key in order.keys() {
            let column = compiler.column(key.column)?;
            keys.push(SortKey {
                column: Operand::Column {
                    name: column.name.clone(),
                    kind: column.kind,
                },
                descending: key.descending,
                // Postgres: NULLS LAST for ASC, NULLS FIRST for DESC.
                nulls_first: key.nulls_first.unwrap_or(key.descending),
            });
        }
        Ok(Self { keys })
    }

    pub(crate) fn sort(&self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            for key in &self.keys {
                let ordering = match (key.column.eval(a), key.column.eval(b)) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) if key.nulls_first => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) if key.nulls_first => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(a), Some(b)) => {
                        let ordering = a.compare(&b).unwrap_or(Ordering::Equal);
                        if key.descending {
                            ordering.reverse()
                        } else {
                            ordering
                        }
                    }
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            Ordering::Equal
        });
    }
}

/// An operand before its type is known from the other side of the comparison.
enum Raw<'a> {
    Column(&'a ColumnDef),
    Number(String),
    /// A quoted literal or a `$n` value: typed by what it is compared with.
    Untyped(String),
    Bool(bool),
    Null,
}

struct Compiler<'a> {
    columns: &'a [ColumnDef],
    params: &'a [String],
}

impl<'a> Compiler<'a> {
    fn pred(&self, node: Option<&NodeEnum>) -> Result<Pred, String> {
        match node {
            Some(NodeEnum::BoolExpr(expr)) => {
                let mut args = expr.args.iter().map(|arg| self.pred(arg.node.as_ref()));
                match BoolExprType::try_from(expr.boolop) {
                    Ok(BoolExprType::NotExpr) => match (args.next(), args.next()) {
                        (Some(inner), None) => Ok(Pred::Not(Box::new(inner?))),
                        _ => Err("is not a valid NOT".into()),
                    },
                    Ok(kind @ (BoolExprType::AndExpr | BoolExprType::OrExpr)) => {
                        let first = args.next().ok_or("is not a valid AND or OR")??;
                        args.try_fold(first, |left, right| {
                            let (left, right) = (Box::new(left), Box::new(right?));
                            Ok(if kind == BoolExprType::AndExpr {
                                Pred::And(left, right)
                            } else {
                                Pred::Or(left, right)
                            })
                        })
                    }
                    _ => Err(unsupported("this boolean operator")),
                }
            }
            Some(NodeEnum::AExpr(expr)) => {
                let operator = match expr.name.as_slice() {
                    [Node {
                        node: Some(NodeEnum::String(name)),
                    }] => name.sval.as_str(),
                    _ => return Err(unsupported("a qualified operator")),
                };
                let left = expr.lexpr.as_deref().and_then(|node| node.node.as_ref());
                let right = expr.rexpr.as_deref().and_then(|node| node.node.as_ref());
                match (AExprKind::try_from(expr.kind), CmpOp::parse(operator)) {
                    (Ok(AExprKind::AexprOp), Some(op)) if left.is_some() => {
                        let mut typed =
                            self.typed(vec![self.raw(left)?, self.raw(right)?], op, Kind::Text)?;
                        let right = typed.pop();
                        let left = typed.pop();
                        match (left, right) {
                            (Some(left), Some(right)) => Ok(Pred::Compare(left, op, right)),
                            _ => Err("is not a valid comparison".into()),
                        }
                    }
                    (Ok(AExprKind::AexprIn), Some(op @ (CmpOp::Eq | CmpOp::NotEq))) => {
                        let Some(NodeEnum::List(list)) = right else {
                            return Err(unsupported("IN with anything but a list"));
                        };
                        self.in_list(left, &list.items, op == CmpOp::NotEq)
                    }
                    _ => Err(unsupported(&format!("the operator {operator}"))),
                }
            }
            Some(NodeEnum::NullTest(test)) => {
                let negated = test.nulltesttype == NullTestType::IsNotNull as i32;
                Ok(Pred::IsNull(
                    self.operand(test.arg.as_deref().and_then(|n| n.node.as_ref()))?,
                    negated,
                ))
            }
            Some(NodeEnum::BooleanTest(test)) => {
                let (value, negated) = match BoolTestType::try_from(test.booltesttype) {
                    Ok(BoolTestType::IsTrue) => (true, false),
                    Ok(BoolTestType::IsNotTrue) => (true, true),
                    Ok(BoolTestType::IsFalse) => (false, false),
                    Ok(BoolTestType::IsNotFalse) => (false, true),
                    _ => return Err(unsupported("IS [NOT] UNKNOWN")),
                };
                Ok(Pred::Is {
                    pred: Box::new(self.pred(test.arg.as_deref().and_then(|n| n.node.as_ref()))?),
                    value,
                    negated,
                })
            }
            Some(NodeEnum::ColumnRef(_) | NodeEnum::AConst(_) | NodeEnum::ParamRef(_)) => {
                // In a boolean position an untyped literal or `$n` is read as a boolean.
                match self
                    .typed(vec![self.raw(node)?], CmpOp::Eq, Kind::Bool)?
                    .pop()
                {
                    Some(
                        operand @ (Operand::Column {
                            kind: Kind::Bool, ..
                        }
                        | Operand::Const(None | Some(Scalar::Bool(_)))),
                    ) => Ok(Pred::Truth(operand)),
                    _ => Err("argument of WHERE must be type boolean".into()),
                }
            }
            other => Err(unsupported(&describe(other))),
        }
    }

    fn in_list(
        &self,
        left: Option<&NodeEnum>,
        list: &[Node],
        negated: bool,
    ) -> Result<Pred, String> {
        let mut raws = vec![self.raw(left)?];
        for item in list {
            raws.push(self.raw(item.node.as_ref())?);
        }
        let mut typed = self.typed(raws, CmpOp::Eq, Kind::Text)?.into_iter();
        let operand = typed.next().ok_or("is not a valid IN list")?;
        Ok(Pred::In {
            operand,
            list: typed.collect(),
            negated,
        })
    }

    /// The operand of a null test.
    fn operand(&self, node: Option<&NodeEnum>) -> Result<Operand, String> {
        self.typed(vec![self.raw(node)?], CmpOp::Eq, Kind::Text)?
            .pop()
            .ok_or_else(|| "is not a valid expression".into())
    }

    fn raw(&self, node: Option<&NodeEnum>) -> Result<Raw<'a>, String> {
        match node {
            Some(NodeEnum::ColumnRef(column)) => {
                let name = column_name(column).map_err(|_| unsupported(&describe(node)))?;
                Ok(Raw::Column(self.column(name)?))
            }
            Some(NodeEnum::AConst(constant)) => match &constant.val {
                None if constant.isnull => Ok(Raw::Null),
                Some(a_const::Val::Ival(number)) => Ok(Raw::Number(number.ival.to_string())),
                Some(a_const::Val::Fval(number)) => Ok(Raw::Number(number.fval.clone())),
                Some(a_const::Val::Sval(text)) => Ok(Raw::Untyped(text.sval.clone())),
                Some(a_const::Val::Boolval(value)) => Ok(Raw::Bool(value.boolval)),
                _ => Err(unsupported("this literal")),
            },
            Some(NodeEnum::ParamRef(param)) => self.param(param.number).map(Raw::Untyped),
            // Postgres folds `-1` into the constant; a minus before anything else is an
            // operator.
            Some(NodeEnum::AExpr(expr)) if expr.lexpr.is_none() => {
                Err(unsupported("unary minus on anything but a number"))
            }
            other => Err(unsupported(&describe(other))),
        }
    }

    /// The column `name` (Postgres's reading of it: unquoted names lowercased).
    fn column(&self, name: &str) -> Result<&'a ColumnDef, String> {
        self.columns
            .iter()
            .find(|column| column.name == name)
            .ok_or_else(|| format!("unknown reference {name}"))
    }

    fn param(&self, number: i32) -> Result<String, String> {
        let index = usize::try_from(number)
            .ok()
            .filter(|index| *index > 0)
            .ok_or_else(|| format!("invalid placeholder ${number}"))?;
        self.params
            .get(index - 1)
            .cloned()
            .ok_or_else(|| format!("parameter ${index} was not given"))
    }

    /// Gives every operand the type of the comparison: a column's type if one is a column
    /// (int and float columns compare numerically), else a number's, a boolean's, or
    /// `default` when all are untyped.
    fn typed(&self, raws: Vec<Raw<'a>>, op: CmpOp, default: Kind) -> Result<Vec<Operand>, String> {
        let mut kind: Option<Kind> = None;
        for raw in &raws {
            if let Raw::Column(column) = raw {
                kind = Some(unify(kind, column.kind, op)?);
            }
        }
        if kind.is_none() {
            kind = raws.iter().find_map(|raw| match raw {
                Raw::Number(number) if number.parse::<i64>().is_ok() => Some(Kind::Int),
                Raw::Number(_) => Some(Kind::Float),
                Raw::Bool(_) => Some(Kind::Bool),
                _ => None,
            });
        }
        let kind = kind.unwrap_or(default);
        raws.into_iter()
            .map(|raw| match raw {
                Raw::Column(column) => Ok(Operand::Column {
                    name: column.name.clone(),
                    kind: column.kind,
                }),
                Raw::Null => Ok(Operand::Const(None)),
                Raw::Number(number) => match kind {
                    Kind::Int | Kind::Float => Kind::Int
                        .parse(&number)
                        .or_else(|| Kind::Float.parse(&number))
                        .map(|value| Operand::Const(Some(value)))
                        .ok_or_else(|| format!("invalid number {number}")),
                    other => Err(no_operator(other, op, "numeric")),
                },
                Raw::Bool(value) if kind == Kind::Bool => {
                    Ok(Operand::Const(Some(Scalar::Bool(value))))
                }
                Raw::Bool(_) => Err(no_operator(kind, op, "boolean")),
                Raw::Untyped(text) => kind
                    .parse(&text)
                    .map(|value| Operand::Const(Some(value)))
                    .ok_or_else(|| {
                        format!(
                            "invalid input syntax for type {}: {:?}",
                            kind.name(),
                            crate::rejection::echo(&text)
                        )
                    }),
            })
            .collect()
    }
}

fn unify(current: Option<Kind>, next: Kind, op: CmpOp) -> Result<Kind, String> {
    match (current, next) {
        (None, kind) => Ok(kind),
        (Some(a), b) if a == b => Ok(a),
        (Some(Kind::Int | Kind::Float), Kind::Int | Kind::Float) => Ok(Kind::Float),
        (Some(a), b) => Err(no_operator(a, op, b.name())),
    }
}

fn no_operator(left: Kind, op: CmpOp, right: &str) -> String {
    format!(
        "operator does not exist: {} {} {right}",
        left.name(),
        op.name()
    )
}

fn unsupported(what: &str) -> String {
    format!("{what} is not supported by the Electric stand-in")
}

fn describe(node: Option<&NodeEnum>) -> String {
    match node {
        Some(NodeEnum::FuncCall(_) | NodeEnum::CoalesceExpr(_) | NodeEnum::MinMaxExpr(_)) => {
            "a function call".into()
        }
        Some(NodeEnum::SubLink(_)) => "a subquery".into(),
        Some(NodeEnum::TypeCast(_)) => "a cast".into(),
        Some(NodeEnum::ColumnRef(_)) => "a qualified name".into(),
        _ => "this expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<ColumnDef> {
        [
            ("id", "int8"),
            ("title", "text"),
            ("done", "bool"),
            ("price", "numeric"),
        ]
        .into_iter()
        .map(|(name, pg_type)| ColumnDef {
            name: name.into(),
            pg_type: pg_type.into(),
            kind: Kind::of(pg_type),
            pk_index: (name == "id").then_some(0),
            not_null: name == "id",
        })
        .collect()
    }

    fn filter(text: &str, params: &[&str]) -> Result<Filter, String> {
        let expr = SqlExpr::parse(text, SqlLimits::default()).map_err(|e| e.to_string())?;
        let params: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
        Filter::compile(&expr, &columns(), &params)
    }

    fn row(id: &str, title: Option<&str>, done: &str, price: &str) -> Row {
        Row::from([
            ("id", Some(id)),
            ("title", title),
            ("done", Some(done)),
            ("price", Some(price)),
        ])
    }

    fn matching(text: &str, params: &[&str]) -> Vec<String> {
        let filter = filter(text, params).unwrap_or_else(|e| panic!("{text}: {e}"));
        [
            row("1", Some("a"), "true", "1.5"),
            row("2", Some("b"), "false", "10"),
            row("10", None, "false", "2"),
        ]
        .into_iter()
        .filter(|row| filter.matches(row))
        .map(|row| row.get("id").flatten().unwrap().to_owned())
        .collect()
    }

    #[test]
    fn comparisons_follow_the_column_type() {
        // Numerically, not as text: "10" > "2" as numbers.
        assert_eq!(matching("id > 2", &[]), ["10"]);
        assert_eq!(matching("id >= '2'", &[]), ["2", "10"]);
        assert_eq!(matching("price < 2", &[]), ["1"]);
        assert_eq!(matching("id = 1.0", &[]), ["1"]);
        assert_eq!(matching("title <> 'a'", &[]), ["2"]);
        assert_eq!(matching("title != 'a'", &[]), ["2"]);
        assert_eq!(matching("done", &[]), ["1"]);
        assert_eq!(matching("done = 'f'", &[]), ["2", "10"]);
        assert_eq!(matching("NOT done", &[]), ["2", "10"]);
        assert_eq!(matching("-1 < id", &[]), ["1", "2", "10"]);
    }

    #[test]
    fn params_logic_in_and_null_tests() {
        assert_eq!(matching("id = $1 OR title = $2", &["10", "a"]), ["1", "10"]);
        assert_eq!(matching("(id > $1) AND NOT done", &["1"]), ["2", "10"]);
        assert_eq!(matching("id IN (1, $1)", &["10"]), ["1", "10"]);
        assert_eq!(matching("id NOT IN (1, 2)", &[]), ["10"]);
        assert_eq!(matching("title IS NULL", &[]), ["10"]);
        assert_eq!(matching("title IS NOT NULL", &[]), ["1", "2"]);
        // NULL compares unknown, and NOT unknown is unknown.
        assert_eq!(matching("NOT (title = 'a')", &[]), ["2"]);
        assert_eq!(matching("(title = 'a') IS NOT TRUE", &[]), ["2", "10"]);
        assert_eq!(
            matching("title NOT IN ('a', NULL)", &[]),
            Vec::<String>::new()
        );
        assert_eq!(matching("true AND done = true", &[]), ["1"]);
    }

    #[test]
    fn outside_the_subset_is_refused() {
        for (text, message) in [
            ("nope = 1", "unknown reference nope"),
            ("id IN (SELECT 1)", "a subquery is not supported"),
            ("lower(title) = 'a'", "a function call is not supported"),
            ("items.id = 1", "a qualified name is not supported"),
            ("title LIKE 'a%'", "is not supported"),
            ("id = $2", "parameter $2 was not given"),
            ("id = 'x'", "invalid input syntax for type bigint"),
            ("title = 1", "operator does not exist: text = numeric"),
            ("id = title", "operator does not exist"),
            ("id", "must be type boolean"),
            ("id::text = '1'", "a cast is not supported"),
        ] {
            let error = filter(text, &["1"]).unwrap_err();
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn order_by_sorts_by_type_with_postgres_null_order() {
        let mut rows = vec![
            row("2", None, "f", "1"),
            row("10", Some("b"), "f", "1"),
            row("1", Some("a"), "t", "1"),
        ];
        let ids = |rows: &[Row]| -> Vec<String> {
            rows.iter()
                .map(|row| row.get("id").flatten().unwrap().to_owned())
                .collect()
        };
        OrderBy::parse("id", &columns()).unwrap().sort(&mut rows);
        assert_eq!(ids(&rows), ["1", "2", "10"]);
        OrderBy::parse("title DESC", &columns())
            .unwrap()
            .sort(&mut rows);
        assert_eq!(ids(&rows), ["2", "10", "1"]);
        OrderBy::parse("title ASC NULLS FIRST, id", &columns())
            .unwrap()
            .sort(&mut rows);
        assert_eq!(ids(&rows), ["2", "1", "10"]);
        assert!(OrderBy::parse("lower(title)", &columns()).is_err());
        assert!(OrderBy::parse("nope", &columns()).is_err());
        assert!(OrderBy::parse("id; drop", &columns()).is_err());
    }
}
