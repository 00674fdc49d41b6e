//! Sessions: login creates one with a refresh token; every refresh rotates the token in
//! one transaction, with reuse detection; logout and revocation end it.
//!
//! Rotation rules (API.md, `/api/refresh-token`):
//! - the live token is spent and a successor issued, once, however many requests race;
//! - the immediate predecessor presented again within the leeway gets the same successor;
//! - any other spent token is reuse: the whole session is revoked.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::refresh_token::RefreshToken;
use super::users::User;
use crate::revocation::{Revocation, RevocationError, Revocations};
use crate::store::sessions::{self as store, RefreshRow, SessionRow};
use crate::store::users::{self as user_store, UserRow};
use crate::store::{Db, DbConnection, StoreError, write_transaction};

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown or malformed token, or its user is gone or disabled.
    #[error("invalid refresh token")]
    Invalid,
    /// The token or its session is past its lifetime.
    #[error("refresh token expired")]
    Expired,
    /// The session was revoked.
    #[error("session revoked")]
    Revoked,
    /// A spent token was presented outside the leeway; the session is now revoked.
    #[error("refresh token reused")]
    Reused {
        /// The revoked session.
        session_id: String,
        /// Its user.
        user_id: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The revocation could not be published (it is recorded and will be).
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    /// The random generator failed.
    #[error("random generator failed")]
    Random,
}

impl From<ring::error::Unspecified> for SessionError {
    fn from(_: ring::error::Unspecified) -> Self {
        Self::Random
    }
}

/// A session as seen after login or refresh.
#[derive(Debug)]
pub struct SessionGrant {
    /// Session id (`sid`).
    pub session_id: Uuid,
    /// The user, re-read at every refresh (roles and claims may have changed).
    pub user: User,
    /// Scopes for the access token.
    pub scopes: Vec<String>,
    /// OAuth client given at login.
    pub client_id: Option<String>,
    /// The refresh token to hand out.
    pub refresh_token: RefreshToken,
    /// When that refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Idle lifetime of a refresh token.
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a session.
    pub session_ttl: Duration,
    /// Window in which the immediate predecessor converges on its successor.
    pub reuse_leeway: Duration,
    /// Lifetime of access tokens: how long a revoked session's entry must stay listed.
    pub access_ttl: Duration,
    /// Tolerance on `iat`: a user cut-off stays listed for access TTL + skew.
    pub clock_skew: Duration,
}

/// Logins, refreshes, logouts.
pub struct Sessions {
    db: Db,
    revocations: Arc<Revocations>,
    policy: SessionPolicy,
}

