//! The `audit_events` table: append-only.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::{DbConnection, StoreError};

/// A row of `audit_events`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    /// UUIDv7.
    pub id: String,
    /// When.
    pub at: NaiveDateTime,
    /// Who: `user:<id>`, `api_key:<id>`, `anonymous`, `system`.
    pub actor: String,
    /// What, e.g. `user.create`, `login`, `refresh.reuse`.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// More about it: fields changed, events folded into this one.
    pub detail: Option<String>,
}

/// Appends an event.
pub fn insert(conn: &mut DbConnection, row: &AuditRow) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Which events a page holds: every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this actor (`user:<id>`, `api_key:<id>`, ...).
    pub actor: Option<String>,
    /// Exactly this action's stored name.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<NaiveDateTime>,
    /// Before.
    pub until: Option<NaiveDateTime>,
}

/// A page, newest first, strictly before `before` (an id), of the events `filter` keeps.
pub fn page(
    conn: &mut DbConnection,
    before: Option<&str>,
    limit: i64,
    filter: &AuditFilter,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_events::id.lt(before.to_owned()));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_events::actor.eq(actor.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::at.lt(until));
    }
    Ok(query.load(conn)?)
}
