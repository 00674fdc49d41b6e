//! Durable state: diesel over PostgreSQL or SQLite through one connection enum.
//! Store code knows rows and queries, nothing of tokens or HTTP.

pub mod api_keys;
pub mod audit;
pub mod clients;
pub mod conn;
pub mod events;
pub mod group;
mod job;
pub mod markers;
mod prepared;
pub mod revocations;
pub mod schema;
pub mod sessions;
pub mod signing_keys;
pub mod startup_lock;
pub mod tenants;
pub mod tickets;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::{Pool, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use secrecy::SecretString;

pub use conn::{ConnectionManager, DbConnection};

use crate::error::{Dependency, Error};
use crate::threads::{JobError, Threads};
use job::JobState;

/// Where durable state lives, chosen by the URL scheme.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (may carry a password, hence secret).
    Postgres(SecretString),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(_) => f.write_str("postgres://[redacted]"),
        }
    }
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` or `postgres://...` / `postgresql://...`. A PostgreSQL URL
    /// whose hosts are all loopback and that says nothing about TLS (nor does libpq's
    /// environment) gets `sslmode=allow` (see [`plain_on_loopback`]).
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path".into());
            }
            if path == ":memory:" || path.contains("mode=memory") {
                // Every pooled connection would open its own empty database.
                return Err(
                    "an in-memory SQLite database cannot be pooled; give a file path".into(),
                );
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // libpq's environment can choose TLS for every URL; then libpq decides.
            let env_chooses_tls = ["PGSSLMODE", "PGREQUIRESSL", "PGSERVICE"]
                .iter()
                .any(|name| std::env::var_os(name).is_some());
            let plain = match env_chooses_tls {
                true => None,
                false => plain_on_loopback(url),
            };
            Ok(Self::Postgres(SecretString::from(
                plain.unwrap_or_else(|| url.to_owned()),
            )))
        } else {
            Err("expected sqlite://PATH or postgres://...".into())
        }
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// `url` with `sslmode=allow` added when every host it names is loopback and nothing in
/// it is about TLS (`sslmode`, `sslrootcert` or any other `ssl*`, `requiressl`,
/// `service`) or moves the host (`host`, `hostaddr`); `None` leaves the URL to libpq's
/// defaults.
///
/// libpq's default, `prefer`, asks every server for TLS, loopback included: each
/// connection loads OpenSSL and builds a TLS context (3.7 MiB of the process's memory),
/// and every statement then goes through TLS records. Traffic over loopback never
/// leaves the host, so TLS there protects nothing that `prefer` (which verifies no
/// certificate) would protect. `allow` tries plain text first and TLS if the server
/// requires it, so a server that insists on TLS on loopback still gets it. A URL that
/// names `sslmode` keeps it, and so does the `PGSSLMODE` environment (see the caller).
fn plain_on_loopback(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // Any ssl* parameter (sslmode, sslrootcert, sslcert...) says the URL is about TLS.
    let chooses = |key: &str| {
        key.starts_with("ssl") || ["requiressl", "service", "host", "hostaddr"].contains(&key)
    };
    let query_chooses = query.is_some_and(|q| {
        q.split('&')
            .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
            .any(chooses)
    });
    if query_chooses {
        return None;
    }
    let authority = before_query.split('/').next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let loopback = |spec: &str| {
        let host = match spec.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => spec.split(':').next().unwrap_or_default(),
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    // An empty host means a Unix socket, where libpq never uses TLS: nothing to change.
    if hosts.is_empty() || !hosts.split(',').all(loopback) {
        return None;
    }
    Some(match query {
        None => format!("{url}?sslmode=allow"),
        Some("") => format!("{url}sslmode=allow"),
        Some(_) => format!("{url}&sslmode=allow"),
    })
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write.
    #[error("conflict with an existing row")]
    Conflict,
    /// The database cannot be reached (pool timeout, lost connection).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: a bug or a corrupt row.
    #[error("database error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Conflict,
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => Self::Unavailable(Box::new(e)),
            DieselError::DatabaseError(_, ref info) if is_connection_loss(info.message()) => {
                Self::Unavailable(Box::new(e))
            }
            other => Self::Other(Box::new(other)),
        }
    }
}

