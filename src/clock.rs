//! Time is injected: domain code asks a `Clock`, so tests can move time without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // reason: the one place that reads the wall clock
    fn now(&self) -> DateTime<Utc> {
        // Microseconds: what PostgreSQL keeps, so a time read back equals the time written.
        Utc::now().trunc_subsecs(6)
    }
}

/// The wall clock shifted by an offset that tests can move forward.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    /// A clock that starts at the wall-clock time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_clock_moves_forward_by_the_given_amount() {
        let clock = ShiftedClock::new();
        let before = clock.now();
        clock.advance(std::time::Duration::from_secs(3600));
        let moved = clock.now() - before;
        assert!(moved >= TimeDelta::seconds(3600) && moved < TimeDelta::seconds(3660));
    }
}
