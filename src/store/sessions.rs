//! The `sessions` table (one row per session, whatever its number of rotations) and
//! `legacy_refresh_tokens` (the release before's tokens of sessions live at the upgrade).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{legacy_refresh_tokens, sessions, tenants, users};
use super::users::UserRow;
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
    /// The head refresh token's generation: 0 at login, +1 per rotation.
    pub generation: i64,
    /// When the head was issued (= when its predecessor was spent).
    pub refreshed_at: NaiveDateTime,
    /// The `User-Agent` sent at login, at most 256 characters.
    pub user_agent: Option<String>,
    /// The client address at login.
    pub ip: Option<String>,
    /// The client address of the last rotation (at login: `ip`).
    pub last_ip: Option<String>,
    /// The thumbprint of the DPoP key the session is bound to, if it is.
    pub dpop_jkt: Option<String>,
}

/// Inserts a session.
pub fn insert_session(conn: &mut DbConnection, row: &SessionRow) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A session as a refresh needs it: the row, its user, and whether the user's tenant
/// is enabled. One statement.
pub fn find_for_refresh(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<(SessionRow, UserRow, bool)>, StoreError> {
    Ok(super::unique!(
        conn,
        sessions::table
            .inner_join(users::table.inner_join(tenants::table))
            .filter(sessions::id.eq(session_id))
            .select((
                SessionRow::as_select(),
                UserRow::as_select(),
                tenants::enabled
            ))
    )?)
}

/// The session and generation a token of the release before stands for.
pub fn find_legacy(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(super::unique!(
        conn,
        legacy_refresh_tokens::table
            .filter(legacy_refresh_tokens::token_hash.eq(token_hash))
            .select((
                legacy_refresh_tokens::session_id,
                legacy_refresh_tokens::generation
            ))
    )?)
}

/// Rotates a session's head from `generation` to the next, issued `now`, if the session
/// is live and still at `generation`, and notes the address it came from (`ip`; none
/// keeps the last). Returns whether it did: the conditional update is what serializes
/// concurrent rotations of one session.
pub fn advance(
    conn: &mut DbConnection,
    session_id: &str,
    generation: i64,
    now: NaiveDateTime,
    ip: Option<&str>,
) -> Result<bool, StoreError> {
    let advance = super::prepared::Advance {
        session_id,
        generation,
        now,
        ip,
    };
    let updated = match conn {
        DbConnection::Postgres(c) => advance.execute(c)?,
        DbConnection::Sqlite(c) => advance.execute(c)?,
    };
    Ok(updated == 1)
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

/// What "live" means for a list of sessions and for ending one: not revoked, before its
/// absolute end, and its head issued within the refresh idle lifetime.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    /// Now.
    pub now: NaiveDateTime,
    /// The head must have been issued after this (now minus the idle lifetime).
    pub idle_after: NaiveDateTime,
}

/// Whose sessions a read covers.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// One user's.
    User(&'a str),
    /// Any user's in this tenant (`None`: every tenant).
    Tenant(Option<&'a str>),
}

/// Where a page of sessions starts: after the session created at `created_at` with id `id`
/// (newest first: older ones, or as old with a smaller id).
#[derive(Debug, Clone)]
pub struct After {
    /// The last listed session's creation.
    pub created_at: NaiveDateTime,
    /// Its id.
    pub id: String,
}

/// A page of a user's live sessions, newest first (creation, then id), each with its
/// user's tenant.
pub fn page_live(
    conn: &mut DbConnection,
    user_id: &str,
    live: Live,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<(SessionRow, String)>, StoreError> {
    let mut query = sessions::table
        .inner_join(users::table)
        .filter(sessions::user_id.eq(user_id.to_owned()))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(live.now))
        .filter(sessions::refreshed_at.gt(live.idle_after))
        .select((SessionRow::as_select(), users::tenant_id))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(
            sessions::created_at
                .lt(after.created_at)
                .or(sessions::created_at
                    .eq(after.created_at)
                    .and(sessions::id.lt(after.id.clone()))),
        );
    }
    Ok(query.load(conn)?)
}

/// One live session of `owner`, with its user's tenant; `None` if there is none (or it
/// is another's).
pub fn find_live(
    conn: &mut DbConnection,
    id: &str,
    owner: Owner<'_>,
    live: Live,
) -> Result<Option<(SessionRow, String)>, StoreError> {
    let mut query = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id.to_owned()))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(live.now))
        .filter(sessions::refreshed_at.gt(live.idle_after))
        .select((SessionRow::as_select(), users::tenant_id))
        .into_boxed();
    match owner {
        Owner::User(user_id) => query = query.filter(sessions::user_id.eq(user_id.to_owned())),
        Owner::Tenant(Some(tenant)) => query = query.filter(users::tenant_id.eq(tenant.to_owned())),
        Owner::Tenant(None) => {}
    }
    Ok(query.load(conn)?.into_iter().next())
}

