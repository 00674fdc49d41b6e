//! The console's users and their sessions: the use cases of `/api/admin/users` and
//! `/api/admin/users/{id}/sessions`.

use actix_web::{HttpRequest, web};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    Answer, ConsoleError, PAGE, SWITCH, act, button, csrf_field, enter, maybe_when, next_page,
    page, page_start, query, see_other, switch_button, switched, when,
};
use crate::error::Error;
use crate::http::AppState;
use crate::http::pagination::split_page;
use crate::identity::passwords::Password;
use crate::identity::{NewUser, UserPatch};
use crate::model::{Claims, Role, Scope, TenantId, User, Username};
use crate::sessions::SessionPage;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list))
        .route("/admin/users", web::post().to(create))
        .route("/admin/users/{id}", web::get().to(show))
        .route(
            &format!("/admin/users/{{id}}/{SWITCH}"),
            web::post().to(switch),
        )
        .route("/admin/users/{id}/roles", web::post().to(set_roles))
        .route(
            "/admin/users/{id}/end-sessions",
            web::post().to(end_sessions),
        )
        .route("/admin/users/{id}/sessions", web::get().to(sessions))
        .route(
            "/admin/users/{id}/sessions/{session}/end",
            web::post().to(end_session),
        );
}

fn user_id(id: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound("user").into())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn list(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let ListQuery { q, cursor } = query(&req)?;
    let q = q
        .filter(|q| !q.trim().is_empty())
        .map(|q| q.trim().to_owned());
    let start = page_start(cursor)?;
    let found = state
        .identity
        .list_users(
            &entered.admin,
            None,
            q.clone(),
            start.after_uuid()?,
            PAGE + 1,
            state.clock.now(),
        )
        .await?;
    let (users, cursor) = split_page(found, PAGE, |u| u.id.to_string());
    let next = next_page("/admin/users", &[("q", q.as_deref())], cursor);
    let default_admin = entered.admin.tenant().is_default();
    let body = html! {
        form.search method="get" action="/admin/users" role="search" {
            label { "Name contains " input name="q" value=[q.as_deref()]; }
            button type="submit" { "Search" }
        }
        table {
            thead { tr { th { "Username" } th { "Name" } th { "Tenant" } th { "Roles" } th { "State" } th { "Created" } } }
            tbody {
                @for user in &users {
                    tr {
                        td { a href=(format!("/admin/users/{}", user.id)) { (user.username) } }
                        td { (display_name(user)) }
                        td { (user.tenant.as_str()) }
                        td { (roles(user)) }
                        td { (if user.enabled { "enabled" } else { "disabled" }) }
                        td { (when(user.created_at)) }
                    }
                }
            }
        }
        @if users.is_empty() { p { "No user matches." } }
        @if let Some(next) = next { p { a href=(next) { "Next page" } } }
        h2 { "New user" }
        form.card method="post" action="/admin/users" {
            (csrf_field(&entered))
            label { "Username" input name="username" required autocomplete="off"; }
            label { "Password " small { "(at least 8 characters)" } input name="password" type="password" required autocomplete="new-password"; }
            label { "Roles " small { "(space-separated, e.g. admin)" } input name="roles"; }
            label { "Scopes " small { "(space-separated, e.g. admin read)" } input name="scopes"; }
            @if default_admin {
                label { "Tenant " small { "(empty: default)" } input name="tenant"; }
            }
            button type="submit" { "Create user" }
        }
    };
    Ok(page(&state, &entered, "Users", "/admin/users", body))
}

