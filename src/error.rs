//! The HTTP error type: the only place that knows API.md's codes and statuses.
//!
//! Domain errors convert into `ApiError` through one `From` impl each; internal
//! causes are logged here (5xx only) and answered as `INTERNAL` with no detail.

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

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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

    /// 503 `UNAVAILABLE`; the cause is logged.
    pub fn unavailable(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::new(
            ErrorCode::Unavailable,
            format!("{what} is unavailable; try again shortly"),
        )
        .with_source(source)
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
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
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
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

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound => Self::new(ErrorCode::NotFound, "not found"),
            StoreError::Conflict => {
                Self::new(ErrorCode::Conflict, "conflicts with an existing resource")
            }
            StoreError::Unavailable(_) => Self::unavailable("the database", e),
            StoreError::Other(_) => Self::internal(e),
        }
    }
}

impl From<crate::auth::tokens::TokenError> for ApiError {
    fn from(e: crate::auth::tokens::TokenError) -> Self {
        use crate::auth::tokens::TokenError;
        match e {
            TokenError::Expired => {
                Self::new(ErrorCode::TokenExpired, "the access token has expired")
            }
            TokenError::Invalid(_) => Self::new(
                ErrorCode::AuthenticationFailed,
                "the access token is invalid",
            ),
        }
        .invalid_token()
    }
}
