//! Registered OAuth clients: who may ask the token endpoint for what. Secrets are shown
//! once and stored as hashes; a disabled client, or one of a disabled tenant, is refused.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};

use crate::audit::{Action, AdminCall, Audit};
use crate::error::{Credential, Error, Refusal};
use crate::model::Admin;
use crate::model::Lifetimes;
use crate::model::{Audience, Client, ClientId, ClientKind, GrantType};
use crate::model::{Scope, TenantId};
use crate::revocation::{Listed, Recorded, Revocations};
use crate::sessions::revoke_client_in;
use crate::store::clients::{self as store, ClientRow};
use crate::store::{Db, DbConnection, Lock, StoreError, tenants, write_transaction};

/// A client secret: `tmcs_` and 256 random bits, base64url. `Debug` never shows it.
#[derive(Clone)]
pub struct ClientSecret(SecretString);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

impl ClientSecret {
    fn generate() -> Result<Self, Error> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| Error::internal("random generator failed"))?;
        Ok(Self(SecretString::from(format!(
            "tmcs_{}",
            URL_SAFE_NO_PAD.encode(bytes.as_ref())
        ))))
    }

    /// A presented secret.
    pub fn presented(secret: SecretString) -> Self {
        Self(secret)
    }

    /// The secret, to show once.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// SHA-256, base64url: what the database keeps (256 bits of entropy need no slow hash).
    fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            self.expose().as_bytes(),
        ))
    }
}

/// Whether a client authenticates: a confidential one with its secret, a public one
/// without any.
fn secret_matches(
    kind: ClientKind,
    presented: Option<&ClientSecret>,
    stored: Option<&str>,
) -> bool {
    match (kind, presented, stored) {
        (ClientKind::Confidential, Some(secret), Some(hash)) => secret.hash() == hash,
        (ClientKind::Public, None, _) => true,
        _ => false,
    }
}

/// The client a login names, inside the login's transaction: it must exist in the
/// login's tenant, be enabled, allow `password`, and authenticate (a confidential
/// client with its secret); anything else fails the login like a wrong password. Its row
/// stays locked (shared) until the login commits: a disable of the client waits for the
/// session this login opens, and ends it too.
pub fn client_for_login(
    conn: &mut DbConnection,
    tenant: &TenantId,
    client_id: &ClientId,
    secret: Option<&ClientSecret>,
) -> Result<Option<Client>, Error> {
    let Some(row) = store::lock(conn, client_id.as_str(), Lock::Share)? else {
        return Ok(None);
    };
    let client = Client::from_row(&row)?;
    let usable = client.enabled
        && &client.tenant == tenant
        && client.allows(GrantType::Password)
        && secret_matches(client.kind, secret, row.secret_hash.as_deref());
    Ok(usable.then_some(client))
}

/// A client's row and the client, inside a transaction that changes it, if `admin` may
/// see it (else `NotFound`, as for a client that does not exist); the row stays locked
/// until the change commits (logins through the client wait, see [`client_for_login`]).
fn visible_row(
    conn: &mut DbConnection,
    key: &str,
    admin: &Admin,
) -> Result<(ClientRow, Client), Error> {
    let row = store::lock(conn, key, Lock::Update)?.ok_or(Error::NotFound("client"))?;
    let client = Client::from_row(&row)?;
    if !admin.may_see(&client.tenant) {
        return Err(Error::NotFound("client"));
    }
    Ok((row, client))
}

/// A client to register, parsed.
#[derive(Debug)]
pub struct NewClient {
    /// Its id; generated when absent.
    pub client_id: Option<ClientId>,
    /// A name for people.
    pub name: String,
    /// Its tenant; the admin's when absent.
    pub tenant: Option<TenantId>,
    /// Confidential or public.
    pub kind: ClientKind,
    /// What it may do.
    pub grant_types: Vec<GrantType>,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Audiences for token exchange.
    pub audiences: Vec<Audience>,
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ClientPatch {
    /// New name.
    pub name: Option<String>,
    /// New grant types.
    pub grant_types: Option<Vec<GrantType>>,
    /// New scopes.
    pub scopes: Option<Vec<Scope>>,
    /// New audiences.
    pub audiences: Option<Vec<Audience>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Parses a client's name: 1 to 100 printable characters, trimmed.
pub fn parse_name(s: &str) -> Result<String, Error> {
    crate::model::text::printable(s, 100)
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid("name must be 1 to 100 printable characters"))
}

fn check_grants(kind: ClientKind, grants: &[GrantType]) -> Result<(), Error> {
    if kind == ClientKind::Public && grants.contains(&GrantType::ClientCredentials) {
        return Err(Error::invalid(
            "client_credentials is for confidential clients only",
        ));
    }
    // RFC 8693 section 5: a client that cannot authenticate must not exchange tokens.
    if kind == ClientKind::Public && grants.contains(&GrantType::TokenExchange) {
        return Err(Error::invalid(
            "token exchange is for confidential clients only",
        ));
    }
    Ok(())
}

/// The clients use cases.
pub struct Clients {
    db: Db,
    audit: Arc<Audit>,
    revocations: Arc<Revocations>,
    lifetimes: Lifetimes,
}

impl Clients {
    /// The service.
    pub fn new(
        db: Db,
        audit: Arc<Audit>,
        revocations: Arc<Revocations>,
        lifetimes: Lifetimes,
    ) -> Self {
        Self {
            db,
            audit,
            revocations,
            lifetimes,
        }
    }

