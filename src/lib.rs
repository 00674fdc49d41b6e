//! Tokenmint: a small identity provider. It checks passwords, issues short-lived
//! signed access tokens, publishes its signing keys as JWKS and lets admins manage
//! users over REST. `startup::Application` wires the pieces; `main.rs` is the CLI.
#![forbid(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod keys;
pub mod openapi;
pub mod redis_conn;
pub mod revocation;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod threads;
