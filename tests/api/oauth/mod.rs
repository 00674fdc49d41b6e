//! `POST /oauth/token`, discovery and JWKS.

pub mod jwks;
mod token_endpoint;
