//! `POST /api/login`, `/api/refresh-token`, `POST /api/logout`.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{
    AuthorizationToken, client_ip, dpop_proof, json_body, optional_json, strict_cookie, user_agent,
};
use crate::error::{Credential, Door, Error, Refusal};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::schema::{ClientIdName, ScopeList};
use crate::identity::LoginAttempt;
use crate::identity::passwords::Password;
use crate::model::ClientId;
use crate::model::{Scope, TenantId};
use crate::oauth::clients::ClientSecret;
use crate::sessions::{Presented, RefreshClient, TokenPair};

/// Name of the HttpOnly cookie that carries the refresh token in cookie mode, when it is
/// `Secure`: with the `__Host-` prefix a browser takes it only from this host, with
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant (toss) its own.
pub const REFRESH_COOKIE: &str = "__Host-tokenmint_refresh";
/// The name over plain HTTP (`TOKENMINT_COOKIE_SECURE=false`, development only), and
/// the name earlier releases used; still read for one release.
pub const LEGACY_REFRESH_COOKIE: &str = "tokenmint_refresh";
/// Name of the HttpOnly cookie that carries the device proof in cookie mode, when `Secure`.
pub const DEVICE_COOKIE: &str = "__Host-tokenmint_device";
/// Its name over plain HTTP (`TOKENMINT_COOKIE_SECURE=false`, development only).
pub const PLAIN_DEVICE_COOKIE: &str = "tokenmint_device";

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (compared case-insensitively).
    pub username: String,
    /// Password, 1 to 1,024 bytes.
    #[schema(value_type = String, format = Password, min_length = 1)]
    pub password: SecretString,
    /// The tenant of the user (default: `default`). A user of another tenant with the same
    /// name is a different user.
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
    /// A registered client of that tenant that allows `password`; copied into the token's
    /// `client_id`, whose scopes also bound the token's.
    #[serde(default)]
    #[schema(value_type = Option<ClientIdName>)]
    pub client_id: Option<String>,
    /// The client's secret, required for a confidential client (a backend logging its
    /// users in) and refused for a public one.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<SecretString>,
    /// Space-separated subset of the user's scopes; default: all of them.
    #[serde(default)]
    #[schema(value_type = Option<ScopeList>)]
    pub scope: Option<String>,
    /// Put the refresh token (and the device proof) in HttpOnly cookies.
    #[serde(default)]
    pub cookie: Option<bool>,
    /// The `device_proof` of an earlier login on this device (else the device cookie is
    /// used). A valid one for this username spares the login the delays that failures by
    /// others impose, and puts it ahead of logins without one; anything else is ignored.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub device_proof: Option<SecretString>,
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
    /// The refresh token; absent in cookie mode (it is in the `__Host-tokenmint_refresh`
    /// cookie), and for a client without the `refresh_token` grant (then
    /// `refresh_expires_in` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Session id (`sid` claim).
    pub session_id: String,
    /// Logins only: proof that this device logged in as this user, to present at its
    /// next login (also in the device cookie in cookie mode). Ends with the user's
    /// password, a disable or a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_proof: Option<String>,
}

/// A refresh token in a body; it may come from the cookie instead.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token (else the `__Host-tokenmint_refresh` cookie is used).
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
        (status = 401, description = "Unknown user, wrong password, disabled user or tenant, or a client that may not take logins", body = ErrorBody),
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
        tenant: match body.tenant.as_deref() {
            Some(tenant) => TenantId::parse(tenant)?,
            None => TenantId::default_tenant(),
        },
        client_id: body.client_id.as_deref().map(ClientId::parse).transpose()?,
        client_secret: body.client_secret.map(ClientSecret::presented),
        scopes: body
            .scope
            .as_deref()
            .map(Scope::parse_space_separated)
            .transpose()?,
        ip: client_ip(&req),
        dpop: dpop_proof(&req, Door::TokenEndpoint)?,
        user_agent: user_agent(&req),
        device_proof: match &body.device_proof {
            Some(proof) => Some(proof.expose_secret().to_owned()),
            None => req
                .cookie(device_cookie_name(&state))
                .map(|c| c.value().to_owned()),
        },
    };
    let now = state.clock.now();
    let pair = state.identity.login(attempt, now).await?;
    Ok(token_response(
        &state,
        pair,
        body.cookie.unwrap_or(false),
        false,
        now,
    ))
}

