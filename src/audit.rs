//! The audit log: who did what to what, from where, with what outcome. Append-only;
//! use cases record their own events.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Error;
pub use crate::model::Actor;
use crate::model::Admin;
use crate::store::audit::{self as store, AuditRow};
use crate::store::{Db, StoreError};

macro_rules! actions {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action {
            $(#[doc = $doc] $variant,)*
        }

        impl Action {
            /// Every action, in the order of their declaration.
            pub const ALL: &'static [Action] = &[$(Self::$variant,)*];

            /// The stored name, e.g. `user.create`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    Login => "login", "A password login.";
    LoginRateLimited => "login.rate_limited", "Logins refused by the brute-force limit.";
    RefreshReuse => "refresh.reuse", "A spent refresh token presented again: its session was revoked.";
    UserCreate => "user.create", "An admin created a user.";
    UserList => "user.list", "An admin listed users.";
    UserGet => "user.get", "An admin read a user.";
    UserUpdate => "user.update", "An admin changed a user.";
    UserDelete => "user.delete", "An admin deleted a user.";
    UserRevokeSessions => "user.revoke_sessions", "An admin logged a user out everywhere.";
    ApiKeyCreate => "api_key.create", "An admin created an API key.";
    ApiKeyList => "api_key.list", "An admin listed API keys.";
    ApiKeyGet => "api_key.get", "An admin read an API key.";
    ApiKeyEnable => "api_key.enable", "An admin enabled an API key.";
    ApiKeyDisable => "api_key.disable", "An admin disabled an API key.";
    ApiKeyDelete => "api_key.delete", "An admin deleted an API key.";
    SigningKeyList => "signing_key.list", "An admin listed the signing keys.";
    SigningKeyRotate => "signing_key.rotate", "The signing keys were rotated.";
    SigningKeyWithdraw => "signing_key.withdraw", "A signing key was withdrawn in an emergency.";
    AuditList => "audit.list", "An admin read the audit log.";
    AdminRefused => "admin.refused", "An admin endpoint refused its caller (401 or 403).";
    TenantCreate => "tenant.create", "An admin created a tenant.";
    TenantList => "tenant.list", "An admin listed tenants.";
    TenantGet => "tenant.get", "An admin read a tenant.";
    TenantUpdate => "tenant.update", "An admin changed (or disabled) a tenant.";
    TenantDelete => "tenant.delete", "An admin deleted a tenant.";
    ClientCreate => "client.create", "An admin registered a client.";
    ClientList => "client.list", "An admin listed clients.";
    ClientGet => "client.get", "An admin read a client.";
    ClientUpdate => "client.update", "An admin changed a client.";
    ClientEnable => "client.enable", "An admin enabled a client.";
    ClientDisable => "client.disable", "An admin disabled a client.";
    ClientRotateSecret => "client.rotate_secret", "An admin gave a client a new secret.";
    ClientDelete => "client.delete", "An admin deleted a client.";
    Logout => "logout", "A logout ended a session (or an access token).";
    TokenRevoke => "token.revoke", "An RFC 7009 revocation ended a session or an access token.";
    OAuthToken => "oauth.token", "A grant at the token endpoint (the detail names it).";
    ClientAuthFailed => "client.auth_failed", "A client failed to authenticate at the token endpoint.";
    TicketIssue => "ticket.issue", "A connect ticket was issued (the target names its audience).";
    TicketRedeem => "ticket.redeem", "A connect ticket was presented for redemption.";
    SessionList => "session.list", "An admin listed a user's sessions.";
    SessionEnd => "session.end", "A session was ended (by its user, or by an admin).";
    SessionEndOthers => "session.end_others", "A user ended all their sessions but the current one.";
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused or failed.
    Failure,
}

impl Outcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }

    /// `Success` if `ok`.
    pub fn of(ok: bool) -> Self {
        if ok { Self::Success } else { Self::Failure }
    }
}

/// An admin's call as the log records it: who, what, on what, and any detail.
pub struct AdminCall<'a> {
    admin: &'a Admin,
    action: Action,
    target: Option<String>,
    detail: Option<String>,
}

impl<'a> AdminCall<'a> {
    /// A call with no target (a list).
    pub fn new(admin: &'a Admin, action: Action) -> Self {
        Self {
            admin,
            action,
            target: None,
            detail: None,
        }
    }

    /// The call's target, e.g. `user:<id>`.
    pub fn on(self, target: impl Into<Option<String>>) -> Self {
        Self {
            target: target.into(),
            ..self
        }
    }

    /// A detail, e.g. the fields a change touched.
    pub fn detail(self, detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// On what (`user:<id>`, `username:<name>`, `api_key:<id>`, `kid:<kid>`, `session:<id>`).
    pub target: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// How it went.
    pub outcome: Outcome,
    /// More about it: the fields a change touched, or how many events a row stands for.
    pub detail: Option<String>,
}

/// A recorded event, as read back.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Id (time-ordered).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who, as recorded (`user:<id>`, `api_key:<id>`, `anonymous`, `system`, `cli`).
    pub actor: String,
    /// What.
    pub action: Action,
    /// On what.
    pub target: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// How it went.
    pub outcome: Outcome,
    /// More about it.
    pub detail: Option<String>,
}

/// Most throttle windows kept in memory at once.
const MAX_FOLDED_WINDOWS: usize = 100_000;

/// Events folded into the first one of their window (see [`Audit::record_throttled`]).
struct Folded {
    event: AuditEvent,
    until: DateTime<Utc>,
    more: u64,
}

/// The audit log.
pub struct Audit {
    db: Db,
    // Throttle key -> the window's first event and how many more came.
    folded: Mutex<HashMap<String, Folded>>,
}

