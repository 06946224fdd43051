//! The stand-in's Postgres mode ([`StandInBuilder::postgres`](super::StandInBuilder::postgres)):
//! where clauses, subsets and `order_by` evaluated by Postgres instead of `eval.rs`.
//!
//! The design, kept small:
//! - The stand-in's own store stays the source of truth for rows, the change log and shapes.
//! - Each stand-in gets a database of its own in the given server
//!   (`tower_electric_standin_<pid>_<n>`, dropped when the stand-in is), with each table
//!   created from its definition (the column types as given) and every insert, update and
//!   delete made through the stand-in mirrored into it, so that a where reading other rows or
//!   tables sees what the stand-in holds.
//! - A where is evaluated over the rows in question, not over the table: a snapshot's rows,
//!   and the old and new row of each logged change, which no table holds any more. Those rows
//!   are loaded into a temporary table of the table's row type and the where runs over it,
//!   aliased as the table, with only the columns it may read (all, or a subset's queryable
//!   ones) exposed: `SELECT n FROM (SELECT <columns>, n FROM <rows>) AS <table> WHERE <where>
//!   [ORDER BY <order_by>, n] [LIMIT ..] [OFFSET ..]`.
//! - `params[n]` (and `subset__params`) are bound as text, so Postgres types each from where
//!   it is used, as Electric's inlined typed literals are.
//! - Postgres runs on a thread of its own with its own runtime; the stand-in's synchronous
//!   code waits for its answers. A where Postgres rejects is the stand-in's 400 with
//!   Postgres's message.
//!
//! The crate's SQL parser still gates the text first (as the stand-in did before), so the
//! where Postgres sees is one expression and `order_by` a list of columns.
//!
//! Guard rails for the client SQL Postgres runs: every statement of the stand-in's session
//! ends after [`STATEMENT_TIMEOUT`], and the evaluation (loading the rows in question into
//! the temporary table, then the where over them) runs in a `READ ONLY` transaction, which
//! Postgres lets write temporary tables only, and which is rolled back afterwards. Only the
//! mirroring of the stand-in's writes is read-write. The session's user is still the one the
//! target names (a [`TestCluster`](super::postgres::TestCluster)'s superuser): a role of its
//! own with `SELECT` only would not hold, since a superuser session could take its role back
//! with `set_config('role', ..)` from inside a where.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;

use bytes::BytesMut;
use serde_json::{Map, Value};
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::Client;

use crate::protocol::TableName;

use super::postgres::PostgresTarget;
use super::store::{ColumnDef, Row};

/// A parameter sent in text format: Postgres types it from where it is used.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn relation(table: &TableName) -> String {
    format!(
        "{}.{}",
        quoted(table.schema().as_str()),
        quoted(table.name().as_str())
    )
}

/// How long any one statement of the stand-in's Postgres session may run: a where that would
/// run longer (`pg_sleep`, a runaway join) is cancelled and answered as a where Postgres
/// rejects.
pub(crate) const STATEMENT_TIMEOUT: &str = "5s";

/// The ordinal column of the rows in question.
const ORDINAL: &str = "\"__standin_n\"";

/// Which rows of `rows` a where keeps, in which order.
#[derive(Debug, Clone)]
pub(crate) struct Select {
    pub(crate) table: TableName,
    /// The columns the clauses may read.
    pub(crate) exposed: Vec<String>,
    pub(crate) where_clause: Option<String>,
    pub(crate) params: Vec<String>,
    pub(crate) order_by: Option<String>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
}

enum Job {
    Execute {
        sql: String,
        params: Vec<String>,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Select {
        select: Select,
        temp: String,
        rows: String,
        reply: mpsc::Sender<Result<Vec<usize>, String>>,
    },
}

impl Job {
    fn fail(self, message: &str) {
        match self {
            Self::Execute { reply, .. } => {
                let _ = reply.send(Err(message.to_owned()));
            }
            Self::Select { reply, .. } => {
                let _ = reply.send(Err(message.to_owned()));
            }
        }
    }

    async fn run(self, client: &Client) {
        match self {
            Self::Execute { sql, params, reply } => {
                let values: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p)).collect();
                let values: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let result = client
                    .execute(sql.as_str(), &values)
                    .await
                    .map(|_| ())
                    .map_err(|error| message(&error));
                let _ = reply.send(result);
            }
            Self::Select {
                select,
                temp,
                rows,
                reply,
            } => {
                let _ = reply.send(run_select(client, &select, &temp, &rows).await);
            }
        }
    }
}

/// Postgres's own message for an error, as Electric reports a where it rejects.
fn message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned())
}

