//! Login brute-force limits, counted in Redis (shared by every instance) or in memory
//! (embedded), with the same rules on both:
//!
//! - **per address**: attempts per client address (IPv4 /32, IPv6 /64) in a fixed
//!   window; past the limit, 429 until the window ends. Every attempt counts, refused
//!   ones too; a success hands its own back.
//! - **per username**: never a lock. Each attempt without a device proof counts as a
//!   failure until it succeeds; past `per_user` of them, the next may start only after a
//!   delay that doubles with each further failure (1 s, 2 s, 4 s... capped at
//!   `max_delay`); an attempt before then is 429 with the seconds left. A success forgets
//!   the username's failures.
//! - **per device proof**: a login with a valid proof skips both of the above; the proof
//!   itself may fail `per_user` times in a window, after which its logins are anonymous
//!   for the rest of it (a stolen proof buys a handful of guesses, not a bypass).
//!
//! An attempt is *reserved* before the password is checked, in one atomic step per
//! counter: checking first and counting after the (slow) hash would let a burst of
//! concurrent guesses pass the check before any failure is counted.
//!
//! The counters and their rules are in `crate::ephemeral::login_counters`: the memory
//! backend applies the rules, and Redis runs their Lua twins (a test compares the two).
//! Memory is bounded and each attempt costs O(1); past [`MEMORY_ENTRIES`] the oldest
//! counters go first.
//!
//! If Redis cannot be reached, this instance counts in its own memory until it can: the
//! limits then hold per instance instead of across them, and never lapse.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ephemeral::login_counters::{MemoryCounters, RedisCounters, Step, ThrottleLimits};
use crate::ephemeral::{Keys, LazyRedis};

/// Counters kept in memory per kind (addresses, usernames, device proofs): about 40 bytes
/// each. Past it the oldest are forgotten first: flushing one username's failures out
/// takes this many fresh attempts, each of them within its address's limit.
pub const MEMORY_ENTRIES: usize = 262_144;

/// The limits.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures per username before its logins are slowed down; also the failures a
    /// device proof may have per window.
    pub per_user: u32,
    /// Attempts per client address per window (successes give theirs back).
    pub per_ip: u32,
    /// The window of the address and device counters, and how long a username's
    /// failures are remembered from the first.
    pub window: Duration,
    /// The longest delay between two attempts for one username.
    pub max_delay: Duration,
}

impl LoginLimits {
    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn max_delay_ms(&self) -> i64 {
        i64::try_from(self.max_delay.as_millis()).unwrap_or(i64::MAX)
    }

    /// What a username's throttle needs.
    fn throttle(&self) -> ThrottleLimits {
        ThrottleLimits {
            free: self.per_user,
            max_delay_ms: self.max_delay_ms(),
            window_ms: self.window_ms(),
        }
    }
}

/// The keys of one login attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptKeys<'a> {
    /// The client's [`address_key`] (the caller's hashing queue keys on it too).
    pub ip: Option<&'a str>,
    /// The id of a device proof that is this user's, live and current.
    pub device: Option<&'a str>,
}

/// The counter an address is limited by: itself for IPv4, its /64 for IPv6 (one host
/// commonly holds a whole /64), the IPv4 address of an IPv4-mapped one.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// A refusal: 429 for this many seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Seconds until an attempt may be made again.
    pub retry_after_secs: u64,
    /// The counter that refused: `user:<key>` or `ip:<address>`.
    pub counter: String,
}

/// An attempt that went ahead: what it counted, to hand back if it succeeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Admitted on a device proof (neither the address nor the username was counted).
    pub trusted: bool,
    user: Option<String>,
    address: Option<String>,
    device: Option<String>,
}

fn secs_ceil(ms: i64) -> u64 {
    ms.max(1).unsigned_abs().div_ceil(1000)
}

/// Counts login attempts.
pub struct LoginLimiter {
    redis: Option<RedisCounters>,
    // The embedded backend's counters, and the Redis backend's while Redis is unreachable.
    memory: MemoryCounters,
    limits: LoginLimits,
}

impl LoginLimiter {
    /// Counters in process memory.
    pub fn memory(limits: LoginLimits) -> Self {
        Self {
            redis: None,
            memory: MemoryCounters::new(MEMORY_ENTRIES),
            limits,
        }
    }

    /// Counters in Redis, shared by every instance.
    pub fn redis(redis: Arc<LazyRedis>, keys: Keys, limits: LoginLimits) -> Self {
        Self {
            redis: Some(RedisCounters::new(redis, keys)),
            memory: MemoryCounters::new(MEMORY_ENTRIES),
            limits,
        }
    }

