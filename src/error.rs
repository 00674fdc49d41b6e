//! Errors. Domain code returns [`Error`], one enum for every use case; it knows
//! nothing of HTTP. [`ApiError`] is what a client sees; `From<Error> for ApiError` at
//! the end of this file is the only place that gives a domain error an API.md code,
//! a status, a message and headers. Internal causes are logged there (5xx only) and
//! answered as `INTERNAL` with no detail.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Machine-readable error codes of API.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Malformed JSON, wrong types, missing or unknown fields, values out of range.
    InvalidRequest,
    /// Bad credentials; unknown, malformed or badly signed token or key; disabled user or key.
    AuthenticationFailed,
    /// A token that was valid but is past `exp`.
    TokenExpired,
    /// A token on the revocation list.
    TokenRevoked,
    /// An already-rotated refresh token presented outside the reuse leeway.
    RefreshTokenReused,
    /// Authenticated, but lacks the role or scope.
    InsufficientPermissions,
    /// No such resource.
    NotFound,
    /// The resource exists, the method does not.
    MethodNotAllowed,
    /// E.g. a username that is taken.
    Conflict,
    /// Body over the configured limit.
    PayloadTooLarge,
    /// A body that did not arrive within `TOKENMINT_BODY_TIMEOUT`.
    RequestTimeout,
    /// A body in a content type the endpoint does not take.
    UnsupportedMediaType,
    /// Too many attempts; see `Retry-After`.
    RateLimited,
    /// A backing store cannot be reached; nothing was half-done.
    Unavailable,
    /// A bug.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::AuthenticationFailed
            | Self::TokenExpired
            | Self::TokenRevoked
            | Self::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            Self::InsufficientPermissions => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One of API.md's codes.
    pub error: ErrorCode,
    /// Text for a person; never a secret, a stack trace or SQL.
    pub message: String,
}

/// A boxed cause, kept for the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The credential a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A username and password.
    Password,
    /// A bearer access token.
    AccessToken,
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

/// How a 401 challenges the client (RFC 6750 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    None,
    /// No credential was presented.
    Bearer,
    /// A presented bearer token was refused.
    InvalidToken,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    source: Option<BoxError>,
    challenge: Challenge,
    retry_after_secs: Option<u64>,
    allow: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl ApiError {
    /// An error with a code and a message for a person.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
            challenge: Challenge::None,
            retry_after_secs: None,
            allow: None,
        }
    }

    /// 400 `INVALID_REQUEST`.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 500 `INTERNAL`; the cause is logged, never answered.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorCode::Internal, "internal error").with_source(source)
    }

    /// Attaches the underlying cause, for the log.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Marks a 401 as caused by a presented bearer token (`error="invalid_token"`).
    pub fn invalid_token(mut self) -> Self {
        self.challenge = Challenge::InvalidToken;
        self
    }

    /// Marks a 401 as a missing credential (`WWW-Authenticate: Bearer`).
    pub fn bearer_required(mut self) -> Self {
        self.challenge = Challenge::Bearer;
        self
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Sets `Allow` on a 405.
    pub fn allow(mut self, methods: String) -> Self {
        self.allow = Some(methods);
        self
    }

    /// The code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// `Retry-After` of a 503 for a backing store that cannot be reached (and of any 503 or
/// 429 that has no better figure): clients and proxies read only that header.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// The one rule for `Retry-After`: the figure an error carries, else, for every 503 and
/// 429, [`UNAVAILABLE_RETRY_AFTER_SECS`].
fn set_retry_after(
    response: &mut actix_web::HttpResponseBuilder,
    status: StatusCode,
    secs: Option<u64>,
) {
    let secs = secs.or_else(|| {
        matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(UNAVAILABLE_RETRY_AFTER_SECS)
    });
    if let Some(secs) = secs {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // Load shed on purpose (503 with Retry-After) is no failure to log.
        if status.is_server_error() && self.retry_after_secs.is_none() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = ?self.code, error = %ErrorChain(source.as_ref()), "request failed")
                }
                None => tracing::error!(code = ?self.code, "request failed"),
            }
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self.challenge {
            Challenge::None => {}
            Challenge::Bearer => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Challenge::InvalidToken => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
        }
        set_retry_after(&mut response, status, self.retry_after_secs);
        if let Some(value) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.insert_header((header::ALLOW, value));
        }
        let message = if self.code == ErrorCode::Internal {
            "internal error".to_owned()
        } else {
            self.message.to_string()
        };
        response.json(ErrorBody {
            error: self.code,
            message,
        })
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
        (C::AccessToken, R::Missing) => "missing bearer token",
        (C::AccessToken, R::Expired) => "the access token has expired",
        (C::AccessToken, R::Revoked) => "the access token has been revoked",
        (C::AccessToken, _) => "the access token is invalid",
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

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(message) => Self::new(ErrorCode::InvalidRequest, message),
            Error::Unauthenticated {
                credential,
                refusal,
            } => {
                let code = match refusal {
                    Refusal::Expired => ErrorCode::TokenExpired,
                    Refusal::Revoked => ErrorCode::TokenRevoked,
                    // A ticket used up is simply not valid any more (it is not a refresh
                    // token: nothing was revoked by presenting it again).
                    Refusal::Reused if credential == Credential::Ticket => {
                        ErrorCode::AuthenticationFailed
                    }
                    Refusal::Reused => ErrorCode::RefreshTokenReused,
                    Refusal::Missing | Refusal::Ambiguous | Refusal::Invalid => {
                        ErrorCode::AuthenticationFailed
                    }
                };
                let error = Self::new(code, refusal_message(credential, refusal));
                // RFC 6750 section 3: challenge for a bearer credential, and say when a
                // presented one was refused.
                match (credential, refusal) {
                    (Credential::AccessToken | Credential::Caller, Refusal::Missing) => {
                        error.bearer_required()
                    }
                    (Credential::AccessToken | Credential::BearerApiKey, _) => {
                        error.invalid_token()
                    }
                    _ => error,
                }
            }
            Error::Forbidden(message) => Self::new(ErrorCode::InsufficientPermissions, message),
            Error::GrantNotAllowed => Self::new(
                ErrorCode::InsufficientPermissions,
                "the client may not use this grant",
            ),
            Error::ScopeNotAllowed(limit) => {
                Self::new(ErrorCode::InvalidRequest, limit.to_string())
            }
            Error::AudienceNotAllowed => Self::new(
                ErrorCode::InvalidRequest,
                "the audience is not one the client may ask for",
            ),
            Error::NotFound(what) => Self::new(ErrorCode::NotFound, format!("no such {what}")),
            Error::Conflict {
                message,
                retry_after_secs,
            } => {
                let error = Self::new(ErrorCode::Conflict, message);
                match retry_after_secs {
                    Some(secs) => error.retry_after(secs),
                    None => error,
                }
            }
            Error::RateLimited { retry_after_secs } => {
                Self::new(ErrorCode::RateLimited, "too many attempts; try again later")
                    .retry_after(retry_after_secs)
            }
            Error::Busy { retry_after_secs } => Self::new(
                ErrorCode::Unavailable,
                "too many logins at once; try again in a moment",
            )
            .retry_after(retry_after_secs),
            Error::Unavailable { dependency, source } => Self::new(
                ErrorCode::Unavailable,
                format!("{dependency} is unavailable; try again shortly"),
            )
            .with_source(source),
            Error::Internal(source) => Self::internal(source),
        }
    }
}

