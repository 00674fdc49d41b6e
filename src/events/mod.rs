//! Security events for resource servers: RFC 8417 Security Event Tokens, delivered by RFC
//! 8936 poll, so that a service holding live connections (WebSockets opened with tickets)
//! learns at once that a session, a user or a signing key is gone.
//!
//! Events are derived from revocations, in one place: [`Revocations::record`] (and
//! [`Revocations::write`], its grouped form) writes the events of the entries it records
//! into the outbox in the same transaction (so a change that rolls back emits nothing),
//! at a position that follows commit order (the revocation generation they are given,
//! then an index):
//!
//! | revocation entry | event | tenant |
//! |---|---|---|
//! | a session (`sid`) | `session-revoked`, with the session's user and why it ended | the user's |
//! | a user's cut-off (`sub`) | `account-disabled` | the user's |
//! | a withdrawn signing key (`kid`) | `key-withdrawn` | every tenant's |
//! | one access token (`jti`), a tenant's cut-off | none: no session or account ends by itself (a disabled tenant's sessions each get theirs) | |
//!
//! [`Revocations::record`]: crate::revocation::Revocations::record
//! [`Revocations::write`]: crate::revocation::Revocations::write

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::keys::Keyring;
use crate::model::Scope;
use crate::principal::{Authenticator, Presented, Principal};
use crate::revocation::{Listed, Revocation};
use crate::store::events::{self as store, EventRow, Position};
use crate::store::{Db, DbConnection, StoreError, write_transaction};

/// CAEP: a session was revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// RISC: an account was disabled (disabled, deleted, or logged out everywhere).
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// Tokenmint: a signing key was withdrawn; everything it signed is refused.
pub const KEY_WITHDRAWN: &str = "urn:tokenmint:event:key-withdrawn";

/// The JWS `typ` of a SET (RFC 8417 section 2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// The longest a poll waits for an event (RFC 8936 long polling).
pub const LONG_POLL: Duration = Duration::from_secs(30);

/// How often a waiting poll looks for new events.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// The most events one poll answers, and how many when the poller does not say.
const MAX_EVENTS: u32 = 1000;
const DEFAULT_EVENTS: u32 = 100;

/// The events of `entries`, read in the transaction that records them (before it deletes
/// what they name), for [`emit`] once the transaction has its generation. See the
/// module's table.
pub fn prepare(
    conn: &mut DbConnection,
    entries: &[Listed],
    now: DateTime<Utc>,
) -> Result<Vec<EventRow>, StoreError> {
    let sids: Vec<String> = entries
        .iter()
        .filter_map(|(entry, _)| match entry {
            Revocation::Session { sid } => Some(sid.clone()),
            _ => None,
        })
        .collect();
    let subs: Vec<String> = entries
        .iter()
        .filter_map(|(entry, _)| match entry {
            Revocation::User { sub, .. } => Some(sub.clone()),
            _ => None,
        })
        .collect();
    let sessions: HashMap<String, store::SessionOwner> = store::session_owners(conn, &sids)?
        .into_iter()
        .map(|owner| (owner.id.clone(), owner))
        .collect();
    let users: HashMap<String, String> = store::user_tenants(conn, &subs)?.into_iter().collect();
    let at = now.timestamp();
    let mut rows = Vec::new();
    let mut push = |tenant: Option<&str>, event_type: &str, payload: Value| {
        rows.push(EventRow {
            generation: 0,
            idx: i32::try_from(rows.len()).unwrap_or(i32::MAX),
            tenant_id: tenant.map(str::to_owned),
            event_type: event_type.to_owned(),
            payload: payload.to_string(),
            created_at: now.naive_utc(),
        });
    };
    for (entry, _) in entries {
        match entry {
            Revocation::Session { sid } => {
                if let Some(owner) = sessions.get(sid) {
                    push(
                        Some(&owner.tenant_id),
                        SESSION_REVOKED,
                        json!({
                            "subject": {"format": "opaque", "id": sid},
                            "sub": owner.user_id,
                            "tenant_id": owner.tenant_id,
                            "reason": owner.reason.as_deref().unwrap_or("revoked"),
                            "event_timestamp": at,
                        }),
                    );
                }
            }
            Revocation::User { sub, .. } => {
                if let Some(tenant) = users.get(sub) {
                    push(
                        Some(tenant),
                        ACCOUNT_DISABLED,
                        json!({"sub": sub, "tenant_id": tenant, "event_timestamp": at}),
                    );
                }
            }
            Revocation::Key { kid } => {
                push(
                    None,
                    KEY_WITHDRAWN,
                    json!({"kid": kid, "event_timestamp": at}),
                );
            }
            Revocation::Token { .. } | Revocation::Tenant { .. } => {}
        }
    }
    Ok(rows)
}

