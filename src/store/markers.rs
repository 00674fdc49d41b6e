//! The `markers` table: small durable facts, one row each, made by the migrations.

use diesel::prelude::*;

use super::schema::markers;
use super::{DbConnection, StoreError};

/// The database has had an admin (0 or 1).
pub const HAD_ADMIN: &str = "had_admin";
/// The number of transactions that recorded revocations.
pub const REVOCATIONS: &str = "revocations";

/// A marker's value.
pub fn get(conn: &mut DbConnection, name: &str) -> Result<i64, StoreError> {
    super::unique!(conn, markers::table.find(name).select(markers::value))?
        .ok_or(StoreError::NotFound)
}

/// Sets a marker.
pub fn set(conn: &mut DbConnection, name: &str, value: i64) -> Result<(), StoreError> {
    diesel::update(markers::table.find(name))
        .set(markers::value.eq(value))
        .execute(conn)?;
    Ok(())
}

/// Adds one to a marker and returns the new value. Inside a transaction the row stays
/// locked until it ends, so concurrent increments are serialized.
pub fn increment(conn: &mut DbConnection, name: &str) -> Result<i64, StoreError> {
    increment_by(conn, name, 1)
}

/// Adds `by` to a marker and returns the new value (the last of the `by` values it
/// passed), as [`increment`] does.
pub fn increment_by(conn: &mut DbConnection, name: &str, by: i64) -> Result<i64, StoreError> {
    diesel::update(markers::table.find(name))
        .set(markers::value.eq(markers::value + by))
        .execute(conn)?;
    get(conn, name)
}
