//! Tokens Tokenmint signs: RFC 9068 access tokens (and, later, tickets and exchanged tokens).

pub mod access;

pub use access::{AccessClaims, Grant, IssuedToken, TokenError, TokenService};
