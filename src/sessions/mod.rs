//! Sessions: a login opens one with a refresh token; a refresh rotates it, with reuse
//! detection; logout and revocation end it.
//!
//! The rules a presented refresh token is answered by are in [`rules`], one pure
//! function that every path calls. A session is one row whatever its number of
//! rotations: it keeps its head's generation and issue time, and a refresh token is
//! (session, generation, MAC) ([`refresh_token`]), so the head and its predecessor can be
//! recomputed and nothing per token is stored. A rotation is one conditional update of
//! that row (the head's generation moves on only if it is still the one read), which is
//! what serializes concurrent refreshes of one session on every backend.

pub mod manage;
pub mod refresh_token;
pub mod rules;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use self::manage::{Device, Position, SessionInfo, SessionPage};
pub use self::refresh_token::{Presented, RefreshKey, RefreshToken, TokenId};
use self::rules::{Outcome, SessionState, Standing};
use crate::audit::{Action, Actor, Audit, AuditEvent, Outcome as AuditOutcome};
use crate::dpop::{self, Dpop, Jkt};
use crate::error::{Credential, Door, Error, Refusal, ScopeLimit};
use crate::metrics;
use crate::model::Lifetimes;
use crate::model::{Client, ClientId, ClientKind, GrantType};
use crate::model::{Scope, User};
use crate::revocation::{Recorded, Revocation, Revocations};
use crate::store::clients as client_store;
use crate::store::group::Group;
use crate::store::sessions::{self as store, HeadRotation, SessionRow};
use crate::store::users::UserRow;
use crate::store::{Db, DbConnection, StoreError, Writers, write_transaction};
use crate::tokens::access::{Grant, IssuedToken, TokenService, Verified};

pub use crate::revocation::Listed;

/// What login and refresh answer: a fresh access token and the refresh token that goes with it.
#[derive(Debug)]
pub struct TokenPair {
    /// The access token and its claims.
    pub access: IssuedToken,
    /// The refresh token to hand out.
    pub refresh_token: RefreshToken,
    /// When that refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// Session id (`sid`).
    pub session_id: Uuid,
    /// Whether the refresh token is handed out: not to a client without the
    /// `refresh_token` grant.
    pub refreshable: bool,
    /// A login's device proof for this device (see [`crate::identity::devices`]).
    pub device_proof: Option<String>,
    /// The DPoP key the access token is bound to (`token_type: DPoP`), if it is.
    pub jkt: Option<Jkt>,
}

/// A session opened inside a transaction, to be turned into a [`TokenPair`] after commit.
#[derive(Debug)]
pub struct Opened {
    /// Session id.
    pub session_id: Uuid,
    /// Its first refresh token.
    pub refresh_token: RefreshToken,
    /// When that token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// What a session is opened for.
#[derive(Debug)]
pub struct Opening<'a> {
    /// Its user.
    pub user_id: Uuid,
    /// The scopes granted.
    pub scopes: &'a [Scope],
    /// The client given at login, if any.
    pub client_id: Option<&'a str>,
    /// Where from.
    pub device: &'a Device,
    /// The DPoP key the session is bound to: it refreshes only with a proof by it.
    pub bound_to: Option<&'a Jkt>,
}

/// Opens a session inside the caller's transaction. Login does it in the transaction
/// that re-reads (and locks) the user, so no session outlives a change that ended them.
pub fn open(
    conn: &mut DbConnection,
    key: &RefreshKey,
    opening: Opening<'_>,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Opened, Error> {
    let session_id = Uuid::new_v4();
    let session_end = lifetimes.session_end(now);
    store::insert_session(
        conn,
        &SessionRow {
            id: session_id.to_string(),
            user_id: opening.user_id.to_string(),
            client_id: opening.client_id.map(str::to_owned),
            scope: Scope::join(opening.scopes),
            created_at: now.naive_utc(),
            expires_at: session_end.naive_utc(),
            revoked_at: None,
            revoked_reason: None,
            legacy_client: false,
            generation: 0,
            refreshed_at: now.naive_utc(),
            user_agent: opening.device.user_agent.clone(),
            ip: opening.device.ip.clone(),
            last_ip: opening.device.ip.clone(),
            dpop_jkt: opening.bound_to.map(|k| k.as_str().to_owned()),
        },
    )?;
    Ok(Opened {
        session_id,
        refresh_token: key.token(TokenId {
            session_id,
            generation: 0,
        }),
        refresh_expires_at: lifetimes.refresh_end(now, session_end),
    })
}

