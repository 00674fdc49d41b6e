//! Identity: users, passwords, login and the brute-force limits, and the admin use cases
//! that change users. Each use case is one function that does the whole thing:
//!
//! - a login reserves its rate-limit attempt before hashing, and opens its session in the
//!   transaction that re-reads (and locks) the user, so a login in flight never survives
//!   a password change, a disable or a delete that commits before it;
//! - a change of password, roles, scopes or `enabled`, a delete and a "log out everywhere"
//!   commit together with the revocations they imply.

pub mod admission;
pub mod bootstrap;
pub mod devices;
pub mod passwords;
pub mod rate_limit;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use self::admission::Class;
use self::devices::DeviceKey;
use self::passwords::{Admission, Password, PasswordHasher, Verified};
use self::rate_limit::{AttemptKeys, Limited, LoginLimiter, Reservation, address_key};
use crate::audit::{Action, Actor, AdminCall, Audit, AuditEvent, Outcome};
use crate::dpop::{self, Jkt};
use crate::error::{Credential, Door, Error, Refusal, ScopeLimit};
use crate::metrics;
use crate::model::Admin;
use crate::model::{Claims, Role, Scope, TenantId, User, Username};
use crate::model::{Client, ClientId, ClientKind, GrantType};
use crate::model::{Lifetimes, delta};
use crate::oauth::clients::{ClientSecret, client_for_login};
use crate::revocation::{Recorded, Revocations};
use crate::sessions::{self, Sessions, TokenPair};
use crate::store::Lock;
use crate::store::users::{self as store, UserRow};
use crate::store::{Db, StoreError, write_transaction};
use crate::store::{markers, tenants};
use crate::tokens::TokenService;

/// What a new user is made of, parsed.
#[derive(Debug)]
pub struct NewUser {
    /// The tenant; the admin's when absent.
    pub tenant: Option<TenantId>,
    /// Name.
    pub username: Username,
    /// Password.
    pub password: Password,
    /// Roles.
    pub roles: Vec<Role>,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Custom claims.
    pub claims: Claims,
}

/// Changes to a user, parsed; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// New password.
    pub password: Option<Password>,
    /// New roles.
    pub roles: Option<Vec<Role>>,
    /// New scopes.
    pub scopes: Option<Vec<Scope>>,
    /// New custom claims.
    pub claims: Option<Claims>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// A login attempt, parsed.
#[derive(Debug)]
pub struct LoginAttempt {
    /// The username as typed (an invalid one simply matches nobody).
    pub username: String,
    /// The password.
    pub password: Password,
    /// The tenant whose user logs in (`default` unless named).
    pub tenant: TenantId,
    /// The registered client the login is for (copied into `client_id`); it must exist in
    /// the tenant, be enabled and allow `password`.
    pub client_id: Option<ClientId>,
    /// A confidential client's secret (a public client presents none).
    pub client_secret: Option<ClientSecret>,
    /// Narrow the token to these scopes (all of them must be the user's); `None`: all.
    pub scopes: Option<Vec<Scope>>,
    /// The client address, for the limits and the audit log.
    pub ip: Option<String>,
    /// The `User-Agent`, kept with the session (its address is `ip`).
    pub user_agent: Option<String>,
    /// A device proof from an earlier login on this device, if one was presented.
    pub device_proof: Option<String>,
    /// A DPoP proof (RFC 9449): the tokens are then bound to its key.
    pub dpop: Option<dpop::Presented>,
}

/// Who a login names and where it comes from, as its limits and audit rows see it.
struct Who {
    /// The username's key in its tenant (also its limit counter), if the name is valid.
    user_key: Option<String>,
    /// The audit target: the username, only if it is a valid one (the log is not a place
    /// for arbitrary input).
    target: Option<String>,
    /// The client address, and the key its limit counts under (IPv6 per /64).
    ip: Option<String>,
    address: Option<String>,
}