/// libpq reports a dropped server as an unclassified error; SQLite reports a lock it
/// waited on for busy_timeout as "database is locked".
fn is_connection_loss(message: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "server closed the connection",
        "terminating connection",
        "connection to server",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
        "connection not open",
        "Connection refused",
        "database is locked",
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

/// Errors that can tell a lost database connection, so the pool discards it.
pub trait LostConnection {
    /// Whether the connection that produced this error is gone.
    fn is_lost_connection(&self) -> bool;
}

impl LostConnection for StoreError {
    fn is_lost_connection(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("record"),
            StoreError::Conflict => Self::conflict("conflicts with an existing resource"),
            StoreError::Unavailable(_) => Self::database(e),
            StoreError::Other(_) => Self::internal(e),
        }
    }
}

impl From<DieselError> for Error {
    fn from(e: DieselError) -> Self {
        StoreError::from(e).into()
    }
}

impl LostConnection for Error {
    fn is_lost_connection(&self) -> bool {
        matches!(
            self,
            Self::Unavailable {
                dependency: Dependency::Database,
                ..
            }
        )
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Other(Box::new(e))
    }
}

/// How a database takes concurrent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// One write transaction at a time (SQLite): group whole transactions into one.
    One,
    /// Many at once (PostgreSQL): group statements, let transactions run side by side.
    Many,
}

/// The database handle: a bounded connection pool whose work runs on as many dedicated
/// threads as there are connections, off the async workers.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager>,
    // The SQLite checkpointer runs while any clone of this handle lives.
    _alive: Arc<()>,
    threads: Threads,
    timeout: Duration,
    backend: &'static str,
    /// SQLite's writers of this database queue here (see [`write_transaction`]).
    writer: Arc<std::sync::Mutex<()>>,
}

impl Db {
    /// Opens the pool lazily (an unreachable database at start is an error from `migrate`,
    /// not a hang) and remembers the backend.
    pub fn new(url: &DatabaseUrl, size: u32, timeout: Duration) -> Result<Self, StoreError> {
        if let DatabaseUrl::Sqlite(path) = url {
            private_sqlite_file(path).map_err(|e| StoreError::Other(Box::new(e)))?;
        }
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            .build_unchecked(ConnectionManager::new(url));
        let alive = Arc::new(());
        if let DatabaseUrl::Sqlite(_) = url {
            spawn_checkpointer(ConnectionManager::new(url), Arc::downgrade(&alive))
                .map_err(|e| StoreError::Other(Box::new(e)))?;
        }
        Ok(Self {
            pool,
            _alive: alive,
            threads: Threads::new("db", size as usize, 0)
                .map_err(|e| StoreError::Other(Box::new(e)))?,
            timeout,
            backend: url.backend(),
            writer: Arc::default(),
        })
    }

    /// `postgres` or `sqlite`, for logs and health.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// How the database takes concurrent writes, for use cases that group them.
    pub fn writers(&self) -> Writers {
        if self.backend == "sqlite" {
            Writers::One
        } else {
            Writers::Many
        }
    }

