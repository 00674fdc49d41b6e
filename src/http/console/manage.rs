//! The console's clients, tenants and audit log: the use cases of `/api/admin/clients`,
//! `/api/admin/tenants` and `/api/admin/audit`.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::users::query;
use super::{
    Answer, ConsoleError, act, button, csrf_field, enter, page, path_segment, reveal, revealed,
    see_other, when,
};
use crate::audit::{Action, AuditFilter};
use crate::error::Error;
use crate::http::AppState;
use crate::http::admin::clients::{parse_audiences, parse_grants};
use crate::http::error::ApiError;
use crate::model::{ClientId, ClientKind, GrantType, Scope, TenantId};
use crate::oauth::clients::{ClientPatch, NewClient, parse_name};
use crate::tenancy::{TenantName, TenantPatch};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/clients", web::get().to(list_clients))
        .route("/admin/clients", web::post().to(create_client))
        .route("/admin/clients/created", web::get().to(created_client))
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::post().to(rotate_secret),
        )
        .route("/admin/clients/{id}/enable", web::post().to(enable_client))
        .route(
            "/admin/clients/{id}/disable",
            web::post().to(disable_client),
        )
        .route("/admin/tenants", web::get().to(list_tenants))
        .route("/admin/tenants", web::post().to(create_tenant))
        .route("/admin/tenants/{id}/enable", web::post().to(enable_tenant))
        .route(
            "/admin/tenants/{id}/disable",
            web::post().to(disable_tenant),
        )
        .route("/admin/audit", web::get().to(audit));
}

const PAGE: i64 = 100;

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: Option<String>,
}

fn next_link(base: &str, more: bool, last: Option<String>) -> Option<String> {
    more.then_some(last)
        .flatten()
        .map(|last| format!("{base}?after={}", path_segment(&last)))
}

async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let After { after } = query(&req)?;
    let mut clients = state
        .clients
        .list(&entered.admin, None, after, PAGE + 1, state.clock.now())
        .await?;
    let more = clients.len() > PAGE as usize;
    clients.truncate(PAGE as usize);
    let next = next_link(
        "/admin/clients",
        more,
        clients.last().map(|c| c.client_id.as_str().to_owned()),
    );
    let body = html! {
        table {
            thead { tr { th { "Client id" } th { "Name" } th { "Tenant" } th { "Kind" } th { "Grants" } th { "Scopes" } th { "State" } th {} } }
            tbody {
                @for client in &clients {
                    @let base = format!("/admin/clients/{}", path_segment(client.client_id.as_str()));
                    tr {
                        td { code { (client.client_id.as_str()) } }
                        td { (client.name) }
                        td { (client.tenant.as_str()) }
                        td { (client.kind.as_str()) }
                        td { (client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(" ")) }
                        td { (client.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")) }
                        td { (if client.enabled { "enabled" } else { "disabled" }) }
                        td.actions {
                            @if client.kind == ClientKind::Confidential {
                                (button(&entered, &format!("{base}/rotate-secret"), "New secret", ""))
                            }
                            @if client.enabled {
                                (button(&entered, &format!("{base}/disable"), "Disable", "danger"))
                            } @else {
                                (button(&entered, &format!("{base}/enable"), "Enable", ""))
                            }
                        }
                    }
                }
            }
        }
        @if clients.is_empty() { p { "No client yet." } }
        @if let Some(next) = next { p { a href=(next) { "Next page" } } }
        h2 { "New client" }
        form.card method="post" action="/admin/clients" {
            (csrf_field(&entered))
            label { "Name" input name="name" required maxlength="100" autocomplete="off"; }
            label { "Kind"
                select name="kind" {
                    option value="confidential" { "confidential (has a secret)" }
                    option value="public" { "public (a browser or mobile app)" }
                }
            }
            fieldset {
                legend { "Grants" }
                @for grant in GrantType::ALL {
                    label.check { input type="checkbox" name="grant_types" value=(grant.as_str()); " " (grant.as_str()) }
                }
            }
            label { "Scopes " small { "(space-separated)" } input name="scopes"; }
            label { "Audiences " small { "(space-separated, for token exchange)" } input name="audiences"; }
            button type="submit" { "Register client" }
        }
    };
    Ok(page(&state, &entered, "Clients", "/admin/clients", body))
}

async fn create_client(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (entered, form) = act(&state, &req, &body).await?;
    let new = NewClient {
        client_id: None,
        name: parse_name(form.get("name").unwrap_or(""))?,
        tenant: None,
        kind: ClientKind::parse(form.get("kind").unwrap_or(""))?,
        grant_types: parse_grants(&form.all("grant_types"))?,
        scopes: Scope::parse_list(&form.words("scopes"))?,
        audiences: parse_audiences(&form.words("audiences"))?,
    };
    let (client, secret) = state
        .clients
        .create(&entered.admin, new, state.clock.now())
        .await?;
    Ok(match secret {
        Some(secret) => reveal(
            &state,
            &entered,
            &created_at(client.client_id.as_str()),
            secret.expose(),
        ),
        None => see_other(&state, &entered, "/admin/clients"),
    })
}

fn created_at(client_id: &str) -> String {
    format!(
        "/admin/clients/created?client_id={}",
        path_segment(client_id)
    )
}

#[derive(Deserialize)]
struct Created {
    #[serde(default)]
    client_id: Option<String>,
}

async fn created_client(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let Created { client_id } = query(&req)?;
    let what = html! {
        @if let Some(id) = client_id { p { "The secret of the client " code { (id) } ":" } }
    };
    Ok(revealed(
        &state,
        &req,
        &entered,
        "Client secret",
        "/admin/clients",
        what,
    ))
}

fn client_id(id: &str) -> Result<ClientId, ConsoleError> {
    ClientId::parse(id).map_err(|_| Error::NotFound("client").into())
}

async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (entered, _) = act(&state, &req, &body).await?;
    let (client, secret) = state
        .clients
        .rotate_secret(&entered.admin, client_id(&id)?, state.clock.now())
        .await?;
    Ok(reveal(
        &state,
        &entered,
        &created_at(client.client_id.as_str()),
        secret.expose(),
    ))
}

