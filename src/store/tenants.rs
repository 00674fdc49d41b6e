//! The `tenants` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::Lock;
use super::schema::tenants;
use super::{DbConnection, StoreError};

/// A row of `tenants`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    /// The slug.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Whether its users, keys and clients may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

/// Inserts a tenant; `Conflict` if the id is taken.
pub fn insert(conn: &mut DbConnection, row: &TenantRow) -> Result<(), StoreError> {
    diesel::insert_into(tenants::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A tenant by id.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<TenantRow>, StoreError> {
    Ok(super::unique!(
        conn,
        tenants::table.find(id).select(TenantRow::as_select())
    )?)
}

/// A tenant by id, its row locked until the transaction ends (see [`super::locked!`]): a
/// login shares the lock, a disable takes it alone.
pub fn lock(
    conn: &mut DbConnection,
    id: &str,
    mode: Lock,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(super::locked!(
        conn,
        tenants::table.find(id).select(TenantRow::as_select()),
        mode
    )?)
}

/// A page of tenants ordered by id, after `after`.
pub fn page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<TenantRow>, StoreError> {
    let mut query = tenants::table
        .select(TenantRow::as_select())
        .order(tenants::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(tenants::id.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Replaces a tenant's name and state.
pub fn update(conn: &mut DbConnection, row: &TenantRow) -> Result<(), StoreError> {
    diesel::update(tenants::table.find(&row.id))
        .set((
            tenants::name.eq(&row.name),
            tenants::enabled.eq(row.enabled),
            tenants::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes a tenant.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(tenants::table.find(id)).execute(conn)? == 1)
}

/// Every tenant's id.
pub fn all_ids(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(tenants::table.select(tenants::id).load(conn)?)
}
