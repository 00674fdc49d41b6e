//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Lock;
use super::schema::users;
use super::{DbConnection, StoreError};

/// A row of `users`. Lists are JSON text so both backends store them alike.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// UUID.
    pub id: String,
    /// As the user typed it at creation.
    pub username: String,
    /// `<tenant>:<lower-cased username>`: the unique key (usernames are unique per tenant).
    pub username_key: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// JSON array of role names.
    pub roles: String,
    /// JSON array of scopes.
    pub scopes: String,
    /// JSON object of custom claims.
    pub claims: String,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Creation time, naive UTC.
    pub created_at: NaiveDateTime,
    /// Last change, naive UTC.
    pub updated_at: NaiveDateTime,
    /// The tenant.
    pub tenant_id: String,
    /// Device proofs of an earlier epoch are ended (a password change or a disable moves it on).
    pub device_epoch: i64,
}

/// Inserts a user; `Conflict` if the username is taken.
pub fn insert(conn: &mut DbConnection, row: &UserRow) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Finds a user by its unique key (`<tenant>:<lower-cased username>`).
pub fn find_by_username_key(
    conn: &mut DbConnection,
    key: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(super::unique!(
        conn,
        users::table
            .filter(users::username_key.eq(key))
            .select(UserRow::as_select())
    )?)
}

/// Finds a user by id.
pub fn find_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(super::unique!(
        conn,
        users::table.find(id).select(UserRow::as_select())
    )?)
}

/// Reads a user by id inside a transaction and locks the row until it ends, so that a
/// login and an admin change of the same user are serialized (see [`super::locked!`]).
pub fn lock(conn: &mut DbConnection, id: &str, mode: Lock) -> Result<Option<UserRow>, StoreError> {
    Ok(super::locked!(
        conn,
        users::table.find(id).select(UserRow::as_select()),
        mode
    )?)
}

/// Replaces a password hash, but only if it is still `old_hash` (a concurrent
/// password change wins over an opportunistic rehash).
pub fn replace_password_hash(
    conn: &mut DbConnection,
    id: &str,
    old_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        users::table
            .filter(users::id.eq(id))
            .filter(users::password_hash.eq(old_hash)),
    )
    .set((users::password_hash.eq(new_hash), users::updated_at.eq(now)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Enables or disables a user (a disable ends its device proofs).
pub fn set_enabled(
    conn: &mut DbConnection,
    id: &str,
    enabled: bool,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    // A disable ends the user's device proofs, as a password change does.
    let epoch = users::device_epoch + i64::from(!enabled);
    let changed = diesel::update(users::table.find(id))
        .set((
            users::enabled.eq(enabled),
            users::updated_at.eq(now),
            users::device_epoch.eq(epoch),
        ))
        .execute(conn)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A page of users ordered by id, after `after`.
pub fn page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
    tenant: Option<&str>,
    name_contains: Option<&str>,
) -> Result<Vec<UserRow>, StoreError> {
    let mut query = users::table
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_owned()));
    }
    if let Some(tenant) = tenant {
        query = query.filter(users::tenant_id.eq(tenant.to_owned()));
    }
    if let Some(part) = name_contains {
        // The key is `<tenant>:<lowercase name>`, and neither part holds a colon: the
        // pattern matches in the name only. LIKE's wildcards in the text are escaped.
        let escaped: String = part
            .to_ascii_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        query = query.filter(
            users::username_key
                .like(format!("%:%{escaped}%"))
                .escape('\\'),
        );
    }
    Ok(query.load(conn)?)
}

/// Whether a tenant has any user.
pub fn any_in_tenant(conn: &mut DbConnection, tenant: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        users::table.filter(users::tenant_id.eq(tenant)),
    ))
    .get_result(conn)?)
}

/// Replaces a user's row (all mutable fields).
pub fn update(conn: &mut DbConnection, row: &UserRow) -> Result<bool, StoreError> {
    let changed = diesel::update(users::table.find(&row.id))
        .set((
            users::password_hash.eq(&row.password_hash),
            users::roles.eq(&row.roles),
            users::scopes.eq(&row.scopes),
            users::claims.eq(&row.claims),
            users::enabled.eq(row.enabled),
            users::updated_at.eq(row.updated_at),
            users::device_epoch.eq(row.device_epoch),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Deletes a user (sessions and API keys go with it).
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(users::table.find(id)).execute(conn)? == 1)
}
