//! The revocation list: Redis in production, in memory for the embedded default.
//! This slice only checks that the backend answers; the entries come with sessions.

use redis::aio::ConnectionManager;

/// Errors of the revocation list.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Redis cannot be reached or answered an error.
    #[error("revocation list unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
}

/// Where revocations live.
#[derive(Clone)]
pub enum RevocationList {
    /// Process memory: one instance, lost at exit (the database keeps the durable record).
    Memory,
    /// Redis, shared by every instance.
    Redis {
        /// A multiplexed connection that reconnects by itself.
        conn: ConnectionManager,
        /// Prefix of every key.
        prefix: String,
    },
}

impl RevocationList {
    /// Connects to Redis at `url`, failing if it does not answer within a few seconds.
    pub async fn connect_redis(url: &str, prefix: String) -> Result<Self, RevocationError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self::Redis { conn, prefix })
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis { .. } => "redis",
        }
    }

    /// Answers whether the list can be read.
    pub async fn ping(&self) -> Result<(), RevocationError> {
        match self {
            Self::Memory => Ok(()),
            Self::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
        }
    }
}