    fn unavailable(error: &redis::RedisError) {
        tracing::warn!(%error, "login rate limit: Redis unavailable; counting on this instance");
    }

    /// [`count_rule`] on `key`: whether the attempt is within `max`, and the milliseconds
    /// left in the counter's window.
    async fn count(&self, key: &str, max: u32, now_ms: i64) -> (bool, i64) {
        let window_ms = self.limits.window_ms();
        if let Some(redis) = &self.redis {
            match redis.count(key, max, window_ms).await {
                Ok(answer) => return answer,
                Err(error) => Self::unavailable(&error),
            }
        }
        self.memory.count(key, max, now_ms, window_ms)
    }

    /// [`throttle_rule`] on `key`.
    async fn throttle(&self, key: &str, now_ms: i64) -> Step {
        if let Some(redis) = &self.redis {
            match redis.throttle(key, now_ms, &self.limits.throttle()).await {
                Ok(step) => return step,
                Err(error) => Self::unavailable(&error),
            }
        }
        self.memory.throttle(key, now_ms, &self.limits.throttle())
    }

    /// Reserves an attempt, first step: counts its device proof or its address, then
    /// answers whether it may go ahead (and what it counted), or for how long it is
    /// refused. [`LoginLimiter::reserve_user`] is the second.
    pub async fn reserve(
        &self,
        keys: AttemptKeys<'_>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Limited> {
        let now_ms = now.timestamp_millis();
        let mut reservation = Reservation::default();
        if let Some(device) = keys.device {
            let key = format!("device:{device}");
            let (allowed, _) = self.count(&key, self.limits.per_user, now_ms).await;
            reservation.device = Some(key);
            if allowed {
                reservation.trusted = true;
                return Ok(reservation);
            }
            // A proof that failed too often is anonymous for the rest of its window.
        }
        if let Some(ip) = keys.ip {
            let key = format!("ip:{ip}");
            let (allowed, left_ms) = self.count(&key, self.limits.per_ip, now_ms).await;
            if !allowed {
                return Err(Limited {
                    retry_after_secs: secs_ceil(left_ms),
                    counter: key,
                });
            }
            reservation.address = Some(key);
        }
        Ok(reservation)
    }

