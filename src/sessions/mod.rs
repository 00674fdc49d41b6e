//! Sessions: a login opens one with a refresh token; every refresh rotates the token in
//! one transaction, with reuse detection; logout and revocation end it.
//!
//! Rotation rules (`/api/refresh-token`), for the session's current token (its *head*)
//! and a spent token P:
//! - the head is spent and a successor becomes the head, once, however many requests
//!   race (one conditional update decides);
//! - P is accepted, and answered with the head, when the head was issued no more than the
//!   reuse leeway after P was spent. So the head's immediate predecessor is accepted at
//!   any time (a client that lost a response, or a browser whose cookie jar a late
//!   response set back one step, recovers), and every token that racing tabs spent within
//!   the leeway of one another leads to the head, whatever order their responses arrive in;
//! - any other spent token is reuse: the whole session is revoked. A stolen token is
//!   therefore detected once the session has rotated past it again more than a leeway
//!   after it was spent: at most one rotation later than strict rotation would.
//!
//! Only hashes of refresh tokens are stored. Each spent token keeps its successor sealed
//! under a key derived from itself, so only the holder of an accepted token can walk the
//! chain forward to the head; seals that can no longer be needed are wiped at rotation.

pub mod refresh_token;

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

pub use self::refresh_token::RefreshToken;
use crate::audit::{Action, Actor, Audit, AuditEvent, Outcome};
use crate::client::{Client, ClientId, ClientKind};
use crate::error::{Credential, Error, Refusal};
use crate::lifetimes::{Lifetimes, delta};
use crate::metrics;
use crate::revocation::{Recorded, Revocation, Revocations};
use crate::store::clients as client_store;
use crate::store::group::Group;
use crate::store::sessions::CommonRotation;
use crate::store::sessions::{self as store, RefreshRow, SessionRow};
use crate::store::tenants as tenant_store;
use crate::store::users::{self as user_store};
use crate::store::{Db, DbConnection, StoreError, write_transaction};
use crate::tokens::access::{Grant, IssuedToken, TokenService};
use crate::user::{Scope, User};

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

/// Opens a session inside the caller's transaction. Login does it in the transaction
/// that re-reads (and locks) the user, so no session outlives a change that ended them.
pub fn open(
    conn: &mut DbConnection,
    user_id: Uuid,
    scopes: &[Scope],
    client_id: Option<&str>,
    lifetimes: &Lifetimes,
    now: DateTime<Utc>,
) -> Result<Opened, Error> {
    let session_id = Uuid::new_v4();
    let token = RefreshToken::generate().map_err(|_| Error::internal("random generator failed"))?;
    let session_end = lifetimes.session_end(now);
    let refresh_expires_at = lifetimes.refresh_end(now, session_end);
    store::insert_session(
        conn,
        &SessionRow {
            id: session_id.to_string(),
            user_id: user_id.to_string(),
            client_id: client_id.map(str::to_owned),
            scope: Scope::join(scopes),
            created_at: now.naive_utc(),
            expires_at: session_end.naive_utc(),
            revoked_at: None,
            revoked_reason: None,
            legacy_client: false,
        },
    )?;
    store::insert_refresh(
        conn,
        &RefreshRow {
            token_hash: token.hash(),
            session_id: session_id.to_string(),
            generation: 0,
            created_at: now.naive_utc(),
            expires_at: refresh_expires_at.naive_utc(),
            spent_at: None,
            successor_sealed: None,
        },
    )?;
    Ok(Opened {
        session_id,
        refresh_token: token,
        refresh_expires_at,
    })
}

/// Revokes every live session of a user and cuts off every access token issued to them
/// up to now, inside the caller's transaction (so a change of the user and the end of
/// its sessions commit together). Returns the entries for the caller to record
/// ([`Revocations::record`], once per transaction).
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

/// Refresh rotation, logout and token revocation.
pub struct Sessions {
    db: Db,
    revocations: Arc<Revocations>,
    tokens: Arc<TokenService>,
    audit: Arc<Audit>,
    lifetimes: Lifetimes,
    rotations: Rotations,
}

