//! The admin console's sessions: the use cases behind `/admin`'s login, every page's
//! entry and logout. A console session is an ordinary session of the admin (it is listed
//! with their sessions and ends like them), opened by the login use case with the token
//! narrowed to the `admin` scope; what the console adds is:
//!
//! - only admins get one: a user without the `admin` scope is refused by the login's own
//!   scope rule, before any session exists; one with the scope but not the role is
//!   refused by the admin check, and the session just opened is ended before the answer;
//! - a short idle lifetime: a page renews the pair (a rotation by the refresh rules) once
//!   its access token is [`RENEW_AFTER`] old, and the pages' cookies live as long as an
//!   access token, so a console left alone for an access token's lifetime is logged out;
//! - CSRF tokens bound to the session: an HMAC of its id under a key derived from the
//!   key-encryption key (the same on every instance, nothing stored).
//!
//! Every action of a page then calls the same use case as its REST twin, with the
//! [`Admin`] that [`Console::enter`] returns.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use ring::hmac;

use crate::error::{Credential, Error, Refusal};
use crate::identity::{Identity, LoginAttempt};
use crate::model::{Admin, Scope};
use crate::principal::{AccessToken, Authenticator};
use crate::sessions::{Presented as PresentedRefresh, RefreshClient, Sessions, TokenPair};

/// How old a console's access token gets before a page renews the pair.
pub const RENEW_AFTER: TimeDelta = TimeDelta::minutes(1);

/// Why a console login is refused to a user who logged in correctly.
const NOT_AN_ADMIN: &str = "the console is for admins: this user has no admin role and scope";

/// The console's tokens, as the browser's cookies hold them.
pub struct Held<'a> {
    /// The access token.
    pub access: &'a str,
    /// The refresh token, if the cookie is there.
    pub refresh: Option<&'a str>,
}

/// What a request to the console is: a page to show, or a form posted with the token it
/// carries (checked before anything changes, the session's renewal included).
#[derive(Clone, Copy)]
pub enum Request<'a> {
    /// A page.
    Page,
    /// A form, with its `csrf` field if it had one.
    Form(Option<&'a str>),
}

/// A page's caller, once [`Console::enter`] let them in.
pub struct Entered {
    /// The admin, for the use cases.
    pub admin: Admin,
    /// The console session's id.
    pub session_id: String,
    /// The form token of this session.
    pub csrf: String,
    /// A renewed pair, when the access token was old enough: the page sets it.
    pub renewed: Option<TokenPair>,
}

/// The console's use cases (see the module doc).
pub struct Console {
    identity: Arc<Identity>,
    sessions: Arc<Sessions>,
    authenticator: Arc<Authenticator>,
    csrf_key: hmac::Key,
}

impl Console {
    /// The console over the use cases it calls; `csrf_secret` keys its form tokens.
    pub fn new(
        identity: Arc<Identity>,
        sessions: Arc<Sessions>,
        authenticator: Arc<Authenticator>,
        csrf_secret: &[u8; 32],
    ) -> Self {
        Self {
            identity,
            sessions,
            authenticator,
            csrf_key: hmac::Key::new(hmac::HMAC_SHA256, csrf_secret),
        }
    }

    /// The use case of the console's login form: the login use case (its limits, its
    /// audit, its argon2) with the token narrowed to `admin`, then the admin check.
    pub async fn login(
        &self,
        mut attempt: LoginAttempt,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        attempt.scopes = Some(vec![Scope::admin()]);
        attempt.client_id = None;
        attempt.client_secret = None;
        attempt.dpop = None;
        let ip = attempt.ip.clone();
        let pair = self
            .identity
            .login(attempt, now)
            .await
            .map_err(|e| match e {
                Error::ScopeNotAllowed(_) => Error::Forbidden(NOT_AN_ADMIN),
                e => e,
            })?;
        let token = AccessToken::bearer(pair.access.token.clone());
        let checked = self
            .authenticator
            .session_admin(&token, ip.clone(), "/admin/login".to_owned(), now)
            .await;
        match checked {
            Ok(_) => Ok(pair),
            Err(refused) => {
                let refresh = PresentedRefresh::parse(pair.refresh_token.expose());
                self.sessions
                    .logout(refresh, Some(&pair.access.token), ip, now)
                    .await?;
                Err(match refused {
                    Error::Forbidden(_) => Error::Forbidden(NOT_AN_ADMIN),
                    e => e,
                })
            }
        }
    }

