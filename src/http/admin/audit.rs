//! `GET /api/admin/audit`.

use actix_web::{HttpRequest, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{Action, AuditEntry, AuditFilter};
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::query_params;
use crate::http::pagination::{PageQuery, split_page};
use crate::http::schema::AuditActionName;
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
    params(AuditQuery),
    responses(
        (status = 200, description = "A page", body = AuditPage),
        (status = 400, description = "Invalid limit, cursor, action or time", body = ErrorBody),
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
    let query = query_params::<AuditQuery>(&req)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let filter = query.filter()?;
    let found = state
        .audit
        .list(
            &admin,
            page.after_uuid()?,
            page.limit + 1,
            filter,
            state.clock.now(),
        )
        .await?;
    let (items, next_cursor) = split_page(found, page.limit, |e| e.id.to_string());
    Ok(web::Json(AuditPage {
        items: items.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

/// Filters and page of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; empty or absent for the first page.
    pub cursor: Option<String>,
    /// Only this actor, as the log names it: `user:<id>`, `api_key:<id>`, `client:<id>`,
    /// `anonymous` or `system`.
    #[param(max_length = 200)]
    pub actor: Option<String>,
    /// Only this action, e.g. `api_key.disable`.
    #[param(value_type = Option<AuditActionName>)]
    pub action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

/// An action's name as a filter: none for empty, `INVALID_REQUEST` for one the log does
/// not know.
pub fn parse_action(name: Option<&str>) -> Result<Option<Action>, ApiError> {
    match name.filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(name) => Action::parse(name)
            .map(Some)
            .ok_or_else(|| ApiError::invalid_request("action is not an audited action")),
    }
}

impl AuditQuery {
    /// The filter, or `INVALID_REQUEST` for an action the log does not know.
    pub fn filter(&self) -> Result<AuditFilter, ApiError> {
        Ok(AuditFilter {
            actor: self.actor.clone().filter(|a| !a.is_empty()),
            action: parse_action(self.action.as_deref())?,
            since: self.since,
            until: self.until,
        })
    }
}