    /// Open connections: (in use, idle).
    pub fn connections(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
        )
    }

    /// Runs `f` on a pooled connection on a database thread. A whole transaction goes
    /// inside `f`. `f` may fail with the store's error or with a caller's error type that
    /// converts from it (a domain refusal that rolls a transaction back, say).
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + LostConnection + Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        // Jobs queue in the threads' queue, in order, and each thread takes the next one
        // the moment it is free (a semaphore in front of the queue cost a round trip
        // through the async side between two jobs: a third of the database thread's time
        // idle under load). See `job` for the time limit and panics.
        let state = JobState::default();
        let job_state = state.clone();
        let (pool, writer) = (self.pool.clone(), self.writer.clone());
        let job = self.threads.run(move || {
            if !job_state.start() {
                return None;
            }
            let mut pooled = match pool.get() {
                Ok(pooled) => pooled,
                Err(e) => return Some(Err(StoreError::Unavailable(Box::new(e)).into())),
            };
            let result = job::with_writer(&writer, || f(&mut pooled.conn));
            if result
                .as_ref()
                .is_err_and(LostConnection::is_lost_connection)
            {
                // Discarded on return to the pool instead of handed to the next request.
                pooled.lost = true;
            }
            Some(result)
        });
        match job::await_job(&state, self.timeout, job).await? {
            Ok(Some(result)) => result,
            Ok(None) => Err(job::timed_out().into()),
            Err(JobError::Panicked(_)) => Err(job::panicked("run").into()),
            Err(JobError::Gone) => {
                Err(StoreError::Other("the database threads are gone".into()).into())
            }
        }
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        self.run(|conn| conn::run_migrations(conn).map_err(StoreError::Other))
            .await
    }

    /// Answers whether the database responds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.ping().map(|_| ()).map_err(StoreError::from))
            .await
    }
}

/// SQLite's checkpoints, off the serving connections: every quarter second, a passive
/// checkpoint copies the WAL's committed pages into the database file and fsyncs it, on a
/// connection of its own, while the database threads keep committing. It never blocks a
/// reader or a writer; it stops when the last handle of its `Db` is dropped.
fn spawn_checkpointer(
    manager: ConnectionManager,
    alive: std::sync::Weak<()>,
) -> std::io::Result<()> {
    use diesel::connection::SimpleConnection as _;
    std::thread::Builder::new()
        .name("db-checkpoint".to_owned())
        .spawn(move || {
            let mut conn = None;
            while alive.strong_count() > 0 {
                #[allow(clippy::disallowed_methods)] // a dedicated thread, not an async worker
                std::thread::sleep(Duration::from_millis(250));
                if conn.is_none() {
                    conn = manager.connect().ok();
                }
                if let Some(c) = conn.as_mut()
                    && let Err(error) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::warn!(%error, "SQLite checkpoint");
                    conn = None;
                }
            }
        })?;
    Ok(())
}

/// Makes sure the SQLite file is readable by its owner only (it holds password hashes):
/// created 0600 before SQLite opens it, which gives its `-wal` and `-shm` files the same
/// mode; a file an older release left more open is tightened, with a warning.
fn private_sqlite_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = std::path::PathBuf::from(name);
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                tracing::warn!(path = %file.display(), "the database file was readable by others; it is now 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Runs `f` in a write transaction, committed on `Ok` and rolled back on `Err`.
///
/// SQLite gets `BEGIN IMMEDIATE`: it takes the write lock up front, so concurrent
/// writers wait for `busy_timeout` instead of failing with SQLITE_BUSY when a deferred
/// transaction tries to upgrade from a stale read snapshot. Writers of the same database
/// in this process also queue on its `Db`'s mutex first: SQLite's busy handler waits by
/// sleeping (1, 2, 5 ... 100 ms), which cost a tenth of the refresh throughput and most
/// of its p99.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(_) => job::as_sole_writer(|| in_transaction(conn, f)),
        DbConnection::Postgres(_) => in_transaction(conn, f),
    }
}

fn in_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        }
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    type Manager = <DbConnection as diesel::Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            // A failed rollback leaves the connection broken; the pool discards it.
            let _ = Manager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// For the rest of the current transaction, how long a statement waits for another
/// transaction's row lock before it fails (`None`: the server's setting). PostgreSQL's
/// `lock_timeout`; SQLite has one writer and no row locks, so there it does nothing.
pub fn limit_lock_waits(
    conn: &mut DbConnection,
    limit: Option<std::time::Duration>,
) -> Result<(), StoreError> {
    use diesel::RunQueryDsl as _;
    if let DbConnection::Postgres(c) = conn {
        let sql = match limit {
            Some(limit) => format!("SET LOCAL lock_timeout = {}", limit.as_millis()),
            None => "SET LOCAL lock_timeout TO DEFAULT".to_owned(),
        };
        diesel::sql_query(sql).execute(c)?;
    }
    Ok(())
}

