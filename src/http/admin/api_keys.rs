//! `/api/admin/api-keys`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api_keys::{ApiKey, ApiKeyName, KeyFilter, NewApiKey};
use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{json_body, query_params};
use crate::http::pagination::{PageQuery, split_page};
use crate::http::schema::{DisplayName, ScopeName};
use crate::model::Admin;
use crate::model::{Scope, TenantId};

/// An API key, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Id.
    pub id: Uuid,
    /// First 12 characters of the key, to recognise it.
    pub prefix: String,
    /// Name.
    pub name: String,
    /// The user it acts for: disabling or deleting that user stops the key.
    pub owner_id: Uuid,
    /// The tenant (the owner's).
    pub tenant: String,
    /// Scopes (`admin`, `introspect`, ...).
    pub scopes: Vec<String>,
    /// Whether it authenticates.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authentication (written in batches, within seconds).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Address of the last authentication.
    pub last_used_ip: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            prefix: k.prefix,
            name: k.name,
            owner_id: k.owner_id,
            tenant: k.tenant.as_str().to_owned(),
            scopes: k.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            enabled: k.enabled,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            last_used_ip: k.last_used_ip,
        }
    }
}

/// A new key with its secret: the only response that ever carries it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    /// The secret, `tmk_...`: store it now, it is not shown again.
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

/// A page of keys.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiKeyPage {
    /// Keys, oldest first.
    pub items: Vec<ApiKeyView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A name for people, 1 to 100 characters.
    #[schema(value_type = DisplayName)]
    pub name: String,
    /// The user the key acts for (default: the calling admin, or the owner of the
    /// calling key). Scope `admin` needs an owner with role `admin`.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// The tenant, which must be the owner's (only admins of `default` may name another
    /// than their own).
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
    /// Scopes, e.g. `["introspect"]`.
    #[schema(value_type = Vec<ScopeName>, max_items = 100)]
    pub scopes: Vec<String>,
    /// Optional expiry, in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Filters and page of the key list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyListQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty or absent for the first page.
    pub cursor: Option<String>,
    /// Only the keys of this user.
    pub owner_id: Option<Uuid>,
    /// Only enabled (`true`) or disabled (`false`) keys.
    pub enabled: Option<bool>,
    /// Only this tenant's keys (admins of `default`; others see only their own).
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
}

fn parse_id(id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound("API key"))
}

/// Create an API key; the response carries its secret, once.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        (status = 400, description = "Invalid field, unknown owner, an admin key for an owner who is not an admin, or a past expiry", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
#[post("/api/admin/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateApiKeyRequest = json_body(&req, &body)?;
    let new = NewApiKey {
        name: ApiKeyName::parse(&body.name)?,
        owner_id: body.owner_id,
        tenant: body.tenant.as_deref().map(TenantId::parse).transpose()?,
        scopes: Scope::parse_list(&body.scopes)?,
        expires_at: body.expires_at,
    };
    let (key, secret) = state
        .api_keys
        .create(&admin, new, state.clock.now())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(CreatedApiKey {
            key: secret.expose().to_owned(),
            api_key: key.into(),
        }))
}

/// List API keys, oldest first, optionally by owner and state.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(ApiKeyListQuery),
    responses(
        (status = 200, description = "A page", body = ApiKeyPage),
        (status = 400, description = "Invalid limit, cursor or filter", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Another tenant than the admin's", body = ErrorBody),
    )
)]
#[get("/api/admin/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<web::Json<ApiKeyPage>, ApiError> {
    let query = query_params::<ApiKeyListQuery>(&req)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let filter = KeyFilter {
        owner_id: query.owner_id,
        enabled: query.enabled,
        tenant: query.tenant.as_deref().map(TenantId::parse).transpose()?,
    };
    let found = state
        .api_keys
        .list(
            &admin,
            page.after_uuid()?,
            page.limit + 1,
            filter,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |k| k.id.to_string());
    Ok(web::Json(ApiKeyPage {
        items: items.into_iter().map(ApiKeyView::from).collect(),
        next_cursor,
    }))
}

/// Get one API key (never its secret).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key", body = ApiKeyView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
#[get("/api/admin/api-keys/{id}")]
pub async fn get_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    let key = state
        .api_keys
        .get(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(web::Json(key.into()))
}

async fn set_enabled(
    state: &AppState,
    admin: &Admin,
    id: &str,
    enabled: bool,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    let key = state
        .api_keys
        .set_enabled(admin, parse_id(id)?, enabled, state.clock.now())
        .await?;
    Ok(web::Json(key.into()))
}

/// Disable an API key: refused everywhere from the moment this answers. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key, disabled", body = ApiKeyView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
#[post("/api/admin/api-keys/{id}/disable")]
pub async fn disable_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    set_enabled(&state, &admin, &id, false).await
}

/// Enable an API key again. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The key, enabled", body = ApiKeyView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
#[post("/api/admin/api-keys/{id}/enable")]
pub async fn enable_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    set_enabled(&state, &admin, &id, true).await
}

/// Delete an API key: refused everywhere from the moment this answers.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
#[delete("/api/admin/api-keys/{id}")]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .api_keys
        .delete(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