/// Rotate a refresh token (body or cookie): a new access token and the current refresh token.
///
/// The session's head (its newest refresh token) issued the reuse leeway or more ago is
/// spent and a new head answered; a head younger than the leeway is answered as it is.
/// The head's predecessor presented no more than the leeway after it was spent is
/// answered with the head; any other spent token is reuse and revokes the whole session.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Omit to use the `__Host-tokenmint_refresh` cookie"),
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
        None => (trusted_cookie(&state, &req)?, true),
    };
    rotate(&state, &req, presented, cookie_mode).await
}

/// Rotate the refresh token of the `__Host-tokenmint_refresh` cookie (never from the query string),
/// so that a browser's plain `fetch('/api/refresh-token')` works.
#[utoipa::path(
    tag = "auth",
    operation_id = "refresh_with_cookie",
    responses(
        (status = 200, description = "A fresh pair; the new refresh token is in `Set-Cookie`", body = TokenResponse),
        (status = 401, description = "No cookie, two refresh cookies, or the same refusals as POST", body = ErrorBody),
        (status = 403, description = "A cookie sent from an origin that is not allowed", body = ErrorBody),
        (status = 503, description = "Database or revocation list unavailable", body = ErrorBody),
    )
)]
#[get("/api/refresh-token")]
pub async fn refresh_with_cookie(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let presented = trusted_cookie(&state, &req)?;
    rotate(&state, &req, presented, true).await
}

async fn rotate(
    state: &AppState,
    req: &HttpRequest,
    presented: Option<SecretString>,
    cookie_mode: bool,
) -> Result<HttpResponse, ApiError> {
    let answer = rotate_presented(state, req, presented, cookie_mode).await;
    if !cookie_mode {
        return answer;
    }
    // A cookie of the old name is cleared whatever the answer: it is never read.
    let mut response = answer.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
    forget_legacy_cookie(state, req, &mut response);
    Ok(response)
}

async fn rotate_presented(
    state: &AppState,
    req: &HttpRequest,
    presented: Option<SecretString>,
    cookie_mode: bool,
) -> Result<HttpResponse, ApiError> {
    let presented = presented.ok_or(Error::refused(Credential::RefreshToken, Refusal::Missing))?;
    let token = Presented::parse(presented.expose_secret())
        .ok_or(Error::refused(Credential::RefreshToken, Refusal::Invalid))?;
    let now = state.clock.now();
    let pair = state
        .sessions
        .refresh(
            token,
            RefreshClient::FirstParty,
            None,
            client_ip(req),
            dpop_proof(req, Door::TokenEndpoint)?.as_ref(),
            now,
        )
        .await?;
    // The same token back (a head younger than the leeway): in cookie mode the jar
    // already holds it, so the answer leaves the jar alone. Only answers that move the
    // jar forward (a rotation, a predecessor answered with the head) set the cookie, so a
    // late answer of one tab can never put back a token another tab's rotation spent.
    let held = req
        .cookie(refresh_cookie_name(state))
        .is_some_and(|c| c.value() == pair.refresh_token.expose());
    Ok(token_response(state, pair, cookie_mode, held, now))
}

/// Log out: revoke the session of the refresh token (body or cookie) and the presented
/// access token, and clear the cookie. 204 also for tokens that are already unknown.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Omit to use the `__Host-tokenmint_refresh` cookie"),
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
        None => trusted_cookie(&state, &req)?,
    };
    let refresh_token = presented.and_then(|t| Presented::parse(t.expose_secret()));
    // A malformed or foreign Authorization header does not stop a logout; ending a
    // session needs no proof of its key (as RFC 7009 revocation does not).
    let access = AuthorizationToken::optional(&req).ok().flatten();
    state
        .sessions
        .logout(
            refresh_token,
            access.as_ref().map(|t| t.0.token.as_str()),
            client_ip(&req),
            state.clock.now(),
        )
        .await?;
    let mut response = HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(refresh_cookie(&state, String::new(), 0))
        .finish();
    forget_legacy_cookie(&state, &req, &mut response);
    Ok(response)
}

