//! Black-box tests through the real server. One binary, so it links once.

// reason: a failed expectation in a test helper should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin_api_keys;
mod admin_users;
mod attacks;
mod audit;
mod browser;
mod cli;
mod clients;
mod concurrency;
mod edges;
mod errors;
mod fuzz;
mod hardening;
mod instances;
mod interop;
mod jose;
mod jwks;
mod keys;
mod login;
mod me;
mod metrics;
mod migration;
mod oauth;
mod openapi;
mod operations;
mod ops;
mod outage;
mod processes;
mod refresh;
mod refresh_model;
mod revocation;
mod secrets;
mod shutdown;
mod tenants;
mod tickets;
mod tls;
mod tokens;