/// How rotations reach the database: grouped with those of concurrent requests (see
/// [`crate::store::group`]), each still answered only once its own outcome has committed.
enum Rotations {
    /// The common rotations of a group in one statement; any other (a racer, reuse,
    /// convergence, a refusal, a client's session) in the general transaction of its own.
    Postgres(Arc<Group<CommonRotation, Option<store::Rotated>>>),
    /// A group in one write transaction (one commit), each rotation in a savepoint: a
    /// refusal rolls back its own writes only, a detected reuse commits its revocation.
    Sqlite(Arc<Group<Rotate, Result<Rotation, Error>>>),
}

/// At most this many rotations run together: a few milliseconds of database work.
const ROTATION_GROUP: usize = 64;

/// One rotation's inputs, for the general transaction.
struct Rotate {
    presented: RefreshToken,
    successor: RefreshToken,
    sealed: Vec<u8>,
    now: DateTime<Utc>,
    lifetimes: Lifetimes,
    client: RefreshClient,
}

/// Runs a group of rotations on SQLite: see [`Rotations::Sqlite`]. The common case
/// first ([`store::rotate_common_in_transaction`]); anything else in a savepoint.
fn rotate_group(
    conn: &mut DbConnection,
    group: Vec<Rotate>,
) -> Result<Vec<Result<Rotation, Error>>, StoreError> {
    write_transaction(conn, |conn| {
        let mut answers = Vec::with_capacity(group.len());
        for r in group {
            if let RefreshClient::FirstParty = r.client
                && let Some(rotated) = store::rotate_common_in_transaction(conn, &r.common())?
            {
                answers.push(rotated.into_rotation(r.successor));
                continue;
            }
            answers.push(diesel::Connection::transaction(conn, |conn| {
                r.general(conn)
            }));
        }
        Ok(answers)
    })
}

impl Rotate {
    /// The general transaction, in the caller's transaction or savepoint.
    fn general(self, conn: &mut DbConnection) -> Result<Rotation, Error> {
        rotate(
            conn,
            &self.presented,
            self.successor,
            &self.sealed,
            self.now,
            &self.lifetimes,
            &self.client,
        )
    }

    /// The inputs of the common case.
    fn common(&self) -> CommonRotation {
        CommonRotation {
            token_hash: self.presented.hash(),
            now: self.now.naive_utc(),
            sealed: self.sealed.clone(),
            successor_hash: self.successor.hash(),
            successor_expires_at: (self.now + delta(self.lifetimes.refresh_ttl)).naive_utc(),
            wipe_before: self.now.naive_utc() - delta(self.lifetimes.reuse_leeway),
        }
    }
}

impl store::Rotated {
    /// The common case's outcome, with the successor it stored.
    fn into_rotation(self, successor: RefreshToken) -> Result<Rotation, Error> {
        Ok(Rotation::Rotated {
            user: User::from_row(&self.user)?,
            session: self.session,
            token: successor,
            expires_at: self.expires_at,
            client_scopes: None,
            converged: false,
        })
    }
}

/// Runs a group of common rotations on PostgreSQL: see [`Rotations::Postgres`].
fn rotate_common(
    conn: &mut DbConnection,
    group: Vec<CommonRotation>,
) -> Result<Vec<Option<store::Rotated>>, StoreError> {
    match conn {
        DbConnection::Postgres(pg) => store::rotate_in_one_statement(pg, &group),
        DbConnection::Sqlite(_) => Ok(group.iter().map(|_| None).collect()),
    }
}

enum Rotation {
    Rotated {
        session: SessionRow,
        user: User,
        token: RefreshToken,
        expires_at: NaiveDateTime,
        /// The scopes of the session's client now, if it has one.
        client_scopes: Option<Vec<Scope>>,
        /// A spent token answered with the session's current one (no new token).
        converged: bool,
    },
    Reused {
        session: SessionRow,
        recorded: Recorded,
    },
}

impl Sessions {
    /// The service.
    pub fn new(
        db: Db,
        revocations: Arc<Revocations>,
        tokens: Arc<TokenService>,
        audit: Arc<Audit>,
        lifetimes: Lifetimes,
    ) -> Self {
        let rotations = match db.backend() {
            "postgres" => {
                Rotations::Postgres(Group::new(db.clone(), ROTATION_GROUP, rotate_common))
            }
            _ => Rotations::Sqlite(Group::new(db.clone(), ROTATION_GROUP, rotate_group)),
        };
        Self {
            db,
            revocations,
            tokens,
            audit,
            lifetimes,
            rotations,
        }
    }