/// Revokes every live session of a user and cuts off every access token issued to them
/// up to now, inside the caller's transaction (so a change of the user and the end of
/// its sessions commit together). Returns the entries for the caller to record
/// ([`Revocations::record`] once per transaction, or [`Revocations::write`]).
pub fn revoke_user_in(
    conn: &mut DbConnection,
    user_id: Uuid,
    reason: &'static str,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, Error> {
    let revoked = store::revoke_user_sessions(conn, &user_id.to_string(), now.naive_utc(), reason)?;
    let mut entries: Vec<Listed> = revoked
        .iter()
        .map(|s| session_entry(s, lifetimes, now))
        .collect();
    // Tokens with iat before this second are cut off; one issued earlier in this same
    // second is caught by its session's entry above.
    entries.push((
        Revocation::User {
            sub: user_id.to_string(),
            cutoff: now.timestamp(),
        },
        lifetimes.revocation_end(now),
    ));
    Ok(entries)
}

/// Revokes every live session opened through a client (deleted or disabled), inside the
/// caller's transaction. Returns the entries for the caller to record.
pub fn revoke_client_in(
    conn: &mut DbConnection,
    client_id: &str,
    reason: &'static str,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, Error> {
    let revoked = store::revoke_client_sessions(conn, client_id, now.naive_utc(), reason)?;
    Ok(revoked
        .iter()
        .map(|s| session_entry(s, lifetimes, now))
        .collect())
}

/// Revokes every live session of a tenant's users (a disabled tenant), inside the
/// caller's transaction. Returns the entries for the caller to record: one per session,
/// so that each ending is told to the services that hold its connections.
pub fn revoke_tenant_in(
    conn: &mut DbConnection,
    tenant: &str,
    reason: &'static str,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, Error> {
    let revoked = store::revoke_tenant_sessions(conn, tenant, now.naive_utc(), reason)?;
    Ok(revoked
        .iter()
        .map(|s| session_entry(s, lifetimes, now))
        .collect())
}

/// What revocations ended, for the audit log: `session:<id>`, `jti:<id>`.
fn ended_targets(recorded: &Recorded) -> Vec<String> {
    recorded
        .entries
        .iter()
        .filter_map(|(entry, _)| match entry {
            Revocation::Session { sid } => Some(format!("session:{sid}")),
            Revocation::Token { jti } => Some(format!("jti:{jti}")),
            _ => None,
        })
        .collect()
}

fn session_entry(session: &SessionRow, lifetimes: &Lifetimes, now: DateTime<Utc>) -> Listed {
    (
        Revocation::Session {
            sid: session.id.clone(),
        },
        lifetimes.session_revocation_end(session.expires_at.and_utc(), now),
    )
}

/// Who presents a refresh token.
#[derive(Debug, Clone)]
pub enum RefreshClient {
    /// `/api/refresh-token`: no client authentication. Sessions opened for a
    /// confidential client are refused here; they rotate at the token endpoint.
    FirstParty,
    /// The token endpoint, by an authenticated client: only that client's sessions.
    Client(ClientId),
}

