//! Connect tickets: JWTs with header `typ: ticket+jwt`, for one audience, living seconds.
//! Access-token checks refuse them by their type, and ticket checks refuse access tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::keys::KeyError;
use crate::keys::keyring::TICKET_TYP;
use crate::tokens::access::{Confirmation, Verified};
use crate::tokens::{TokenError, TokenService};

/// The claims of a ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketClaims {
    /// Issuer.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The service the ticket is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Ticket id: what redemption marks as used.
    pub jti: String,
    /// The session it was asked for from (none when asked for with an API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user's tenant.
    pub tenant_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The DPoP key of the access token the ticket was asked with, if it was bound: the
    /// receiving service may require a proof by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The user's custom claims, merged at top level.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

/// Whom a ticket names.
#[derive(Debug)]
pub struct TicketSubject {
    /// The user id.
    pub sub: String,
    /// The session, if asked for with an access token.
    pub sid: Option<String>,
    /// The tenant.
    pub tenant_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The username.
    pub username: Option<String>,
    /// The key of a bound access token the ticket was asked with.
    pub cnf: Option<Confirmation>,
    /// Custom claims.
    pub custom: Map<String, Value>,
}

/// A signed ticket.
#[derive(Debug)]
pub struct IssuedTicket {
    /// The JWT.
    pub token: String,
    /// Its claims.
    pub claims: TicketClaims,
}

impl TokenService {
    /// Signs a ticket for `subject` and `audience`, living `ttl`.
    pub fn issue_ticket(
        &self,
        subject: TicketSubject,
        audience: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<IssuedTicket, KeyError> {
        let iat = now.timestamp();
        let claims = TicketClaims {
            iss: self.issuer().to_owned(),
            sub: subject.sub,
            aud: audience.to_owned(),
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            iat,
            jti: Uuid::new_v4().to_string(),
            sid: subject.sid,
            tenant_id: subject.tenant_id,
            scope: subject.scope,
            username: subject.username,
            cnf: subject.cnf,
            custom: subject.custom,
        };
        let (token, _kid) = self.keyring().sign_ticket(&claims)?;
        Ok(IssuedTicket { token, claims })
    }

    /// Verifies a ticket of this issuer: type `ticket+jwt`, signature, `iss`, `iat`
    /// within the clock skew, `exp` without any, and a lifetime no longer than `ttl` (the
    /// longest issued). The audience is the caller's to compare.
    pub fn verify_ticket(
        &self,
        token: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Verified<TicketClaims>, TokenError> {
        let verified = self.verify_jws::<TicketClaims>(token, TICKET_TYP, None, "not a ticket")?;
        let claims = &verified.claims;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_sub(claims.iat) > ttl {
            return Err(TokenError::Invalid("lifetime longer than any issued"));
        }
        let now = now.timestamp();
        if claims.iat > now.saturating_add(self.skew_secs()) {
            return Err(TokenError::Invalid("not valid yet"));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }
}
