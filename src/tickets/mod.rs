//! Connect tickets: a credential for URLs (a WebSocket's `?ticket=`), where headers
//! cannot go and an access token must not (it lives for minutes and leaks into logs).
//!
//! A ticket is a `ticket+jwt` for one audience, living seconds (`TOKENMINT_TICKET_TTL`).
//! A service verifies it offline from JWKS, or redeems it here exactly once: the first
//! redemption on any instance marks its `jti` used (Redis `SET NX` for the ticket's
//! remaining lifetime; without Redis, a row under a primary key in the database, which
//! holds across every instance on it). A ticket whose session or user was revoked after
//! it was issued is refused at redemption. A refused redemption (wrong caller, wrong
//! audience, another tenant) does not use the ticket up.

pub mod claims;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use crate::audit::{Action, Actor, Audit, AuditEvent, Outcome};
use crate::ephemeral::ticket_marks::TicketMarks;
use crate::error::{Credential, Error, Refusal, ScopeLimit};
use crate::model::{Scope, User};
use crate::principal::{Authenticator, Presented, Principal};
use crate::revocation::{Revocations, Revoked, TokenIds};
use crate::store::{Db, users};
use crate::tokens::access::{TokenService, Verified};

use self::claims::{IssuedTicket, TicketClaims, TicketSubject};

/// The ticket use cases.
pub struct Tickets {
    audit: Arc<Audit>,
    tokens: Arc<TokenService>,
    authenticator: Arc<Authenticator>,
    revocations: Arc<Revocations>,
    redemptions: TicketMarks,
    db: Db,
    audiences: Vec<String>,
    ttl: Duration,
}

/// What [`Tickets`] is built from.
pub struct TicketParts {
    /// The audit log.
    pub audit: Arc<Audit>,
    /// Signs and verifies.
    pub tokens: Arc<TokenService>,
    /// Authenticates callers.
    pub authenticator: Arc<Authenticator>,
    /// The revocation list.
    pub revocations: Arc<Revocations>,
    /// Where redemptions are marked.
    pub redemptions: TicketMarks,
    /// The database (API-key owners).
    pub db: Db,
    /// `TOKENMINT_TICKET_AUDIENCES`.
    pub audiences: Vec<String>,
    /// `TOKENMINT_TICKET_TTL`.
    pub ttl: Duration,
}

fn refused(refusal: Refusal) -> Error {
    Error::refused(Credential::Ticket, refusal)
}

impl Tickets {
    /// The service.
    pub fn new(parts: TicketParts) -> Self {
        Self {
            audit: parts.audit,
            tokens: parts.tokens,
            authenticator: parts.authenticator,
            revocations: parts.revocations,
            redemptions: parts.redemptions,
            db: parts.db,
            audiences: parts.audiences,
            ttl: parts.ttl,
        }
    }

    fn require_enabled(&self) -> Result<(), Error> {
        if self.audiences.is_empty() {
            return Err(Error::NotFound("endpoint (tickets are off)"));
        }
        Ok(())
    }

