//! The console's clients, tenants and audit log: the use cases of `/api/admin/clients`,
//! `/api/admin/tenants` and `/api/admin/audit`.

use actix_web::{HttpRequest, web};
use chrono::{DateTime, NaiveDate, Utc};
use maud::html;
use serde::Deserialize;

use super::{
    Answer, ConsoleError, Cursor, PAGE, SWITCH, act, button, csrf_field, enter, next_page, page,
    page_start, path_segment, query, reveal, see_other, show_secret, switch_button, switched, when,
};
use crate::audit::{Action, AuditFilter};
use crate::error::Error;
use crate::http::AppState;
use crate::http::admin::audit::parse_action;
use crate::http::admin::clients::{parse_audiences, parse_grants};
use crate::http::error::ApiError;
use crate::http::pagination::split_page;
use crate::model::{ClientId, ClientKind, GrantType, Scope, TenantId};
use crate::oauth::clients::{NewClient, parse_name};
use crate::tenancy::{TenantName, TenantPatch};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/clients", web::get().to(list_clients))
        .route("/admin/clients", web::post().to(create_client))
        .route("/admin/clients/created", web::get().to(created_client))
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::post().to(rotate_secret),
        )
        .route(
            &format!("/admin/clients/{{id}}/{SWITCH}"),
            web::post().to(switch_client),
        )
        .route("/admin/tenants", web::get().to(list_tenants))
        .route("/admin/tenants", web::post().to(create_tenant))
        .route(
            &format!("/admin/tenants/{{id}}/{SWITCH}"),
            web::post().to(switch_tenant),
        )
        .route("/admin/audit", web::get().to(audit));
}

async fn list_clients(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let Cursor { cursor } = query(&req)?;
    let after = page_start(cursor)?.after;
    let found = state
        .clients
        .list(&entered.admin, None, after, PAGE + 1, state.clock.now())
        .await?;
    let (clients, cursor) = split_page(found, PAGE, |c| c.client_id.as_str().to_owned());
    let next = next_page("/admin/clients", &[], cursor);
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
                            (switch_button(&entered, &base, client.enabled, "Disable"))
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
            "/admin/clients",
            client.client_id.as_str(),
            secret.expose(),
        ),
        None => see_other(&state, &entered, "/admin/clients"),
    })
}

async fn created_client(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    show_secret(
        &state,
        &req,
        "Client secret",
        "/admin/clients",
        "the client",
    )
    .await
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
        "/admin/clients",
        client.client_id.as_str(),
        secret.expose(),
    ))
}

/// Enable or disable, as `POST /api/admin/clients/{id}/enable|disable` does.
async fn switch_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (id, enabled) = switched(path);
    let (entered, _) = act(&state, &req, &body).await?;
    state
        .clients
        .set_enabled(&entered.admin, client_id(&id)?, enabled, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/clients"))
}

async fn list_tenants(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let Cursor { cursor } = query(&req)?;
    let after = page_start(cursor)?.after;
    let found = state
        .tenants
        .list(&entered.admin, after, PAGE + 1, state.clock.now())
        .await?;
    let (tenants, cursor) = split_page(found, PAGE, |t| t.id.as_str().to_owned());
    let next = next_page("/admin/tenants", &[], cursor);
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
                                (switch_button(&entered, &base, tenant.enabled, "Disable (ends its sessions)"))
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

/// Enable or disable, as `PATCH /api/admin/tenants/{id}` `{"enabled"}` does.
async fn switch_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (id, enabled) = switched(path);
    let (entered, _) = act(&state, &req, &body).await?;
    let id = TenantId::parse(&id).map_err(|_| ConsoleError::from(Error::NotFound("tenant")))?;
    let patch = TenantPatch {
        enabled: Some(enabled),
        ..TenantPatch::default()
    };
    state
        .tenants
        .update(&entered.admin, id, patch, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/tenants"))
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
    cursor: Option<String>,
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
    let action = parse_action(q.action.as_deref())?;
    let actor = q.actor.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let filter = AuditFilter {
        actor: actor.map(str::to_owned),
        action,
        since: day(q.since.as_deref(), "from: a date as YYYY-MM-DD", false)?,
        until: day(q.until.as_deref(), "to: a date as YYYY-MM-DD", true)?,
    };
    let start = page_start(q.cursor.clone())?;
    let found = state
        .audit
        .list(
            &entered.admin,
            start.after_uuid()?,
            PAGE + 1,
            filter,
            state.clock.now(),
        )
        .await?;
    let (entries, cursor) = split_page(found, PAGE, |e| e.id.to_string());
    let filters = [
        ("actor", actor),
        ("action", q.action.as_deref()),
        ("since", q.since.as_deref()),
        ("until", q.until.as_deref()),
    ];
    let next = next_page("/admin/audit", &filters, cursor);
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
