//! The signing-key use cases: list, rotate (admin API and CLI alike), and the scheduled
//! maintenance every instance runs. Each records itself in the audit log.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::SigningAlg;
use super::keyring::{KeyInfo, Keyring, RotateError};
use crate::audit::{Action, AdminCall, Audit, AuditEvent, Outcome};
use crate::error::Error;
use crate::model::{Actor, Admin};

/// Signing keys as admins and the scheduler see them. They are the whole deployment's:
/// only admins of the `default` tenant list or rotate them.
pub struct SigningKeys {
    keyring: Arc<Keyring>,
    audit: Arc<Audit>,
}

impl SigningKeys {
    /// The service.
    pub fn new(keyring: Arc<Keyring>, audit: Arc<Audit>) -> Self {
        Self { keyring, audit }
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
