//! A lazily connected Redis handle shared by everything in `ephemeral`:
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
    /// A handle for `url`; nothing is connected yet. A `rediss://` URL connects over TLS
    /// (rustls): the server's certificate must chain to `ca` (PEM) if given, else to the
    /// system's roots, and name the URL's host.
    pub fn new(url: &str, ca: Option<&[u8]>) -> Result<Self, RedisError> {
        let client = match ca {
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )?,
            None => redis::Client::open(url)?,
        };
        Ok(Self {
            client,
            conn: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// At start: an unreachable Redis is no reason not to start (checks answer 503 until
    /// it is back), but one that is reachable and refuses us (a certificate that does not
    /// verify, a TLS port spoken to in plain text, a wrong password) is a configuration
    /// error to stop on, with its cause.
    pub async fn check_at_start(&self) -> Result<(), RedisError> {
        let info = self.client.get_connection_info();
        let reachable = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } => tokio::time::timeout(
                TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .is_ok_and(|c| c.is_ok()),
            _ => true,
        };
        if !reachable {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }

    /// `SET key 1 NX PX ttl_ms`: marks `key` for `ttl_ms`; `false` if it was marked
    /// already (the marks of tickets redeemed and DPoP proofs seen).
    pub async fn set_once(&self, key: String, ttl_ms: i64) -> Result<bool, RedisError> {
        let mut conn = self.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// The client, for connections of their own (a subscription).
    pub fn client(&self) -> &redis::Client {
        &self.client
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
