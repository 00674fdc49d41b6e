//! Domain logic: passwords, users, logins and access tokens. Nothing here knows HTTP.

pub mod api_keys;
pub mod audit;
pub mod login;
pub mod passwords;
pub mod rate_limit;
pub mod refresh_token;
pub mod sessions;
pub mod tokens;
pub mod users;
