//! `/.well-known/jwks.json`, `/.well-known/openid-configuration` and
//! `/.well-known/oauth-authorization-server`.

use actix_web::http::header::{self, IfNoneMatch};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::http::error::{ApiError, ErrorBody};
use crate::model::GrantType;

/// A JSON Web Key Set (RFC 7517 section 5).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct JwksResponse {
    /// Public keys: `kid`, `kty`, `alg`, `use`, and `crv`/`x`/`y` or `n`/`e`.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// The public signing keys, for verifying access tokens without calling Tokenmint.
#[utoipa::path(
    tag = "discovery",
    params(("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy")),
    responses(
        (status = 200, description = "The key set", body = JwksResponse,
         headers(("Cache-Control" = String), ("ETag" = String))),
        (status = 304, description = "The cached copy is current"),
        (status = 503, description = "Neither the revocation list nor the database can say which keys are withdrawn", body = ErrorBody),
    )
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let doc = state.signing_keys.jwks(state.clock.now()).await?;
    // Tags are compared weakly for If-None-Match (RFC 9110 section 13.1.2).
    let fresh = req.headers().contains_key(header::IF_NONE_MATCH)
        && match req.get_header::<IfNoneMatch>() {
            Some(IfNoneMatch::Any) => true,
            Some(IfNoneMatch::Items(tags)) => {
                let ours = std::str::from_utf8(&doc.etag).unwrap_or_default();
                let ours = ours.trim_matches('"');
                tags.iter().any(|t| t.tag() == ours)
            }
            None => false,
        };
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    // A `next` key is published at least max-age before it signs, so a cached JWKS
    // always knows the signing key.
    response.insert_header((header::CACHE_CONTROL, state.jwks_cache_control.clone()));
    // Quotes and base64url only: always a valid header value, shared, not copied.
    if let Ok(etag) = header::HeaderValue::from_maybe_shared(doc.etag) {
        response.insert_header((header::ETAG, etag));
    }
    if fresh {
        Ok(response.finish())
    } else {
        Ok(response
            .insert_header((
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            ))
            .body(doc.body))
    }
}

/// Discovery metadata (RFC 8414 / OpenID Connect Discovery subset).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DiscoveryDocument {
    /// The `iss` of every token.
    pub issuer: String,
    /// Where the signing keys are.
    pub jwks_uri: String,
    /// RFC 7662 introspection.
    pub introspection_endpoint: String,
    /// RFC 7009 revocation.
    pub revocation_endpoint: String,
    /// The OAuth 2 token endpoint (`POST /oauth/token`).
    pub token_endpoint: String,
    /// `password` (at `/api/login`), `refresh_token`, `client_credentials` and token
    /// exchange.
    pub grant_types_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` and `none` (public clients).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The scopes registered clients may ask for.
    pub scopes_supported: Vec<String>,
    /// Algorithms of the published keys.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Algorithms a DPoP proof may use (RFC 9449 section 5.1).
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Always `["public"]`.
    pub subject_types_supported: Vec<String>,
    /// Always `["token"]`.
    pub response_types_supported: Vec<String>,
}

/// Discovery document, so that JWT libraries find the keys from the issuer alone.
#[utoipa::path(
    tag = "discovery",
    responses(
        (status = 200, description = "Discovery metadata", body = DiscoveryDocument),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
#[get("/.well-known/openid-configuration")]
pub async fn openid_configuration(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    discovery(&state).await
}

/// The same metadata at RFC 8414's address, for OAuth 2 client libraries.
#[utoipa::path(
    tag = "discovery",
    responses(
        (status = 200, description = "Authorization server metadata", body = DiscoveryDocument),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
#[get("/.well-known/oauth-authorization-server")]
pub async fn oauth_authorization_server(
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    discovery(&state).await
}

async fn discovery(state: &AppState) -> Result<HttpResponse, ApiError> {
    let issuer = state.settings.issuer.trim_end_matches('/').to_owned();
    let algs: Vec<String> = state
        .keyring
        .algorithms()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let scopes_supported = state.clients.scopes_supported().await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.jwks_max_age.as_secs()),
        ))
        .json(DiscoveryDocument {
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            introspection_endpoint: format!("{issuer}/api/token/introspect"),
            revocation_endpoint: format!("{issuer}/api/token/revoke"),
            token_endpoint: format!("{issuer}/oauth/token"),
            issuer: state.settings.issuer.clone(),
            grant_types_supported: GrantType::ALL
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            token_endpoint_auth_methods_supported: [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]
            .map(str::to_owned)
            .to_vec(),
            scopes_supported,
            id_token_signing_alg_values_supported: algs,
            dpop_signing_alg_values_supported: crate::dpop::ALGS.map(str::to_owned).to_vec(),
            subject_types_supported: vec!["public".to_owned()],
            response_types_supported: vec!["token".to_owned()],
        }))
}
