//! Credentials and bodies from requests.

use std::future::{Future, Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::dpop;
use crate::error::{Credential, Door, DpopProblem, Error, Refusal};
use crate::http::error::{ApiError, ErrorCode};
use crate::model::Admin;
use crate::principal::{AccessToken, Caller, Presented, Scheme, SessionHolder};

/// The access token of an `Authorization: Bearer <token>` (RFC 6750 section 2.1) or
/// `Authorization: DPoP <token>` header (RFC 9449 section 7.1), with the request's
/// `DPoP` proof.
pub struct AuthorizationToken(pub AccessToken);

impl std::fmt::Debug for AuthorizationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizationToken([redacted])")
    }
}

/// Parses an Authorization header value; `None` when it is not a well-formed `Bearer` or
/// `DPoP` credential (schemes are case-insensitive).
///
/// Every authenticated request passes its token (hundreds of bytes) through here, so it
/// works on bytes: the check of the token's characters has no early exit, which lets the
/// compiler check many bytes at once. A value that passes is ASCII, hence UTF-8.
pub fn parse_authorization(value: &[u8]) -> Option<(Scheme, &str)> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    // The token, between spaces.
    let start = rest.iter().position(|&b| b != b' ')?;
    let end = rest.iter().rposition(|&b| b != b' ')?;
    let token = rest.get(start..=end)?;
    // b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" padding.
    let body = token.get(..=token.iter().rposition(|&b| b != b'=')?)?;
    let b64token =
        |b: u8| b.is_ascii_alphanumeric() | matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    if !body.iter().fold(true, |all, &b| all & b64token(b)) {
        return None;
    }
    Some((scheme, std::str::from_utf8(token).ok()?))
}

/// The request's DPoP proof (its one `DPoP` header), with its method and path; more
/// than one header is an invalid proof at `door`.
pub fn dpop_proof(req: &HttpRequest, door: Door) -> Result<Option<dpop::Presented>, Error> {
    let mut headers = req.headers().get_all("dpop");
    let Some(value) = headers.next() else {
        return Ok(None);
    };
    let invalid = |why| Error::Dpop {
        problem: DpopProblem::Invalid(why),
        door,
    };
    if headers.next().is_some() {
        return Err(invalid("send one DPoP header"));
    }
    let proof = value
        .to_str()
        .map_err(|_| invalid("the DPoP header is not a JWS"))?;
    Ok(Some(dpop::Presented {
        proof: proof.to_owned(),
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
    }))
}

/// The access token of an Authorization header, with the request's proof.
fn access_token(req: &HttpRequest, value: &[u8]) -> Result<Option<AccessToken>, Error> {
    let Some((scheme, token)) = parse_authorization(value) else {
        return Ok(None);
    };
    Ok(Some(AccessToken {
        token: token.to_owned(),
        scheme,
        proof: dpop_proof(req, Door::Resource)?,
    }))
}

impl AuthorizationToken {
    /// The access token of a request: `Ok(None)` without an Authorization header,
    /// an error when the header is there but is no `Bearer` or `DPoP` credential.
    pub fn optional(req: &HttpRequest) -> Result<Option<Self>, Error> {
        match req.headers().get(header::AUTHORIZATION) {
            None => Ok(None),
            Some(value) => match access_token(req, value.as_bytes())? {
                Some(token) => Ok(Some(Self(token))),
                None => Err(Error::refused(Credential::AccessToken, Refusal::Invalid)),
            },
        }
    }
}

impl FromRequest for AuthorizationToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            Self::optional(req)
                .and_then(|token| {
                    token.ok_or(Error::refused(Credential::AccessToken, Refusal::Missing))
                })
                .map_err(ApiError::from),
        )
    }
}

/// The request's `User-Agent`, as text (a session keeps it to describe its device).
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned())
}

/// An HttpOnly, SameSite=Strict cookie, `Secure` with `Path=/` (as a `__Host-` name
/// needs) when `secure`, else on `plain_path` (plain HTTP, development only).
pub fn strict_cookie(
    secure: bool,
    name: &'static str,
    value: String,
    max_age_secs: i64,
    plain_path: &'static str,
) -> actix_web::cookie::Cookie<'static> {
    use actix_web::cookie::{Cookie, SameSite, time};
    Cookie::build(name, value)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .path(if secure { "/" } else { plain_path })
        .max_age(time::Duration::seconds(max_age_secs))
        .finish()
}

/// The client address, for audit and rate limits: the peer, or, when the peer is a
/// trusted proxy, the rightmost `X-Forwarded-For` address that is not one.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let trusted: &[ipnet::IpNet] = req
        .app_data::<web::Data<AppState>>()
        .map_or(&[], |s| s.settings.trusted_proxies.as_slice());
    Some(
        forwarded_client(
            peer,
            trusted,
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
        )
        .to_string(),
    )
}

