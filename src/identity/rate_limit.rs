//! Login brute-force limits: attempts counted per username and per client address in a
//! fixed window (Redis in production, memory embedded).
//!
//! An attempt is *reserved* before the password is checked: its counters go up first and
//! the answer is decided from their new values, in one atomic step per counter. Checking
//! first and counting after the (slow) hash would let a burst of concurrent guesses all
//! pass the check before any failure is counted. A successful login hands its
//! reservation back and resets the username's counter. While limited, even a correct
//! password is refused, so guessing gains nothing by waiting for a lucky hit.
//!
//! If Redis cannot be reached, this instance counts in its own memory until it can: the
//! limit then holds per instance instead of across them, and never lapses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::lifetimes::delta;
use crate::redis_conn::LazyRedis;

/// The limits.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Attempts that may fail per username per window.
    pub per_user: u32,
    /// Attempts that may fail per client address per window.
    pub per_ip: u32,
    /// The window.
    pub window: Duration,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// Go ahead: the attempt is counted.
    Allowed,
    /// Refuse; the window that is full ends in this many seconds.
    Limited {
        /// Seconds until the fullest counter resets.
        retry_after_secs: u64,
        /// That counter: `user:<name>` or `ip:<address>`.
        counter: String,
    },
}

/// A counter key and its limit.
struct Counter {
    key: String,
    max: u32,
}

/// Counters in process memory: the embedded backend, and the fallback of the Redis one.
#[derive(Default)]
struct MemoryCounters(Mutex<HashMap<String, (u32, DateTime<Utc>)>>);

impl MemoryCounters {
    /// Increments each counter (starting its window if none is running); returns each
    /// new count with the seconds left in its window.
    fn increment(&self, keys: &[&str], window: Duration, now: DateTime<Utc>) -> Vec<(u32, u64)> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, ends)| *ends > now);
        }
        keys.iter()
            .map(|key| {
                let entry = map
                    .entry((*key).to_owned())
                    .or_insert((0, now + delta(window)));
                if entry.1 <= now {
                    *entry = (0, now + delta(window));
                }
                entry.0 = entry.0.saturating_add(1);
                let left = (entry.1 - now).num_seconds().max(1).unsigned_abs();
                (entry.0, left)
            })
            .collect()
    }

    fn succeeded(&self, user: Option<&str>, ip: Option<&str>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(user) = user {
            map.remove(user);
        }
        if let Some((count, _)) = ip.and_then(|ip| map.get_mut(ip)) {
            *count = count.saturating_sub(1);
        }
    }
}

// INCR, and start the window on the first attempt (or on a counter that somehow has none).
// One key per script: the keys of one login may live in different Redis Cluster slots.
const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

// Hands an address's reservation back, never below zero.
const RELEASE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

enum Backend {
    Memory,
    Redis {
        redis: Arc<LazyRedis>,
        prefix: String,
        increment: redis::Script,
        release: redis::Script,
    },
}

/// Counts login attempts.
pub struct LoginLimiter {
    backend: Backend,
    // The embedded backend's counters, and the Redis backend's while Redis is unreachable.
    memory: MemoryCounters,
    limits: LoginLimits,
}

impl LoginLimiter {
    /// Counters in process memory.
    pub fn memory(limits: LoginLimits) -> Self {
        Self {
            backend: Backend::Memory,
            memory: MemoryCounters::default(),
            limits,
        }
    }

    /// Counters in Redis, shared by every instance.
    pub fn redis(redis: Arc<LazyRedis>, prefix: String, limits: LoginLimits) -> Self {
        Self {
            backend: Backend::Redis {
                redis,
                prefix,
                increment: redis::Script::new(INCREMENT),
                release: redis::Script::new(RELEASE),
            },
            memory: MemoryCounters::default(),
            limits,
        }
    }

    fn counters(&self, user: Option<&str>, ip: Option<&str>) -> Vec<Counter> {
        let mut counters = Vec::with_capacity(2);
        if let Some(user) = user {
            counters.push(Counter {
                key: format!("user:{user}"),
                max: self.limits.per_user,
            });
        }
        if let Some(ip) = ip {
            counters.push(Counter {
                key: format!("ip:{ip}"),
                max: self.limits.per_ip,
            });
        }
        counters
    }

