//! The revocation list's short-lived side: in Redis ([`RedisList`], one hash and its
//! change channel, with this instance's mirror) or in this process ([`MemoryList`], the
//! embedded default and the mirror's twin). The durable record and the rules of a check
//! are in `crate::revocation`.

mod memory;
mod redis;

pub use self::memory::MemoryList;
pub use self::redis::{LEASE, RedisList};

/// An entry as the lists keep it: until when it holds, and (for users) the cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Until when (seconds since the epoch) the entry holds.
    pub expires_at: i64,
    /// For a user or tenant: tokens issued before this second are revoked.
    pub cutoff: i64,
}

impl Held {
    /// Two records of one subject: the later expiry and the later cut-off win.
    pub fn merge(self, other: Held) -> Held {
        Held {
            expires_at: self.expires_at.max(other.expires_at),
            cutoff: self.cutoff.max(other.cutoff),
        }
    }
}

/// Milliseconds since a moment of this process (monotonic: a paused process or a clock
/// step does not move it backwards).
#[derive(Debug, Clone, Copy)]
pub struct Monotonic(std::time::Instant);

impl Default for Monotonic {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Monotonic {
    /// Milliseconds from then to `at`.
    pub fn ms(self, at: std::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0).as_millis()).unwrap_or(u64::MAX)
    }
}