impl Who {
    fn of(attempt: &LoginAttempt) -> Self {
        let name = Username::parse(&attempt.username).ok();
        Self {
            user_key: name.as_ref().map(|u| u.key_in(&attempt.tenant)),
            target: name.as_ref().map(|u| {
                if attempt.tenant.is_default() {
                    format!("username:{}", u.as_str())
                } else {
                    format!("username:{}:{}", attempt.tenant, u.as_str())
                }
            }),
            ip: attempt.ip.clone(),
            address: attempt.ip.as_deref().map(address_key),
        }
    }

    fn event(&self, actor: Actor, action: Action, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            actor,
            action,
            target: self.target.clone(),
            ip: self.ip.clone(),
            outcome,
            detail: None,
        }
    }
}

/// A session a login opened, with what its answer needs.
struct SessionOpened {
    user: User,
    epoch: i64,
    scopes: Vec<Scope>,
    opened: sessions::Opened,
    refreshable: bool,
    /// The DPoP key the tokens are bound to, if a proof came with the login.
    jkt: Option<Jkt>,
}

/// What [`Identity`] is built from.
pub struct IdentityParts {
    /// The database.
    pub db: Db,
    /// Password hashing.
    pub hasher: Arc<PasswordHasher>,
    /// Brute-force limits.
    pub limiter: LoginLimiter,
    /// Sessions, opened by logins.
    pub sessions: Arc<Sessions>,
    /// Access tokens (their size bounds users).
    pub tokens: Arc<TokenService>,
    /// The revocation list.
    pub revocations: Arc<Revocations>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// The key of device proofs.
    pub devices: DeviceKey,
    /// Lifetime of a device proof.
    pub device_proof_ttl: std::time::Duration,
}

/// Users and logins.
pub struct Identity {
    db: Db,
    hasher: Arc<PasswordHasher>,
    limiter: LoginLimiter,
    sessions: Arc<Sessions>,
    tokens: Arc<TokenService>,
    revocations: Arc<Revocations>,
    audit: Arc<Audit>,
    lifetimes: Lifetimes,
    devices: DeviceKey,
    device_proof_ttl: std::time::Duration,
}

impl UserPatch {
    /// The names of the fields this patch sets (never their values).
    pub fn changed_fields(&self) -> Vec<&'static str> {
        [
            ("password", self.password.is_some()),
            ("roles", self.roles.is_some()),
            ("scopes", self.scopes.is_some()),
            ("claims", self.claims.is_some()),
            ("enabled", self.enabled.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
    }
}

/// A change that must end every session of the user.
fn ends_sessions(patch: &UserPatch, before: &User) -> bool {
    patch.password.is_some()
        || patch.roles.as_ref().is_some_and(|r| *r != before.roles)
        || patch.scopes.as_ref().is_some_and(|s| *s != before.scopes)
        || (before.enabled && patch.enabled == Some(false))
}

impl Identity {
    /// The service.
    pub fn new(parts: IdentityParts) -> Self {
        Self {
            db: parts.db,
            hasher: parts.hasher,
            limiter: parts.limiter,
            sessions: parts.sessions,
            tokens: parts.tokens,
            revocations: parts.revocations,
            audit: parts.audit,
            lifetimes: parts.lifetimes,
            devices: parts.devices,
            device_proof_ttl: parts.device_proof_ttl,
        }
    }

