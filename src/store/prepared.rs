//! The statements of the refresh path written out, each its own type, so that diesel
//! prepares each once per connection and keeps it. Diesel never keeps an `UPDATE` or a
//! `sql_query`: it parses and plans them again at every execution, and on PostgreSQL
//! prepares them in a round trip of their own.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

/// A rotation: the session's head moves from `generation` to the next, issued `now`, if
/// the session is still live and still at `generation`. The one write of a rotation.
pub struct Advance<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The head's generation as the caller read it.
    pub generation: i64,
    /// Now: the new head's issue time.
    pub now: NaiveDateTime,
    /// The client address, kept as the session's `last_ip` (none: the last one stays).
    pub ip: Option<&'a str>,
}

impl QueryId for Advance<'_> {
    type QueryId = Advance<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<'a, DB> QueryFragment<DB> for Advance<'a>
where
    DB: Backend
        + HasSqlType<Text>
        + HasSqlType<Nullable<Text>>
        + HasSqlType<Timestamp>
        + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    Option<&'a str>: ToSql<Nullable<Text>, DB>,
    i64: ToSql<BigInt, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE sessions SET generation = generation + 1, refreshed_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", last_ip = COALESCE(");
        out.push_bind_param::<Nullable<Text>, _>(&self.ip)?;
        out.push_sql(", last_ip) WHERE id = ");
        out.push_bind_param::<Text, _>(self.session_id)?;
        out.push_sql(" AND generation = ");
        out.push_bind_param::<BigInt, _>(&self.generation)?;
        out.push_sql(" AND revoked_at IS NULL");
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for Advance<'_> {}

/// Rotations of first-party sessions' heads, any number, as one PostgreSQL statement:
/// see [`super::sessions::rotate_in_one_statement`]. One array per input, an element per
/// rotation; `n` in the answer is the rotation's position, from 1.
pub struct RotateMany<'a> {
    /// The sessions.
    pub session_ids: &'a [String],
    /// The presented heads' generations.
    pub generations: &'a [i64],
    /// Each rotation's now.
    pub nows: &'a [NaiveDateTime],
    /// The head must have been issued after this ([`crate::sessions::rules::RotationWindow`]).
    pub idle_after: &'a [NaiveDateTime],
    /// ... and no later than this.
    pub rotate_until: &'a [NaiveDateTime],
    /// The client addresses (each the session's `last_ip` if given).
    pub ips: &'a [Option<String>],
    /// The presenters' DPoP key thumbprints (a bound session rotates only with its key).
    pub jkts: &'a [Option<String>],
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
        out.push_bind_param::<Array<Text>, _>(self.session_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(self.generations)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.nows)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.idle_after)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(self.rotate_until)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(self.ips)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(self.jkts)?;
        // The `Rotate` row of the rules, and only it: the head, live, first-party, its
        // user and tenant enabled, issued in the rotation window, presented with the key
        // the session is bound to if it is. Two rotations of one
        // session in a group: the session joins both, is updated once and answered once
        // (the other is answered with the session as it was, below).
        out.push_sql(
            ") WITH ORDINALITY AS i(session_id, generation, now, idle_after, rotate_until, ip, jkt, n)\
             ), rotated AS (UPDATE sessions s SET generation = s.generation + 1, \
             refreshed_at = i.now, last_ip = COALESCE(i.ip, s.last_ip) FROM i \
             WHERE s.id = ANY(",
        );
        // The sessions by their key: without it the planner may read the whole table and
        // check every session's user before joining (3 ms a group on 257 sessions here,
        // and growing with the table).
        out.push_bind_param::<Array<Text>, _>(self.session_ids)?;
        out.push_sql(
            ") AND s.id = i.session_id AND s.generation = i.generation \
             AND s.refreshed_at > i.idle_after AND s.refreshed_at <= i.rotate_until \
             AND s.expires_at > i.now AND s.revoked_at IS NULL \
             AND (s.client_id IS NULL OR s.legacy_client) \
             AND (s.dpop_jkt IS NULL OR s.dpop_jkt = i.jkt) \
             AND EXISTS (SELECT 1 FROM users u JOIN tenants t ON t.id = u.tenant_id \
             WHERE u.id = s.user_id AND u.enabled AND t.enabled) \
             RETURNING i.n, s.*), \
             unrotated AS MATERIALIZED (SELECT i.n, i.session_id FROM i \
             WHERE NOT EXISTS (SELECT 1 FROM rotated r WHERE r.n = i.n)) \
             SELECT true AS rotated, r.n, ",
        );
        // The rotated: the session after the update. The others (a young head, a
        // predecessor, a refusal, a lost race): the session, its user and tenant as they
        // were when the statement began (a statement's parts share one snapshot), for a
        // decision that writes nothing, in the same round trip.
        push_columns(&mut out, "r", "s", SESSION_COLUMNS);
        out.push_sql(", ");
        push_columns(&mut out, "u", "u", USER_COLUMNS);
        out.push_sql(
            ", true AS t_enabled FROM rotated r JOIN users u ON u.id = r.user_id \
             UNION ALL SELECT false, p.n, ",
        );
        push_columns(&mut out, "s", "s", SESSION_COLUMNS);
        out.push_sql(", ");
        push_columns(&mut out, "u", "u", USER_COLUMNS);
        out.push_sql(
            ", t.enabled FROM unrotated p JOIN sessions s ON s.id = p.session_id \
             JOIN users u ON u.id = s.user_id JOIN tenants t ON t.id = u.tenant_id",
        );
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for RotateMany<'_> {}

/// The columns of `sessions` in [`RotateMany`]'s answer, each as `s_<name>`.
const SESSION_COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "client_id",
    "scope",
    "created_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
    "legacy_client",
    "generation",
    "refreshed_at",
    "user_agent",
    "ip",
    "last_ip",
    "dpop_jkt",
];

/// The columns of `users` in [`RotateMany`]'s answer (but `id`: the session's
/// `user_id`), each as `u_<name>`.
const USER_COLUMNS: &[&str] = &[
    "username",
    "username_key",
    "password_hash",
    "roles",
    "scopes",
    "claims",
    "enabled",
    "created_at",
    "updated_at",
    "tenant_id",
    "device_epoch",
];

/// `table.a AS prefix_a, table.b AS prefix_b, ...`
fn push_columns(
    out: &mut AstPass<'_, '_, diesel::pg::Pg>,
    table: &str,
    prefix: &str,
    columns: &[&str],
) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        for part in [table, ".", column, " AS ", prefix, "_", column] {
            out.push_sql(part);
        }
    }
}
