//! The signing-key use cases: list, rotate, withdraw (admin API and CLI alike), JWKS,
//! and the scheduled maintenance every instance runs. Each change records itself in the
//! audit log.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::keyring::{JwksDocument, KeyInfo, Keyring, RotateError, TxFail};
use super::lifecycle::{CannotWithdraw, KeyStatus, WithdrawalPlan, plan_withdrawal};
use super::{KeyError, SigningAlg};
use crate::audit::{Action, AdminCall, Audit, AuditEvent, Outcome};
use crate::error::Error;
use crate::model::{Actor, Admin, Lifetimes};
use crate::revocation::{Recorded, Revocation, Revocations};
use crate::store::signing_keys::{self, SigningKeyRow};
use crate::store::{Db, DbConnection, sessions, tenants, write_transaction};

/// Why a key is withdrawn: said by the admin, kept in the audit log.
#[derive(Debug, Clone)]
pub struct WithdrawReason(String);

impl WithdrawReason {
    /// The longest reason, in characters.
    pub const MAX_CHARS: usize = 500;

    /// A reason: 1 to 500 characters, not blank, no control characters.
    pub fn parse(text: &str) -> Result<Self, Error> {
        crate::model::text::printable(text, Self::MAX_CHARS)
            .map(|text| Self(text.to_owned()))
            .ok_or_else(|| {
                Error::invalid("reason must be 1 to 500 characters, without control characters")
            })
    }
}

/// An emergency withdrawal, as an admin asks for it.
#[derive(Debug, Clone)]
pub struct Withdrawal {
    /// Why.
    pub reason: WithdrawReason,
    /// Also end every session of the deployment (a mass logout).
    pub end_sessions: bool,
}

/// The tickets' longest lifetime (`TOKENMINT_TICKET_TTL` is at most 5 minutes): a
/// withdrawn key's entry outlives every ticket it signed too.
const LONGEST_TICKET: TimeDelta = TimeDelta::minutes(5);

/// Signing keys as admins and the scheduler see them. They are the whole deployment's:
/// only admins of the `default` tenant list, rotate or withdraw them.
pub struct SigningKeys {
    keyring: Arc<Keyring>,
    audit: Arc<Audit>,
    db: Db,
    revocations: Arc<Revocations>,
    lifetimes: Lifetimes,
}

impl SigningKeys {
    /// The service.
    pub fn new(
        keyring: Arc<Keyring>,
        audit: Arc<Audit>,
        db: Db,
        revocations: Arc<Revocations>,
        lifetimes: Lifetimes,
    ) -> Self {
        Self {
            keyring,
            audit,
            db,
            revocations,
            lifetimes,
        }
    }

    /// The use case of `GET /.well-known/jwks.json`: the published keys, less any key
    /// withdrawn on another instance that this one has not reloaded yet (the revocation
    /// list knows it before the withdrawal answered). When the list cannot be read, the
    /// keys are read from the database after this request arrived (reads shared between
    /// concurrent requests): the database holds every withdrawal, so JWKS neither
    /// depends on Redis nor waits on it.
    pub async fn jwks(&self, now: DateTime<Utc>) -> Result<JwksDocument, Error> {
        let arrived = std::time::Instant::now();
        let published = self.keyring.published();
        match self.revocations.withdrawn_keys(&published, now).await {
            Ok(withdrawn) if withdrawn.is_empty() => Ok(self.keyring.jwks()),
            Ok(withdrawn) => Ok(self.keyring.jwks_without(&withdrawn)?),
            Err(_) => {
                // Boxed: the usual answer above stays a small future.
                Box::pin(self.keyring.reload_since(arrived)).await?;
                Ok(self.keyring.jwks())
            }
        }
    }

