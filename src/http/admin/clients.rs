//! `/api/admin/clients`: the OAuth clients of a tenant.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::Action;
use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{json_body, query_params};
use crate::http::pagination::{TenantPageQuery, split_page};
use crate::http::schema::{
    AudienceName, ClientIdName, DisplayName, ScopeName, grant_types, new_grant_types,
};
use crate::model::Admin;
use crate::model::{Audience, Client, ClientId, ClientKind, GrantType, Scope, TenantId};
use crate::oauth::clients::{ClientPatch, NewClient, parse_name};

/// A client, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    /// The `client_id`.
    pub client_id: String,
    /// A name for people.
    pub name: String,
    /// Its tenant.
    pub tenant: String,
    /// `confidential` (authenticates with a secret) or `public` (sends only its id).
    #[serde(rename = "type")]
    pub kind: String,
    /// `password` (may be named at `/api/login`), `refresh_token`,
    /// `client_credentials`, `urn:ietf:params:oauth:grant-type:token-exchange`.
    pub grant_types: Vec<String>,
    /// The scopes its tokens may carry.
    pub scopes: Vec<String>,
    /// The audiences it may ask for by token exchange.
    pub audiences: Vec<String>,
    /// Whether it may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            client_id: c.client_id.as_str().to_owned(),
            name: c.name,
            tenant: c.tenant.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scopes: c.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            audiences: c.audiences.iter().map(|a| a.as_str().to_owned()).collect(),
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A client with its secret: the only responses that ever carry it are the creation of
/// a confidential client and a secret rotation.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientWithSecret {
    /// `tmcs_...` for a confidential client, `null` for a public one: store it now, it
    /// is not shown again.
    pub client_secret: Option<String>,
    /// The client's record.
    #[serde(flatten)]
    pub client: ClientView,
}

/// A page of clients.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientPage {
    /// Clients, by `client_id`.
    pub items: Vec<ClientView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// A client to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// A name for people, 1 to 100 characters.
    #[schema(value_type = DisplayName)]
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(confidential|public)$")]
    pub kind: String,
    /// The `client_id` (1 to 128 of `A-Z a-z 0-9 . _ ~ -`); generated (`tmc_...`) when
    /// absent.
    #[serde(default)]
    #[schema(value_type = Option<ClientIdName>)]
    pub client_id: Option<String>,
    /// The tenant (default: the calling admin's; only admins of `default` may name
    /// another).
    #[serde(default)]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub tenant: Option<String>,
    /// Grant types, each at most once; `client_credentials` is for confidential clients
    /// only.
    #[schema(schema_with = grant_types)]
    pub grant_types: Vec<String>,
    /// The scopes its tokens may carry (default none).
    #[serde(default)]
    #[schema(value_type = Vec<ScopeName>, max_items = 100)]
    pub scopes: Vec<String>,
    /// Audiences it may ask for by token exchange (default none).
    #[serde(default)]
    #[schema(value_type = Vec<AudienceName>, max_items = 20)]
    pub audiences: Vec<String>,
}

/// Changes to a client; absent fields stay as they are. The type and tenant are fixed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchClientRequest {
    /// A new name.
    #[serde(default)]
    #[schema(value_type = Option<DisplayName>)]
    pub name: Option<String>,
    /// New grant types, each at most once.
    #[serde(default)]
    #[schema(schema_with = new_grant_types)]
    pub grant_types: Option<Vec<String>>,
    /// New scopes.
    #[serde(default)]
    #[schema(value_type = Option<Vec<ScopeName>>, max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// New audiences.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AudienceName>>, max_items = 20)]
    pub audiences: Option<Vec<String>>,
}

fn parse_id(id: &str) -> Result<ClientId, Error> {
    ClientId::parse(id).map_err(|_| Error::NotFound("client"))
}

pub(crate) fn parse_grants(names: &[String]) -> Result<Vec<GrantType>, Error> {
    let mut grants = Vec::with_capacity(names.len());
    for name in names {
        let grant = GrantType::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "grant_types: unknown grant type; expected one of {}",
                GrantType::ALL.map(GrantType::as_str).join(", ")
            ))
        })?;
        if grants.contains(&grant) {
            return Err(Error::invalid("grant_types: listed twice"));
        }
        grants.push(grant);
    }
    Ok(grants)
}

pub(crate) fn parse_audiences(names: &[String]) -> Result<Vec<Audience>, Error> {
    if names.len() > 20 {
        return Err(Error::invalid("audiences: at most 20"));
    }
    let mut audiences: Vec<Audience> = Vec::with_capacity(names.len());
    for name in names {
        let audience = Audience::parse(name)?;
        if !audiences.contains(&audience) {
            audiences.push(audience);
        }
    }
    Ok(audiences)
}

fn created(client: Client, secret: Option<String>) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClientWithSecret {
            client_secret: secret,
            client: client.into(),
        })
}

