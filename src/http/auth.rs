//! `POST /api/login`, `/api/refresh-token`, `POST /api/logout`.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{BearerToken, client_ip, json_body, optional_json};
use crate::auth::login::{LoginError, authenticate};
use crate::auth::passwords::Password;
use crate::auth::rate_limit::Limit;
use crate::auth::refresh_token::RefreshToken;
use crate::auth::sessions::{SessionError, SessionGrant};
use crate::auth::tokens::{Grant, TokenError};
use crate::auth::users::{User, Username};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::revocation::Revocation;

/// Name of the HttpOnly cookie that carries the refresh token in cookie mode.
pub const REFRESH_COOKIE: &str = "tokenmint_refresh";

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (compared case-insensitively).
    pub username: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// OAuth client id, copied into the token's `client_id` claim.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated subset of the user's scopes; default: all of them.
    #[serde(default)]
    pub scope: Option<String>,
    /// Put the refresh token in an HttpOnly cookie instead of the body.
    #[serde(default)]
    pub cookie: Option<bool>,
}

/// A token pair. `access_token` and `token` carry the same JWT, for clients that read either.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The signed access token (JWT).
    pub access_token: String,
    /// Same as `access_token`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token; absent in cookie mode (it is in the `tokenmint_refresh` cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Session id (`sid` claim).
    pub session_id: String,
}

/// A refresh token in a body; it may come from the cookie instead.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token (else the `tokenmint_refresh` cookie is used).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretString>,
}

/// Log in with a username and password; answers an access token and a refresh token.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; in cookie mode the refresh token is in `Set-Cookie`", body = TokenResponse),
        (status = 400, description = "Malformed request or a scope the user does not have", body = ErrorBody),
        (status = 401, description = "Unknown user, wrong password or disabled user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many failures for this username or address; see Retry-After", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds until the window ends"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
#[post("/api/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest {
        username,
        password,
        client_id,
        scope,
        cookie,
    } = json_body(&req, &body)?;
    let password = Password::parse_presented(password).map_err(ApiError::invalid_request)?;
    let client_id = client_id.map(parse_client_id).transpose()?;
    let now = state.clock.now();

    let name = Username::parse(&username).ok();
    let user_key = name.as_ref().map(Username::key);
    // The username only if it is a valid one: the target is not a place for arbitrary input.
    let target = name.as_ref().map(|u| format!("username:{}", u.as_str()));
    let ip = client_ip(&req);

    if let Limit::Limited { retry_after_secs } = state
        .login_limiter
        .check(user_key.as_deref(), ip.as_deref(), now)
        .await
    {
        state
            .audit(
                &req,
                "anonymous".to_owned(),
                "login.rate_limited",
                target,
                false,
            )
            .await;
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many failed logins; try again later",
        )
        .retry_after(retry_after_secs));
    }

    let result = authenticate(&state.db, &state.hasher, &username, password, now).await;
    match &result {
        Ok(user) => {
            if let Some(key) = &user_key {
                state.login_limiter.record_success(key).await;
            }
            state
                .audit(&req, format!("user:{}", user.id), "login", target, true)
                .await;
        }
        Err(LoginError::Failed) => {
            state
                .login_limiter
                .record_failure(user_key.as_deref(), ip.as_deref(), now)
                .await;
            state
                .audit(&req, "anonymous".to_owned(), "login", target, false)
                .await;
        }
        Err(LoginError::Store(_) | LoginError::Password(_)) => {}
    }
    let user = result.map_err(|e| match e {
        LoginError::Failed => ApiError::new(
            ErrorCode::AuthenticationFailed,
            "invalid username or password",
        ),
        LoginError::Store(e) => e.into(),
        LoginError::Password(e) => ApiError::internal(e),
    })?;
    let scopes = narrow_scopes(&user, scope.as_deref())?;
    let grant = state.sessions.start(user, scopes, client_id, now).await?;
    token_pair(&state, grant, cookie.unwrap_or(false), now)
}

