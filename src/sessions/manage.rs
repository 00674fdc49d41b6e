//! Sessions and devices: a user's live sessions (where, from what, when last used), ending
//! one, ending all but the current one, and the admin twins within the admin's tenant.
//!
//! Ending a session is one transaction that revokes it and records its revocation entry;
//! the entry is published to every instance before the answer, so its refresh token and
//! its access tokens fail at once everywhere (`TOKEN_REVOKED`), and no other session is
//! touched. Every use case here is shared by REST and any later front door.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Sessions, revoke_session_in, session_entry};
use crate::audit::{Action, Actor, AdminCall, AuditEvent, Outcome};
use crate::error::Error;
use crate::model::{Admin, Lifetimes, TenantId, delta};
use crate::principal::SessionHolder;
use crate::revocation::Listed;
use crate::store::DbConnection;
use crate::store::sessions::{self as store, After, Live, Owner, SessionRow};
use crate::store::users;

/// The device a session is opened from, as its list shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// The `User-Agent` as sent, at most [`Device::MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    /// The client address ([`crate::http::extract::client_ip`]'s rule).
    pub ip: Option<String>,
}

impl Device {
    /// How much of a `User-Agent` is kept, in characters.
    pub const MAX_USER_AGENT: usize = 256;

    /// A device from what a request says: the user agent cut at
    /// [`Self::MAX_USER_AGENT`] characters, control characters dropped; an empty one is
    /// none.
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(Self::MAX_USER_AGENT)
                    .collect::<String>()
            })
            .map(|ua| ua.trim().to_owned())
            .filter(|ua| !ua.is_empty());
        Self { user_agent, ip }
    }
}

/// A live session as its user (or an admin) sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Session id (`sid`).
    pub id: Uuid,
    /// Its user.
    pub user_id: Uuid,
    /// The user's tenant.
    pub tenant: String,
    /// The client given at login, if any.
    pub client_id: Option<String>,
    /// The session's scopes, space-separated.
    pub scope: String,
    /// Login.
    pub created_at: DateTime<Utc>,
    /// The last rotation of its refresh token; none if it never rotated.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Absolute end.
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` sent at login.
    pub user_agent: Option<String>,
    /// The client address at login.
    pub ip: Option<String>,
    /// The client address of the last rotation.
    pub last_ip: Option<String>,
    /// Whether this is the session of the caller's token.
    pub current: bool,
}

impl SessionInfo {
    fn of(row: SessionRow, tenant: String, current: Option<Uuid>) -> Result<Self, Error> {
        let id = Uuid::parse_str(&row.id).map_err(Error::internal)?;
        Ok(Self {
            id,
            user_id: Uuid::parse_str(&row.user_id).map_err(Error::internal)?,
            tenant,
            client_id: row.client_id,
            scope: row.scope,
            created_at: row.created_at.and_utc(),
            last_refreshed_at: (row.generation > 0).then(|| row.refreshed_at.and_utc()),
            expires_at: row.expires_at.and_utc(),
            user_agent: row.user_agent,
            ip: row.ip,
            last_ip: row.last_ip,
            current: current == Some(id),
        })
    }

    /// Where the next page starts if this is the last item of one.
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// A place in a list of sessions (newest first): after the session created at
/// `created_at` with id `id`. Written as `<nanoseconds since the epoch>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The session's creation.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