/// [`evaluate`] in a read-only transaction, always rolled back: the client's where cannot
/// write anything but the temporary table, and leaves nothing behind.
async fn run_select(
    client: &Client,
    select: &Select,
    temp: &str,
    rows: &str,
) -> Result<Vec<usize>, String> {
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(|error| message(&error))?;
    let result = evaluate(client, select, temp, rows).await;
    // On an error the transaction is aborted; ROLLBACK ends it either way.
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|error| message(&error))?;
    result
}

async fn evaluate(
    client: &Client,
    select: &Select,
    temp: &str,
    rows: &str,
) -> Result<Vec<usize>, String> {
    let fail = |error: tokio_postgres::Error| message(&error);
    client
        .execute(format!("DELETE FROM {temp}").as_str(), &[])
        .await
        .map_err(fail)?;
    client
        .execute(
            format!(
                "INSERT INTO {temp} SELECT * FROM json_populate_recordset(NULL::{}, $1::json) \
                 WITH ORDINALITY",
                relation(&select.table)
            )
            .as_str(),
            &[&TextParam(rows)],
        )
        .await
        .map_err(fail)?;
    let mut columns: Vec<String> = select.exposed.iter().map(|c| quoted(c)).collect();
    columns.push(ORDINAL.to_owned());
    // Each clause ends its line: a trailing `--` comment cannot reach what follows.
    let mut sql = format!(
        "SELECT {ORDINAL} FROM (SELECT {} FROM {temp}) AS {}\nWHERE {}\n",
        columns.join(", "),
        quoted(select.table.name().as_str()),
        select.where_clause.as_deref().unwrap_or("true"),
    );
    match &select.order_by {
        Some(order_by) => sql.push_str(&format!("ORDER BY {order_by}\n, {ORDINAL}\n")),
        None => sql.push_str(&format!("ORDER BY {ORDINAL}\n")),
    }
    if let Some(limit) = select.limit {
        sql.push_str(&format!("LIMIT {limit}\n"));
    }
    if let Some(offset) = select.offset {
        sql.push_str(&format!("OFFSET {offset}\n"));
    }
    let statement = client.prepare(&sql).await.map_err(fail)?;
    if statement.params().len() != select.params.len() {
        return Err(format!(
            "the clause reads $1..${}, and {} params are given",
            statement.params().len(),
            select.params.len()
        ));
    }
    let values: Vec<TextParam<'_>> = select.params.iter().map(|p| TextParam(p)).collect();
    let values: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let found = client.query(&statement, &values).await.map_err(fail)?;
    found
        .iter()
        .map(|row| {
            let ordinal: i64 = row.try_get(0).map_err(fail)?;
            usize::try_from(ordinal - 1).map_err(|error| error.to_string())
        })
        .collect()
}

/// The stand-in's connection to Postgres: a thread that runs one job at a time.
pub(crate) struct PgWorker {
    /// `None` once dropping: the thread then ends.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Each table's temporary table of rows in question.
    temps: Mutex<HashMap<TableName, String>>,
    /// Keeps a cluster the stand-in was given alive as long as the stand-in.
    _target: PostgresTarget,
}

impl Drop for PgWorker {
    /// Ends the thread and waits for it to drop the stand-in's database, before a cluster
    /// this worker keeps alive is stopped.
    fn drop(&mut self) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for PgWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWorker").finish_non_exhaustive()
    }
}

