//! Token and session lifetimes, and the one answer to "until when can a token issued
//! now still be accepted somewhere": revocation entries, user cut-offs and retiring
//! signing keys all last exactly that long.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The lifetimes in force, built once from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Access token lifetime (`exp - iat`).
    pub access_ttl: Duration,
    /// Idle lifetime of a refresh token.
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a session.
    pub session_ttl: Duration,
    /// Window in which a spent refresh token still converges instead of counting as reuse.
    pub reuse_leeway: Duration,
    /// Tolerance between instances' clocks on `nbf`/`iat`.
    pub clock_skew: Duration,
}

/// A `std` duration as a chrono delta; durations are bounded at start, so this never saturates in practice.
pub fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Lifetimes {
    /// How long after its issue an access token may still be accepted by some instance:
    /// its lifetime, plus the skew by which the issuing instance's clock may run ahead
    /// (its `exp` is then that much later in true time), plus a second for `exp` being
    /// whole seconds.
    pub fn access_horizon(&self) -> TimeDelta {
        delta(self.access_ttl) + delta(self.clock_skew) + TimeDelta::seconds(1)
    }

    /// Until when an entry revoking every token issued up to `now` must stay listed.
    pub fn revocation_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.access_horizon()
    }

    /// Until when a revoked session must stay listed: until its last access token has
    /// expired, which is no later than the horizon after the session's own end.
    pub fn session_revocation_end(
        &self,
        session_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        session_end.min(now) + self.access_horizon()
    }

    /// Until when a revoked access token (by `jti`) must stay listed: its `exp`, but never
    /// past the horizon (a token that claims a later `exp` was not issued now, and the
    /// list must not keep it forever) and never before now.
    pub fn token_revocation_end(&self, exp: i64, now: DateTime<Utc>) -> DateTime<Utc> {
        let latest = self.revocation_end(now);
        DateTime::<Utc>::from_timestamp(exp, 0).map_or(latest, |exp| exp.clamp(now, latest))
    }

    /// When a session opened at `now` ends, whatever its refreshes.
    pub fn session_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + delta(self.session_ttl)
    }

    /// When a refresh token issued at `now` in a session ending at `session_end` expires.
    pub fn refresh_end(&self, now: DateTime<Utc>, session_end: DateTime<Utc>) -> DateTime<Utc> {
        (now + delta(self.refresh_ttl)).min(session_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            session_ttl: Duration::from_secs(7200),
            reuse_leeway: Duration::from_secs(5),
            clock_skew: Duration::from_secs(60),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_revocation_outlives_every_token_issued_before_it() {
        let l = lifetimes();
        assert_eq!(l.revocation_end(at(0)), at(900 + 60 + 1));
        assert_eq!(l.session_revocation_end(at(100), at(0)), at(961));
        assert_eq!(
            l.session_revocation_end(at(-500), at(0)),
            at(461),
            "an ended session"
        );
    }

    #[test]
    fn a_token_revocation_lasts_until_exp_clamped_to_the_horizon() {
        let l = lifetimes();
        let now = at(0);
        assert_eq!(l.token_revocation_end(now.timestamp() + 300, now), at(300));
        assert_eq!(l.token_revocation_end(i64::MAX, now), at(961), "absurd exp");
        assert_eq!(l.token_revocation_end(now.timestamp() - 10, now), now);
    }

    #[test]
    fn refresh_tokens_never_outlive_their_session() {
        let l = lifetimes();
        assert_eq!(l.refresh_end(at(0), at(7200)), at(3600));
        assert_eq!(l.refresh_end(at(6000), at(7200)), at(7200));
    }
}