/// An error of the OAuth token endpoint, in RFC 6749 section 5.2's format
/// (`{"error", "error_description"}`), which standard client libraries read.
#[derive(Debug)]
pub struct OAuthError {
    error: &'static str,
    description: Cow<'static, str>,
    status: StatusCode,
    source: Option<BoxError>,
    /// `Retry-After`, for a 429 or 503.
    retry_after_secs: Option<u64>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

/// The body of an OAuth error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`,
    /// `temporarily_unavailable` or `server_error`.
    pub error: String,
    /// Text for a person; never a secret.
    pub error_description: String,
}

impl OAuthError {
    /// `invalid_request` (400): a missing, repeated or malformed parameter.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            error: "invalid_request",
            description: description.into(),
            status: StatusCode::BAD_REQUEST,
            source: None,
            retry_after_secs: None,
        }
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type() -> Self {
        Self {
            error: "unsupported_grant_type",
            description: "this grant type is not supported".into(),
            status: StatusCode::BAD_REQUEST,
            source: None,
            retry_after_secs: None,
        }
    }

    /// The RFC 6749 code.
    pub fn code(&self) -> &'static str {
        self.error
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        let plain = |error, description: Cow<'static, str>, status| Self {
            error,
            description,
            status,
            source: None,
            retry_after_secs: None,
        };
        match e {
            Error::Unauthenticated {
                credential: Credential::Client,
                ..
            } => plain(
                "invalid_client",
                "client authentication failed".into(),
                StatusCode::UNAUTHORIZED,
            ),
            Error::Unauthenticated {
                credential,
                refusal,
            } => plain(
                "invalid_grant",
                refusal_message(credential, refusal).into(),
                StatusCode::BAD_REQUEST,
            ),
            Error::GrantNotAllowed | Error::Forbidden(_) => plain(
                "unauthorized_client",
                "the client may not use this grant".into(),
                StatusCode::BAD_REQUEST,
            ),
            Error::ScopeNotAllowed(limit) => plain(
                "invalid_scope",
                limit.to_string().into(),
                StatusCode::BAD_REQUEST,
            ),
            Error::AudienceNotAllowed => plain(
                "invalid_target",
                "the audience is not one the client may ask for".into(),
                StatusCode::BAD_REQUEST,
            ),
            Error::Invalid(message) => plain("invalid_request", message, StatusCode::BAD_REQUEST),
            Error::NotFound(what) => plain(
                "invalid_request",
                format!("no such {what}").into(),
                StatusCode::BAD_REQUEST,
            ),
            Error::Conflict { message, .. } => {
                plain("invalid_request", message, StatusCode::BAD_REQUEST)
            }
            Error::RateLimited { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..plain(
                    "temporarily_unavailable",
                    "too many attempts; try again later".into(),
                    StatusCode::TOO_MANY_REQUESTS,
                )
            },
            Error::Busy { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..plain(
                    "temporarily_unavailable",
                    "busy; try again in a moment".into(),
                    StatusCode::SERVICE_UNAVAILABLE,
                )
            },
            Error::Unavailable { dependency, source } => Self {
                error: "temporarily_unavailable",
                description: format!("{dependency} is unavailable; try again shortly").into(),
                status: StatusCode::SERVICE_UNAVAILABLE,
                source: Some(source),
                retry_after_secs: None,
            },
            Error::Internal(source) => Self {
                error: "server_error",
                description: "internal error".into(),
                status: StatusCode::INTERNAL_SERVER_ERROR,
                source: Some(source),
                retry_after_secs: None,
            },
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.error, error = %ErrorChain(source.as_ref()), "token request failed")
                }
                None => tracing::error!(code = self.error, "token request failed"),
            }
        }
        let mut response = HttpResponse::build(self.status);
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        set_retry_after(&mut response, self.status, self.retry_after_secs);
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 section 5.2: invalid_client answers 401 with a challenge.
            response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="tokenmint""#));
        }
        response.json(OAuthErrorBody {
            error: self.error.to_owned(),
            error_description: self.description.to_string(),
        })
    }
}
