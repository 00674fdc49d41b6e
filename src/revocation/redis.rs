//! The Redis revocation list: `revoked:{jti,sid,sub}:<id>` keys with TTLs, and a
//! sentinel key that tells whether Redis still holds what the database says.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, RedisError};

use crate::redis_conn::LazyRedis;

use super::{Revocation, RevocationError, Revoked, TokenIds};

/// The Redis list.
pub struct RedisList {
    redis: std::sync::Arc<LazyRedis>,
    refilling: tokio::sync::Mutex<()>,
    prefix: String,
}

impl RedisList {
    pub(super) fn new(redis: std::sync::Arc<LazyRedis>, prefix: String) -> Self {
        Self {
            redis,
            refilling: tokio::sync::Mutex::new(()),
            prefix,
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.redis.conn().await
    }

    fn key(&self, entry: &Revocation) -> String {
        format!(
            "{}revoked:{}:{}",
            self.prefix,
            entry.kind(),
            entry.subject()
        )
    }

    fn sentinel(&self) -> String {
        format!("{}revocations:filled", self.prefix)
    }

    fn set_all(&self, pipe: &mut redis::Pipeline, entries: &[(Revocation, Duration)]) {
        for (entry, ttl) in entries {
            let key = self.key(entry);
            let secs = ttl.as_secs().max(1);
            match entry {
                // Each cut-off is the time it was set, so the last write is the latest.
                Revocation::User { cutoff, .. } => pipe.set_ex(key, *cutoff, secs).ignore(),
                _ => pipe.set_ex(key, 1, secs).ignore(),
            };
        }
    }

    pub(super) async fn insert(
        &self,
        entries: &[(Revocation, Duration)],
    ) -> Result<(), RevocationError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.set_all(&mut pipe, entries);
        let mut conn = self.conn().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// `None` when the sentinel is gone: Redis lost its data and must be refilled.
    pub(super) async fn check(
        &self,
        ids: TokenIds<'_>,
    ) -> Result<Option<Revoked>, RevocationError> {
        let keys = [
            self.sentinel(),
            self.key(&Revocation::Token {
                jti: ids.jti.to_owned(),
            }),
            self.key(&Revocation::Session {
                sid: ids.sid.to_owned(),
            }),
            self.key(&Revocation::User {
                sub: ids.sub.to_owned(),
                cutoff: 0,
            }),
        ];
        let mut conn = self.conn().await?;
        let values: Vec<Option<i64>> = conn.mget(&keys).await?;
        let [sentinel, jti, sid, sub] = values.as_slice() else {
            return Err(RedisError::from((
                redis::ErrorKind::Parse,
                "MGET answered the wrong number of values",
            ))
            .into());
        };
        if sentinel.is_none() {
            return Ok(None);
        }
        let revoked = jti.is_some() || sid.is_some() || sub.is_some_and(|cutoff| ids.iat < cutoff);
        Ok(Some(if revoked { Revoked::Yes } else { Revoked::No }))
    }

    /// Writes every entry, then the sentinel, in one transaction.
    pub(super) async fn refill(
        &self,
        entries: &[(Revocation, Duration)],
    ) -> Result<(), RevocationError> {
        let _guard = self.refilling.lock().await;
        let mut conn = self.conn().await?;
        for chunk in entries.chunks(1000) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.set_all(&mut pipe, chunk);
            pipe.query_async::<()>(&mut conn).await?;
        }
        let _: () = conn.set(self.sentinel(), 1).await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), RevocationError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
