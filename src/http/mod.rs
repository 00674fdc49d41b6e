//! The HTTP layer: handlers parse, call one domain function and map the result.
//! Every rejection, actix's own included, is answered in API.md's error format.

pub mod admin;
pub mod auth;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod me;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod schema;
pub mod sessions;
pub mod tickets;
pub mod tokens;
pub mod wellknown;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::error::{PathError, UrlencodedError};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api_keys::ApiKeys;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Settings;
use crate::health::Health;
use crate::http::error::{ApiError, ErrorCode};
use crate::identity::Identity;
use crate::keys::{Keyring, SigningKeys};
use crate::oauth::OAuth;
use crate::oauth::clients::Clients;
use crate::principal::Authenticator;
use crate::sessions::Sessions;
use crate::tenancy::Tenants;
use crate::tickets::Tickets;

mod deadline;
pub use deadline::body_deadline;

/// What handlers use, built once at start and shared by all workers: the use cases
/// (never the store or the revocation list), the settings and time.
pub struct AppState {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Logins and users.
    pub identity: Arc<Identity>,
    /// Refresh, logout, revocation.
    pub sessions: Arc<Sessions>,
    /// Callers, `/api/me`, introspection.
    pub authenticator: Arc<Authenticator>,
    /// API keys.
    pub api_keys: Arc<ApiKeys>,
    /// Signing keys, for admins.
    pub signing_keys: Arc<SigningKeys>,
    /// Tenants, for admins of `default`.
    pub tenants: Arc<Tenants>,
    /// OAuth clients, for admins and the token endpoint.
    pub clients: Arc<Clients>,
    /// The token endpoint's grants.
    pub oauth: Arc<OAuth>,
    /// Connect tickets.
    pub tickets: Arc<Tickets>,
    /// Security events.
    pub events: Arc<crate::events::Events>,
    /// The admin console's sessions.
    pub console: Arc<crate::console::Console>,
    /// The published keys (JWKS, discovery), read from memory.
    pub keyring: Arc<Keyring>,
    /// The audit log, for admins.
    pub audit: Arc<Audit>,
    /// Readiness.
    pub health: Health,
    /// The documented routes, to tell 404 from 405.
    pub routes: KnownRoutes,
    /// The OpenAPI document, serialized once.
    pub openapi_json: web::Bytes,
    /// `Cache-Control` of the JWKS (`public, max-age=<TOKENMINT_JWKS_MAX_AGE>`).
    pub jwks_cache_control: actix_web::http::header::HeaderValue,
}

/// Where the endpoints are registered: utoipa-actix-web's configuration, which also
/// writes each endpoint's part of the OpenAPI document (see `crate::http::openapi::document`),
/// or actix-web's own, which the server uses. Every worker registers the routes again,
/// and writing the document each time left 4 MiB per worker resident (its freed pieces
/// among the routes' live ones), so the server serves the document written once.
pub trait Register {
    /// Registers one endpoint.
    fn service<F>(&mut self, factory: F) -> &mut Self
    where
        F: actix_web::dev::HttpServiceFactory + utoipa_actix_web::OpenApiFactory + 'static;
}

impl Register for ServiceConfig<'_> {
    fn service<F>(&mut self, factory: F) -> &mut Self
    where
        F: actix_web::dev::HttpServiceFactory + utoipa_actix_web::OpenApiFactory + 'static,
    {
        ServiceConfig::service(self, factory)
    }
}

impl Register for web::ServiceConfig {
    fn service<F>(&mut self, factory: F) -> &mut Self
    where
        F: actix_web::dev::HttpServiceFactory + utoipa_actix_web::OpenApiFactory + 'static,
    {
        web::ServiceConfig::service(self, factory)
    }
}

/// Registers every documented endpoint. Only `.service()`: utoipa-actix-web leaves
/// `.route()` handlers out of the OpenAPI document.
pub fn routes<C: Register>(cfg: &mut C) {
    // Routes are tried in this order: the busiest first.
    cfg.service(wellknown::jwks)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::refresh_with_cookie)
        .service(auth::logout)
        .service(tokens::revoke)
        .service(tokens::introspect)
        .service(me::me)
        .service(sessions::list_sessions)
        .service(sessions::end_other_sessions)
        .service(sessions::end_session)
        .service(tickets::issue_ticket)
        .service(tickets::redeem_ticket)
        .service(events::poll_events)
        .service(admin::users::create_user)
        .service(admin::users::list_users)
        .service(admin::users::get_user)
        .service(admin::users::patch_user)
        .service(admin::users::delete_user)
        .service(admin::users::revoke_sessions)
        .service(admin::sessions::list_user_sessions)
        .service(admin::sessions::end_user_session)
        .service(admin::api_keys::create_api_key)
        .service(admin::api_keys::list_api_keys)
        .service(admin::api_keys::get_api_key)
        .service(admin::api_keys::disable_api_key)
        .service(admin::api_keys::enable_api_key)
        .service(admin::api_keys::delete_api_key)
        .service(admin::audit::list_audit)
        .service(admin::signing_keys::list_signing_keys)
        .service(admin::signing_keys::rotate_signing_keys)
        .service(admin::signing_keys::withdraw_signing_key)
        .service(admin::tenants::create_tenant)
        .service(admin::tenants::list_tenants)
        .service(admin::tenants::get_tenant)
        .service(admin::tenants::patch_tenant)
        .service(admin::tenants::delete_tenant)
        .service(admin::clients::create_client)
        .service(admin::clients::list_clients)
        .service(admin::clients::get_client)
        .service(admin::clients::patch_client)
        .service(admin::clients::disable_client)
        .service(admin::clients::enable_client)
        .service(admin::clients::rotate_client_secret)
        .service(admin::clients::delete_client)
        .service(oauth::token)
        .service(wellknown::openid_configuration)
        .service(wellknown::oauth_authorization_server)
        .service(ops::healthz)
        .service(ops::readyz)
        .service(ops::openapi_json)
        .service(ops::metrics)
        .service(ops::docs);
}

