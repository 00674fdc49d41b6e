//! The statements of the refresh path written out, each its own type, so that diesel
//! prepares each once per connection and keeps it. Diesel never keeps an `UPDATE` or a
//! `sql_query`: it parses and plans them again at every execution, and on PostgreSQL
//! prepares them in a round trip of their own.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Binary, HasSqlType, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

/// Marks a live, unexpired refresh token spent and seals its successor in it.
pub struct Spend<'a> {
    /// The token's hash.
    pub token_hash: &'a str,
    /// Now.
    pub now: NaiveDateTime,
    /// The successor, sealed.
    pub sealed: &'a [u8],
}

impl QueryId for Spend<'_> {
    type QueryId = Spend<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for Spend<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp> + HasSqlType<Binary>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
    [u8]: ToSql<Binary, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_tokens SET spent_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", successor_sealed = ");
        out.push_bind_param::<Binary, _>(self.sealed)?;
        out.push_sql(" WHERE token_hash = ");
        out.push_bind_param::<Text, _>(self.token_hash)?;
        out.push_sql(" AND spent_at IS NULL AND expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for Spend<'_> {}

/// Forgets the sealed successors of a session's tokens spent in `[since, before)`.
pub struct WipeSealed<'a> {
    /// The session.
    pub session_id: &'a str,
    /// Spent at or after this: see [`super::sessions::wipe_since`].
    pub since: NaiveDateTime,
    /// Spent before this.
    pub before: NaiveDateTime,
}

impl QueryId for WipeSealed<'_> {
    type QueryId = WipeSealed<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for WipeSealed<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE refresh_tokens SET successor_sealed = NULL WHERE session_id = ");
        out.push_bind_param::<Text, _>(self.session_id)?;
        out.push_sql(" AND spent_at >= ");
        out.push_bind_param::<Timestamp, _>(&self.since)?;
        out.push_sql(" AND spent_at < ");
        out.push_bind_param::<Timestamp, _>(&self.before)?;
        out.push_sql(" AND successor_sealed IS NOT NULL");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for WipeSealed<'_> {}

/// Common rotations, any number, as one PostgreSQL statement: see
/// [`super::sessions::rotate_in_one_statement`]. One array per input, an element per
/// rotation; `n` in the answer is the rotation's position, from 1.
pub struct RotateMany<'a> {
    /// The presented tokens' hashes.
    pub token_hashes: &'a [String],
    /// Each rotation's now.
    pub nows: &'a [NaiveDateTime],
    /// The successors, sealed.
    pub sealed: &'a [Vec<u8>],
    /// The successors' hashes.
    pub successor_hashes: &'a [String],
    /// The successors' idle expiries before the sessions' ends cap them.
    pub successor_expires_at: &'a [NaiveDateTime],
    /// Seals of tokens spent before these are wiped.
    pub wipe_before: &'a [NaiveDateTime],
}

impl QueryId for RotateMany<'_> {
    type QueryId = RotateMany<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RotateMany<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl QueryFragment<diesel::pg::Pg> for RotateMany<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::Array;
        out.push_sql("WITH i AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(self.token_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.nows)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Binary>, _>(self.sealed)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(self.successor_hashes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.successor_expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.wipe_before)?;
        // The wipe's lower bound is `wipe_since` written in SQL (`now - wipe_before` is
        // the leeway).
        //
        // Each lookup is a lateral subquery fenced by OFFSET 0, so that every rotation
        // is found through the indexes from its own token: left free, the planner read
        // the whole sessions table for every group (it guesses 10 rows for an unnest).
        out.push_sql(
            ") WITH ORDINALITY AS i(token_hash, now, sealed, successor_hash, \
             successor_expires_at, wipe_before, n)\
             ), c AS MATERIALIZED (SELECT i.*, r.generation, r.r_created_at, \
             LEAST(i.successor_expires_at, s.s_expires_at) AS next_expires_at, s.*, u.* \
             FROM i \
             CROSS JOIN LATERAL (SELECT r.generation, r.session_id, \
             r.created_at AS r_created_at FROM refresh_tokens r \
             WHERE r.token_hash = i.token_hash AND r.spent_at IS NULL \
             AND r.expires_at > i.now OFFSET 0) r \
             CROSS JOIN LATERAL (SELECT s.id AS s_id, s.user_id AS s_user_id, \
             s.client_id AS s_client_id, s.scope AS s_scope, s.created_at AS s_created_at, \
             s.expires_at AS s_expires_at, s.legacy_client AS s_legacy_client \
             FROM sessions s WHERE s.id = r.session_id AND s.revoked_at IS NULL \
             AND s.expires_at > i.now AND (s.client_id IS NULL OR s.legacy_client) \
             OFFSET 0) s \
             CROSS JOIN LATERAL (SELECT u.username AS u_username, \
             u.username_key AS u_username_key, u.password_hash AS u_password_hash, \
             u.roles AS u_roles, u.scopes AS u_scopes, u.claims AS u_claims, \
             u.created_at AS u_created_at, u.updated_at AS u_updated_at, \
             u.tenant_id AS u_tenant_id FROM users u WHERE u.id = s.s_user_id AND u.enabled \
             AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = u.tenant_id AND t.enabled) \
             OFFSET 0) u\
             ), spent AS (UPDATE refresh_tokens r SET spent_at = c.now, \
             successor_sealed = c.sealed FROM c \
             WHERE r.token_hash = c.token_hash AND r.spent_at IS NULL AND r.expires_at > c.now \
             RETURNING c.*\
             ), successor AS (INSERT INTO refresh_tokens \
             (token_hash, session_id, generation, created_at, expires_at) \
             SELECT successor_hash, s_id, generation + 1, now, next_expires_at FROM spent\
             ), wiped AS (UPDATE refresh_tokens w SET successor_sealed = NULL FROM spent p \
             WHERE w.session_id = p.s_id AND w.spent_at < p.wipe_before \
             AND w.spent_at >= p.r_created_at - (p.now - p.wipe_before) \
             AND w.successor_sealed IS NOT NULL) \
             SELECT * FROM spent",
        );
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for RotateMany<'_> {}