    /// Signs the access token for an opened or rotated session.
    pub fn pair(
        &self,
        user: &User,
        scopes: &[Scope],
        client_id: Option<&str>,
        opened: Opened,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let access = self.tokens.issue(
            &Grant {
                user,
                scopes,
                sid: opened.session_id,
                client_id,
            },
            now,
        )?;
        Ok(TokenPair {
            access,
            refresh_token: opened.refresh_token,
            refresh_expires_at: opened.refresh_expires_at,
            session_id: opened.session_id,
        })
    }

    /// The use case of `/api/refresh-token` and of the token endpoint's refresh grant:
    /// rotates a refresh token (see the module doc). A reuse revokes the session, is
    /// audited and answers `REFRESH_TOKEN_REUSED`. `narrow` asks for fewer scopes than the
    /// session has (RFC 6749 section 6); more is `ScopeNotAllowed`.
    pub async fn refresh(
        &self,
        presented: RefreshToken,
        client: RefreshClient,
        narrow: Option<Vec<Scope>>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let successor =
            RefreshToken::generate().map_err(|_| Error::internal("random generator failed"))?;
        let sealed = presented
            .seal_successor(&successor)
            .map_err(|_| Error::internal("sealing the successor failed"))?;
        let job = Rotate {
            presented,
            successor,
            sealed,
            now,
            lifetimes: self.lifetimes,
            client,
        };
        let rotation = match &self.rotations {
            Rotations::Sqlite(group) => group
                .run(job)
                .await
                .map_err(Error::from)
                .and_then(|rotation| rotation),
            Rotations::Postgres(group) => {
                let common = match job.client {
                    RefreshClient::FirstParty => group.run(job.common()).await?,
                    RefreshClient::Client(_) => None,
                };
                match common {
                    Some(rotated) => rotated.into_rotation(job.successor),
                    None => {
                        self.db
                            .run(move |conn| write_transaction(conn, |conn| job.general(conn)))
                            .await
                    }
                }
            }
        };
        let rotation = rotation.inspect_err(|e| {
            if let Error::Unauthenticated { refusal, .. } = e {
                let outcome = match refusal {
                    Refusal::Expired => "expired",
                    Refusal::Revoked => "revoked",
                    _ => "invalid",
                };
                metrics::count(metrics::REFRESHES, outcome);
            }
        })?;
        match rotation {
            Rotation::Rotated {
                session,
                user,
                token,
                expires_at,
                client_scopes,
                converged,
            } => {
                metrics::count(
                    metrics::REFRESHES,
                    if converged { "converged" } else { "rotated" },
                );
                // Refreshes never widen a session: scopes the user (or its client) lost
                // since login are dropped.
                let mut scopes: Vec<Scope> = Scope::parse_space_separated(&session.scope)?
                    .into_iter()
                    .filter(|s| user.scopes.contains(s))
                    .filter(|s| client_scopes.as_ref().is_none_or(|c| c.contains(s)))
                    .collect();
                if let Some(narrow) = narrow {
                    if narrow.iter().any(|s| !scopes.contains(s)) {
                        return Err(Error::ScopeNotAllowed);
                    }
                    scopes = narrow;
                }
                let opened = Opened {
                    session_id: Uuid::parse_str(&session.id).map_err(Error::internal)?,
                    refresh_token: token,
                    refresh_expires_at: expires_at.and_utc(),
                };
                self.pair(&user, &scopes, session.client_id.as_deref(), opened, now)
            }
            Rotation::Reused { session, recorded } => {
                metrics::count(metrics::REFRESHES, "reused");
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
                let actor = Uuid::parse_str(&session.user_id).map_or(Actor::Anonymous, Actor::User);
                let event = AuditEvent {
                    actor,
                    action: Action::RefreshReuse,
                    target: Some(format!("session:{}", session.id)),
                    ip,
                    outcome: Outcome::Failure,
                    detail: None,
                };
                self.audit.record(event, now).await;
                self.publish(&recorded, now).await;
                Err(Error::refused(Credential::RefreshToken, Refusal::Reused))
            }
        }
    }

