//! Password login: the check of API.md's `POST /api/login`, equal in answer and time
//! for unknown users, wrong passwords and disabled users.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::passwords::{Password, PasswordError, PasswordHasher, Verified};
use super::users::{User, Username};
use crate::store::users;
use crate::store::{Db, StoreError};

/// Why a login failed. The HTTP layer answers all `Failed` reasons alike.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password or disabled user.
    #[error("authentication failed")]
    Failed,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Checks a username and password; on success returns the user.
pub async fn authenticate(
    db: &Db,
    hasher: &Arc<PasswordHasher>,
    username: &str,
    password: Password,
    now: DateTime<Utc>,
) -> Result<User, LoginError> {
    let row = match Username::parse(username) {
        Ok(name) => {
            let key = name.key();
            db.run(move |conn| users::find_by_username_key(conn, &key))
                .await?
        }
        Err(_) => None,
    };
    let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
    // Verify even when the user is unknown or disabled, so timing tells nothing.
    let verified = hasher.verify(password.clone(), stored_hash.clone()).await?;
    let Some(row) = row else {
        return Err(LoginError::Failed);
    };
    let (user, hash) = User::from_row(row)?;
    match verified {
        Verified::Mismatch => Err(LoginError::Failed),
        Verified::Match { .. } if !user.enabled => Err(LoginError::Failed),
        Verified::Match { needs_rehash } => {
            if needs_rehash {
                spawn_rehash(
                    db.clone(),
                    hasher.clone(),
                    user.id.to_string(),
                    hash,
                    password,
                    now,
                );
            }
            Ok(user)
        }
    }
}

/// Upgrades a hash made with older parameters, after the answer is sent.
fn spawn_rehash(
    db: Db,
    hasher: Arc<PasswordHasher>,
    id: String,
    old: String,
    password: Password,
    now: DateTime<Utc>,
) {
    tokio::spawn(async move {
        let result = async {
            let new = hasher.hash(password).await.map_err(|e| e.to_string())?;
            db.run(move |c| users::replace_password_hash(c, &id, &old, &new, now.naive_utc()))
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "password rehash failed; will retry at the next login");
        }
    });
}
