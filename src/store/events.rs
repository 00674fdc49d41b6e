//! The security-event outbox (`security_events`) and each events key's position in it
//! (`event_cursors`, `event_acks`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_keys, event_acks, event_cursors, security_events, sessions, users};
use super::{DbConnection, Lock, StoreError, locked};

/// A row of `security_events`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = security_events)]
pub struct EventRow {
    /// The revocation generation of the transaction that emitted it.
    pub generation: i64,
    /// Its index within that transaction.
    pub idx: i32,
    /// The tenant it concerns; `None`: every tenant.
    pub tenant_id: Option<String>,
    /// The event type URI.
    pub event_type: String,
    /// The event's member of the SET `events` claim, JSON.
    pub payload: String,
    /// When it was emitted.
    pub created_at: NaiveDateTime,
}

/// A position in the outbox: (generation, index).
pub type Position = (i64, i32);

/// Writes events (inside the transaction of the change that caused them).
pub fn insert(conn: &mut DbConnection, rows: &[EventRow]) -> Result<(), StoreError> {
    // One statement a row: the multi-backend connection has no batch insert (and a
    // transaction emits a handful).
    for row in rows {
        diesel::insert_into(security_events::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// A session as its revocation's event names it.
#[derive(Debug, Clone, Queryable)]
pub struct SessionOwner {
    /// The session id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// The user's tenant.
    pub tenant_id: String,
    /// Why it was revoked.
    pub reason: Option<String>,
}

/// Of these sessions, each one's user, tenant and why it was revoked.
pub fn session_owners(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<SessionOwner>, StoreError> {
    let mut owners = Vec::with_capacity(ids.len());
    // In chunks: SQLite binds each id as a parameter, and a statement takes at most
    // 32,766 (a disabled tenant may end more sessions than that).
    for chunk in ids.chunks(CHUNK) {
        owners.extend(
            sessions::table
                .inner_join(users::table)
                .filter(sessions::id.eq_any(chunk))
                .select((
                    sessions::id,
                    sessions::user_id,
                    users::tenant_id,
                    sessions::revoked_reason,
                ))
                .load::<SessionOwner>(conn)?,
        );
    }
    Ok(owners)
}

/// Ids bound in one statement at most.
const CHUNK: usize = 10_000;

/// Of these users, each one's (id, tenant).
pub fn user_tenants(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut tenants = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        tenants.extend(
            users::table
                .filter(users::id.eq_any(chunk))
                .select((users::id, users::tenant_id))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(tenants)
}

/// Locks an events key for the rest of the transaction (one poll of a key at a time) and
/// returns whether it still exists.
pub fn lock_key(conn: &mut DbConnection, key_id: &str) -> Result<bool, StoreError> {
    let query = api_keys::table
        .filter(api_keys::id.eq(key_id))
        .select(api_keys::id);
    let found: Option<String> = locked!(conn, query, Lock::Update)?;
    Ok(found.is_some())
}

/// A key's cursor: every event up to it is acknowledged.
pub fn cursor(conn: &mut DbConnection, key_id: &str) -> Result<Option<Position>, StoreError> {
    Ok(event_cursors::table
        .find(key_id)
        .select((event_cursors::generation, event_cursors::idx))
        .first(conn)
        .optional()?)
}

/// Moves a key's cursor.
pub fn set_cursor(conn: &mut DbConnection, key_id: &str, at: Position) -> Result<(), StoreError> {
    let updated = diesel::update(event_cursors::table.find(key_id))
        .set((
            event_cursors::generation.eq(at.0),
            event_cursors::idx.eq(at.1),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(event_cursors::table)
            .values((
                event_cursors::api_key_id.eq(key_id),
                event_cursors::generation.eq(at.0),
                event_cursors::idx.eq(at.1),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The events a key acknowledged beyond its cursor.
pub fn acks(conn: &mut DbConnection, key_id: &str) -> Result<Vec<Position>, StoreError> {
    Ok(event_acks::table
        .filter(event_acks::api_key_id.eq(key_id))
        .select((event_acks::generation, event_acks::idx))
        .load(conn)?)
}

/// Replaces a key's acknowledgements beyond its cursor.
pub fn set_acks(
    conn: &mut DbConnection,
    key_id: &str,
    acked: &[Position],
) -> Result<(), StoreError> {
    diesel::delete(event_acks::table.filter(event_acks::api_key_id.eq(key_id))).execute(conn)?;
    for (generation, idx) in acked {
        diesel::insert_into(event_acks::table)
            .values((
                event_acks::api_key_id.eq(key_id),
                event_acks::generation.eq(*generation),
                event_acks::idx.eq(*idx),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Up to `limit` events after `after`, emitted at or after `since`, that a key of
/// `tenant` sees (`None`: every tenant's), in order.
pub fn after(
    conn: &mut DbConnection,
    after: Position,
    since: NaiveDateTime,
    tenant: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let later = security_events::generation
        .gt(after.0)
        .or(security_events::generation
            .eq(after.0)
            .and(security_events::idx.gt(after.1)));
    let mut query = security_events::table
        .filter(later)
        .filter(security_events::created_at.ge(since))
        .order((
            security_events::generation.asc(),
            security_events::idx.asc(),
        ))
        .limit(limit)
        .select(EventRow::as_select())
        .into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(
            security_events::tenant_id
                .is_null()
                .or(security_events::tenant_id.eq(tenant)),
        );
    }
    Ok(query.load(conn)?)
}

/// Deletes events emitted before `before` (past the retention).
pub fn purge(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(security_events::table.filter(security_events::created_at.lt(before)))
            .execute(conn)?,
    )
}
