//! `/api/admin/users/{id}/sessions` and `/api/admin/sessions/{id}`: a user's live
//! sessions and ending one, for admins within their tenant.

use actix_web::{HttpRequest, HttpResponse, delete, get, web};

use crate::http::AppState;
use crate::http::admin::users::parse_id;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::pagination::PageQuery;
use crate::http::sessions::{SessionList, parse_session_id, requested_page, session_list};
use crate::model::Admin;

/// A user's live sessions, newest first.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "User id"), PageQuery),
    responses(
        (status = 200, description = "A page", body = SessionList),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such user in the admin's tenant", body = ErrorBody),
    )
)]
#[get("/api/admin/users/{id}/sessions")]
pub async fn list_user_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    id: web::Path<String>,
) -> Result<web::Json<SessionList>, ApiError> {
    let user_id = parse_id(&id)?;
    let (page, limit) = requested_page(&req)?;
    let found = state
        .sessions
        .admin_list(&admin, user_id, page, state.clock.now())
        .await?;
    Ok(web::Json(session_list(found, limit)))
}

/// End one session of a user: its refresh token and its access tokens fail at once on
/// every instance; the user's other sessions are untouched.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No live session with this id in the admin's tenant", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was ended", body = ErrorBody),
    )
)]
#[delete("/api/admin/sessions/{id}")]
pub async fn end_user_session(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_session_id(&id)?;
    state
        .sessions
        .admin_end(&admin, id, state.clock.now())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
