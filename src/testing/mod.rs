//! An Electric stand-in for tests: yours, this crate's, and your users'.
//!
//! Electric needs Postgres and a replication slot; a test of a proxy needs neither, only
//! something that answers `/v1/shape` the way Electric does. [`ElectricStandIn`] is that:
//! tables with a schema and rows you change through its API ([`insert`], [`update`],
//! [`delete`]), served over Electric's HTTP protocol with Electric's headers, bodies, status
//! codes and error shapes (see `PROTOCOL.md` and `tests/fixtures/electric/`):
//!
//! - `GET`/`HEAD /v1/shape`: the snapshot at offset `-1` (ending in `snapshot-end`), `now`,
//!   log offsets `<tx>_<op>`, one handle per shape definition (table, where, params,
//!   columns, replica), long-poll `live` requests held until a change or for
//!   [`long_poll_hold`], `live_sse` streams with `: keep-alive` comments, `replica=full`,
//!   `log=changes_only`, 409 `must-refetch` after [`rotate`] or for an unknown handle, `etag`
//!   and `304`, `cache-control` per case, CORS, and `secret`/`api_secret` (plus Electric
//!   Cloud's `source_id`, with [`cloud_source`]).
//! - Subset snapshots: `subset__*` params and `POST /v1/shape` with a JSON body, whose keys
//!   other than the subset's are merged over the URL's query params, as Electric does.
//! - `where`, `params[n]`, `subset__where` and `subset__order_by` evaluated for a documented
//!   subset of SQL: comparisons, `AND`/`OR`/`NOT`, `IN (list)`, `IS [NOT] NULL`, literals,
//!   `$n`, column names and parentheses, compared by column type. Anything else is a 400.
//!   With `StandInBuilder::postgres` (feature `postgres`) they are evaluated by Postgres
//!   instead, with its semantics; `postgres::TestCluster` starts a throwaway one.
//! - `OPTIONS /v1/shape` preflight, `GET /v1/health`; other paths 404, other methods 405.
//!
//! It differs from Electric on purpose in one way: a query key given twice is a 400 (Electric
//! keeps the last copy), because a proxy that forwards a duplicate is the bug a test should
//! see. Every request is recorded ([`requests`]) and live requests whose client went away
//! before the answer was complete are counted ([`live_cancelled`]).
//!
//! It is a [`tower_service::Service`] to call in-process, or a real HTTP/1.1 and h2c server on
//! `127.0.0.1` ([`serve`]). Both share the same data.
//!
//! # Example
//!
//! ```
//! use http_body_util::{BodyExt, Empty};
//! use tower::ServiceExt;
//! use tower_electric::testing::{Column, ElectricStandIn, TableSchema};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let electric = ElectricStandIn::new();
//! electric.create_table(
//!     TableSchema::new("items")
//!         .column(Column::new("id", "int8").primary_key())
//!         .column(Column::new("title", "text")),
//! )?;
//! electric.insert("items", [("id", "1"), ("title", "first")])?;
//!
//! let request = http::Request::get("/v1/shape?table=items&offset=-1").body(Empty::new())?;
//! let response = electric.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! let handle = response.headers()["electric-handle"].to_str()?.to_owned();
//! let body = response.into_body().collect().await?.to_bytes();
//! let messages: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(messages[0]["value"]["title"], "first");
//! assert_eq!(messages[1]["headers"]["control"], "snapshot-end");
//!
//! // A live request is held until the next change.
//! let uri = format!("/v1/shape?table=items&offset=0_inf&handle={handle}&live=true");
//! let live = tokio::spawn(electric.clone().oneshot(http::Request::get(uri).body(Empty::new())?));
//! electric.wait_for_live_in_flight(1).await;
//! electric.insert("items", [("id", "2"), ("title", "second")])?;
//! let response = live.await??;
//! assert_eq!(response.headers()["electric-offset"], "2_0");
//! # Ok(())
//! # }
//! ```
//!
//! Over TCP, for a client or a forwarding proxy under test:
//!
//! ```
//! use tower_electric::testing::ElectricStandIn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // Electric's own timing (20 s long-polls, SSE for 60 s) and demo data, for a demo app:
//! let electric = ElectricStandIn::builder()
//!     .electric_timing()
//!     .secret("electric-secret")
//!     .with_demo_data()
//!     .build();
//! let server = electric.serve().await?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! server.shutdown().await; // or drop it
//! # Ok(())
//! # }
//! ```
//!
//! [`insert`]: ElectricStandIn::insert
//! [`update`]: ElectricStandIn::update
//! [`delete`]: ElectricStandIn::delete
//! [`rotate`]: ElectricStandIn::rotate
//! [`requests`]: ElectricStandIn::requests
//! [`live_cancelled`]: ElectricStandIn::live_cancelled
//! [`serve`]: ElectricStandIn::serve
//! [`long_poll_hold`]: StandInBuilder::long_poll_hold
//! [`cloud_source`]: StandInBuilder::cloud_source

