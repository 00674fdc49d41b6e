//! Users: parsed names, roles, scopes and custom claims, creation and bootstrap.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::SecureRandom as _;
use secrecy::SecretString;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::passwords::{Password, PasswordError, PasswordHasher};
use crate::store::users::{self, UserRow};
use crate::store::{Db, StoreError};

/// Claims that Tokenmint sets itself; a user's custom claims may never use these names.
pub const REGISTERED_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sid",
    "scope",
    "roles",
    "client_id",
    "username",
    "typ",
    "azp",
];

/// A valid username: 1 to 64 characters of letters, digits and `. _ - @ +`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username as given.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_char =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
            return Err("username must be 1 to 64 characters: letters, digits and . _ - @ +");
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key: usernames that differ only in case are the same user.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// Parses a role or scope name: 1 to 64 of letters, digits and `: . _ -`.
pub fn parse_name(kind: &'static str, s: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '/');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
        return Err(format!(
            "{kind} {s:?} must be 1 to 64 characters: letters, digits and : . _ - /"
        ));
    }
    Ok(s.to_owned())
}

/// Parses a list of role or scope names, dropping duplicates.
pub fn parse_names(kind: &'static str, items: &[String]) -> Result<Vec<String>, String> {
    if items.len() > 100 {
        return Err(format!("at most 100 {kind}s"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let name = parse_name(kind, item)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Custom claims: a JSON object of at most 8 KiB whose keys are not registered claims.
pub fn parse_claims(claims: Map<String, Value>) -> Result<Map<String, Value>, String> {
    if let Some(name) = claims
        .keys()
        .find(|k| REGISTERED_CLAIMS.contains(&k.as_str()))
    {
        return Err(format!(
            "custom claim {name:?} would override a registered claim"
        ));
    }
    let size = serde_json::to_vec(&claims).map_or(usize::MAX, |v| v.len());
    if size > 8 * 1024 {
        return Err("custom claims must be at most 8 KiB of JSON".into());
    }
    Ok(claims)
}

/// A user as the domain sees it; never carries the password hash outward.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Name as given at creation.
    pub username: String,
    /// Roles (`admin`, ...).
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
    /// Custom claims, merged into access tokens.
    pub claims: Map<String, Value>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Builds a user from its row (which also holds the hash, returned apart).
    pub fn from_row(row: UserRow) -> Result<(Self, String), StoreError> {
        let id = Uuid::parse_str(&row.id).map_err(|e| StoreError::Other(Box::new(e)))?;
        let user = Self {
            id,
            username: row.username,
            roles: serde_json::from_str(&row.roles)?,
            scopes: serde_json::from_str(&row.scopes)?,
            claims: serde_json::from_str(&row.claims)?,
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        };
        Ok((user, row.password_hash))
    }
}

/// What a new user is made of, parsed.
#[derive(Debug)]
pub struct NewUser {
    /// Name.
    pub username: Username,
    /// Password.
    pub password: Password,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Custom claims.
    pub claims: Map<String, Value>,
}

/// Errors of user management.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The username is taken (case-insensitively).
    #[error("username is taken")]
    UsernameTaken,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::UsernameTaken,
            other => Self::Store(other),
        }
    }
}

/// Creates a user.
pub async fn create_user(
    db: &Db,
    hasher: &PasswordHasher,
    new: NewUser,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    let password_hash = hasher.hash(new.password).await?;
    let row = UserRow {
        id: Uuid::now_v7().to_string(),
        username_key: new.username.key(),
        username: new.username.as_str().to_owned(),
        password_hash,
        roles: serde_json::to_string(&new.roles).map_err(StoreError::from)?,
        scopes: serde_json::to_string(&new.scopes).map_err(StoreError::from)?,
        claims: serde_json::to_string(&new.claims).map_err(StoreError::from)?,
        enabled: true,
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
    };
    let stored = row.clone();
    db.run(move |conn| users::insert(conn, &row)).await?;
    Ok(User::from_row(stored)?.0)
}

/// Finds a user by id.
pub async fn find_user(db: &Db, id: Uuid) -> Result<Option<User>, StoreError> {
    let row = db
        .run(move |conn| users::find_by_id(conn, &id.to_string()))
        .await?;
    row.map(|r| User::from_row(r).map(|(u, _)| u)).transpose()
}

/// A page of users after `after`, ordered by id.
pub async fn list_users(db: &Db, after: Option<Uuid>, limit: i64) -> Result<Vec<User>, StoreError> {
    let rows = db
        .run(move |conn| users::page(conn, after.map(|a| a.to_string()).as_deref(), limit))
        .await?;
    rows.into_iter()
        .map(|r| User::from_row(r).map(|(u, _)| u))
        .collect()
}

/// Deletes a user (their sessions and API keys go with them); `false` if there was none.
pub async fn delete_user(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    db.run(move |conn| users::delete(conn, &id.to_string()))
        .await
}

