//! Who acts, for the audit log, and the proof that an actor may administer.

use uuid::Uuid;

use crate::error::Error;
use crate::model::TenantId;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, by id.
    User(Uuid),
    /// An API key, by id.
    ApiKey(Uuid),
    /// A registered client, by `client_id`.
    Client(String),
    /// Someone not (yet) authenticated.
    Anonymous,
    /// The service itself (scheduled work).
    System,
    /// An operator at the command line (who has the database already).
    Operator,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::Client(id) => write!(f, "client:{id}"),
            Self::Anonymous => f.write_str("anonymous"),
            Self::System => f.write_str("system"),
            Self::Operator => f.write_str("cli"),
        }
    }
}

/// Proof that administration is allowed: made only by `principal::Caller::admin` or, for the
/// command line (whose operator holds the database already), [`Admin::operator`].
#[derive(Debug, Clone)]
pub struct Admin {
    actor: Actor,
    ip: Option<String>,
    user_id: Option<Uuid>,
    tenant: TenantId,
}

/// Which tenants a list covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant (an admin of `default` who named none).
    All,
    /// One tenant.
    One(TenantId),
}

impl TenantScope {
    /// The tenant to filter on, if any.
    pub fn filter(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::One(t) => Some(t.as_str()),
        }
    }
}

impl Admin {
    /// An admin; only `principal::Caller::admin` decides who is one.
    pub(crate) fn new(
        actor: Actor,
        ip: Option<String>,
        user_id: Option<Uuid>,
        tenant: TenantId,
    ) -> Self {
        Self {
            actor,
            ip,
            user_id,
            tenant,
        }
    }

    /// The operator at the command line: an admin of `default`.
    pub fn operator() -> Self {
        Self {
            actor: Actor::Operator,
            ip: None,
            user_id: None,
            tenant: TenantId::default_tenant(),
        }
    }

    /// The admin's own tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Admins of `default` administer every tenant (like a master realm); others only
    /// their own. Whatever an admin may not see answers 404, as if it did not exist.
    pub fn may_see(&self, tenant: &TenantId) -> bool {
        self.tenant.is_default() || &self.tenant == tenant
    }

    /// The tenants a list asked with `?tenant=` covers.
    pub fn scope(&self, requested: Option<TenantId>) -> Result<TenantScope, Error> {
        match requested {
            None if self.tenant.is_default() => Ok(TenantScope::All),
            None => Ok(TenantScope::One(self.tenant.clone())),
            Some(t) if self.may_see(&t) => Ok(TenantScope::One(t)),
            Some(_) => Err(Error::NotFound("tenant")),
        }
    }

    /// The tenant a new object goes to: the one named (admins of `default` only may
    /// name another), else the admin's own.
    pub fn tenant_for_new(&self, requested: Option<TenantId>) -> Result<TenantId, Error> {
        match requested {
            None => Ok(self.tenant.clone()),
            Some(t) if self.may_see(&t) => Ok(t),
            Some(_) => Err(Error::NotFound("tenant")),
        }
    }

    /// Refuses admins of any tenant but `default` (tenants, signing keys, the audit log
    /// are the whole deployment's).
    pub fn require_default(&self) -> Result<(), Error> {
        if self.tenant.is_default() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only admins of the default tenant may do this",
            ))
        }
    }

    /// Who, for the audit log.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// From where.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }

    /// The user this admin acts as (a key's owner), if any: the default owner of new keys.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }
}
