//! The `api_keys` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_keys;
use super::{DbConnection, StoreError};

/// A row of `api_keys`; only the hash of the secret.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    /// UUID.
    pub id: String,
    /// SHA-256 of the key, base64url.
    pub key_hash: String,
    /// First 12 characters of the key.
    pub prefix: String,
    /// A name for people.
    pub name: String,
    /// The user the key acts for, if any.
    pub owner_id: String,
    /// JSON array of scopes.
    pub scopes: String,
    /// Whether it authenticates.
    pub enabled: bool,
    /// Creation.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
    /// Optional expiry.
    pub expires_at: Option<NaiveDateTime>,
    /// Last authentication (coalesced).
    pub last_used_at: Option<NaiveDateTime>,
    /// Address of the last authentication.
    pub last_used_ip: Option<String>,
}

/// Inserts a key.
pub fn insert(conn: &mut DbConnection, row: &ApiKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(api_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Finds a key by id.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Finds a key by the hash of its secret.
pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// A page of keys ordered by id, after `after`, optionally filtered.
pub fn page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
    owner_id: Option<&str>,
    enabled: Option<bool>,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut query = api_keys::table
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(api_keys::id.gt(after.to_owned()));
    }
    if let Some(owner) = owner_id {
        query = query.filter(api_keys::owner_id.eq(owner.to_owned()));
    }
    if let Some(enabled) = enabled {
        query = query.filter(api_keys::enabled.eq(enabled));
    }
    Ok(query.load(conn)?)
}

/// Enables or disables a key; `false` if there is no such key.
pub fn set_enabled(
    conn: &mut DbConnection,
    id: &str,
    enabled: bool,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let changed = diesel::update(api_keys::table.find(id))
        .set((api_keys::enabled.eq(enabled), api_keys::updated_at.eq(now)))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Deletes a key; `false` if there was none.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(api_keys::table.find(id)).execute(conn)? == 1)
}

/// Records the last use of a key.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
    ip: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(
        api_keys::table.find(id).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(at)),
        ),
    )
    .set((api_keys::last_used_at.eq(at), api_keys::last_used_ip.eq(ip)))
    .execute(conn)?;
    Ok(())
}
