//! Roles and scopes: who someone is, and what a token or key may be used for. Every
//! grant narrows its scopes here.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ScopeLimit};

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
    /// Polling security events (`POST /api/events/poll`), for a resource server's API key.
    pub const EVENTS: &str = "events";

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
