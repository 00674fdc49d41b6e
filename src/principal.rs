//! Who calls: authentication of a presented credential (a bearer access token or an API
//! key) into a [`Caller`], the authorization rules, and RFC 7662 introspection.
//!
//! Administration needs, by bearer token, the `admin` role *and* the `admin` scope in the
//! token (a token narrowed at login to `read` does not administer); by API key, the `admin`
//! scope on a key whose owner holds the `admin` role (demoting the owner demotes the key).

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::api_keys::{ApiKeySecret, ApiKeys, AuthenticatedKey, KeyCheck};
use crate::audit::{Action, Audit, AuditEvent, Outcome};
use crate::dpop::{self, Dpop};
use crate::error::{Credential, Door, DpopProblem, Error, Refusal};
use crate::model::{Actor, Admin};
use crate::model::{Role, Scope, TenantId, has_admin_role, has_admin_scope};
use crate::revocation::{Revocations, Revoked, TokenIds};
use crate::tokens::access::{AccessClaims, TokenService, Verified};

/// How an access token is presented (RFC 6750, RFC 9449 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: DPoP <token>`, with a proof in the `DPoP` header.
    Dpop,
}

/// An access token as a request presents it, with the request's DPoP proof if any.
#[derive(Clone)]
pub struct AccessToken {
    /// The token.
    pub token: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// The `DPoP` header, with the request's method and path.
    pub proof: Option<dpop::Presented>,
}

impl AccessToken {
    /// A token sent as `Bearer`, without a proof (a form field, say).
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            scheme: Scheme::Bearer,
            proof: None,
        }
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("scheme", &self.scheme)
            .field("proof", &self.proof)
            .finish()
    }
}

/// A credential as presented, before anything is checked.
#[derive(Default)]
pub struct Presented {
    /// `Authorization: Bearer ...` (or `DPoP ...`).
    pub bearer: Option<AccessToken>,
    /// `X-API-Key` (or `?key=`).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("bearer", &self.bearer.as_ref().map(|_| "[redacted]"))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Presented {
    /// An API key sent as `Authorization: Bearer tmk_...` (for senders that can only set a
    /// bearer) moved to where `X-API-Key` puts it: the `tmk_` prefix tells it from a JWT
    /// before any lookup (a JWT starts with its base64url header, `eyJ`). With a key in
    /// both places the request is ambiguous.
    pub fn normalized(self) -> Result<Self, Error> {
        match self {
            Self {
                bearer: Some(bearer),
                api_key,
            } if bearer.token.starts_with(ApiKeySecret::PREFIX) => match api_key {
                Some(_) => Err(Error::refused(Credential::Caller, Refusal::Ambiguous)),
                None if bearer.scheme == Scheme::Dpop => Err(Error::Dpop {
                    problem: DpopProblem::Binding("an API key is not a DPoP access token"),
                    door: Door::Resource,
                }),
                None => Ok(Self {
                    bearer: None,
                    api_key: Some(bearer.token),
                }),
            },
            other => Ok(other),
        }
    }
}

/// An authenticated principal.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A user, by a verified, unrevoked access token.
    User {
        /// User id.
        id: Uuid,
        /// The user's tenant.
        tenant: TenantId,
        /// Roles, as the token states them (role changes end sessions).
        roles: Vec<Role>,
        /// The token's scopes.
        scopes: Vec<Scope>,
    },
    /// An API key.
    ApiKey(Box<AuthenticatedKey>),
    /// A registered client, by its own access token (client credentials).
    Client {
        /// The client.
        client_id: String,
        /// Its tenant.
        tenant: TenantId,
        /// The token's scopes.
        scopes: Vec<Scope>,
    },
}

/// A principal and the address it calls from.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub ip: Option<String>,
}