    /// The use case of `/api/logout`: ends the session of the refresh token and the
    /// presented access token (and its session). Unknown or invalid tokens are no error.
    pub async fn logout(
        &self,
        refresh: Option<RefreshToken>,
        access: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if let Some(token) = refresh {
            let recorded = self.revoke_refresh_in_db(&token, "logout", now).await?;
            self.publish(&recorded, now).await;
        }
        if let Some(claims) = access.and_then(|t| self.tokens.verify(t, now).ok()) {
            let recorded = self
                .revoke_access_in_db(&claims.jti, claims.exp, claims.sid.as_deref(), now)
                .await?;
            self.publish(&recorded, now).await;
        }
        Ok(())
    }

    /// The use case of RFC 7009 revocation: an access token is listed until its `exp`, a
    /// refresh token ends its session. Unknown tokens are no error.
    pub async fn revoke_token(&self, token: &str, now: DateTime<Utc>) -> Result<(), Error> {
        // The two forms cannot be confused: refresh tokens are 43 base64url characters,
        // access tokens are JWTs with dots. A hint (RFC 7009 section 2.1) is not needed.
        let recorded = if let Some(refresh) = RefreshToken::parse(token) {
            self.revoke_refresh_in_db(&refresh, "revoke", now).await?
        } else if let Ok(claims) = self.tokens.verify(token, now) {
            self.revoke_access_in_db(&claims.jti, claims.exp, None, now)
                .await?
        } else {
            Recorded::default()
        };
        self.publish(&recorded, now).await;
        Ok(())
    }

    /// Publishes revocations that are committed in the database. If the list cannot take
    /// them now, it is refilled from the database before its next answer: the revocation
    /// holds either way, so the caller is not told otherwise.
    async fn publish(&self, recorded: &Recorded, now: DateTime<Utc>) {
        if let Err(error) = self.revocations.publish(recorded, now).await {
            tracing::warn!(%error, "revocations recorded but not yet published; the list will be refilled");
        }
    }

    async fn revoke_refresh_in_db(
        &self,
        token: &RefreshToken,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, Error> {
        let hash = token.hash();
        let lifetimes = self.lifetimes;
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let Some((_, session)) = store::find_refresh(conn, &hash)? else {
                        return Ok(Recorded::default());
                    };
                    let entries = revoke_session_in(conn, &session.id, reason, &lifetimes, now)?;
                    Ok(Revocations::record(conn, entries)?)
                })
            })
            .await
    }

    async fn revoke_access_in_db(
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
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let mut entries = vec![token_entry];
                    if let Some(sid) = &sid {
                        entries.extend(revoke_session_in(conn, sid, "logout", &lifetimes, now)?);
                    }
                    Ok(Revocations::record(conn, entries)?)
                })
            })
            .await
    }

    /// Housekeeping: deletes ended sessions (their refresh tokens and seals go with
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

/// Opens the sealed successors from `row` (the presented, spent token) up to the head;
/// `None` if a seal is missing or does not open to the next token of the chain.
fn walk_to_head(
    conn: &mut DbConnection,
    presented: &RefreshToken,
    mut row: RefreshRow,
    head: &RefreshRow,
) -> Result<Option<RefreshToken>, Error> {
    let mut token = presented.clone();
    while row.generation < head.generation {
        let Some(next) = row
            .successor_sealed
            .as_deref()
            .and_then(|sealed| token.open_successor(sealed))
        else {
            return Ok(None);
        };
        let Some(next_row) = store::find_generation(conn, &row.session_id, row.generation + 1)?
        else {
            return Ok(None);
        };
        if next.hash() != next_row.token_hash {
            return Ok(None);
        }
        token = next;
        row = next_row;
    }
    Ok(Some(token))
}