/// The row a lookup by a unique key finds, if any: `.first()` without its `LIMIT ?`.
/// SQLite 3.50 reads a bound LIMIT while planning, so binding it again (as every
/// execution does) expires the cached statement and it is parsed and planned anew each
/// time: a fifth of a refresh's time on the database thread. A unique key needs no limit.
///
/// The query (written once, built per backend) runs on the backend's own connection:
/// through the multi-backend connection, diesel writes a query's SQL out again at every
/// execution.
macro_rules! unique {
    ($conn:expr, $query:expr) => {
        match $conn {
            $crate::store::DbConnection::Postgres(c) => $crate::store::unique_in($query, c),
            $crate::store::DbConnection::Sqlite(c) => $crate::store::unique_in($query, c),
        }
    };
}
pub(crate) use unique;

/// Reads at most one row inside a transaction and locks it until the transaction ends:
/// `FOR SHARE` or `FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
/// serializes every write transaction, so there it is a plain read.
macro_rules! locked {
    ($conn:expr, $query:expr, $mode:expr) => {
        match $conn {
            $crate::store::DbConnection::Postgres(c) => {
                use diesel::{OptionalExtension, QueryDsl, RunQueryDsl};
                match $mode {
                    $crate::store::Lock::Share => $query.for_share().first(c).optional(),
                    $crate::store::Lock::Update => $query.for_update().first(c).optional(),
                }
            }
            $crate::store::DbConnection::Sqlite(c) => $crate::store::unique_in($query, c),
        }
    };
}
pub(crate) use locked;

/// How a transaction locks a user row it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Many readers at once; a change of the row waits for them (a login about to open a session).
    Share,
    /// One writer; readers that lock wait (an admin change and the revocations it implies).
    Update,
}

/// [`unique!`] on a backend's connection.
pub fn unique_in<'q, Q, U, C>(query: Q, conn: &mut C) -> diesel::QueryResult<Option<U>>
where
    Q: diesel::RunQueryDsl<C> + diesel::query_dsl::LoadQuery<'q, C, U>,
    C: diesel::Connection,
{
    Ok(query.load::<U>(conn)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::plain_on_loopback;

    #[test]
    fn loopback_urls_without_an_sslmode_try_plain_text_first() {
        let cases = [
            (
                "postgres://u:p@127.0.0.1:5432/db",
                "postgres://u:p@127.0.0.1:5432/db?sslmode=allow",
            ),
            (
                "postgresql://localhost/db?connect_timeout=5",
                "postgresql://localhost/db?connect_timeout=5&sslmode=allow",
            ),
            (
                "postgres://[::1]:5433/db?",
                "postgres://[::1]:5433/db?sslmode=allow",
            ),
            (
                "postgres://u@127.0.0.2,localhost:5433/db",
                "postgres://u@127.0.0.2,localhost:5433/db?sslmode=allow",
            ),
            (
                "postgres://u:p%40ss@LOCALHOST",
                "postgres://u:p%40ss@LOCALHOST?sslmode=allow",
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                plain_on_loopback(given).as_deref(),
                Some(expected),
                "{given}"
            );
        }
    }

    #[test]
    fn other_hosts_and_chosen_modes_are_left_to_libpq() {
        for url in [
            "postgres://u@db.example.com/db",
            "postgres://u@10.0.0.5:5432/db",
            "postgres://u@127.0.0.1,db.example.com/db",
            "postgres://u@[2001:db8::1]/db",
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u@localhost/db?sslmode=prefer",
            "postgres://u@localhost/db?requiressl=1",
            "postgres://u@localhost/db?sslrootcert=/etc/ssl/db-ca.pem",
            "postgres://u@localhost/db?connect_timeout=5&sslcert=/c.pem&sslkey=/k.pem",
            "postgres://u@localhost/db?service=prod",
            "postgres://u@localhost/db?host=db.example.com",
            "postgres://u@localhost/db?hostaddr=10.0.0.5",
            "postgres:///db",
            "postgres://u@/db?host=/var/run/postgresql",
            "postgres://u@localhost.example.com/db",
        ] {
            assert_eq!(plain_on_loopback(url), None, "{url}");
        }
    }
}
