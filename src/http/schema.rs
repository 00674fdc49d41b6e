//! Named schemas of the strings the API parses by a rule (names, scopes, audiences), so
//! that the document states each rule once, in the terms its parser uses
//! ([`crate::model::text`] holds the patterns and the tests that hold them to the parsers).

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};

use crate::audit::Action;
use crate::keys::SigningAlg;
use crate::model::{GrantType, text};

/// A string schema with a pattern and bounds, described in words too.
fn string(pattern: &str, min: usize, max: usize, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .description(Some(description))
        .into()
}

macro_rules! named {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

named!(
    /// A name for people.
    DisplayName => string(
        text::PRINTABLE_PATTERN,
        1,
        100,
        "A name for people: 1 to 100 characters once trimmed, no control characters.",
    )
);

named!(
    /// Why an emergency was declared.
    Reason => string(
        text::PRINTABLE_PATTERN,
        1,
        500,
        "1 to 500 characters once trimmed, no control characters.",
    )
);

named!(
    /// A scope name.
    ScopeName => string(
        text::NAME_PATTERN,
        1,
        64,
        "A scope: 1 to 64 of letters, digits and `: . _ - /`, e.g. `introspect`.",
    )
);

named!(
    /// Scopes as one string (RFC 6749 section 3.3).
    ScopeList => ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(text::SCOPE_LIST_PATTERN))
        .description(Some("Space-separated scopes: up to 100 of 1 to 64 letters, digits and `: . _ - /`."))
        .into()
);

named!(
    /// A role name.
    RoleName => string(
        text::NAME_PATTERN,
        1,
        64,
        "A role: 1 to 64 of letters, digits and `: . _ - /`, e.g. `admin`.",
    )
);

named!(
    /// An audience.
    AudienceName => string(
        text::AUDIENCE_PATTERN,
        1,
        255,
        "A resource server's identifier: 1 to 255 printable ASCII characters, no space.",
    )
);

named!(
    /// A `client_id`.
    ClientIdName => string(
        text::CLIENT_ID_PATTERN,
        1,
        128,
        "A client's id: 1 to 128 of `A-Z a-z 0-9 . _ ~ -`.",
    )
);

/// A client's grant types (`schema_with` takes no field doc, so the description is here).
pub fn grant_types() -> Schema {
    grant_type_list(
        "Grant types, each at most once; `client_credentials` is for confidential clients only.",
    )
}

/// New grant types of a client.
pub fn new_grant_types() -> Schema {
    grant_type_list("New grant types, each at most once.")
}

fn grant_type_list(description: &str) -> Schema {
    ArrayBuilder::new()
        .items(one_of(
            &GrantType::ALL.map(GrantType::as_str),
            "A grant type's RFC name.",
        ))
        .unique_items(true)
        .description(Some(description))
        .into()
}

/// A string schema of the given values.
fn one_of(values: &[&str], description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

named!(
    /// The grant types of the token endpoint.
    TokenGrantTypeName => one_of(
        &[
            GrantType::ClientCredentials.as_str(),
            GrantType::RefreshToken.as_str(),
            GrantType::TokenExchange.as_str(),
        ],
        "A grant type of the token endpoint (`password` is `/api/login`'s).",
    )
);

named!(
    /// The only `subject_token_type` a token exchange takes.
    SubjectTokenType => one_of(&[super::oauth::ACCESS_TOKEN_TYPE], "An access token.")
);

named!(
    /// The only `requested_token_type` a token exchange gives.
    RequestedTokenType => one_of(&[super::oauth::JWT_TOKEN_TYPE], "A JWT.")
);

named!(
    /// A signing algorithm's JWS name.
    SigningAlgName => one_of(
        &SigningAlg::ALL.map(SigningAlg::as_str),
        "A signing algorithm (JWS `alg`).",
    )
);

named!(
    /// An audited action's name, or empty for any.
    AuditActionName => one_of(
        &std::iter::once("").chain(Action::ALL.iter().map(|a| a.as_str())).collect::<Vec<_>>(),
        "An audited action, e.g. `api_key.disable`; empty for any.",
    )
);
