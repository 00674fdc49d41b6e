//! `/api/admin/users`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{json_body, query_params};
use crate::http::pagination::{TenantPageQuery, split_page};
use crate::http::schema::{RoleName, ScopeName};
use crate::identity::passwords::Password;
use crate::identity::{NewUser, UserPatch};
use crate::model::Admin;
use crate::model::{Claims, Role, Scope, TenantId, User, Username};

/// A user; never a password hash.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// Username as created (unique in its tenant, case-insensitively).
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
            tenant: u.tenant.as_str().to_owned(),
            username: u.username,
            roles: u.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            scopes: u.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            claims: u.claims.into_map(),
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
    /// The tenant (default: the caller's; only admins of `default` may name another).
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
    /// 1 to 64 of letters, digits and `. _ - @ +`; unique in the tenant, case-insensitively.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@+-]{1,64}$")]
    pub username: String,
    /// At least 8 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    pub password: SecretString,
    /// Roles, e.g. `admin`.
    #[serde(default)]
    #[schema(value_type = Vec<RoleName>, max_items = 100)]
    pub roles: Vec<String>,
    /// Scopes the user may be granted.
    #[serde(default)]
    #[schema(value_type = Vec<ScopeName>, max_items = 100)]
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
    /// New roles; a change revokes all sessions.
    #[serde(default)]
    #[schema(value_type = Option<Vec<RoleName>>, max_items = 100)]
    pub roles: Option<Vec<String>>,
    /// New scopes; a change revokes all sessions.
    #[serde(default)]
    #[schema(value_type = Option<Vec<ScopeName>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// New custom claims.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
    /// `false` disables the user and revokes all sessions.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Path ids that are not UUIDs name no user.
/// A user id from a path: anything else names no user (404).
pub fn parse_id(id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound("user"))
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
        (status = 404, description = "No such tenant, or another than the admin's", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
    )
)]
#[post("/api/admin/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateUserRequest = json_body(&req, &body)?;
    let new = NewUser {
        tenant: body.tenant.as_deref().map(TenantId::parse).transpose()?,
        username: Username::parse(&body.username)?,
        password: Password::parse_new(body.password)?,
        roles: Role::parse_list(&body.roles)?,
        scopes: Scope::parse_list(&body.scopes)?,
        claims: Claims::parse(body.claims)?,
    };
    let user = state
        .identity
        .create_user(&admin, new, state.clock.now())
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// Filters and page of the user list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty or absent for the first page.
    pub cursor: Option<String>,
    /// Only this tenant's users (admins of `default`; others see only their own).
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
    /// Only users whose name contains this, in any case.
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@+-]+$")]
    pub q: Option<String>,
}

/// List users, oldest first, optionally those whose name contains `q`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(UserListQuery),
    responses(
        (status = 200, description = "A page", body = UserPage),
        (status = 400, description = "Invalid limit, cursor, tenant or search", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Another tenant than the admin's", body = ErrorBody),
    )
)]
#[get("/api/admin/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<web::Json<UserPage>, ApiError> {
    let query = query_params::<UserListQuery>(&req)?;
    let (page, tenant) = TenantPageQuery {
        limit: query.limit,
        cursor: query.cursor,
        tenant: query.tenant,
    }
    .parse()?;
    let found = state
        .identity
        .list_users(
            &admin,
            tenant,
            query.q,
            page.after_uuid()?,
            page.limit + 1,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |u| u.id.to_string());
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
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<UserView>, ApiError> {
    let user = state
        .identity
        .get_user(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(web::Json(user.into()))
}

/// Change a user.
///
/// A new password, other roles or scopes, or `enabled: false` revoke all their sessions
/// and cut off their access tokens.
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
    admin: Admin,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<UserView>, ApiError> {
    let id = parse_id(&id)?;
    let body: PatchUserRequest = json_body(&req, &body)?;
    let patch = UserPatch {
        password: body.password.map(Password::parse_new).transpose()?,
        roles: body.roles.as_deref().map(Role::parse_list).transpose()?,
        scopes: body.scopes.as_deref().map(Scope::parse_list).transpose()?,
        claims: body.claims.map(Claims::parse).transpose()?,
        enabled: body.enabled,
    };
    let user = state
        .identity
        .update_user(&admin, id, patch, state.clock.now())
        .await?;
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
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .identity
        .delete_user(&admin, parse_id(&id)?, state.clock.now())
        .await?;
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
        (status = 503, description = "The database is unavailable; nothing was revoked", body = ErrorBody),
    )
)]
#[post("/api/admin/users/{id}/revoke-sessions")]
pub async fn revoke_sessions(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .identity
        .revoke_sessions(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