/// Body and parameter extractors that answer in API.md's format. Handlers read JSON
/// bodies as bytes (see `extract::json_body`) and query strings after authentication
/// (`extract::query_params`); forms and paths go through these configurations.
pub fn extractor_configs(cfg: &mut web::ServiceConfig, body_limit_bytes: usize) {
    cfg.app_data(
        web::FormConfig::default()
            .limit(body_limit_bytes)
            .error_handler(form_error),
    )
    .app_data(web::PayloadConfig::default().limit(body_limit_bytes))
    .app_data(web::PathConfig::default().error_handler(path_error));
}

fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        UrlencodedError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
        }
        UrlencodedError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/x-www-form-urlencoded",
        ),
        UrlencodedError::Parse(_) => {
            ApiError::invalid_request("the form body is malformed or misses a field")
        }
        _ => ApiError::invalid_request("the form body could not be read"),
    };
    api.into()
}

fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid_request("invalid path parameter").into()
}

/// serde_json's messages may quote the offending value (a misplaced password, say);
/// keep what names fields and types, drop quoted input.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    let core = text.strip_suffix(&at).unwrap_or(&text);
    let core = if core.starts_with("invalid type") || core.starts_with("invalid value") {
        match core.split_once(", expected ") {
            Some((kind, expected)) => {
                let kind = kind.split(':').next().unwrap_or("invalid value");
                format!("{kind}: expected {expected}")
            }
            None => "invalid value".to_owned(),
        }
    } else if e.is_syntax() || e.is_eof() {
        "malformed JSON".to_owned()
    } else {
        core.to_owned()
    };
    format!("{core}{at}")
}

/// The documented paths and their methods, from the OpenAPI document.
#[derive(Default)]
pub struct KnownRoutes(Vec<(ResourceDef, Vec<Method>)>);

impl KnownRoutes {
    /// Reads the paths of `doc`.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                let ops = [
                    (Method::GET, &item.get),
                    (Method::HEAD, &item.get),
                    (Method::POST, &item.post),
                    (Method::PUT, &item.put),
                    (Method::PATCH, &item.patch),
                    (Method::DELETE, &item.delete),
                ];
                for (method, op) in ops {
                    if op.is_some() {
                        methods.push(method);
                    }
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods of the documented path `path` is: a concrete path before a template
    /// (`/api/sessions/revoke-others` is not `/api/sessions/{id}`), as OpenAPI matches.
    fn allowed(&self, path: &str) -> Option<&[Method]> {
        let matching = || self.0.iter().filter(|(def, _)| def.is_match(path));
        matching()
            .find(|(def, _)| concrete(def))
            .or_else(|| matching().next())
            .map(|(_, m)| m.as_slice())
    }

    /// Whether `path` is one of the documented paths without parameters.
    fn is_concrete(&self, path: &str) -> bool {
        self.0
            .iter()
            .any(|(def, _)| concrete(def) && def.is_match(path))
    }
}

fn concrete(def: &ResourceDef) -> bool {
    def.pattern().is_some_and(|p| !p.contains('{'))
}

/// The guard of a route with a path parameter: a path that is a documented concrete path
/// is not the template's (`DELETE /api/sessions/revoke-others` is no session id, but the
/// wrong method on `/api/sessions/revoke-others`: 405), as OpenAPI matches concrete paths
/// first.
pub fn not_a_concrete_path(ctx: &actix_web::guard::GuardContext<'_>) -> bool {
    ctx.app_data::<web::Data<AppState>>()
        .is_none_or(|state| !state.routes.is_concrete(ctx.head().uri.path()))
}

/// Unmatched requests: 405 with `Allow` where the path exists, else 404.
pub async fn not_matched(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<actix_web::HttpResponse, ApiError> {
    Err(match state.routes.allowed(req.path()) {
        Some(methods) if !methods.is_empty() => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("this endpoint allows {allow}"),
            )
            .allow(allow)
        }
        _ => ApiError::new(ErrorCode::NotFound, "no such endpoint"),
    })
}

