//! Readiness: whether the service can do its work now, and what each dependency and the
//! signing keys look like, for a load balancer and for a person.

use std::sync::Arc;

use crate::keys::Keyring;
use crate::keys::keyring::KeyCensus;
use crate::revocation::Revocations;
use crate::store::Db;

/// What readiness found.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The database answers.
    pub database: bool,
    /// `postgres` or `sqlite`.
    pub database_backend: &'static str,
    /// The revocation list answers.
    pub revocation_list: bool,
    /// `redis` or `memory`.
    pub revocation_backend: &'static str,
    /// The published keys this instance holds.
    pub keys: KeyCensus,
}

impl Readiness {
    /// Every dependency answers and there is a key to sign with. (A missing `next` key
    /// is reported, not fatal: tokens are still issued and verified.)
    pub fn ready(&self) -> bool {
        self.database && self.revocation_list && self.keys.current.is_some()
    }
}

/// Checks the dependencies.
pub struct Health {
    db: Db,
    revocations: Arc<Revocations>,
    keyring: Arc<Keyring>,
}

impl Health {
    /// The checker.
    pub fn new(db: Db, revocations: Arc<Revocations>, keyring: Arc<Keyring>) -> Self {
        Self {
            db,
            revocations,
            keyring,
        }
    }

    /// Asks every dependency at once; a failure is logged with its cause.
    pub async fn readiness(&self) -> Readiness {
        let (db, revocation) = tokio::join!(self.db.ping(), self.revocations.ping());
        if let Err(error) = &db {
            tracing::warn!(%error, "readiness: database");
        }
        if let Err(error) = &revocation {
            tracing::warn!(%error, "readiness: revocation list");
        }
        Readiness {
            database: db.is_ok(),
            database_backend: self.db.backend(),
            revocation_list: revocation.is_ok(),
            revocation_backend: self.revocations.backend(),
            keys: self.keyring.census(),
        }
    }

    /// Sets the gauges that describe state rather than events (keys, connections).
    pub fn observe(&self) {
        let census = self.keyring.census();
        let keys = |status: &'static str, n: usize| {
            metrics::gauge!(crate::metrics::SIGNING_KEYS, "status" => status).set(n as f64);
        };
        keys("current", usize::from(census.current.is_some()));
        keys("next", usize::from(census.next.is_some()));
        keys("retiring", census.retiring);
        let (in_use, idle) = self.db.connections();
        metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    }
}
