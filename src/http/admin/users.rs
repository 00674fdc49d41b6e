//! `/api/admin/users`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::passwords::Password;
use crate::auth::users::{
    self, NewUser, User, UserError, UserPatch, Username, parse_claims, parse_names,
};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::AppState;
use crate::http::extract::{Admin, json_body, query_params};
use crate::http::pagination::{PageQuery, split_page};

/// A user; never a password hash.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Username as created.
    pub username: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
    /// Custom claims merged into access tokens.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            roles: u.roles,
            scopes: u.scopes,
            claims: u.claims,
            enabled: u.enabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A page of users.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// Users, oldest first.
    pub items: Vec<UserView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 64 of letters, digits and `. _ - @ +`; unique, case-insensitively.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub username: String,
    /// At least 8 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    pub password: SecretString,
    /// Roles, e.g. `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Custom claims (an object; registered claim names are refused).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserRequest {
    /// New password; revokes all sessions.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 1024)]
    pub password: Option<SecretString>,
    /// New roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// New scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// New custom claims.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
    /// `false` disables the user and revokes all sessions.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such user")
}

/// Path ids that are not UUIDs name no user.
pub fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::UsernameTaken => ApiError::new(ErrorCode::Conflict, "username is taken"),
        UserError::Store(e) => e.into(),
        UserError::Password(e) => ApiError::internal(e),
    }
}

/// Create a user.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
    )
)]
#[post("/api/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateUserRequest = json_body(&req, &body)?;
    let new = NewUser {
        username: Username::parse(&body.username).map_err(ApiError::invalid_request)?,
        password: Password::parse_new(body.password).map_err(ApiError::invalid_request)?,
        roles: parse_names("role", &body.roles).map_err(ApiError::invalid_request)?,
        scopes: parse_names("scope", &body.scopes).map_err(ApiError::invalid_request)?,
        claims: parse_claims(body.claims).map_err(ApiError::invalid_request)?,
    };
    let result = users::create_user(&state.db, &state.hasher, new, state.clock.now()).await;
    let target = result
        .as_ref()
        .ok()
        .map(|u| format!("user:{}", u.id))
        .or(Some(body.username));
    state
        .audit(&req, caller.actor(), "user.create", target, result.is_ok())
        .await;
    let user = result.map_err(user_error)?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// List users, oldest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page", body = UserPage),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
#[get("/api/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
) -> Result<web::Json<UserPage>, ApiError> {
    let query = query_params::<PageQuery>(&req)?;
    let page = query.parse()?;
    let found = users::list_users(&state.db, page.after, page.limit + 1).await?;
    state
        .audit(&req, caller.actor(), "user.list", None, true)
        .await;
    let (items, next_cursor) = split_page(found, page.limit, |u| u.id);
    Ok(web::Json(UserPage {
        items: items.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// Get one user.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[get("/api/admin/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<web::Json<UserView>, ApiError> {
    let id = parse_id(&id)?;
    let user = users::find_user(&state.db, id).await?;
    state
        .audit(
            &req,
            caller.actor(),
            "user.get",
            Some(format!("user:{id}")),
            user.is_some(),
        )
        .await;
    Ok(web::Json(user.ok_or_else(not_found)?.into()))
}

/// Change a user. A new password or `enabled: false` revokes all their sessions.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = PatchUserRequest,
    responses(
        (status = 200, description = "The changed user", body = UserView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[patch("/api/admin/users/{id}")]
pub async fn patch_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<UserView>, ApiError> {
    let id = parse_id(&id)?;
    let body: PatchUserRequest = json_body(&req, &body)?;
    let patch = UserPatch {
        password: body
            .password
            .map(Password::parse_new)
            .transpose()
            .map_err(ApiError::invalid_request)?,
        roles: body
            .roles
            .map(|r| parse_names("role", &r))
            .transpose()
            .map_err(ApiError::invalid_request)?,
        scopes: body
            .scopes
            .map(|s| parse_names("scope", &s))
            .transpose()
            .map_err(ApiError::invalid_request)?,
        claims: body
            .claims
            .map(parse_claims)
            .transpose()
            .map_err(ApiError::invalid_request)?,
        enabled: body.enabled,
    };
    let now = state.clock.now();
    let result = users::update_user(&state.db, &state.hasher, id, patch, now).await;
    let ok = matches!(result, Ok(Some(_)));
    state
        .audit(
            &req,
            caller.actor(),
            "user.update",
            Some(format!("user:{id}")),
            ok,
        )
        .await;
    let (user, revoke) = result.map_err(user_error)?.ok_or_else(not_found)?;
    if revoke {
        state.sessions.revoke_user(id, "user changed", now).await?;
    }
    Ok(web::Json(user.into()))
}

/// Delete a user; their sessions are revoked and their API keys deleted.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[delete("/api/admin/users/{id}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    if users::find_user(&state.db, id).await?.is_none() {
        state
            .audit(
                &req,
                caller.actor(),
                "user.delete",
                Some(format!("user:{id}")),
                false,
            )
            .await;
        return Err(not_found());
    }
    // Cut off the tokens first: if that fails, the user still exists and the call can be retried.
    state
        .sessions
        .revoke_user(id, "user deleted", state.clock.now())
        .await?;
    let deleted = users::delete_user(&state.db, id).await?;
    state
        .audit(
            &req,
            caller.actor(),
            "user.delete",
            Some(format!("user:{id}")),
            deleted,
        )
        .await;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Log a user out everywhere: every session is revoked and every access token issued
/// before now fails introspection and `/api/me`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "The revocation could not be published (it is recorded and will be)", body = ErrorBody),
    )
)]
#[post("/api/admin/users/{id}/revoke-sessions")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let exists = users::find_user(&state.db, id).await?.is_some();
    state
        .audit(
            &req,
            caller.actor(),
            "user.revoke_sessions",
            Some(format!("user:{id}")),
            exists,
        )
        .await;
    if !exists {
        return Err(not_found());
    }
    state
        .sessions
        .revoke_user(id, "revoke-sessions", state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