/// What [`Sessions`] is built from.
pub struct SessionsParts {
    /// The database.
    pub db: Db,
    /// The revocation list.
    pub revocations: Arc<Revocations>,
    /// Access tokens.
    pub tokens: Arc<TokenService>,
    /// DPoP proofs.
    pub dpop: Arc<Dpop>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// The key refresh tokens are issued with.
    pub key: RefreshKey,
}

/// Refresh rotation, logout and token revocation.
pub struct Sessions {
    db: Db,
    revocations: Arc<Revocations>,
    tokens: Arc<TokenService>,
    dpop: Arc<Dpop>,
    audit: Arc<Audit>,
    lifetimes: Lifetimes,
    key: RefreshKey,
    rotations: Rotations,
}

/// How refreshes reach the database: grouped with those of concurrent requests (see
/// [`crate::store::group`]), each still answered only once its own outcome has committed.
enum Rotations {
    /// The head rotations of first-party sessions of a group in one statement (the
    /// `Rotate` row only), the others decided on what it read when that writes nothing;
    /// anything else decided by [`refresh_in`] in a transaction of
    /// its own.
    Statements(Arc<Group<HeadRotation, Option<store::Grouped>>>),
    /// A group in one write transaction (one commit), each refresh decided by
    /// [`refresh_in`].
    Transactions(Arc<Group<Refresh, Result<Answer, Error>>>),
}

/// At most this many refreshes run together: a few milliseconds of database work.
const ROTATION_GROUP: usize = 64;

/// A presented token once its form and MAC are checked: what it claims to be.
#[derive(Debug, Clone)]
enum Claimed {
    /// A token of this release, its MAC verified.
    Id(TokenId),
    /// A token of the release before, by hash: looked up in the database.
    Legacy(String),
}

impl Claimed {
    /// The session and generation the token stands for, if it stands for any.
    fn resolve(&self, conn: &mut DbConnection) -> Result<Option<TokenId>, Error> {
        match self {
            Self::Id(id) => Ok(Some(*id)),
            Self::Legacy(hash) => match store::find_legacy(conn, hash)? {
                None => Ok(None),
                Some((session, generation)) => {
                    Ok(Uuid::parse_str(&session).ok().map(|session_id| TokenId {
                        session_id,
                        generation,
                    }))
                }
            },
        }
    }
}

/// One refresh's inputs.
struct Refresh {
    claimed: Claimed,
    now: DateTime<Utc>,
    lifetimes: Lifetimes,
    client: RefreshClient,
    /// The client address: the session's `last_ip` once rotated.
    ip: Option<String>,
    /// The key of the request's DPoP proof, if it sent a valid one.
    jkt: Option<Jkt>,
}

/// What [`refresh_in`] found.
enum Answer {
    /// Answered with the session's head: rotated now (`rotated`), or as it was.
    Head {
        /// The session, at its head.
        session: SessionRow,
        user: User,
        /// The scopes of the session's client now, if it has one.
        client_scopes: Option<Vec<Scope>>,
        rotated: bool,
    },
    /// Reuse: the session is revoked (committed with the caller's transaction).
    Reused {
        session: SessionRow,
        recorded: Recorded,
    },
}

/// Runs a group of refreshes in one transaction (a database with one writer): see [`Rotations::Transactions`].
fn refresh_group(
    conn: &mut DbConnection,
    group: Vec<Refresh>,
) -> Result<Vec<Result<Answer, Error>>, StoreError> {
    write_transaction(conn, |conn| {
        Ok(group.iter().map(|job| refresh_in(conn, job)).collect())
    })
}

/// Runs a group of head rotations in one statement (a database with many writers): see [`Rotations::Statements`].
fn rotate_heads(
    conn: &mut DbConnection,
    group: Vec<HeadRotation>,
) -> Result<Vec<Option<store::Grouped>>, StoreError> {
    store::rotate_in_one_statement(conn, &group)
}

