//! The `sessions` and `refresh_tokens` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{refresh_tokens, sessions};
use super::{DbConnection, StoreError};

/// A row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// Session id (`sid`).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// OAuth client given at login.
    pub client_id: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Absolute end.
    pub expires_at: NaiveDateTime,
    /// When revoked, if it was.
    pub revoked_at: Option<NaiveDateTime>,
    /// Why: `logout`, `reuse`, `revoke`, `admin`, ...
    pub revoked_reason: Option<String>,
    /// Opened before clients were registered: `client_id` is a free-text label, and the
    /// session rotates first-party.
    pub legacy_client: bool,
}

/// A row of `refresh_tokens`; never the token, only its hash.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    /// SHA-256 of the token, base64url.
    pub token_hash: String,
    /// Its session.
    pub session_id: String,
    /// 0 for the login's token, +1 per rotation.
    pub generation: i64,
    /// Issue time.
    pub created_at: NaiveDateTime,
    /// Idle expiry (capped by the session's end).
    pub expires_at: NaiveDateTime,
    /// When it was rotated.
    pub spent_at: Option<NaiveDateTime>,
    /// Its successor, sealed under a key derived from this token.
    pub successor_sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for RefreshRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRow")
            .field("session_id", &self.session_id)
            .field("generation", &self.generation)
            .field("spent_at", &self.spent_at)
            .finish_non_exhaustive()
    }
}

/// Inserts a session.
pub fn insert_session(conn: &mut DbConnection, row: &SessionRow) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Inserts a refresh token.
pub fn insert_refresh(conn: &mut DbConnection, row: &RefreshRow) -> Result<(), StoreError> {
    diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Marks a live, unexpired token spent and seals its successor. Returns whether this
/// call won: the conditional update is what serializes concurrent rotations, and as the
/// first statement of its transaction it takes SQLite's write lock before any read.
pub fn spend_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
    successor_sealed: &[u8],
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::spent_at.is_null())
            .filter(refresh_tokens::expires_at.gt(now)),
    )
    .set((
        refresh_tokens::spent_at.eq(now),
        refresh_tokens::successor_sealed.eq(successor_sealed),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// A refresh token with its session.
pub fn find_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<(RefreshRow, SessionRow)>, StoreError> {
    Ok(refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((RefreshRow::as_select(), SessionRow::as_select()))
        .first(conn)
        .optional()?)
}

/// The token of `generation` in a session.
pub fn find_generation(
    conn: &mut DbConnection,
    session_id: &str,
    generation: i64,
) -> Result<Option<RefreshRow>, StoreError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(session_id))
        .filter(refresh_tokens::generation.eq(generation))
        .select(RefreshRow::as_select())
        .first(conn)
        .optional()?)
}

/// The current refresh token of a session: the one not yet spent (there is one per
/// live session; every spend inserts the successor in the same transaction).
pub fn find_head(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<RefreshRow>, StoreError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(session_id))
        .filter(refresh_tokens::spent_at.is_null())
        .order(refresh_tokens::generation.desc())
        .select(RefreshRow::as_select())
        .first(conn)
        .optional()?)
}

/// Forgets the sealed successors of a session's tokens spent before `before`: they can
/// no longer lead anyone to the current token.
pub fn wipe_sealed_spent_before(
    conn: &mut DbConnection,
    session_id: &str,
    before: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::session_id.eq(session_id))
            .filter(refresh_tokens::spent_at.lt(before))
            .filter(refresh_tokens::successor_sealed.is_not_null()),
    )
    .set(refresh_tokens::successor_sealed.eq(None::<Vec<u8>>))
    .execute(conn)?)
}

/// Revokes a session if it is not yet; returns it if this call revoked it.
pub fn revoke_session(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> Result<Option<SessionRow>, StoreError> {
    let updated = diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    Ok(sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes sessions (and their refresh tokens) that ended before `before`.
pub fn purge_ended(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.lt(before))).execute(conn)?)
}

/// Revokes every live session of a user; returns the revoked sessions.
pub fn revoke_user_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> Result<Vec<SessionRow>, StoreError> {
    let live: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .load(conn)?;
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(live)
}

/// Revokes every live session of a tenant's users; returns how many.
pub fn revoke_tenant_sessions(
    conn: &mut DbConnection,
    tenant: &str,
    now: NaiveDateTime,
    reason: &str,
) -> Result<usize, StoreError> {
    use super::schema::users;
    let members = users::table
        .filter(users::tenant_id.eq(tenant))
        .select(users::id);
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq_any(members))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?)
}