impl Caller {
    /// For the audit log.
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::User { id, .. } => Actor::User(*id),
            Principal::ApiKey(key) => Actor::ApiKey(key.key.id),
            Principal::Client { client_id, .. } => Actor::Client(client_id.clone()),
        }
    }

    /// The caller's tenant.
    pub fn tenant(&self) -> &TenantId {
        match &self.principal {
            Principal::User { tenant, .. } | Principal::Client { tenant, .. } => tenant,
            Principal::ApiKey(key) => &key.key.tenant,
        }
    }

    /// Whether this caller may administer (see the module doc).
    pub fn is_admin(&self) -> bool {
        match &self.principal {
            Principal::User { roles, scopes, .. } => {
                has_admin_role(roles) && has_admin_scope(scopes)
            }
            Principal::ApiKey(key) => key.owner_is_admin && has_admin_scope(&key.key.scopes),
            // A client acts for no person: it never administers.
            Principal::Client { .. } => false,
        }
    }

    /// Whether this caller may introspect: an admin, or a key or client with scope
    /// `introspect` (a resource server's).
    pub fn may_introspect(&self) -> bool {
        let introspect = |scopes: &[Scope]| Scope::held(scopes, Scope::INTROSPECT);
        self.is_admin()
            || match &self.principal {
                Principal::ApiKey(key) => introspect(&key.key.scopes),
                Principal::Client { scopes, .. } => introspect(scopes),
                Principal::User { .. } => false,
            }
    }

    /// The caller as an admin, or `INSUFFICIENT_PERMISSIONS`.
    pub fn admin(&self) -> Result<Admin, Error> {
        if !self.is_admin() {
            return Err(Error::Forbidden(
                "this endpoint needs the admin role and the admin scope",
            ));
        }
        let user_id = match &self.principal {
            Principal::User { id, .. } => Some(*id),
            Principal::ApiKey(key) => Some(key.key.owner_id),
            Principal::Client { .. } => None,
        };
        Ok(Admin::new(
            self.actor(),
            self.ip.clone(),
            user_id,
            self.tenant().clone(),
        ))
    }
}

/// The holder of a user's access token, as the routes of a user's own sessions see them.
#[derive(Debug, Clone)]
pub struct SessionHolder {
    /// The user.
    pub user_id: Uuid,
    /// The session of the presented token (the `current` one).
    pub session_id: Uuid,
    /// From where.
    pub ip: Option<String>,
}

/// What introspection tells of a token (RFC 7662 section 2.2).
#[derive(Debug, Default)]
pub enum Introspection {
    /// Expired, revoked, disabled, unknown, forged, or not a kind introspection describes.
    #[default]
    Inactive,
    /// A valid access token.
    AccessToken(Box<AccessClaims>),
    /// A usable API key.
    ApiKey(Box<AuthenticatedKey>),
}

/// Authenticates callers and checks tokens.
pub struct Authenticator {
    tokens: Arc<TokenService>,
    revocations: Arc<Revocations>,
    api_keys: Arc<ApiKeys>,
    audit: Arc<Audit>,
    dpop: Arc<Dpop>,
}

impl Authenticator {
    /// The service.
    pub fn new(
        tokens: Arc<TokenService>,
        revocations: Arc<Revocations>,
        api_keys: Arc<ApiKeys>,
        audit: Arc<Audit>,
        dpop: Arc<Dpop>,
    ) -> Self {
        Self {
            tokens,
            revocations,
            api_keys,
            audit,
            dpop,
        }
    }

    /// The use case of `GET /api/me`: a verified access token, presented as its binding
    /// requires, that is not revoked. If the revocation list cannot be read, the answer
    /// is `UNAVAILABLE`: never a guess.
    pub async fn access_token(
        &self,
        presented: &AccessToken,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, Error> {
        let checked = async {
            let verified = self.tokens.verify(&presented.token, now)?;
            self.check_binding(&verified.claims, presented, now).await?;
            self.not_revoked(verified, now).await
        };
        checked.await.map_err(|e| match (e, presented.scheme) {
            // Refused as a DPoP token: the answer challenges with DPoP (RFC 9449 7.1).
            (
                Error::Unauthenticated {
                    credential: Credential::AccessToken,
                    refusal,
                },
                Scheme::Dpop,
            ) => Error::refused(Credential::DpopAccessToken, refusal),
            (e, _) => e,
        })
    }

    /// A verified, unrevoked access token that arrived as a parameter (token exchange's
    /// `subject_token`), not as the request's credential: its binding, if any, is the
    /// caller's to enforce.
    pub async fn subject_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, Error> {
        let verified = self.tokens.verify(token, now)?;
        self.not_revoked(verified, now).await
    }

    /// A token bound to a key (`cnf.jkt`) is accepted only as `DPoP` with a proof by that
    /// key for this request and this token (`ath`); an unbound one only as `Bearer`
    /// (RFC 9449 section 7.1). A proof beside a `Bearer` token is ignored.
    async fn check_binding(
        &self,
        claims: &AccessClaims,
        presented: &AccessToken,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let refused = |why: &'static str| Error::Dpop {
            problem: DpopProblem::Binding(why),
            door: Door::Resource,
        };
        match (claims.bound_to(), presented.scheme, &presented.proof) {
            (None, Scheme::Bearer, _) => Ok(()),
            (None, Scheme::Dpop, _) => Err(refused(
                "this access token is not bound to a key: send it as Bearer",
            )),
            (Some(_), Scheme::Bearer, _) => Err(refused(
                "this access token is bound to a key: send it as DPoP, with a proof",
            )),
            (Some(_), Scheme::Dpop, None) => Err(refused("a DPoP access token needs a DPoP proof")),
            (Some(bound), Scheme::Dpop, Some(proof)) => {
                let key = self
                    .dpop
                    .check(proof, Door::Resource, Some(&presented.token), now)
                    .await?;
                if key == bound {
                    Ok(())
                } else {
                    Err(refused(
                        "the DPoP proof is not by the key the token is bound to",
                    ))
                }
            }
        }
    }

