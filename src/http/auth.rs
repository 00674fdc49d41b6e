//! `POST /api/login`.

use actix_web::http::header;
use actix_web::{HttpResponse, post, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::auth::login::{LoginError, authenticate};
use crate::auth::passwords::Password;
use crate::auth::tokens::Grant;
use crate::auth::users::User;
use crate::error::{ApiError, ErrorBody, ErrorCode};

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
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Session id (`sid` claim).
    pub session_id: String,
}

/// Log in with a username and password; answers a signed access token.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed request or a scope the user does not have", body = ErrorBody),
        (status = 401, description = "Unknown user, wrong password or disabled user", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
#[post("/api/login")]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest {
        username,
        password,
        client_id,
        scope,
        cookie: _,
    } = body.into_inner();
    let password = Password::parse_presented(password).map_err(ApiError::invalid_request)?;
    let client_id = client_id.map(parse_client_id).transpose()?;
    let now = state.clock.now();

    let user = authenticate(&state.db, &state.hasher, &username, password, now)
        .await
        .map_err(|e| match e {
            LoginError::Failed => ApiError::new(
                ErrorCode::AuthenticationFailed,
                "invalid username or password",
            ),
            LoginError::Store(e) => e.into(),
            LoginError::Password(e) => ApiError::internal(e),
        })?;
    let scopes = narrow_scopes(&user, scope.as_deref())?;
    let sid = Uuid::new_v4();
    let issued = state
        .tokens
        .issue(
            &Grant {
                user: &user,
                scopes: &scopes,
                sid,
                client_id: client_id.as_deref(),
            },
            now,
        )
        .map_err(ApiError::internal)?;

    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            token: issued.token.clone(),
            access_token: issued.token,
            token_type: "Bearer".to_owned(),
            expires_in: state.tokens.access_ttl().as_secs(),
            scope: issued.claims.scope,
            session_id: sid.to_string(),
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
            return Err(ApiError::invalid_request(format!(
                "scope {scope:?} is not granted to this user"
            )));
        }
        if !granted.iter().any(|s| s == scope) {
            granted.push(scope.to_owned());
        }
    }
    Ok(granted)
}
