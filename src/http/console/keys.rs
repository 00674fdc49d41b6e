//! The console's API keys and signing keys: the use cases of `/api/admin/api-keys` and
//! `/api/admin/signing-keys`.

use actix_web::{HttpRequest, web};
use maud::html;
use uuid::Uuid;

use super::{
    Answer, ConsoleError, Cursor, PAGE, SWITCH, act, button, csrf_field, enter, maybe_when,
    next_page, page, page_start, query, reveal, see_other, show_secret, switch_button, switched,
    when,
};
use crate::api_keys::{ApiKeyName, KeyFilter, NewApiKey};
use crate::error::Error;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::client_ip;
use crate::http::pagination::split_page;
use crate::keys::admin::{WithdrawReason, Withdrawal};
use crate::keys::lifecycle::KeyStatus;
use crate::model::Scope;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/api-keys", web::get().to(list_api_keys))
        .route("/admin/api-keys", web::post().to(create_api_key))
        .route("/admin/api-keys/created", web::get().to(created_api_key))
        .route(
            &format!("/admin/api-keys/{{id}}/{SWITCH}"),
            web::post().to(switch_api_key),
        )
        .route(
            "/admin/api-keys/{id}/delete",
            web::post().to(delete_api_key),
        )
        .route("/admin/signing-keys", web::get().to(list_signing_keys))
        .route("/admin/signing-keys/rotate", web::post().to(rotate))
        .route(
            "/admin/signing-keys/{kid}/withdraw",
            web::get().to(confirm_withdrawal),
        )
        .route(
            "/admin/signing-keys/{kid}/withdraw",
            web::post().to(withdraw),
        );
}

async fn list_api_keys(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let Cursor { cursor } = query(&req)?;
    let start = page_start(cursor)?;
    let found = state
        .api_keys
        .list(
            &entered.admin,
            start.after_uuid()?,
            PAGE + 1,
            KeyFilter::default(),
            state.clock.now(),
        )
        .await?;
    let (keys, cursor) = split_page(found, PAGE, |k| k.id.to_string());
    let next = next_page("/admin/api-keys", &[], cursor);
    let body = html! {
        table {
            thead { tr { th { "Name" } th { "Prefix" } th { "Scopes" } th { "Owner" } th { "State" } th { "Last use" } th {} } }
            tbody {
                @for key in &keys {
                    @let base = format!("/admin/api-keys/{}", key.id);
                    tr {
                        td { (key.name) }
                        td { code { (key.prefix) } }
                        td { (key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")) }
                        td { a href=(format!("/admin/users/{}", key.owner_id)) { code { (key.owner_id) } } }
                        td { (if key.enabled { "enabled" } else { "disabled" }) }
                        td {
                            (maybe_when(key.last_used_at))
                            @if let Some(ip) = &key.last_used_ip { " from " (ip) }
                        }
                        td.actions {
                            (switch_button(&entered, &base, key.enabled, "Disable"))
                            (button(&entered, &format!("{base}/delete"), "Delete", "danger"))
                        }
                    }
                }
            }
        }
        @if keys.is_empty() { p { "No API key yet." } }
        @if let Some(next) = next { p { a href=(next) { "Next page" } } }
        h2 { "New API key" }
        form.card method="post" action="/admin/api-keys" {
            (csrf_field(&entered))
            label { "Name" input name="name" required maxlength="100" autocomplete="off"; }
            label { "Scopes " small { "(space-separated: introspect, events, admin...)" } input name="scopes" value="introspect"; }
            label { "Owner's user id " small { "(empty: you)" } input name="owner_id" autocomplete="off"; }
            button type="submit" { "Create API key" }
        }
    };
    Ok(page(&state, &entered, "API keys", "/admin/api-keys", body))
}

async fn create_api_key(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (entered, form) = act(&state, &req, &body).await?;
    let owner_id = form
        .text("owner_id")
        .map(|o| {
            Uuid::parse_str(o).map_err(|_| ApiError::invalid_request("the owner is not a user id"))
        })
        .transpose()?;
    let new = NewApiKey {
        name: ApiKeyName::parse(form.get("name").unwrap_or(""))?,
        owner_id,
        tenant: None,
        scopes: Scope::parse_list(&form.words("scopes"))?,
        expires_at: None,
    };
    let (key, secret) = state
        .api_keys
        .create(&entered.admin, new, state.clock.now())
        .await?;
    Ok(reveal(
        &state,
        &entered,
        "/admin/api-keys",
        &key.name,
        secret.expose(),
    ))
}

async fn created_api_key(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    show_secret(
        &state,
        &req,
        "New API key",
        "/admin/api-keys",
        "the API key",
    )
    .await
}

fn key_id(id: &str) -> Result<Uuid, ConsoleError> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound("API key").into())
}

