//! Tokenmint: a small identity provider. It checks passwords, issues short-lived
//! signed access tokens and rotating refresh tokens, publishes its signing keys as JWKS
//! and lets admins manage users and API keys over REST.
//!
//! Each use case is one domain function, in the room of its subject: `identity` (logins,
//! users, devices), `sessions` (refresh rotation), `principal` (who calls), `api_keys`,
//! `keys` (signing keys), `audit`, `tenancy` (tenants), `oauth` (clients and the token
//! endpoint's grants), `tickets`. They speak in the value types of `model`, keep state
//! through `store` (every database dialect is there) and `revocation`, and answer
//! `error::Error`. `http` and the command line are front doors that parse, call one use
//! case and map its result; `startup` wires the pieces. See `docs/architecture.md`.
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod audit;
pub mod clock;
pub mod config;
pub mod console;
pub mod dpop;
pub mod ephemeral;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod principal;
pub mod revocation;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod threads;
pub mod tickets;
pub mod tokens;