enum Rotation {
    Rotated {
        session: SessionRow,
        user: UserRow,
        token: RefreshToken,
        expires_at: NaiveDateTime,
    },
    Converged {
        session: SessionRow,
        user: UserRow,
        token: RefreshToken,
        expires_at: NaiveDateTime,
    },
    Reused {
        session: SessionRow,
    },
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Sessions {
    /// A session service.
    pub fn new(db: Db, revocations: Arc<Revocations>, policy: SessionPolicy) -> Self {
        Self {
            db,
            revocations,
            policy,
        }
    }

    /// The lifetimes in force.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Starts a session for a user who just logged in.
    pub async fn start(
        &self,
        user: User,
        scopes: Vec<String>,
        client_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SessionGrant, SessionError> {
        let session_id = Uuid::new_v4();
        let token = RefreshToken::generate()?;
        let session_end = now + delta(self.policy.session_ttl);
        let refresh_expires_at = (now + delta(self.policy.refresh_ttl)).min(session_end);
        let session = SessionRow {
            id: session_id.to_string(),
            user_id: user.id.to_string(),
            client_id: client_id.clone(),
            scope: scopes.join(" "),
            created_at: now.naive_utc(),
            expires_at: session_end.naive_utc(),
            revoked_at: None,
            revoked_reason: None,
        };
        let refresh = RefreshRow {
            token_hash: token.hash(),
            session_id: session.id.clone(),
            generation: 0,
            created_at: now.naive_utc(),
            expires_at: refresh_expires_at.naive_utc(),
            spent_at: None,
            successor_sealed: None,
        };
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    store::insert_session(conn, &session)?;
                    store::insert_refresh(conn, &refresh)
                })
            })
            .await?;
        Ok(SessionGrant {
            session_id,
            user,
            scopes,
            client_id,
            refresh_token: token,
            refresh_expires_at,
        })
    }

    /// Rotates a refresh token (see the module doc).
    pub async fn refresh(
        &self,
        presented: RefreshToken,
        now: DateTime<Utc>,
    ) -> Result<SessionGrant, SessionError> {
        let successor = RefreshToken::generate()?;
        let sealed = presented.seal_successor(&successor)?;
        let policy = self.policy;
        let rotation = self
            .db
            .run(move |conn| {
                match write_transaction(conn, |conn| {
                    rotate(conn, &presented, successor, &sealed, now, policy)
                }) {
                    Ok(rotation) => Ok(Ok(rotation)),
                    Err(TxError::Refused(e)) => Ok(Err(e)),
                    Err(TxError::Store(e)) => Err(e),
                }
            })
            .await??;
        match rotation {
            Rotation::Rotated {
                session,
                user,
                token,
                expires_at,
            }
            | Rotation::Converged {
                session,
                user,
                token,
                expires_at,
            } => grant(session, user, token, expires_at),
            Rotation::Reused { session } => {
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
                let entry = (
                    Revocation::Session {
                        sid: session.id.clone(),
                    },
                    listing_end(&session, now, self.policy.access_ttl),
                );
                self.revocations.publish(&[entry], now).await?;
                Err(SessionError::Reused {
                    session_id: session.id,
                    user_id: session.user_id,
                })
            }
        }
    }

    /// Revokes the session a refresh token belongs to. Unknown tokens are no error.
    /// Returns whether a session was revoked by this call.
    pub async fn revoke_by_refresh_token(
        &self,
        token: &RefreshToken,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> Result<bool, SessionError> {
        let hash = token.hash();
        let found = self
            .db
            .run(move |conn| store::find_refresh(conn, &hash))
            .await?;
        let Some((_, session)) = found else {
            return Ok(false);
        };
        self.revoke_session(&session.id, reason, now).await
    }

    /// Revokes a session by id, in the database and on the revocation list.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> Result<bool, SessionError> {
        let id = session_id.to_owned();
        let access_ttl = self.policy.access_ttl;
        let revoked = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let Some(session) = store::revoke_session(conn, &id, now.naive_utc(), reason)?
                    else {
                        return Ok(None);
                    };
                    let entry = (
                        Revocation::Session {
                            sid: session.id.clone(),
                        },
                        listing_end(&session, now, access_ttl),
                    );
                    Revocations::record(conn, std::slice::from_ref(&entry))?;
                    Ok(Some(entry))
                })
            })
            .await?;
        match revoked {
            Some(entry) => {
                self.revocations.publish(&[entry], now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Logout everywhere: revokes every session of a user and cuts off every access token
    /// issued to them before now (also from sessions this misses).
    pub async fn revoke_user(
        &self,
        user_id: Uuid,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        let access_ttl = self.policy.access_ttl;
        let cutoff_until =
            now + crate::revocation::cutoff_lifetime(access_ttl, self.policy.clock_skew);
        let entries = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let revoked = store::revoke_user_sessions(
                        conn,
                        &user_id.to_string(),
                        now.naive_utc(),
                        reason,
                    )?;
                    let mut entries: Vec<(Revocation, DateTime<Utc>)> = revoked
                        .iter()
                        .map(|s| {
                            (
                                Revocation::Session { sid: s.id.clone() },
                                listing_end(s, now, access_ttl),
                            )
                        })
                        .collect();
                    // Tokens with iat before this second are cut off; one issued earlier in
                    // this same second is caught by its session's entry above.
                    entries.push((
                        Revocation::User {
                            sub: user_id.to_string(),
                            cutoff: now.timestamp(),
                        },
                        cutoff_until,
                    ));
                    Revocations::record(conn, &entries)?;
                    Ok::<_, StoreError>(entries)
                })
            })
            .await?;
        self.revocations.publish(&entries, now).await?;
        Ok(())
    }

    /// Housekeeping: forgets sealed successors past the leeway and deletes ended sessions
    /// (their refresh tokens go with them). Returns the number of sessions deleted.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<usize, SessionError> {
        let leeway_start = (now - delta(self.policy.reuse_leeway)).naive_utc();
        let naive_now = now.naive_utc();
        Ok(self
            .db
            .run(move |conn| {
                store::wipe_sealed_spent_before(conn, leeway_start)?;
                store::purge_ended(conn, naive_now)
            })
            .await?)
    }
}