/// Rotate a refresh token (body or cookie): a new access token and a new refresh token.
///
/// The presented token is spent. Presented again within the reuse leeway it answers the
/// same successor; later, or any older token, revokes the whole session.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Omit to use the `tokenmint_refresh` cookie"),
    responses(
        (status = 200, description = "A fresh pair", body = TokenResponse),
        (status = 401, description = "`AUTHENTICATION_FAILED` (unknown or malformed), `TOKEN_EXPIRED`, `TOKEN_REVOKED` or `REFRESH_TOKEN_REUSED`", body = ErrorBody),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 503, description = "Database or revocation list unavailable", body = ErrorBody),
    )
)]
#[post("/api/refresh-token")]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let from_body = optional_json::<RefreshRequest>(&req, &body)?.and_then(|b| b.refresh_token);
    let (presented, cookie_mode) = match from_body {
        Some(token) => (Some(token), state.settings.cookie_mode),
        None => {
            require_trusted_origin(&state, &req)?;
            (cookie_token(&req), true)
        }
    };
    rotate(&state, &req, presented, cookie_mode).await
}

/// Rotate the refresh token of the `tokenmint_refresh` cookie (never from the query string),
/// so that a browser's plain `fetch('/api/refresh-token')` works.
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh_with_cookie",
    responses(
        (status = 200, description = "A fresh pair; the new refresh token is in `Set-Cookie`", body = TokenResponse),
        (status = 401, description = "No cookie, or the same refusals as POST", body = ErrorBody),
        (status = 503, description = "Database or revocation list unavailable", body = ErrorBody),
    )
)]
#[get("/api/refresh-token")]
pub async fn refresh_with_cookie(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rotate(&state, &req, cookie_token(&req), true).await
}

async fn rotate(
    state: &AppState,
    req: &HttpRequest,
    presented: Option<SecretString>,
    cookie_mode: bool,
) -> Result<HttpResponse, ApiError> {
    use secrecy::ExposeSecret as _;
    let presented = presented
        .ok_or_else(|| ApiError::new(ErrorCode::AuthenticationFailed, "missing refresh token"))?;
    let token = RefreshToken::parse(presented.expose_secret())
        .ok_or_else(|| ApiError::new(ErrorCode::AuthenticationFailed, "invalid refresh token"))?;
    let now = state.clock.now();
    let grant = match state.sessions.refresh(token, now).await {
        Ok(grant) => grant,
        Err(e) => {
            if let SessionError::Reused {
                session_id,
                user_id,
            } = &e
            {
                let target = Some(format!("session:{session_id}"));
                state
                    .audit(
                        req,
                        format!("user:{user_id}"),
                        "refresh.reuse",
                        target,
                        false,
                    )
                    .await;
            }
            return Err(e.into());
        }
    };
    token_pair(state, grant, cookie_mode, now)
}

/// Log out: revoke the session of the refresh token (body or cookie) and the presented
/// access token, and clear the cookie. 204 also for tokens that are already unknown.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Omit to use the `tokenmint_refresh` cookie"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 503, description = "The revocation could not be published (it is recorded and will be)", body = ErrorBody),
    )
)]
#[post("/api/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    use secrecy::ExposeSecret as _;
    let from_body = optional_json::<RefreshRequest>(&req, &body)?.and_then(|b| b.refresh_token);
    let presented = match from_body {
        Some(token) => Some(token),
        None => {
            require_trusted_origin(&state, &req)?;
            cookie_token(&req)
        }
    };
    let now = state.clock.now();

    if let Some(token) = presented
        .as_ref()
        .and_then(|t| RefreshToken::parse(t.expose_secret()))
    {
        state
            .sessions
            .revoke_by_refresh_token(&token, "logout", now)
            .await?;
    }
    // A malformed or foreign Authorization header does not stop a logout.
    if let Ok(Some(bearer)) = BearerToken::optional(&req) {
        match state.tokens.verify(&bearer.0, now) {
            Ok(claims) => {
                let exp = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
                state
                    .revocations
                    .revoke(Revocation::Token { jti: claims.jti }, exp, now)
                    .await
                    .map_err(|e| ApiError::unavailable("the revocation list", e))?;
                state
                    .sessions
                    .revoke_session(&claims.sid, "logout", now)
                    .await?;
            }
            Err(TokenError::Expired | TokenError::Invalid(_)) => {}
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(removal_cookie(&state))
        .finish())
}