/// Changes to a user, parsed.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// New password.
    pub password: Option<Password>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New custom claims.
    pub claims: Option<Map<String, Value>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Applies a patch. Returns the user and whether its sessions must be revoked (the
/// password changed or the user was disabled); `None` if there is no such user.
pub async fn update_user(
    db: &Db,
    hasher: &PasswordHasher,
    id: Uuid,
    patch: UserPatch,
    now: DateTime<Utc>,
) -> Result<Option<(User, bool)>, UserError> {
    let Some(mut row) = db
        .run(move |conn| users::find_by_id(conn, &id.to_string()))
        .await?
    else {
        return Ok(None);
    };
    let mut revoke = false;
    if let Some(password) = patch.password {
        row.password_hash = hasher.hash(password).await?;
        revoke = true;
    }
    if let Some(roles) = patch.roles {
        row.roles = serde_json::to_string(&roles).map_err(StoreError::from)?;
    }
    if let Some(scopes) = patch.scopes {
        row.scopes = serde_json::to_string(&scopes).map_err(StoreError::from)?;
    }
    if let Some(claims) = patch.claims {
        row.claims = serde_json::to_string(&claims).map_err(StoreError::from)?;
    }
    if let Some(enabled) = patch.enabled {
        revoke |= row.enabled && !enabled;
        row.enabled = enabled;
    }
    row.updated_at = now.naive_utc();
    let stored = row.clone();
    if !db.run(move |conn| users::update(conn, &row)).await? {
        return Ok(None);
    }
    Ok(Some((User::from_row(stored)?.0, revoke)))
}

/// The admin that a start creates, and the password to print when it was generated.
pub enum Bootstrap {
    /// Nothing to do: users exist, or the configured admin exists.
    Nothing,
    /// The configured admin was created.
    Created,
    /// `admin` was created with this generated password, to be shown once.
    Generated(SecretString),
}

/// Creates the configured bootstrap admin if absent; on an empty database with none
/// configured, creates `admin` with a random password.
pub async fn ensure_bootstrap_admin(
    db: &Db,
    hasher: &PasswordHasher,
    configured: Option<&(String, SecretString)>,
    now: DateTime<Utc>,
) -> Result<Bootstrap, BootstrapError> {
    let (username, password, generated) = match configured {
        Some((name, password)) => {
            let username = Username::parse(name).map_err(BootstrapError::Invalid)?;
            let key = username.key();
            if db
                .run(move |c| users::find_by_username_key(c, &key))
                .await?
                .is_some()
            {
                return Ok(Bootstrap::Nothing);
            }
            (username, password.clone(), false)
        }
        None => {
            if db.run(users::count).await? > 0 {
                return Ok(Bootstrap::Nothing);
            }
            (
                Username::parse("admin").map_err(BootstrapError::Invalid)?,
                random_password()?,
                true,
            )
        }
    };
    let new = NewUser {
        username,
        password: Password::parse_new(password.clone()).map_err(BootstrapError::Invalid)?,
        roles: vec!["admin".to_owned()],
        scopes: Vec::new(),
        claims: Map::new(),
    };
    match create_user(db, hasher, new, now).await {
        Ok(_) if generated => Ok(Bootstrap::Generated(password)),
        Ok(_) => Ok(Bootstrap::Created),
        // Another instance bootstrapped at the same moment.
        Err(UserError::UsernameTaken) => Ok(Bootstrap::Nothing),
        Err(UserError::Store(e)) => Err(e.into()),
        Err(UserError::Password(e)) => Err(BootstrapError::Password(e)),
    }
}

/// Why the bootstrap admin could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// TOKENMINT_BOOTSTRAP_ADMIN holds an invalid username or password.
    #[error("TOKENMINT_BOOTSTRAP_ADMIN: {0}")]
    Invalid(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The OS random generator failed.
    #[error("random generator failed")]
    Random,
}

fn random_password() -> Result<SecretString, BootstrapError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 18]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| BootstrapError::Random)?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn accepted_usernames_are_short_and_plain(s in "\\PC*") {
            if let Ok(name) = Username::parse(&s) {
                prop_assert!(name.as_str().len() <= 64 && name.as_str().is_ascii());
                prop_assert_eq!(name.key(), name.as_str().to_ascii_lowercase());
            }
        }
    }

    #[test]
    fn usernames_are_case_insensitive_keys() {
        assert_eq!(Username::parse("Alice.B").unwrap().key(), "alice.b");
        for bad in ["", "a b", "x".repeat(65).as_str(), "ünï", "a/b", "a\u{0}"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn custom_claims_cannot_override_registered_ones() {
        let mut claims = Map::new();
        claims.insert("haip".into(), serde_json::json!({"max_runs": 10}));
        assert!(parse_claims(claims.clone()).is_ok());
        claims.insert("sub".into(), serde_json::json!("someone-else"));
        assert!(parse_claims(claims).unwrap_err().contains("sub"));
    }

    #[test]
    fn names_are_checked_and_deduplicated() {
        let names = parse_names("role", &["admin".into(), "admin".into(), "ops".into()]).unwrap();
        assert_eq!(names, ["admin", "ops"]);
        assert!(parse_names("scope", &["has space".into()]).is_err());
    }
}