/// Enable or disable, as `POST /api/admin/api-keys/{id}/enable|disable` does.
async fn switch_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Answer {
    let (id, enabled) = switched(path);
    let (entered, _) = act(&state, &req, &body).await?;
    state
        .api_keys
        .set_enabled(&entered.admin, key_id(&id)?, enabled, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/api-keys"))
}

async fn delete_api_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (entered, _) = act(&state, &req, &body).await?;
    state
        .api_keys
        .delete(&entered.admin, key_id(&id)?, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/api-keys"))
}

async fn list_signing_keys(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let entered = enter(&state, &req).await?;
    let keys = state
        .signing_keys
        .list(&entered.admin, state.clock.now())
        .await?;
    let body = html! {
        table {
            thead { tr { th { "Key id" } th { "Algorithm" } th { "State" } th { "Published" } th { "Signing since" } th { "Left JWKS" } th {} } }
            tbody {
                @for key in &keys {
                    tr {
                        td { code { (key.kid) } }
                        td { (key.alg.to_string()) }
                        td { span class=(format!("state {}", key.status.as_str())) { (key.status.as_str()) } }
                        td { (when(key.created_at)) }
                        td { (maybe_when(key.activated_at)) }
                        td { (key.retired_at.map(super::when).unwrap_or_default()) }
                        td {
                            @if key.status != KeyStatus::Withdrawn && key.status != KeyStatus::Retired {
                                a.danger href=(format!("/admin/signing-keys/{}/withdraw", super::path_segment(&key.kid))) { "Withdraw…" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Rotate" }
        p { "The next key starts signing and a new next key is published; the current one keeps verifying until its tokens have expired. Refused while the next key has not been published long enough." }
        div.actions { (button(&entered, "/admin/signing-keys/rotate", "Rotate now", "")) }
    };
    Ok(page(
        &state,
        &entered,
        "Signing keys",
        "/admin/signing-keys",
        body,
    ))
}

async fn rotate(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (entered, _) = act(&state, &req, &body).await?;
    state
        .signing_keys
        .rotate(&entered.admin, None, state.clock.now())
        .await?;
    Ok(see_other(&state, &entered, "/admin/signing-keys"))
}

async fn confirm_withdrawal(
    state: web::Data<AppState>,
    req: HttpRequest,
    kid: web::Path<String>,
) -> Answer {
    let entered = enter(&state, &req).await?;
    // The same use case lists the keys (and refuses tenant admins): the page names a key
    // that exists.
    let keys = state
        .signing_keys
        .list(&entered.admin, state.clock.now())
        .await?;
    let key = keys
        .iter()
        .find(|k| k.kid == *kid)
        .ok_or(ConsoleError::from(Error::NotFound("signing key")))?;
    let body = html! {
        p.warning role="alert" {
            "Withdrawing a key is for a key that may have leaked. At once, on every instance, every token it signed is refused "
            "(access tokens, tickets, exchanged tokens), it leaves the JWKS and never comes back. "
            @if key.status == KeyStatus::Current {
                "It signs now: a fresh key takes over at once, and the next key is replaced too. "
            }
            "Sessions refresh onto the new key unless you end them all."
        }
        form.card method="post" action=(format!("/admin/signing-keys/{}/withdraw", super::path_segment(&key.kid))) {
            (csrf_field(&entered))
            p { "Key " code { (key.kid) } " (" (key.status.as_str()) ")" }
            label { "Reason " small { "(kept in the audit log)" } input name="reason" required maxlength="500" autocomplete="off"; }
            label.check { input type="checkbox" name="end_sessions" value="true"; " Also end every session of the deployment (everyone logs in again)" }
            label { "Type the key id to confirm" input name="confirm" required autocomplete="off" spellcheck="false"; }
            button.danger type="submit" { "Withdraw this key" }
        }
        p { a href="/admin/signing-keys" { "Cancel" } }
    };
    Ok(page(
        &state,
        &entered,
        "Withdraw a signing key",
        "/admin/signing-keys",
        body,
    ))
}

async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    kid: web::Path<String>,
    body: web::Bytes,
) -> Answer {
    let (entered, form) = act(&state, &req, &body).await?;
    // The typed confirmation: the one rule of the console's own, so that a withdrawal is
    // never one stray click.
    if form.get("confirm").map(str::trim) != Some(kid.as_str()) {
        return Err(ApiError::invalid_request(
            "the typed key id does not match the key: nothing was withdrawn",
        )
        .into());
    }
    let withdrawal = Withdrawal {
        reason: WithdrawReason::parse(form.get("reason").unwrap_or(""))?,
        end_sessions: form.checked("end_sessions"),
    };
    let end_sessions = withdrawal.end_sessions;
    let now = state.clock.now();
    state
        .signing_keys
        .withdraw(&entered.admin, kid.into_inner(), withdrawal, now)
        .await?;
    // The console's own access token may be one the withdrawn key signed: its session
    // goes on with a fresh pair, unless every session was just ended (then the next
    // page is the login page).
    // Should that fail, the next page is the login page: nothing is lost.
    let refresh = super::held(&state, &req).and_then(|(_, refresh)| refresh);
    let renewed = match (end_sessions, refresh) {
        (false, Some(refresh)) => state
            .console
            .renew(&refresh, client_ip(&req), now)
            .await
            .ok(),
        _ => None,
    };
    let mut response = actix_web::HttpResponse::SeeOther();
    super::keep_session(
        &state,
        &mut response,
        renewed.as_ref().or(entered.renewed.as_ref()),
    );
    response.insert_header((actix_web::http::header::LOCATION, "/admin/signing-keys"));
    Ok(response.finish())
}
