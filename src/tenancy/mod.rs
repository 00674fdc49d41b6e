//! Tenants, the OAuth clients registered in them, and the token endpoint's grants.

pub mod clients;
pub mod oauth;
pub mod tenants;
