//! Credentials from requests.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};

use crate::error::{ApiError, ErrorCode};

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 section 2.1).
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// Parses an Authorization header value; `None` when it is not a well-formed bearer credential.
pub fn parse_bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    // b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=" padding.
    let body = token.trim_end_matches('=');
    let b64token =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/');
    (scheme.eq_ignore_ascii_case("bearer") && !body.is_empty() && body.chars().all(b64token))
        .then_some(token)
}

impl FromRequest for BearerToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.headers().get(header::AUTHORIZATION) {
            None => Err(
                ApiError::new(ErrorCode::AuthenticationFailed, "missing bearer token")
                    .bearer_required(),
            ),
            Some(value) => match parse_bearer(value.as_bytes()) {
                Some(token) => Ok(Self(token.to_owned())),
                None => Err(ApiError::new(
                    ErrorCode::AuthenticationFailed,
                    "Authorization header is not a bearer token",
                )
                .invalid_token()),
            },
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bearer;

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(
            parse_bearer(b"Bearer abc.def-ghi_~+/=="),
            Some("abc.def-ghi_~+/==")
        );
        assert_eq!(parse_bearer(b"bearer  abc"), Some("abc"));
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff",
            b"Bearerabc",
            b"Bearer ===",
        ] {
            assert_eq!(parse_bearer(bad), None, "{bad:?}");
        }
    }
}
