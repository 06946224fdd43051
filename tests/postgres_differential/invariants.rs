//! The invariants (a), (b) and (c), checked for one forwarded case.

use super::runner::{quoted, run, subset_of};
use super::*;

pub(crate) async fn check(client: &Client, case: &Case, forwarded: &Forwarded, tally: &mut Tally) {
    let label = format!(
        "{} {} {} (tenant {:?})",
        case.method, case.query, case.body, case.tenant
    );
    let upstream = &forwarded.upstream;
    if upstream.table.as_ref().map(|t| t.to_param()).as_deref() != Some("public.items") {
        tally
            .failures
            .push(format!("{label}\n  forwarded table {:?}", upstream.table));
        return;
    }
    let Some(where_clause) = &upstream.where_clause else {
        tally
            .failures
            .push(format!("{label}\n  (b) forwarded without a where"));
        return;
    };
    let columns: Vec<String> = match &upstream.columns {
        Some(columns) => columns.iter().map(|c| quoted(c.as_str())).collect(),
        None => vec!["*".to_owned()],
    };
    // The where last on its line, as Electric puts it after `WHERE`: a `--` in it cannot
    // reach anything of ours.
    let sql = format!(
        "SELECT tenant_id, {} FROM items WHERE {where_clause}\n",
        columns.join(", ")
    );
    if let Some(rows) = run(client, &sql, &upstream.params, tally, &label).await {
        for row in &rows {
            let owner: String = row.get(0);
            if owner != case.tenant {
                tally.failures.push(format!(
                    "{label}\n  (b) a row of {owner:?} for {:?}\n  sql: {sql}\n  params: {:?}",
                    case.tenant, upstream.params
                ));
                break;
            }
        }
        tally.rows += rows.len();
    }
    let subset = match subset_of(upstream, forwarded.body.as_ref()) {
        Ok(Some(subset)) => subset,
        Ok(None) => return,
        Err(problem) => {
            tally.failures.push(format!("{label}\n  {problem}"));
            return;
        }
    };
    // Electric ANDs the subset's where with the shape's, whose rows were checked above; here
    // the subset's own clauses must be read by Postgres as the gateway read them.
    let sql = match subset.to_sql() {
        Ok(sql) => sql,
        Err(problem) => {
            tally.failures.push(format!("{label}\n  {problem}"));
            return;
        }
    };
    let _ = run(client, &sql, &subset.params, tally, &label).await;
}