/// The rotation transaction (on PostgreSQL, after [`store::rotate_in_one_statement`]
/// found that the common case does not apply; on SQLite, in a savepoint of a group). A refusal is an `Err`, which rolls it back (a won update
/// with it); a detected reuse is an `Ok`, so that the revocation commits.
fn rotate(
    conn: &mut DbConnection,
    presented: &RefreshToken,
    successor: RefreshToken,
    sealed: &[u8],
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
    client: &RefreshClient,
) -> Result<Rotation, Error> {
    let naive_now = now.naive_utc();
    let hash = presented.hash();
    let refused = |refusal| Err(Error::refused(Credential::RefreshToken, refusal));
    // First statement: the conditional update decides which racer rotates.
    let won = store::spend_refresh(conn, &hash, naive_now, sealed)?;
    let Some((row, session)) = store::find_refresh(conn, &hash)? else {
        return refused(Refusal::Invalid);
    };
    if session.revoked_at.is_some() {
        return refused(Refusal::Revoked);
    }
    if session.expires_at <= naive_now {
        return refused(Refusal::Expired);
    }
    let user = match user_store::find_by_id(conn, &session.user_id)? {
        Some(row) if row.enabled => User::from_row(&row)?,
        _ => return refused(Refusal::Invalid),
    };
    // A disabled tenant's sessions were revoked with it; this also covers a race with it.
    if !tenant_store::find(conn, user.tenant.as_str())?.is_some_and(|t| t.enabled) {
        return refused(Refusal::Revoked);
    }
    let client_scopes = match (&session.client_id, client) {
        (None, RefreshClient::FirstParty) => None,
        (Some(_), RefreshClient::FirstParty) if session.legacy_client => None,
        (None, RefreshClient::Client(_)) => return refused(Refusal::Invalid),
        (Some(_), RefreshClient::Client(_)) if session.legacy_client => {
            return refused(Refusal::Invalid);
        }
        (Some(bound), presenter) => {
            let row = client_store::find(conn, bound)?;
            let Some(bound) = row.as_ref().map(Client::from_row).transpose()? else {
                return refused(Refusal::Invalid);
            };
            let allowed = match presenter {
                // Without client authentication, only a public client's sessions.
                RefreshClient::FirstParty => bound.kind == ClientKind::Public,
                RefreshClient::Client(id) => &bound.client_id == id,
            };
            if !allowed || !bound.enabled {
                return refused(Refusal::Invalid);
            }
            Some(bound.scopes)
        }
    };

    if won {
        let expires_at = lifetimes
            .refresh_end(now, session.expires_at.and_utc())
            .naive_utc();
        store::insert_refresh(
            conn,
            &RefreshRow {
                token_hash: successor.hash(),
                session_id: session.id.clone(),
                generation: row.generation + 1,
                created_at: naive_now,
                expires_at,
                spent_at: None,
                successor_sealed: None,
            },
        )?;
        // Tokens spent more than the leeway before this new head can never lead to it.
        let leeway = delta(lifetimes.reuse_leeway);
        store::wipe_sealed_spent_before(
            conn,
            &session.id,
            store::wipe_since(row.created_at, leeway),
            naive_now - leeway,
        )?;
        return Ok(Rotation::Rotated {
            session,
            user,
            token: successor,
            expires_at,
            client_scopes,
            converged: false,
        });
    }

    let Some(spent_at) = row.spent_at else {
        // Not spent, yet the update missed it: it is past its idle lifetime.
        return refused(Refusal::Expired);
    };
    let Some(head) = store::find_head(conn, &session.id)? else {
        return refused(Refusal::Invalid);
    };
    if head.created_at - spent_at <= delta(lifetimes.reuse_leeway) {
        if head.expires_at <= naive_now {
            return refused(Refusal::Expired);
        }
        if let Some(token) = walk_to_head(conn, presented, row, &head)? {
            return Ok(Rotation::Rotated {
                session,
                user,
                token,
                expires_at: head.expires_at,
                client_scopes,
                converged: true,
            });
        }
    }
    // Reuse: revoke the whole session, and commit that.
    let Some(revoked) = store::revoke_session(conn, &session.id, naive_now, "reuse")? else {
        return refused(Refusal::Revoked);
    };
    let recorded = Revocations::record(conn, vec![session_entry(&revoked, lifetimes, now)])?;
    Ok(Rotation::Reused {
        session: revoked,
        recorded,
    })
}
