//! Logins, refresh, `/api/me`, revocation and the tokens themselves.

mod attacks;
mod concurrency;
mod dpop;
mod fuzz;
mod jose;
mod login;
mod me;
mod refresh;
mod refresh_model;
mod revocation;
mod revocation_model;
mod sessions;
mod tokens;
