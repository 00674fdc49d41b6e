//! The `revocations` table: the durable record behind the revocation list.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::revocations;
use super::{DbConnection, StoreError};

/// A row of `revocations`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = revocations)]
pub struct RevocationRow {
    /// `jti`, `sid` or `sub`.
    pub kind: String,
    /// The token id, session id or user id.
    pub subject: String,
    /// For `sub`: tokens issued before this (unix seconds) are revoked.
    pub cutoff: i64,
    /// When the entry no longer matters.
    pub expires_at: NaiveDateTime,
}

/// Records a revocation, replacing an earlier one of the same subject: one upsert, so
/// that two transactions revoking the same subject at once both commit (a delete then an
/// insert let the second fail on the first one's new row).
pub fn record(conn: &mut DbConnection, row: &RevocationRow) -> Result<(), StoreError> {
    use diesel::upsert::excluded;
    let replace = (
        revocations::cutoff.eq(excluded(revocations::cutoff)),
        revocations::expires_at.eq(excluded(revocations::expires_at)),
    );
    let target = (revocations::kind, revocations::subject);
    match conn {
        DbConnection::Postgres(c) => diesel::insert_into(revocations::table)
            .values(row)
            .on_conflict(target)
            .do_update()
            .set(replace)
            .execute(c)?,
        DbConnection::Sqlite(c) => diesel::insert_into(revocations::table)
            .values(row)
            .on_conflict(target)
            .do_update()
            .set(replace)
            .execute(c)?,
    };
    Ok(())
}

/// Every revocation still in force at `now`.
pub fn live(conn: &mut DbConnection, now: NaiveDateTime) -> Result<Vec<RevocationRow>, StoreError> {
    Ok(revocations::table
        .filter(revocations::expires_at.gt(now))
        .select(RevocationRow::as_select())
        .load(conn)?)
}

/// Deletes revocations that ended before `now`.
pub fn purge_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::delete(revocations::table.filter(revocations::expires_at.le(now))).execute(conn)?)
}