impl Position {
    /// Parses [`Position`]'s `Display` form.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = || Error::Invalid("invalid cursor".into());
        let (nanos, id) = s.split_once('.').ok_or_else(invalid)?;
        let nanos: i64 = nanos.parse().map_err(|_| invalid())?;
        Ok(Self {
            created_at: DateTime::from_timestamp_nanos(nanos),
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }

    fn after(&self) -> After {
        After {
            created_at: self.created_at.naive_utc(),
            id: self.id.to_string(),
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Until 2262; a session created later would not be listed after its page.
        let nanos = self.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        write!(f, "{nanos}.{}", self.id)
    }
}

/// A page of a list: at most `limit` items after `after`.
#[derive(Debug, Clone)]
pub struct SessionPage {
    /// Where it starts (none: the newest).
    pub after: Option<Position>,
    /// How many at most.
    pub limit: i64,
}

fn live(lifetimes: &Lifetimes, now: DateTime<Utc>) -> Live {
    Live {
        now: now.naive_utc(),
        idle_after: (now - delta(lifetimes.refresh_ttl)).naive_utc(),
    }
}

/// Ends one live session of `owner` (in a revoking transaction, see
/// [`crate::revocation::Revocations::write`]); `NOT_FOUND` if `owner` has no live session `id` (another's,
/// or ended). A session another request ended meanwhile is ended, and nothing more is
/// recorded.
fn end_in(
    conn: &mut DbConnection,
    id: &str,
    owner: Owner<'_>,
    reason: &'static str,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, Error> {
    if store::find_live(conn, id, owner, live(lifetimes, now))?.is_none() {
        return Err(Error::NotFound("session"));
    }
    revoke_session_in(conn, id, reason, lifetimes, now)
}

impl Sessions {
    /// The use case of `GET /api/sessions`: the holder's live sessions, newest first.
    pub async fn list_own(
        &self,
        holder: &SessionHolder,
        page: SessionPage,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, Error> {
        let (user_id, current) = (holder.user_id.to_string(), holder.session_id);
        let live = live(&self.lifetimes, now);
        let rows = self
            .db
            .run(move |conn| {
                let after = page.after.as_ref().map(Position::after);
                store::page_live(conn, &user_id, live, after.as_ref(), page.limit)
            })
            .await?;
        rows.into_iter()
            .map(|(row, tenant)| SessionInfo::of(row, tenant, Some(current)))
            .collect()
    }

    /// The use case of `DELETE /api/sessions/{id}`: ends one of the holder's live
    /// sessions (the current one too); `NOT_FOUND` for anyone else's. Audited.
    pub async fn end_own(
        &self,
        holder: &SessionHolder,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (lifetimes, user_id) = (self.lifetimes, holder.user_id.to_string());
        self.revocations
            .write(now, move |conn| {
                end_in(
                    conn,
                    &id.to_string(),
                    Owner::User(&user_id),
                    "session ended",
                    &lifetimes,
                    now,
                )
            })
            .await?;
        self.audit_holder(
            holder,
            Action::SessionEnd,
            format!("session:{id}"),
            None,
            now,
        )
        .await;
        Ok(())
    }

    /// The use case of `POST /api/sessions/revoke-others`: ends every live session of
    /// the holder but the current one, in one transaction; returns how many it ended.
    /// Audited. A session opened meanwhile is not among them.
    pub async fn end_others(
        &self,
        holder: &SessionHolder,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let lifetimes = self.lifetimes;
        let (user_id, current) = (holder.user_id.to_string(), holder.session_id.to_string());
        let recorded = self
            .revocations
            .write(now, move |conn| {
                let ended = store::revoke_live_except(
                    conn,
                    &user_id,
                    &current,
                    live(&lifetimes, now),
                    "other sessions ended",
                )?;
                Ok(ended
                    .iter()
                    .map(|s| session_entry(s, &lifetimes, now))
                    .collect())
            })
            .await?;
        // One entry a session ended.
        let ended = recorded.entries.len();
        let target = format!("user:{}", holder.user_id);
        let detail = format!("{ended} sessions ended");
        self.audit_holder(holder, Action::SessionEndOthers, target, Some(detail), now)
            .await;
        Ok(ended)
    }

    async fn audit_holder(
        &self,
        holder: &SessionHolder,
        action: Action,
        target: String,
        detail: Option<String>,
        now: DateTime<Utc>,
    ) {
        let event = AuditEvent {
            actor: Actor::User(holder.user_id),
            action,
            target: Some(target),
            ip: holder.ip.clone(),
            outcome: Outcome::Success,
            detail,
        };
        self.audit.record(event, now).await;
    }

    /// The use case of `GET /api/admin/users/{id}/sessions`: a user's live sessions,
    /// newest first; `NOT_FOUND` for a user outside the admin's tenant. Audited.
    pub async fn admin_list(
        &self,
        admin: &Admin,
        user_id: Uuid,
        page: SessionPage,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionInfo>, Error> {
        let call = AdminCall::new(admin, Action::SessionList).on(format!("user:{user_id}"));
        let (admin_copy, live) = (admin.clone(), live(&self.lifetimes, now));
        let work = self.db.run(move |conn| {
            let user = users::find_by_id(conn, &user_id.to_string())?;
            let visible = match &user {
                Some(row) => admin_copy.may_see(&TenantId::parse(&row.tenant_id)?),
                None => false,
            };
            if !visible {
                return Err(Error::NotFound("user"));
            }
            let after = page.after.as_ref().map(Position::after);
            Ok(store::page_live(
                conn,
                &user_id.to_string(),
                live,
                after.as_ref(),
                page.limit,
            )?)
        });
        let rows = self.audit.admin(call, now, work).await?;
        rows.into_iter()
            .map(|(row, tenant)| SessionInfo::of(row, tenant, None))
            .collect()
    }

    /// The use case of `DELETE /api/admin/sessions/{id}`: ends one live session of a user
    /// in the admin's tenant; `NOT_FOUND` outside it. Audited.
    pub async fn admin_end(
        &self,
        admin: &Admin,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let call = AdminCall::new(admin, Action::SessionEnd).on(format!("session:{id}"));
        let lifetimes = self.lifetimes;
        let tenant = (!admin.tenant().is_default()).then(|| admin.tenant().as_str().to_owned());
        let work = self.revocations.write(now, move |conn| {
            end_in(
                conn,
                &id.to_string(),
                Owner::Tenant(tenant.as_deref()),
                "admin",
                &lifetimes,
                now,
            )
        });
        self.audit.admin(call, now, work).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_user_agent_is_cut_at_256_characters_not_bytes() {
        let long = "é".repeat(300);
        let device = Device::new(Some(&long), None);
        assert_eq!(
            device.user_agent.as_deref().map(|u| u.chars().count()),
            Some(256)
        );
        assert_eq!(Device::new(Some("  "), None).user_agent, None);
        assert_eq!(
            Device::new(Some("curl/8.0\u{7f}"), None)
                .user_agent
                .as_deref(),
            Some("curl/8.0")
        );
    }

    #[test]
    fn positions_round_trip_and_garbage_is_refused() {
        let position = Position {
            created_at: DateTime::from_timestamp_nanos(1_765_000_000_123_456_789),
            id: Uuid::new_v4(),
        };
        assert_eq!(Position::parse(&position.to_string()).unwrap(), position);
        for bad in ["", ".", "12", "x.y", &format!("1.{}x", position.id)] {
            assert!(Position::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn positions_never_panic(junk in "\\PC*") {
            let _ = Position::parse(&junk);
        }
    }
}
