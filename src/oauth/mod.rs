//! The use cases behind `POST /oauth/token` (RFC 6749, RFC 8693). The refresh grant is
//! the same use case as `/api/refresh-token` ([`Sessions::refresh`]), bound to the client
//! the session was opened for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};

pub mod clients;

use self::clients::{ClientSecret, Clients};
use crate::audit::{Action, Actor, Audit, AuditEvent, Outcome};
use crate::dpop::{self, Jkt};
use crate::error::{Credential, Door, DpopProblem, Error, Refusal, ScopeLimit};
use crate::model::{Audience, Client, ClientId, ClientKind, GrantType, Scope};
use crate::principal::Authenticator;
use crate::sessions::{Presented, RefreshClient, Sessions, TokenPair};
use crate::tokens::{IssuedToken, TokenService};

/// How a client authenticated: its id and, if confidential, its secret
/// (`client_secret_basic` or `client_secret_post`; a public client sends neither).
#[derive(Debug)]
pub struct ClientAuth {
    /// The client.
    pub client_id: ClientId,
    /// Its secret, if it sent one.
    pub secret: Option<ClientSecret>,
}

/// What a token request asks for, once parsed: the grant and its own parameters.
pub enum GrantRequest {
    /// `client_credentials`.
    ClientCredentials,
    /// `refresh_token`, with the presented token.
    RefreshToken(Presented),
    /// RFC 8693 token exchange of a user's access token for `audience`.
    TokenExchange {
        /// The user's access token (`subject_token`).
        subject: SecretString,
        /// The audience of the new token.
        audience: Audience,
    },
}

/// A token request: the client, its grant, the scopes asked for, and where it came from.
pub struct TokenRequest {
    /// How the client authenticated.
    pub client: ClientAuth,
    /// The grant.
    pub grant: GrantRequest,
    /// Fewer scopes than the grant would give (none: all of them).
    pub scopes: Option<Vec<Scope>>,
    /// The caller's address, for the audit log.
    pub ip: Option<String>,
    /// A DPoP proof (RFC 9449): the token is then bound to its key.
    pub dpop: Option<dpop::Presented>,
}

/// What a grant gave.
pub enum Granted {
    /// An access token alone (client credentials).
    Token(IssuedToken),
    /// A rotated pair (refresh).
    Pair(TokenPair),
    /// An exchanged access token (RFC 8693: `issued_token_type` is a JWT).
    Exchanged(IssuedToken),
}

/// What every grant is asked with besides its own parameters.
struct Asked {
    /// Fewer scopes than the grant would give.
    scopes: Option<Vec<Scope>>,
    /// The caller's address.
    ip: Option<String>,
    /// The request's DPoP proof.
    proof: Option<dpop::Presented>,
}

/// The token endpoint's grants.
pub struct OAuth {
    clients: Arc<Clients>,
    sessions: Arc<Sessions>,
    authenticator: Arc<Authenticator>,
    tokens: Arc<TokenService>,
    audit: Arc<Audit>,
}