/// Revokes every live session of a user but `keep`, inside the caller's write
/// transaction, in two statements whatever their number: the live ones are read (locked
/// on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already excludes other writers), then revoked
/// by id, so exactly the sessions returned are the ones this call revoked (one opened
/// meanwhile is neither).
pub fn revoke_live_except(
    conn: &mut DbConnection,
    user_id: &str,
    keep: &str,
    live: Live,
    reason: &str,
) -> Result<Vec<SessionRow>, StoreError> {
    let others = sessions::user_id
        .eq(user_id.to_owned())
        .and(sessions::id.ne(keep.to_owned()))
        .and(sessions::revoked_at.is_null())
        .and(sessions::expires_at.gt(live.now))
        .and(sessions::refreshed_at.gt(live.idle_after));
    let query = sessions::table.filter(others);
    let rows: Vec<SessionRow> = match conn {
        DbConnection::Postgres(c) => query.select(SessionRow::as_select()).for_update().load(c)?,
        DbConnection::Sqlite(c) => query.select(SessionRow::as_select()).load(c)?,
    };
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    diesel::update(sessions::table.filter(sessions::id.eq_any(ids)))
        .set((
            sessions::revoked_at.eq(live.now),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(rows)
}

/// Deletes sessions that ended before `before` (their legacy tokens go with them).
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

/// Revokes every live session opened through a registered client (sessions whose
/// `client_id` was a free-text label before clients were registered are not its);
/// returns the sessions that were live.
pub fn revoke_client_sessions(
    conn: &mut DbConnection,
    client_id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> Result<Vec<SessionRow>, StoreError> {
    let of_client = sessions::client_id
        .eq(client_id)
        .and(sessions::legacy_client.eq(false))
        .and(sessions::revoked_at.is_null());
    let live: Vec<SessionRow> = sessions::table
        .filter(of_client)
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .load(conn)?;
    diesel::update(sessions::table.filter(of_client))
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(live)
}

/// Revokes every live session of a tenant's users; returns the sessions that were live.
pub fn revoke_tenant_sessions(
    conn: &mut DbConnection,
    tenant: &str,
    now: NaiveDateTime,
    reason: &str,
) -> Result<Vec<SessionRow>, StoreError> {
    let members = || {
        users::table
            .filter(users::tenant_id.eq(tenant.to_owned()))
            .select(users::id)
    };
    let live: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq_any(members()))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .load(conn)?;
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq_any(members()))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(live)
}

/// Revokes every live session of the deployment (a mass logout); returns how many.
pub fn revoke_all_sessions(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    reason: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?)
}

/// What the grouped statement did for one presented head.
pub enum Grouped {
    /// Rotated: the session after it (its new head) and its user (enabled, in an
    /// enabled tenant: checked in the statement).
    Rotated {
        /// The session, its head moved on.
        session: SessionRow,
        /// Its user.
        user: UserRow,
    },
    /// Not rotated: the session, its user and whether its tenant is enabled, as they
    /// were when the statement began, for a decision that writes nothing.
    Read {
        /// The session.
        session: SessionRow,
        /// Its user.
        user: UserRow,
        /// Whether the user's tenant is enabled.
        tenant_enabled: bool,
    },
}

#[derive(QueryableByName)]
struct GroupedRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    rotated: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
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
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    s_revoked_at: Option<NaiveDateTime>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_revoked_reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    s_legacy_client: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    s_generation: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    s_refreshed_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_user_agent: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_ip: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_last_ip: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    s_dpop_jkt: Option<String>,
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
    #[diesel(sql_type = diesel::sql_types::Bool)]
    u_enabled: bool,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    u_created_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    u_updated_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Text)]
    u_tenant_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    u_device_epoch: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    t_enabled: bool,
}

