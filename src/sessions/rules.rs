//! The refresh rules, in one pure function: what a presented refresh token gets, from
//! the token's generation, the session's state, the time and the reuse leeway L.
//!
//! | presented | condition | outcome |
//! |---|---|---|
//! | any | presented by a client that may not use the session | `Refuse(Invalid)` |
//! | any | session revoked; user, client or tenant disabled | `Refuse(Revoked)` |
//! | any | past the session's absolute end | `Refuse(Expired)` |
//! | a generation the session never reached | | `Refuse(Invalid)` |
//! | the head | past its idle lifetime | `Refuse(Expired)` |
//! | the head | issued L or more ago | `Rotate` |
//! | the head | issued less than L ago | `Head`: the same head, a fresh access token |
//! | the head's predecessor | no more than L after it was spent | `Head` |
//! | any other spent token | | `Reuse`: the session is revoked |
//!
//! Time decides, not order: the predecessor was spent when the head was issued, so "no
//! more than L after it was spent" is "the head issued no more than L ago", and a head
//! that young is never rotated. So within L of a rotation the head and its predecessor
//! both lead to the head (tabs, a lost answer, a late response in a cookie jar), and any
//! spent token presented later is reuse: two holders of one chain are caught the first
//! time either presents a token more than L after the other's rotation spent it.
//!
//! Every path calls [`decide`]. The one shortcut, PostgreSQL's grouped statement, writes
//! only the `Rotate` row, with bounds from [`rotation_window`]; the sessions it does not
//! rotate it returns as they were, and [`decide`] answers them (`Head` and refusals) or
//! sends them the general way (anything that writes).

use chrono::{DateTime, Utc};

use crate::error::Refusal;
use crate::model::{Lifetimes, delta};

/// Whether the session may be refreshed at all, as far as who presents it and who it
/// belongs to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Live, and the presenter may use it.
    Live,
    /// Revoked, or its user, client or tenant is disabled.
    Ended,
    /// The presenter may not use it (another client's session, a confidential client's
    /// session at the first-party endpoint, a session bound to a DPoP key presented
    /// without a proof by it): as if the token were unknown.
    NotYours,
}

/// A session as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The head's generation.
    pub generation: i64,
    /// When the head was issued (= when its predecessor was spent).
    pub refreshed_at: DateTime<Utc>,
    /// The session's absolute end.
    pub expires_at: DateTime<Utc>,
    /// See [`Standing`].
    pub standing: Standing,
}

/// What a presented token gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new head (generation + 1, issued now); the presented token is spent.
    Rotate,
    /// The session's head as it is, with a fresh access token.
    Head,
    /// A spent token presented too late: the session is revoked.
    Reuse,
    /// Refused; nothing changes.
    Refuse(Refusal),
}

/// The rules: see the module doc. Of `lifetimes`, a head's idle lifetime
/// ([`Lifetimes::refresh_end`]) and the leeway L (`reuse_leeway`) count.
pub fn decide(
    presented: i64,
    session: &SessionState,
    now: DateTime<Utc>,
    lifetimes: &Lifetimes,
) -> Outcome {
    match session.standing {
        Standing::NotYours => return Outcome::Refuse(Refusal::Invalid),
        Standing::Ended => return Outcome::Refuse(Refusal::Revoked),
        Standing::Live => {}
    }
    if now >= session.expires_at {
        return Outcome::Refuse(Refusal::Expired);
    }
    let age = now - session.refreshed_at;
    let leeway = delta(lifetimes.reuse_leeway);
    let head_usable = now < lifetimes.refresh_end(session.refreshed_at, session.expires_at);
    if presented > session.generation {
        Outcome::Refuse(Refusal::Invalid)
    } else if presented == session.generation {
        if !head_usable {
            Outcome::Refuse(Refusal::Expired)
        } else if age >= leeway {
            Outcome::Rotate
        } else {
            Outcome::Head
        }
    } else if presented == session.generation - 1 && age <= leeway {
        if head_usable {
            Outcome::Head
        } else {
            Outcome::Refuse(Refusal::Expired)
        }
    } else {
        Outcome::Reuse
    }
}

/// The `Rotate` row as bounds on the head's issue time, for a statement that rotates a
/// live session's head in the database without reading it first: the head rotates now
/// exactly when `idle_after < refreshed_at <= rotate_until` (and `now` is before the
/// session's end). A property test holds this to [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationWindow {
    /// The head must have been issued after this (else it is idle-expired).
    pub idle_after: DateTime<Utc>,
    /// ... and no later than this (else it is younger than the leeway).
    pub rotate_until: DateTime<Utc>,
}

