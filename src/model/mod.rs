//! The value types every use case speaks in: users and what they are made of (tenant,
//! username, roles, scopes, custom claims), OAuth clients (ids, kinds, grant types,
//! audiences, secrets), token and session lifetimes, and who acts. Plain values, parsed
//! and checked once; this module depends on nothing above it.
//!
//! Each type has one path: `crate::model::Name`.

mod actor;
mod client;
mod lifetimes;
mod scope;
pub mod text;
mod user;

pub use actor::*;
pub use client::*;
pub use lifetimes::*;
pub use scope::*;
pub use user::*;