    /// The use case of every console request's first step: the held access token must be
    /// a verified, unrevoked admin's token of a session (as at every admin endpoint, the
    /// refusal audited); a form must carry that session's CSRF token; then the pair is
    /// renewed when it is [`RENEW_AFTER`] old.
    pub async fn enter(
        &self,
        held: Held<'_>,
        request: Request<'_>,
        ip: Option<String>,
        route: String,
        now: DateTime<Utc>,
    ) -> Result<Entered, Error> {
        let token = AccessToken::bearer(held.access);
        let (admin, claims) = self
            .authenticator
            .session_admin(&token, ip.clone(), route, now)
            .await?;
        let session_id = claims
            .sid
            .ok_or(Error::refused(Credential::AccessToken, Refusal::Invalid))?;
        if let Request::Form(presented) = request {
            self.check_csrf(&session_id, presented)?;
        }
        let age = now - DateTime::from_timestamp(claims.iat, 0).unwrap_or(now);
        let renewed = match held.refresh {
            Some(refresh) if age >= RENEW_AFTER => {
                let pair = self.renew(refresh, ip, now).await?;
                // The two cookies are of one session, or of none.
                if pair.session_id.to_string() != session_id {
                    return Err(Error::refused(Credential::RefreshToken, Refusal::Invalid));
                }
                Some(pair)
            }
            _ => None,
        };
        Ok(Entered {
            admin,
            csrf: self.csrf_token(&session_id),
            session_id,
            renewed,
        })
    }

    /// A fresh pair for the console's session by its refresh token, as the refresh rules
    /// give any session one: after a withdrawal of the key that signed the console's
    /// access token, the console goes on with a token of the new key.
    pub async fn renew(
        &self,
        refresh: &str,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let presented = PresentedRefresh::parse(refresh)
            .ok_or(Error::refused(Credential::RefreshToken, Refusal::Invalid))?;
        self.sessions
            .refresh(presented, RefreshClient::FirstParty, None, ip, None, now)
            .await
    }

    /// The form token of a console session.
    pub fn csrf_token(&self, session_id: &str) -> String {
        self.form_token("session", session_id)
    }

    /// Whether `presented` is the form token of `session_id`: else 403.
    fn check_csrf(&self, session_id: &str, presented: Option<&str>) -> Result<(), Error> {
        self.check_form_token("session", session_id, presented)
    }

    /// The login form's token, bound to the random value of the browser's login cookie
    /// (there is no session yet to bind it to).
    pub fn login_csrf_token(&self, nonce: &str) -> String {
        self.form_token("login", nonce)
    }

    /// Whether `presented` is the login form's token of `nonce`: else 403.
    pub fn check_login_csrf(&self, nonce: &str, presented: Option<&str>) -> Result<(), Error> {
        self.check_form_token("login", nonce, presented)
    }

    /// The use case of the console's logout: the session's tokens end as at
    /// `/api/logout`.
    pub async fn logout(
        &self,
        held: Held<'_>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let refresh = held.refresh.and_then(PresentedRefresh::parse);
        self.sessions
            .logout(refresh, Some(held.access), ip, now)
            .await
    }

    fn form_token(&self, purpose: &str, bound_to: &str) -> String {
        let message = format!("tokenmint-console-{purpose}:{bound_to}");
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.csrf_key, message.as_bytes()))
    }

    fn check_form_token(
        &self,
        purpose: &str,
        bound_to: &str,
        presented: Option<&str>,
    ) -> Result<(), Error> {
        let refused = || Error::Forbidden("the form's CSRF token is missing or not this session's");
        let tag = presented
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .ok_or_else(refused)?;
        let message = format!("tokenmint-console-{purpose}:{bound_to}");
        hmac::verify(&self.csrf_key, message.as_bytes(), &tag).map_err(|_| refused())
    }
}