impl PgWorker {
    /// Starts the thread; connecting happens there, and a failure to connect is the answer
    /// to every job.
    pub(crate) fn start(target: PostgresTarget) -> Self {
        let (sender, receiver) = mpsc::channel();
        let connection_string = target.connection_string();
        let spawned = thread::Builder::new()
            .name("standin-postgres".into())
            .spawn(move || work(&connection_string, &receiver));
        let thread = match spawned {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "the stand-in's Postgres thread did not start");
                None
            }
        };
        Self {
            jobs: Mutex::new(Some(sender)),
            thread,
            temps: Mutex::new(HashMap::new()),
            _target: target,
        }
    }

    fn send(&self, job: Job) {
        let sender = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let unsent = match sender.as_ref() {
            Some(sender) => sender.send(job).err().map(|mpsc::SendError(job)| job),
            None => Some(job),
        };
        if let Some(job) = unsent {
            job.fail("the stand-in's Postgres thread has stopped");
        }
    }

    /// Runs a statement, its params as text.
    pub(crate) fn execute(&self, sql: String, params: Vec<String>) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.send(Job::Execute { sql, params, reply });
        answer
            .recv()
            .unwrap_or_else(|_| Err("the stand-in's Postgres thread has stopped".into()))
    }

    /// Creates `table` from its columns, and the temporary table of rows in question.
    pub(crate) fn create_table(
        &self,
        table: &TableName,
        columns: &[ColumnDef],
    ) -> Result<(), String> {
        static TEMPS: AtomicU64 = AtomicU64::new(0);
        let mut definition: Vec<String> = columns
            .iter()
            .map(|column| {
                let not_null = if column.not_null { " NOT NULL" } else { "" };
                format!("{} {}{not_null}", quoted(&column.name), column.pg_type)
            })
            .collect();
        let mut key: Vec<&ColumnDef> = columns.iter().filter(|c| c.pk_index.is_some()).collect();
        key.sort_by_key(|column| column.pk_index);
        let key: Vec<String> = key.iter().map(|column| quoted(&column.name)).collect();
        definition.push(format!("PRIMARY KEY ({})", key.join(", ")));
        self.execute(
            format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quoted(table.schema().as_str())
            ),
            Vec::new(),
        )?;
        self.execute(
            format!(
                "CREATE TABLE {} ({})",
                relation(table),
                definition.join(", ")
            ),
            Vec::new(),
        )?;
        let temp = format!(
            "pg_temp.\"__standin_rows_{}\"",
            TEMPS.fetch_add(1, Ordering::Relaxed)
        );
        self.execute(
            format!(
                "CREATE TEMPORARY TABLE {temp} AS SELECT *, 0::int8 AS {ORDINAL} FROM {} WITH NO DATA",
                relation(table)
            ),
            Vec::new(),
        )?;
        self.temps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table.clone(), temp);
        Ok(())
    }

    /// Mirrors an insert of `row` (missing columns NULL).
    pub(crate) fn insert(&self, table: &TableName, row: &Row) -> Result<(), String> {
        self.execute(
            format!(
                "INSERT INTO {0} SELECT * FROM json_populate_record(NULL::{0}, $1::json)",
                relation(table)
            ),
            vec![row_json(row).to_string()],
        )
    }

    /// Mirrors an update: the columns `changes` names, of the row its key columns name.
    pub(crate) fn update(
        &self,
        table: &TableName,
        key: &[String],
        changes: &Row,
    ) -> Result<(), String> {
        let set: Vec<String> = changes
            .iter()
            .map(|(column, _)| quoted(column))
            .filter(|column| !key.iter().any(|k| quoted(k) == *column))
            .collect();
        if set.is_empty() {
            return Ok(());
        }
        let key: Vec<String> = key.iter().map(|column| quoted(column)).collect();
        self.execute(
            format!(
                "UPDATE {0} SET ({1}) = (SELECT {1} FROM json_populate_record(NULL::{0}, $1::json)) \
                 WHERE ({2}) = (SELECT {2} FROM json_populate_record(NULL::{0}, $1::json))",
                relation(table),
                set.join(", "),
                key.join(", ")
            ),
            vec![row_json(changes).to_string()],
        )
    }

    /// Mirrors a delete of the row `key` names.
    pub(crate) fn delete(
        &self,
        table: &TableName,
        key: &[String],
        row: &Row,
    ) -> Result<(), String> {
        let key: Vec<String> = key.iter().map(|column| quoted(column)).collect();
        self.execute(
            format!(
                "DELETE FROM {0} WHERE ({1}) = (SELECT {1} FROM json_populate_record(NULL::{0}, $1::json))",
                relation(table),
                key.join(", ")
            ),
            vec![row_json(row).to_string()],
        )
    }

    /// The indices of the rows of `rows` that `select` keeps, in its order.
    pub(crate) fn select(&self, select: &Select, rows: &[&Row]) -> Result<Vec<usize>, String> {
        let temp = self
            .temps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&select.table)
            .cloned()
            .ok_or_else(|| format!("table {} is not in Postgres", select.table))?;
        let rows = Value::Array(rows.iter().map(|row| row_json(row)).collect()).to_string();
        let (reply, answer) = mpsc::channel();
        self.send(Job::Select {
            select: select.clone(),
            temp,
            rows,
            reply,
        });
        answer
            .recv()
            .unwrap_or_else(|_| Err("the stand-in's Postgres thread has stopped".into()))
    }
}

fn row_json(row: &Row) -> Value {
    let map: Map<String, Value> = row
        .iter()
        .map(|(column, value)| {
            (
                column.to_owned(),
                value.map_or(Value::Null, |v| Value::String(v.to_owned())),
            )
        })
        .collect();
    Value::Object(map)
}

