//! What an HTTP client sees of an error: API.md's `{"error": CODE, "message"}` bodies
//! ([`ApiError`]) and, at the token endpoint, RFC 6749's `{"error",
//! "error_description"}` ([`OAuthError`]). The two `From<Error>` impls here are the only
//! places that give a domain error a code, a status and headers; the text a person
//! reads is the domain error's own [`Error::message`]. Internal causes are logged here
//! (5xx only) and answered with no detail.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{BoxError, Credential, Door, DpopProblem, Error, ErrorChain, Refusal};

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
    /// A DPoP proof breaks a rule of RFC 9449 (400 at token endpoints, 401 at resources).
    InvalidDpopProof,
    /// A DPoP proof must carry the server's current nonce, sent in `DPoP-Nonce`.
    UseDpopNonce,
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
            Self::InvalidRequest | Self::InvalidDpopProof | Self::UseDpopNonce => {
                StatusCode::BAD_REQUEST
            }
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

/// How a 401 challenges the client (RFC 6750 section 3, RFC 9449 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    None,
    /// No credential was presented.
    Bearer,
    /// A presented bearer token was refused.
    InvalidToken,
    /// A DPoP error at a resource: `DPoP error="<this>", algs="ES256 EdDSA"`.
    Dpop(&'static str),
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
    /// A status other than the code's own (a DPoP proof refused at a resource: 401).
    code_status: Option<StatusCode>,
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
            code_status: None,
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

    /// The message for a person, as the answer carries it (never a 500's cause).
    pub fn message(&self) -> &str {
        if self.code == ErrorCode::Internal {
            "internal error"
        } else {
            &self.message
        }
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
        self.code_status.unwrap_or_else(|| self.code.status())
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
            Challenge::Dpop(error) => {
                let algs = crate::dpop::ALGS.join(" ");
                let value = format!(r#"DPoP error="{error}", algs="{algs}""#);
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
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

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.message();
        match e {
            Error::Invalid(_) | Error::ScopeNotAllowed(_) | Error::AudienceNotAllowed => {
                Self::new(ErrorCode::InvalidRequest, message)
            }
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
                let error = Self::new(code, message);
                // RFC 6750 section 3: challenge for a bearer credential, and say when a
                // presented one was refused.
                match (credential, refusal) {
                    (Credential::AccessToken | Credential::Caller, Refusal::Missing) => {
                        error.bearer_required()
                    }
                    (Credential::AccessToken | Credential::BearerApiKey, _) => {
                        error.invalid_token()
                    }
                    // RFC 9449 section 7.1: a token presented as DPoP is challenged so.
                    (Credential::DpopAccessToken, _) => {
                        let mut error = error;
                        error.challenge = Challenge::Dpop("invalid_token");
                        error
                    }
                    _ => error,
                }
            }
            Error::Forbidden(_) | Error::GrantNotAllowed => {
                Self::new(ErrorCode::InsufficientPermissions, message)
            }
            Error::Dpop { problem, door } => {
                let (code, challenge) = match problem {
                    DpopProblem::Invalid(_) => (ErrorCode::InvalidDpopProof, "invalid_dpop_proof"),
                    DpopProblem::UseNonce => (ErrorCode::UseDpopNonce, "use_dpop_nonce"),
                    DpopProblem::Binding(_) => (ErrorCode::AuthenticationFailed, "invalid_token"),
                };
                match (door, problem) {
                    // A token endpoint answers a proof's problem in the body (400); a
                    // binding refused there is a refused refresh token (401).
                    (Door::TokenEndpoint, DpopProblem::Binding(_)) => {
                        Self::new(ErrorCode::AuthenticationFailed, message)
                    }
                    (Door::TokenEndpoint, _) => Self::new(code, message),
                    (Door::Resource, _) => {
                        let mut error = Self::new(code, message);
                        error.code_status = Some(StatusCode::UNAUTHORIZED);
                        error.challenge = Challenge::Dpop(challenge);
                        error
                    }
                }
            }
            Error::NotFound(_) => Self::new(ErrorCode::NotFound, message),
            Error::Conflict {
                retry_after_secs, ..
            } => {
                let error = Self::new(ErrorCode::Conflict, message);
                match retry_after_secs {
                    Some(secs) => error.retry_after(secs),
                    None => error,
                }
            }
            Error::RateLimited { retry_after_secs } => {
                Self::new(ErrorCode::RateLimited, message).retry_after(retry_after_secs)
            }
            Error::Busy { retry_after_secs } => {
                Self::new(ErrorCode::Unavailable, message).retry_after(retry_after_secs)
            }
            Error::Unavailable { source, .. } => {
                Self::new(ErrorCode::Unavailable, message).with_source(source)
            }
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
        let description = e.message();
        let (error, status) = match &e {
            Error::Unauthenticated {
                credential: Credential::Client,
                ..
            } => ("invalid_client", StatusCode::UNAUTHORIZED),
            Error::Unauthenticated { .. } => ("invalid_grant", StatusCode::BAD_REQUEST),
            Error::GrantNotAllowed | Error::Forbidden(_) => {
                ("unauthorized_client", StatusCode::BAD_REQUEST)
            }
            Error::ScopeNotAllowed(_) => ("invalid_scope", StatusCode::BAD_REQUEST),
            Error::AudienceNotAllowed => ("invalid_target", StatusCode::BAD_REQUEST),
            Error::Dpop { problem, .. } => match problem {
                DpopProblem::Invalid(_) => ("invalid_dpop_proof", StatusCode::BAD_REQUEST),
                DpopProblem::UseNonce => ("use_dpop_nonce", StatusCode::BAD_REQUEST),
                DpopProblem::Binding(_) => ("invalid_grant", StatusCode::BAD_REQUEST),
            },
            Error::Invalid(_) | Error::NotFound(_) | Error::Conflict { .. } => {
                ("invalid_request", StatusCode::BAD_REQUEST)
            }
            Error::RateLimited { .. } => ("temporarily_unavailable", StatusCode::TOO_MANY_REQUESTS),
            Error::Busy { .. } | Error::Unavailable { .. } => {
                ("temporarily_unavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            Error::Internal(_) => ("server_error", StatusCode::INTERNAL_SERVER_ERROR),
        };
        let (source, retry_after_secs) = match e {
            Error::Unavailable { source, .. } | Error::Internal(source) => (Some(source), None),
            Error::RateLimited { retry_after_secs } | Error::Busy { retry_after_secs } => {
                (None, Some(retry_after_secs))
            }
            _ => (None, None),
        };
        Self {
            error,
            description,
            status,
            source,
            retry_after_secs,
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
