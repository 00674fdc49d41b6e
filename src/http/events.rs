//! `POST /api/events/poll`: security events (RFC 8417 SETs) by RFC 8936 poll.

use std::collections::HashMap;

use actix_web::{HttpRequest, post, web};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{client_ip, optional_json, presented};
use crate::error::Error;
use crate::events::PollRequest;
use crate::http::error::{ApiError, ErrorBody};

/// The most SETs one poll may acknowledge.
const MAX_ACKS: usize = 1000;

/// A SET the poller could not process (RFC 8936 section 2.4.4); it is not delivered again.
#[derive(Deserialize, ToSchema)]
pub struct SetError {
    /// An error code (RFC 8935 section 2.3).
    pub err: String,
    /// What went wrong.
    pub description: String,
}

/// A poll (RFC 8936 section 2.4).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    /// The `jti`s of SETs processed since the last poll: not delivered again.
    #[serde(default)]
    pub ack: Vec<String>,
    /// SETs the poller could not process, by `jti`: not delivered again either.
    #[serde(default, rename = "setErrs")]
    pub set_errs: HashMap<String, SetError>,
    /// At most this many SETs (default 100, at most 1,000; 0: only acknowledge).
    #[serde(default, rename = "maxEvents", deserialize_with = "integral")]
    pub max_events: Option<u32>,
    /// Answer at once, even with no SET; else wait up to 30 s for one.
    #[serde(default, rename = "returnImmediately")]
    pub return_immediately: bool,
}

/// A JSON integer, which may be written with a zero fraction (`100.0`): JSON Schema's
/// `integer` is a number without a fractional part, however it is spelled.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let value = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => u32::try_from(u).ok(),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // Integral and in range, so exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f as u32)
        }
        _ => None,
    };
    value
        .map(Some)
        .ok_or_else(|| D::Error::custom("maxEvents must be an integer from 0 to 4294967295"))
}

/// The SETs of a poll, oldest first: `jti` -> the SET (a JWS, `typ: secevent+jwt`,
/// signed by the current key: verify it from JWKS).
pub struct Sets(Vec<(String, String)>);

impl Serialize for Sets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // In delivery order: the members of the object are written as the events happened.
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (jti, set) in &self.0 {
            map.serialize_entry(jti, set)?;
        }
        map.end()
    }
}

/// The answer of a poll (RFC 8936 section 2.4).
#[derive(Serialize, ToSchema)]
pub struct PollResponse {
    /// `jti` -> SET, oldest first.
    #[schema(value_type = HashMap<String, String>)]
    pub sets: Sets,
    /// More SETs wait than were answered: poll again.
    #[serde(rename = "moreAvailable")]
    pub more_available: bool,
}

/// Poll security events (RFC 8936): sessions revoked, accounts disabled, signing keys
/// withdrawn.
///
/// By an API key with scope `events`, which sees its tenant's events (`default`'s: every
/// tenant's) emitted since the key was created. Each key has its own cursor: an event is
/// delivered, oldest first, until the key acknowledges it (`ack` or `setErrs` in a later
/// poll), from any instance and across restarts; events are kept
/// `TOKENMINT_EVENT_RETENTION` (24 h). With nothing to deliver, the answer waits up to
/// 30 s for an event unless `returnImmediately`. Each SET is a JWT (`typ:
/// secevent+jwt`) signed by the current key: `iss`, `iat`, `jti`, `aud` (this key's id)
/// and `events` with one member: `https://schemas.openid.net/secevent/caep/event-type/session-revoked`
/// (`subject`, `sub`, `tenant_id`, `reason`, `event_timestamp`),
/// `https://schemas.openid.net/secevent/risc/event-type/account-disabled` (`sub`,
/// `tenant_id`, `event_timestamp`) or `urn:tokenmint:event:key-withdrawn` (`kid`,
/// `event_timestamp`).
#[utoipa::path(
    tag = "events",
    security(("api_key" = [])),
    request_body(content = Option<PollBody>),
    responses(
        (status = 200, description = "SETs, oldest first (none after the wait)", body = PollResponse),
        (status = 400, description = "Malformed body, or more than 1,000 acknowledgements", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The caller is not an API key with scope `events`", body = ErrorBody),
        (status = 503, description = "The database or the revocation list cannot be reached", body = ErrorBody),
    )
)]
#[post("/api/events/poll")]
pub async fn poll_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<PollResponse>, ApiError> {
    let presented = presented(&req)?;
    let body = optional_json::<PollBody>(&req, &body)?.unwrap_or_default();
    if body.ack.len() + body.set_errs.len() > MAX_ACKS {
        return Err(
            Error::invalid("at most 1,000 acknowledgements (ack and setErrs) a poll").into(),
        );
    }
    let mut acknowledged = body.ack;
    acknowledged.extend(body.set_errs.into_keys());
    let request = PollRequest {
        acknowledged,
        max_events: body.max_events,
        return_immediately: body.return_immediately,
    };
    let answer = state
        .events
        .poll(presented, client_ip(&req), request, state.clock.now())
        .await?;
    Ok(web::Json(PollResponse {
        sets: Sets(answer.sets),
        more_available: answer.more_available,
    }))
}
