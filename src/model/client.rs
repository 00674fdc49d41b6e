//! Registered OAuth clients as plain values: ids, kinds, grant types, audiences. Used by
//! every domain module that meets a client (logins, sessions, the token endpoint).

use chrono::{DateTime, Utc};

use crate::api_keys::random_base62;
use crate::error::Error;
use crate::model::{Scope, TenantId};
use crate::store::clients::ClientRow;

/// A `client_id`: 1 to 128 URI-unreserved characters (`A-Z a-z 0-9 . _ ~ -`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a client id.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-');
        if s.is_empty() || s.len() > 128 || !s.chars().all(ok) {
            return Err(Error::invalid(
                "client_id must be 1 to 128 of letters, digits and . _ ~ -",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A new id: `tmc_` and 22 base62 characters (131 random bits). Never a UUID, so a
    /// client's own token (`sub` = its id) is never mistaken for a user's.
    pub fn generate() -> Result<Self, Error> {
        let random = random_base62(22).map_err(|_| Error::internal("random generator failed"))?;
        Ok(Self(format!("tmc_{random}")))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it has the shape of a user id (a UUID, in any spelling): a client's own
    /// token carries its `client_id` as `sub`, and must never name a user (RFC 9068
    /// section 5), so a chosen `client_id` may not be one.
    pub fn could_be_a_user_id(&self) -> bool {
        uuid::Uuid::try_parse(&self.0).is_ok()
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A confidential client holds a secret; a public one (a browser or mobile app) cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Authenticates with its secret.
    Confidential,
    /// Sends only its `client_id`.
    Public,
}

impl ClientKind {
    /// `confidential` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    /// Parses the stored or requested name.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "confidential" => Ok(Self::Confidential),
            "public" => Ok(Self::Public),
            _ => Err(Error::invalid("type must be confidential or public")),
        }
    }
}

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GrantType {
    /// Rotate refresh tokens at the token endpoint.
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// Get a token for itself (confidential clients only).
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// Exchange a user's access token for one of another audience (RFC 8693); its name
    /// is [`TOKEN_EXCHANGE`] (serde needs the literal; a test holds them together).
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
    /// Be named as `client_id` at `/api/login`.
    #[serde(rename = "password")]
    Password,
}

/// RFC 8693's grant type name.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

impl GrantType {
    /// Every grant type, in the order discovery lists them.
    pub const ALL: [GrantType; 4] = [
        Self::Password,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::TokenExchange,
    ];

    /// The RFC name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => TOKEN_EXCHANGE,
            Self::Password => "password",
        }
    }

    /// Parses an RFC name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// An audience a client may ask tokens for (a resource server's identifier): 1 to 255
/// printable ASCII characters without spaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Audience(String);

impl Audience {
    /// Parses an audience.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > 255 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                "an audience is 1 to 255 printable ASCII characters without spaces",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The audience.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registered client (never its secret).
#[derive(Debug, Clone)]
pub struct Client {
    /// Its id.
    pub client_id: ClientId,
    /// A name for people.
    pub name: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Confidential or public.
    pub kind: ClientKind,
    /// What it may do.
    pub grant_types: Vec<GrantType>,
    /// The scopes its tokens may carry.
    pub scopes: Vec<Scope>,
    /// The audiences it may ask for by token exchange.
    pub audiences: Vec<Audience>,
    /// Whether it may act.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Client {
    /// Reads a row.
    pub fn from_row(row: &ClientRow) -> Result<Self, Error> {
        Ok(Self {
            client_id: ClientId(row.client_id.clone()),
            name: row.name.clone(),
            tenant: TenantId::parse(&row.tenant_id).map_err(Error::internal)?,
            kind: ClientKind::parse(&row.kind).map_err(Error::internal)?,
            grant_types: serde_json::from_str(&row.grant_types)?,
            scopes: serde_json::from_str(&row.scopes)?,
            audiences: serde_json::from_str(&row.audiences)?,
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }

    /// Whether it may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_type_has_one_name_in_json_and_in_forms() {
        for grant in GrantType::ALL {
            let json = serde_json::to_value(grant).unwrap();
            assert_eq!(json, grant.as_str(), "{grant:?}");
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        }
        assert_eq!(GrantType::TokenExchange.as_str(), TOKEN_EXCHANGE);
    }
}