fn require_trusted_origin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if req.cookie(REFRESH_COOKIE).is_some() && !super::origin_allowed(req, &state.settings) {
        return Err(ApiError::new(
            ErrorCode::InsufficientPermissions,
            "cross-site request refused: Origin is not an allowed origin",
        ));
    }
    Ok(())
}

fn cookie_token(req: &HttpRequest) -> Option<SecretString> {
    req.cookie(REFRESH_COOKIE)
        .map(|c| SecretString::from(c.value().to_owned()))
        .filter(|s| {
            use secrecy::ExposeSecret as _;
            !s.expose_secret().is_empty()
        })
}

fn refresh_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(REFRESH_COOKIE, value)
        .http_only(true)
        .secure(state.settings.cookie_secure)
        .same_site(SameSite::Strict)
        .path("/api")
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

fn removal_cookie(state: &AppState) -> Cookie<'static> {
    refresh_cookie(state, String::new(), 0)
}

/// The login/refresh answer: a new access token for the grant's session, and the refresh
/// token in the body or, in cookie mode, in `Set-Cookie`.
fn token_pair(
    state: &AppState,
    grant: SessionGrant,
    cookie_mode: bool,
    now: DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    let cookie_mode = cookie_mode || state.settings.cookie_mode;
    let issued = state
        .tokens
        .issue(
            &Grant {
                user: &grant.user,
                scopes: &grant.scopes,
                sid: grant.session_id,
                client_id: grant.client_id.as_deref(),
            },
            now,
        )
        .map_err(ApiError::internal)?;
    let refresh_expires_in = (grant.refresh_expires_at - now).num_seconds().max(0);
    let refresh_token = grant.refresh_token.expose().to_owned();
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    let body_refresh = if cookie_mode {
        response.cookie(refresh_cookie(state, refresh_token, refresh_expires_in));
        None
    } else {
        Some(refresh_token)
    };
    Ok(response.json(TokenResponse {
        token: issued.token.clone(),
        access_token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.access_ttl().as_secs(),
        refresh_token: body_refresh,
        refresh_expires_in: refresh_expires_in.unsigned_abs(),
        scope: issued.claims.scope,
        session_id: grant.session_id.to_string(),
    }))
}

fn parse_client_id(id: String) -> Result<String, ApiError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(id).ok_or_else(|| {
        ApiError::invalid_request("client_id must be 1 to 128 printable ASCII characters")
    })
}

/// The requested scopes, which must all be the user's; none requested means all of them.
fn narrow_scopes(user: &User, requested: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(requested) = requested else {
        return Ok(user.scopes.clone());
    };
    let mut granted: Vec<String> = Vec::new();
    for scope in requested.split_ascii_whitespace() {
        if !user.scopes.iter().any(|s| s == scope) {
            return Err(ApiError::invalid_request(
                "a requested scope is not granted to this user",
            ));
        }
        if !granted.iter().any(|s| s == scope) {
            granted.push(scope.to_owned());
        }
    }
    Ok(granted)
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Invalid => {
                Self::new(ErrorCode::AuthenticationFailed, "invalid refresh token")
            }
            SessionError::Expired => {
                Self::new(ErrorCode::TokenExpired, "the refresh token has expired")
            }
            SessionError::Revoked => {
                Self::new(ErrorCode::TokenRevoked, "the session has been revoked")
            }
            SessionError::Reused { .. } => Self::new(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; the session has been revoked",
            ),
            SessionError::Store(e) => e.into(),
            SessionError::Revocation(e) => Self::unavailable("the revocation list", e),
            SessionError::Random => Self::internal(e),
        }
    }
}
