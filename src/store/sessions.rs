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
    let insert = diesel::insert_into(refresh_tokens::table).values(row);
    match conn {
        DbConnection::Postgres(c) => insert.execute(c)?,
        DbConnection::Sqlite(c) => insert.execute(c)?,
    };
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
    let spend = super::prepared::Spend {
        token_hash,
        now,
        sealed: successor_sealed,
    };
    let updated = match conn {
        DbConnection::Postgres(c) => spend.execute(c)?,
        DbConnection::Sqlite(c) => spend.execute(c)?,
    };
    Ok(updated == 1)
}

/// A refresh token with its session.
pub fn find_refresh(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<(RefreshRow, SessionRow)>, StoreError> {
    Ok(super::unique!(
        conn,
        refresh_tokens::table
            .inner_join(sessions::table)
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((RefreshRow::as_select(), SessionRow::as_select()))
    )?)
}

/// The token of `generation` in a session.
pub fn find_generation(
    conn: &mut DbConnection,
    session_id: &str,
    generation: i64,
) -> Result<Option<RefreshRow>, StoreError> {
    Ok(super::unique!(
        conn,
        refresh_tokens::table
            .filter(refresh_tokens::session_id.eq(session_id))
            .filter(refresh_tokens::generation.eq(generation))
            .select(RefreshRow::as_select())
    )?)
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

/// Forgets the sealed successors of a session's tokens spent in `[since, before)`: they
/// can no longer lead anyone to the current token. `since` comes from [`wipe_since`].
pub fn wipe_sealed_spent_before(
    conn: &mut DbConnection,
    session_id: &str,
    since: NaiveDateTime,
    before: NaiveDateTime,
) -> Result<usize, StoreError> {
    let wipe = super::prepared::WipeSealed {
        session_id,
        since,
        before,
    };
    Ok(match conn {
        DbConnection::Postgres(c) => wipe.execute(c)?,
        DbConnection::Sqlite(c) => wipe.execute(c)?,
    })
}

/// Where a rotation's wipe of old seals starts, for a rotation that spends a token
/// issued at `spent_issued_at` and wipes what was spent more than `leeway` ago. The
/// rotation that issued that token (at its `created_at`) wiped everything spent a leeway
/// before it, so this one starts exactly there: together the wipes cover every spent
/// token, and each looks only at the rotations since the previous one. (Should the
/// leeway be shortened between two rotations, seals spent in the gap stay until the
/// session ends; they can no longer converge, which compares timestamps.) Without a lower
/// bound the wipe walks every index entry the session's earlier wipes left, which on
/// PostgreSQL stay (dead) until a vacuum: refresh slowed by the minute.
pub fn wipe_since(spent_issued_at: NaiveDateTime, leeway: chrono::TimeDelta) -> NaiveDateTime {
    spent_issued_at - leeway
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
    Ok(super::unique!(
        conn,
        sessions::table.find(id).select(SessionRow::as_select())
    )?)
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

/// What a rotation in one statement hands back: the session and its user as they were
/// when the token was spent, and the successor's expiry.
pub struct Rotated {
    /// The session (live: it was checked in the statement).
    pub session: SessionRow,
    /// Its user (enabled, in an enabled tenant: checked in the statement).
    pub user: super::users::UserRow,
    /// The successor's idle expiry.
    pub expires_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct RotatedRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    next_expires_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Text)]
    s_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    s_user_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_client_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    s_scope: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    s_created_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    s_expires_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    s_legacy_client: bool,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_username: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_username_key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_password_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_roles: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_scopes: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_claims: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    u_created_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    u_updated_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_tenant_id: String,
}

/// One common rotation's inputs, for [`rotate_in_one_statement`].
pub struct CommonRotation {
    /// The presented token's hash.
    pub token_hash: String,
    /// Now.
    pub now: NaiveDateTime,
    /// The successor, sealed under the presented token.
    pub sealed: Vec<u8>,
    /// The successor's hash.
    pub successor_hash: String,
    /// The successor's idle expiry before the session's end caps it.
    pub successor_expires_at: NaiveDateTime,
    /// Seals of the session's tokens spent before this are wiped.
    pub wipe_before: NaiveDateTime,
}

/// Common rotations, any number of them, as one PostgreSQL statement committed on its
/// own: for each, spend the token if it is live and unspent, its session live and
/// first-party, its user and tenant enabled; insert the successor; forget the sealed
/// successors of the session's tokens spent before `wipe_before`. One round trip and one
/// commit for the lot, where the general transaction takes eight each. `None` for a
/// rotation when any condition does not hold: nothing was written for it, and the caller
/// runs the general transaction, which tells why (or converges, or detects reuse). Two
/// rotations of one token: one spends it, the other gets `None` (and converges).
///
/// A deadlock with another writer (PostgreSQL aborts one of them) rolls the statement
/// back: every rotation gets `None` and goes the general way.
pub fn rotate_in_one_statement(
    conn: &mut diesel::PgConnection,
    rotations: &[CommonRotation],
) -> Result<Vec<Option<Rotated>>, StoreError> {
    fn column<T: Clone>(rotations: &[CommonRotation], f: impl Fn(&CommonRotation) -> &T) -> Vec<T> {
        rotations.iter().map(|r| f(r).clone()).collect()
    }
    let statement = super::prepared::RotateMany {
        token_hashes: &column(rotations, |r| &r.token_hash),
        nows: &column(rotations, |r| &r.now),
        sealed: &column(rotations, |r| &r.sealed),
        successor_hashes: &column(rotations, |r| &r.successor_hash),
        successor_expires_at: &column(rotations, |r| &r.successor_expires_at),
        wipe_before: &column(rotations, |r| &r.wipe_before),
    };
    let rows: Vec<RotatedRow> = match statement.load(conn) {
        Ok(rows) => rows,
        Err(diesel::result::Error::DatabaseError(kind, info))
            if matches!(
                kind,
                diesel::result::DatabaseErrorKind::SerializationFailure
            ) || info.message().contains("deadlock detected") =>
        {
            tracing::warn!(
                message = info.message(),
                "rotations in one statement rolled back; each goes the general way"
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let mut answers: Vec<Option<Rotated>> = rotations.iter().map(|_| None).collect();
    for r in rows {
        let Some(slot) = usize::try_from(r.n - 1)
            .ok()
            .and_then(|i| answers.get_mut(i))
        else {
            return Err(StoreError::Other("a rotation answered out of range".into()));
        };
        *slot = Some(Rotated {
            expires_at: r.next_expires_at,
            user: super::users::UserRow {
                id: r.s_user_id.clone(),
                username: r.u_username,
                username_key: r.u_username_key,
                password_hash: r.u_password_hash,
                roles: r.u_roles,
                scopes: r.u_scopes,
                claims: r.u_claims,
                enabled: true,
                created_at: r.u_created_at,
                updated_at: r.u_updated_at,
                tenant_id: r.u_tenant_id,
            },
            session: SessionRow {
                id: r.s_id,
                user_id: r.s_user_id,
                client_id: r.s_client_id,
                scope: r.s_scope,
                created_at: r.s_created_at,
                expires_at: r.s_expires_at,
                revoked_at: None,
                revoked_reason: None,
                legacy_client: r.s_legacy_client,
            },
        });
    }
    Ok(answers)
}

/// The common rotation on SQLite, inside the caller's write transaction (which holds the
/// database's write lock, so nothing changes between the statements): one lookup that
/// checks every condition of [`rotate_in_one_statement`], then the spend, the successor
/// and the wipe. Four prepared statements, where the general transaction takes six.
/// `None` when any condition does not hold, with nothing written: the caller runs the
/// general transaction, which tells why (or converges, or detects reuse). An error may
/// leave part of it written: the caller must roll the transaction back.
pub fn rotate_common_in_transaction(
    conn: &mut DbConnection,
    rotation: &CommonRotation,
) -> Result<Option<Rotated>, StoreError> {
    use super::schema::{tenants, users};
    use super::users::UserRow;
    let now = rotation.now;
    let found: Option<(i64, NaiveDateTime, SessionRow, UserRow)> = super::unique!(
        conn,
        refresh_tokens::table
            .inner_join(sessions::table.inner_join(users::table.inner_join(tenants::table)))
            .filter(refresh_tokens::token_hash.eq(&rotation.token_hash))
            .filter(refresh_tokens::spent_at.is_null())
            .filter(refresh_tokens::expires_at.gt(now))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::client_id.is_null().or(sessions::legacy_client))
            .filter(users::enabled)
            .filter(tenants::enabled)
            .select((
                refresh_tokens::generation,
                refresh_tokens::created_at,
                SessionRow::as_select(),
                UserRow::as_select(),
            ))
    )?;
    let Some((generation, issued_at, session, user)) = found else {
        return Ok(None);
    };
    if !spend_refresh(conn, &rotation.token_hash, now, &rotation.sealed)? {
        return Ok(None);
    }
    let expires_at = rotation.successor_expires_at.min(session.expires_at);
    insert_refresh(
        conn,
        &RefreshRow {
            token_hash: rotation.successor_hash.clone(),
            session_id: session.id.clone(),
            generation: generation + 1,
            created_at: now,
            expires_at,
            spent_at: None,
            successor_sealed: None,
        },
    )?;
    let leeway = rotation.now - rotation.wipe_before;
    wipe_sealed_spent_before(
        conn,
        &session.id,
        wipe_since(issued_at, leeway),
        rotation.wipe_before,
    )?;
    Ok(Some(Rotated {
        session,
        user,
        expires_at,
    }))
}