/// See [`RotationWindow`].
pub fn rotation_window(now: DateTime<Utc>, lifetimes: &Lifetimes) -> RotationWindow {
    RotationWindow {
        idle_after: now - delta(lifetimes.refresh_ttl),
        rotate_until: now - delta(lifetimes.reuse_leeway),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    /// An idle lifetime and a leeway, in seconds; the other lifetimes play no part.
    fn lifetimes(idle: u64, leeway: u64) -> Lifetimes {
        Lifetimes {
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(idle),
            session_ttl: Duration::from_secs(30 * 86_400),
            reuse_leeway: Duration::from_secs(leeway),
            clock_skew: Duration::from_secs(60),
        }
    }

    fn session(generation: i64, refreshed_at: i64, standing: Standing) -> SessionState {
        SessionState {
            generation,
            refreshed_at: at(refreshed_at),
            expires_at: at(100_000),
            standing,
        }
    }

    /// Every row of the contract's table, and its edges.
    #[test]
    fn every_row_of_the_table() {
        use Outcome::*;
        use Standing::*;
        let live = |g, t| session(g, t, Live);
        #[rustfmt::skip]
        let rows: &[(&str, i64, SessionState, i64, Outcome)] = &[
            // (row, presented generation, session, now, outcome)
            ("head issued L or more ago: rotates", 3, live(3, 0), 5, Rotate),
            ("head issued long ago: rotates", 3, live(3, 0), 3000, Rotate),
            ("head younger than L: the same head", 3, live(3, 0), 4, Head),
            ("head just issued: the same head", 3, live(3, 0), 0, Head),
            ("login's token right after login: the same head", 0, live(0, 0), 1, Head),
            ("predecessor at L after it was spent: the head", 2, live(3, 0), 5, Head),
            ("predecessor within L: the head", 2, live(3, 0), 1, Head),
            ("predecessor just after L: reuse", 2, live(3, 0), 6, Reuse),
            ("predecessor days later: reuse", 2, live(3, 0), 90_000, Reuse),
            ("older than the predecessor, within L: reuse", 1, live(3, 0), 1, Reuse),
            ("older than the predecessor, later: reuse", 0, live(3, 0), 600, Reuse),
            ("a generation never reached: unknown", 4, live(3, 0), 10, Refuse(Refusal::Invalid)),
            ("head past its idle lifetime: expired", 3, live(3, 0), 3600, Refuse(Refusal::Expired)),
            ("head just before its idle end: rotates", 3, live(3, 0), 3599, Rotate),
            ("past the session's end: expired", 3, live(3, 0), 100_000, Refuse(Refusal::Expired)),
            ("spent token past the session's end: expired", 1, live(3, 0), 100_000, Refuse(Refusal::Expired)),
            ("revoked session: revoked", 3, session(3, 0, Ended), 10, Refuse(Refusal::Revoked)),
            ("revoked session, spent token: revoked", 1, session(3, 0, Ended), 10, Refuse(Refusal::Revoked)),
            ("someone else's session: unknown", 3, session(3, 0, NotYours), 10, Refuse(Refusal::Invalid)),
        ];
        let w = lifetimes(3600, 5);
        for (row, presented, state, now, outcome) in rows {
            assert_eq!(decide(*presented, state, at(*now), &w), *outcome, "{row}");
        }
        // The session's end caps the head's idle lifetime.
        let capped = SessionState {
            expires_at: at(50),
            ..session(3, 0, Live)
        };
        assert_eq!(decide(3, &capped, at(49), &w), Outcome::Rotate);
        assert_eq!(
            decide(3, &capped, at(50), &w),
            Outcome::Refuse(Refusal::Expired)
        );
        // A leeway of zero: every presentation of the head rotates; the predecessor
        // leads to the head only at the very instant of the rotation.
        let strict = lifetimes(3600, 0);
        assert_eq!(decide(3, &live(3, 0), at(0), &strict), Outcome::Rotate);
        assert_eq!(decide(2, &live(3, 0), at(0), &strict), Outcome::Head);
        assert_eq!(decide(2, &live(3, 0), at(1), &strict), Outcome::Reuse);
    }

    fn arb_state() -> impl Strategy<Value = (i64, SessionState, i64, Lifetimes)> {
        (
            0i64..6,
            0i64..6,
            -100i64..100,
            0i64..300,
            prop_oneof![
                Just(Standing::Live),
                Just(Standing::Ended),
                Just(Standing::NotYours)
            ],
            0i64..200,
            0u64..20,
            1u64..200,
        )
            .prop_map(
                |(presented, generation, refreshed_at, ttl, standing, now, leeway, idle)| {
                    (
                        presented,
                        SessionState {
                            generation,
                            refreshed_at: at(refreshed_at),
                            expires_at: at(refreshed_at + ttl),
                            standing,
                        },
                        now,
                        lifetimes(idle, leeway),
                    )
                },
            )
    }

    proptest! {
        /// PostgreSQL's grouped statement rotates exactly what `decide` rotates.
        #[test]
        fn the_rotation_window_is_the_rotate_row((presented, state, now, w) in arb_state()) {
            let window = rotation_window(at(now), &w);
            let admitted = state.standing == Standing::Live
                && presented == state.generation
                && at(now) < state.expires_at
                && state.refreshed_at > window.idle_after
                && state.refreshed_at <= window.rotate_until;
            prop_assert_eq!(admitted, decide(presented, &state, at(now), &w) == Outcome::Rotate);
        }

        /// Time only ever moves a spent token towards reuse: once reuse, always reuse
        /// (until the session ends), whatever rotations follow.
        #[test]
        fn reuse_is_final((presented, state, now, w) in arb_state(), later in 0i64..100, rotations in 0i64..3) {
            if decide(presented, &state, at(now), &w) == Outcome::Reuse {
                let moved_on = SessionState {
                    generation: state.generation + rotations,
                    refreshed_at: if rotations > 0 { at(now + later) } else { state.refreshed_at },
                    ..state
                };
                let outcome = decide(presented, &moved_on, at(now + later), &w);
                prop_assert!(
                    matches!(outcome, Outcome::Reuse | Outcome::Refuse(Refusal::Expired)),
                    "{outcome:?}"
                );
            }
        }
    }
}
