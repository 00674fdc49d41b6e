//! Tokens Tokenmint signs: RFC 9068 access tokens (also exchanged ones) and connect tickets.

pub mod access;
pub mod ticket;

pub use access::{AccessClaims, Grant, IssuedToken, TokenError, TokenService};