/// A refresh (in the caller's transaction, if any): reads the session, asks
/// [`rules::decide`], and does what it says. A rotation is one conditional update; if
/// another request rotated the session between the read and the update, the refresh is
/// decided again on what that left (the presented token is then the predecessor). A
/// refusal writes nothing; a detected reuse revokes the session and records it in a
/// transaction (a savepoint inside the caller's).
fn refresh_in(conn: &mut DbConnection, job: &Refresh) -> Result<Answer, Error> {
    let refused = |refusal| Err(Error::refused(Credential::RefreshToken, refusal));
    let Some(id) = job.claimed.resolve(conn)? else {
        return refused(Refusal::Invalid);
    };
    let session_id = id.session_id.to_string();
    // After a lost race the session's generation has moved past the presented one, so
    // the second decision is never `Rotate`: two rounds always suffice.
    for _ in 0..2 {
        let Some((session, user, tenant_enabled)) = store::find_for_refresh(conn, &session_id)?
        else {
            return refused(Refusal::Invalid);
        };
        let (standing, client_scopes) = standing(
            conn,
            &session,
            user.enabled && tenant_enabled,
            &job.client,
            job.jkt.as_ref(),
        )?;
        match rules::decide(
            id.generation,
            &state_of(&session, standing),
            job.now,
            &job.lifetimes,
        ) {
            Outcome::Rotate => {
                let now = job.now.naive_utc();
                let ip = job.ip.as_deref();
                if store::advance(conn, &session_id, session.generation, now, ip)? {
                    let rotated = SessionRow {
                        generation: session.generation + 1,
                        refreshed_at: now,
                        last_ip: job.ip.clone().or(session.last_ip),
                        ..session
                    };
                    return head(rotated, &user, client_scopes, true);
                }
            }
            Outcome::Head => {
                return head(session, &user, client_scopes, false);
            }
            Outcome::Reuse => {
                return diesel::Connection::transaction(conn, |conn| {
                    let entries =
                        revoke_session_in(conn, &session_id, "reuse", &job.lifetimes, job.now)?;
                    if entries.is_empty() {
                        // Another request revoked it first.
                        return refused(Refusal::Revoked);
                    }
                    let recorded = Revocations::record(conn, entries, job.now)?;
                    Ok(Answer::Reused { session, recorded })
                });
            }
            Outcome::Refuse(refusal) => return refused(refusal),
        }
    }
    Err(Error::internal("a refresh lost two races for one session"))
}

/// Whether the presenter may refresh `session` and whether it is still live; with the
/// scopes of its client now, if it has one. A session bound to a DPoP key is not the
/// presenter's without a proof by that key (`jkt`): as if the token were unknown, so a
/// copied refresh token neither rotates nor counts as reuse.
fn standing(
    conn: &mut DbConnection,
    session: &SessionRow,
    owner_enabled: bool,
    presenter: &RefreshClient,
    jkt: Option<&Jkt>,
) -> Result<(Standing, Option<Vec<Scope>>), Error> {
    let bound = match standing_without_client(session, owner_enabled, presenter, jkt) {
        Ok(standing) => return Ok((standing, None)),
        Err(bound) => bound,
    };
    let row = client_store::find(conn, bound)?;
    let Some(bound) = row.as_ref().map(Client::from_row).transpose()? else {
        // The session's client was deleted: the session went with it.
        return Ok((Standing::Ended, None));
    };
    let allowed = match presenter {
        // Without client authentication, only a public client's sessions.
        RefreshClient::FirstParty => bound.kind == ClientKind::Public,
        RefreshClient::Client(id) => &bound.client_id == id,
    };
    if !allowed || !bound.allows(GrantType::RefreshToken) {
        Ok((Standing::NotYours, None))
    } else if !bound.enabled {
        Ok((Standing::Ended, None))
    } else {
        Ok((live(session, owner_enabled), Some(bound.scopes)))
    }
}