    /// The use case of `POST /api/login`. Unknown user, wrong password and disabled user
    /// answer alike and cost one argon2 verification each. In order: the device proof,
    /// the address's (or the proof's) budget, a hashing thread, the username's delay, the
    /// password, then the session, in a transaction that sees any change made meanwhile.
    pub async fn login(
        &self,
        attempt: LoginAttempt,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let who = Who::of(&attempt);
        // A flawed DPoP proof is refused first: it costs no hash and no attempt.
        let jkt = match &attempt.dpop {
            Some(proof) => Some(
                self.sessions
                    .dpop()
                    .check(proof, Door::TokenEndpoint, None, now)
                    .await?,
            ),
            None => None,
        };
        let (row, device) = self.recognize_device(&attempt, &who, now).await?;
        // The address (or the device proof) is counted before anything else, refusals
        // included: a login refused below (busy) still spends its address's budget, so
        // fresh addresses are the attacker's cost.
        let keys = AttemptKeys {
            ip: who.address.as_deref(),
            device: device.as_deref(),
        };
        let mut reservation = match self.limiter.reserve(keys, now).await {
            Ok(reservation) => reservation,
            Err(limited) => return Err(self.rate_limited(&who, limited, now).await),
        };
        let admission = self.admit(&reservation, &who).await?;
        // The username's delay, once this login holds its thread (a busy refusal above
        // charged only the address).
        if let Err(limited) = self
            .limiter
            .reserve_user(&mut reservation, who.user_key.as_deref(), now)
            .await
        {
            drop(admission);
            return Err(self.rate_limited(&who, limited, now).await);
        }
        let Some((row, needs_rehash)) = self.check_password(admission, &attempt, &who, row).await?
        else {
            return Err(self.failed(&who, now).await);
        };
        let Some(opened) = self.open_session(&attempt, &row, jkt, now).await? else {
            return Err(self.failed(&who, now).await);
        };
        self.limiter.succeeded(&reservation, now).await;
        if needs_rehash {
            self.spawn_rehash(&row, attempt.password.clone(), now);
        }
        self.logged_in(&attempt, &who, opened, now).await
    }

    /// A device proof counts only if it is the current one of this username's user;
    /// anything else about it leaves the login anonymous (never refused for it). Returns
    /// the user's row if it was read (`Some(None)`: no such user) and the proof's id.
    async fn recognize_device(
        &self,
        attempt: &LoginAttempt,
        who: &Who,
        now: DateTime<Utc>,
    ) -> Result<(Option<Option<UserRow>>, Option<String>), Error> {
        let claimed = attempt
            .device_proof
            .as_deref()
            .and_then(|proof| self.devices.open(proof, now));
        let (Some(claimed), Some(key)) = (claimed, who.user_key.clone()) else {
            return Ok((None, None));
        };
        let found = self
            .db
            .run(move |conn| store::find_by_username_key(conn, &key))
            .await?;
        let device = found
            .as_ref()
            .is_some_and(|r| claimed.is_for(r))
            .then_some(claimed.id);
        Ok((Some(found), device))
    }

    /// A hashing thread, in turn: device proofs first, then the client addresses
    /// round-robin; or 503 with Retry-After at once when this login is not owed a place.
    /// The refusal leaves after a short pause (at most 100 ms): answered in microseconds,
    /// a client that ignores Retry-After (wrk, a bot) sends the next login at once, and
    /// the refusals take the CPU from the hashes that would let logins in (measured: 29 000
    /// refusals a second, the hashing threads at a tenth of a core each).
    async fn admit(&self, reservation: &Reservation, who: &Who) -> Result<Admission, Error> {
        let class = match reservation.trusted {
            true => Class::Device,
            false => Class::Address(who.address.clone().unwrap_or_default()),
        };
        match self.hasher.admit(class).await {
            Ok(admission) => Ok(admission),
            Err(busy) => {
                metrics::count(metrics::LOGINS, "busy");
                tokio::time::sleep(self.hasher.busy_pause()).await;
                Err(busy)
            }
        }
    }

    /// The password against the user's hash (verified even for an unknown user, so that
    /// timing tells nothing): the enabled user's row, and whether its hash needs
    /// upgrading; `None` for any failure.
    async fn check_password(
        &self,
        admission: Admission,
        attempt: &LoginAttempt,
        who: &Who,
        row: Option<Option<UserRow>>,
    ) -> Result<Option<(UserRow, bool)>, Error> {
        let row = match (row, who.user_key.clone()) {
            (Some(row), _) => row,
            (None, Some(key)) => {
                self.db
                    .run(move |conn| store::find_by_username_key(conn, &key))
                    .await?
            }
            (None, None) => None,
        };
        let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
        let verified = self
            .hasher
            .verify(admission, attempt.password.clone(), stored_hash)
            .await?;
        Ok(match (row, verified) {
            (Some(row), Verified::Match { needs_rehash }) if row.enabled => {
                Some((row, needs_rehash))
            }
            _ => None,
        })
    }

