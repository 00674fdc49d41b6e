//! `/api/admin/tenants`: admins of the `default` tenant only.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{json_body, query_params};
use crate::http::pagination::{PageQuery, split_page};
use crate::http::schema::DisplayName;
use crate::model::Admin;
use crate::model::TenantId;
use crate::tenancy::{Tenant, TenantName, TenantPatch};

/// A tenant.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    /// The slug.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Whether its users, keys and clients may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.as_str().to_owned(),
            name: t.name,
            enabled: t.enabled,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A page of tenants.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TenantPage {
    /// Tenants, by id.
    pub items: Vec<TenantView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// A tenant to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// The slug: 1 to 63 of `a-z 0-9 -`, starting with a letter or digit.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    /// A name for people, 1 to 100 characters.
    #[schema(value_type = DisplayName)]
    pub name: String,
}

/// Changes to a tenant; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenantRequest {
    /// A new name.
    #[serde(default)]
    #[schema(value_type = Option<DisplayName>)]
    pub name: Option<String>,
    /// `false` disables the tenant: its sessions and access tokens stop working, its
    /// logins, refreshes, API keys and clients are refused, on every instance.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn parse_id(id: &str) -> Result<TenantId, Error> {
    TenantId::parse(id).map_err(|_| Error::NotFound("tenant"))
}

/// Create a tenant.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
    )
)]
#[post("/api/admin/tenants")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateTenantRequest = json_body(&req, &body)?;
    let tenant = state
        .tenants
        .create(
            &admin,
            TenantId::parse(&body.id)?,
            TenantName::parse(&body.name)?,
            state.clock.now(),
        )
        .await?;
    Ok(HttpResponse::Created().json(TenantView::from(tenant)))
}

/// List tenants, by id.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page", body = TenantPage),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
    )
)]
#[get("/api/admin/tenants")]
pub async fn list_tenants(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<web::Json<TenantPage>, ApiError> {
    let page = query_params::<PageQuery>(&req)?.parse()?;
    let found = state
        .tenants
        .list(
            &admin,
            page.after.clone(),
            page.limit + 1,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |t| t.id.as_str().to_owned());
    Ok(web::Json(TenantPage {
        items: items.into_iter().map(TenantView::from).collect(),
        next_cursor,
    }))
}

/// Get one tenant.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
#[get("/api/admin/tenants/{id}")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<TenantView>, ApiError> {
    let tenant = state
        .tenants
        .get(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(web::Json(tenant.into()))
}

/// Rename, enable or disable a tenant.
///
/// A disable takes effect on every instance before this answers: the tenant's sessions
/// and access tokens stop working (`TOKEN_REVOKED`) and its logins, refreshes, API keys
/// and clients are refused. `default` cannot be disabled (409).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = PatchTenantRequest,
    responses(
        (status = 200, description = "The changed tenant", body = TenantView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The default tenant cannot be disabled", body = ErrorBody),
    )
)]
#[patch("/api/admin/tenants/{id}")]
pub async fn patch_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<TenantView>, ApiError> {
    let id = parse_id(&id)?;
    let body: PatchTenantRequest = json_body(&req, &body)?;
    let patch = TenantPatch {
        name: body.name.as_deref().map(TenantName::parse).transpose()?,
        enabled: body.enabled,
    };
    let tenant = state
        .tenants
        .update(&admin, id, patch, state.clock.now())
        .await?;
    Ok(web::Json(tenant.into()))
}

/// Delete a tenant that has no users, API keys or clients.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The tenant is `default`, or still has users, API keys or clients", body = ErrorBody),
    )
)]
#[delete("/api/admin/tenants/{id}")]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tenants
        .delete(&admin, parse_id(&id)?, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
