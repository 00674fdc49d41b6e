//! The in-memory revocation list (one process; the database keeps the durable record).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Revocation, Revoked, TokenIds};

/// Entries keyed like the Redis keys, with their expiry and (for users) the cut-off.
#[derive(Default)]
pub struct MemoryList {
    entries: Mutex<HashMap<String, (i64, DateTime<Utc>)>>,
}

fn key(kind: &str, subject: &str) -> String {
    format!("{kind}:{subject}")
}

impl MemoryList {
    pub(super) fn insert(&self, entries: &[(Revocation, Duration)], now: DateTime<Utc>) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (entry, ttl) in entries {
            let expires_at = now + TimeDelta::from_std(*ttl).unwrap_or(TimeDelta::MAX);
            let k = key(entry.kind(), entry.subject());
            let cutoff = entry.cutoff();
            // A later cut-off wins over an earlier one.
            let keep_existing = map
                .get(&k)
                .is_some_and(|(c, exp)| *c > cutoff && *exp > now);
            if !keep_existing {
                map.insert(k, (cutoff, expires_at));
            }
        }
    }

    pub(super) fn check(&self, ids: TokenIds<'_>, now: DateTime<Utc>) -> Revoked {
        let map = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let live = |k: String| {
            map.get(&k)
                .filter(|(_, exp)| *exp > now)
                .map(|(cutoff, _)| *cutoff)
        };
        let revoked = live(key("jti", ids.jti)).is_some()
            || live(key("sid", ids.sid)).is_some()
            || live(key("sub", ids.sub)).is_some_and(|cutoff| ids.iat < cutoff);
        if revoked { Revoked::Yes } else { Revoked::No }
    }

    pub(super) fn purge(&self, now: DateTime<Utc>) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.retain(|_, (_, exp)| *exp > now);
    }
}
