//! The load benchmark's direct database work: seeding sessions, and reading the
//! database's size and PostgreSQL's update statistics.

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection as _, RunQueryDsl as _};

/// The users seeded sessions belong to (`seed1` ... `seedN`, the admin's password).
pub const SEED_USERS: u64 = 1_000;

/// How long after its last transaction a PostgreSQL backend's statistics are in the
/// views, at most (PostgreSQL 15: an idle backend flushes them within 10 s).
pub const STATS_DELAY: std::time::Duration = std::time::Duration::from_secs(11);

/// The id of the `i`th seeded session (from 1): a valid UUID, distinct from the
/// service's (version 7).
pub fn seeded_session_id(i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(i))
}

/// A connection as the service makes it from `url` (`sqlite://path` or PostgreSQL).
pub enum Db {
    Sqlite(diesel::SqliteConnection, std::path::PathBuf),
    Postgres(diesel::PgConnection),
}

impl Db {
    pub fn open(url: &str) -> anyhow::Result<Self> {
        Ok(match url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut c = diesel::SqliteConnection::establish(path)?;
                c.batch_execute("PRAGMA busy_timeout = 30000;")?;
                Db::Sqlite(c, path.into())
            }
            None => Db::Postgres(diesel::PgConnection::establish(url)?),
        })
    }

    fn count(&mut self, sql: &str) -> anyhow::Result<i64> {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let rows: Vec<N> = match self {
            Db::Sqlite(c, _) => diesel::sql_query(sql).load(c)?,
            Db::Postgres(c) => diesel::sql_query(sql).load(c)?,
        };
        rows.first().map(|r| r.n).context("a count")
    }

    fn execute(&mut self, sql: &str) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(c, _) => c.batch_execute(sql)?,
            Db::Postgres(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Live sessions.
    pub fn live_sessions(&mut self) -> anyhow::Result<i64> {
        self.count("SELECT count(*) AS n FROM sessions WHERE revoked_at IS NULL")
    }

    /// Seeds live sessions straight into the database until `total` are seeded (ids
    /// [`seeded_session_id`] 1 to `total`), spread
    /// over [`SEED_USERS`] users made like the admin (same password hash and tenant).
    /// Returns how many it added.
    pub fn seed_sessions(&mut self, total: u64) -> anyhow::Result<u64> {
        let have = u64::try_from(self.count(
            "SELECT count(*) AS n FROM sessions WHERE id LIKE '00000000-0000-4000-8000-%'",
        )?)?;
        if have >= total {
            return Ok(0);
        }
        let (from, to) = (have + 1, total);
        let pg = matches!(self, Db::Postgres(_));
        // Ids are valid UUIDs, distinct from the service's (version 7).
        let hex = |e: &str| {
            if pg {
                format!("lpad(to_hex({e}), 12, '0')")
            } else {
                format!("printf('%012x', {e})")
            }
        };
        let (now, later) = if pg {
            (
                "(now() AT TIME ZONE 'UTC')",
                "(now() AT TIME ZONE 'UTC') + interval '30 days'",
            )
        } else {
            (
                "strftime('%Y-%m-%d %H:%M:%f', 'now')",
                "strftime('%Y-%m-%d %H:%M:%f', 'now', '+30 days')",
            )
        };
        let series = |lo: u64, hi: u64| {
            if pg {
                format!("generate_series({lo}::bigint, {hi}::bigint) AS g(i)")
            } else {
                format!(
                    "(WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi}) SELECT i FROM s) AS g"
                )
            }
        };
        let bool_false = if pg { "false" } else { "0" };
        let bool_true = if pg { "true" } else { "1" };
        let users = format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, \
             enabled, created_at, updated_at, tenant_id, device_epoch) \
             SELECT '00000000-0000-4000-9000-' || {user_hex}, 'seed' || g.i, \
             replace(a.username_key, 'admin', 'seed' || g.i), a.password_hash, '[]', '[]', '{{}}', \
             {bool_true}, {now}, {now}, a.tenant_id, 0 \
             FROM {users_series}, (SELECT * FROM users WHERE username = 'admin') AS a \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE username = 'seed1')",
            user_hex = hex("g.i"),
            users_series = series(1, SEED_USERS),
        );
        let sessions = format!(
            "INSERT INTO sessions (id, user_id, client_id, scope, created_at, expires_at, \
             legacy_client, generation, refreshed_at, user_agent, ip, last_ip) \
             SELECT '00000000-0000-4000-8000-' || {session_hex}, \
             '00000000-0000-4000-9000-' || {user_hex}, NULL, '', {now}, {later}, {bool_false}, 0, \
             {now}, 'loadtest seed', '127.0.0.1', '127.0.0.1' FROM {sessions_series}",
            session_hex = hex("g.i"),
            user_hex = hex(&format!("(g.i % {SEED_USERS}) + 1")),
            sessions_series = series(from, to),
        );
        match self {
            Db::Sqlite(c, _) => {
                c.batch_execute("BEGIN IMMEDIATE")?;
                let done = c
                    .batch_execute(&users)
                    .and_then(|()| c.batch_execute(&sessions));
                c.batch_execute(if done.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
                done?;
            }
            Db::Postgres(c) => {
                c.batch_execute(&format!(
                    "BEGIN; {users}; {sessions}; COMMIT; ANALYZE sessions;"
                ))?;
            }
        }
        Ok(to - have)
    }

    /// The database's size, and what PostgreSQL says of the sessions table (whose
    /// statistics an idle backend reports up to 10 s late: see [`STATS_DELAY`]).
    pub fn stats(&mut self) -> anyhow::Result<DbStats> {
        let live = self.live_sessions()?;
        Ok(match self {
            Db::Sqlite(_, path) => {
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                DbStats {
                    bytes: size(path) + size(std::path::Path::new(&wal)),
                    sessions_bytes: None,
                    live_sessions: live,
                    updates: None,
                }
            }
            Db::Postgres(c) => {
                #[derive(diesel::QueryableByName)]
                struct Pg {
                    #[diesel(sql_type = BigInt)]
                    db: i64,
                    #[diesel(sql_type = BigInt)]
                    sessions: i64,
                    #[diesel(sql_type = BigInt)]
                    upd: i64,
                    #[diesel(sql_type = BigInt)]
                    hot: i64,
                    #[diesel(sql_type = BigInt)]
                    dead: i64,
                    #[diesel(sql_type = BigInt)]
                    autovacuums: i64,
                    #[diesel(sql_type = Nullable<Text>)]
                    options: Option<String>,
                    #[diesel(sql_type = Text)]
                    autovacuum: String,
                }
                let row: Pg = diesel::sql_query(
                    "SELECT pg_database_size(current_database()) AS db, \
                     pg_total_relation_size('sessions') AS sessions, \
                     n_tup_upd AS upd, n_tup_hot_upd AS hot, n_dead_tup AS dead, \
                     autovacuum_count AS autovacuums, \
                     (SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'sessions') AS options, \
                     current_setting('autovacuum') AS autovacuum \
                     FROM pg_stat_user_tables WHERE relname = 'sessions'",
                )
                .get_result(c)?;
                DbStats {
                    bytes: u64::try_from(row.db)?,
                    sessions_bytes: Some(u64::try_from(row.sessions)?),
                    live_sessions: live,
                    updates: Some(Updates {
                        updates: row.upd,
                        hot: row.hot,
                        dead: row.dead,
                        autovacuums: row.autovacuums,
                        options: row.options.unwrap_or_default(),
                        autovacuum: row.autovacuum,
                    }),
                }
            }
        })
    }

    /// PostgreSQL: sets the sessions table's fillfactor (pages filled from now on).
    pub fn set_sessions_fillfactor(&mut self, fillfactor: u8) -> anyhow::Result<()> {
        if matches!(self, Db::Postgres(_)) {
            self.execute(&format!(
                "ALTER TABLE sessions SET (fillfactor = {fillfactor});"
            ))?;
        }
        Ok(())
    }

    /// Checkpoints SQLite's write-ahead log into the database (what the service's own
    /// checkpoints do over time), so that sizes compare.
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        if matches!(self, Db::Sqlite(..)) {
            self.execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(())
    }
}

/// The database's size and, on PostgreSQL, the sessions table's update statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbStats {
    /// The whole database (SQLite: its file and write-ahead log).
    pub bytes: u64,
    /// The sessions table with its indexes and TOAST (PostgreSQL).
    pub sessions_bytes: Option<u64>,
    pub live_sessions: i64,
    pub updates: Option<Updates>,
}

/// `pg_stat_user_tables` for `sessions`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Updates {
    pub updates: i64,
    /// Updates that were HOT (no index touched, the new version on the same page).
    pub hot: i64,
    pub dead: i64,
    pub autovacuums: i64,
    /// The table's storage options (`fillfactor=...`), empty for the defaults.
    pub options: String,
    /// The server's `autovacuum` setting (`on` in production; a test server may have it
    /// off).
    pub autovacuum: String,
}
