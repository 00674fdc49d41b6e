//! Short-lived state that every instance shares: in Redis when `TOKENMINT_REDIS_URL` is
//! set, else in this process (the embedded default, one instance). This module owns
//! every Redis key name ([`Keys`]), every script and each one's in-memory twin; use
//! cases see typed handles and never build a key or send a command themselves.
//!
//! | What | Key (after `TOKENMINT_REDIS_PREFIX`) | Scripts | In-memory twin | Used by |
//! |---|---|---|---|---|
//! | revocation list | `revocation-list` (hash), `revocation-list:changes` (channel) | merge, waiting, take-lease, purge | `MemoryList` | `revocation` |
//! | login counters | `ratelimit:login:<key>` | count, release, throttle | bounded map | `identity::rate_limit` |
//! | ticket marks | `ticket:<jti>` (`SET NX PX`) | none | the `ticket_redemptions` table | `tickets` |
//! | DPoP proofs seen | `dpop:<hash of key, method, URL, jti>` (`SET NX PX`) | none | bounded map | `dpop` |

mod connection;
pub mod dpop_replay;
pub mod login_counters;
pub mod revocation_list;
pub mod ticket_marks;

pub use self::connection::LazyRedis;

/// The Redis the twin tests run against: `TOKENMINT_TEST_REDIS_URL` when set and not
/// empty (set but unreachable is then a failure), else `None` and a "skipped" line.
#[cfg(test)]
pub(crate) fn test_redis_url() -> Option<String> {
    let url = std::env::var("TOKENMINT_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("skipped: TOKENMINT_TEST_REDIS_URL is not set");
    }
    url
}

/// Every Redis key Tokenmint uses, under one prefix (`TOKENMINT_REDIS_PREFIX`), so that
/// instances sharing a Redis with other applications stay in their own namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `tokenmint:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The revocation list's hash.
    pub fn revocation_list(&self) -> String {
        format!("{}revocation-list", self.prefix)
    }

    /// The channel that announces the revocation list's changes to the mirrors.
    pub fn revocation_changes(&self) -> String {
        format!("{}revocation-list:changes", self.prefix)
    }

    /// A login counter (`key`: `user:…`, `ip:…`, `device:…`, `delay:…`).
    pub fn login_counter(&self, key: &str) -> String {
        format!("{}ratelimit:login:{key}", self.prefix)
    }

    /// The mark of a redeemed ticket.
    pub fn ticket_mark(&self, jti: &str) -> String {
        format!("{}ticket:{jti}", self.prefix)
    }

    /// The mark of a DPoP proof seen (`digest`: of its key, method, URL and `jti`).
    pub fn dpop_proof(&self, digest: &str) -> String {
        format!("{}dpop:{digest}", self.prefix)
    }
}