/// Register a client; a confidential client's response carries its secret, once.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = CreateClientRequest,
    responses(
        (status = 201, description = "Registered; `client_secret` is shown only here", body = ClientWithSecret),
        (status = 400, description = "Invalid field, or `client_credentials` for a public client", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such tenant, or another than the admin's", body = ErrorBody),
        (status = 409, description = "The `client_id` is taken", body = ErrorBody),
    )
)]
#[post("/api/admin/clients")]
pub async fn create_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateClientRequest = json_body(&req, &body)?;
    let new = NewClient {
        client_id: body.client_id.as_deref().map(ClientId::parse).transpose()?,
        name: parse_name(&body.name)?,
        tenant: body.tenant.as_deref().map(TenantId::parse).transpose()?,
        kind: ClientKind::parse(&body.kind)?,
        grant_types: parse_grants(&body.grant_types)?,
        scopes: Scope::parse_list(&body.scopes)?,
        audiences: parse_audiences(&body.audiences)?,
    };
    let (client, secret) = state.clients.create(&admin, new, state.clock.now()).await?;
    Ok(created(client, secret.map(|s| s.expose().to_owned())))
}

/// List clients, by `client_id`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(TenantPageQuery),
    responses(
        (status = 200, description = "A page", body = ClientPage),
        (status = 400, description = "Invalid limit, cursor or tenant", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "Another tenant than the admin's", body = ErrorBody),
    )
)]
#[get("/api/admin/clients")]
pub async fn list_clients(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<web::Json<ClientPage>, ApiError> {
    let (page, tenant) = query_params::<TenantPageQuery>(&req)?.parse()?;
    let found = state
        .clients
        .list(
            &admin,
            tenant,
            page.after.clone(),
            page.limit + 1,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |c| c.client_id.as_str().to_owned());
    Ok(web::Json(ClientPage {
        items: items.into_iter().map(ClientView::from).collect(),
        next_cursor,
    }))
}

/// Get one client (never its secret).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
    )
)]
#[get("/api/admin/clients/{client_id}")]
pub async fn get_client(
    state: web::Data<AppState>,
    admin: Admin,
    client_id: web::Path<String>,
) -> Result<web::Json<ClientView>, ApiError> {
    let client = state
        .clients
        .get(&admin, parse_id(&client_id)?, state.clock.now())
        .await?;
    Ok(web::Json(client.into()))
}

/// Change a client's name, grant types, scopes or audiences. Tokens already issued keep
/// what they carry until they expire; refreshes and new tokens follow the change.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body = PatchClientRequest,
    responses(
        (status = 200, description = "The changed client", body = ClientView),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
    )
)]
#[patch("/api/admin/clients/{client_id}")]
pub async fn patch_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    client_id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<ClientView>, ApiError> {
    let id = parse_id(&client_id)?;
    let body: PatchClientRequest = json_body(&req, &body)?;
    let patch = ClientPatch {
        name: body.name.as_deref().map(parse_name).transpose()?,
        grant_types: body.grant_types.as_deref().map(parse_grants).transpose()?,
        scopes: body.scopes.as_deref().map(Scope::parse_list).transpose()?,
        audiences: body.audiences.as_deref().map(parse_audiences).transpose()?,
        enabled: None,
    };
    let client = state
        .clients
        .update(&admin, id, patch, Action::ClientUpdate, state.clock.now())
        .await?;
    Ok(web::Json(client.into()))
}

async fn set_enabled(
    state: &AppState,
    admin: &Admin,
    id: &str,
    enabled: bool,
) -> Result<web::Json<ClientView>, ApiError> {
    let client = state
        .clients
        .set_enabled(admin, parse_id(id)?, enabled, state.clock.now())
        .await?;
    Ok(web::Json(client.into()))
}

/// Disable a client: the token endpoint and logins naming it refuse it, and refresh
/// tokens issued to it stop rotating, from the moment this answers. Access tokens already
/// issued stay valid until they expire (at most the access-token lifetime). Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The client, disabled", body = ClientView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
    )
)]
#[post("/api/admin/clients/{client_id}/disable")]
pub async fn disable_client(
    state: web::Data<AppState>,
    admin: Admin,
    client_id: web::Path<String>,
) -> Result<web::Json<ClientView>, ApiError> {
    set_enabled(&state, &admin, &client_id, false).await
}

/// Enable a client again. Idempotent.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The client, enabled", body = ClientView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
    )
)]
#[post("/api/admin/clients/{client_id}/enable")]
pub async fn enable_client(
    state: web::Data<AppState>,
    admin: Admin,
    client_id: web::Path<String>,
) -> Result<web::Json<ClientView>, ApiError> {
    set_enabled(&state, &admin, &client_id, true).await
}

/// Give a confidential client a new secret; the old one stops working at once.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "The new secret, shown only here", body = ClientWithSecret),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
        (status = 409, description = "A public client has no secret", body = ErrorBody),
    )
)]
#[post("/api/admin/clients/{client_id}/rotate-secret")]
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    admin: Admin,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (client, secret) = state
        .clients
        .rotate_secret(&admin, parse_id(&client_id)?, state.clock.now())
        .await?;
    Ok(created(client, Some(secret.expose().to_owned())))
}

/// Delete a client. Refresh tokens issued to it stop rotating at once; access tokens
/// already issued stay valid until they expire.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such client in the admin's tenants", body = ErrorBody),
    )
)]
#[delete("/api/admin/clients/{client_id}")]
pub async fn delete_client(
    state: web::Data<AppState>,
    admin: Admin,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .clients
        .delete(&admin, parse_id(&client_id)?, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
