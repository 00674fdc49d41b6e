//! `POST /api/login`, `/api/refresh-token`, `POST /api/logout`.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{BearerToken, client_ip, json_body, optional_json};
use crate::error::{ApiError, Credential, Error, ErrorBody, Refusal};
use crate::identity::LoginAttempt;
use crate::identity::passwords::Password;
use crate::sessions::{RefreshToken, TokenPair};
use crate::user::Scope;

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
        (status = 429, description = "Too many attempts for this username or address; see Retry-After", body = ErrorBody,
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
    let body: LoginRequest = json_body(&req, &body)?;
    let attempt = LoginAttempt {
        username: body.username,
        password: Password::parse_presented(body.password)?,
        client_id: body.client_id.map(parse_client_id).transpose()?,
        scopes: body
            .scope
            .as_deref()
            .map(Scope::parse_space_separated)
            .transpose()?,
        ip: client_ip(&req),
    };
    let now = state.clock.now();
    let pair = state.identity.login(attempt, now).await?;
    Ok(token_response(
        &state,
        pair,
        body.cookie.unwrap_or(false),
        now,
    ))
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
        (status = 403, description = "A cookie sent from an origin that is not allowed", body = ErrorBody),
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
    let presented = presented.ok_or(Error::refused(Credential::RefreshToken, Refusal::Missing))?;
    let token = RefreshToken::parse(presented.expose_secret())
        .ok_or(Error::refused(Credential::RefreshToken, Refusal::Invalid))?;
    let now = state.clock.now();
    let pair = state.sessions.refresh(token, client_ip(req), now).await?;
    Ok(token_response(state, pair, cookie_mode, now))
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
        (status = 403, description = "A cookie sent from an origin that is not allowed", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was revoked", body = ErrorBody),
    )
)]
#[post("/api/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let from_body = optional_json::<RefreshRequest>(&req, &body)?.and_then(|b| b.refresh_token);
    let presented = match from_body {
        Some(token) => Some(token),
        None => {
            require_trusted_origin(&state, &req)?;
            cookie_token(&req)
        }
    };
    let refresh_token = presented.and_then(|t| RefreshToken::parse(t.expose_secret()));
    // A malformed or foreign Authorization header does not stop a logout.
    let access = BearerToken::optional(&req).ok().flatten();
    state
        .sessions
        .logout(
            refresh_token,
            access.as_ref().map(|b| b.0.as_str()),
            state.clock.now(),
        )
        .await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(removal_cookie(&state))
        .finish())
}

fn require_trusted_origin(state: &AppState, req: &HttpRequest) -> Result<(), Error> {
    if req.cookie(REFRESH_COOKIE).is_some() && !super::origin_allowed(req, &state.settings) {
        return Err(Error::Forbidden(
            "cross-site request refused: Origin is not an allowed origin",
        ));
    }
    Ok(())
}

fn cookie_token(req: &HttpRequest) -> Option<SecretString> {
    req.cookie(REFRESH_COOKIE)
        .map(|c| SecretString::from(c.value().to_owned()))
        .filter(|s| !s.expose_secret().is_empty())
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

/// The login/refresh answer: the access token, and the refresh token in the body or, in
/// cookie mode, in `Set-Cookie`.
fn token_response(
    state: &AppState,
    pair: TokenPair,
    cookie_mode: bool,
    now: DateTime<Utc>,
) -> HttpResponse {
    let cookie_mode = cookie_mode || state.settings.cookie_mode;
    let refresh_expires_in = (pair.refresh_expires_at - now).num_seconds().max(0);
    let claims = pair.access.claims;
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    let refresh_token = pair.refresh_token.expose().to_owned();
    let body_refresh = if cookie_mode {
        response.cookie(refresh_cookie(state, refresh_token, refresh_expires_in));
        None
    } else {
        Some(refresh_token)
    };
    response.json(TokenResponse {
        token: pair.access.token.clone(),
        access_token: pair.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: (claims.exp - claims.iat).max(0).unsigned_abs(),
        refresh_token: body_refresh,
        refresh_expires_in: refresh_expires_in.unsigned_abs(),
        scope: claims.scope,
        session_id: pair.session_id.to_string(),
    })
}

fn parse_client_id(id: String) -> Result<String, Error> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(id)
        .ok_or_else(|| Error::invalid("client_id must be 1 to 128 printable ASCII characters"))
}
