//! One connection type over both backends, its r2d2 manager and the migrations.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

use super::DatabaseUrl;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to PostgreSQL or SQLite; queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// Production backend.
    Postgres(diesel::PgConnection),
    /// Embedded backend.
    Sqlite(diesel::SqliteConnection),
}

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Connecting failed.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// `postgres` or `sqlite`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: ConnectionError,
    },
    /// A statement on a fresh connection failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Makes connections for the pool; the backend is chosen by the URL scheme, never guessed.
#[derive(Clone)]
pub struct ConnectionManager {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Postgres(SecretString),
    Sqlite(PathBuf),
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: &DatabaseUrl) -> Self {
        let target = match url {
            DatabaseUrl::Postgres(url) => Target::Postgres(url.clone()),
            DatabaseUrl::Sqlite(path) => Target::Sqlite(path.clone()),
        };
        Self { target }
    }

    /// Opens one connection, with the per-connection settings applied.
    pub fn connect(&self) -> Result<DbConnection, ConnError> {
        match &self.target {
            Target::Postgres(url) => {
                let conn =
                    diesel::PgConnection::establish(url.expose_secret()).map_err(|source| {
                        ConnError::Connect {
                            backend: "postgres",
                            source,
                        }
                    })?;
                Ok(DbConnection::Postgres(conn))
            }
            Target::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = diesel::SqliteConnection::establish(&path).map_err(|source| {
                    ConnError::Connect {
                        backend: "sqlite",
                        source,
                    }
                })?;
                // Per connection: SQLite forgets these on close. WAL lets readers run
                // beside the one writer; busy_timeout makes writers queue instead of failing.
                // Checkpoints (and their fsyncs) belong to the checkpointer thread (see
                // `Db::new`): a commit that ran one waited for the disk, and the database
                // thread stood idle a third of the time under load. Past 10000 pages (40 MB
                // of WAL) a commit still checkpoints, should the checkpointer fall behind.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA cache_size = -2048; PRAGMA wal_autocheckpoint = 10000;",
                )?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// A pooled connection with a mark for "this one lost its server": the pool discards
/// it instead of handing a dead connection to the next request.
pub struct PooledDbConnection {
    /// The connection.
    pub conn: DbConnection,
    /// Set when a statement failed because the connection was lost.
    pub lost: bool,
}

impl diesel::r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledDbConnection;
    type Error = ConnError;

    fn connect(&self) -> Result<PooledDbConnection, ConnError> {
        Ok(PooledDbConnection {
            conn: ConnectionManager::connect(self)?,
            lost: false,
        })
    }

    fn is_valid(&self, conn: &mut PooledDbConnection) -> Result<(), ConnError> {
        conn.conn.ping().map_err(ConnError::Query)
    }

    fn has_broken(&self, conn: &mut PooledDbConnection) -> bool {
        conn.lost
            || match &mut conn.conn {
                DbConnection::Postgres(c) => c.is_broken(),
                DbConnection::Sqlite(c) => c.is_broken(),
            }
    }
}

/// Applies the pending migrations of the connection's backend.
pub fn run_migrations(
    conn: &mut DbConnection,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let applied = match conn {
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS)?.len(),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS)?.len(),
    };
    Ok(applied)
}

/// Applies the pending migrations whose version is at most `version` (the folder name's
/// date and sequence without dashes, e.g. `20261124000004`), and no later ones: how tests build the database an older
/// release left behind, to check that an upgrade keeps it working.
pub fn run_migrations_up_to(
    conn: &mut DbConnection,
    version: &str,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    fn up_to<DB: diesel::backend::Backend>(
        conn: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
        version: &str,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let mut applied = 0;
        for migration in conn.pending_migrations(source)? {
            // Versions are the folder names' leading date and sequence, which sort as text.
            if migration.name().version().to_string().as_str() > version {
                break;
            }
            conn.run_migration(&*migration)?;
            applied += 1;
        }
        Ok(applied)
    }
    match conn {
        DbConnection::Postgres(c) => up_to(c, POSTGRES_MIGRATIONS, version),
        DbConnection::Sqlite(c) => up_to(c, SQLITE_MIGRATIONS, version),
    }
}
