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

/// Forgets the sealed successors of a session's tokens spent before `before`.
pub struct WipeSealed<'a> {
    /// The session.
    pub session_id: &'a str,
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
        out.push_sql(" AND spent_at < ");
        out.push_bind_param::<Timestamp, _>(&self.before)?;
        out.push_sql(" AND successor_sealed IS NOT NULL");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for WipeSealed<'_> {}

/// The common rotation as one PostgreSQL statement: see
/// [`super::sessions::rotate_in_one_statement`].
pub struct RotateOnce<'a> {
    /// The presented token's hash.
    pub token_hash: &'a str,
    /// Now.
    pub now: NaiveDateTime,
    /// The successor, sealed.
    pub sealed: &'a [u8],
    /// The successor's hash.
    pub successor_hash: &'a str,
    /// The successor's idle expiry before the session's end caps it.
    pub successor_expires_at: NaiveDateTime,
    /// Seals of tokens spent before this are wiped.
    pub wipe_before: NaiveDateTime,
}

impl QueryId for RotateOnce<'_> {
    type QueryId = RotateOnce<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RotateOnce<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl QueryFragment<diesel::pg::Pg> for RotateOnce<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("WITH spent AS (UPDATE refresh_tokens r SET spent_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", successor_sealed = ");
        out.push_bind_param::<Binary, _>(self.sealed)?;
        out.push_sql(
            " FROM sessions s, users u, tenants t \
             WHERE r.token_hash = ",
        );
        out.push_bind_param::<Text, _>(self.token_hash)?;
        out.push_sql(" AND r.spent_at IS NULL AND r.expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" AND s.id = r.session_id AND s.revoked_at IS NULL AND s.expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(
            " AND (s.client_id IS NULL OR s.legacy_client) \
             AND u.id = s.user_id AND u.enabled AND t.id = u.tenant_id AND t.enabled \
             RETURNING r.generation, LEAST(",
        );
        out.push_bind_param::<Timestamp, _>(&self.successor_expires_at)?;
        out.push_sql(
            ", s.expires_at) AS next_expires_at, \
             s.id AS s_id, s.user_id AS s_user_id, s.client_id AS s_client_id, \
             s.scope AS s_scope, s.created_at AS s_created_at, s.expires_at AS s_expires_at, \
             s.legacy_client AS s_legacy_client, \
             u.username AS u_username, u.username_key AS u_username_key, \
             u.password_hash AS u_password_hash, u.roles AS u_roles, u.scopes AS u_scopes, \
             u.claims AS u_claims, u.created_at AS u_created_at, \
             u.updated_at AS u_updated_at, u.tenant_id AS u_tenant_id\
             ), successor AS (INSERT INTO refresh_tokens \
             (token_hash, session_id, generation, created_at, expires_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(self.successor_hash)?;
        out.push_sql(", s_id, generation + 1, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(
            ", next_expires_at FROM spent\
             ), wiped AS (UPDATE refresh_tokens SET successor_sealed = NULL \
             WHERE session_id = (SELECT s_id FROM spent) AND spent_at < ",
        );
        out.push_bind_param::<Timestamp, _>(&self.wipe_before)?;
        out.push_sql(" AND successor_sealed IS NOT NULL) SELECT * FROM spent");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for RotateOnce<'_> {}
