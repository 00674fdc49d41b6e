//! Users and the parsed values they are made of: names, roles, scopes, custom claims.
//! Plain values, used by every domain module.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, ScopeLimit};
use crate::store::users::UserRow;

/// Claims that Tokenmint sets itself; a user's custom claims may never use these names.
pub const REGISTERED_CLAIMS: [&str; 16] = [
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

fn parse_name(kind: &'static str, s: &str) -> Result<String, Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '/');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok_char) {
        return Err(Error::invalid(format!(
            "a {kind} must be 1 to 64 characters: letters, digits and : . _ - /"
        )));
    }
    Ok(s.to_owned())
}

macro_rules! name_type {
    ($name:ident, $kind:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a name: 1 to 64 of letters, digits and `: . _ - /`.
            pub fn parse(s: &str) -> Result<Self, Error> {
                parse_name($kind, s).map(Self)
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Parses a list, dropping duplicates; at most 100 names.
            pub fn parse_list(items: &[String]) -> Result<Vec<Self>, Error> {
                if items.len() > 100 {
                    return Err(Error::invalid(concat!("at most 100 ", $kind, "s")));
                }
                let mut out: Vec<Self> = Vec::with_capacity(items.len());
                for item in items {
                    let name = Self::parse(item)?;
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
                Ok(out)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    Role,
    "role",
    "A role a user holds, e.g. `admin`. Roles say who someone is."
);
name_type!(
    Scope,
    "scope",
    "A scope: what a token (or key) may be used for, e.g. `read` or `admin`."
);

/// The name of the role and of the scope that administration needs.
pub const ADMIN: &str = "admin";

impl Role {
    /// The `admin` role.
    pub fn admin() -> Self {
        Self(ADMIN.to_owned())
    }
}

impl Scope {
    /// Administration (with the `admin` role).
    pub const ADMIN: &str = ADMIN;
    /// `POST /api/introspect` for API keys.
    pub const INTROSPECT: &str = "introspect";
    /// Redeeming connect tickets, for the receiving service's API key.
    pub const TICKETS: &str = "tickets";

    /// The `admin` scope.
    pub fn admin() -> Self {
        Self(ADMIN.to_owned())
    }

    /// Whether `scopes` holds the scope named `name` (one of the constants).
    pub fn held(scopes: &[Self], name: &str) -> bool {
        scopes.iter().any(|s| s.0 == name)
    }

    /// The scopes a grant ends with: `requested`, every one of which must be in
    /// `allowed`, or all of `allowed` when none are asked for. Every front door (login,
    /// refresh, tickets, the token endpoint) narrows here; a refusal names `limit`.
    pub fn narrow(
        allowed: Vec<Self>,
        requested: Option<Vec<Self>>,
        limit: ScopeLimit,
    ) -> Result<Vec<Self>, Error> {
        match requested {
            None => Ok(allowed),
            Some(requested) if requested.iter().all(|s| allowed.contains(s)) => Ok(requested),
            Some(_) => Err(Error::ScopeNotAllowed(limit)),
        }
    }

    /// Parses a space-separated scope string (RFC 6749 section 3.3), dropping duplicates.
    pub fn parse_space_separated(s: &str) -> Result<Vec<Self>, Error> {
        let items: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
        Self::parse_list(&items)
    }

    /// A scope list as the space-separated string tokens carry.
    pub fn join(scopes: &[Self]) -> String {
        scopes
            .iter()
            .map(Self::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether `roles` holds `admin`.
pub fn has_admin_role(roles: &[Role]) -> bool {
    roles.iter().any(|r| r.as_str() == ADMIN)
}

/// Whether `scopes` holds `admin`.
pub fn has_admin_scope(scopes: &[Scope]) -> bool {
    Scope::held(scopes, Scope::ADMIN)
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

        #[test]
        fn accepted_scope_strings_are_plain_names(s in "\\PC*") {
            if let Ok(scopes) = Scope::parse_space_separated(&s) {
                for scope in scopes {
                    prop_assert!(!scope.as_str().is_empty() && scope.as_str().len() <= 64);
                    prop_assert!(!scope.as_str().contains(' '));
                }
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

    #[test]
    fn names_are_checked_and_deduplicated() {
        let names = Role::parse_list(&["admin".into(), "admin".into(), "ops".into()]).unwrap();
        assert_eq!(names, [Role::admin(), Role::parse("ops").unwrap()]);
        assert!(Scope::parse_list(&["has space".into()]).is_err());
    }

    #[test]
    fn narrowing_grants_a_subset_of_what_is_allowed_and_nothing_else() {
        let scope = |s: &str| Scope::parse(s).unwrap();
        let allowed = vec![scope("read"), scope("write")];
        let narrow = |requested| Scope::narrow(allowed.clone(), requested, ScopeLimit::User);
        assert_eq!(narrow(None).unwrap(), allowed);
        assert_eq!(narrow(Some(vec![scope("read")])).unwrap(), [scope("read")]);
        assert_eq!(narrow(Some(vec![])).unwrap(), Vec::<Scope>::new());
        assert!(matches!(
            narrow(Some(vec![scope("read"), scope("admin")])),
            Err(Error::ScopeNotAllowed(ScopeLimit::User))
        ));
        assert!(Scope::held(&[scope("introspect")], Scope::INTROSPECT));
        assert!(!Scope::held(&[scope("introspection")], Scope::INTROSPECT));
        assert_eq!(
            Scope::parse_space_separated(" read  write read ").unwrap(),
            [
                Scope::parse("read").unwrap(),
                Scope::parse("write").unwrap()
            ]
        );
    }
}