/// The user's `name` claim, the name people read, if it has one.
fn display_name(user: &User) -> &str {
    user.claims
        .as_map()
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

fn roles(user: &User) -> String {
    user.roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn scopes(user: &User) -> String {
    user.scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (entered, mut form) = act(&state, &req, &body).await?;
    let password = form
        .secret("password")
        .unwrap_or_else(|| secrecy::SecretString::from(""));
    let new = NewUser {
        tenant: form.text("tenant").map(TenantId::parse).transpose()?,
        username: Username::parse(form.get("username").unwrap_or("").trim())?,
        password: Password::parse_new(password)?,
        roles: Role::parse_list(&form.words("roles"))?,
        scopes: Scope::parse_list(&form.words("scopes"))?,
        claims: Claims::parse(serde_json::Map::new())?,
    };
    let user = state
        .identity
        .create_user(&entered.admin, new, state.clock.now())
        .await?;
    Ok(see_other(
        &state,
        &entered,
        &format!("/admin/users/{}", user.id),
    ))
}

async fn show(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> Answer {
    let entered = enter(&state, &req).await?;
    let user = state
        .identity
        .get_user(&entered.admin, user_id(&id)?, state.clock.now())
        .await?;
    let base = format!("/admin/users/{}", user.id);
    let body = html! {
        dl {
            dt { "Username" } dd { (user.username) }
            dt { "Id" } dd { code { (user.id) } }
            dt { "Tenant" } dd { (user.tenant.as_str()) }
            dt { "State" } dd { (if user.enabled { "enabled" } else { "disabled" }) }
            dt { "Roles" } dd { (roles(&user)) }
            dt { "Scopes" } dd { (scopes(&user)) }
            dt { "Claims" } dd { code { (serde_json::Value::Object(user.claims.as_map().clone())) } }
            dt { "Created" } dd { (when(user.created_at)) }
            dt { "Changed" } dd { (when(user.updated_at)) }
        }
        p { a href=(format!("{base}/sessions")) { "Sessions" } }
        h2 { "Actions" }
        div.actions {
            (switch_button(&entered, &base, user.enabled, "Disable (ends every session)"))
            (button(&entered, &format!("{base}/end-sessions"), "End every session", "danger"))
        }
        form.card method="post" action=(format!("{base}/roles")) {
            (csrf_field(&entered))
            label { "Roles " small { "(space-separated; a change ends every session)" } input name="roles" value=(roles(&user)); }
            button type="submit" { "Save roles" }
        }
    };
    Ok(page(
        &state,
        &entered,
        &format!("User {}", user.username),
        "/admin/users",
        body,
    ))
}

async fn patch(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    id: &str,
    make: impl FnOnce(&super::Form) -> Result<UserPatch, Error>,
) -> Answer {
    let (entered, form) = act(state, req, body).await?;
    let id = user_id(id)?;
    let patch = make(&form)?;
    state
        .identity
        .update_user(&entered.admin, id, patch, state.clock.now())
        .await?;
    Ok(see_other(state, &entered, &format!("/admin/users/{id}")))
}

/// Enable or disable, as `PATCH /api/admin/users/{id}` `{"enabled"}` does.
async fn switch(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (id, enabled) = switched(path);
    patch(&state, &req, &body, &id, |_| {
        Ok(UserPatch {
            enabled: Some(enabled),
            ..UserPatch::default()
        })
    })
    .await
}

async fn set_roles(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    patch(&state, &req, &body, &id, |form| {
        Ok(UserPatch {
            roles: Some(Role::parse_list(&form.words("roles"))?),
            ..UserPatch::default()
        })
    })
    .await
}

async fn end_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (entered, _) = act(&state, &req, &body).await?;
    let id = user_id(&id)?;
    state
        .identity
        .revoke_sessions(&entered.admin, id, state.clock.now())
        .await?;
    Ok(see_other(
        &state,
        &entered,
        &format!("/admin/users/{id}/sessions"),
    ))
}

async fn sessions(state: web::Data<AppState>, req: HttpRequest, id: web::Path<String>) -> Answer {
    let entered = enter(&state, &req).await?;
    let id = user_id(&id)?;
    let now = state.clock.now();
    let user = state.identity.get_user(&entered.admin, id, now).await?;
    let page_of = SessionPage {
        after: None,
        limit: 200,
    };
    let sessions = state
        .sessions
        .admin_list(&entered.admin, id, page_of, now)
        .await?;
    let base = format!("/admin/users/{id}");
    let body: Markup = html! {
        p { a href=(base) { "← " (user.username) } }
        table {
            thead { tr { th { "Session" } th { "Started" } th { "Last refresh" } th { "Device" } th { "Address" } th {} } }
            tbody {
                @for session in &sessions {
                    tr {
                        td {
                            code { (session.id) }
                            @if session.id.to_string() == entered.session_id { " " strong.badge { "this console" } }
                        }
                        td { (when(session.created_at)) }
                        td { (maybe_when(session.last_refreshed_at)) }
                        td { (session.user_agent.as_deref().unwrap_or("")) }
                        td { (session.last_ip.as_deref().or(session.ip.as_deref()).unwrap_or("")) }
                        td { (button(&entered, &format!("{base}/sessions/{}/end", session.id), "End", "danger")) }
                    }
                }
            }
        }
        @if sessions.is_empty() { p { "No live session." } }
        div.actions { (button(&entered, &format!("{base}/end-sessions"), "End every session", "danger")) }
    };
    Ok(page(
        &state,
        &entered,
        &format!("Sessions of {}", user.username),
        "/admin/users",
        body,
    ))
}

async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (entered, _) = act(&state, &req, &body).await?;
    let (id, session) = path.into_inner();
    let id = user_id(&id)?;
    let session =
        Uuid::parse_str(&session).map_err(|_| ConsoleError::from(Error::NotFound("session")))?;
    state
        .sessions
        .admin_end(&entered.admin, session, state.clock.now())
        .await?;
    Ok(see_other(
        &state,
        &entered,
        &format!("/admin/users/{id}/sessions"),
    ))
}
