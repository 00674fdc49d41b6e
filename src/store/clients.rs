//! The `clients` table: registered OAuth clients, secrets only as hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::clients;
use super::{DbConnection, StoreError};

/// A row of `clients`.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    /// The OAuth `client_id`.
    pub client_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// A name for people.
    pub name: String,
    /// `confidential` or `public`.
    pub kind: String,
    /// SHA-256 of the secret, base64url (confidential clients).
    pub secret_hash: Option<String>,
    /// JSON array of grant types.
    pub grant_types: String,
    /// JSON array of scopes.
    pub scopes: String,
    /// JSON array of audiences it may ask for by token exchange.
    pub audiences: String,
    /// Whether it may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for ClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRow")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// Inserts a client; `Conflict` if the id is taken.
pub fn insert(conn: &mut DbConnection, row: &ClientRow) -> Result<(), StoreError> {
    diesel::insert_into(clients::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A client by id.
pub fn find(conn: &mut DbConnection, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(super::unique!(
        conn,
        clients::table
            .find(client_id)
            .select(ClientRow::as_select())
    )?)
}

/// A client's row, locked for the rest of the transaction (PostgreSQL; SQLite's writers
/// are serialized anyway): a login holds it shared while it opens a session through the
/// client, a change of the client exclusively, so the change's ending of the client's
/// sessions sees every session opened before it, and a login after it sees the change.
pub fn lock(
    conn: &mut DbConnection,
    client_id: &str,
    mode: super::Lock,
) -> Result<Option<ClientRow>, StoreError> {
    Ok(super::locked!(
        conn,
        clients::table
            .find(client_id)
            .select(ClientRow::as_select()),
        mode
    )?)
}

/// A page of clients ordered by id, after `after`, optionally of one tenant.
pub fn page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
    tenant: Option<&str>,
) -> Result<Vec<ClientRow>, StoreError> {
    let mut query = clients::table
        .select(ClientRow::as_select())
        .order(clients::client_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(clients::client_id.gt(after.to_owned()));
    }
    if let Some(tenant) = tenant {
        query = query.filter(clients::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Replaces a client's mutable fields.
pub fn update(conn: &mut DbConnection, row: &ClientRow) -> Result<(), StoreError> {
    diesel::update(clients::table.find(&row.client_id))
        .set((
            clients::name.eq(&row.name),
            clients::secret_hash.eq(&row.secret_hash),
            clients::grant_types.eq(&row.grant_types),
            clients::scopes.eq(&row.scopes),
            clients::audiences.eq(&row.audiences),
            clients::enabled.eq(row.enabled),
            clients::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes a client.
pub fn delete(conn: &mut DbConnection, client_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(clients::table.find(client_id)).execute(conn)? == 1)
}

/// Whether a tenant has any client.
pub fn any_in_tenant(conn: &mut DbConnection, tenant: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(
        clients::table.filter(clients::tenant_id.eq(tenant)),
    ))
    .get_result(conn)?)
}

/// The scopes named by any enabled client (for discovery's `scopes_supported`).
pub fn all_scopes(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(clients::table
        .filter(clients::enabled.eq(true))
        .select(clients::scopes)
        .load(conn)?)
}