/// [`standing`] where the session's registered client does not count (first-party and
/// legacy sessions, a DPoP binding not met); else `Err` with the client to read.
fn standing_without_client<'a>(
    session: &'a SessionRow,
    owner_enabled: bool,
    presenter: &RefreshClient,
    jkt: Option<&Jkt>,
) -> Result<Standing, &'a str> {
    if let Some(bound) = &session.dpop_jkt
        && jkt.map(Jkt::as_str) != Some(bound.as_str())
    {
        return Ok(Standing::NotYours);
    }
    let live = live(session, owner_enabled);
    match (&session.client_id, presenter) {
        (None, RefreshClient::FirstParty) => Ok(live),
        (Some(_), RefreshClient::FirstParty) if session.legacy_client => Ok(live),
        (None, RefreshClient::Client(_)) => Ok(Standing::NotYours),
        (Some(_), RefreshClient::Client(_)) if session.legacy_client => Ok(Standing::NotYours),
        (Some(bound), _) => Err(bound),
    }
}

/// Revoked, or its user or tenant disabled: `Ended`; else `Live`.
fn live(session: &SessionRow, owner_enabled: bool) -> Standing {
    if session.revoked_at.is_some() || !owner_enabled {
        Standing::Ended
    } else {
        Standing::Live
    }
}

/// An answer with the session's head (rotated now or as it was) and its user.
fn head(
    session: SessionRow,
    user: &UserRow,
    client_scopes: Option<Vec<Scope>>,
    rotated: bool,
) -> Result<Answer, Error> {
    Ok(Answer::Head {
        session,
        user: User::from_row(user)?,
        client_scopes,
        rotated,
    })
}

/// A session as [`rules::decide`] sees it.
fn state_of(session: &SessionRow, standing: Standing) -> SessionState {
    SessionState {
        generation: session.generation,
        refreshed_at: session.refreshed_at.and_utc(),
        expires_at: session.expires_at.and_utc(),
        standing,
    }
}

/// A refresh decided on the session the grouped statement read and did not rotate, if
/// the decision writes nothing: `Head` (a young head, a predecessor within the leeway)
/// or a refusal, answered from the statement's snapshot (a read-only outcome as of the
/// moment it began, inside the request). `None` if it writes (a rotation the statement
/// could not do, a reuse) or needs the session's client: then [`refresh_in`] decides it
/// again on a fresh read.
fn decide_read(
    job: &Refresh,
    presented: i64,
    session: SessionRow,
    user: UserRow,
    tenant_enabled: bool,
) -> Option<Result<Answer, Error>> {
    let owner_enabled = user.enabled && tenant_enabled;
    let standing =
        standing_without_client(&session, owner_enabled, &job.client, job.jkt.as_ref()).ok()?;
    match rules::decide(
        presented,
        &state_of(&session, standing),
        job.now,
        &job.lifetimes,
    ) {
        Outcome::Head => Some(head(session, &user, None, false)),
        Outcome::Refuse(refusal) => Some(Err(Error::refused(Credential::RefreshToken, refusal))),
        Outcome::Rotate | Outcome::Reuse => None,
    }
}

impl Sessions {
    /// The service.
    pub fn new(parts: SessionsParts) -> Self {
        let SessionsParts {
            db,
            revocations,
            tokens,
            dpop,
            audit,
            lifetimes,
            key,
        } = parts;
        let rotations = match db.writers() {
            Writers::Many => {
                Rotations::Statements(Group::new(db.clone(), ROTATION_GROUP, rotate_heads))
            }
            Writers::One => {
                Rotations::Transactions(Group::new(db.clone(), ROTATION_GROUP, refresh_group))
            }
        };
        Self {
            db,
            revocations,
            tokens,
            dpop,
            audit,
            lifetimes,
            key,
            rotations,
        }
    }

    /// The key refresh tokens are issued with (for [`open`]).
    pub fn refresh_key(&self) -> &RefreshKey {
        &self.key
    }