    /// The second step of a reservation without a device proof, once the attempt has its
    /// hashing thread: the username's throttle (a login refused before it, busy, leaves
    /// the username alone; only its address paid).
    pub async fn reserve_user(
        &self,
        reservation: &mut Reservation,
        user: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Limited> {
        let Some(user) = user.filter(|_| !reservation.trusted) else {
            return Ok(());
        };
        let key = format!("user:{user}");
        if let Step::Wait(ms) = self.throttle(&key, now.timestamp_millis()).await {
            return Err(Limited {
                retry_after_secs: secs_ceil(ms),
                counter: key,
            });
        }
        reservation.user = Some(key);
        Ok(())
    }

    /// The window of the counters.
    pub fn window(&self) -> Duration {
        self.limits.window
    }

    /// A reserved attempt succeeded: it was no failure. The username's failures are
    /// forgotten; the address and the device proof get their reservation back.
    pub async fn succeeded(&self, reservation: &Reservation, now: DateTime<Utc>) {
        if let Some(redis) = &self.redis {
            let handed_back = async {
                if let Some(key) = &reservation.user {
                    redis.forget(key).await?;
                }
                for key in [&reservation.address, &reservation.device]
                    .into_iter()
                    .flatten()
                {
                    redis.release(key).await?;
                }
                Ok::<_, redis::RedisError>(())
            };
            if let Err(error) = handed_back.await {
                tracing::warn!(%error, "login counters not released: Redis unavailable");
            }
        }
        // The memory backend's, or whatever this instance counted while Redis was away.
        let now_ms = now.timestamp_millis();
        if let Some(key) = &reservation.user {
            self.memory.forget(key);
        }
        for key in [&reservation.address, &reservation.device]
            .into_iter()
            .flatten()
        {
            self.memory.release(key, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::ephemeral::login_counters::delay_ms;
    use proptest::prelude::*;

    const LIMITS: LoginLimits = LoginLimits {
        per_user: 3,
        per_ip: 5,
        window: Duration::from_secs(60),
        max_delay: Duration::from_secs(30),
    };

    fn limiter() -> LoginLimiter {
        LoginLimiter::memory(LIMITS)
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    /// Both steps of a reservation.
    async fn reserve(
        l: &LoginLimiter,
        user: &str,
        ip: &str,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Limited> {
        let keys = AttemptKeys {
            ip: Some(ip),
            device,
        };
        let mut reservation = l.reserve(keys, now).await?;
        l.reserve_user(&mut reservation, Some(user), now).await?;
        Ok(reservation)
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:3::1"), "2001:db8:1:3::/64");
        assert_eq!(address_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(address_key("10.0.0.1"), "10.0.0.1");
    }

    #[tokio::test]
    async fn a_username_is_slowed_down_never_locked_and_a_success_forgets() {
        let l = limiter();
        for i in 0..3 {
            assert!(
                reserve(&l, "bob", &format!("10.0.0.{i}"), None, at(0))
                    .await
                    .is_ok()
            );
        }
        let refused = reserve(&l, "bob", "10.0.0.9", None, at(0))
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            Limited {
                retry_after_secs: 1,
                counter: "user:bob".into()
            }
        );
        let fourth = reserve(&l, "bob", "10.0.0.9", None, at(1)).await.unwrap();
        assert!(reserve(&l, "bob", "10.0.0.9", None, at(2)).await.is_err());
        l.succeeded(&fourth, at(2)).await;
        assert!(reserve(&l, "bob", "10.0.0.9", None, at(2)).await.is_ok());
        assert!(reserve(&l, "eve", "10.0.0.9", None, at(2)).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_is_limited_across_usernames_and_a_device_proof_is_not() {
        let l = limiter();
        for i in 0..5 {
            assert!(
                reserve(&l, &format!("u{i}"), "1.2.3.4", None, at(0))
                    .await
                    .is_ok()
            );
        }
        assert_eq!(
            reserve(&l, "new", "1.2.3.4", None, at(1))
                .await
                .unwrap_err(),
            Limited {
                retry_after_secs: 59,
                counter: "ip:1.2.3.4".into()
            }
        );
        // The proof's own budget: per_user failures, then anonymous (and limited).
        for _ in 0..3 {
            let r = reserve(&l, "new", "1.2.3.4", Some("d1"), at(1)).await;
            assert!(r.unwrap().trusted);
        }
        assert!(
            reserve(&l, "new", "1.2.3.4", Some("d1"), at(1))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn without_redis_the_limit_holds_on_this_instance() {
        // A port nothing listens on: every Redis call fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Arc::new(LazyRedis::new(&format!("redis://127.0.0.1:{port}"), None).unwrap());
        let l = LoginLimiter::redis(redis, Keys::new("t:"), LIMITS);
        for i in 0..3 {
            assert!(reserve(&l, "dan", "10.0.0.1", None, at(i)).await.is_ok());
        }
        assert!(reserve(&l, "dan", "10.0.0.1", None, at(2)).await.is_err());
    }

    /// How one login attempt of the model-based test ends.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Success,
        Failure,
        Busy,
    }

    #[derive(Debug, Clone)]
    enum Step2 {
        Attempt {
            user: u8,
            ip: u8,
            device: Option<u8>,
            outcome: Outcome,
        },
        Advance(u16),
    }

    fn step() -> impl Strategy<Value = Step2> {
        let outcome = prop_oneof![
            Just(Outcome::Success),
            Just(Outcome::Failure),
            Just(Outcome::Failure),
            Just(Outcome::Busy),
        ];
        prop_oneof![
            4 => (0u8..3, 0u8..3, proptest::option::of(0u8..2), outcome).prop_map(
                |(user, ip, device, outcome)| Step2::Attempt { user, ip, device, outcome }
            ),
            1 => (0u16..3_000).prop_map(Step2::Advance),
        ]
    }

    /// The reference: the rules of the module's documentation written the plain way,
    /// with explicit window ends and no bound.
    #[derive(Default)]
    struct Model {
        addresses: HashMap<u8, (u32, i64)>,
        devices: HashMap<u8, (u32, i64)>,
        users: HashMap<u8, (u32, i64, i64)>,
    }

    /// What an attempt saw: admitted (on a device proof or not), or refused by a counter
    /// (with its seconds when it is the username's, which runs on the caller's clock).
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Admitted { trusted: bool },
        Refused { counter: String, secs: Option<u64> },
    }

    impl Model {
        fn attempt(
            &mut self,
            l: &LoginLimits,
            user: u8,
            ip: u8,
            device: Option<u8>,
            outcome: Outcome,
            now: i64,
        ) -> Seen {
            let window = l.window_ms();
            let bump = |map: &mut HashMap<u8, (u32, i64)>, key: u8| {
                let entry = map.entry(key).or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 += 1;
                entry.0
            };
            let mut trusted = false;
            if let Some(d) = device {
                trusted = bump(&mut self.devices, d) <= l.per_user;
            }
            if !trusted && bump(&mut self.addresses, ip) > l.per_ip {
                return Seen::Refused {
                    counter: format!("ip:10.0.0.{ip}"),
                    secs: None,
                };
            }
            if outcome == Outcome::Busy {
                return Seen::Admitted { trusted };
            }
            if !trusted {
                let entry = self.users.entry(user).or_insert((0, 0, now + window));
                if entry.2 <= now {
                    *entry = (0, 0, now + window);
                }
                if now < entry.1 {
                    return Seen::Refused {
                        counter: format!("user:u{user}"),
                        secs: Some(secs_ceil(entry.1 - now)),
                    };
                }
                entry.0 += 1;
                let delay = delay_ms(entry.0, l.per_user, l.max_delay_ms());
                if delay > 0 {
                    entry.1 = now + delay;
                }
            }
            if outcome == Outcome::Success {
                if !trusted {
                    self.users.remove(&user);
                    if let Some(a) = self.addresses.get_mut(&ip).filter(|a| a.1 > now) {
                        a.0 = a.0.saturating_sub(1);
                    }
                }
                if let Some(d) = device
                    && let Some(c) = self.devices.get_mut(&d).filter(|c| c.1 > now)
                {
                    c.0 = c.0.saturating_sub(1);
                }
            }
            Seen::Admitted { trusted }
        }
    }

    async fn attempt(
        l: &LoginLimiter,
        user: u8,
        ip: u8,
        device: Option<u8>,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Seen {
        let ip = format!("10.0.0.{ip}");
        let device = device.map(|d| format!("d{d}"));
        let keys = AttemptKeys {
            ip: Some(&ip),
            device: device.as_deref(),
        };
        let refused = |limited: Limited| {
            let secs = limited
                .counter
                .starts_with("user:")
                .then_some(limited.retry_after_secs);
            Seen::Refused {
                counter: limited.counter,
                secs,
            }
        };
        let mut reservation = match l.reserve(keys, now).await {
            Ok(r) => r,
            Err(limited) => return refused(limited),
        };
        let trusted = reservation.trusted;
        if outcome == Outcome::Busy {
            return Seen::Admitted { trusted };
        }
        let user = format!("u{user}");
        if let Err(limited) = l.reserve_user(&mut reservation, Some(&user), now).await {
            return refused(limited);
        }
        if outcome == Outcome::Success {
            l.succeeded(&reservation, now).await;
        }
        Seen::Admitted { trusted }
    }

    /// Random interleavings of attempts (three users, three addresses, two device proofs;
    /// successes, failures and busy refusals) and of the clock, against the model: on
    /// memory, and on Redis when `TOKENMINT_TEST_REDIS_URL` is set.
    #[test]
    fn the_limiter_follows_the_reference_model_on_both_backends() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let redis_url = crate::ephemeral::test_redis_url();
        let limits = LoginLimits {
            per_user: 2,
            per_ip: 4,
            window: Duration::from_secs(600),
            max_delay: Duration::from_secs(8),
        };
        // Redis round trips are slow: fewer cases there; the fuzzing pass's PROPTEST_CASES
        // otherwise.
        let cases = match (&redis_url, std::env::var("PROPTEST_CASES").ok()) {
            (Some(_), _) => 64,
            (None, Some(n)) => n.parse().unwrap_or(256),
            (None, None) => 256,
        };
        let config = proptest::test_runner::Config::with_cases(cases);
        proptest!(config, |(steps in proptest::collection::vec(step(), 1..80))| {
            runtime.block_on(async {
                let mut limiters = vec![("memory", LoginLimiter::memory(limits))];
                if let Some(url) = &redis_url {
                    let redis = Arc::new(LazyRedis::new(url, None).unwrap());
                    let prefix = format!("test:{}:", uuid::Uuid::new_v4());
                    limiters.push(("redis", LoginLimiter::redis(redis, Keys::new(prefix), limits)));
                }
                for (backend, limiter) in &limiters {
                    let mut model = Model::default();
                    // Redis expires keys on its own clock: a sequence (at most 80 x 3 s of
                    // simulated time) stays within one window.
                    let mut now = at(0);
                    for step in &steps {
                        match *step {
                            Step2::Advance(ms) => now += chrono::TimeDelta::milliseconds(i64::from(ms)),
                            Step2::Attempt { user, ip, device, outcome } => {
                                let expected = model.attempt(&limits, user, ip, device, outcome, now.timestamp_millis());
                                let seen = attempt(limiter, user, ip, device, outcome, now).await;
                                assert_eq!(seen, expected, "{backend}: {step:?} in {steps:?}");
                            }
                        }
                    }
                }
            });
        });
    }
}
