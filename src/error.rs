//! The domain's error: [`Error`], one enum for every use case, with the one text a
//! person reads for each ([`Error::message`]). It knows nothing of HTTP: the front doors
//! map it (`crate::http::error` gives it API.md's codes, statuses and headers, and RFC
//! 6749's at the token endpoint).

use std::borrow::Cow;

/// A boxed cause, kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The credential a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A username and password.
    Password,
    /// A bearer access token.
    AccessToken,
    /// An access token presented as `DPoP` (RFC 9449): refused with a `DPoP` challenge.
    DpopAccessToken,
    /// A refresh token.
    RefreshToken,
    /// An API key.
    ApiKey,
    /// An API key sent as `Authorization: Bearer tmk_...`.
    BearerApiKey,
    /// Either a bearer token or an API key (what a caller of an admin endpoint presents).
    Caller,
    /// A registered client's credentials at the token endpoint.
    Client,
    /// A connect ticket at redemption.
    Ticket,
}

/// Why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Absent.
    Missing,
    /// More than one credential was presented: which one acts would be a guess.
    Ambiguous,
    /// Unknown, malformed, badly signed, disabled, or not (or no longer) matching.
    Invalid,
    /// Valid once, past its lifetime now.
    Expired,
    /// On the revocation list, or its session was ended.
    Revoked,
    /// A spent refresh token presented again outside the leeway: its session is now revoked.
    Reused,
}

/// A backing service a use case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The database.
    Database,
    /// The revocation list (Redis or memory).
    RevocationList,
    /// Redis, for what only it keeps (ticket redemptions).
    Redis,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Database => "the database",
            Self::RevocationList => "the revocation list",
            Self::Redis => "Redis",
        })
    }
}

/// Whose limit a refused scope is past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeLimit {
    /// What the grant is made from: a session, a client, a token or a key.
    Grant,
    /// The user's scopes.
    User,
    /// The named client's scopes.
    Client(String),
}

impl std::fmt::Display for ScopeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Grant => f.write_str("a requested scope cannot be granted"),
            Self::User => f.write_str("a requested scope is not granted to this user"),
            Self::Client(id) => write!(f, "a requested scope is not allowed for client `{id}`"),
        }
    }
}

/// Where a DPoP problem was met: a token endpoint answers 400 with a body, a resource
/// 401 with a `DPoP` challenge (RFC 9449 sections 5 and 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `/api/login`, `/api/refresh-token`, `/oauth/token`.
    TokenEndpoint,
    /// Everything that takes an access token.
    Resource,
}

/// What is wrong with a request's DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopProblem {
    /// The proof breaks a rule (the text says which), or was used before.
    Invalid(&'static str),
    /// Nonces are required and the proof carries no current one.
    UseNonce,
    /// A token bound to a key came without a matching proof (as `Bearer`, say), or an
    /// unbound one came as `DPoP`.
    Binding(&'static str),
}

/// The one error of every use case.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; the message says which, without echoing secrets.
    #[error("invalid request: {0}")]
    Invalid(Cow<'static, str>),
    /// A credential was missing or refused.
    #[error("{credential:?} refused: {refusal:?}")]
    Unauthenticated {
        /// Which credential.
        credential: Credential,
        /// Why.
        refusal: Refusal,
    },
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The client may not use this grant type.
    #[error("the client may not use this grant")]
    GrantNotAllowed,
    /// A requested scope is not one that can be granted here; the limit says whose.
    #[error("{0}")]
    ScopeNotAllowed(ScopeLimit),
    /// The audience is not one the client may ask for.
    #[error("the audience is not one the client may ask for")]
    AudienceNotAllowed,
    /// A DPoP proof or binding problem, met at `door`.
    #[error("DPoP: {problem:?}")]
    Dpop {
        /// What.
        problem: DpopProblem,
        /// Where.
        door: Door,
    },
    /// The named thing does not exist (or is not visible to the caller).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The change conflicts with the current state.
    #[error("conflict: {message}")]
    Conflict {
        /// For a person.
        message: Cow<'static, str>,
        /// When trying again may succeed.
        retry_after_secs: Option<u64>,
    },
    /// Too many attempts.
    #[error("rate limited for {retry_after_secs} s")]
    RateLimited {
        /// When the window ends.
        retry_after_secs: u64,
    },
    /// More work queued than can be done in time: shed at once, try again shortly.
    #[error("busy; retry in {retry_after_secs} s")]
    Busy {
        /// When trying again may succeed.
        retry_after_secs: u64,
    },
    /// A backing service cannot be reached; nothing was half-done.
    #[error("{dependency} is unavailable: {source}")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// Why, for the log.
        #[source]
        source: BoxError,
    },
    /// A bug or corrupt data.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::internal(e)
    }
}