/// The thread: a database of the stand-in's own, then one job at a time until the stand-in
/// is dropped, then the database dropped.
fn work(connection_string: &str, jobs: &mpsc::Receiver<Job>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail_all(jobs, &format!("no runtime for Postgres: {error}")),
    };
    let connected = runtime.block_on(own_database(connection_string));
    let (admin, client, database) = match connected {
        Ok(connected) => connected,
        Err(error) => {
            return fail_all(
                jobs,
                &format!("the stand-in could not reach Postgres: {error}"),
            )
        }
    };
    while let Ok(job) = jobs.recv() {
        runtime.block_on(job.run(&client));
    }
    drop(client);
    runtime.block_on(async {
        let drop_database = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&database));
        if let Err(error) = admin.batch_execute(&drop_database).await {
            tracing::debug!(%error, "the stand-in's database was not dropped");
        }
    });
}

fn fail_all(jobs: &mpsc::Receiver<Job>, message: &str) {
    tracing::error!(message, "the stand-in's Postgres mode is unavailable");
    while let Ok(job) = jobs.recv() {
        job.fail(message);
    }
}

/// Connects, creates the stand-in's database and connects to it: (admin, client, name).
async fn own_database(
    connection_string: &str,
) -> Result<(Client, Client, String), tokio_postgres::Error> {
    static DATABASES: AtomicU64 = AtomicU64::new(0);
    let config: tokio_postgres::Config = connection_string.parse()?;
    let admin = connect(&config).await?;
    let name = format!(
        "tower_electric_standin_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quoted(&name)))
        .await?;
    let mut own = config.clone();
    own.dbname(&name);
    let client = connect(&own).await?;
    client
        .batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'"))
        .await?;
    Ok((admin, client, name))
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a stand-in Postgres connection ended");
        }
    });
    Ok(client)
}

/// A where clause of a shape, evaluated by Postgres.
#[derive(Debug, Clone)]
pub(crate) struct PgFilter {
    pub(crate) worker: Arc<PgWorker>,
    pub(crate) select: Select,
}

impl PgFilter {
    /// The rows of `rows` the where keeps, in their order.
    pub(crate) fn keep(&self, rows: &[&Row]) -> Result<Vec<usize>, String> {
        self.worker.select(&self.select, rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::eval::Kind;
    use super::super::postgres::TestCluster;
    use super::*;

    fn column(name: &str, pg_type: &str, pk_index: Option<usize>) -> ColumnDef {
        ColumnDef {
            name: name.to_owned(),
            pg_type: pg_type.to_owned(),
            kind: Kind::of(pg_type),
            pk_index,
            not_null: pk_index.is_some(),
        }
    }

    fn select(table: &TableName, where_clause: &str) -> Select {
        Select {
            table: table.clone(),
            exposed: vec!["id".into(), "title".into()],
            where_clause: Some(where_clause.to_owned()),
            params: Vec::new(),
            order_by: None,
            limit: None,
            offset: None,
        }
    }

    /// The where runs read-only and under the statement timeout; a write smuggled into it is
    /// refused, while the stand-in's own mirrored writes still go through.
    #[test]
    fn the_evaluation_is_read_only_and_timed_while_mirroring_writes() {
        let worker = PgWorker::start(TestCluster::start().unwrap().into());
        let table = TableName::parse("public.items").unwrap();
        worker
            .create_table(
                &table,
                &[column("id", "int8", Some(0)), column("title", "text", None)],
            )
            .unwrap();
        worker
            .execute("CREATE SEQUENCE counter".into(), Vec::new())
            .unwrap();
        let row = Row::new().with("id", "1").with("title", "a");
        worker.insert(&table, &row).unwrap();
        let rows = [&row];

        assert_eq!(
            worker
                .select(
                    &select(&table, "current_setting('transaction_read_only') = 'on'"),
                    &rows
                )
                .unwrap(),
            [0]
        );
        assert_eq!(
            worker
                .select(
                    &select(&table, "current_setting('statement_timeout') = '5s'"),
                    &rows
                )
                .unwrap(),
            [0]
        );
        let refused = worker
            .select(&select(&table, "nextval('counter') > 0"), &rows)
            .unwrap_err();
        assert!(refused.contains("read-only transaction"), "{refused}");
        let slow = worker
            .select(&select(&table, "(SELECT true FROM pg_sleep(6))"), &rows)
            .unwrap_err();
        assert!(slow.contains("statement timeout"), "{slow}");

        // The session is usable again, and the mirror is read-write.
        let other = Row::new().with("id", "2").with("title", "b");
        worker.insert(&table, &other).unwrap();
        worker
            .update(
                &table,
                &["id".into()],
                &Row::new().with("id", "1").with("title", "c"),
            )
            .unwrap();
        worker.delete(&table, &["id".into()], &other).unwrap();
        let stored = select(
            &table,
            "(SELECT array_agg(id || title ORDER BY id) FROM public.items) = '{1c}'",
        );
        assert_eq!(worker.select(&stored, &rows).unwrap(), [0]);
    }
}
