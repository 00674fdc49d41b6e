//! The use cases behind `POST /oauth/token` (RFC 6749, RFC 8693). The refresh grant is
//! the same use case as `/api/refresh-token` ([`Sessions::refresh`]), bound to the client
//! the session was opened for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};

pub mod clients;

use self::clients::{ClientSecret, Clients};
use crate::audit::{Action, Actor, Audit, AuditEvent, Outcome};
use crate::error::{Credential, Error, Refusal, ScopeLimit};
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
        } = request;
        match grant {
            GrantRequest::ClientCredentials => self
                .client_credentials(client, scopes, ip, now)
                .await
                .map(Granted::Token),
            GrantRequest::RefreshToken(token) => self
                .refresh(client, token, scopes, ip, now)
                .await
                .map(Granted::Pair),
            GrantRequest::TokenExchange { subject, audience } => self
                .exchange(client, subject.expose_secret(), audience, scopes, ip, now)
                .await
                .map(Granted::Exchanged),
        }
    }

    /// `client_credentials`: a confidential client's own token (`sub` = `client_id`),
    /// with scopes from the client's; no refresh token.
    async fn client_credentials(
        &self,
        auth: ClientAuth,
        scopes: Option<Vec<Scope>>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let id = auth.client_id.clone();
        let result = self.client_credentials_for(auth, scopes, now).await;
        self.audited(&id, "client_credentials", ip, result, now)
            .await
    }

    async fn client_credentials_for(
        &self,
        auth: ClientAuth,
        scopes: Option<Vec<Scope>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let client = self.client(&auth, GrantType::ClientCredentials).await?;
        if client.kind != ClientKind::Confidential {
            return Err(Error::GrantNotAllowed);
        }
        let scopes = Scope::narrow(client.scopes.clone(), scopes, ScopeLimit::Grant)?;
        Ok(self.tokens.issue_for_client(
            client.client_id.as_str(),
            client.tenant.as_str(),
            &scopes,
            now,
        )?)
    }

    /// `refresh_token`: the rotation of `/api/refresh-token`, for the client the session
    /// belongs to only (another client's token is `invalid_grant`).
    async fn refresh(
        &self,
        auth: ClientAuth,
        token: Presented,
        scopes: Option<Vec<Scope>>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, Error> {
        let id = auth.client_id.clone();
        let result = async {
            let client = self.client(&auth, GrantType::RefreshToken).await?;
            self.sessions
                .refresh(
                    token,
                    RefreshClient::Client(client.client_id),
                    scopes,
                    ip.clone(),
                    now,
                )
                .await
        }
        .await;
        self.audited(&id, "refresh_token", ip, result, now).await
    }

    /// Token exchange (RFC 8693): a user's valid, unrevoked access token of the client's
    /// tenant, for an audience the client may ask for, narrowed to `scopes` (within the
    /// subject token's and the client's).
    async fn exchange(
        &self,
        auth: ClientAuth,
        subject_token: &str,
        audience: Audience,
        scopes: Option<Vec<Scope>>,
        ip: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let id = auth.client_id.clone();
        let result = self
            .exchange_for(auth, subject_token, audience, scopes, now)
            .await;
        self.audited(&id, "token_exchange", ip, result, now).await
    }

    async fn exchange_for(
        &self,
        auth: ClientAuth,
        subject_token: &str,
        audience: Audience,
        scopes: Option<Vec<Scope>>,
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
        let subject = self.authenticator.access_token(subject_token, now).await?;
        if subject.tenant_id != client.tenant.as_str() || subject.sid.is_none() {
            // Another tenant's token, or a client's own: nothing to exchange here.
            return Err(Error::refused(Credential::AccessToken, Refusal::Invalid));
        }
        let held: Vec<Scope> = Scope::parse_space_separated(&subject.scope)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| client.scopes.contains(s))
            .collect();
        let scopes = Scope::narrow(held, scopes, ScopeLimit::Grant)?;
        Ok(self.tokens.issue_exchanged(
            &subject,
            audience.as_str(),
            &scopes,
            client.client_id.as_str(),
            now,
        )?)
    }
}
