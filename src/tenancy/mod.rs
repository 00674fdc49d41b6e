//! Tenants: isolated sets of users, API keys and clients. Only admins of `default`
//! manage them. Disabling a tenant ends its sessions and cuts off its access tokens in
//! the transaction that disables it; logins, refreshes, its keys and clients are refused
//! from that commit on, on every instance (each of them reads the tenant's state).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{Action, AdminCall, Audit};
use crate::error::Error;
use crate::model::Admin;
use crate::model::Lifetimes;
use crate::model::TenantId;
use crate::revocation::{Recorded, Revocation, Revocations};
use crate::store::Lock;
use crate::store::tenants::{self as store, TenantRow};
use crate::store::{Db, StoreError, api_keys, clients, users, write_transaction};

/// A tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Its slug.
    pub id: TenantId,
    /// A name for people.
    pub name: String,
    /// Whether its users, keys and clients may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    fn from_row(row: TenantRow) -> Result<Self, Error> {
        Ok(Self {
            id: TenantId::parse(&row.id).map_err(Error::internal)?,
            name: row.name,
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// A name for people: 1 to 100 printable characters, trimmed.
#[derive(Debug, Clone)]
pub struct TenantName(String);

impl TenantName {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, Error> {
        crate::model::text::printable(s, 100)
            .map(|name| Self(name.to_owned()))
            .ok_or_else(|| Error::invalid("name must be 1 to 100 printable characters"))
    }
}

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TenantPatch {
    /// New name.
    pub name: Option<TenantName>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The tenants use cases.
pub struct Tenants {
    db: Db,
    revocations: Arc<Revocations>,
    audit: Arc<Audit>,
    lifetimes: Lifetimes,
}

impl Tenants {
    /// The service.
    pub fn new(
        db: Db,
        revocations: Arc<Revocations>,
        audit: Arc<Audit>,
        lifetimes: Lifetimes,
    ) -> Self {
        Self {
            db,
            revocations,
            audit,
            lifetimes,
        }
    }

    /// Creates a tenant; 409 if the id is taken.
    pub async fn create(
        &self,
        admin: &Admin,
        id: TenantId,
        name: TenantName,
        now: DateTime<Utc>,
    ) -> Result<Tenant, Error> {
        admin.require_default()?;
        let row = TenantRow {
            id: id.as_str().to_owned(),
            name: name.0,
            enabled: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        let tenant = Tenant::from_row(row.clone())?;
        let call = AdminCall::new(admin, Action::TenantCreate).on(format!("tenant:{id}"));
        self.audit
            .admin(call, now, async {
                match self.db.run(move |conn| store::insert(conn, &row)).await {
                    Ok(()) => Ok(tenant),
                    Err(StoreError::Conflict) => {
                        Err(Error::conflict("a tenant with this id exists"))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }

    /// A page of tenants after `after`, by id.
    pub async fn list(
        &self,
        admin: &Admin,
        after: Option<String>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Tenant>, Error> {
        admin.require_default()?;
        let call = AdminCall::new(admin, Action::TenantList);
        let rows = self
            .db
            .run(move |conn| store::page(conn, after.as_deref(), limit));
        self.audit
            .admin(call, now, rows)
            .await?
            .into_iter()
            .map(Tenant::from_row)
            .collect()
    }

    /// One tenant.
    pub async fn get(
        &self,
        admin: &Admin,
        id: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Tenant, Error> {
        admin.require_default()?;
        let key = id.as_str().to_owned();
        let call = AdminCall::new(admin, Action::TenantGet).on(format!("tenant:{id}"));
        let row = self.audit.admin(call, now, async {
            let row = self.db.run(move |conn| store::find(conn, &key)).await?;
            row.ok_or(Error::NotFound("tenant"))
        });
        Tenant::from_row(row.await?)
    }

    /// Renames, enables or disables a tenant. A disable ends every session of its users
    /// and cuts off every access token issued to them, in the same transaction; `default`
    /// cannot be disabled (409).
    pub async fn update(
        &self,
        admin: &Admin,
        id: TenantId,
        patch: TenantPatch,
        now: DateTime<Utc>,
    ) -> Result<Tenant, Error> {
        admin.require_default()?;
        let lifetimes = self.lifetimes;
        let key = id.as_str().to_owned();
        let work = self.db.run(move |conn| {
            write_transaction(conn, |conn| {
                let mut row =
                    store::lock(conn, &key, Lock::Update)?.ok_or(Error::NotFound("tenant"))?;
                let disabling = row.enabled && patch.enabled == Some(false);
                if disabling && key == crate::model::DEFAULT_TENANT {
                    return Err(Error::conflict("the default tenant cannot be disabled"));
                }
                if let Some(name) = patch.name {
                    row.name = name.0;
                }
                if let Some(enabled) = patch.enabled {
                    row.enabled = enabled;
                }
                row.updated_at = now.naive_utc();
                store::update(conn, &row)?;
                let mut entries = Vec::new();
                if disabling {
                    entries = crate::sessions::revoke_tenant_in(
                        conn,
                        &key,
                        "tenant disabled",
                        &lifetimes,
                        now,
                    )?;
                    // Every token issued up to the end of this second: logins and
                    // refreshes of the tenant are refused from this commit on.
                    entries.push((
                        Revocation::Tenant {
                            tenant: key.clone(),
                            cutoff: now.timestamp() + 1,
                        },
                        lifetimes.revocation_end(now) + chrono::TimeDelta::seconds(1),
                    ));
                }
                let recorded = Revocations::record(conn, entries, now)?;
                Ok((Tenant::from_row(row)?, recorded))
            })
        });
        let call = AdminCall::new(admin, Action::TenantUpdate).on(format!("tenant:{id}"));
        let (tenant, recorded): (Tenant, Recorded) = self.audit.admin(call, now, work).await?;
        self.revocations.publish(&recorded, now).await;
        Ok(tenant)
    }

    /// Deletes a tenant that has no users, API keys or clients (409 otherwise, and for
    /// `default`).
    pub async fn delete(
        &self,
        admin: &Admin,
        id: TenantId,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        admin.require_default()?;
        let key = id.as_str().to_owned();
        let work = self.db.run(move |conn| {
            write_transaction(conn, |conn| {
                store::lock(conn, &key, Lock::Update)?.ok_or(Error::NotFound("tenant"))?;
                if key == crate::model::DEFAULT_TENANT {
                    return Err(Error::conflict("the default tenant cannot be deleted"));
                }
                if users::any_in_tenant(conn, &key)?
                    || api_keys::any_in_tenant(conn, &key)?
                    || clients::any_in_tenant(conn, &key)?
                {
                    return Err(Error::conflict(
                        "the tenant still has users, API keys or clients",
                    ));
                }
                store::delete(conn, &key)?;
                Ok(())
            })
        });
        let call = AdminCall::new(admin, Action::TenantDelete).on(format!("tenant:{id}"));
        self.audit.admin(call, now, work).await
    }
}
