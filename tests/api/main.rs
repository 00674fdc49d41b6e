//! Black-box tests through the real server. One binary, so it links once.
//!
//! - `auth`: logins, refresh rotation (rules, model, concurrency), `/api/me`, revocation,
//!   token verification and its edges, attacks on logins.
//! - `admin`: users, API keys, signing keys, tenants, clients, the audit log.
//! - `oauth`: the token endpoint and JWKS as standard libraries read them.
//! - `tickets`: connect tickets.
//! - `console`: the admin console's pages, forms and cookies over HTTP.
//! - `ops`: health, errors and edges of the contract, metrics, restarts, replicas and
//!   outages, migrations, TLS, the command line, the OpenAPI document, logs.
//! - `drivers`: Chromium and standard client libraries, run when
//!   `TOKENMINT_TEST_BROWSER=1` / `TOKENMINT_TEST_INTEROP=1` say so.
//! - `helpers`: the server under test and typed calls to it; child processes.

// reason: a failed expectation in a test helper should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod auth;
pub(crate) mod console;
mod drivers;
mod events;
mod oauth;
mod ops;
mod tickets;
