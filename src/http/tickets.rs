//! `POST /api/tickets` and `POST /api/tickets/redeem`: connect tickets for URLs where
//! headers cannot go (a WebSocket's `?ticket=`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{client_ip, json_body, presented};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::schema::{AudienceName, ScopeList};
use crate::model::Scope;

/// A ticket to issue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The service the ticket is for: one of `TOKENMINT_TICKET_AUDIENCES`.
    #[schema(value_type = AudienceName)]
    pub audience: String,
    /// Space-separated subset of the caller's scopes; default: all of them.
    #[serde(default)]
    #[schema(value_type = Option<ScopeList>)]
    pub scope: Option<String>,
}

/// An issued ticket.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TicketResponse {
    /// The ticket (a JWT with `typ: ticket+jwt`): put it in the URL, use it at once.
    pub ticket: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Its audience.
    pub audience: String,
}

/// A ticket to redeem.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The ticket, as received (e.g. from `?ticket=`).
    pub ticket: String,
    /// The redeeming service's own audience: the ticket must name it.
    pub audience: String,
}

/// Who a redeemed ticket names.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RedeemedTicket {
    /// The user id.
    pub sub: String,
    /// The username.
    pub username: Option<String>,
    /// The user's tenant.
    pub tenant_id: String,
    /// The session the ticket was asked from (`null` if asked with an API key).
    pub sid: Option<String>,
    /// Space-separated scopes.
    pub scope: String,
    /// The user's custom claims only.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    /// When the ticket expires, seconds since the epoch.
    pub exp: i64,
    /// The DPoP key the ticket is bound to (it was asked with a bound access token):
    /// the service may require the connection to prove it holds that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::http::tokens::KeyConfirmation>,
}

/// Issue a connect ticket.
///
/// With a bearer access token (or an API key, whose owner the ticket then names): a JWT
/// for one audience, living `TOKENMINT_TICKET_TTL` (30 s), never accepted as an access
/// token. Services verify it offline from JWKS (checking `typ`, `aud`, `exp`) or redeem it
/// once. 404 when tickets are off (`TOKENMINT_TICKET_AUDIENCES` empty).
#[utoipa::path(
    tag = "tickets",
    security(("bearer" = []), ("api_key" = [])),
    request_body = TicketRequest,
    responses(
        (status = 201, description = "The ticket; `Cache-Control: no-store`", body = TicketResponse),
        (status = 400, description = "An audience tickets are not issued for, or a scope the caller lacks", body = ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked credential", body = ErrorBody),
        (status = 403, description = "A client's own token (tickets name users)", body = ErrorBody),
        (status = 404, description = "Tickets are off", body = ErrorBody),
        (status = 503, description = "The revocation list or the database cannot be reached", body = ErrorBody),
    )
)]
#[post("/api/tickets")]
pub async fn issue_ticket(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let presented = presented(&req)?;
    let body: TicketRequest = json_body(&req, &body)?;
    let scopes = body
        .scope
        .as_deref()
        .map(Scope::parse_space_separated)
        .transpose()?;
    let now = state.clock.now();
    let issued = state
        .tickets
        .issue(presented, client_ip(&req), &body.audience, scopes, now)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketResponse {
            expires_in: issued.claims.exp - issued.claims.iat,
            audience: issued.claims.aud,
            ticket: issued.token,
        }))
}

/// Redeem a ticket, exactly once across every instance.
///
/// By an API key with scope `tickets` (the receiving service's). The first redemption of
/// a valid ticket for `audience` answers who it names; any later one, on any instance, is
/// 401. So are an expired ticket, one whose session or user was revoked after it was
/// issued, one for another audience or tenant, and an access token. A refused redemption
/// does not use the ticket up.
#[utoipa::path(
    tag = "tickets",
    security(("api_key" = [])),
    request_body = RedeemRequest,
    responses(
        (status = 200, description = "The ticket's subject, the first time", body = RedeemedTicket),
        (status = 401, description = "`TOKEN_EXPIRED`: the ticket has expired; `TOKEN_REVOKED`: its session, user or tenant was revoked or disabled; `AUTHENTICATION_FAILED`: no valid key, or the ticket is invalid, for another audience or already used (the message says which)", body = ErrorBody),
        (status = 403, description = "The caller is not an API key with scope `tickets`", body = ErrorBody),
        (status = 404, description = "Tickets are off", body = ErrorBody),
        (status = 503, description = "Redis, the revocation list or the database cannot be reached; the ticket was not used", body = ErrorBody),
    )
)]
#[post("/api/tickets/redeem")]
pub async fn redeem_ticket(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<RedeemedTicket>, ApiError> {
    let presented = presented(&req)?;
    let body: RedeemRequest = json_body(&req, &body)?;
    let claims = state
        .tickets
        .redeem(
            presented,
            client_ip(&req),
            &body.ticket,
            &body.audience,
            state.clock.now(),
        )
        .await?;
    Ok(web::Json(RedeemedTicket {
        sub: claims.sub,
        username: claims.username,
        tenant_id: claims.tenant_id,
        sid: claims.sid,
        scope: claims.scope,
        claims: claims.custom,
        exp: claims.exp,
        cnf: claims
            .cnf
            .map(|c| crate::http::tokens::KeyConfirmation { jkt: c.jkt }),
    }))
}
