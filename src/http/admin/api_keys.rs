//! `/api/admin/api-keys`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::api_keys::{ApiKey, ApiKeyError, NewApiKey};
use crate::auth::users::parse_names;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::AppState;
use crate::http::extract::{Admin, Caller, json_body, query_params};
use crate::http::pagination::{PageQuery, split_page};

/// An API key, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Id.
    pub id: Uuid,
    /// First 12 characters of the key, to recognise it.
    pub prefix: String,
    /// Name.
    pub name: String,
    /// The user it acts for.
    pub owner_id: Option<Uuid>,
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
            scopes: k.scopes,
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
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// The user the key acts for.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// Scopes, e.g. `["introspect"]`.
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
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such API key")
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

/// Create an API key; the response carries its secret, once.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown only here", body = CreatedApiKey),
        (status = 400, description = "Invalid field, unknown owner or past expiry", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
#[post("/api/admin/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateApiKeyRequest = json_body(&req, &body)?;
    let now = state.clock.now();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(
            "name must be 1 to 100 printable characters",
        ));
    }
    if body.expires_at.is_some_and(|exp| exp <= now) {
        return Err(ApiError::invalid_request(
            "expires_at must be in the future",
        ));
    }
    let new = NewApiKey {
        name,
        owner_id: body.owner_id,
        scopes: parse_names("scope", &body.scopes).map_err(ApiError::invalid_request)?,
        expires_at: body.expires_at,
    };
    let result = state.api_keys.create(new, now).await;
    let target = result
        .as_ref()
        .ok()
        .map(|(k, _)| format!("api_key:{}", k.id));
    state
        .audit(
            &req,
            caller.actor(),
            "api_key.create",
            target,
            result.is_ok(),
        )
        .await;
    let (key, secret) = result.map_err(|e| match e {
        ApiKeyError::UnknownOwner => ApiError::invalid_request("owner_id names no user"),
        ApiKeyError::Store(e) => e.into(),
        ApiKeyError::Random => ApiError::internal(e),
    })?;
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
    )
)]
#[get("/api/admin/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    Admin(caller): Admin,
) -> Result<web::Json<ApiKeyPage>, ApiError> {
    let query = query_params::<ApiKeyListQuery>(&req)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let found = state
        .api_keys
        .page(page.after, page.limit + 1, query.owner_id, query.enabled)
        .await?;
    state
        .audit(&req, caller.actor(), "api_key.list", None, true)
        .await;
    let (items, next_cursor) = split_page(found, page.limit, |k| k.id);
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
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    let id = parse_id(&id)?;
    let key = state.api_keys.get(id).await?;
    state
        .audit(
            &req,
            caller.actor(),
            "api_key.get",
            Some(format!("api_key:{id}")),
            key.is_some(),
        )
        .await;
    Ok(web::Json(key.ok_or_else(not_found)?.into()))
}

async fn set_enabled(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    let id = parse_id(id)?;
    let key = state
        .api_keys
        .set_enabled(id, enabled, state.clock.now())
        .await?;
    let action = if enabled {
        "api_key.enable"
    } else {
        "api_key.disable"
    };
    state
        .audit(
            req,
            caller.actor(),
            action,
            Some(format!("api_key:{id}")),
            key.is_some(),
        )
        .await;
    Ok(web::Json(key.ok_or_else(not_found)?.into()))
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
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    set_enabled(&state, &req, &caller, &id, false).await
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
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<web::Json<ApiKeyView>, ApiError> {
    set_enabled(&state, &req, &caller, &id, true).await
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
    req: HttpRequest,
    Admin(caller): Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let deleted = state.api_keys.delete(id).await?;
    state
        .audit(
            &req,
            caller.actor(),
            "api_key.delete",
            Some(format!("api_key:{id}")),
            deleted,
        )
        .await;
    if !deleted {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}
