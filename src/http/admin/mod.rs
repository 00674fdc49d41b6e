//! Admin endpoints. Callers are users with role `admin` or API keys with scope `admin`;
//! every call is written to the audit log.

pub mod api_keys;
pub mod audit;
pub mod clients;
pub mod sessions;
pub mod signing_keys;
pub mod tenants;
pub mod users;
