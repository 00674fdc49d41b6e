//! DPoP proofs seen: each proof is accepted once per key, method and URL, on any
//! instance, for as long as it could be accepted at all. In Redis, `SET NX PX` on a hash of
//! the four; without Redis (the embedded default, one instance), a bounded map in memory.
//! Redis unreachable: an error (503), never a guess.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::{Keys, LazyRedis};
use crate::error::Error;

/// How many proofs the memory twin remembers at most (about 100 bytes each). Past it, new
/// proofs are refused as busy until old ones expire: never a replay let through.
pub const MEMORY_CAPACITY: usize = 1 << 20;

/// Where proofs are remembered.
pub enum DpopReplay {
    /// `SET <dpop_proof> 1 NX PX <remaining>`.
    Redis {
        /// The connection.
        redis: Arc<LazyRedis>,
        /// The key names.
        keys: Keys,
    },
    /// This process's memory.
    Memory(Mutex<Seen>),
}

/// The memory twin: each proof's digest until its expiry, in insertion order (proofs
/// expire at most `PAST + FUTURE` seconds after they are seen, so the front expires first
/// but for a minute's jitter, which only keeps an entry a little longer).
#[derive(Default)]
pub struct Seen {
    until: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
}

impl Seen {
    fn first_use(&mut self, digest: [u8; 32], expires_at: i64, now: i64) -> Result<bool, Error> {
        while let Some(&(front, until)) = self.order.front() {
            if until >= now {
                break;
            }
            self.order.pop_front();
            if self.until.get(&front) == Some(&until) {
                self.until.remove(&front);
            }
        }
        if self.until.get(&digest).is_some_and(|&until| until >= now) {
            return Ok(false);
        }
        if self.until.len() >= MEMORY_CAPACITY {
            return Err(Error::Busy {
                retry_after_secs: 60,
            });
        }
        self.until.insert(digest, expires_at);
        self.order.push_back((digest, expires_at));
        Ok(true)
    }
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

impl DpopReplay {
    /// Remembered in memory.
    pub fn memory() -> Self {
        Self::Memory(Mutex::new(Seen::default()))
    }

    /// Marks the proof named by `parts` (thumbprint, method, URL, `jti`) seen until
    /// `expires_at` (seconds); `false` if it was seen before.
    pub async fn first_use(
        &self,
        parts: &[&str],
        expires_at: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let digest = digest(parts);
        match self {
            Self::Redis { redis, keys } => {
                let ttl_ms = (expires_at - now.timestamp()).max(0) * 1000 + 1000;
                let key = keys
                    .dpop_proof(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest));
                redis.set_once(key, ttl_ms).await.map_err(Error::redis)
            }
            Self::Memory(seen) => seen
                .lock()
                .map_err(|_| Error::internal("the DPoP replay memory is poisoned"))?
                .first_use(digest, expires_at, now.timestamp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn both() -> Vec<DpopReplay> {
        let mut all = vec![DpopReplay::memory()];
        if let Some(url) = super::super::test_redis_url() {
            let prefix = format!("test-{}:", uuid::Uuid::new_v4());
            all.push(DpopReplay::Redis {
                redis: Arc::new(LazyRedis::new(&url, None).unwrap()),
                keys: Keys::new(prefix),
            });
        }
        all
    }

    #[tokio::test]
    async fn a_proof_is_accepted_once_per_key_method_and_url_on_both_twins() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for replay in both().await {
            let at = now.timestamp() + 300;
            assert!(
                replay
                    .first_use(&["k", "GET", "u", "j"], at, now)
                    .await
                    .unwrap()
            );
            assert!(
                !replay
                    .first_use(&["k", "GET", "u", "j"], at, now)
                    .await
                    .unwrap()
            );
            for other in [
                ["k2", "GET", "u", "j"],
                ["k", "POST", "u", "j"],
                ["k", "GET", "u2", "j"],
                ["k", "GET", "u", "j2"],
            ] {
                assert!(
                    replay.first_use(&other, at, now).await.unwrap(),
                    "{other:?}"
                );
            }
            // The parts are length-prefixed: shifting a boundary is another proof.
            assert!(
                replay
                    .first_use(&["kG", "ET", "u", "j"], at, now)
                    .await
                    .unwrap()
            );
        }
    }

    #[test]
    fn the_memory_twin_forgets_expired_proofs_and_refuses_when_full() {
        let mut seen = Seen::default();
        assert!(seen.first_use([1; 32], 100, 0).unwrap());
        assert!(
            !seen.first_use([1; 32], 100, 100).unwrap(),
            "until its expiry"
        );
        assert!(seen.first_use([1; 32], 300, 101).unwrap(), "then forgotten");
        assert_eq!(seen.until.len(), 1);
        assert_eq!(seen.order.len(), 1);
    }
}
