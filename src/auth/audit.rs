//! The audit log: who did what to what, from where, with what outcome.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::audit::{self as store, AuditRow};
use crate::store::{Db, StoreError};

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `user:<id>`, `api_key:<id>`, `anonymous` or `system`.
    pub actor: String,
    /// What happened, e.g. `user.create`, `login`, `refresh.reuse`, `signing_key.rotate`.
    pub action: String,
    /// On what (an id, a username).
    pub target: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
}

/// A recorded event.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Id (time-ordered).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: AuditEvent,
}

/// The audit log.
pub struct Audit {
    db: Db,
}

impl Audit {
    /// The log over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Appends an event. A failure to write is logged, not raised: the audited action
    /// already happened and its caller must learn how it went.
    pub async fn record(&self, event: AuditEvent, now: DateTime<Utc>) {
        let action = event.action.clone();
        let row = AuditRow {
            id: Uuid::now_v7().to_string(),
            at: now.naive_utc(),
            actor: event.actor,
            action: event.action,
            target: event.target,
            ip: event.ip,
            outcome: event.outcome,
        };
        if let Err(error) = self.db.run(move |conn| store::insert(conn, &row)).await {
            tracing::error!(%error, action, "audit event could not be written");
        }
    }

    /// A page of events, newest first, before the event `before`.
    pub async fn page(
        &self,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .db
            .run(move |conn| store::page(conn, before.map(|b| b.to_string()).as_deref(), limit))
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: Uuid::parse_str(&row.id).map_err(|e| StoreError::Other(Box::new(e)))?,
                    at: row.at.and_utc(),
                    event: AuditEvent {
                        actor: row.actor,
                        action: row.action,
                        target: row.target,
                        ip: row.ip,
                        outcome: row.outcome,
                    },
                })
            })
            .collect()
    }
}