/// Writes prepared events into the outbox at the generation of the transaction that
/// recorded their revocations.
pub fn emit(
    conn: &mut DbConnection,
    generation: i64,
    mut events: Vec<EventRow>,
) -> Result<(), StoreError> {
    for event in &mut events {
        event.generation = generation;
    }
    store::insert(conn, &events)
}

/// A poll (RFC 8936 section 2.4).
#[derive(Debug, Clone, Default)]
pub struct PollRequest {
    /// SETs the poller processed (`ack`), or failed to and will not take again (`setErrs`).
    pub acknowledged: Vec<String>,
    /// At most this many SETs (`maxEvents`; 0: only acknowledge).
    pub max_events: Option<u32>,
    /// Answer at once, even with nothing (`returnImmediately`); else wait up to 30 s.
    pub return_immediately: bool,
}

/// The SETs of a poll, in order, and whether more are waiting.
#[derive(Debug, Clone)]
pub struct PollAnswer {
    /// (jti, SET), in the order the events happened.
    pub sets: Vec<(String, String)>,
    /// More events are waiting than were answered.
    pub more_available: bool,
}

/// The claims of a SET (RFC 8417 section 2.2).
#[derive(Serialize)]
struct SetClaims<'a> {
    iss: &'a str,
    iat: i64,
    jti: String,
    aud: String,
    events: serde_json::Map<String, Value>,
}

/// A poller: an API key with scope `events`, seeing its tenant's events (`default`'s:
/// every tenant's) emitted since it was created.
struct Poller {
    key_id: String,
    tenant: Option<String>,
    since: chrono::NaiveDateTime,
}

/// The SET transmitter (RFC 8936 poll).
pub struct Events {
    db: Db,
    keyring: Arc<Keyring>,
    authenticator: Arc<Authenticator>,
    issuer: String,
    retention: Duration,
}

/// A SET's `jti`: its outbox position.
fn jti(position: Position) -> String {
    format!("{}-{}", position.0, position.1)
}

fn position(jti: &str) -> Option<Position> {
    let (generation, idx) = jti.split_once('-')?;
    Some((generation.parse().ok()?, idx.parse().ok()?))
}

impl Events {
    /// The transmitter.
    pub fn new(
        db: Db,
        keyring: Arc<Keyring>,
        authenticator: Arc<Authenticator>,
        issuer: String,
        retention: Duration,
    ) -> Self {
        Self {
            db,
            keyring,
            authenticator,
            issuer,
            retention,
        }
    }

    /// The use case of `POST /api/events/poll`: by an API key with scope `events`,
    /// acknowledges what the poller says it processed, then answers the events after its
    /// cursor that it has not acknowledged, oldest first, as SETs signed by the current
    /// key; with none waiting, waits up to 30 s for one (unless `return_immediately`).
    /// Delivered until acknowledged (at least once), from any instance, across restarts.
    pub async fn poll(
        &self,
        presented: Presented,
        ip: Option<String>,
        request: PollRequest,
        now: DateTime<Utc>,
    ) -> Result<PollAnswer, Error> {
        let caller = self.authenticator.authenticate(presented, ip, now).await?;
        let Principal::ApiKey(key) = &caller.principal else {
            return Err(Error::Forbidden(
                "polling security events needs an API key with scope `events`",
            ));
        };
        if !Scope::held(&key.key.scopes, Scope::EVENTS) {
            return Err(Error::Forbidden(
                "polling security events needs an API key with scope `events`",
            ));
        }
        let poller = Arc::new(Poller {
            key_id: key.key.id.to_string(),
            tenant: (!key.key.tenant.is_default()).then(|| key.key.tenant.as_str().to_owned()),
            since: key.key.created_at.naive_utc(),
        });
        let acknowledged: Vec<Position> = request
            .acknowledged
            .iter()
            .filter_map(|j| position(j))
            .collect();
        let max = request.max_events.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
        let deadline = tokio::time::Instant::now()
            + if request.return_immediately || max == 0 {
                Duration::ZERO
            } else {
                LONG_POLL
            };
        let mut taken = self.take(poller.clone(), acknowledged, max).await?;
        // Waiting reads only (no write transaction, no lock), until an event comes.
        while taken.rows.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until((tokio::time::Instant::now() + LOOK_EVERY).min(deadline))
                .await;
            if self.waiting(poller.clone(), &taken).await? {
                taken = self.take(poller.clone(), Vec::new(), max).await?;
            }
        }
        let Taken { rows, more, .. } = taken;
        let mut sets = Vec::with_capacity(rows.len());
        for row in rows {
            let at = (row.generation, row.idx);
            let payload: Value = serde_json::from_str(&row.payload).map_err(Error::internal)?;
            let mut events = serde_json::Map::new();
            events.insert(row.event_type, payload);
            let claims = SetClaims {
                iss: &self.issuer,
                iat: row.created_at.and_utc().timestamp(),
                jti: jti(at),
                aud: poller.key_id.clone(),
                events,
            };
            let (set, _kid) = self.keyring.sign_set(&claims)?;
            sets.push((claims.jti, set));
        }
        Ok(PollAnswer {
            sets,
            more_available: more,
        })
    }

    /// One transaction: records the acknowledgements, moves the cursor over every
    /// acknowledged event at its head, and reads up to `max` unacknowledged events after
    /// it (and whether there are more).
    async fn take(
        &self,
        poller: Arc<Poller>,
        acknowledged: Vec<Position>,
        max: u32,
    ) -> Result<Taken, Error> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| take_tx(conn, &poller, &acknowledged, max))
            })
            .await
    }

    /// Whether an event the poller has not acknowledged came after what `taken` saw.
    async fn waiting(&self, poller: Arc<Poller>, taken: &Taken) -> Result<bool, Error> {
        let (cursor, acked) = (taken.cursor, taken.acked.clone());
        let limit = i64::try_from(acked.len()).unwrap_or(i64::MAX) + 1;
        let page = self
            .db
            .run(move |conn| {
                store::after(conn, cursor, poller.since, poller.tenant.as_deref(), limit)
            })
            .await?;
        Ok(page.iter().any(|e| !acked.contains(&(e.generation, e.idx))))
    }

    /// Drops events past the retention.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let before =
            now - chrono::TimeDelta::from_std(self.retention).unwrap_or(chrono::TimeDelta::MAX);
        let before = before.naive_utc();
        Ok(self.db.run(move |conn| store::purge(conn, before)).await?)
    }
}