/// The refresh token of the request's cookie, if any, once the request is known to come
/// from a page we trust. Only the name the service sets is read: when `Secure`, the
/// `__Host-` cookie, which no sibling subdomain and no plain-HTTP page can set (a cookie
/// of the old name may have been planted, and would log the victim into the planter's
/// session). Two cookies of that name are refused.
fn trusted_cookie(state: &AppState, req: &HttpRequest) -> Result<Option<SecretString>, Error> {
    let cookies = req
        .cookies()
        .map_err(|_| Error::refused(Credential::RefreshToken, Refusal::Invalid))?;
    let name = refresh_cookie_name(state);
    let mut named = cookies.iter().filter(|c| c.name() == name);
    let presented = match (named.next(), named.next()) {
        (Some(_), Some(_)) => {
            return Err(Error::refused(Credential::RefreshToken, Refusal::Ambiguous));
        }
        (Some(cookie), None) if !cookie.value().is_empty() => {
            Some(SecretString::from(cookie.value().to_owned()))
        }
        _ => None,
    };
    // SameSite=Strict already keeps the cookie off cross-site requests; this is the
    // second lock, for browsers that do not honour it.
    if presented.is_some() && !super::origin_allowed(req, &state.settings) {
        return Err(Error::Forbidden(
            "cross-site request refused: Origin is not an allowed origin",
        ));
    }
    Ok(presented)
}

/// The name the refresh cookie is set under: `__Host-` prefixed when `Secure`; over
/// plain HTTP (development) the old name.
fn refresh_cookie_name(state: &AppState) -> &'static str {
    if state.settings.cookie_secure {
        REFRESH_COOKIE
    } else {
        LEGACY_REFRESH_COOKIE
    }
}

/// The refresh cookie, under [`refresh_cookie_name`]: `Path=/` when `Secure`, `Path=/api`
/// over plain HTTP.
fn refresh_cookie(state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
    cookie(state, refresh_cookie_name(state), value, max_age_secs)
}

/// An HttpOnly, SameSite=Strict cookie: `Secure` and `Path=/` (as `__Host-` needs) when
/// Secure, `Path=/api` over plain HTTP.
fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    max_age_secs: i64,
) -> Cookie<'static> {
    strict_cookie(
        state.settings.cookie_secure,
        name,
        value,
        max_age_secs,
        "/api",
    )
}

/// The name the device cookie is set under: `__Host-` prefixed when `Secure`.
fn device_cookie_name(state: &AppState) -> &'static str {
    if state.settings.cookie_secure {
        DEVICE_COOKIE
    } else {
        PLAIN_DEVICE_COOKIE
    }
}

/// The device cookie: HttpOnly, SameSite=Strict, for the login path's directory.
fn device_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let max_age = i64::try_from(state.settings.device_proof_ttl.as_secs()).unwrap_or(i64::MAX);
    cookie(state, device_cookie_name(state), value, max_age)
}

/// Clears a cookie of the old name that a browser still holds from an earlier release,
/// so that it cannot be read back once the `__Host-` cookie replaced it.
fn forget_legacy_cookie(state: &AppState, req: &HttpRequest, response: &mut HttpResponse) {
    if state.settings.cookie_secure && req.cookie(LEGACY_REFRESH_COOKIE).is_some() {
        let removal = Cookie::build(LEGACY_REFRESH_COOKIE, "")
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Strict)
            .path("/api")
            .max_age(time::Duration::seconds(0))
            .finish();
        if let Err(error) = response.add_cookie(&removal) {
            tracing::warn!(%error, "could not clear the old refresh cookie");
        }
    }
}

/// The login/refresh answer: the access token, and the refresh token in the body or, in
/// cookie mode, in `Set-Cookie` unless `held` (the request's refresh cookie already holds
/// this very token).
/// `DPoP` for an access token bound to a key (RFC 9449 section 5), else `Bearer`.
pub fn token_type(bound: bool) -> &'static str {
    if bound { "DPoP" } else { "Bearer" }
}

fn token_response(
    state: &AppState,
    pair: TokenPair,
    cookie_mode: bool,
    held: bool,
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
    let refresh_expires_in = if pair.refreshable {
        refresh_expires_in
    } else {
        0
    };
    let body_refresh = if !pair.refreshable {
        None
    } else if cookie_mode {
        if !held {
            response.cookie(refresh_cookie(state, refresh_token, refresh_expires_in));
        }
        None
    } else {
        Some(refresh_token)
    };
    if cookie_mode && let Some(proof) = &pair.device_proof {
        response.cookie(device_cookie(state, proof.clone()));
    }
    response.json(TokenResponse {
        token: pair.access.token.clone(),
        access_token: pair.access.token,
        token_type: token_type(claims.cnf.is_some()).to_owned(),
        expires_in: (claims.exp - claims.iat).max(0).unsigned_abs(),
        refresh_token: body_refresh,
        refresh_expires_in: refresh_expires_in.unsigned_abs(),
        scope: claims.scope,
        session_id: pair.session_id.to_string(),
        device_proof: pair.device_proof,
    })
}
