//! Writing trees as text with libpg_query's deparser.
//!
//! The deparser writes whole statements, so a clause is written as the statement it is read
//! in (`SELECT 1 WHERE ...`) and the statement's own text is taken off the front; the caller
//! reads the rest back in that same statement before sending it.

use pg_query::protobuf::{
    a_const, AConst, Integer, LimitOption, Node, ParseResult, RawStmt, ResTarget, SelectStmt,
    SetOperation,
};
use pg_query::NodeEnum;

use super::parse::Clause;
use super::{SqlError, SqlLimits};

/// The limits text this module wrote is read back with: the parts were read within their own
/// limits, and the deparser adds parentheses of its own.
pub(super) const READ_BACK_LIMITS: SqlLimits = SqlLimits {
    max_len: usize::MAX,
    max_depth: 4 * super::POLICY_MAX_DEPTH,
};

/// `SELECT 1 WHERE <node>`.
pub(super) fn with_where(node: &Node) -> SelectStmt {
    SelectStmt {
        where_clause: Some(Box::new(node.clone())),
        ..select_one()
    }
}

/// `SELECT 1 ORDER BY <items>`.
pub(super) fn with_order(items: &[Node]) -> SelectStmt {
    SelectStmt {
        sort_clause: items.to_vec(),
        ..select_one()
    }
}

/// `SELECT 1`, as Postgres parses it.
fn select_one() -> SelectStmt {
    let one = Node {
        node: Some(NodeEnum::AConst(AConst {
            isnull: false,
            location: -1,
            val: Some(a_const::Val::Ival(Integer { ival: 1 })),
        })),
    };
    let target = Node {
        node: Some(NodeEnum::ResTarget(Box::new(ResTarget {
            name: String::new(),
            indirection: Vec::new(),
            val: Some(Box::new(one)),
            location: -1,
        }))),
    };
    SelectStmt {
        target_list: vec![target],
        limit_option: LimitOption::Default as i32,
        op: SetOperation::SetopNone as i32,
        ..SelectStmt::default()
    }
}

/// The text of `clause` in `select`, as the deparser writes it.
pub(super) fn clause(clause: Clause, select: SelectStmt) -> Result<String, SqlError> {
    let statement = ParseResult {
        version: 0,
        stmts: vec![RawStmt {
            stmt: Some(Box::new(Node {
                node: Some(NodeEnum::SelectStmt(Box::new(select))),
            })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    let text = pg_query::deparse(&statement, pg_query::DeparseOptions::default())
        .map_err(|_| SqlError::NotRenderable)?;
    text.strip_prefix(clause.prefix())
        .map(str::to_owned)
        .ok_or(SqlError::NotRenderable)
}