    /// Registers a client; a confidential one gets its secret, shown only in this answer.
    pub async fn create(
        &self,
        admin: &Admin,
        new: NewClient,
        now: DateTime<Utc>,
    ) -> Result<(Client, Option<ClientSecret>), Error> {
        let result = self.insert(admin, new, now).await;
        let target = result
            .as_ref()
            .ok()
            .map(|(c, _)| format!("client:{}", c.client_id));
        let call = AdminCall::new(admin, Action::ClientCreate).on(target);
        self.audit.record_admin(call, result.is_ok(), now).await;
        result
    }

    async fn insert(
        &self,
        admin: &Admin,
        new: NewClient,
        now: DateTime<Utc>,
    ) -> Result<(Client, Option<ClientSecret>), Error> {
        let tenant = admin.tenant_for_new(new.tenant)?;
        check_grants(new.kind, &new.grant_types)?;
        let secret = match new.kind {
            ClientKind::Confidential => Some(ClientSecret::generate()?),
            ClientKind::Public => None,
        };
        let client_id = match new.client_id {
            Some(id) if id.could_be_a_user_id() => {
                return Err(Error::invalid(
                    "client_id must not be a UUID: user ids are, and a client's own token names its client_id as its subject",
                ));
            }
            Some(id) => id,
            None => ClientId::generate()?,
        };
        let row = ClientRow {
            client_id: client_id.as_str().to_owned(),
            tenant_id: tenant.as_str().to_owned(),
            name: new.name,
            kind: new.kind.as_str().to_owned(),
            secret_hash: secret.as_ref().map(ClientSecret::hash),
            grant_types: serde_json::to_string(&new.grant_types)?,
            scopes: serde_json::to_string(&new.scopes)?,
            audiences: serde_json::to_string(&new.audiences)?,
            enabled: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        let client = Client::from_row(&row)?;
        let inserted = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    if tenants::find(conn, &row.tenant_id)?.is_none() {
                        return Err(Error::NotFound("tenant"));
                    }
                    match store::insert(conn, &row) {
                        Err(StoreError::Conflict) => {
                            Err(Error::conflict("a client with this client_id exists"))
                        }
                        other => Ok(other?),
                    }
                })
            })
            .await;
        inserted?;
        Ok((client, secret))
    }

    /// A page of clients after `after`, by id.
    pub async fn list(
        &self,
        admin: &Admin,
        tenant: Option<TenantId>,
        after: Option<String>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Client>, Error> {
        let call = AdminCall::new(admin, Action::ClientList);
        self.audit
            .admin(call, now, async {
                let scope = admin.scope(tenant)?;
                let rows = self
                    .db
                    .run(move |conn| store::page(conn, after.as_deref(), limit, scope.filter()))
                    .await?;
                rows.iter()
                    .map(Client::from_row)
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
    }

    /// One client.
    pub async fn get(
        &self,
        admin: &Admin,
        id: ClientId,
        now: DateTime<Utc>,
    ) -> Result<Client, Error> {
        let call = AdminCall::new(admin, Action::ClientGet).on(format!("client:{id}"));
        self.audit.admin(call, now, self.visible(admin, &id)).await
    }

    async fn visible(&self, admin: &Admin, id: &ClientId) -> Result<Client, Error> {
        let key = id.as_str().to_owned();
        let row = self.db.run(move |conn| store::find(conn, &key)).await?;
        let client = row.as_ref().map(Client::from_row).transpose()?;
        client
            .filter(|c| admin.may_see(&c.tenant))
            .ok_or(Error::NotFound("client"))
    }

    /// The use case of `POST /api/admin/clients/{id}/enable|disable` (and the console's):
    /// [`Clients::update`] of `enabled`, audited as `client.enable` or `client.disable`.
    pub async fn set_enabled(
        &self,
        admin: &Admin,
        id: ClientId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Client, Error> {
        let patch = ClientPatch {
            enabled: Some(enabled),
            ..ClientPatch::default()
        };
        let action = if enabled {
            Action::ClientEnable
        } else {
            Action::ClientDisable
        };
        self.update(admin, id, patch, action, now).await
    }

    /// Changes a client (and, with `action`, enables or disables it).
    pub async fn update(
        &self,
        admin: &Admin,
        id: ClientId,
        patch: ClientPatch,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<Client, Error> {
        let lifetimes = self.lifetimes;
        let work = self.change(admin, &id, now, move |conn, row, client| {
            if let Some(name) = patch.name {
                row.name = name;
            }
            if let Some(grants) = patch.grant_types {
                check_grants(client.kind, &grants)?;
                row.grant_types = serde_json::to_string(&grants)?;
            }
            if let Some(scopes) = patch.scopes {
                row.scopes = serde_json::to_string(&scopes)?;
            }
            if let Some(audiences) = patch.audiences {
                row.audiences = serde_json::to_string(&audiences)?;
            }
            let mut ended = Vec::new();
            if let Some(enabled) = patch.enabled {
                if client.enabled && !enabled {
                    // Its sessions end with it, in this transaction: enabling it again
                    // does not bring them back.
                    ended = revoke_client_in(
                        conn,
                        client.client_id.as_str(),
                        "client disabled",
                        &lifetimes,
                        now,
                    )?;
                }
                row.enabled = enabled;
            }
            Ok(ended)
        });
        let call = AdminCall::new(admin, action).on(format!("client:{id}"));
        let (client, recorded) = self.audit.admin(call, now, work).await?;
        self.revocations.publish(&recorded, now).await;
        Ok(client)
    }

    /// A new secret for a confidential client; the old one stops working at once.
    pub async fn rotate_secret(
        &self,
        admin: &Admin,
        id: ClientId,
        now: DateTime<Utc>,
    ) -> Result<(Client, ClientSecret), Error> {
        let secret = ClientSecret::generate()?;
        let hash = secret.hash();
        let work = self.change(admin, &id, now, move |_, row, client| {
            if client.kind != ClientKind::Confidential {
                return Err(Error::conflict("a public client has no secret"));
            }
            row.secret_hash = Some(hash);
            Ok(Vec::new())
        });
        let call = AdminCall::new(admin, Action::ClientRotateSecret).on(format!("client:{id}"));
        let (client, _) = self.audit.admin(call, now, work).await?;
        Ok((client, secret))
    }

    /// Changes a client in one transaction; `apply` may end sessions (the entries it
    /// returns are recorded in the same transaction, for the caller to publish).
    async fn change(
        &self,
        admin: &Admin,
        id: &ClientId,
        now: DateTime<Utc>,
        apply: impl FnOnce(&mut DbConnection, &mut ClientRow, &Client) -> Result<Vec<Listed>, Error>
        + Send
        + 'static,
    ) -> Result<(Client, Recorded), Error> {
        let key = id.as_str().to_owned();
        let admin = admin.clone();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let (mut row, client) = visible_row(conn, &key, &admin)?;
                    let ended = apply(conn, &mut row, &client)?;
                    row.updated_at = now.naive_utc();
                    store::update(conn, &row)?;
                    let recorded = Revocations::record(conn, ended, now)?;
                    Ok((Client::from_row(&row)?, recorded))
                })
            })
            .await
    }

    /// Deletes a client and, in the same transaction, ends every session opened through
    /// it (refresh and access tokens alike): registering the same `client_id` again
    /// brings none of them back.
    pub async fn delete(
        &self,
        admin: &Admin,
        id: ClientId,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let key = id.as_str().to_owned();
        let (admin_copy, lifetimes) = (admin.clone(), self.lifetimes);
        let work = self.db.run(move |conn| {
            write_transaction(conn, |conn| {
                visible_row(conn, &key, &admin_copy)?;
                let ended = revoke_client_in(conn, &key, "client deleted", &lifetimes, now)?;
                store::delete(conn, &key)?;
                Ok::<_, Error>(Revocations::record(conn, ended, now)?)
            })
        });
        let call = AdminCall::new(admin, Action::ClientDelete).on(format!("client:{id}"));
        let recorded: Recorded = self.audit.admin(call, now, work).await?;
        self.revocations.publish(&recorded, now).await;
        Ok(())
    }

    /// Authenticates a client at the token endpoint: an enabled client of an enabled
    /// tenant, with its secret if it is confidential and without one if it is public.
    pub async fn authenticate(
        &self,
        id: &ClientId,
        secret: Option<&ClientSecret>,
    ) -> Result<Client, Error> {
        let refused = || Error::refused(Credential::Client, Refusal::Invalid);
        let key = id.as_str().to_owned();
        let found = self
            .db
            .run(move |conn| {
                let Some(row) = store::find(conn, &key)? else {
                    return Ok(None);
                };
                let tenant_enabled =
                    tenants::find(conn, &row.tenant_id)?.is_some_and(|t| t.enabled);
                Ok::<_, Error>(Some((row, tenant_enabled)))
            })
            .await?;
        let Some((row, tenant_enabled)) = found else {
            return Err(refused());
        };
        let client = Client::from_row(&row)?;
        let secret_ok = secret_matches(client.kind, secret, row.secret_hash.as_deref());
        if !secret_ok || !client.enabled || !tenant_enabled {
            return Err(refused());
        }
        Ok(client)
    }

    /// The scopes, over every enabled client, for discovery.
    pub async fn scopes_supported(&self) -> Result<Vec<String>, Error> {
        let lists = self.db.run(store::all_scopes).await?;
        let mut scopes: Vec<String> = Vec::new();
        for list in lists {
            for scope in serde_json::from_str::<Vec<String>>(&list)? {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        scopes.sort();
        Ok(scopes)
    }
}
