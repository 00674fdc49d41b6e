//! Health, readiness and the OpenAPI document.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;

/// Liveness.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Answers while the process serves.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Serving", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".to_owned(),
    })
}

/// One dependency's state.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DependencyState {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `postgres`, `sqlite`, `redis` or `memory`.
    pub backend: String,
}

/// The signing keys this instance holds.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SigningKeysState {
    /// `ok` (a current key and a published next key), `no_next_key` (tokens are issued,
    /// but the next rotation would have to wait for a next key's pre-publication) or
    /// `unavailable` (no key to sign with).
    pub status: String,
    /// The kid that signs.
    pub current: Option<String>,
    /// The kid published to sign next.
    pub next: Option<String>,
    /// Keys still published after they stopped signing.
    pub retiring: usize,
}

/// Every check of readiness.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReadinessChecks {
    /// The database.
    pub database: DependencyState,
    /// The revocation list.
    pub revocation_list: DependencyState,
    /// The signing keys.
    pub signing_keys: SigningKeysState,
}

/// Readiness of each dependency and of the signing keys.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `ok` or `unavailable` (also in `checks`).
    pub database: String,
    /// `ok` or `unavailable` (also in `checks`).
    pub revocation_list: String,
    /// Each check in detail.
    pub checks: ReadinessChecks,
}

/// 200 when the database and the revocation list answer and a key signs, else 503; the
/// body says what each check found.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency does not answer, or no key signs", body = Readiness),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.health.readiness().await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" }.to_owned();
    let keys = &readiness.keys;
    let keys_status = match (&keys.current, &keys.next) {
        (None, _) => "unavailable",
        (Some(_), None) => "no_next_key",
        (Some(_), Some(_)) => "ok",
    };
    let body = Readiness {
        status: word(readiness.ready()),
        database: word(readiness.database),
        revocation_list: word(readiness.revocation_list),
        checks: ReadinessChecks {
            database: DependencyState {
                status: word(readiness.database),
                backend: readiness.database_backend.to_owned(),
            },
            revocation_list: DependencyState {
                status: word(readiness.revocation_list),
                backend: readiness.revocation_backend.to_owned(),
            },
            signing_keys: SigningKeysState {
                status: keys_status.to_owned(),
                current: keys.current.clone(),
                next: keys.next.clone(),
                retiring: keys.retiring,
            },
        },
    };
    let mut response = if readiness.ready() {
        HttpResponse::Ok()
    } else {
        let mut unavailable = HttpResponse::ServiceUnavailable();
        unavailable.insert_header((
            actix_web::http::header::RETRY_AFTER,
            crate::http::error::UNAVAILABLE_RETRY_AFTER_SECS,
        ));
        unavailable
    };
    response
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Prometheus metrics (text exposition format). With `TOKENMINT_METRICS_BIND` set they are
/// served only there, and this address answers 404.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
        (status = 404, description = "Served on `TOKENMINT_METRICS_BIND` instead", body = crate::http::error::ErrorBody),
    )
)]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::http::error::ApiError> {
    if state.settings.metrics_bind.is_some() {
        return Err(crate::error::Error::NotFound(
            "endpoint (metrics are on TOKENMINT_METRICS_BIND)",
        )
        .into());
    }
    Ok(metrics_response(&state.health))
}

/// The scrape answer: state gauges refreshed, then everything rendered.
pub fn metrics_response(health: &crate::health::Health) -> HttpResponse {
    health.observe();
    match crate::metrics::render() {
        Some(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .body(text),
        None => HttpResponse::NotFound().finish(),
    }
}

/// The interactive API documentation (Swagger UI, served from the binary) lives at `/docs/`.
#[utoipa::path(tag = "operations", responses((status = 308, description = "Redirect to `/docs/`", headers(("Location" = String)))))]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// This API's OpenAPI document.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[get("/api-docs/openapi.json")]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}