mod answer;
mod chunked;
mod eval;
mod filter;
mod messages;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
pub mod postgres;
mod server;
mod service;
mod shape;
mod sse;
mod store;
mod subset;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::sync::watch;

use crate::protocol::LogOffset;
use crate::secret::SecretString;

pub use answer::StandInBody;
pub use chunked::ChunkedBody;
pub use server::StandInServer;
pub use service::ResponseFuture;
pub use store::{Column, Row, StandInError, TableSchema};

use filter::PgHandle;
use store::Store;

/// A write the Postgres mode mirrors.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
enum Write<'a> {
    Create,
    Insert(&'a Row),
    Update(&'a Row),
    Delete(&'a Row),
}

/// The default [`StandInBuilder::long_poll_hold`]: short, so that test suites stay fast.
pub const DEFAULT_LONG_POLL_HOLD: Duration = Duration::from_secs(2);
/// The default [`StandInBuilder::sse_keep_alive`].
pub const DEFAULT_SSE_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The default [`StandInBuilder::sse_duration`].
pub const DEFAULT_SSE_DURATION: Duration = Duration::from_secs(5);

/// An in-memory Electric: a cloneable [`tower_service::Service`] that answers Electric's
/// shape API from tables changed through its methods. Clones share the same data.
///
/// See the [module documentation](self) for what it serves.
#[derive(Clone)]
pub struct ElectricStandIn {
    shared: Arc<Shared>,
}

impl fmt::Debug for ElectricStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectricStandIn")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) secret: Option<SecretString>,
    /// Electric Cloud's source id, required beside the secret when set.
    pub(crate) source_id: Option<String>,
    pub(crate) long_poll_hold: Duration,
    pub(crate) sse_keep_alive: Duration,
    pub(crate) sse_duration: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    requests: usize,
    live_in_flight: usize,
    live_cancelled: usize,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Postgres, in the Postgres mode.
    pub(crate) postgres: PgHandle,
    store: Mutex<Store>,
    /// Bumped on every change and rotation; live requests wait on it.
    pub(crate) changes: watch::Sender<u64>,
    requests: Mutex<Vec<RecordedRequest>>,
    stats: watch::Sender<Stats>,
    sequence: AtomicU64,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the data half-changed in a way that
        // matters to a test double; keep serving.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A number that grows with every call: etag suffixes, snapshot marks, cursor bumps.
    pub(crate) fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        self.stats.send_modify(|stats| stats.requests += 1);
    }

    pub(crate) fn live_started(&self) {
        self.stats.send_modify(|stats| stats.live_in_flight += 1);
    }

    pub(crate) fn live_ended(&self, completed: bool) {
        self.stats.send_modify(|stats| {
            stats.live_in_flight = stats.live_in_flight.saturating_sub(1);
            if !completed {
                stats.live_cancelled += 1;
            }
        });
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }
}

/// Builds an [`ElectricStandIn`] with a secret, timings, or demo data.
#[derive(Debug, Clone)]
#[must_use]
pub struct StandInBuilder {
    config: Config,
    demo_data: bool,
    #[cfg(feature = "postgres")]
    postgres: Option<postgres::PostgresTarget>,
}

