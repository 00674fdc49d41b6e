//! Readiness: whether the service can do its work now.

use std::sync::Arc;

use crate::revocation::Revocations;
use crate::store::Db;

/// What readiness found.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// The database answers.
    pub database: bool,
    /// The revocation list answers.
    pub revocation_list: bool,
}

impl Readiness {
    /// Every dependency answers.
    pub fn ready(&self) -> bool {
        self.database && self.revocation_list
    }
}

/// Checks the dependencies.
pub struct Health {
    db: Db,
    revocations: Arc<Revocations>,
}

impl Health {
    /// The checker.
    pub fn new(db: Db, revocations: Arc<Revocations>) -> Self {
        Self { db, revocations }
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
            revocation_list: revocation.is_ok(),
        }
    }
}