    /// The first step of the routes of a user's own sessions: a verified, unrevoked access
    /// token of a user's session. A client's own token (client credentials) has none:
    /// `INSUFFICIENT_PERMISSIONS`.
    pub async fn session_holder(
        &self,
        token: &AccessToken,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SessionHolder, Error> {
        let claims = self.access_token(token, now).await?;
        let session_id = claims.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok());
        match (Uuid::parse_str(&claims.sub), session_id) {
            (Ok(user_id), Some(session_id)) => Ok(SessionHolder {
                user_id,
                session_id,
                ip,
            }),
            _ => Err(Error::Forbidden(
                "only a user's access token has sessions to manage",
            )),
        }
    }

    async fn not_revoked(
        &self,
        verified: Verified,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, Error> {
        let Verified { kid, claims } = verified;
        let ids = TokenIds {
            jti: &claims.jti,
            sid: claims.sid.as_deref(),
            sub: &claims.sub,
            tenant: &claims.tenant_id,
            iat: claims.iat,
            kid: &kid,
        };
        match self.revocations.check(ids, now).await? {
            Revoked::No => Ok(claims),
            Revoked::Yes => Err(Error::refused(Credential::AccessToken, Refusal::Revoked)),
        }
    }

    /// Authenticates the one credential of a request: an API key or a bearer token.
    pub async fn authenticate(
        &self,
        presented: Presented,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Caller, Error> {
        self.identify(presented, ip, now).await.map_err(|(e, _)| e)
    }

    /// The use case of every admin endpoint's first step: the caller must be an admin
    /// (see the module doc). A refusal (401 or 403) is audited as `admin.refused` with
    /// the refused `route`, one row per caller, route and address a minute.
    pub async fn admin(
        &self,
        presented: Presented,
        ip: Option<String>,
        route: String,
        now: DateTime<Utc>,
    ) -> Result<Admin, Error> {
        let refused = match self.identify(presented, ip.clone(), now).await {
            Ok(caller) => match caller.admin() {
                Ok(admin) => return Ok(admin),
                Err(e) => (e, caller.actor()),
            },
            Err(refused) => refused,
        };
        Err(self.refused_admin(refused, ip, route, now).await)
    }

    /// [`Authenticator::admin`] for a bearer access token whose claims the caller needs
    /// too (the console reads its session id and age): one verification, one check of
    /// the revocation list.
    pub async fn session_admin(
        &self,
        token: &AccessToken,
        ip: Option<String>,
        route: String,
        now: DateTime<Utc>,
    ) -> Result<(Admin, AccessClaims), Error> {
        let verified = self.access_token(token, now).await;
        let refused = match verified.and_then(|claims| Ok((principal_of(&claims)?, claims))) {
            Ok((principal, claims)) => {
                let caller = Caller {
                    principal,
                    ip: ip.clone(),
                };
                match caller.admin() {
                    Ok(admin) => return Ok((admin, claims)),
                    Err(e) => (e, caller.actor()),
                }
            }
            Err(e) => (e, Actor::Anonymous),
        };
        Err(self.refused_admin(refused, ip, route, now).await)
    }

    /// An admin endpoint's refusal (401 or 403), audited as `admin.refused` with the
    /// refused `route`, one row per caller, route and address a minute.
    async fn refused_admin(
        &self,
        (error, actor): (Error, Actor),
        ip: Option<String>,
        route: String,
        now: DateTime<Utc>,
    ) -> Error {
        if matches!(
            error,
            Error::Unauthenticated { .. } | Error::Forbidden(_) | Error::Dpop { .. }
        ) {
            let key = format!(
                "admin.refused|{actor}|{route}|{}",
                ip.as_deref().unwrap_or("")
            );
            let event = AuditEvent {
                actor,
                action: Action::AdminRefused,
                target: Some(route),
                ip,
                outcome: Outcome::Failure,
                detail: None,
            };
            self.audit
                .record_throttled(event, key, now + TimeDelta::minutes(1), now)
                .await;
        }
        error
    }

    /// Authenticates, or says who was refused (a known API key's id, else anonymous).
    async fn identify(
        &self,
        presented: Presented,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Caller, (Error, Actor)> {
        let anonymous = |e: Error| (e, Actor::Anonymous);
        // A key refused as a bearer token is a refused bearer token (RFC 6750 challenge).
        let key_credential = if presented
            .bearer
            .as_ref()
            .is_some_and(|b| b.token.starts_with(ApiKeySecret::PREFIX))
        {
            Credential::BearerApiKey
        } else {
            Credential::ApiKey
        };
        let principal = match presented.normalized().map_err(anonymous)? {
            // One credential per request: with two, which one acts would be a guess.
            Presented {
                bearer: Some(_),
                api_key: Some(_),
            } => {
                return Err(anonymous(Error::refused(
                    Credential::Caller,
                    Refusal::Ambiguous,
                )));
            }
            Presented {
                api_key: Some(key), ..
            } => {
                let refused = Error::refused(key_credential, Refusal::Invalid);
                // Shape and checksum first: a made-up key costs no lookup.
                let secret = ApiKeySecret::parse(&key).ok_or_else(|| anonymous(refused))?;
                match self
                    .api_keys
                    .authenticate(&secret, ip.clone(), now)
                    .await
                    .map_err(anonymous)?
                {
                    KeyCheck::Usable(key) => Principal::ApiKey(Box::new(key)),
                    KeyCheck::Refused(id) => {
                        return Err((
                            Error::refused(key_credential, Refusal::Invalid),
                            Actor::ApiKey(id),
                        ));
                    }
                    KeyCheck::Unknown => {
                        return Err(anonymous(Error::refused(key_credential, Refusal::Invalid)));
                    }
                }
            }
            Presented {
                bearer: Some(token),
                ..
            } => {
                let claims = self.access_token(&token, now).await.map_err(anonymous)?;
                principal_of(&claims).map_err(anonymous)?
            }
            Presented {
                bearer: None,
                api_key: None,
            } => {
                return Err(anonymous(Error::refused(
                    Credential::Caller,
                    Refusal::Missing,
                )));
            }
        };
        Ok(Caller { principal, ip })
    }

    /// The use case of RFC 7662 introspection. Being introspected is no use of a key:
    /// its last use is left as it was. A caller of a tenant other than `default` learns
    /// only of its own tenant's tokens and keys: others are inactive to it.
    pub async fn introspect(
        &self,
        caller: &Caller,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Introspection, Error> {
        if !caller.may_introspect() {
            return Err(Error::Forbidden(
                "introspection needs an admin or the introspect scope",
            ));
        }
        let visible =
            |tenant: &str| caller.tenant().is_default() || caller.tenant().as_str() == tenant;
        if let Some(secret) = ApiKeySecret::parse(token) {
            return Ok(match self.api_keys.inspect(&secret, now).await? {
                KeyCheck::Usable(key) if visible(key.key.tenant.as_str()) => {
                    Introspection::ApiKey(Box::new(key))
                }
                _ => Introspection::Inactive,
            });
        }
        // Any token the service signed, exchanged ones (another audience) included.
        let checked = match self.tokens.verify_any_audience(token, now) {
            Ok(verified) => self.not_revoked(verified, now).await,
            Err(e) => Err(e.into()),
        };
        match checked {
            Ok(claims) if visible(&claims.tenant_id) => {
                Ok(Introspection::AccessToken(Box::new(claims)))
            }
            Ok(_) => Ok(Introspection::Inactive),
            Err(e @ Error::Unavailable { .. }) => Err(e),
            Err(_) => Ok(Introspection::Inactive),
        }
    }
}

/// Who a verified, unrevoked access token stands for: a session's token is a user's; one
/// without a session, whose subject is its client, is that client's.
fn principal_of(claims: &AccessClaims) -> Result<Principal, Error> {
    let invalid = || Error::refused(Credential::AccessToken, Refusal::Invalid);
    let tenant = TenantId::parse(&claims.tenant_id).map_err(|_| invalid())?;
    let scopes = Scope::parse_space_separated(&claims.scope).unwrap_or_default();
    match (&claims.sid, &claims.client_id) {
        (Some(_), _) => Ok(Principal::User {
            id: Uuid::parse_str(&claims.sub).map_err(|_| invalid())?,
            tenant,
            roles: claims
                .roles
                .iter()
                .filter_map(|r| Role::parse(r).ok())
                .collect(),
            scopes,
        }),
        (None, Some(client_id)) if *client_id == claims.sub => Ok(Principal::Client {
            client_id: client_id.clone(),
            tenant,
            scopes,
        }),
        (None, _) => Err(invalid()),
    }
}
