//! Admin endpoints. Callers are users with role `admin`.

pub mod signing_keys;
