//! `GET /api/admin/signing-keys`, `POST /api/admin/signing-keys/rotate`,
//! `POST /api/admin/signing-keys/{kid}/withdraw`.

use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{json_body, optional_json};
use crate::http::schema::{Reason, SigningAlgName};
use crate::keys::SigningAlg;
use crate::keys::admin::{WithdrawReason, Withdrawal};
use crate::keys::keyring::KeyInfo;
use crate::model::Admin;

/// A signing key, without any key material.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SigningKeyView {
    /// Key id (RFC 7638 thumbprint), as in JWT headers and JWKS.
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
    /// `next`, `current`, `retiring`, `retired` or `withdrawn`.
    pub status: String,
    /// Creation, which is also publication in JWKS.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it left JWKS (retired or withdrawn).
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<KeyInfo> for SigningKeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg.as_str().to_owned(),
            status: k.status.as_str().to_owned(),
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
        }
    }
}

/// Options of a rotation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Algorithm of the new `next` key: `ES256`, `EdDSA` or `RS256` (default: the configured one).
    #[serde(default)]
    #[schema(value_type = Option<SigningAlgName>)]
    pub alg: Option<String>,
}

/// An emergency withdrawal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    /// Why, 1 to 500 characters (kept in the audit log).
    #[schema(value_type = Reason)]
    pub reason: String,
    /// Also end every session of the deployment (a mass logout). Default false: sessions
    /// survive, and their next refresh is signed by the fresh key.
    #[serde(default)]
    pub end_sessions: bool,
}

fn views(keys: Vec<KeyInfo>) -> web::Json<Vec<SigningKeyView>> {
    web::Json(keys.into_iter().map(SigningKeyView::from).collect())
}

/// List every signing key with its state and times (a bare array: it is small).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every key, newest first", body = Vec<SigningKeyView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
    )
)]
#[get("/api/admin/signing-keys")]
pub async fn list_signing_keys(
    state: web::Data<AppState>,
    admin: Admin,
) -> Result<web::Json<Vec<SigningKeyView>>, ApiError> {
    let keys = state.signing_keys.list(&admin, state.clock.now()).await?;
    Ok(views(keys))
}

/// Rotate now: the `next` key becomes `current` (a new `next` is published), the old
/// `current` becomes `retiring`. Pre-publication is never skipped: if the `next` key has
/// not been in JWKS for the JWKS `max-age` yet, 409 with `Retry-After`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<RotateRequest>),
    responses(
        (status = 200, description = "The keys after the rotation", body = Vec<SigningKeyView>),
        (status = 400, description = "Unknown algorithm or malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 409, description = "The next key is not published long enough yet; see Retry-After", body = ErrorBody),
    )
)]
#[post("/api/admin/signing-keys/rotate")]
pub async fn rotate_signing_keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    body: web::Bytes,
) -> Result<web::Json<Vec<SigningKeyView>>, ApiError> {
    let alg = optional_json::<RotateRequest>(&req, &body)?
        .and_then(|r| r.alg)
        .map(|name| {
            name.parse::<SigningAlg>()
                .map_err(|_| Error::invalid("alg must be ES256, EdDSA or RS256"))
        })
        .transpose()?;
    let keys = state
        .signing_keys
        .rotate(&admin, alg, state.clock.now())
        .await?;
    Ok(views(keys))
}

/// Withdraw a key at once (its private part may have leaked). It becomes `withdrawn`
/// (terminal): before this answers, every instance leaves it out of JWKS (new `ETag`)
/// and refuses every token, ticket or exchanged token it signed (401 `TOKEN_REVOKED`).
/// Withdrawing `current` makes a fresh key `current` at once (no pre-publication:
/// verifiers meet an unknown `kid` and refetch JWKS) and withdraws the `next` key with
/// it (same database, same key-encryption key), publishing a fresh `next`; withdrawing
/// `next` replaces it; withdrawing `retiring` drops it. Withdrawing a withdrawn key
/// again changes nothing (with `end_sessions`, it still ends every session).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = []), ("api_key" = [])),
    params(("kid" = String, Path, description = "Key id")),
    request_body = WithdrawRequest,
    responses(
        (status = 200, description = "The keys after the withdrawal", body = Vec<SigningKeyView>),
        (status = 400, description = "Missing or invalid reason, or malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin of the default tenant", body = ErrorBody),
        (status = 404, description = "No key has this kid", body = ErrorBody),
        (status = 409, description = "The key is retired: out of JWKS, its tokens expired", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
#[post("/api/admin/signing-keys/{kid}/withdraw")]
pub async fn withdraw_signing_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    kid: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<Vec<SigningKeyView>>, ApiError> {
    let request = json_body::<WithdrawRequest>(&req, &body)?;
    let withdrawal = Withdrawal {
        reason: WithdrawReason::parse(&request.reason)?,
        end_sessions: request.end_sessions,
    };
    let keys = state
        .signing_keys
        .withdraw(&admin, kid.into_inner(), withdrawal, state.clock.now())
        .await?;
    Ok(views(keys))
}
