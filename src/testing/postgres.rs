//! A throwaway Postgres cluster for tests (feature `postgres`).
//!
//! [`TestCluster::start`] finds Postgres's server programs, runs `initdb` in a new directory
//! under the system's temp dir (mode 0700), and starts `postgres` listening on a unix socket
//! in that directory only, no TCP, with durability off (`fsync`, `synchronous_commit` and
//! `full_page_writes`), since the data is thrown away. Dropping the cluster stops the server
//! by its pid (a fast shutdown, `SIGINT`, then `SIGKILL` if it has not exited within
//! [`STOP_GRACE`]) and removes the directory.
//!
//! Where the programs are looked for, first found wins:
//! 1. the directory in `TOWER_ELECTRIC_PG_BINDIR`;
//! 2. `pg_config --bindir`, when that directory holds `initdb` (on Debian it may name the
//!    client-only directory);
//! 3. `/usr/lib/postgresql/<version>/bin`, the highest version (Debian's and Ubuntu's layout);
//! 4. `initdb` on `PATH`.
//!
//! A missing Postgres is an error ([`ClusterError::NotInstalled`]), never a skipped test:
//! `.ci/run` installs Debian's `postgresql` package on a machine without it.
//!
//! `initdb` and `postgres` refuse to run as root. When the process runs as root (CI does), both
//! run as the unprivileged `postgres` user (which Debian's package creates), through
//! `setpriv`, which execs in place so that the pid this harness stops is the server's own, and
//! the directory is handed to that user first.
//!
//! The cluster trusts every connection that reaches it, as any user; its superuser is
//! `postgres`, its database `postgres`. What keeps other local users out is that it listens on
//! no TCP port, only on the unix socket in its private (0700) directory, which only this
//! process's user (or, when that is root, the `postgres` user and root) can enter:
//! [`TestCluster::connection_string`] names that directory as `host`.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_electric::testing::postgres::TestCluster;
//!
//! let cluster = TestCluster::start()?;
//! let client = cluster.connect().await?;
//! let row = client.query_one("SELECT 1 + 1", &[]).await?;
//! assert_eq!(row.get::<_, i32>(0), 2);
//! # Ok(())
//! # }
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a started server may take to accept connections before [`TestCluster::start`]
/// gives up. A guard against a hung start, not a performance expectation.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server may take after `SIGINT` before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// The unprivileged user the server runs as when this process is root.
const SERVICE_USER: &str = "postgres";
/// The cluster's superuser.
const SUPERUSER: &str = "postgres";
const BINDIR_ENV: &str = "TOWER_ELECTRIC_PG_BINDIR";
/// Attempts at a free port number (it names the socket; the server listens on no TCP port, so
/// only a failed start for another reason makes a second attempt).
const PORT_ATTEMPTS: usize = 5;

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Postgres's server programs were not found.
    #[error(
        "Postgres's server programs (initdb, postgres) were not found in {searched}; install \
         them (Debian: `apt-get install postgresql`) or set {BINDIR_ENV} to their directory"
    )]
    NotInstalled {
        /// Where they were looked for.
        searched: String,
    },
    /// Running as root, but there is no unprivileged user to run the server as.
    #[error(
        "running as root, and initdb/postgres refuse root, but there is no `{SERVICE_USER}` \
         user to run them as (Debian's postgresql package creates it): {reason}"
    )]
    NoServiceUser {
        /// What failed.
        reason: String,
    },
    /// A program could not be run, or failed.
    #[error("{program} failed: {reason}")]
    Command {
        /// The program.
        program: String,
        /// Its exit status and output, or why it did not run.
        reason: String,
    },
    /// The server exited or did not become ready within [`START_TIMEOUT`].
    #[error("postgres did not start: {reason}\n{log}")]
    NotStarted {
        /// What happened.
        reason: String,
        /// The end of the server's log.
        log: String,
    },
    /// A file system operation on the cluster's directory failed.
    #[error("cluster directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Connecting to the started cluster failed.
    #[error("connecting to the cluster: {0}")]
    Connect(#[from] tokio_postgres::Error),
}

/// A running throwaway Postgres cluster, stopped and removed when dropped.
///
/// See the [module documentation](self).
pub struct TestCluster {
    base: PathBuf,
    port: u16,
    version: String,
    server: Option<Child>,
}

impl fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCluster")
            .field("dir", &self.base)
            .field("port", &self.port)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The programs of one Postgres installation, and how to run them.
struct Programs {
    bindir: PathBuf,
    /// `(uid, gid)` of the user to run them as, when this process is root.
    run_as: Option<(u32, u32)>,
}

impl Programs {
    fn find() -> Result<Self, ClusterError> {
        let bindir = find_bindir()?;
        let run_as = if is_root() {
            Some(service_user()?)
        } else {
            None
        };
        Ok(Self { bindir, run_as })
    }

    /// A command for `program` of this installation, as the unprivileged user when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg("--")
                    .arg(path)
                    // The server's user cannot read root's home; nothing here needs it.
                    .env("HOME", "/");
                command
            }
            None => Command::new(path),
        }
    }
}

