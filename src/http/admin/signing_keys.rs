//! `GET /api/admin/signing-keys`, `POST /api/admin/signing-keys/rotate`.

use actix_web::{HttpRequest, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Error;
use crate::http::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::optional_json;
use crate::keys::SigningAlg;
use crate::keys::keyring::KeyInfo;
use crate::model::Admin;

/// A signing key, without any key material.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SigningKeyView {
    /// Key id (RFC 7638 thumbprint), as in JWT headers and JWKS.
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
    /// `next`, `current`, `retiring` or `retired`.
    pub status: String,
    /// Creation, which is also publication in JWKS.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it left JWKS.
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
    pub alg: Option<String>,
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