    /// Withdraws a key at once (its private part may have leaked), following
    /// [`plan_withdrawal`]: it becomes `withdrawn`, and, when it was `current`, a fresh
    /// key signs from now on (no pre-publication) and a fresh `next` is published. Before
    /// this returns, every instance refuses what it signed (`TOKEN_REVOKED`) and leaves
    /// it out of JWKS. Sessions survive (their next refresh is signed by the fresh key)
    /// unless `end_sessions` asks for a mass logout. Withdrawing a withdrawn key again
    /// changes nothing. Returns every key afterwards.
    pub async fn withdraw(
        &self,
        admin: &Admin,
        kid: String,
        withdrawal: Withdrawal,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyInfo>, Error> {
        admin.require_default()?;
        let result = self.withdraw_keys(&kid, withdrawal.end_sessions, now).await;
        let mut detail = format!("reason: {}", withdrawal.reason.0);
        if let Ok(done) = &result {
            if done.plan.withdraw.len() > 1 {
                detail.push_str(&format!(
                    "; also withdrawn: {}",
                    done.plan.withdraw[1..].join(", ")
                ));
            }
            if let Some(ended) = done.sessions_ended {
                detail.push_str(&format!("; {ended} sessions ended"));
            }
        }
        let call = AdminCall::new(admin, Action::SigningKeyWithdraw)
            .on(format!("kid:{kid}"))
            .detail(detail);
        self.audit.record_admin(call, result.is_ok(), now).await;
        let done = result?;
        // Every instance's list refuses the keys' tokens (and JWKS leaves them out)
        // before the answer; this instance also stops trusting them in its keyring.
        self.revocations.publish(&done.recorded, now).await;
        self.keyring.reload().await?;
        if !done.plan.withdraw.is_empty() {
            tracing::warn!(kids = ?done.plan.withdraw, current = ?self.keyring.current_kid(), "signing keys withdrawn");
        }
        Ok(self.keyring.list().await?)
    }

    async fn withdraw_keys(
        &self,
        kid: &str,
        end_sessions: bool,
        now: DateTime<Utc>,
    ) -> Result<Withdrawn, Error> {
        // A rotation or another withdrawal may change the keys between the plan and the
        // transaction; the transaction re-plans and gives up on any difference.
        for _ in 0..3 {
            let rows = self.db.run(signing_keys::list_all).await?;
            let plan = match plan_withdrawal(&key_states(&rows), kid) {
                Ok(plan) => plan,
                // Asked again, for a mass logout this time: that part is still to do.
                Err(CannotWithdraw::AlreadyWithdrawn) if end_sessions => Withdrawn::nothing().plan,
                Err(CannotWithdraw::AlreadyWithdrawn) => return Ok(Withdrawn::nothing()),
                Err(CannotWithdraw::Unknown) => return Err(Error::NotFound("signing key")),
                Err(CannotWithdraw::Retired) => {
                    return Err(Error::conflict(
                        "this key is retired: it is out of JWKS and every token it signed has expired",
                    ));
                }
            };
            // The fresh keys are of the withdrawn key's algorithm: verifiers keep theirs.
            let alg = rows
                .iter()
                .find(|r| r.kid == kid)
                .and_then(|r| r.alg.parse::<SigningAlg>().ok())
                .ok_or_else(|| Error::internal(KeyError::Unsupported(kid.to_owned())))?;
            let fresh = |wanted: bool, status: KeyStatus| async move {
                match wanted {
                    true => self.keyring.new_key_row(alg, status, now).await.map(Some),
                    false => Ok(None),
                }
            };
            let fresh_current = fresh(plan.fresh_current, KeyStatus::Current).await?;
            let fresh_next = fresh(plan.fresh_next, KeyStatus::Next).await?;
            let entry_end = self.lifetimes.revocation_end(now).max(now + LONGEST_TICKET)
                + TimeDelta::seconds(1);
            let kid = kid.to_owned();
            let outcome = self
                .db
                .run(move |conn| {
                    let tx = write_transaction(conn, |conn| {
                        withdraw_tx(
                            conn,
                            &kid,
                            plan,
                            [fresh_current, fresh_next],
                            end_sessions,
                            entry_end,
                            now,
                        )
                    });
                    match tx {
                        Ok(done) => Ok(Some(done)),
                        Err(TxFail::Lost) => Ok(None),
                        Err(TxFail::Store(e)) => Err(e),
                    }
                })
                .await?;
            if let Some(done) = outcome {
                return Ok(done);
            }
        }
        Err(Error::conflict(
            "the signing keys kept changing during the withdrawal; retry",
        ))
    }

    /// Every key, newest first.
    pub async fn list(&self, admin: &Admin, now: DateTime<Utc>) -> Result<Vec<KeyInfo>, Error> {
        admin.require_default()?;
        let call = AdminCall::new(admin, Action::SigningKeyList);
        Ok(self.audit.admin(call, now, self.keyring.list()).await?)
    }

    /// Rotates now: the `next` key becomes `current`, the old `current` becomes
    /// `retiring`, and a new `next` key (of `alg`, else the configured one) is published.
    /// Pre-publication is never skipped: a `next` key younger than the JWKS max-age
    /// answers `CONFLICT` with the time to wait. Returns every key afterwards.
    pub async fn rotate(
        &self,
        admin: &Admin,
        alg: Option<SigningAlg>,
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyInfo>, Error> {
        admin.require_default()?;
        let result = self.keyring.rotate(alg, now, false).await;
        let target = self.keyring.current_kid().map(|k| format!("kid:{k}"));
        let call = AdminCall::new(admin, Action::SigningKeyRotate).on(target);
        self.audit.record_admin(call, result.is_ok(), now).await;
        match result {
            Ok(_) => Ok(self.keyring.list().await?),
            Err(RotateError::NotReady(at)) => {
                let wait = (at - now).num_seconds().max(1).unsigned_abs();
                Err(Error::Conflict {
                    message: format!(
                        "the next key has been published for less than the JWKS max-age; retry in {wait} s"
                    )
                    .into(),
                    retry_after_secs: Some(wait),
                })
            }
            Err(RotateError::Key(e)) => Err(e.into()),
        }
    }

    /// The periodic work of every instance (see [`Keyring::maintain`]); a scheduled
    /// rotation this instance performed is audited as the system's.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<(), Error> {
        if self.keyring.maintain(now).await? {
            let event = AuditEvent {
                actor: Actor::System,
                action: Action::SigningKeyRotate,
                target: self.keyring.current_kid().map(|k| format!("kid:{k}")),
                ip: None,
                outcome: Outcome::Success,
                detail: None,
            };
            self.audit.record(event, now).await;
        }
        Ok(())
    }
}

/// What a withdrawal did.
struct Withdrawn {
    plan: WithdrawalPlan,
    sessions_ended: Option<usize>,
    recorded: Recorded,
}

impl Withdrawn {
    fn nothing() -> Self {
        Self {
            plan: WithdrawalPlan {
                withdraw: Vec::new(),
                fresh_current: false,
                fresh_next: false,
            },
            sessions_ended: None,
            recorded: Recorded::default(),
        }
    }
}

fn key_states(rows: &[SigningKeyRow]) -> Vec<super::lifecycle::KeyState> {
    rows.iter().filter_map(super::keyring::key_state).collect()
}

/// The withdrawal's transaction: the plan still holds, every key in it moves to
/// `withdrawn` from the state it was planned in, the fresh keys are stored, and the
/// revocation entries (a `kid` entry per withdrawn key, and with `end_sessions` every
/// session ended and a cut-off per tenant) are recorded with it.
fn withdraw_tx(
    conn: &mut DbConnection,
    kid: &str,
    plan: WithdrawalPlan,
    fresh: [Option<SigningKeyRow>; 2],
    end_sessions: bool,
    entry_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Withdrawn, TxFail> {
    let rows = signing_keys::list_all(conn)?;
    let states = key_states(&rows);
    let still = match plan_withdrawal(&states, kid) {
        Ok(now_planned) => now_planned == plan,
        Err(CannotWithdraw::AlreadyWithdrawn) => plan.withdraw.is_empty(),
        Err(_) => false,
    };
    if !still {
        return Err(TxFail::Lost);
    }
    let naive = now.naive_utc();
    let mut entries = Vec::new();
    for withdrawn in &plan.withdraw {
        let from = states
            .iter()
            .find(|k| k.kid == *withdrawn)
            .map(|k| k.status.as_str())
            .ok_or(TxFail::Lost)?;
        if !signing_keys::transition(conn, withdrawn, from, KeyStatus::Withdrawn.as_str(), naive)? {
            return Err(TxFail::Lost);
        }
        entries.push((
            Revocation::Key {
                kid: withdrawn.clone(),
            },
            entry_end,
        ));
    }
    for row in fresh.into_iter().flatten() {
        signing_keys::insert(conn, &row)?;
    }
    let mut sessions_ended = None;
    if end_sessions {
        sessions_ended = Some(sessions::revoke_all_sessions(
            conn,
            naive,
            "signing key withdrawn",
        )?);
        // Every token issued up to the end of this second, of every tenant.
        for tenant in tenants::all_ids(conn)? {
            entries.push((
                Revocation::Tenant {
                    tenant,
                    cutoff: now.timestamp() + 1,
                },
                entry_end,
            ));
        }
    }
    let recorded = Revocations::record(conn, entries, now)?;
    Ok(Withdrawn {
        plan,
        sessions_ended,
        recorded,
    })
}
