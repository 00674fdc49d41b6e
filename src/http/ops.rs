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

/// Readiness of each dependency.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `ok` or `unavailable`.
    pub database: String,
    /// `ok` or `unavailable`.
    pub revocation_list: String,
}

/// 200 when the database and the revocation list answer, else 503 naming the one that failed.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency does not answer", body = Readiness),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.health.readiness().await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" }.to_owned();
    let body = Readiness {
        status: word(readiness.ready()),
        database: word(readiness.database),
        revocation_list: word(readiness.revocation_list),
    };
    if readiness.ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
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
