//! `POST /oauth/token` (RFC 6749, RFC 8693): the front door standard OAuth client
//! libraries use. It parses the form and the client's credentials, calls one grant use
//! case and answers in RFC 6749's formats.

use actix_web::http::header;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{client_ip, dpop_proof};
use crate::error::{Credential, Door, Error, Refusal};
use crate::http::error::{ErrorBody, OAuthError, OAuthErrorBody};
use crate::http::schema::{
    AudienceName, RequestedTokenType, ScopeList, SubjectTokenType, TokenGrantTypeName,
};
use crate::model::Scope;
use crate::model::{Audience, ClientId, GrantType};
use crate::oauth::clients::ClientSecret;
use crate::oauth::{ClientAuth, GrantRequest, Granted, TokenRequest};
use crate::sessions::Presented;

/// The token type RFC 8693 names for an access token given as `subject_token`.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The token type of an exchanged token: a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token request (`application/x-www-form-urlencoded`). Which fields matter depends on
/// `grant_type`; unknown parameters are ignored, as RFC 6749 section 3.2 requires.
#[derive(Deserialize, ToSchema)]
pub struct TokenForm {
    /// `client_credentials`, `refresh_token` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (required: without one the answer
    /// is `invalid_request`).
    #[schema(value_type = TokenGrantTypeName, required = true)]
    pub grant_type: Option<String>,
    /// The client (`client_secret_post`, or a public client); with HTTP Basic
    /// (`client_secret_basic`) it may be left out.
    #[schema(value_type = String, required = false)]
    pub client_id: Option<String>,
    /// The client's secret (`client_secret_post`).
    #[schema(value_type = String, format = Password, required = false)]
    pub client_secret: Option<SecretString>,
    /// Space-separated scopes: fewer than the grant would give.
    #[schema(value_type = ScopeList, required = false)]
    pub scope: Option<String>,
    /// For `refresh_token`: the refresh token.
    #[schema(value_type = String, required = false)]
    pub refresh_token: Option<SecretString>,
    /// For token exchange: the user's access token.
    #[schema(value_type = String, required = false)]
    pub subject_token: Option<SecretString>,
    /// For token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    #[schema(value_type = SubjectTokenType, required = false)]
    pub subject_token_type: Option<String>,
    /// For token exchange: the audience of the new token; one of the client's.
    #[schema(value_type = AudienceName, required = false)]
    pub audience: Option<String>,
    /// For token exchange: if given, `urn:ietf:params:oauth:token-type:jwt`.
    #[schema(value_type = RequestedTokenType, required = false)]
    pub requested_token_type: Option<String>,
}

/// A successful token response (RFC 6749 section 5.1; RFC 8693 section 2.2.1).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OAuthTokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The new refresh token (refresh grant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Token exchange only: `urn:ietf:params:oauth:token-type:jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// Issue a token at the OAuth 2 token endpoint.
///
/// Client authentication by `client_secret_basic` or `client_secret_post`; a public client
/// sends only `client_id`. Grants: `client_credentials` (a confidential client's own
/// token), `refresh_token` (the rotation of `/api/refresh-token`, for the client the token
/// was issued to) and token exchange (RFC 8693: a user's access token for another
/// audience). Errors are RFC 6749 section 5.2 JSON.
#[utoipa::path(
    tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "A token; `Cache-Control: no-store`", body = OAuthTokenResponse),
        (status = 400, description = "`invalid_request` (also for a body that is not a form), `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope` or `invalid_target`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate: Basic`", body = OAuthErrorBody),
        (status = 413, description = "Body over the configured limit (refused before the endpoint reads it)", body = ErrorBody),
        (status = 503, description = "`temporarily_unavailable`: a backing store is unreachable", body = OAuthErrorBody),
    )
)]
#[post("/oauth/token")]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let request = token_request(&req, &body)?;
    let granted = state.oauth.token(request, state.clock.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(OAuthTokenResponse::from(granted)))
}

impl From<Granted> for OAuthTokenResponse {
    fn from(granted: Granted) -> Self {
        let (issued, refresh_token, issued_token_type) = match granted {
            Granted::Token(issued) => (issued, None, None),
            Granted::Pair(pair) => {
                let refresh = pair.refresh_token.expose().to_owned();
                (pair.access, Some(refresh), None)
            }
            Granted::Exchanged(issued) => (issued, None, Some(JWT_TOKEN_TYPE.to_owned())),
        };
        Self {
            expires_in: issued.claims.exp - issued.claims.iat,
            scope: issued.claims.scope,
            token_type: super::auth::token_type(issued.claims.cnf.is_some()).to_owned(),
            access_token: issued.token,
            refresh_token,
            issued_token_type,
        }
    }
}