/// See [`client_ip`]; pure, for tests.
pub fn forwarded_client(
    peer: std::net::IpAddr,
    trusted: &[ipnet::IpNet],
    forwarded: Option<&str>,
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded) = forwarded else {
        return peer;
    };
    let mut client = peer;
    for hop in forwarded.rsplit(',').map(str::trim) {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A malformed entry ends the chain we can believe.
            Err(_) => return client,
        }
    }
    client
}

#[derive(serde::Deserialize)]
struct KeyParam {
    key: Option<String>,
}

/// The credentials a request presents: `Authorization: Bearer`, and `X-API-Key` (or
/// `?key=` where headers cannot be set). An Authorization header that is not a bearer
/// credential is refused here.
pub fn presented(req: &HttpRequest) -> Result<Presented, Error> {
    let ambiguous = || Error::refused(Credential::Caller, Refusal::Ambiguous);
    let mut headers = req.headers().get_all("x-api-key");
    let in_header = headers.next();
    if headers.next().is_some() {
        return Err(ambiguous());
    }
    let in_query = web::Query::<KeyParam>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().key);
    let api_key = match (in_header, in_query) {
        (Some(_), Some(_)) => return Err(ambiguous()),
        (Some(value), None) => Some(value.to_str().unwrap_or_default().to_owned()),
        (None, in_query) => in_query,
    };
    let bearer = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => match access_token(req, value.as_bytes())? {
            Some(token) => Some(token),
            // With an API key too, the request has two credentials, whatever this one is.
            None if api_key.is_some() => Some(AccessToken::bearer(String::new())),
            None => return Err(Error::refused(Credential::AccessToken, Refusal::Invalid)),
        },
    };
    Ok(Presented { bearer, api_key })
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state is not registered"))
}

/// The work of an authenticating extractor: the state, the request and the time it
/// arrived, handed to the domain call that decides who the caller is.
fn authenticating<T, F, Fut>(
    req: &HttpRequest,
    call: F,
) -> LocalBoxFuture<'static, Result<T, ApiError>>
where
    T: 'static,
    F: FnOnce(web::Data<AppState>, HttpRequest, DateTime<Utc>) -> Fut + 'static,
    Fut: Future<Output = Result<T, Error>> + 'static,
{
    let req = req.clone();
    Box::pin(async move {
        let state = state(&req)?;
        let now = state.clock.now();
        Ok(call(state, req, now).await?)
    })
}

/// The authenticated caller, as a handler argument. List it before any body argument:
/// actix extracts arguments in order, so an unauthenticated caller gets 401 before the
/// body is even read.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticating(req, |state, req, now| async move {
            let presented = presented(&req)?;
            state
                .authenticator
                .authenticate(presented, client_ip(&req), now)
                .await
        })
    }
}

/// An authenticated admin, as a handler argument (before any body argument, so that a
/// caller who is not an admin gets 401/403 before the body is read).
impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticating(req, |state, req, now| async move {
            let presented = presented(&req)?;
            // The route as documented (`/api/admin/users/{id}`): never an id or a query.
            let route = format!(
                "{} {}",
                req.method(),
                req.match_pattern().unwrap_or_else(|| req.path().to_owned())
            );
            state
                .authenticator
                .admin(presented, client_ip(&req), route, now)
                .await
        })
    }
}

/// The holder of a user's bearer access token, as a handler argument of the routes of
/// their own sessions (before any body argument).
impl FromRequest for SessionHolder {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticating(req, |state, req, now| async move {
            let token = AuthorizationToken::optional(&req)?
                .ok_or(Error::refused(Credential::AccessToken, Refusal::Missing))?;
            state
                .authenticator
                .session_holder(&token.0, client_ip(&req), now)
                .await
        })
    }
}

/// A body in JSON or `application/x-www-form-urlencoded` (as RFC 7009 and 7662 require).
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonOrForm<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if req
            .content_type()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        {
            let form = web::Form::<T>::from_request(req, payload);
            Box::pin(async move { Ok(Self(form.await?.into_inner())) })
        } else {
            let bytes = web::Bytes::from_request(req, payload);
            let req = req.clone();
            Box::pin(async move { Ok(Self(json_body(&req, &bytes.await?)?)) })
        }
    }
}

/// Parses a required JSON body read as bytes. Handlers that authenticate first take the
/// body this way: a `web::Json` argument could answer 400 before the caller is known.
pub fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    optional_json(req, body)?.ok_or_else(|| ApiError::invalid_request("a JSON body is required"))
}

/// Parses the query string after authentication (see [`json_body`]).
pub fn query_params<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| ApiError::invalid_request("invalid query parameters"))
}

