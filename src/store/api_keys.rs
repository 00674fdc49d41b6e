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
    /// The tenant (its owner's).
    pub tenant_id: String,
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
    Ok(super::unique!(
        conn,
        api_keys::table.find(id).select(ApiKeyRow::as_select())
    )?)
}

/// Finds a key by the hash of its secret.
pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(super::unique!(
        conn,
        api_keys::table
            .filter(api_keys::key_hash.eq(hash))
            .select(ApiKeyRow::as_select())
    )?)
}

/// A page of keys ordered by id, after `after`, optionally filtered.
pub fn page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
    owner_id: Option<&str>,
    enabled: Option<bool>,
    tenant: Option<&str>,
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
    if let Some(tenant) = tenant {
        query = query.filter(api_keys::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Enables or disables a key (of `tenant`, if given); `false` if there was none.
pub fn set_enabled(
    conn: &mut DbConnection,
    id: &str,
    enabled: bool,
    now: NaiveDateTime,
    tenant: Option<&str>,
) -> Result<bool, StoreError> {
    let changes = (api_keys::enabled.eq(enabled), api_keys::updated_at.eq(now));
    let changed = match tenant {
        Some(tenant) => diesel::update(
            api_keys::table
                .find(id)
                .filter(api_keys::tenant_id.eq(tenant)),
        )
        .set(changes)
        .execute(conn)?,
        None => diesel::update(api_keys::table.find(id))
            .set(changes)
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Deletes a key (of `tenant`, if given); `false` if there was none.
pub fn delete(conn: &mut DbConnection, id: &str, tenant: Option<&str>) -> Result<bool, StoreError> {
    let deleted = match tenant {
        Some(tenant) => diesel::delete(
            api_keys::table
                .find(id)
                .filter(api_keys::tenant_id.eq(tenant)),
        )
        .execute(conn)?,
        None => diesel::delete(api_keys::table.find(id)).execute(conn)?,
    };
    Ok(deleted == 1)
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

/// Whether a tenant has any API key.
pub fn any_in_tenant(conn: &mut DbConnection, tenant: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        api_keys::table.filter(api_keys::tenant_id.eq(tenant)),
    ))
    .get_result(conn)?)
}