/// What one [`take_tx`] found: the events to answer, whether more wait, and the poller's
/// position afterwards (its cursor, and what it acknowledged beyond it).
struct Taken {
    rows: Vec<EventRow>,
    more: bool,
    cursor: Position,
    acked: HashSet<Position>,
}

fn take_tx(
    conn: &mut DbConnection,
    poller: &Poller,
    acknowledged: &[Position],
    max: u32,
) -> Result<Taken, Error> {
    if !store::lock_key(conn, &poller.key_id)? {
        return Err(Error::NotFound("API key"));
    }
    let mut cursor = store::cursor(conn, &poller.key_id)?.unwrap_or((0, -1));
    let stored = store::acks(conn, &poller.key_id)?;
    let mut acked: HashSet<Position> = stored.iter().copied().collect();
    acked.extend(acknowledged.iter().copied().filter(|p| *p > cursor));
    let changed = acked.len() != stored.len();
    let tenant = poller.tenant.as_deref();
    // Over the acknowledged events at the head, in pages.
    let mut moved = false;
    loop {
        let page = store::after(conn, cursor, poller.since, tenant, 256)?;
        let mut advanced = 0;
        for event in &page {
            if !acked.remove(&(event.generation, event.idx)) {
                break;
            }
            cursor = (event.generation, event.idx);
            advanced += 1;
        }
        moved |= advanced > 0;
        if advanced < 256 || page.len() < 256 {
            break;
        }
    }
    acked.retain(|p| *p > cursor);
    if moved {
        store::set_cursor(conn, &poller.key_id, cursor)?;
    }
    if moved || changed {
        let mut kept: Vec<Position> = acked.iter().copied().collect();
        kept.sort_unstable();
        store::set_acks(conn, &poller.key_id, &kept)?;
    }
    if max == 0 {
        return Ok(Taken {
            rows: Vec::new(),
            more: false,
            cursor,
            acked,
        });
    }
    // Unacknowledged events after the cursor: at most `max`, and one more to tell.
    let want = usize::try_from(max).unwrap_or(usize::MAX);
    let page = store::after(
        conn,
        cursor,
        poller.since,
        tenant,
        i64::from(max) + i64::try_from(acked.len()).unwrap_or(i64::MAX) + 1,
    )?;
    let mut pending: Vec<EventRow> = page
        .into_iter()
        .filter(|e| !acked.contains(&(e.generation, e.idx)))
        .collect();
    let more = pending.len() > want;
    pending.truncate(want);
    Ok(Taken {
        rows: pending,
        more,
        cursor,
        acked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_its_position_and_reads_back() {
        assert_eq!(jti((42, 3)), "42-3");
        assert_eq!(position("42-3"), Some((42, 3)));
        for bad in ["", "42", "42-", "-3", "a-b", "42-3-1", "1.5-2"] {
            assert_eq!(position(bad), None, "{bad:?}");
        }
    }
}