    /// The checks of DPoP proofs (for the doors that open sessions).
    pub fn dpop(&self) -> &Dpop {
        &self.dpop
    }

    /// What a presented token claims to be; `None` for a forged one (bad MAC).
    fn claim(&self, presented: &Presented) -> Option<Claimed> {
        match presented {
            Presented::Current { id, tag } => self.key.verify(*id, tag).map(Claimed::Id),
            Presented::Legacy { hash } => Some(Claimed::Legacy(hash.clone())),
        }
    }

    /// Signs the access token for an opened or rotated session (bound to `jkt`, if given).
    pub fn pair(
        &self,
        user: &User,
        scopes: &[Scope],
        client_id: Option<&str>,
        opened: Opened,
        jkt: Option<Jkt>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let access = self.tokens.issue(
            &Grant {
                user,
                scopes,
                sid: opened.session_id,
                client_id,
                jkt: jkt.as_ref(),
            },
            now,
        )?;
        Ok(TokenPair {
            access,
            refresh_token: opened.refresh_token,
            refresh_expires_at: opened.refresh_expires_at,
            session_id: opened.session_id,
            refreshable: true,
            device_proof: None,
            jkt,
        })
    }

    /// The use case of `/api/refresh-token` and of the token endpoint's refresh grant:
    /// answers a presented refresh token by the rules of [`rules`]. A reuse revokes the
    /// session, is audited and answers `REFRESH_TOKEN_REUSED`. `narrow` asks for fewer
    /// scopes than the session has (RFC 6749 section 6); more is `ScopeNotAllowed`. With
    /// a DPoP `proof` the access token is bound to its key; a session bound to a key
    /// refreshes only with a proof by it.
    pub async fn refresh(
        &self,
        presented: Presented,
        client: RefreshClient,
        narrow: Option<Vec<Scope>>,
        ip: Option<String>,
        proof: Option<&dpop::Presented>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        // A flawed proof is refused before the session is read: it changes nothing.
        let jkt = match proof {
            Some(proof) => Some(
                self.dpop
                    .check(proof, Door::TokenEndpoint, None, now)
                    .await?,
            ),
            None => None,
        };
        let answer = match self.claim(&presented) {
            None => Err(Error::refused(Credential::RefreshToken, Refusal::Invalid)),
            Some(claimed) => {
                let job = Refresh {
                    claimed,
                    now,
                    lifetimes: self.lifetimes,
                    client,
                    ip: ip.clone(),
                    jkt: jkt.clone(),
                };
                self.run(job).await
            }
        };
        let answer = answer.inspect_err(|e| {
            if let Error::Unauthenticated { refusal, .. } = e {
                let outcome = match refusal {
                    Refusal::Expired => "expired",
                    Refusal::Revoked => "revoked",
                    _ => "invalid",
                };
                metrics::count(metrics::REFRESHES, outcome);
            }
        })?;
        match answer {
            Answer::Head {
                session,
                user,
                client_scopes,
                rotated,
            } => {
                metrics::count(
                    metrics::REFRESHES,
                    if rotated { "rotated" } else { "converged" },
                );
                self.tokens.ready(now).await?;
                self.head_pair(&session, &user, client_scopes, narrow, jkt, now)
            }
            Answer::Reused { session, recorded } => {
                Err(self.reused(&session, &recorded, ip, now).await)
            }
        }
    }