impl OAuth {
    /// The service.
    pub fn new(
        clients: Arc<Clients>,
        sessions: Arc<Sessions>,
        authenticator: Arc<Authenticator>,
        tokens: Arc<TokenService>,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            clients,
            sessions,
            authenticator,
            tokens,
            audit,
        }
    }

    /// Audits a grant: each success one row; failures (a client that did not
    /// authenticate, a refused grant) one row per client, grant and minute, with a count,
    /// so a client guessing cannot fill the log.
    async fn audited<T>(
        &self,
        client_id: &ClientId,
        grant: &'static str,
        ip: Option<String>,
        result: Result<T, Error>,
        now: DateTime<Utc>,
    ) -> Result<T, Error> {
        let unauthenticated = matches!(
            result,
            Err(Error::Unauthenticated {
                credential: Credential::Client,
                ..
            })
        );
        let action = if unauthenticated {
            Action::ClientAuthFailed
        } else {
            Action::OAuthToken
        };
        let event = AuditEvent {
            actor: if unauthenticated {
                Actor::Anonymous
            } else {
                Actor::Client(client_id.as_str().to_owned())
            },
            action,
            target: Some(format!("client:{}", client_id.as_str())),
            ip: ip.clone(),
            outcome: Outcome::of(result.is_ok()),
            detail: Some(grant.to_owned()),
        };
        if result.is_ok() {
            self.audit.record(event, now).await;
        } else {
            let key = format!(
                "{action}|{}|{grant}|{}",
                client_id.as_str(),
                ip.as_deref().unwrap_or("")
            );
            self.audit
                .record_throttled(event, key, now + chrono::TimeDelta::minutes(1), now)
                .await;
        }
        result
    }

    async fn client(&self, auth: &ClientAuth, grant: GrantType) -> Result<Client, Error> {
        let client = self
            .clients
            .authenticate(&auth.client_id, auth.secret.as_ref())
            .await?;
        if !client.allows(grant) {
            return Err(Error::GrantNotAllowed);
        }
        Ok(client)
    }

    /// The use case of `POST /oauth/token`: runs the requested grant for the client and
    /// audits it.
    pub async fn token(&self, request: TokenRequest, now: DateTime<Utc>) -> Result<Granted, Error> {
        let TokenRequest {
            client,
            grant,
            scopes,
            ip,
            dpop,
        } = request;
        let asked = Asked {
            scopes,
            ip,
            proof: dpop,
        };
        match grant {
            GrantRequest::ClientCredentials => self
                .client_credentials(client, asked, now)
                .await
                .map(Granted::Token),
            GrantRequest::RefreshToken(token) => self
                .refresh(client, token, asked, now)
                .await
                .map(Granted::Pair),
            GrantRequest::TokenExchange { subject, audience } => self
                .exchange(client, subject.expose_secret(), audience, asked, now)
                .await
                .map(Granted::Exchanged),
        }
    }

    /// The key of the request's DPoP proof, if it sent one (checked once, here).
    async fn proof_key(
        &self,
        proof: Option<&dpop::Presented>,
        now: DateTime<Utc>,
    ) -> Result<Option<Jkt>, Error> {
        match proof {
            Some(proof) => Ok(Some(
                self.sessions
                    .dpop()
                    .check(proof, Door::TokenEndpoint, None, now)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// `client_credentials`: a confidential client's own token (`sub` = `client_id`),
    /// with scopes from the client's; no refresh token. Bound to the key of a DPoP proof.
    async fn client_credentials(
        &self,
        auth: ClientAuth,
        asked: Asked,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let id = auth.client_id.clone();
        let ip = asked.ip.clone();
        let result = self.client_credentials_for(auth, asked, now).await;
        self.audited(&id, "client_credentials", ip, result, now)
            .await
    }

    async fn client_credentials_for(
        &self,
        auth: ClientAuth,
        asked: Asked,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let client = self.client(&auth, GrantType::ClientCredentials).await?;
        if client.kind != ClientKind::Confidential {
            return Err(Error::GrantNotAllowed);
        }
        let jkt = self.proof_key(asked.proof.as_ref(), now).await?;
        let scopes = Scope::narrow(client.scopes.clone(), asked.scopes, ScopeLimit::Grant)?;
        self.tokens.ready(now).await?;
        Ok(self.tokens.issue_for_client(
            client.client_id.as_str(),
            client.tenant.as_str(),
            &scopes,
            jkt.as_ref(),
            now,
        )?)
    }

    /// `refresh_token`: the rotation of `/api/refresh-token`, for the client the session
    /// belongs to only (another client's token is `invalid_grant`).
    async fn refresh(
        &self,
        auth: ClientAuth,
        token: Presented,
        asked: Asked,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let id = auth.client_id.clone();
        let result = async {
            let client = self.client(&auth, GrantType::RefreshToken).await?;
            self.sessions
                .refresh(
                    token,
                    RefreshClient::Client(client.client_id),
                    asked.scopes,
                    asked.ip.clone(),
                    asked.proof.as_ref(),
                    now,
                )
                .await
        }
        .await;
        self.audited(&id, "refresh_token", asked.ip, result, now)
            .await
    }

    /// Token exchange (RFC 8693): a user's valid, unrevoked access token of the client's
    /// tenant, for an audience the client may ask for, narrowed to `scopes` (within the
    /// subject token's and the client's).
    async fn exchange(
        &self,
        auth: ClientAuth,
        subject_token: &str,
        audience: Audience,
        asked: Asked,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let id = auth.client_id.clone();
        let ip = asked.ip.clone();
        let result = self
            .exchange_for(auth, subject_token, audience, asked, now)
            .await;
        self.audited(&id, "token_exchange", ip, result, now).await
    }

    /// A subject token bound to a key is exchanged only with a proof by that key, and the
    /// new token is bound to it (a binding is never laundered into a bearer token); an
    /// unbound subject's new token is bound to the request's proof's key, if any.
    async fn exchange_for(
        &self,
        auth: ClientAuth,
        subject_token: &str,
        audience: Audience,
        asked: Asked,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let client = self.client(&auth, GrantType::TokenExchange).await?;
        // A public client registered before this rule: it cannot authenticate, so it
        // may not exchange (RFC 8693 section 5).
        if client.kind != ClientKind::Confidential {
            return Err(Error::GrantNotAllowed);
        }
        if !client.audiences.contains(&audience) {
            return Err(Error::AudienceNotAllowed);
        }
        let subject = self.authenticator.subject_token(subject_token, now).await?;
        if subject.tenant_id != client.tenant.as_str() || subject.sid.is_none() {
            // Another tenant's token, or a client's own: nothing to exchange here.
            return Err(Error::refused(Credential::AccessToken, Refusal::Invalid));
        }
        let jkt = self.proof_key(asked.proof.as_ref(), now).await?;
        if let Some(bound) = subject.bound_to()
            && jkt.as_ref() != Some(&bound)
        {
            return Err(Error::Dpop {
                problem: DpopProblem::Binding(
                    "the subject token is bound to a key: exchange it with a DPoP proof by that key",
                ),
                door: Door::TokenEndpoint,
            });
        }
        let scopes = asked.scopes;
        let held: Vec<Scope> = Scope::parse_space_separated(&subject.scope)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| client.scopes.contains(s))
            .collect();
        let scopes = Scope::narrow(held, scopes, ScopeLimit::Grant)?;
        self.tokens.ready(now).await?;
        Ok(self.tokens.issue_exchanged(
            &subject,
            audience.as_str(),
            &scopes,
            client.client_id.as_str(),
            jkt.as_ref(),
            now,
        )?)
    }
}