impl StandInBuilder {
    /// Requires Electric's API token: requests to `/v1/shape` without `secret` (or legacy
    /// `api_secret`) equal to it get Electric's 401.
    pub fn secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.config.secret = Some(secret.into());
        self
    }

    /// Answers like Electric Cloud's source `source_id`: requests to `/v1/shape` need both
    /// `source_id` equal to `source_id` and `secret` (or legacy `api_secret`) equal to
    /// `secret`, as in `https://api.electric-sql.cloud/v1/shape?table=items&offset=-1&source_id=…&secret=…`;
    /// a missing or wrong one gets Electric's 401.
    ///
    /// ```
    /// use http_body_util::Empty;
    /// use tower::ServiceExt;
    /// use tower_electric::testing::ElectricStandIn;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = ElectricStandIn::builder()
    ///     .cloud_source("source-1", "source-secret")
    ///     .with_demo_data()
    ///     .build();
    /// let ask = |query: &str| {
    ///     let request = http::Request::get(format!("/v1/shape?table=items&offset=-1&{query}"));
    ///     cloud.clone().oneshot(request.body(Empty::<bytes::Bytes>::new()).unwrap())
    /// };
    /// assert_eq!(ask("source_id=source-1&secret=source-secret").await?.status(), 200);
    /// assert_eq!(ask("secret=source-secret").await?.status(), 401);
    /// assert_eq!(ask("source_id=source-2&secret=source-secret").await?.status(), 401);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cloud_source(
        mut self,
        source_id: impl Into<String>,
        secret: impl Into<SecretString>,
    ) -> Self {
        self.config.source_id = Some(source_id.into());
        self.secret(secret)
    }

    /// How long a long-poll (`live=true`) request waits for a change before answering
    /// up-to-date with `electric-has-data: false`. Default [`DEFAULT_LONG_POLL_HOLD`] (2 s);
    /// Electric holds for 20 s.
    pub fn long_poll_hold(mut self, hold: Duration) -> Self {
        self.config.long_poll_hold = hold;
        self
    }

    /// How long an SSE stream stays silent before a `: keep-alive` comment. Default
    /// [`DEFAULT_SSE_KEEP_ALIVE`] (1 s); Electric waits 21 s.
    pub fn sse_keep_alive(mut self, interval: Duration) -> Self {
        self.config.sse_keep_alive = interval;
        self
    }

    /// How long an SSE stream lasts before the stand-in closes it. Default
    /// [`DEFAULT_SSE_DURATION`] (5 s); Electric closes after 60 s.
    pub fn sse_duration(mut self, duration: Duration) -> Self {
        self.config.sse_duration = duration;
        self
    }

    /// Electric's own timing: long-polls held 20 s, SSE keep-alives after 21 s, streams
    /// closed after 60 s. For demos, not for test suites.
    pub fn electric_timing(self) -> Self {
        self.long_poll_hold(Duration::from_secs(20))
            .sse_keep_alive(Duration::from_secs(21))
            .sse_duration(Duration::from_secs(60))
    }

    /// Evaluates `where`, `subset__where`, `subset__order_by`, `subset__limit` and
    /// `subset__offset` in Postgres instead of the stand-in's own evaluator, so that tests
    /// get Postgres's semantics (types, functions, operators, casts, collation) for every
    /// clause Postgres accepts; a clause Postgres rejects is the stand-in's 400 with
    /// Postgres's message, in Electric's shape. Feature `postgres`.
    ///
    /// `target` is a [`TestCluster`](postgres::TestCluster) (kept running as long as the
    /// stand-in) or a connection string whose user may create databases. The stand-in
    /// creates a database of its own there (dropped when the stand-in is), creates its
    /// tables in it from their definitions (column types as given to [`Column::new`]) and
    /// mirrors every insert, update and delete into them. The where of a shape is evaluated
    /// over the rows in question (a snapshot's, and the old and new row of each change), so
    /// live changes move rows in and out of a shape by Postgres's reading too. The crate's
    /// own parser still checks each clause first (one expression; `order_by` a list of
    /// columns), and `columns` is checked against the table definition as before.
    ///
    /// ```no_run
    /// use tower_electric::testing::postgres::TestCluster;
    /// use tower_electric::testing::ElectricStandIn;
    ///
    /// let electric = ElectricStandIn::builder()
    ///     .postgres(TestCluster::start()?)
    ///     .with_demo_data()
    ///     .build();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, target: impl Into<postgres::PostgresTarget>) -> Self {
        self.postgres = Some(target.into());
        self
    }

    /// Seeds the demo tables of [`ElectricStandIn::demo`].
    pub fn with_demo_data(mut self) -> Self {
        self.demo_data = true;
        self
    }

    /// The stand-in.
    pub fn build(self) -> ElectricStandIn {
        #[cfg(feature = "postgres")]
        let postgres = self
            .postgres
            .map(|target| Arc::new(pg::PgWorker::start(target)));
        #[cfg(not(feature = "postgres"))]
        let postgres = None;
        let standin = ElectricStandIn {
            shared: Arc::new(Shared {
                config: self.config,
                postgres,
                store: Mutex::new(Store::default()),
                changes: watch::Sender::new(0),
                requests: Mutex::new(Vec::new()),
                stats: watch::Sender::new(Stats::default()),
                sequence: AtomicU64::new(0),
            }),
        };
        if self.demo_data {
            if let Err(error) = standin.seed_demo_data() {
                tracing::error!(%error, "the stand-in's demo data did not load");
            }
        }
        standin
    }
}

