//! A lazily connected Redis handle shared by the revocation list and the rate limiter:
//! an unreachable Redis never stops the start; calls fail until it answers, and the
//! connection manager then reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis client with one multiplexed connection, made on first use.
pub struct LazyRedis {
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    connecting: tokio::sync::Mutex<()>,
}

impl LazyRedis {
    /// A handle for `url`; nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection, made now if there is none yet.
    pub async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.conn.load_full() {
            return Ok((*conn).clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| RedisError::from((redis::ErrorKind::Io, "timed out connecting to Redis")))??;
        self.conn.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }
}