impl Audit {
    /// The log over `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            folded: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event that can come in floods (refused logins, refused admin calls):
    /// the first one of `key` until `until` is written, later ones are counted, and
    /// [`Audit::flush`] writes one summary row once the window has ended. So one client
    /// cannot fill the log, and the log still says how much was refused.
    pub async fn record_throttled(
        &self,
        event: AuditEvent,
        key: String,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        {
            let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(window) = folded.get_mut(&key).filter(|w| w.until > now) {
                window.more += 1;
                return;
            }
            if folded.len() >= MAX_FOLDED_WINDOWS {
                // Bounded memory: a flood of distinct keys still gets one row each.
                folded.retain(|_, w| w.until > now);
            }
            folded.insert(
                key,
                Folded {
                    event: event.clone(),
                    until,
                    more: 0,
                },
            );
        }
        self.record(event, now).await;
    }

    /// Writes a summary row for each throttled window that has ended with events folded
    /// into it (housekeeping calls this every minute).
    pub async fn flush(&self, now: DateTime<Utc>) {
        let ended: Vec<Folded> = {
            let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<String> = folded
                .iter()
                .filter(|(_, w)| w.until <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| folded.remove(&k))
                .filter(|w| w.more > 0)
                .collect()
        };
        for window in ended {
            let event = AuditEvent {
                detail: Some(format!("{} more like it in this window", window.more)),
                ..window.event
            };
            self.record(event, now).await;
        }
    }

    /// Appends an event. A failure to write is logged, not raised: the audited action
    /// already happened and its caller must learn how it went.
    pub async fn record(&self, event: AuditEvent, now: DateTime<Utc>) {
        let action = event.action;
        let row = AuditRow {
            id: Uuid::now_v7().to_string(),
            at: now.naive_utc(),
            actor: event.actor.to_string(),
            action: event.action.as_str().to_owned(),
            target: event.target,
            ip: event.ip,
            outcome: event.outcome.as_str().to_owned(),
            detail: event.detail,
        };
        if let Err(error) = self.db.run(move |conn| store::insert(conn, &row)).await {
            tracing::error!(%error, %action, "audit event could not be written");
        }
    }

    /// Runs an admin's call and records it with its outcome: one row per call, whatever
    /// happened, so every use case of the admin API is audited the same way.
    pub async fn admin<T, E>(
        &self,
        call: AdminCall<'_>,
        now: DateTime<Utc>,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let result = work.await;
        self.record_admin(call, result.is_ok(), now).await;
        result
    }

    /// Records an admin's call whose outcome is already known (a creation names its
    /// target only once it has one).
    pub async fn record_admin(&self, call: AdminCall<'_>, ok: bool, now: DateTime<Utc>) {
        let event = AuditEvent {
            actor: call.admin.actor().clone(),
            action: call.action,
            target: call.target,
            ip: call.admin.ip().map(str::to_owned),
            outcome: Outcome::of(ok),
            detail: call.detail,
        };
        self.record(event, now).await;
    }

    /// The use case of `GET /api/admin/audit` and of the console's audit page: a page of
    /// the events `filter` keeps, newest first, before the event `before`; the read
    /// itself is recorded first. Admins of `default` only; an actor longer than the
    /// documented bound is `Invalid`.
    pub async fn list(
        &self,
        admin: &Admin,
        before: Option<Uuid>,
        limit: i64,
        filter: AuditFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<AuditEntry>, Error> {
        filter.check()?;
        // The log is the whole deployment's (targets name users of every tenant).
        admin.require_default()?;
        self.record_admin(AdminCall::new(admin, Action::AuditList), true, now)
            .await;
        let rows = self
            .db
            .run(move |conn| {
                let before = before.map(|b| b.to_string());
                store::page(conn, before.as_deref(), limit, &filter.stored())
            })
            .await?;
        rows.into_iter().map(entry).collect()
    }
}

/// Which events a page of the log holds: every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this actor, as the log names it (`user:<id>`, `api_key:<id>`, ...).
    pub actor: Option<String>,
    /// This action.
    pub action: Option<Action>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// The longest actor a filter may name (the log's names are far shorter), as the API
/// documents.
const ACTOR_MAX_CHARS: usize = 200;

impl AuditFilter {
    /// `Invalid` for an actor longer than [`ACTOR_MAX_CHARS`].
    fn check(&self) -> Result<(), Error> {
        if self
            .actor
            .as_ref()
            .is_some_and(|a| a.chars().count() > ACTOR_MAX_CHARS)
        {
            return Err(Error::invalid(format!(
                "actor is longer than {ACTOR_MAX_CHARS} characters"
            )));
        }
        Ok(())
    }

    fn stored(&self) -> store::AuditFilter {
        store::AuditFilter {
            actor: self.actor.clone(),
            action: self.action.map(|a| a.as_str().to_owned()),
            since: self.since.map(|t| t.naive_utc()),
            until: self.until.map(|t| t.naive_utc()),
        }
    }
}

fn entry(row: AuditRow) -> Result<AuditEntry, Error> {
    let corrupt = |what: &str| Error::internal(format!("audit row {}: unknown {what}", row.id));
    Ok(AuditEntry {
        id: Uuid::parse_str(&row.id).map_err(|e| Error::from(StoreError::Other(Box::new(e))))?,
        at: row.at.and_utc(),
        action: Action::parse(&row.action).ok_or_else(|| corrupt("action"))?,
        outcome: Outcome::parse(&row.outcome).ok_or_else(|| corrupt("outcome"))?,
        actor: row.actor,
        target: row.target,
        ip: row.ip,
        detail: row.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_stored_names() {
        for action in [Action::Login, Action::RefreshReuse, Action::ApiKeyDisable] {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("nonsense"), None);
        assert_eq!(Actor::Operator.to_string(), "cli");
    }
}
