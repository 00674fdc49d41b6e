//! The `ticket_redemptions` table: redemptions of connect tickets when there is no Redis.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::ticket_redemptions;
use super::{DbConnection, StoreError};

/// Marks ticket `jti` as used; `false` if it already was (on any instance).
pub fn redeem(
    conn: &mut DbConnection,
    jti: &str,
    expires_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    let inserted = diesel::insert_into(ticket_redemptions::table)
        .values((
            ticket_redemptions::jti.eq(jti),
            ticket_redemptions::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict => Ok(false),
            other => Err(other),
        },
    }
}

/// Deletes the redemptions of expired tickets (they can no longer be presented).
pub fn purge_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(ticket_redemptions::table.filter(ticket_redemptions::expires_at.le(now)))
            .execute(conn)?,
    )
}
