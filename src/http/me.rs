//! `GET /api/me`.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::extract::AuthorizationToken;
use crate::http::error::{ApiError, ErrorBody};

/// Who the bearer of an access token is.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    /// User id (or, for a client's own token, its `client_id`).
    pub sub: String,
    /// Username (none for a client's own token).
    pub username: Option<String>,
    /// Tenant.
    pub tenant_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Session id (none for a client's own token).
    pub session_id: Option<String>,
    /// The user's custom claims only.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

/// Describe the caller of a bearer access token.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's subject", body = MeResponse),
        (status = 401, description = "Missing, malformed, badly signed, expired (`TOKEN_EXPIRED`) or revoked (`TOKEN_REVOKED`) token", body = ErrorBody),
        (status = 503, description = "The revocation list cannot be read", body = ErrorBody),
    )
)]
#[get("/api/me")]
pub async fn me(
    state: web::Data<AppState>,
    token: AuthorizationToken,
) -> Result<web::Json<MeResponse>, ApiError> {
    let claims = state
        .authenticator
        .access_token(&token.0, state.clock.now())
        .await?;
    Ok(web::Json(MeResponse {
        sub: claims.sub,
        username: claims.username,
        tenant_id: claims.tenant_id,
        roles: claims.roles,
        scope: claims.scope,
        session_id: claims.sid,
        claims: claims.custom,
    }))
}
