//! `POST /api/token/revoke` (RFC 7009) and `POST /api/token/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{JsonOrForm, client_ip};
use crate::http::error::{ApiError, ErrorBody};
use crate::model::Scope;
use crate::principal::{Caller, Introspection};

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
    /// The token (an empty or unknown one is inactive, and revoking it does nothing).
    pub token: String,
    /// Optional hint; the token's form decides in the end.
    #[serde(default)]
    pub token_type_hint: Option<TokenTypeHint>,
}

/// A token to revoke or introspect, as a form (RFC 7009, RFC 7662): the fields of the JSON
/// body, none of them null (a form has no null).
// The schema of the form body only: the server reads either body into a `TokenRequest`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TokenRequestForm {
    /// The token (an empty or unknown one is inactive, and revoking it does nothing).
    token: String,
    /// Optional hint; the token's form decides in the end.
    #[schema(nullable = false)]
    token_type_hint: Option<TokenTypeHint>,
}

/// Revoke an access token (listed until its `exp`) or a refresh token (its whole session).
/// Unknown tokens get the same 200.
#[utoipa::path(
    tag = "tokens",
    request_body(content((TokenRequest = "application/json"), (TokenRequestForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "No token, or a malformed body", body = ErrorBody),
        (status = 415, description = "Neither JSON nor a form", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was revoked", body = ErrorBody),
    )
)]
#[post("/api/token/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonOrForm<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .sessions
        .revoke_token(&body.0.token, client_ip(&req), state.clock.now())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// The confirmation of a token bound to a key (RFC 7800, RFC 9449).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyConfirmation {
    /// RFC 7638 thumbprint of the DPoP key.
    pub jkt: String,
}

/// What introspection says of a token (RFC 7662 section 2.2).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct IntrospectionResponse {
    /// Whether the token is valid now.
    pub active: bool,
    /// `access_token`, `DPoP` (an access token bound to a key: see `cnf`) or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The key a DPoP-bound token is bound to: a resource server checks its proofs
    /// against `cnf.jkt` (RFC 9449 section 6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<KeyConfirmation>,
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
    /// Tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// Introspect an access token (active only if well signed, unexpired and not revoked)
/// or an API key (active only if enabled and unexpired). Callers are admins or API keys
/// with scope `introspect`. Refresh tokens are never reported active.
#[utoipa::path(
    tag = "tokens",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content((TokenRequest = "application/json"), (TokenRequestForm = "application/x-www-form-urlencoded"))),
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
    caller: Caller,
    body: JsonOrForm<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let introspection = state
        .authenticator
        .introspect(&caller, &body.0.token, state.clock.now())
        .await?;
    let answer = match introspection {
        Introspection::Inactive => IntrospectionResponse::default(),
        Introspection::ApiKey(found) => IntrospectionResponse {
            active: true,
            token_type: Some("api_key".to_owned()),
            key_id: Some(found.key.id.to_string()),
            sub: Some(found.key.owner_id.to_string()),
            scope: Some(Scope::join(&found.key.scopes)),
            exp: found.key.expires_at.map(|t| t.timestamp()),
            tenant_id: Some(found.key.tenant.as_str().to_owned()),
            ..IntrospectionResponse::default()
        },
        Introspection::AccessToken(claims) => IntrospectionResponse {
            active: true,
            token_type: Some(
                if claims.cnf.is_some() {
                    "DPoP"
                } else {
                    "access_token"
                }
                .to_owned(),
            ),
            cnf: claims.cnf.map(|c| KeyConfirmation { jkt: c.jkt }),
            sub: Some(claims.sub),
            scope: Some(claims.scope),
            client_id: claims.client_id,
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            jti: Some(claims.jti),
            sid: claims.sid,
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            username: claims.username,
            tenant_id: Some(claims.tenant_id),
            key_id: None,
        },
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