impl GroupedRow {
    fn into_grouped(self) -> Grouped {
        let session = SessionRow {
            id: self.s_id,
            user_id: self.s_user_id.clone(),
            client_id: self.s_client_id,
            scope: self.s_scope,
            created_at: self.s_created_at,
            expires_at: self.s_expires_at,
            revoked_at: self.s_revoked_at,
            revoked_reason: self.s_revoked_reason,
            legacy_client: self.s_legacy_client,
            generation: self.s_generation,
            refreshed_at: self.s_refreshed_at,
            user_agent: self.s_user_agent,
            ip: self.s_ip,
            last_ip: self.s_last_ip,
            dpop_jkt: self.s_dpop_jkt,
        };
        let user = UserRow {
            id: self.s_user_id,
            username: self.u_username,
            username_key: self.u_username_key,
            password_hash: self.u_password_hash,
            roles: self.u_roles,
            scopes: self.u_scopes,
            claims: self.u_claims,
            enabled: self.u_enabled,
            created_at: self.u_created_at,
            updated_at: self.u_updated_at,
            tenant_id: self.u_tenant_id,
            device_epoch: self.u_device_epoch,
        };
        if self.rotated {
            Grouped::Rotated { session, user }
        } else {
            Grouped::Read {
                session,
                user,
                tenant_enabled: self.t_enabled,
            }
        }
    }
}

/// One head rotation's inputs, for [`rotate_in_one_statement`].
pub struct HeadRotation {
    /// The session.
    pub session_id: String,
    /// The presented head's generation.
    pub generation: i64,
    /// Now.
    pub now: NaiveDateTime,
    /// The head must have been issued after this ...
    pub idle_after: NaiveDateTime,
    /// ... and no later than this ([`crate::sessions::rules::RotationWindow`]).
    pub rotate_until: NaiveDateTime,
    /// The client address (the session's `last_ip` if given).
    pub ip: Option<String>,
    /// The thumbprint of the presenter's DPoP key, if it sent a proof: a session bound
    /// to a key rotates only with it.
    pub jkt: Option<String>,
}

/// Head rotations of first-party sessions, any number, as one PostgreSQL statement
/// committed on its own: the `Rotate` row of [`crate::sessions::rules`] and nothing
/// else. One round trip and one commit for the lot. A rotation that does not meet the
/// row gets its session as it was ([`Grouped::Read`]: nothing was written for it), for
/// the caller to decide the rest without another round trip (a young head, a
/// predecessor, a refusal) or the general way (reuse, a lost race); `None` if there is
/// no such session. Two rotations of one session in a group: one rotates, the other
/// gets the session as it was before.
///
/// A deadlock with another writer (PostgreSQL aborts one of them) rolls the statement
/// back: every rotation gets `None` and goes the general way.
///
/// SQLite has no such statement (nor the need: its writers are grouped in one
/// transaction instead, see [`super::Writers`]); every rotation there gets `None`.
pub fn rotate_in_one_statement(
    conn: &mut DbConnection,
    rotations: &[HeadRotation],
) -> Result<Vec<Option<Grouped>>, StoreError> {
    let DbConnection::Postgres(conn) = conn else {
        return Ok(rotations.iter().map(|_| None).collect());
    };
    fn column<T: Clone>(rotations: &[HeadRotation], f: impl Fn(&HeadRotation) -> &T) -> Vec<T> {
        rotations.iter().map(|r| f(r).clone()).collect()
    }
    let statement = super::prepared::RotateMany {
        session_ids: &column(rotations, |r| &r.session_id),
        generations: &column(rotations, |r| &r.generation),
        nows: &column(rotations, |r| &r.now),
        idle_after: &column(rotations, |r| &r.idle_after),
        rotate_until: &column(rotations, |r| &r.rotate_until),
        ips: &column(rotations, |r| &r.ip),
        jkts: &column(rotations, |r| &r.jkt),
    };
    let rows: Vec<GroupedRow> = match statement.load(conn) {
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
    let mut answers: Vec<Option<Grouped>> = rotations.iter().map(|_| None).collect();
    for row in rows {
        let Some(slot) = usize::try_from(row.n - 1)
            .ok()
            .and_then(|i| answers.get_mut(i))
        else {
            return Err(StoreError::Other("a rotation answered out of range".into()));
        };
        *slot = Some(row.into_grouped());
    }
    Ok(answers)
}