/// Parses an optional JSON body: empty or `null` means `None`; anything else must be a
/// JSON object of `T` (serde would also take an array for a struct; the schema does not).
pub fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json = req
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
    if !json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ));
    }
    let invalid = |e: serde_json::Error| ApiError::invalid_request(super::describe_json_error(&e));
    serde_json::from_slice::<NoDuplicateKeys>(body).map_err(invalid)?;
    // One JSON document (checked above), so its first byte says what it is. `T` is read
    // from the bytes, not from a parsed value, so that an error says where it is.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'n') => Ok(None),
        Some(b'{') => serde_json::from_slice(body).map(Some).map_err(invalid),
        _ => Err(ApiError::invalid_request("the body must be a JSON object")),
    }
}

/// A JSON document in which no object has a key twice. serde_json keeps the last of two
/// equal keys, so `{"roles":["user"],"roles":["admin"]}` would pass for an admin; a
/// body whose meaning depends on such a tie-break is refused instead.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !seen.insert(key) {
                // The key itself is not repeated back: it is input, maybe misplaced secret.
                return Err(serde::de::Error::custom("duplicate key in a JSON object"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::{Scheme, forwarded_client, parse_authorization};
    use proptest::prelude::*;

    /// What `parse_authorization` answered before it worked on bytes: the reference its
    /// answers are compared with.
    fn parse_authorization_on_chars(value: &[u8]) -> Option<(Scheme, &str)> {
        let value = std::str::from_utf8(value).ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim_matches(' ');
        let body = token.trim_end_matches('=');
        let b64token =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/');
        if body.is_empty() || !body.chars().all(b64token) {
            return None;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            Some((Scheme::Bearer, token))
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Some((Scheme::Dpop, token))
        } else {
            None
        }
    }

    proptest! {
        #[test]
        fn authorization_parsing_answers_as_the_reference_does(
            scheme in "(Bearer|bearer|BEARER|DPoP|dpop|Basic|Bearer\u{e9}|\\PC{0,8})",
            spaces in (" {0,2}", " {0,2}"),
            body in "[a-zA-Z0-9._~+/-]{0,30}",
            padding in "={0,3}",
            // Now and then one character out of place: a space, padding, a tab, non-ASCII.
            flaw in proptest::option::of(("[ =\t\u{e9}\u{0}a]", 0..34usize)),
            junk in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut token = format!("{body}{padding}");
            if let Some((c, at)) = flaw {
                token.insert_str(at.min(token.len()), &c);
            }
            let (lead, trail) = spaces;
            let value = format!("{scheme} {lead}{token}{trail}");
            for value in [
                value.clone().into_bytes(),
                value.replacen(' ', "", 1).into_bytes(),
                [value.as_bytes(), &junk].concat(),
            ] {
                prop_assert_eq!(
                    parse_authorization(&value),
                    parse_authorization_on_chars(&value),
                    "{:?}", value
                );
            }
        }

        #[test]
        fn authorization_parsing_never_panics_and_yields_only_b64token(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some((_, token)) = parse_authorization(&bytes) {
                let ok = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
                prop_assert!(!token.is_empty() && token.chars().all(ok));
            }
        }

        #[test]
        fn forwarded_for_parsing_never_panics(xff in "\\PC*") {
            let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
            let _ = forwarded_client("127.0.0.1".parse().unwrap(), &trusted, Some(&xff));
        }
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let dup = |s: &str| serde_json::from_slice::<super::NoDuplicateKeys>(s.as_bytes()).is_err();
        assert!(!dup(r#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#));
        assert!(dup(r#"{"a":1,"a":2}"#));
        assert!(dup(r#"{"b":{"x":1,"x":1}}"#));
        assert!(dup(r#"[{"x":1,"x":1}]"#));
        assert!(
            dup(r#"{"a":1,"\u0061":2}"#),
            "an escaped twin is the same key"
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = Some("6.6.6.6, 1.2.3.4, 10.0.0.7");
        assert_eq!(
            forwarded_client(ip("5.5.5.5"), &trusted, xff),
            ip("5.5.5.5"),
            "untrusted peer"
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &trusted, xff),
            ip("1.2.3.4"),
            "rightmost untrusted hop"
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &trusted, None),
            ip("10.0.0.1")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &trusted, Some("junk")),
            ip("10.0.0.1")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.1"), &[], xff),
            ip("10.0.0.1"),
            "no trusted proxies"
        );
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        assert_eq!(
            parse_authorization(b"Bearer abc.def-ghi_~+/=="),
            Some((Scheme::Bearer, "abc.def-ghi_~+/=="))
        );
        assert_eq!(
            parse_authorization(b"bearer  abc"),
            Some((Scheme::Bearer, "abc"))
        );
        assert_eq!(
            parse_authorization(b"DPoP a.b.c"),
            Some((Scheme::Dpop, "a.b.c"))
        );
        assert_eq!(
            parse_authorization(b"dpop a.b.c"),
            Some((Scheme::Dpop, "a.b.c"))
        );
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff",
            b"Bearerabc",
            b"Bearer ===",
            b"DPoP a b",
            b"Token abc",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
    }
}
