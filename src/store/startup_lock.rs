//! One process at a time through first-start work (migrations, the first signing keys,
//! the bootstrap admin): replicas started together otherwise race on an empty database,
//! and one of them crashes while both create the same tables.

use std::time::Duration;

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use secrecy::ExposeSecret as _;

use super::{DatabaseUrl, StoreError};

/// The PostgreSQL advisory lock key: "tokenmin" as ASCII, so that it is recognisable in
/// `pg_locks`.
const ADVISORY_KEY: i64 = 0x746f_6b65_6e6d_696e;

/// Held while a process does its first-start work; released when dropped (its
/// connection closes, or its lock file is unlocked).
pub enum StartupLock {
    /// A session-level advisory lock on its own connection.
    Postgres(Box<diesel::PgConnection>),
    /// An exclusive lock on `<database>.lock` beside the SQLite file.
    Sqlite(std::fs::File),
}

impl StartupLock {
    /// Waits (at most `timeout`) until no other process does its first-start work on this
    /// database, then holds the lock.
    pub async fn acquire(url: &DatabaseUrl, timeout: Duration) -> Result<Self, StoreError> {
        let url = url.clone();
        let waiting = tokio::task::spawn_blocking(move || Self::acquire_blocking(&url));
        match tokio::time::timeout(timeout, waiting).await {
            Ok(joined) => joined.map_err(|e| StoreError::Other(Box::new(e)))?,
            Err(_) => Err(StoreError::Unavailable(
                "timed out waiting for another instance to finish starting".into(),
            )),
        }
    }

    fn acquire_blocking(url: &DatabaseUrl) -> Result<Self, StoreError> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = diesel::PgConnection::establish(url.expose_secret())
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
                diesel::sql_query(format!("SELECT pg_advisory_lock({ADVISORY_KEY})"))
                    .execute(&mut conn)?;
                Ok(Self::Postgres(Box::new(conn)))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".lock");
                let mut options = std::fs::OpenOptions::new();
                options.create(true).truncate(false).write(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options
                    .open(std::path::PathBuf::from(name))
                    .map_err(|e| StoreError::Other(Box::new(e)))?;
                file.lock().map_err(|e| StoreError::Other(Box::new(e)))?;
                Ok(Self::Sqlite(file))
            }
        }
    }
}

impl std::fmt::Debug for StartupLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Postgres(_) => "StartupLock(postgres)",
            Self::Sqlite(_) => "StartupLock(sqlite)",
        })
    }
}