    /// The use case of `POST /api/tickets`: a ticket for the caller (a user's access
    /// token, or an API key, whose owner it then names) and `audience`, narrowed to
    /// `scopes`.
    pub async fn issue(
        &self,
        presented: Presented,
        ip: Option<String>,
        audience: &str,
        scopes: Option<Vec<Scope>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedTicket, Error> {
        let issued = self
            .issue_for(presented, ip.clone(), audience, scopes, now)
            .await;
        // Issued tickets are audited; refusals are the caller's 401/403 (the access token
        // or key checks audit their own floods).
        if let Ok(ticket) = &issued {
            let actor = Uuid::parse_str(&ticket.claims.sub).map_or(Actor::Anonymous, Actor::User);
            let event = AuditEvent {
                actor,
                action: Action::TicketIssue,
                target: Some(format!("ticket:{}", ticket.claims.jti)),
                ip,
                outcome: Outcome::Success,
                detail: Some(format!("audience {audience}")),
            };
            self.audit.record(event, now).await;
        }
        issued
    }

    async fn issue_for(
        &self,
        presented: Presented,
        ip: Option<String>,
        audience: &str,
        scopes: Option<Vec<Scope>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedTicket, Error> {
        let presented = presented.normalized()?;
        let subject = match presented {
            Presented {
                bearer: Some(token),
                api_key: None,
            } => {
                let claims = self.authenticator.access_token(&token, now).await?;
                if claims.sid.is_none() {
                    return Err(Error::Forbidden(
                        "tickets are for users: a client's own token cannot ask for one",
                    ));
                }
                let held = Scope::parse_space_separated(&claims.scope).unwrap_or_default();
                TicketSubject {
                    scope: Scope::join(&Scope::narrow(held, scopes, ScopeLimit::Grant)?),
                    sub: claims.sub,
                    sid: claims.sid,
                    tenant_id: claims.tenant_id,
                    username: claims.username,
                    // A ticket asked with a bound token stays bound: never laundered
                    // into a bearer credential.
                    cnf: claims.cnf,
                    custom: claims.custom,
                }
            }
            presented => {
                let caller = self.authenticator.authenticate(presented, ip, now).await?;
                let Principal::ApiKey(key) = caller.principal else {
                    return Err(Error::Forbidden(
                        "tickets need an access token or an API key",
                    ));
                };
                let owner_id = key.key.owner_id.to_string();
                let owner = self
                    .db
                    .run(move |conn| users::find_by_id(conn, &owner_id))
                    .await?
                    .as_ref()
                    .map(User::from_row)
                    .transpose()?
                    .ok_or_else(|| Error::refused(Credential::ApiKey, Refusal::Invalid))?;
                TicketSubject {
                    scope: Scope::join(&Scope::narrow(key.scopes(), scopes, ScopeLimit::Grant)?),
                    sub: owner.id.to_string(),
                    sid: None,
                    tenant_id: owner.tenant.as_str().to_owned(),
                    username: Some(owner.username.clone()),
                    cnf: None,
                    custom: owner.claims.as_map().clone(),
                }
            }
        };
        // Authenticated first: the caller learns nothing before that.
        self.require_enabled()?;
        if !self.audiences.iter().any(|a| a == audience) {
            return Err(Error::invalid(
                "audience: not one of the audiences tickets are issued for",
            ));
        }
        self.tokens.ready(now).await?;
        let ticket = self.tokens.issue_ticket(subject, audience, self.ttl, now)?;
        crate::metrics::count(crate::metrics::TICKETS, "issued");
        Ok(ticket)
    }

    /// The use case of `POST /api/tickets/redeem`: by an API key with scope `tickets`,
    /// a valid, unrevoked ticket for `audience`, the first time on any instance.
    pub async fn redeem(
        &self,
        presented: Presented,
        ip: Option<String>,
        ticket: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<TicketClaims, Error> {
        let redeemed = self
            .redeem_once(presented, ip.clone(), ticket, audience, now)
            .await;
        let refused_ticket = matches!(
            redeemed,
            Err(Error::Unauthenticated {
                credential: Credential::Ticket,
                ..
            })
        );
        match &redeemed {
            Ok(_) => crate::metrics::count(crate::metrics::TICKETS, "redeemed"),
            Err(_) if refused_ticket => crate::metrics::count(crate::metrics::TICKETS, "refused"),
            Err(_) => {}
        }
        if let Ok(claims) = &redeemed {
            let event = AuditEvent {
                actor: Uuid::parse_str(&claims.sub).map_or(Actor::Anonymous, Actor::User),
                action: Action::TicketRedeem,
                target: Some(format!("ticket:{}", claims.jti)),
                ip,
                outcome: Outcome::Success,
                detail: Some(format!("audience {audience}")),
            };
            self.audit.record(event, now).await;
        } else if refused_ticket {
            // One row per address and minute, with a count: a flood of bad tickets cannot
            // fill the log.
            let event = AuditEvent {
                actor: Actor::Anonymous,
                action: Action::TicketRedeem,
                target: None,
                ip: ip.clone(),
                outcome: Outcome::Failure,
                detail: Some(format!("audience {audience}")),
            };
            let key = format!("ticket.redeem|{}", ip.as_deref().unwrap_or(""));
            self.audit
                .record_throttled(event, key, now + chrono::TimeDelta::minutes(1), now)
                .await;
        }
        redeemed
    }

    async fn redeem_once(
        &self,
        presented: Presented,
        ip: Option<String>,
        ticket: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<TicketClaims, Error> {
        let caller = self.authenticator.authenticate(presented, ip, now).await?;
        self.require_enabled()?;
        let Principal::ApiKey(key) = &caller.principal else {
            return Err(Error::Forbidden(
                "redeeming tickets needs an API key with scope `tickets`",
            ));
        };
        if !Scope::held(&key.key.scopes, Scope::TICKETS) {
            return Err(Error::Forbidden(
                "redeeming tickets needs an API key with scope `tickets`",
            ));
        }
        let Verified { kid, claims } = self
            .tokens
            .verify_ticket(ticket, self.ttl, now)
            .map_err(|e| refused(e.refusal()))?;
        // A service of one tenant takes only that tenant's tickets (`default`'s, any).
        let tenant_ok = key.key.tenant.is_default() || key.key.tenant.as_str() == claims.tenant_id;
        if claims.aud != audience || !tenant_ok {
            return Err(refused(Refusal::Invalid));
        }
        let ids = TokenIds {
            jti: &claims.jti,
            sid: claims.sid.as_deref(),
            sub: &claims.sub,
            tenant: &claims.tenant_id,
            iat: claims.iat,
            kid: &kid,
        };
        if self.revocations.check(ids, now).await? == Revoked::Yes {
            return Err(refused(Refusal::Revoked));
        }
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        if !self.redemptions.mark(&claims.jti, expires_at, now).await? {
            return Err(refused(Refusal::Reused));
        }
        Ok(claims)
    }

    /// Housekeeping: forgets the marks of expired tickets.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        self.redemptions.purge(now).await
    }
}
