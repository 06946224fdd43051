//! Reading text: the token checks, then Postgres's parse of the statement Electric builds
//! around the text, held to exactly that statement's shape.

use pg_query::protobuf::{
    a_const, AConst, LimitOption, Node, ResTarget, SelectStmt, SetOperation, Token,
};
use pg_query::NodeEnum;

use super::{SqlError, SqlLimits};

/// Which clause of `SELECT 1 ...` the text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Clause {
    /// `SELECT 1 WHERE <text>`, as Electric parses a where.
    Where,
    /// `SELECT 1 ORDER BY <text>`.
    OrderBy,
}

impl Clause {
    /// The statement's text before the clause's own; the deparser writes it the same way.
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Self::Where => "SELECT 1 WHERE ",
            Self::OrderBy => "SELECT 1 ORDER BY ",
        }
    }
}

/// `text` as `clause` of `SELECT 1`: the whole parsed statement, checked to be that statement
/// and nothing more.
pub(super) fn statement(
    clause: Clause,
    text: &str,
    limits: SqlLimits,
) -> Result<SelectStmt, SqlError> {
    if text.len() > limits.max_len {
        return Err(SqlError::TooLong(limits.max_len));
    }
    check_tokens(text, limits.max_depth)?;
    let sql = format!("{}{text}", clause.prefix());
    let parsed = pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT).map_err(parse_error)?;
    let mut statements = parsed.protobuf.stmts.into_iter();
    let (Some(raw), None) = (statements.next(), statements.next()) else {
        return Err(SqlError::TrailingInput);
    };
    let Some(NodeEnum::SelectStmt(select)) = raw.stmt.and_then(|stmt| stmt.node) else {
        return Err(SqlError::TrailingInput);
    };
    if only_clause(clause, &select) {
        Ok(*select)
    } else {
        Err(SqlError::TrailingInput)
    }
}

/// The checks on the text's tokens, read by Postgres's own scanner: no comment, no `;`, no `)`
/// closing what the text did not open, nesting within `max_depth`, `$n` written canonically
/// (Postgres reads `$01` as `$1`; a client's `params[1]` is for `$1` as written), something
/// other than whitespace.
fn check_tokens(text: &str, max_depth: usize) -> Result<(), SqlError> {
    let scanned = pg_query::scan(text).map_err(|_| SqlError::Syntax)?;
    let mut depth = 0usize;
    for token in &scanned.tokens {
        match Token::try_from(token.token) {
            Ok(Token::SqlComment | Token::CComment) => return Err(SqlError::Comment),
            Ok(Token::Ascii59) => return Err(SqlError::StatementSeparator),
            Ok(Token::Ascii40 | Token::Ascii91) => {
                depth += 1;
                if depth > max_depth {
                    return Err(SqlError::TooDeep);
                }
            }
            Ok(Token::Ascii41 | Token::Ascii93) => {
                // `true) OR (true`: a `)` that would close the statement's own clause.
                depth = depth.checked_sub(1).ok_or(SqlError::TrailingInput)?;
            }
            Ok(Token::Param) => {
                let spelled = usize::try_from(token.start)
                    .ok()
                    .zip(usize::try_from(token.end).ok())
                    .and_then(|(start, end)| text.get(start..end));
                if !spelled.is_some_and(canonical_placeholder) {
                    return Err(SqlError::BadPlaceholder);
                }
            }
            _ => {}
        }
    }
    if scanned.tokens.is_empty() {
        return Err(SqlError::Empty);
    }
    Ok(())
}

/// `$n` with `n` a positive integer written without leading zeros.
fn canonical_placeholder(text: &str) -> bool {
    text.strip_prefix('$').is_some_and(|digits| {
        !digits.is_empty()
            && !digits.starts_with('0')
            && digits.bytes().all(|byte| byte.is_ascii_digit())
    })
}

fn parse_error(error: pg_query::Error) -> SqlError {
    match error {
        // The protobuf reader stops at 100 levels of messages; libpg_query checks its stack.
        pg_query::Error::Decode(_) => SqlError::TooDeep,
        pg_query::Error::Parse(message) if message.contains("stack depth") => SqlError::TooDeep,
        _ => SqlError::Syntax,
    }
}

/// Whether `select` is `SELECT 1` with `clause` and nothing else: no set operation
/// (`true UNION SELECT ...`), no other clause (`id LIMIT 1`, `true GROUP BY x`, `FOR UPDATE`).
/// Every field is named, so a field a later parser version adds must be looked at here.
fn only_clause(clause: Clause, select: &SelectStmt) -> bool {
    let SelectStmt {
        distinct_clause,
        into_clause,
        target_list,
        from_clause,
        where_clause,
        group_clause,
        group_distinct,
        having_clause,
        window_clause,
        values_lists,
        sort_clause,
        limit_offset,
        limit_count,
        limit_option,
        locking_clause,
        with_clause,
        op,
        all,
        larg,
        rarg,
    } = select;
    let wanted = match clause {
        Clause::Where => where_clause.is_some() && sort_clause.is_empty(),
        Clause::OrderBy => where_clause.is_none() && !sort_clause.is_empty(),
    };
    wanted
        && matches!(target_list.as_slice(), [one] if is_select_one(one))
        && distinct_clause.is_empty()
        && into_clause.is_none()
        && from_clause.is_empty()
        && group_clause.is_empty()
        && !group_distinct
        && having_clause.is_none()
        && window_clause.is_empty()
        && values_lists.is_empty()
        && limit_offset.is_none()
        && limit_count.is_none()
        && *limit_option == LimitOption::Default as i32
        && locking_clause.is_empty()
        && with_clause.is_none()
        && *op == SetOperation::SetopNone as i32
        && !all
        && larg.is_none()
        && rarg.is_none()
}

/// The target list's `1`.
fn is_select_one(target: &Node) -> bool {
    let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
        return false;
    };
    let ResTarget {
        name,
        indirection,
        val,
        location: _,
    } = target.as_ref();
    let one = matches!(
        val.as_ref().and_then(|val| val.node.as_ref()),
        Some(NodeEnum::AConst(AConst {
            isnull: false,
            val: Some(a_const::Val::Ival(pg_query::protobuf::Integer { ival: 1 })),
            ..
        }))
    );
    name.is_empty() && indirection.is_empty() && one
}
