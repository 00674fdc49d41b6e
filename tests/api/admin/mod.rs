//! The admin REST API.

mod api_keys;
mod audit;
mod clients;
mod signing_keys;
mod tenants;
mod users;
