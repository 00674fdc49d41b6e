//! Who acts, for the audit log, and the proof that an actor may administer.

use uuid::Uuid;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, by id.
    User(Uuid),
    /// An API key, by id.
    ApiKey(Uuid),
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
}

impl Admin {
    /// An admin; only `principal::Caller::admin` decides who is one.
    pub(crate) fn new(actor: Actor, ip: Option<String>, user_id: Option<Uuid>) -> Self {
        Self { actor, ip, user_id }
    }

    /// The operator at the command line.
    pub fn operator() -> Self {
        Self {
            actor: Actor::Operator,
            ip: None,
            user_id: None,
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