impl TestCluster {
    /// Creates and starts a cluster. Blocks for the `initdb` run and the server's start (a
    /// second or two).
    pub fn start() -> Result<Self, ClusterError> {
        let programs = Programs::find()?;
        let base = new_dir()?;
        // From here on, `cluster`'s drop removes the directory whatever fails.
        let mut cluster = Self {
            base,
            port: 0,
            version: String::new(),
            server: None,
        };
        if let Some((uid, gid)) = programs.run_as {
            std::os::unix::fs::chown(&cluster.base, Some(uid), Some(gid))
                .map_err(|source| cluster.io_error(source))?;
        }
        let data = cluster.data_dir();
        let version = run(programs.command("postgres").arg("--version"))?;
        cluster.version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        run(programs
            .command("initdb")
            .arg("--pgdata")
            .arg(&data)
            .args(["--username", SUPERUSER, "--auth", "trust"])
            .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"]))?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port().map_err(|source| cluster.io_error(source))?;
            match cluster.start_server(&programs, port) {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClusterError::NotStarted {
            reason: "no attempt was made".into(),
            log: String::new(),
        }))
    }

    fn start_server(&mut self, programs: &Programs, port: u16) -> Result<(), ClusterError> {
        let log_path = self.base.join("server.log");
        let log = fs::File::create(&log_path).map_err(|source| self.io_error(source))?;
        let stderr = log.try_clone().map_err(|source| self.io_error(source))?;
        if let Some((uid, gid)) = programs.run_as {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))
                .map_err(|source| self.io_error(source))?;
        }
        let child = programs
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&self.base)
            // The socket in the private directory only: trust auth over loopback TCP would let
            // any local user in as superuser.
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=40"])
            .args(["-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|error| ClusterError::Command {
                program: "postgres".into(),
                reason: error.to_string(),
            })?;
        self.server = Some(child);
        self.port = port;
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(error) => {
                self.stop();
                Err(error)
            }
        }
    }

    /// Waits for the postmaster to write `ready` into its pid file, the signal `pg_ctl`
    /// waits for too.
    fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.data_dir().join("postmaster.pid");
        loop {
            if let Some(server) = &mut self.server {
                if let Ok(Some(status)) = server.try_wait() {
                    self.server = None;
                    return Err(self.not_started(format!("it exited with {status}")));
                }
            }
            let ready = fs::read_to_string(&pid_file)
                .map(|text| text.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_started(format!("not ready after {START_TIMEOUT:?}")));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn not_started(&self, reason: String) -> ClusterError {
        let log = fs::read_to_string(self.base.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        ClusterError::NotStarted {
            reason,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    fn io_error(&self, source: io::Error) -> ClusterError {
        ClusterError::Io {
            path: self.base.clone(),
            source,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The server's port number: no TCP port is listened on, but it names the unix socket
    /// (`.s.PGSQL.<port>` in [`socket_dir`](Self::socket_dir)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.base
    }

    /// The server's `postgres --version` line, e.g. `postgres (PostgreSQL) 15.18 (...)`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A libpq-style connection string for the cluster's `postgres` database over its unix
    /// socket, as superuser: `host='<socket dir>' port=<port> user=postgres dbname=postgres`.
    pub fn connection_string(&self) -> String {
        let dir = self
            .base
            .to_string_lossy()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        format!(
            "host='{dir}' port={} user={SUPERUSER} dbname=postgres",
            self.port
        )
    }

    /// A new connection as superuser; its connection task runs on the current tokio runtime
    /// until the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ClusterError> {
        connect(&self.connection_string()).await
    }

    /// Stops the server: `SIGINT` (fast shutdown: connections are closed), then `SIGKILL`
    /// after [`STOP_GRACE`].
    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let signalled = Command::new("kill")
            .args(["-INT", &server.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + STOP_GRACE;
        while signalled && Instant::now() < deadline {
            match server.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
        if let Err(error) = fs::remove_dir_all(&self.base) {
            tracing::warn!(dir = %self.base.display(), %error, "the test cluster's directory was not removed");
        }
    }
}

/// The Postgres server an [`ElectricStandIn`](super::ElectricStandIn) evaluates where
/// clauses and subsets in ([`StandInBuilder::postgres`](super::StandInBuilder::postgres)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PostgresTarget {
    /// A server by its libpq-style connection string (`host=... port=... user=...`) or
    /// `postgresql://` URL; its user must be allowed to create databases.
    Url(String),
    /// A throwaway cluster, kept running as long as the stand-in.
    Cluster(Arc<TestCluster>),
}

impl PostgresTarget {
    pub(crate) fn connection_string(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::Cluster(cluster) => cluster.connection_string(),
        }
    }
}

impl From<&str> for PostgresTarget {
    fn from(url: &str) -> Self {
        Self::Url(url.to_owned())
    }
}

impl From<String> for PostgresTarget {
    fn from(url: String) -> Self {
        Self::Url(url)
    }
}

impl From<TestCluster> for PostgresTarget {
    fn from(cluster: TestCluster) -> Self {
        Self::Cluster(Arc::new(cluster))
    }
}

impl From<Arc<TestCluster>> for PostgresTarget {
    fn from(cluster: Arc<TestCluster>) -> Self {
        Self::Cluster(cluster)
    }
}

/// Connects to `connection_string` and drives the connection on the current tokio runtime.
pub(crate) async fn connect(
    connection_string: &str,
) -> Result<tokio_postgres::Client, ClusterError> {
    let (client, connection) =
        tokio_postgres::connect(connection_string, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a test cluster connection ended");
        }
    });
    Ok(client)
}

fn run(command: &mut Command) -> Result<Output, ClusterError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let program = match command.get_args().nth(4) {
        // Name the Postgres program, not `setpriv`.
        Some(inner) if program == "setpriv" => inner.to_string_lossy().into_owned(),
        _ => program,
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ClusterError::Command {
            program: program.clone(),
            reason: error.to_string(),
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ClusterError::Command {
            program,
            reason: format!(
                "{}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn find_bindir() -> Result<PathBuf, ClusterError> {
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    find_bindir_in(
        std::env::var_os(BINDIR_ENV).map(PathBuf::from),
        pg_config,
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )
}

/// The first of the candidate directories (see the module docs) that holds the server
/// programs.
fn find_bindir_in(
    from_env: Option<PathBuf>,
    from_pg_config: Option<PathBuf>,
    debian: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, ClusterError> {
    let mut searched = Vec::new();
    if let Some(dir) = from_env {
        if has_server(&dir) {
            return Ok(dir);
        }
        searched.push(format!("{BINDIR_ENV}={}", dir.display()));
    }
    if let Some(dir) = from_pg_config {
        if has_server(&dir) {
            return Ok(dir);
        }
        searched.push(format!("pg_config --bindir ({})", dir.display()));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(debian)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .filter(|(_, dir)| has_server(dir))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    searched.push(format!("{}/<version>/bin", debian.display()));
    if let Some(path) = path {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                return Ok(dir);
            }
        }
        searched.push("PATH".into());
    }
    Err(ClusterError::NotInstalled {
        searched: searched.join(", "),
    })
}

/// Whether this process runs as root: `id -u`, since reading the euid directly needs libc.
fn is_root() -> bool {
    id(["-u"]).is_ok_and(|uid| uid == 0)
}

fn service_user() -> Result<(u32, u32), ClusterError> {
    let uid = id(["-u", SERVICE_USER]).map_err(|reason| ClusterError::NoServiceUser { reason })?;
    let gid = id(["-g", SERVICE_USER]).map_err(|reason| ClusterError::NoServiceUser { reason })?;
    Ok((uid, gid))
}

fn id<I, S>(args: I) -> Result<u32, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new("id")
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| format!("id: {error}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|error| format!("id: {error}"))
}

/// A new, empty directory of this cluster's own under the temp dir.
fn new_dir() -> Result<PathBuf, ClusterError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let path = std::env::temp_dir().join(format!(
        "tower-electric-pg-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // `create`, not `recursive`: a directory that exists already is not ours. 0700: it holds
    // the server's socket, which lets whoever reaches it in as superuser.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|source| ClusterError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn scratch() -> PathBuf {
        new_dir().unwrap()
    }

    fn with_server(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for program in ["initdb", "postgres"] {
            fs::write(dir.join(program), "").unwrap();
        }
    }

    #[test]
    fn without_server_programs_the_error_names_the_package_and_the_places_searched() {
        let base = scratch();
        // A client-only directory, as `pg_config --bindir` can name on Debian.
        let client_only = base.join("client");
        fs::create_dir_all(&client_only).unwrap();
        fs::write(client_only.join("psql"), "").unwrap();
        let error = find_bindir_in(
            Some(base.join("nowhere")),
            Some(client_only.clone()),
            &base.join("debian"),
            Some(client_only.clone().into_os_string()),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ClusterError::NotInstalled { .. }));
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains(BINDIR_ENV), "{message}");
        assert!(
            message.contains(&client_only.display().to_string()),
            "{message}"
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn the_highest_debian_version_with_server_programs_is_found() {
        let base = scratch();
        let debian = base.join("debian");
        with_server(&debian.join("13/bin"));
        with_server(&debian.join("16/bin"));
        // Client programs only: not a server installation.
        fs::create_dir_all(debian.join("17/bin")).unwrap();
        let found = find_bindir_in(None, Some(base.join("client")), &debian, None).unwrap();
        assert_eq!(found, debian.join("16/bin"));
        // The environment variable comes first.
        with_server(&base.join("own"));
        let found = find_bindir_in(Some(base.join("own")), None, &debian, None).unwrap();
        assert_eq!(found, base.join("own"));
        fs::remove_dir_all(base).unwrap();
    }
}