    /// Opens the session in one transaction with the tenant and the user as they are now,
    /// locked until the session exists: a change that committed while the password was
    /// being checked (a new password, a disable, a delete) wins (`None`).
    async fn open_session(
        &self,
        attempt: &LoginAttempt,
        row: &UserRow,
        jkt: Option<Jkt>,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionOpened>, Error> {
        let lifetimes = self.lifetimes;
        let requested = attempt.scopes.clone();
        let client_id = attempt.client_id.clone();
        let client_secret = attempt.client_secret.clone();
        let tenant = attempt.tenant.clone();
        let verified_hash = row.password_hash.clone();
        let user_id = row.id.clone();
        let refresh_key = self.sessions.refresh_key().clone();
        let device = sessions::Device::new(attempt.user_agent.as_deref(), attempt.ip.clone());
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    if !tenants::lock(conn, tenant.as_str(), Lock::Share)?
                        .is_some_and(|t| t.enabled)
                    {
                        return Ok(None);
                    }
                    let (user, epoch) = match store::lock(conn, &user_id, Lock::Share)? {
                        Some(row) if row.enabled && row.password_hash == verified_hash => {
                            (User::from_row(&row)?, row.device_epoch)
                        }
                        _ => return Ok(None),
                    };
                    // A named client must be one of this tenant that may take logins; its
                    // scopes bound the token's.
                    let client = match &client_id {
                        None => None,
                        Some(id) => {
                            match client_for_login(conn, &tenant, id, client_secret.as_ref())? {
                                Some(client) => Some(client),
                                None => return Ok(None),
                            }
                        }
                    };
                    let scopes = narrow(&user, client.as_ref(), requested.clone())?;
                    // First-party sessions and public clients' are bound to the proof's
                    // key; a confidential client's refresh tokens are already its own
                    // (RFC 9449 section 5), so only its access tokens are bound.
                    let bound_to = jkt
                        .as_ref()
                        .filter(|_| client.as_ref().is_none_or(|c| c.kind == ClientKind::Public));
                    let opening = sessions::Opening {
                        user_id: user.id,
                        scopes: &scopes,
                        client_id: client_id.as_ref().map(ClientId::as_str),
                        device: &device,
                        bound_to,
                    };
                    let opened = sessions::open(conn, &refresh_key, opening, &lifetimes, now)?;
                    // A client without the refresh_token grant gets no refresh token (its
                    // session still ends its access tokens at logout and revocation).
                    let refreshable = client
                        .as_ref()
                        .is_none_or(|c| c.allows(GrantType::RefreshToken));
                    Ok::<_, Error>(Some(SessionOpened {
                        user,
                        epoch,
                        scopes,
                        opened,
                        refreshable,
                        jkt: jkt.clone(),
                    }))
                })
            })
            .await
    }

    /// The answer of a successful login: audited, with its token pair and a fresh device
    /// proof (the device stays known while it is used).
    async fn logged_in(
        &self,
        attempt: &LoginAttempt,
        who: &Who,
        session: SessionOpened,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let SessionOpened {
            user,
            epoch,
            scopes,
            opened,
            refreshable,
            jkt,
        } = session;
        self.tokens.ready(now).await?;
        metrics::count(metrics::LOGINS, "success");
        let event = who.event(Actor::User(user.id), Action::Login, Outcome::Success);
        self.audit.record(event, now).await;
        let mut pair = self.sessions.pair(
            &user,
            &scopes,
            attempt.client_id.as_ref().map(ClientId::as_str),
            opened,
            jkt,
            now,
        )?;
        pair.refreshable = refreshable;
        pair.device_proof = Some(self.devices.issue(
            user.id,
            epoch,
            now + delta(self.device_proof_ttl),
        )?);
        Ok(pair)
    }

    /// A refused password (or a user changed meanwhile): audited, one answer for all.
    async fn failed(&self, who: &Who, now: DateTime<Utc>) -> Error {
        metrics::count(metrics::LOGINS, "failure");
        let event = who.event(Actor::Anonymous, Action::Login, Outcome::Failure);
        self.audit.record(event, now).await;
        Error::refused(Credential::Password, Refusal::Invalid)
    }

    /// A login over a limit: 429, audited one row per full counter per window (a flood
    /// of refusals cannot fill the log).
    async fn rate_limited(&self, who: &Who, limited: Limited, now: DateTime<Utc>) -> Error {
        let until = now + delta(self.limiter.window());
        let event = who.event(Actor::Anonymous, Action::LoginRateLimited, Outcome::Failure);
        let key = format!("login.rate_limited|{}", limited.counter);
        self.audit.record_throttled(event, key, until, now).await;
        metrics::count(metrics::LOGINS, "rate_limited");
        Error::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        }
    }

    /// Upgrades a hash made with older parameters, after the answer is sent; a password
    /// changed in the meantime wins.
    fn spawn_rehash(&self, row: &UserRow, password: Password, now: DateTime<Utc>) {
        let (db, hasher) = (self.db.clone(), self.hasher.clone());
        let (id, old) = (row.id.clone(), row.password_hash.clone());
        tokio::spawn(async move {
            let result: Result<bool, Error> = async {
                let new = hasher.hash(password).await?;
                Ok(db
                    .run(move |c| store::replace_password_hash(c, &id, &old, &new, now.naive_utc()))
                    .await?)
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, "password rehash failed; will retry at the next login");
            }
        });
    }

    /// Creates a user (admin API, CLI, bootstrap).
    pub async fn create_user(
        &self,
        admin: &Admin,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<User, Error> {
        let username = new.username.as_str().to_owned();
        let result = match admin.tenant_for_new(new.tenant.clone()) {
            Ok(tenant) => self.insert_user(tenant, new, now).await,
            Err(e) => Err(e),
        };
        let target = match &result {
            Ok(user) => format!("user:{}", user.id),
            Err(_) => format!("username:{username}"),
        };
        let call = AdminCall::new(admin, Action::UserCreate).on(target);
        self.audit.record_admin(call, result.is_ok(), now).await;
        result
    }

    async fn insert_user(
        &self,
        tenant: TenantId,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<User, Error> {
        let password_hash = self.hasher.hash(new.password).await?;
        let row = UserRow {
            id: Uuid::now_v7().to_string(),
            tenant_id: tenant.as_str().to_owned(),
            device_epoch: 0,
            username_key: new.username.key_in(&tenant),
            username: new.username.as_str().to_owned(),
            password_hash,
            roles: serde_json::to_string(&new.roles)?,
            scopes: serde_json::to_string(&new.scopes)?,
            claims: serde_json::to_string(new.claims.as_map())?,
            enabled: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        let user = User::from_row(&row)?;
        self.tokens.check_fits(&user)?;
        // The bootstrap admin is the default tenant's: only its admins count.
        let default_admin = user.is_admin() && user.tenant.is_default();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    if tenants::find(conn, &row.tenant_id)?.is_none() {
                        return Err(Error::NotFound("tenant"));
                    }
                    match store::insert(conn, &row) {
                        Err(StoreError::Conflict) => {
                            return Err(Error::conflict("username is taken in this tenant"));
                        }
                        other => other?,
                    }
                    if default_admin {
                        markers::set(conn, markers::HAD_ADMIN, 1)?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(user)
    }

    /// A page of users after `after`, oldest first.
    pub async fn list_users(
        &self,
        admin: &Admin,
        tenant: Option<TenantId>,
        name_contains: Option<String>,
        after: Option<Uuid>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<User>, Error> {
        let call = AdminCall::new(admin, Action::UserList);
        let rows = self.audit.admin(call, now, async {
            let scope = admin.scope(tenant)?;
            // What a username may hold, and so what a search of names may: anything else
            // would find nobody, and is most likely a mistake.
            if let Some(part) = &name_contains {
                Username::parse(part).map_err(|_| {
                    Error::invalid("a name search is 1 to 64 of: letters, digits and . _ - @ +")
                })?;
            }
            self.db
                .run(move |conn| {
                    store::page(
                        conn,
                        after.map(|a| a.to_string()).as_deref(),
                        limit,
                        scope.filter(),
                        name_contains.as_deref(),
                    )
                })
                .await
                .map_err(Error::from)
        });
        rows.await?.iter().map(User::from_row).collect()
    }

    /// One user.
    pub async fn get_user(
        &self,
        admin: &Admin,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<User, Error> {
        let call = AdminCall::new(admin, Action::UserGet).on(format!("user:{id}"));
        self.audit
            .admin(call, now, async {
                let row = self
                    .db
                    .run(move |conn| store::find_by_id(conn, &id.to_string()))
                    .await?;
                let user = row.as_ref().map(User::from_row).transpose()?;
                user.filter(|u| admin.may_see(&u.tenant))
                    .ok_or(Error::NotFound("user"))
            })
            .await
    }

    /// Changes a user. A new password, other roles or scopes, or a disable end every
    /// session of the user in the same transaction.
    pub async fn update_user(
        &self,
        admin: &Admin,
        id: Uuid,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User, Error> {
        let call = AdminCall::new(admin, Action::UserUpdate)
            .on(format!("user:{id}"))
            .detail(format!("changed: {}", patch.changed_fields().join(", ")));
        let work = self.apply_patch(admin, id, patch, now);
        let (user, recorded) = self.audit.admin(call, now, work).await?;
        self.revocations.publish(&recorded, now).await;
        Ok(user)
    }

    async fn apply_patch(
        &self,
        admin: &Admin,
        id: Uuid,
        mut patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<(User, Recorded), Error> {
        // Hashing is slow: done before the transaction, which only swaps the hash in.
        let new_hash = match patch.password.take() {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let (lifetimes, tokens, admin) = (self.lifetimes, self.tokens.clone(), admin.clone());
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let mut row = store::lock(conn, &id.to_string(), Lock::Update)?
                        .ok_or(Error::NotFound("user"))?;
                    let before = User::from_row(&row)?;
                    if !admin.may_see(&before.tenant) {
                        return Err(Error::NotFound("user"));
                    }
                    let revoke = new_hash.is_some() || ends_sessions(&patch, &before);
                    if new_hash.is_some() || (before.enabled && patch.enabled == Some(false)) {
                        // The user's device proofs end with the password or the access.
                        row.device_epoch = row.device_epoch.saturating_add(1);
                    }
                    if let Some(hash) = new_hash {
                        row.password_hash = hash;
                    }
                    if let Some(roles) = &patch.roles {
                        row.roles = serde_json::to_string(roles)?;
                    }
                    if let Some(scopes) = &patch.scopes {
                        row.scopes = serde_json::to_string(scopes)?;
                    }
                    if let Some(claims) = &patch.claims {
                        row.claims = serde_json::to_string(claims.as_map())?;
                    }
                    if let Some(enabled) = patch.enabled {
                        row.enabled = enabled;
                    }
                    row.updated_at = now.naive_utc();
                    let after = User::from_row(&row)?;
                    tokens.check_fits(&after)?;
                    store::update(conn, &row)?;
                    if after.is_admin() && after.tenant.is_default() {
                        markers::set(conn, markers::HAD_ADMIN, 1)?;
                    }
                    let entries = if revoke {
                        sessions::revoke_user_in(conn, id, "user changed", &lifetimes, now)?
                    } else {
                        Vec::new()
                    };
                    Ok((after, Revocations::record(conn, entries, now)?))
                })
            })
            .await
    }

    /// Deletes a user: every session is revoked and every access token cut off in the
    /// same transaction; the user's API keys go with it.
    pub async fn delete_user(
        &self,
        admin: &Admin,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.end_sessions(admin, id, Action::UserDelete, now).await
    }

    /// Logs a user out everywhere: every session revoked, every access token issued
    /// before now refused.
    pub async fn revoke_sessions(
        &self,
        admin: &Admin,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.end_sessions(admin, id, Action::UserRevokeSessions, now)
            .await
    }

    /// Ends every session of a user in one transaction with the user row locked, and,
    /// for a delete, deletes the user in it too.
    async fn end_sessions(
        &self,
        admin: &Admin,
        id: Uuid,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (lifetimes, admin_copy) = (self.lifetimes, admin.clone());
        let delete = action == Action::UserDelete;
        let reason = if delete {
            "user deleted"
        } else {
            "revoke-sessions"
        };
        let call = AdminCall::new(admin, action).on(format!("user:{id}"));
        let work = self.db.run(move |conn| {
            write_transaction(conn, |conn| {
                let row = store::lock(conn, &id.to_string(), Lock::Update)?
                    .ok_or(Error::NotFound("user"))?;
                if !admin_copy.may_see(&User::from_row(&row)?.tenant) {
                    return Err(Error::NotFound("user"));
                }
                let entries = sessions::revoke_user_in(conn, id, reason, &lifetimes, now)?;
                let recorded = Revocations::record(conn, entries, now)?;
                if delete {
                    store::delete(conn, &id.to_string())?;
                }
                Ok(recorded)
            })
        });
        let recorded: Recorded = self.audit.admin(call, now, work).await?;
        self.revocations.publish(&recorded, now).await;
        Ok(())
    }
}

/// The scopes a login is granted: those asked for, all of which must be the user's and,
/// through a client, the client's too (a refusal names which); none asked: all that are.
fn narrow(
    user: &User,
    client: Option<&Client>,
    requested: Option<Vec<Scope>>,
) -> Result<Vec<Scope>, Error> {
    let Some(requested) = requested else {
        let by_client = |s: &&Scope| client.is_none_or(|c| c.scopes.contains(s));
        return Ok(user.scopes.iter().filter(by_client).cloned().collect());
    };
    let held = Scope::narrow(user.scopes.clone(), Some(requested), ScopeLimit::User)?;
    match client {
        None => Ok(held),
        Some(client) => {
            let limit = ScopeLimit::Client(client.client_id.as_str().to_owned());
            Scope::narrow(client.scopes.clone(), Some(held), limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(scopes: &[&str]) -> User {
        User {
            id: Uuid::now_v7(),
            tenant: TenantId::default_tenant(),
            username: "u".into(),
            roles: vec![Role::admin()],
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            claims: Claims::default(),
            enabled: true,
            created_at: DateTime::default(),
            updated_at: DateTime::default(),
        }
    }

    #[test]
    fn a_login_narrows_to_held_scopes_only() {
        let u = user(&["read", "admin"]);
        let read = vec![Scope::parse("read").unwrap()];
        assert_eq!(narrow(&u, None, Some(read.clone())).unwrap(), read);
        assert_eq!(narrow(&u, None, None).unwrap(), u.scopes);
        assert!(matches!(
            narrow(&u, None, Some(vec![Scope::parse("write").unwrap()])),
            Err(Error::ScopeNotAllowed(ScopeLimit::User))
        ));
    }

    #[test]
    fn authority_changes_end_sessions_other_changes_do_not() {
        let before = user(&["read"]);
        let roles = UserPatch {
            roles: Some(vec![Role::parse("user").unwrap()]),
            ..UserPatch::default()
        };
        assert!(ends_sessions(&roles, &before));
        let same_roles = UserPatch {
            roles: Some(before.roles.clone()),
            ..UserPatch::default()
        };
        assert!(!ends_sessions(&same_roles, &before));
        let scopes = UserPatch {
            scopes: Some(vec![]),
            ..UserPatch::default()
        };
        assert!(ends_sessions(&scopes, &before));
        let disable = UserPatch {
            enabled: Some(false),
            ..UserPatch::default()
        };
        assert!(ends_sessions(&disable, &before));
        let claims = UserPatch {
            claims: Some(Claims::default()),
            ..UserPatch::default()
        };
        assert!(!ends_sessions(&claims, &before));
    }
}
