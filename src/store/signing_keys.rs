//! The `signing_keys` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConnection, StoreError};

/// A row of `signing_keys`.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    /// Key id, as in the JWT header and JWKS.
    pub kid: String,
    /// JWS algorithm name.
    pub alg: String,
    /// `next`, `current`, `retiring`, `retired` or `withdrawn`.
    pub status: String,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// Encrypted PKCS#8 private key; `None` once retired.
    pub private_key: Option<Vec<u8>>,
    /// Creation time, naive UTC.
    pub created_at: NaiveDateTime,
    /// When it started signing.
    pub activated_at: Option<NaiveDateTime>,
    /// When it stopped being published.
    pub retired_at: Option<NaiveDateTime>,
    /// When it stopped signing.
    pub deactivated_at: Option<NaiveDateTime>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Inserts a key.
pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Every key that is not retired (withdrawn ones included: their tokens are refused as
/// such), oldest first.
pub fn list_live(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::status.ne("retired"))
        .order(signing_keys::created_at.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// Every key, newest first (for the admin list).
pub fn list_all(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// Moves a key from `from` to `to`, setting the time column of the new state. Returns
/// whether this call made the change: the conditional update is what lets exactly one
/// of several instances rotate.
pub fn transition(
    conn: &mut DbConnection,
    kid: &str,
    from: &str,
    to: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let target = signing_keys::table
        .filter(signing_keys::kid.eq(kid))
        .filter(signing_keys::status.eq(from));
    let changed = match to {
        "current" => diesel::update(target)
            .set((
                signing_keys::status.eq(to),
                signing_keys::activated_at.eq(now),
            ))
            .execute(conn)?,
        "retiring" => diesel::update(target)
            .set((
                signing_keys::status.eq(to),
                signing_keys::deactivated_at.eq(now),
            ))
            .execute(conn)?,
        // Retired and withdrawn keys lose their private part for good; `retired_at` is
        // when they left JWKS.
        _ => diesel::update(target)
            .set((
                signing_keys::status.eq(to),
                signing_keys::retired_at.eq(now),
                signing_keys::private_key.eq(None::<Vec<u8>>),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}