    /// The pair of a session's head (rotated, or converged on): its scopes as they are
    /// now, narrowed to what was asked. Refreshes never widen a session: scopes the user
    /// (or its client) lost since login are dropped.
    fn head_pair(
        &self,
        session: &SessionRow,
        user: &User,
        client_scopes: Option<Vec<Scope>>,
        narrow: Option<Vec<Scope>>,
        jkt: Option<Jkt>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let kept: Vec<Scope> = Scope::parse_space_separated(&session.scope)?
            .into_iter()
            .filter(|s| user.scopes.contains(s))
            .filter(|s| client_scopes.as_ref().is_none_or(|c| c.contains(s)))
            .collect();
        let scopes = Scope::narrow(kept, narrow, ScopeLimit::Grant)?;
        let session_id = Uuid::parse_str(&session.id).map_err(Error::internal)?;
        let opened = Opened {
            session_id,
            refresh_token: self.key.token(TokenId {
                session_id,
                generation: session.generation,
            }),
            refresh_expires_at: self
                .lifetimes
                .refresh_end(session.refreshed_at.and_utc(), session.expires_at.and_utc()),
        };
        self.pair(
            user,
            &scopes,
            session.client_id.as_deref(),
            opened,
            jkt,
            now,
        )
    }

    /// A detected reuse: its session was revoked in the refresh's transaction; audited,
    /// published to every instance, then answered.
    async fn reused(
        &self,
        session: &SessionRow,
        recorded: &Recorded,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Error {
        metrics::count(metrics::REFRESHES, "reused");
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
        let actor = Uuid::parse_str(&session.user_id).map_or(Actor::Anonymous, Actor::User);
        let event = AuditEvent {
            actor,
            action: Action::RefreshReuse,
            target: Some(format!("session:{}", session.id)),
            ip,
            outcome: AuditOutcome::Failure,
            detail: None,
        };
        self.audit.record(event, now).await;
        self.revocations.publish(recorded, now).await;
        Error::refused(Credential::RefreshToken, Refusal::Reused)
    }

    /// Runs one refresh on this backend's path.
    async fn run(&self, job: Refresh) -> Result<Answer, Error> {
        match &self.rotations {
            Rotations::Transactions(group) => {
                group.run(job).await.map_err(Error::from).and_then(|a| a)
            }
            Rotations::Statements(group) => {
                let (Claimed::Id(id), RefreshClient::FirstParty) = (&job.claimed, &job.client)
                else {
                    return self.db.run(move |conn| refresh_in(conn, &job)).await;
                };
                let window = rules::rotation_window(job.now, &job.lifetimes);
                let grouped = group
                    .run(HeadRotation {
                        session_id: id.session_id.to_string(),
                        generation: id.generation,
                        now: job.now.naive_utc(),
                        idle_after: window.idle_after.naive_utc(),
                        rotate_until: window.rotate_until.naive_utc(),
                        ip: job.ip.clone(),
                        jkt: job.jkt.as_ref().map(|k| k.as_str().to_owned()),
                    })
                    .await?;
                let answered = match grouped {
                    Some(store::Grouped::Rotated { session, user }) => {
                        Some(head(session, &user, None, true))
                    }
                    Some(store::Grouped::Read {
                        session,
                        user,
                        tenant_enabled,
                    }) => decide_read(&job, id.generation, session, user, tenant_enabled),
                    None => None,
                };
                match answered {
                    Some(answer) => answer,
                    // No transaction around it: a rotation is one conditional statement,
                    // a reuse opens its own, and an answer with the head only reads.
                    None => self.db.run(move |conn| refresh_in(conn, &job)).await,
                }
            }
        }
    }

    /// The use case of `/api/logout`: ends the session of the refresh token and the
    /// presented access token (and its session). Unknown or invalid tokens are no error.
    pub async fn logout(
        &self,
        refresh: Option<Presented>,
        access: Option<&str>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut ended = Vec::new();
        if let Some(token) = refresh {
            let recorded = self.revoke_refresh(&token, "logout", now).await?;
            ended.extend(ended_targets(&recorded));
        }
        let claims = access.and_then(|t| self.tokens.verify(t, now).ok().map(|v| v.claims));
        if let Some(claims) = &claims {
            let recorded = self
                .revoke_access(&claims.jti, claims.exp, claims.sid.as_deref(), now)
                .await?;
            ended.extend(ended_targets(&recorded));
        }
        if !ended.is_empty() {
            let actor = claims
                .and_then(|c| Uuid::parse_str(&c.sub).ok())
                .map_or(Actor::Anonymous, Actor::User);
            self.audit_ended(actor, Action::Logout, ended, ip, now)
                .await;
        }
        Ok(())
    }

    /// One audit row for what a logout or a revocation ended.
    async fn audit_ended(
        &self,
        actor: Actor,
        action: Action,
        ended: Vec<String>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) {
        let event = AuditEvent {
            actor,
            action,
            target: ended.first().cloned(),
            ip,
            outcome: AuditOutcome::Success,
            detail: (ended.len() > 1).then(|| ended.join(" ")),
        };
        self.audit.record(event, now).await;
    }

    /// The use case of RFC 7009 revocation: an access token is listed until its `exp`, a
    /// refresh token ends its session. Unknown tokens are no error.
    pub async fn revoke_token(
        &self,
        token: &str,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        // The two forms cannot be confused: refresh tokens are `tmr_` and base64url (or,
        // from earlier releases, 43 base64url characters), access tokens are JWTs with
        // dots. A hint (RFC 7009 section 2.1) is not needed.
        let recorded = if let Some(refresh) = Presented::parse(token) {
            self.revoke_refresh(&refresh, "revoke", now).await?
        } else if let Ok(Verified { claims, .. }) = self.tokens.verify_any_audience(token, now) {
            self.revoke_access(&claims.jti, claims.exp, None, now)
                .await?
        } else {
            Recorded::default()
        };
        let ended = ended_targets(&recorded);
        if !ended.is_empty() {
            self.audit_ended(Actor::Anonymous, Action::TokenRevoke, ended, ip, now)
                .await;
        }
        Ok(())
    }

    /// Ends the session of a refresh token, recorded and published
    /// ([`Revocations::write`]); nothing for an unknown one.
    async fn revoke_refresh(
        &self,
        token: &Presented,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Error> {
        let Some(claimed) = self.claim(token) else {
            return Ok(Recorded::default());
        };
        let lifetimes = self.lifetimes;
        self.revocations
            .write(now, move |conn| {
                let Some(id) = claimed.resolve(conn)? else {
                    return Ok(Vec::new());
                };
                let session_id = id.session_id.to_string();
                revoke_session_in(conn, &session_id, reason, &lifetimes, now)
            })
            .await
    }

    /// Lists an access token until its end (and ends its session, given one), recorded
    /// and published ([`Revocations::write`]).
    async fn revoke_access(
        &self,
        jti: &str,
        exp: i64,
        sid: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Error> {
        let token_entry = (
            Revocation::Token {
                jti: jti.to_owned(),
            },
            self.lifetimes.token_revocation_end(exp, now),
        );
        let sid = sid.map(str::to_owned);
        let lifetimes = self.lifetimes;
        self.revocations
            .write(now, move |conn| {
                let mut entries = vec![token_entry.clone()];
                if let Some(sid) = &sid {
                    entries.extend(revoke_session_in(conn, sid, "logout", &lifetimes, now)?);
                }
                Ok(entries)
            })
            .await
    }

    /// Housekeeping: deletes ended sessions (their legacy refresh tokens go with
    /// them). Returns the number of sessions deleted.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let naive_now = now.naive_utc();
        self.db
            .run(move |conn| Ok(store::purge_ended(conn, naive_now)?))
            .await
    }
}

/// Revokes one session inside the caller's transaction; nothing if it is unknown or
/// already revoked. Returns the entry for the caller to record.
fn revoke_session_in(
    conn: &mut DbConnection,
    session_id: &str,
    reason: &'static str,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, Error> {
    let Some(session) = store::revoke_session(conn, session_id, now.naive_utc(), reason)? else {
        return Ok(Vec::new());
    };
    Ok(vec![session_entry(&session, lifetimes, now)])
}