async fn set_client_enabled(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    id: &str,
    enabled: bool,
) -> Answer {
    let (entered, _) = act(state, req, body).await?;
    let patch = ClientPatch {
        enabled: Some(enabled),
        ..ClientPatch::default()
    };
    let action = if enabled {
        Action::ClientEnable
    } else {
        Action::ClientDisable
    };
    state
        .clients
        .update(
            &entered.admin,
            client_id(id)?,
            patch,
            action,
            state.clock.now(),
        )
        .await?;
    Ok(see_other(state, &entered, "/admin/clients"))
}

async fn enable_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    set_client_enabled(&state, &req, &body, &id, true).await
}

async fn disable_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    set_client_enabled(&state, &req, &body, &id, false).await
}

async fn list_tenants(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let After { after } = query(&req)?;
    let mut tenants = state
        .tenants
        .list(&entered.admin, after, PAGE + 1, state.clock.now())
        .await?;
    let more = tenants.len() > PAGE as usize;
    tenants.truncate(PAGE as usize);
    let next = next_link(
        "/admin/tenants",
        more,
        tenants.last().map(|t| t.id.as_str().to_owned()),
    );
    let body = html! {
        table {
            thead { tr { th { "Tenant" } th { "Name" } th { "State" } th { "Created" } th {} } }
            tbody {
                @for tenant in &tenants {
                    @let base = format!("/admin/tenants/{}", tenant.id.as_str());
                    tr {
                        td { code { (tenant.id.as_str()) } }
                        td { (tenant.name) }
                        td { (if tenant.enabled { "enabled" } else { "disabled" }) }
                        td { (when(tenant.created_at)) }
                        td.actions {
                            @if !tenant.id.is_default() {
                                @if tenant.enabled {
                                    (button(&entered, &format!("{base}/disable"), "Disable (ends its sessions)", "danger"))
                                } @else {
                                    (button(&entered, &format!("{base}/enable"), "Enable", ""))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next { p { a href=(next) { "Next page" } } }
        h2 { "New tenant" }
        form.card method="post" action="/admin/tenants" {
            (csrf_field(&entered))
            label { "Id " small { "(a-z, 0-9 and -)" } input name="id" required maxlength="63" autocomplete="off"; }
            label { "Name" input name="name" required maxlength="100" autocomplete="off"; }
            button type="submit" { "Create tenant" }
        }
    };
    Ok(page(&state, &entered, "Tenants", "/admin/tenants", body))
}

async fn create_tenant(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (entered, form) = act(&state, &req, &body).await?;
    let id = TenantId::parse(form.get("id").unwrap_or("").trim())?;
    let name = TenantName::parse(form.get("name").unwrap_or(""))?;
    state
        .tenants
        .create(&entered.admin, id, name, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/tenants"))
}

async fn set_tenant_enabled(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    id: &str,
    enabled: bool,
) -> Answer {
    let (entered, _) = act(state, req, body).await?;
    let id = TenantId::parse(id).map_err(|_| ConsoleError::from(Error::NotFound("tenant")))?;
    let patch = TenantPatch {
        enabled: Some(enabled),
        ..TenantPatch::default()
    };
    state
        .tenants
        .update(&entered.admin, id, patch, state.clock.now())
        .await?;
    Ok(see_other(state, &entered, "/admin/tenants"))
}

async fn enable_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    set_tenant_enabled(&state, &req, &body, &id, true).await
}

async fn disable_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    set_tenant_enabled(&state, &req, &body, &id, false).await
}

/// The audit page's filters, as the form sends them (dates as `YYYY-MM-DD`, whole days
/// in UTC).
#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    before: Option<Uuid>,
}

fn day(
    text: Option<&str>,
    what: &'static str,
    end: bool,
) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let date =
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| ApiError::invalid_request(what))?;
    let date = if end {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let q: AuditQuery = query(&req)?;
    let action = match q.action.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(name) => Some(
            Action::parse(name)
                .ok_or_else(|| ApiError::invalid_request("action is not an audited action"))?,
        ),
    };
    let actor = q.actor.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let filter = AuditFilter {
        actor: actor.map(str::to_owned),
        action,
        since: day(q.since.as_deref(), "from: a date as YYYY-MM-DD", false)?,
        until: day(q.until.as_deref(), "to: a date as YYYY-MM-DD", true)?,
    };
    let mut entries = state
        .audit
        .list(
            &entered.admin,
            q.before,
            PAGE + 1,
            filter,
            state.clock.now(),
        )
        .await?;
    let more = entries.len() > PAGE as usize;
    entries.truncate(PAGE as usize);
    let next = more
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|before| {
            let params = [
                ("actor", q.actor.clone().unwrap_or_default()),
                ("action", q.action.clone().unwrap_or_default()),
                ("since", q.since.clone().unwrap_or_default()),
                ("until", q.until.clone().unwrap_or_default()),
                ("before", before.to_string()),
            ];
            format!(
                "/admin/audit?{}",
                serde_urlencoded::to_string(params).unwrap_or_default()
            )
        });
    let body = html! {
        form.search method="get" action="/admin/audit" role="search" {
            label { "Actor " input name="actor" placeholder="user:<id>" value=[actor]; }
            label { "Action "
                select name="action" {
                    option value="" { "any" }
                    @for a in Action::ALL {
                        option value=(a.as_str()) selected[Some(*a) == action] { (a.as_str()) }
                    }
                }
            }
            label { "From " input type="date" name="since" value=[q.since.as_deref()]; }
            label { "To " input type="date" name="until" value=[q.until.as_deref()]; }
            button type="submit" { "Filter" }
        }
        table {
            thead { tr { th { "At" } th { "Actor" } th { "Action" } th { "Target" } th { "Address" } th { "Outcome" } th { "Detail" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (when(e.at)) }
                        td { code { (e.actor) } }
                        td { (e.action.as_str()) }
                        td { (e.target.as_deref().unwrap_or("")) }
                        td { (e.ip.as_deref().unwrap_or("")) }
                        td { (e.outcome.as_str()) }
                        td { (e.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if entries.is_empty() { p { "No event matches." } }
        @if let Some(next) = next { p { a href=(next) { "Older events" } } }
    };
    Ok(page(&state, &entered, "Audit log", "/admin/audit", body))
}