/// How long a revoked session must stay on the list: until its last access token has
/// expired, and no later than the session's own end plus one access lifetime.
fn listing_end(session: &SessionRow, now: DateTime<Utc>, access_ttl: Duration) -> DateTime<Utc> {
    let access = delta(access_ttl) + TimeDelta::seconds(1);
    (session.expires_at.and_utc() + access).min(now + access)
}

fn grant(
    session: SessionRow,
    user: UserRow,
    token: RefreshToken,
    expires_at: NaiveDateTime,
) -> Result<SessionGrant, SessionError> {
    let session_id = Uuid::parse_str(&session.id).map_err(|e| StoreError::Other(Box::new(e)))?;
    let (user, _) = User::from_row(user)?;
    // Refreshes never widen a session: scopes the user lost since login are dropped.
    let scopes = session
        .scope
        .split_ascii_whitespace()
        .filter(|s| user.scopes.iter().any(|u| u == s))
        .map(str::to_owned)
        .collect();
    Ok(SessionGrant {
        session_id,
        user,
        scopes,
        client_id: session.client_id,
        refresh_token: token,
        refresh_expires_at: expires_at.and_utc(),
    })
}

/// The rotation transaction.
fn rotate(
    conn: &mut DbConnection,
    presented: &RefreshToken,
    successor: RefreshToken,
    sealed: &[u8],
    now: DateTime<Utc>,
    policy: SessionPolicy,
) -> Result<Rotation, TxError> {
    let naive_now = now.naive_utc();
    let hash = presented.hash();
    // First statement: the conditional update decides which racer rotates.
    let won = store::spend_refresh(conn, &hash, naive_now, sealed)?;
    // A refusal rolls the whole transaction back, a won update with it.
    let fail = |e| Err(TxError::Refused(e));
    let Some((row, session)) = store::find_refresh(conn, &hash)? else {
        return fail(SessionError::Invalid);
    };
    if session.revoked_at.is_some() {
        return fail(SessionError::Revoked);
    }
    if session.expires_at <= naive_now {
        return fail(SessionError::Expired);
    }
    let Some(user) = user_store::find_by_id(conn, &session.user_id)? else {
        return fail(SessionError::Invalid);
    };
    if !user.enabled {
        return fail(SessionError::Invalid);
    }

    if won {
        let expires_at = (naive_now + delta(policy.refresh_ttl)).min(session.expires_at);
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
        store::wipe_sealed_below(conn, &session.id, row.generation)?;
        return Ok(Rotation::Rotated {
            session,
            user,
            token: successor,
            expires_at,
        });
    }

    let Some(spent_at) = row.spent_at else {
        // Not spent, yet the update missed it: it is past its idle lifetime.
        return fail(SessionError::Expired);
    };
    let within_leeway = naive_now - spent_at <= delta(policy.reuse_leeway);
    if within_leeway {
        let next = store::find_generation(conn, &session.id, row.generation + 1)?;
        let converged = next
            .filter(|next| next.spent_at.is_none())
            .and_then(|next| {
                let token = row
                    .successor_sealed
                    .as_deref()
                    .and_then(|s| presented.open_successor(s))?;
                (token.hash() == next.token_hash).then_some((token, next.expires_at))
            });
        if let Some((token, expires_at)) = converged {
            return Ok(Rotation::Converged {
                session,
                user,
                token,
                expires_at,
            });
        }
    }
    // Reuse: revoke the whole session, and commit that.
    let Some(revoked) = store::revoke_session(conn, &session.id, naive_now, "reuse")? else {
        return fail(SessionError::Revoked);
    };
    let end = listing_end(&revoked, now, policy.access_ttl);
    Revocations::record(
        conn,
        &[(
            Revocation::Session {
                sid: revoked.id.clone(),
            },
            end,
        )],
    )?;
    Ok(Rotation::Reused { session: revoked })
}

/// A transaction's failure: storage, or a refusal that rolls everything back.
enum TxError {
    Store(StoreError),
    Refused(SessionError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
