//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::App;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt as _;

use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::schema::AuditActionName;

/// Document-level information; paths come from `http::routes`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tokenmint",
        description = "A small identity provider: password login, signed JWT access tokens, rotating refresh tokens, JWKS.\n\n\
                       Every error is `{\"error\": CODE, \"message\": text}` with the codes of `ErrorCode`."
    ),
    tags(
        (name = "auth", description = "Login, refresh-token rotation, logout and the caller's identity"),
        (name = "sessions", description = "The caller's own sessions: where they are logged in, ending one or all others"),
        (name = "tokens", description = "RFC 7009 revocation and RFC 7662 introspection"),
        (name = "tickets", description = "Connect tickets: short-lived, single-use credentials for URLs (WebSockets)"),
        (name = "events", description = "Security events (RFC 8417 SETs) for resource servers, by RFC 8936 poll"),
        (name = "discovery", description = "Keys and metadata for token consumers"),
        (name = "oauth", description = "The OAuth 2 token endpoint (RFC 6749, RFC 8693); errors are RFC 6749 section 5.2 JSON"),
        (name = "admin", description = "Administration; callers have role `admin`"),
        (name = "operations", description = "Health, readiness, this document"),
    ),
    // Schemas only query parameters name (their `value_type` does not register them).
    components(schemas(ErrorBody, ErrorCode, AuditActionName)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The whole document: `ApiDoc` plus every path registered by `http::routes`, with the
/// rejections every body or parameter can meet documented once, here.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_app, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| crate::http::routes(cfg))
        .split_for_parts();
    CommonResponses.modify(&mut doc);
    doc
}

/// 400, 413 and 415 wherever a body is read; 400 wherever parameters are parsed. Only
/// under `/api/`: the OAuth token endpoint documents its own (RFC 6749) errors.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if operation.request_body.is_some() {
                    for (code, text) in [
                        ("400", "Malformed body"),
                        ("413", "Body over the configured limit"),
                        ("415", "Body in a content type the endpoint does not take"),
                    ] {
                        responses
                            .entry(code.to_owned())
                            .or_insert_with(|| error(text).into());
                    }
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    responses
                        .entry("400".to_owned())
                        .or_insert_with(|| error("Invalid parameter").into());
                }
            }
        }
    }
}

/// The document as pretty JSON with a final newline, as checked in at `openapi/openapi.json`.
pub fn document_json() -> Result<String, serde_json::Error> {
    document().to_pretty_json().map(|mut s| {
        s.push('\n');
        s
    })
}
