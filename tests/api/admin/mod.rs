//! The admin REST API.

mod api_keys;
mod audit;
mod clients;
pub(crate) mod key_withdrawal;
pub(crate) mod signing_keys;
mod tenants;
mod users;