/// The form as one token request: content type, parameters (none repeated, RFC 6749
/// section 3.2), the client's credentials, the scopes and the grant's own parameters.
fn token_request(req: &HttpRequest, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    if !req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "expected Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let form: TokenForm = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::invalid_request("the form is malformed or repeats a parameter"))?;
    let client = client_auth(req, &form)?;
    let scopes = form
        .scope
        .as_deref()
        .map(Scope::parse_space_separated)
        .transpose()
        .map_err(|_| OAuthError::invalid_request("scope is malformed"))?;
    Ok(TokenRequest {
        client,
        grant: grant(form)?,
        scopes,
        ip: client_ip(req),
        dpop: dpop_proof(req, Door::TokenEndpoint)?,
    })
}

/// The grant a form asks for, with its parameters checked.
fn grant(form: TokenForm) -> Result<GrantRequest, OAuthError> {
    match form.grant_type.as_deref().map(GrantType::parse) {
        Some(Some(GrantType::ClientCredentials)) => Ok(GrantRequest::ClientCredentials),
        Some(Some(GrantType::RefreshToken)) => {
            let presented = required(form.refresh_token, "refresh_token")?;
            let presented = Presented::parse(presented.expose_secret())
                .ok_or_else(|| refused(Credential::RefreshToken, Refusal::Invalid))?;
            Ok(GrantRequest::RefreshToken(presented))
        }
        Some(Some(GrantType::TokenExchange)) => {
            let subject = required(form.subject_token, "subject_token")?;
            if form.subject_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
                return Err(OAuthError::invalid_request(format!(
                    "subject_token_type must be {ACCESS_TOKEN_TYPE}"
                )));
            }
            if form
                .requested_token_type
                .as_deref()
                .is_some_and(|t| t != JWT_TOKEN_TYPE)
            {
                return Err(OAuthError::invalid_request(format!(
                    "requested_token_type must be {JWT_TOKEN_TYPE}"
                )));
            }
            let audience = Audience::parse(&required(form.audience, "audience")?)
                .map_err(|_| OAuthError::invalid_request("audience is malformed"))?;
            Ok(GrantRequest::TokenExchange { subject, audience })
        }
        // `password` included: logins are `/api/login`.
        Some(_) => Err(OAuthError::unsupported_grant_type()),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

fn refused(credential: Credential, refusal: Refusal) -> OAuthError {
    OAuthError::from(Error::refused(credential, refusal))
}

fn required<T>(value: Option<T>, name: &'static str) -> Result<T, OAuthError> {
    value.ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

/// The client's credentials: HTTP Basic (`client_secret_basic`, both parts
/// form-urlencoded, RFC 6749 section 2.3.1) or the form (`client_secret_post`), never
/// both; a public client sends its `client_id` alone.
fn client_auth(req: &HttpRequest, form: &TokenForm) -> Result<ClientAuth, OAuthError> {
    let basic = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            parse_basic(value.as_bytes())
                .ok_or_else(|| refused(Credential::Client, Refusal::Invalid))?,
        ),
    };
    let parse_id =
        |id: &str| ClientId::parse(id).map_err(|_| refused(Credential::Client, Refusal::Invalid));
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        )),
        (Some((id, secret)), None) => {
            if form
                .client_id
                .as_deref()
                .is_some_and(|body_id| body_id != id)
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the one authenticated",
                ));
            }
            Ok(ClientAuth {
                client_id: parse_id(&id)?,
                secret: Some(ClientSecret::presented(secret)),
            })
        }
        (None, secret) => {
            let id = form
                .client_id
                .as_deref()
                .ok_or_else(|| refused(Credential::Client, Refusal::Missing))?;
            Ok(ClientAuth {
                client_id: parse_id(id)?,
                secret: secret.clone().map(ClientSecret::presented),
            })
        }
    }
}

/// `Basic base64(urlencode(client_id) ":" urlencode(secret))`.
fn parse_basic(value: &[u8]) -> Option<(String, SecretString)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, SecretString::from(unescape(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::parse_basic;
    use base64::Engine as _;
    use proptest::prelude::*;
    use secrecy::ExposeSecret as _;

    proptest! {
        #[test]
        fn basic_credentials_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_basic(&bytes);
        }
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_parts() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret+x")
        );
        let (id, secret) = parse_basic(header.as_bytes()).unwrap();
        assert_eq!(id, "my app");
        assert_eq!(secret.expose_secret(), "s:cret x");
        assert!(parse_basic(b"Bearer abc").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
    }
}
