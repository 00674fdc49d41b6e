//! `GET /api/admin/audit`.

use actix_web::{HttpRequest, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::query_params;
use crate::http::pagination::{PageQuery, split_page};
use crate::model::Admin;

/// An audit event.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Id (time-ordered).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// `user:<id>`, `api_key:<id>`, `anonymous`, `system` or `cli`.
    pub actor: String,
    /// What, e.g. `user.create`, `login`, `refresh.reuse`, `signing_key.rotate`.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// More about it: the fields an update changed (`changed: password, roles`), or how
    /// many similar events this row stands for (`144 more like it in this window`).
    pub detail: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action.as_str().to_owned(),
            target: e.target,
            ip: e.ip,
            outcome: e.outcome.as_str().to_owned(),
            detail: e.detail,
        }
    }
}

/// A page of audit events.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Events, newest first.
    pub items: Vec<AuditView>,
    /// Cursor of the next (older) page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// The audit log, newest first: admin calls, failed logins, reuse detections, rotations.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page", body = AuditPage),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
    )
)]
#[get("/api/admin/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
) -> Result<web::Json<AuditPage>, ApiError> {
    let page = query_params::<PageQuery>(&req)?.parse()?;
    let found = state
        .audit
        .list(
            &admin,
            page.after_uuid()?,
            page.limit + 1,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |e| e.id.to_string());
    Ok(web::Json(AuditPage {
        items: items.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}