impl Error {
    /// What a person reads, at every front door: never a secret, a cause or SQL, and
    /// `internal error` for a bug.
    pub fn message(&self) -> Cow<'static, str> {
        match self {
            Self::Invalid(message) | Self::Conflict { message, .. } => message.clone(),
            Self::Unauthenticated {
                credential,
                refusal,
            } => refusal_message(*credential, *refusal).into(),
            Self::Forbidden(message) => (*message).into(),
            Self::GrantNotAllowed => "the client may not use this grant".into(),
            Self::ScopeNotAllowed(limit) => limit.to_string().into(),
            Self::AudienceNotAllowed => "the audience is not one the client may ask for".into(),
            Self::Dpop { problem, .. } => match problem {
                DpopProblem::Invalid(reason) | DpopProblem::Binding(reason) => (*reason).into(),
                DpopProblem::UseNonce => {
                    "a DPoP proof with the server's current nonce is required (see DPoP-Nonce)"
                        .into()
                }
            },
            Self::NotFound(what) => format!("no such {what}").into(),
            Self::RateLimited { .. } => "too many attempts; try again later".into(),
            Self::Busy { .. } => "too many logins at once; try again in a moment".into(),
            Self::Unavailable { dependency, .. } => {
                format!("{dependency} is unavailable; try again shortly").into()
            }
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// A refused credential.
    pub fn refused(credential: Credential, refusal: Refusal) -> Self {
        Self::Unauthenticated {
            credential,
            refusal,
        }
    }

    /// Invalid input.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Invalid(message.into())
    }

    /// A conflict with the current state.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A bug or corrupt data.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::Internal(source.into())
    }

    /// The database cannot be reached.
    pub fn database(source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            dependency: Dependency::Database,
            source: source.into(),
        }
    }

    /// Redis cannot be reached.
    pub fn redis(source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            dependency: Dependency::Redis,
            source: source.into(),
        }
    }

    /// The revocation list cannot be reached.
    pub fn revocation_list(source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            dependency: Dependency::RevocationList,
            source: source.into(),
        }
    }
}

/// Prints an error and its sources on one line.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// What a person reads for a refused credential.
fn refusal_message(credential: Credential, refusal: Refusal) -> &'static str {
    use Credential as C;
    use Refusal as R;
    match (credential, refusal) {
        (C::RefreshToken, R::Ambiguous) => "the request carries two refresh cookies",
        (_, R::Ambiguous) => "send one credential: either an API key or a bearer token",
        (C::Password, _) => "invalid username or password",
        (C::AccessToken | C::DpopAccessToken, R::Missing) => "missing bearer token",
        (C::AccessToken | C::DpopAccessToken, R::Expired) => "the access token has expired",
        (C::AccessToken | C::DpopAccessToken, R::Revoked) => "the access token has been revoked",
        (C::AccessToken | C::DpopAccessToken, _) => "the access token is invalid",
        (C::RefreshToken, R::Missing) => "missing refresh token",
        (C::RefreshToken, R::Expired) => "the refresh token has expired",
        (C::RefreshToken, R::Revoked) => "the session has been revoked",
        (C::RefreshToken, R::Reused) => {
            "this refresh token was already used; the session has been revoked"
        }
        (C::RefreshToken, _) => "invalid refresh token",
        (C::ApiKey, R::Missing) => "missing API key",
        (C::ApiKey | C::BearerApiKey, _) => "invalid, disabled or expired API key",
        (C::Caller, _) => "missing credential: a bearer token or an API key",
        (C::Client, _) => "client authentication failed",
        (C::Ticket, R::Missing) => "missing ticket",
        (C::Ticket, R::Expired) => "the ticket has expired",
        (C::Ticket, R::Revoked) => "the ticket's session or user has been revoked",
        (C::Ticket, R::Reused) => "the ticket was already used",
        (C::Ticket, _) => "invalid ticket, or one for another audience",
    }
}