impl Default for ElectricStandIn {
    fn default() -> Self {
        Self::new()
    }
}

impl ElectricStandIn {
    /// A stand-in with no tables, no secret and the default (short) timings.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a stand-in with a secret, other timings, or demo data.
    pub fn builder() -> StandInBuilder {
        StandInBuilder {
            config: Config {
                secret: None,
                source_id: None,
                long_poll_hold: DEFAULT_LONG_POLL_HOLD,
                sse_keep_alive: DEFAULT_SSE_KEEP_ALIVE,
                sse_duration: DEFAULT_SSE_DURATION,
            },
            demo_data: false,
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// A stand-in seeded with demo data for two tenants, `acme` and `globex`:
    ///
    /// - `items`: `id int8` primary key, `tenant_id text`, `title text`, `done bool`,
    ///   `internal_note text`; rows 1–3 belong to `acme`, 4–5 to `globex`.
    /// - `tenants`: `id text` primary key, `name text`, `keys text` (a placeholder string).
    ///
    /// ```
    /// let electric = tower_electric::testing::ElectricStandIn::demo();
    /// assert_eq!(electric.rows("items")?.len(), 5);
    /// assert_eq!(electric.rows("tenants")?.len(), 2);
    /// # Ok::<(), tower_electric::testing::StandInError>(())
    /// ```
    pub fn demo() -> Self {
        Self::builder().with_demo_data().build()
    }

    fn seed_demo_data(&self) -> Result<(), StandInError> {
        self.create_table(
            TableSchema::new("items")
                .column(Column::new("id", "int8").primary_key())
                .column(Column::new("tenant_id", "text").not_null())
                .column(Column::new("title", "text").not_null())
                .column(Column::new("done", "bool").not_null())
                .column(Column::new("internal_note", "text")),
        )?;
        for (id, tenant, title, done, note) in [
            (
                "1",
                "acme",
                "Draft the launch plan",
                "false",
                "ask legal first",
            ),
            ("2", "acme", "Order new laptops", "true", "budget approved"),
            ("3", "acme", "Book the offsite", "false", "keep it quiet"),
            ("4", "globex", "Audit the vendors", "false", "two are late"),
            ("5", "globex", "Renew the lease", "true", "rent goes up 5%"),
        ] {
            self.insert(
                "items",
                [
                    ("id", id),
                    ("tenant_id", tenant),
                    ("title", title),
                    ("done", done),
                    ("internal_note", note),
                ],
            )?;
        }
        self.create_table(
            TableSchema::new("tenants")
                .column(Column::new("id", "text").primary_key())
                .column(Column::new("name", "text").not_null())
                .column(Column::new("keys", "text")),
        )?;
        for (id, name) in [("acme", "Acme Corporation"), ("globex", "Globex")] {
            self.insert(
                "tenants",
                [("id", id), ("name", name), ("keys", "placeholder-keys")],
            )?;
        }
        Ok(())
    }

    /// Creates a table.
    pub fn create_table(&self, schema: TableSchema) -> Result<(), StandInError> {
        let table = schema.table_text().to_owned();
        let mut store = self.shared.store();
        store.create_table(schema)?;
        self.mirror(&store, &table, Write::Create)
    }

    /// Makes the change just made in the store in Postgres too, in the Postgres mode.
    #[cfg(feature = "postgres")]
    fn mirror(&self, store: &Store, table: &str, write: Write<'_>) -> Result<(), StandInError> {
        let Some(postgres) = &self.shared.postgres else {
            return Ok(());
        };
        let name = store::table_name(table)?;
        let Some(definition) = store.table(&name) else {
            return Err(StandInError::UnknownTable(name.to_param()));
        };
        let key: Vec<String> = definition.primary_key().map(|c| c.name.clone()).collect();
        match write {
            Write::Create => postgres.create_table(&name, &definition.columns),
            Write::Insert(row) => postgres.insert(&name, row),
            Write::Update(changes) => postgres.update(&name, &key, changes),
            Write::Delete(row) => postgres.delete(&name, &key, row),
        }
        .map_err(StandInError::Postgres)
    }

    #[cfg(not(feature = "postgres"))]
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    fn mirror(&self, _: &Store, _: &str, _: Write<'_>) -> Result<(), StandInError> {
        Ok(())
    }

    /// Inserts a row (missing columns are `NULL`) and wakes live requests. Returns the
    /// change's log offset, `<tx>_0`.
    pub fn insert(&self, table: &str, row: impl Into<Row>) -> Result<LogOffset, StandInError> {
        let row = row.into();
        let mut store = self.shared.store();
        let offset = store.insert(table, row.clone())?;
        self.mirror(&store, table, Write::Insert(&row))?;
        drop(store);
        self.shared.changed();
        Ok(offset)
    }

    /// Updates the row whose primary key `changes` names, setting the other columns it
    /// names, and wakes live requests.
    pub fn update(&self, table: &str, changes: impl Into<Row>) -> Result<LogOffset, StandInError> {
        let changes = changes.into();
        let mut store = self.shared.store();
        let offset = store.update(table, changes.clone())?;
        self.mirror(&store, table, Write::Update(&changes))?;
        drop(store);
        self.shared.changed();
        Ok(offset)
    }

    /// Deletes the row whose primary key `key` names, and wakes live requests.
    pub fn delete(&self, table: &str, key: impl Into<Row>) -> Result<LogOffset, StandInError> {
        let key = key.into();
        let mut store = self.shared.store();
        let offset = store.delete(table, key.clone())?;
        self.mirror(&store, table, Write::Delete(&key))?;
        drop(store);
        self.shared.changed();
        Ok(offset)
    }

    /// The table's rows, in insertion order.
    pub fn rows(&self, table: &str) -> Result<Vec<Row>, StandInError> {
        self.shared.store().rows(table)
    }

    /// Invalidates every shape of `table`, as Electric does when a table is truncated or
    /// altered: their handles become unknown, so requests with them (pending live ones
    /// included) get a 409 `must-refetch` with a new handle.
    pub fn rotate(&self, table: &str) -> Result<(), StandInError> {
        self.shared.store().rotate(table)?;
        self.shared.changed();
        Ok(())
    }

    /// The offset of the last change made through this stand-in (`0_inf` before any).
    pub fn last_offset(&self) -> LogOffset {
        match self.shared.store().lsn() {
            0 => LogOffset::end_of(0),
            lsn => LogOffset::new(lsn, 0),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Live requests (long-polls waiting for a change, SSE streams) in progress now.
    pub fn live_in_flight(&self) -> usize {
        self.shared.stats.borrow().live_in_flight
    }

    /// Live requests whose client went away before the answer was complete: a long-poll
    /// dropped while held, or an SSE stream dropped before it ended.
    pub fn live_cancelled(&self) -> usize {
        self.shared.stats.borrow().live_cancelled
    }

    /// Waits until at least `count` requests have been received in total.
    pub async fn wait_for_requests(&self, count: usize) {
        self.wait_for(|stats| stats.requests >= count).await;
    }

    /// Waits until at least `count` live requests are in progress.
    pub async fn wait_for_live_in_flight(&self, count: usize) {
        self.wait_for(|stats| stats.live_in_flight >= count).await;
    }

    /// Waits until at least `count` live requests have been cancelled by their client.
    pub async fn wait_for_live_cancelled(&self, count: usize) {
        self.wait_for(|stats| stats.live_cancelled >= count).await;
    }

    async fn wait_for(&self, done: impl FnMut(&Stats) -> bool) {
        let mut stats = self.shared.stats.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = stats.wait_for(done).await;
    }
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path, as sent (not decoded).
    pub path: String,
    /// The query's pairs in order, decoded the way Electric decodes them; repeated keys kept.
    pub query: Vec<(String, String)>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body of a `POST`.
    pub body: Option<Bytes>,
}

impl RecordedRequest {
    /// The last value of a query key, as Electric would read it.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}