    /// Reserves an attempt for `user` (the lower-cased name) from `ip`: counts it, then
    /// answers whether it may go ahead.
    pub async fn reserve(&self, user: Option<&str>, ip: Option<&str>, now: DateTime<Utc>) -> Limit {
        let counters = self.counters(user, ip);
        let keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        let counts = match &self.backend {
            Backend::Memory => self.memory.increment(&keys, self.limits.window, now),
            Backend::Redis {
                redis,
                prefix,
                increment,
                ..
            } => {
                let window_ms = u64::try_from(self.limits.window.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let result: Result<Vec<(u32, u64)>, redis::RedisError> = async {
                    let mut conn = redis.conn().await?;
                    let mut counts = Vec::with_capacity(keys.len());
                    for key in &keys {
                        let (n, ttl_ms): (u32, i64) = increment
                            .key(format!("{prefix}ratelimit:login:{key}"))
                            .arg(window_ms)
                            .invoke_async(&mut conn)
                            .await?;
                        let secs = ttl_ms.max(1).unsigned_abs().div_ceil(1000);
                        counts.push((n, secs));
                    }
                    Ok(counts)
                }
                .await;
                match result {
                    Ok(counts) => counts,
                    Err(error) => {
                        tracing::warn!(%error, "login rate limit: Redis unavailable; counting on this instance");
                        self.memory.increment(&keys, self.limits.window, now)
                    }
                }
            }
        };
        let full: Vec<(Counter, u64)> = counters
            .into_iter()
            .zip(counts)
            .filter(|(counter, (count, _))| *count > counter.max)
            .map(|(counter, (_, secs))| (counter, secs.max(1)))
            .collect();
        // Refused until every full counter resets; named after the first of them (the
        // username's when it is full), so a flood is recorded under one name.
        let retry_after_secs = full.iter().map(|(_, secs)| *secs).max();
        match (full.into_iter().next(), retry_after_secs) {
            (Some((counter, _)), Some(retry_after_secs)) => Limit::Limited {
                retry_after_secs,
                counter: counter.key,
            },
            _ => Limit::Allowed,
        }
    }

    /// A reserved attempt succeeded: it was no failure. The username's counter starts
    /// over; the address gets its reservation back (other usernames' failures stay).
    pub async fn succeeded(&self, user: Option<&str>, ip: Option<&str>) {
        let user_key = user.map(|u| format!("user:{u}"));
        let ip_key = ip.map(|ip| format!("ip:{ip}"));
        match &self.backend {
            Backend::Memory => self
                .memory
                .succeeded(user_key.as_deref(), ip_key.as_deref()),
            Backend::Redis {
                redis,
                prefix,
                release,
                ..
            } => {
                let result: Result<(), redis::RedisError> = async {
                    let mut conn = redis.conn().await?;
                    if let Some(key) = &user_key {
                        redis::cmd("DEL")
                            .arg(format!("{prefix}ratelimit:login:{key}"))
                            .query_async::<()>(&mut conn)
                            .await?;
                    }
                    if let Some(key) = &ip_key {
                        release
                            .key(format!("{prefix}ratelimit:login:{key}"))
                            .invoke_async::<i64>(&mut conn)
                            .await?;
                    }
                    Ok(())
                }
                .await;
                if let Err(error) = result {
                    tracing::warn!(%error, "login counters not released: Redis unavailable");
                }
                // Whatever this instance counted while Redis was away.
                self.memory
                    .succeeded(user_key.as_deref(), ip_key.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::memory(LoginLimits {
            per_user: 3,
            per_ip: 5,
            window: Duration::from_secs(60),
        })
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn a_username_gets_its_attempts_then_is_limited_until_the_window_ends() {
        let l = limiter();
        for i in 0..3 {
            assert_eq!(
                l.reserve(Some("bob"), Some("1.2.3.4"), at(i)).await,
                Limit::Allowed
            );
        }
        assert_eq!(
            l.reserve(Some("bob"), Some("9.9.9.9"), at(10)).await,
            Limit::Limited {
                retry_after_secs: 50,
                counter: "user:bob".to_owned(),
            }
        );
        assert_eq!(
            l.reserve(Some("eve"), Some("9.9.9.9"), at(10)).await,
            Limit::Allowed
        );
        assert_eq!(
            l.reserve(Some("bob"), None, at(60)).await,
            Limit::Allowed,
            "a new window"
        );
    }

    #[tokio::test]
    async fn an_address_is_limited_across_usernames_and_success_resets_only_the_user() {
        let l = limiter();
        for i in 0..5 {
            l.reserve(Some(&format!("user{i}")), Some("1.2.3.4"), at(0))
                .await;
        }
        assert!(matches!(
            l.reserve(Some("new"), Some("1.2.3.4"), at(1)).await,
            Limit::Limited { .. }
        ));
        for _ in 0..3 {
            l.reserve(Some("carl"), None, at(0)).await;
        }
        l.succeeded(Some("carl"), None).await;
        assert_eq!(l.reserve(Some("carl"), None, at(1)).await, Limit::Allowed);
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
        let l = LoginLimiter::redis(
            redis,
            "t:".into(),
            LoginLimits {
                per_user: 3,
                per_ip: 100,
                window: Duration::from_secs(60),
            },
        );
        for i in 0..3 {
            assert_eq!(l.reserve(Some("dan"), None, at(i)).await, Limit::Allowed);
        }
        assert!(matches!(
            l.reserve(Some("dan"), None, at(4)).await,
            Limit::Limited { .. }
        ));
    }
}
