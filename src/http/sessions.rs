//! `/api/sessions`: a user's own sessions (where they are logged in), ending one, ending
//! all but the current one. The admin twins are in `admin::sessions`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::error::Error;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::query_params;
use crate::http::pagination::{PageQuery, split_page};
use crate::principal::SessionHolder;
use crate::sessions::{Position, SessionInfo, SessionPage};

/// A live session.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Session id (the access token's `sid`).
    pub id: Uuid,
    /// Its user.
    pub user_id: Uuid,
    /// The user's tenant.
    pub tenant: String,
    /// The client given at login, if any.
    pub client_id: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Login.
    pub created_at: DateTime<Utc>,
    /// The last rotation of its refresh token; `null` if it never rotated.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Absolute end: no refresh goes past it.
    pub expires_at: DateTime<Utc>,
    /// The `User-Agent` sent at login, at most 256 characters.
    #[schema(max_length = 256)]
    pub user_agent: Option<String>,
    /// The client address at login.
    pub ip: Option<String>,
    /// The client address of the last rotation (at login: `ip`).
    pub last_ip: Option<String>,
    /// Whether this is the session of the presented token (always `false` in an admin's list).
    pub current: bool,
}

impl From<SessionInfo> for SessionView {
    fn from(s: SessionInfo) -> Self {
        Self {
            id: s.id,
            user_id: s.user_id,
            tenant: s.tenant,
            client_id: s.client_id,
            scope: s.scope,
            created_at: s.created_at,
            last_refreshed_at: s.last_refreshed_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent,
            ip: s.ip,
            last_ip: s.last_ip,
            current: s.current,
        }
    }
}

/// A page of live sessions.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Sessions, newest first.
    pub items: Vec<SessionView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// How many sessions `POST /api/sessions/revoke-others` ended.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RevokedCount {
    /// Sessions ended.
    pub revoked: usize,
}

/// The page a request asks for: one item more than its limit is fetched, to know
/// whether there is a next page.
pub fn requested_page(req: &HttpRequest) -> Result<(SessionPage, i64), ApiError> {
    let page = query_params::<PageQuery>(req)?.parse()?;
    let after = page.after.as_deref().map(Position::parse).transpose()?;
    Ok((
        SessionPage {
            after,
            limit: page.limit + 1,
        },
        page.limit,
    ))
}

/// A page of sessions and the cursor of the next.
pub fn session_list(found: Vec<SessionInfo>, limit: i64) -> SessionList {
    let (items, next_cursor) = split_page(found, limit, |s| s.position().to_string());
    SessionList {
        items: items.into_iter().map(SessionView::from).collect(),
        next_cursor,
    }
}

/// The caller's live sessions, newest first; `current` marks the presented token's.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page", body = SessionList),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked access token", body = ErrorBody),
        (status = 403, description = "A client's own token: it has no sessions", body = ErrorBody),
        (status = 503, description = "The database or the revocation list is unavailable", body = ErrorBody),
    )
)]
#[get("/api/sessions")]
pub async fn list_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    holder: SessionHolder,
) -> Result<web::Json<SessionList>, ApiError> {
    let (page, limit) = requested_page(&req)?;
    let found = state
        .sessions
        .list_own(&holder, page, state.clock.now())
        .await?;
    Ok(web::Json(session_list(found, limit)))
}

/// End one of the caller's sessions (the current one too): its refresh token and its
/// access tokens fail at once on every instance; other sessions are untouched.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing, invalid, expired or revoked access token", body = ErrorBody),
        (status = 403, description = "A client's own token: it has no sessions", body = ErrorBody),
        (status = 404, description = "No live session of the caller's with this id", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was ended", body = ErrorBody),
    )
)]
#[delete("/api/sessions/{id}", guard = "crate::http::not_a_concrete_path")]
pub async fn end_session(
    state: web::Data<AppState>,
    holder: SessionHolder,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_session_id(&id)?;
    state
        .sessions
        .end_own(&holder, id, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of the caller's but the current one.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many sessions were ended", body = RevokedCount),
        (status = 401, description = "Missing, invalid, expired or revoked access token", body = ErrorBody),
        (status = 403, description = "A client's own token: it has no sessions", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was ended", body = ErrorBody),
    )
)]
#[post("/api/sessions/revoke-others")]
pub async fn end_other_sessions(
    state: web::Data<AppState>,
    holder: SessionHolder,
) -> Result<web::Json<RevokedCount>, ApiError> {
    let revoked = state
        .sessions
        .end_others(&holder, state.clock.now())
        .await?;
    Ok(web::Json(RevokedCount { revoked }))
}

/// A session id from a path: anything else names no session (404, as for users).
pub fn parse_session_id(id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound("session"))
}