/// What every request goes through, in one middleware (each layer of its own cost a
/// boxed future and a pass over the headers per request, a fifth of a cached JWKS answer):
/// - `HEAD` is routed as `GET` (RFC 9110 section 9.3.2); the server then sends the
///   headers without the body;
/// - the security headers, unless the answer set its own: `nosniff`, `no-referrer` (the
///   console: `same-origin`, so that its forms carry their `Origin`),
///   `DENY`, and a strict Content-Security-Policy (API answers may load nothing; the
///   documentation UI, served from the binary, only its own scripts and styles; the
///   console only its own stylesheet, and its forms post only to itself);
/// - `Cache-Control: no-store` on every `/api/` and `/admin/` answer that sets no policy
///   of its own: they describe users, keys and tokens, which no cache should keep;
/// - no CORS headers on the console's answers: no other origin reads them;
/// - `DPoP-Nonce` on every answer to a request with a DPoP proof, when nonces are on;
/// - one log line: method, path (never the query: it may hold a key), status, time;
/// - the request metrics, by route template (never the raw path: the templates are
///   bounded by the routes there are).
pub async fn frame(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    const API_POLICY: &str =
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    // The console: its own stylesheet, forms to itself, no script at all.
    const CONSOLE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    let started = Instant::now();
    let method = method_label(req.method());
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let docs = req.path() == "/docs" || req.path().starts_with("/docs/");
    let console = console::is_console_path(req.path());
    let api = req.path().starts_with("/api/") || console;
    let logged = tracing::enabled!(tracing::Level::INFO);
    let path = logged.then(|| req.path().to_owned());
    // With nonces on, every answer to a request with a DPoP proof carries the current
    // nonce (RFC 9449 section 8.2): clients keep the newest from every answer.
    let nonce = if req.headers().contains_key("dpop") {
        req.app_data::<web::Data<AppState>>()
            .and_then(|state| state.sessions.dpop().nonce(state.clock.now()))
    } else {
        None
    };
    let mut response = next.call(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = match &mut response {
        Ok(res) => {
            let headers = res.headers_mut();
            if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                headers.insert(header::HeaderName::from_static("dpop-nonce"), value);
            }
            let policy = if docs {
                DOCS_POLICY
            } else if console {
                CONSOLE_POLICY
            } else {
                API_POLICY
            };
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(policy),
            );
            // The console is for its own pages only: the CORS origins configured for
            // browser apps may call the API with credentials, never read a console page
            // (a same-site app would otherwise send its cookies and read the answer).
            if console {
                headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
                headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
            }
            if api && !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            // The console's forms need their Origin (a browser sends `Origin: null` under
            // `no-referrer`); its links to other sites still send nothing.
            let referrer = if console {
                "same-origin"
            } else {
                "no-referrer"
            };
            for (name, value) in [
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, referrer),
                (header::X_FRAME_OPTIONS, "DENY"),
            ] {
                if !headers.contains_key(&name) {
                    headers.insert(name, HeaderValue::from_static(value));
                }
            }
            res.status().as_u16()
        }
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    if let Some(path) = path {
        tracing::info!(method, %path, status, elapsed_ms = elapsed * 1000.0, "request");
    }
    let request = response.as_ref().ok().map(ServiceResponse::request);
    crate::metrics::http_request(
        method,
        status,
        request.map(HttpRequest::path),
        || request.and_then(HttpRequest::match_pattern),
        elapsed,
    );
    response
}

/// The method as a label: the ones the API uses, else `other` (bounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Whether a cookie-authenticated POST comes from a page we trust: no `Origin` (not a
/// browser, or same-origin navigation), the issuer's own origin, or a configured CORS
/// origin. SameSite=Strict already keeps the cookie off cross-site requests; this is the
/// second lock for browsers that do not honour it.
pub fn origin_allowed(req: &HttpRequest, settings: &Settings) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let issuer_origin = origin_of(&settings.issuer);
    Some(origin) == issuer_origin || settings.cors_origins.iter().any(|o| o == origin)
}

fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    Some(&url[..end])
}

/// The safety net for rejections that do not come from `ApiError` (actix's own payload
/// limits, say): any error answer that is not JSON becomes API.md's error body.
pub fn error_body_for_foreign_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::http::StatusCode;
    use actix_web::middleware::ErrorHandlerResponse;
    let content_type = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type.starts_with("application/json");
    // The console answers its refusals with pages of its own (which say the same).
    let is_console_page =
        content_type.starts_with("text/html") && console::is_console_path(res.request().path());
    if is_json || is_console_page {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let code = match res.status() {
        StatusCode::UNAUTHORIZED => ErrorCode::AuthenticationFailed,
        StatusCode::FORBIDDEN => ErrorCode::InsufficientPermissions,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    };
    let message = match code {
        ErrorCode::PayloadTooLarge => "request body is too large",
        ErrorCode::Internal => "internal error",
        _ => "the request was refused",
    };
    let (req, _) = res.into_parts();
    let response = actix_web::ResponseError::error_response(&ApiError::new(code, message));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
