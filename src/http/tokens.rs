//! `POST /api/token/revoke` (RFC 7009) and `POST /api/token/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{JsonOrForm, authenticate_caller, verify_access_token};
use crate::auth::api_keys::ApiKeySecret;
use crate::auth::refresh_token::RefreshToken;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::revocation::Revocation;

/// Which kind of token the client believes it sends (RFC 7009 section 2.1).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeHint {
    /// A JWT access token.
    AccessToken,
    /// An opaque refresh token.
    RefreshToken,
}

/// A token to revoke or introspect.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token.
    pub token: String,
    /// Optional hint; the token's form decides in the end.
    #[serde(default)]
    pub token_type_hint: Option<TokenTypeHint>,
}

/// Revoke an access token (listed until its `exp`) or a refresh token (its whole session).
/// Unknown tokens get the same 200.
#[utoipa::path(
    tag = "tokens",
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "No token, or a malformed body", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 503, description = "The revocation could not be published (it is recorded and will be)", body = ErrorBody),
    )
)]
#[post("/api/token/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    body: JsonOrForm<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let TokenRequest {
        token,
        token_type_hint: _,
    } = body.0;
    let now = state.clock.now();
    // The two forms cannot be confused: refresh tokens are 43 base64url characters, access
    // tokens are JWTs with dots. The hint (RFC 7009 section 2.1) only orders lookups.
    if let Some(refresh) = RefreshToken::parse(&token) {
        state
            .sessions
            .revoke_by_refresh_token(&refresh, "revoke", now)
            .await?;
    } else if let Ok(claims) = state.tokens.verify(&token, now) {
        let exp = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
        state
            .revocations
            .revoke(Revocation::Token { jti: claims.jti }, exp, now)
            .await
            .map_err(|e| ApiError::unavailable("the revocation list", e))?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// What introspection says of a token (RFC 7662 section 2.2).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct IntrospectionResponse {
    /// Whether the token is valid now.
    pub active: bool,
    /// `access_token` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// For an API key: its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Subject: the user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// OAuth client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Expiry, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Introspect an access token (active only if well signed, unexpired and not revoked)
/// or an API key (active only if enabled and unexpired). Callers are admins or API keys
/// with scope `introspect`. Refresh tokens are never reported active.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content((TokenRequest = "application/json"), (TokenRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The token's state", body = IntrospectionResponse),
        (status = 400, description = "No token, or a malformed body", body = ErrorBody),
        (status = 401, description = "The caller is not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is neither an admin nor a key with scope `introspect`", body = ErrorBody),
        (status = 503, description = "The revocation list cannot be read: never a guess", body = ErrorBody),
    )
)]
#[post("/api/token/introspect")]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrForm<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate_caller(&state, &req).await?;
    if !caller.may_introspect() {
        return Err(ApiError::new(
            ErrorCode::InsufficientPermissions,
            "introspection needs an admin or the introspect scope",
        ));
    }
    let token = body.0.token;
    if let Some(secret) = ApiKeySecret::parse(&token) {
        let now = state.clock.now();
        let answer = match state.api_keys.authenticate(&secret, None, now).await? {
            Some(key) => IntrospectionResponse {
                active: true,
                token_type: Some("api_key".to_owned()),
                key_id: Some(key.id.to_string()),
                sub: key.owner_id.map(|o| o.to_string()),
                scope: Some(key.scopes.join(" ")),
                exp: key.expires_at.map(|t| t.timestamp()),
                ..IntrospectionResponse::default()
            },
            None => IntrospectionResponse::default(),
        };
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(answer));
    }
    let answer = match verify_access_token(&state, &token).await {
        Ok(claims) => IntrospectionResponse {
            active: true,
            token_type: Some("access_token".to_owned()),
            sub: Some(claims.sub),
            scope: Some(claims.scope),
            client_id: claims.client_id,
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            jti: Some(claims.jti),
            sid: Some(claims.sid),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            username: Some(claims.username),
            key_id: None,
        },
        Err(e) if e.code() == ErrorCode::Unavailable => return Err(e),
        Err(_) => IntrospectionResponse::default(),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
