//! Marks of redeemed connect tickets: a ticket is redeemed once, on any instance. In
//! Redis, `SET NX PX` on the ticket's `jti` for its remaining lifetime; without Redis, a
//! row under a primary key in the database (the `ticket_redemptions` table), which holds
//! across every instance on that database.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Keys, LazyRedis};
use crate::error::Error;
use crate::store::{Db, tickets as store};

/// Where redemptions are marked.
pub enum TicketMarks {
    /// `SET <ticket_mark> 1 NX PX <remaining>`.
    Redis {
        /// The connection.
        redis: Arc<LazyRedis>,
        /// The key names.
        keys: Keys,
    },
    /// The `ticket_redemptions` table.
    Database(Db),
}

impl TicketMarks {
    /// Marks `jti` used until `expires_at`; `false` if it already was.
    pub async fn mark(
        &self,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        match self {
            Self::Redis { redis, keys } => {
                // Kept a second past expiry: a ticket is refused from `exp` on anyway.
                let ttl_ms = (expires_at - now).num_milliseconds().max(0) + 1000;
                redis
                    .set_once(keys.ticket_mark(jti), ttl_ms)
                    .await
                    .map_err(Error::redis)
            }
            Self::Database(db) => {
                let jti = jti.to_owned();
                let until = expires_at.naive_utc();
                Ok(db.run(move |conn| store::redeem(conn, &jti, until)).await?)
            }
        }
    }

    /// Housekeeping: forgets the marks of expired tickets (database only; Redis expires
    /// its keys itself). Returns how many went.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        match self {
            Self::Redis { .. } => Ok(0),
            Self::Database(db) => {
                let naive = now.naive_utc();
                Ok(db
                    .run(move |conn| store::purge_expired(conn, naive))
                    .await?)
            }
        }
    }
}
