//! Users and the parsed values they are made of: tenant, username, custom claims (roles and scopes are in `scope`).
//! Plain values, used by every domain module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Role, Scope, has_admin_role};
use crate::error::Error;
use crate::store::users::UserRow;

/// Claims that Tokenmint sets itself; a user's custom claims may never use these names.
pub const REGISTERED_CLAIMS: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sid",
    "scope",
    "roles",
    "client_id",
    "username",
    "typ",
    "azp",
    "tenant_id",
    "act",
    "cnf",
];

/// A valid username: 1 to 64 characters of letters, digits and `. _ - @ +`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a username as given.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok_char =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
            return Err(Error::invalid(
                "username must be 1 to 64 characters: letters, digits and . _ - @ +",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive name: usernames that differ only in case are the same user.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The unique key of this username in `tenant`: usernames are unique per tenant.
    pub fn key_in(&self, tenant: &TenantId) -> String {
        format!("{}:{}", tenant.as_str(), self.key())
    }
}

/// A tenant's id: a slug of 1 to 63 of `a-z 0-9 -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// The tenant that exists from the start, owns what existed before tenants, and whose
/// admins administer every tenant.
pub const DEFAULT_TENANT: &str = "default";

impl TenantId {
    /// Parses a slug.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !first_ok || !rest_ok || s.len() > 63 {
            return Err(Error::invalid(
                "a tenant id is 1 to 63 of a-z, 0-9 and -, starting with a letter or digit",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The `default` tenant.
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    /// Whether this is the `default` tenant.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_TENANT
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Custom claims: a JSON object of at most 8 KiB whose keys are not registered claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Map<String, Value>);

impl Claims {
    /// Parses a claims object.
    pub fn parse(claims: Map<String, Value>) -> Result<Self, Error> {
        if let Some(name) = claims
            .keys()
            .find(|k| REGISTERED_CLAIMS.contains(&k.as_str()))
        {
            return Err(Error::invalid(format!(
                "custom claim {name:?} would override a registered claim"
            )));
        }
        let size = serde_json::to_vec(&claims).map_or(usize::MAX, |v| v.len());
        if size > 8 * 1024 {
            return Err(Error::invalid(
                "custom claims must be at most 8 KiB of JSON",
            ));
        }
        Ok(Self(claims))
    }

    /// The claims object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The claims object, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// A user as the domain sees it; never carries the password hash outward.
#[derive(Debug, Clone)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// The tenant.
    pub tenant: TenantId,
    /// Name as given at creation.
    pub username: String,
    /// Roles (`admin`, ...).
    pub roles: Vec<Role>,
    /// Scopes the user may be granted.
    pub scopes: Vec<Scope>,
    /// Custom claims, merged into access tokens.
    pub claims: Claims,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Builds a user from its row (which also holds the hash, left behind).
    pub fn from_row(row: &UserRow) -> Result<Self, Error> {
        Ok(Self {
            id: Uuid::parse_str(&row.id).map_err(Error::internal)?,
            tenant: TenantId(row.tenant_id.clone()),
            username: row.username.clone(),
            roles: serde_json::from_str(&row.roles)?,
            scopes: serde_json::from_str(&row.scopes)?,
            claims: Claims(serde_json::from_str(&row.claims)?),
            enabled: row.enabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }

    /// Whether the user holds the `admin` role.
    pub fn is_admin(&self) -> bool {
        has_admin_role(&self.roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn accepted_usernames_are_short_and_plain(s in "\\PC*") {
            if let Ok(name) = Username::parse(&s) {
                prop_assert!(name.as_str().len() <= 64 && name.as_str().is_ascii());
                prop_assert_eq!(name.key(), name.as_str().to_ascii_lowercase());
            }
        }
    }

    #[test]
    fn tenant_ids_are_slugs() {
        for good in ["default", "acme", "a", "0-9", &"a".repeat(63)] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-acme", "Acme", "a_b", "a:b", &"a".repeat(64), "ü"] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames_are_case_insensitive_keys_per_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(
            Username::parse("Alice.B").unwrap().key_in(&acme),
            "acme:alice.b"
        );
        assert_eq!(Username::parse("Alice.B").unwrap().key(), "alice.b");
        for bad in ["", "a b", "x".repeat(65).as_str(), "ünï", "a/b", "a\u{0}"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn custom_claims_cannot_override_registered_ones() {
        let mut claims = Map::new();
        claims.insert("haip".into(), serde_json::json!({"max_runs": 10}));
        assert!(Claims::parse(claims.clone()).is_ok());
        claims.insert("sub".into(), serde_json::json!("someone-else"));
        assert!(
            Claims::parse(claims)
                .unwrap_err()
                .to_string()
                .contains("sub")
        );
    }
}
