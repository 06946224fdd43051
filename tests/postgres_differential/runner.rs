//! The Postgres runner: forwarded statements prepared and run the way Electric runs them, and
//! the tally.

use super::*;

/// The SQLSTATEs that say a value or a type did not fit, not that the text was read in
/// another way than the gateway read it.
fn is_typing_error(code: &SqlState) -> bool {
    code.code().starts_with("22")
        || [
            SqlState::DATATYPE_MISMATCH,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::AMBIGUOUS_FUNCTION,
            SqlState::INDETERMINATE_DATATYPE,
            SqlState::CANNOT_COERCE,
            SqlState::COLLATION_MISMATCH,
            SqlState::INDETERMINATE_COLLATION,
        ]
        .contains(code)
}

#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) cases: usize,
    pub(crate) refused: usize,
    pub(crate) forwarded: usize,
    /// Forwarded statements (shape or subset) Postgres ran.
    pub(crate) ran: usize,
    /// Forwarded statements Postgres refused for a type or value.
    pub(crate) typing: usize,
    pub(crate) rows: usize,
    pub(crate) failures: Vec<String>,
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Prepares and runs `sql` with `params` as text. `Ok(None)`: a typing error, counted.
pub(crate) async fn run(
    client: &Client,
    sql: &str,
    params: &[String],
    tally: &mut Tally,
    case: &str,
) -> Option<Vec<tokio_postgres::Row>> {
    let describe = |stage: &str, error: &tokio_postgres::Error| {
        let detail = error
            .as_db_error()
            .map(|db| format!("{} {}", db.code().code(), db.message()))
            .unwrap_or_else(|| error.to_string());
        format!("{case}\n  {stage}: {detail}\n  sql: {sql}\n  params: {params:?}")
    };
    let statement = match client.prepare(sql).await {
        Ok(statement) => statement,
        Err(error) if error.code().is_some_and(is_typing_error) => {
            tally.typing += 1;
            return None;
        }
        // A syntax error too, even where the client's own text was one: the gateway reads
        // clauses with Postgres's parser, so it must never forward one Postgres cannot read.
        Err(error) => {
            tally
                .failures
                .push(describe("(a) Postgres rejects", &error));
            return None;
        }
    };
    if statement.params().len() != params.len() {
        tally.failures.push(format!(
            "{case}\n  (a) Postgres reads {} placeholders, {} params were sent\n  sql: {sql}",
            statement.params().len(),
            params.len()
        ));
        if statement.params().len() > params.len() {
            return None;
        }
        // Fewer: a placeholder was read as part of a literal or a comment. Run it with the
        // params it reads, so that the rows say what the clause lets through.
    }
    let values: Vec<TextParam<'_>> = params
        .iter()
        .take(statement.params().len())
        .map(|p| TextParam(p))
        .collect();
    let values: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    match client.query(&statement, &values).await {
        Ok(rows) => {
            tally.ran += 1;
            Some(rows)
        }
        Err(error) if error.code().is_some_and(is_typing_error) => {
            tally.typing += 1;
            None
        }
        Err(error) => {
            tally
                .failures
                .push(describe("(a) Postgres fails it", &error));
            None
        }
    }
}

/// The subset of a request: from the query, or from a POST's body.
pub(crate) fn subset_of(
    request: &ShapeRequest,
    body: Option<&serde_json::Value>,
) -> Result<Option<SubsetSql>, String> {
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    let subset = match body {
        Some(serde_json::Value::Object(body)) if !body.is_empty() => SubsetSql {
            where_clause: body.get("where").and_then(text),
            params: match body.get("params") {
                Some(serde_json::Value::Object(params)) => (1..=params.len())
                    .map(|n| params.get(&n.to_string()).and_then(text))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("subset params not numbered 1..n")?,
                None => Vec::new(),
                Some(other) => return Err(format!("subset params {other}")),
            },
            order_by: body.get("order_by").and_then(text),
            limit: body.get("limit").and_then(text),
            offset: body.get("offset").and_then(text),
        },
        Some(serde_json::Value::Object(_)) | None => {
            let subset = &request.subset;
            if !subset.is_present() {
                return Ok(None);
            }
            SubsetSql {
                where_clause: subset.where_clause.clone(),
                params: subset.params.clone().unwrap_or_default(),
                order_by: subset.order_by.clone(),
                limit: subset.limit.map(|n| n.to_string()),
                offset: subset.offset.map(|n| n.to_string()),
            }
        }
        Some(other) => return Err(format!("a POST body that is not an object: {other}")),
    };
    Ok(Some(subset))
}

pub(crate) struct SubsetSql {
    where_clause: Option<String>,
    pub(crate) params: Vec<String>,
    order_by: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl SubsetSql {
    pub(crate) fn to_sql(&self) -> Result<String, String> {
        let mut sql = format!(
            "SELECT id FROM items WHERE {}\n",
            self.where_clause.as_deref().unwrap_or("true")
        );
        if let Some(order_by) = &self.order_by {
            sql.push_str(&format!("ORDER BY {order_by}\n"));
        }
        for (keyword, value) in [("LIMIT", &self.limit), ("OFFSET", &self.offset)] {
            if let Some(value) = value {
                if value.parse::<u64>().is_err() {
                    return Err(format!("subset {keyword} {value:?}"));
                }
                sql.push_str(&format!("{keyword} {value}\n"));
            }
        }
        Ok(sql)
    }
}

pub(crate) async fn setup(client: &Client) {
    client.batch_execute(SCHEMA).await.unwrap();
    let mut id = 0i64;
    for tenant in TENANTS {
        for (index, title) in TITLES.iter().enumerate() {
            id += 1;
            let title: Option<&str> = (index != 0 || tenant == TENANTS[0]).then_some(*title);
            client
                .execute(
                    "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &tenant,
                        &title,
                        &(id % 2 == 0),
                        &format!("secret of {id}"),
                        &format!("étiquette {}", index % 3),
                    ],
                )
                .await
                .unwrap();
        }
    }
    client
        .batch_execute(
            "INSERT INTO tenants VALUES ('acme', 'Acme', 'k1'), ('o''hara\\', 'O''Hara', 'k2');
             ANALYZE;
             SET statement_timeout = '10s';
             SET ROLE principal;",
        )
        .await
        .unwrap();
}
