//! Tokenmint: a small identity provider. It checks passwords, issues short-lived
//! signed access tokens and rotating refresh tokens, publishes its signing keys as JWKS
//! and lets admins manage users and API keys over REST.
//!
//! Each use case is one domain function (in `identity`, `sessions`, `principal`,
//! `api_keys`, `keys`, `audit`, `tenancy`, `tickets`); `http` and the command line are
//! front doors that parse, call it and map its result. `startup` wires the pieces.
#![forbid(unsafe_code)]

pub mod actor;
pub mod api_keys;
pub mod audit;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod identity;
pub mod keys;
pub mod lifetimes;
pub mod metrics;
pub mod openapi;
pub mod principal;
pub mod redis_conn;
pub mod revocation;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod threads;
pub mod tickets;
pub mod tokens;
pub mod user;
