//! The revocation list: which access tokens, sessions and users are cut off.
//!
//! Every revocation is written to the database first (`revocations` table), then to
//! the list: Redis in production, process memory for the embedded default. Redis
//! holds only what expires; if it loses its data (flush, restart) or misses a write,
//! it is refilled from the database, so a revoked session never comes back. Reads
//! fail closed: when the list cannot be read, callers answer 503, never "active".

mod memory;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use self::memory::MemoryList;
pub use self::redis::RedisList;
use crate::error::Error;
use crate::redis_conn::LazyRedis;
use crate::store::revocations::{self as store, RevocationRow};
use crate::store::{Db, DbConnection, StoreError};

/// Errors of the revocation list.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Redis cannot be reached or answered an error.
    #[error("revocation list unavailable: {0}")]
    Unavailable(#[from] ::redis::RedisError),
    /// The durable record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RevocationError> for Error {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::Store(e) => e.into(),
            RevocationError::Unavailable(_) => Self::revocation_list(e),
        }
    }
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One access token, by `jti`.
    Token {
        /// The token id.
        jti: String,
    },
    /// A whole session: its refresh token and every access token carrying its `sid`.
    Session {
        /// The session id.
        sid: String,
    },
    /// Every token of a user issued before `cutoff` (unix seconds).
    User {
        /// The user id.
        sub: String,
        /// Tokens with `iat` before this are revoked.
        cutoff: i64,
    },
}

impl Revocation {
    fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => "jti",
            Self::Session { .. } => "sid",
            Self::User { .. } => "sub",
        }
    }

    fn subject(&self) -> &str {
        match self {
            Self::Token { jti } => jti,
            Self::Session { sid } => sid,
            Self::User { sub, .. } => sub,
        }
    }

    fn cutoff(&self) -> i64 {
        match self {
            Self::User { cutoff, .. } => *cutoff,
            _ => 0,
        }
    }

    /// The row that records this revocation until `expires_at`.
    pub fn to_row(&self, expires_at: DateTime<Utc>) -> RevocationRow {
        RevocationRow {
            kind: self.kind().to_owned(),
            subject: self.subject().to_owned(),
            cutoff: self.cutoff(),
            expires_at: expires_at.naive_utc(),
        }
    }

    fn from_row(row: RevocationRow) -> Option<(Self, DateTime<Utc>)> {
        let entry = match row.kind.as_str() {
            "jti" => Self::Token { jti: row.subject },
            "sid" => Self::Session { sid: row.subject },
            "sub" => Self::User {
                sub: row.subject,
                cutoff: row.cutoff,
            },
            _ => return None,
        };
        Some((entry, row.expires_at.and_utc()))
    }
}

/// What identifies an access token for the revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenIds<'a> {
    /// Token id.
    pub jti: &'a str,
    /// Session id.
    pub sid: &'a str,
    /// User id.
    pub sub: &'a str,
    /// Issued at, unix seconds.
    pub iat: i64,
}

/// Why a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Not revoked.
    No,
    /// Revoked.
    Yes,
}

/// Remaining time-to-live of an entry, at least one second.
fn ttl(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (expires_at - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}

enum Backend {
    Memory(MemoryList),
    Redis(Box<RedisList>),
}

/// The revocation list with its durable record.
pub struct Revocations {
    backend: Backend,
    db: Db,
    // Set when a write to Redis failed: the next chance refills Redis from the database.
    needs_refill: AtomicBool,
}

impl Revocations {
    /// The in-memory list (embedded default), filled from the database.
    pub fn memory(db: Db) -> Self {
        Self {
            backend: Backend::Memory(MemoryList::default()),
            db,
            needs_refill: AtomicBool::new(true),
        }
    }

    /// The Redis list. Connects lazily: an unreachable Redis does not stop the start,
    /// it makes checks answer 503 until it is back.
    pub fn redis(db: Db, redis: Arc<LazyRedis>, prefix: String) -> Self {
        Self {
            backend: Backend::Redis(Box::new(RedisList::new(redis, prefix))),
            db,
            needs_refill: AtomicBool::new(false),
        }
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Records revocations inside a caller's transaction; [`Revocations::publish`] them after commit.
    pub fn record(
        conn: &mut DbConnection,
        entries: &[(Revocation, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        for (entry, expires_at) in entries {
            store::record(conn, &entry.to_row(*expires_at))?;
        }
        Ok(())
    }

    /// Writes already-recorded revocations to the list. On failure the database still
    /// holds them and the list is refilled as soon as it answers again.
    pub async fn publish(
        &self,
        entries: &[(Revocation, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), RevocationError> {
        let with_ttl: Vec<(Revocation, Duration)> = entries
            .iter()
            .filter(|(_, exp)| *exp > now)
            .map(|(e, exp)| (e.clone(), ttl(*exp, now)))
            .collect();
        let result = match &self.backend {
            Backend::Memory(list) => {
                list.insert(&with_ttl, now);
                Ok(())
            }
            Backend::Redis(list) => list.insert(&with_ttl).await,
        };
        if result.is_err() {
            self.needs_refill.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Whether a token is revoked: one round trip to the list.
    pub async fn check(
        &self,
        ids: TokenIds<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, RevocationError> {
        if self.needs_refill.load(Ordering::SeqCst) {
            self.refill(now).await?;
        }
        match &self.backend {
            Backend::Memory(list) => Ok(list.check(ids, now)),
            Backend::Redis(list) => match list.check(ids).await? {
                Some(answer) => Ok(answer),
                None => {
                    // The list lost its data (FLUSHALL, restart without persistence).
                    self.refill(now).await?;
                    list.check(ids).await?.ok_or_else(|| {
                        RevocationError::Unavailable(::redis::RedisError::from((
                            ::redis::ErrorKind::Io,
                            "revocation list emptied again during refill",
                        )))
                    })
                }
            },
        }
    }

    /// Copies every live revocation from the database into the list.
    pub async fn refill(&self, now: DateTime<Utc>) -> Result<usize, RevocationError> {
        // Clear first: a write that fails during the refill sets it again.
        self.needs_refill.store(false, Ordering::SeqCst);
        let result = self.refill_inner(now).await;
        if result.is_err() {
            self.needs_refill.store(true, Ordering::SeqCst);
        }
        result
    }

    async fn refill_inner(&self, now: DateTime<Utc>) -> Result<usize, RevocationError> {
        let naive = now.naive_utc();
        let rows = self.db.run(move |conn| store::live(conn, naive)).await?;
        let entries: Vec<(Revocation, Duration)> = rows
            .into_iter()
            .filter_map(Revocation::from_row)
            .map(|(entry, exp)| (entry, ttl(exp, now)))
            .collect();
        let count = entries.len();
        match &self.backend {
            Backend::Memory(list) => list.insert(&entries, now),
            Backend::Redis(list) => list.refill(&entries).await?,
        }
        if count > 0 {
            tracing::info!(
                entries = count,
                backend = self.backend(),
                "revocation list refilled from the database"
            );
        }
        Ok(count)
    }

    /// Answers whether the list can be read.
    pub async fn ping(&self) -> Result<(), RevocationError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(list) => list.ping().await,
        }
    }

    /// Drops expired entries from the database (and memory).
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, RevocationError> {
        if let Backend::Memory(list) = &self.backend {
            list.purge(now);
        }
        let naive = now.naive_utc();
        Ok(self
            .db
            .run(move |conn| store::purge_expired(conn, naive))
            .await?)
    }
}
