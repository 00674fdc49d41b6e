//! Access tokens Tokenmint signs: RFC 9068, also exchanged ones (connect tickets, signed
//! by the same service, are in `tickets`).

pub mod access;

pub use access::{AccessClaims, Grant, IssuedToken, TokenError, TokenService};
