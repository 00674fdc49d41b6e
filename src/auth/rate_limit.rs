//! Login brute-force limits: failures counted per username and per client address in a
//! fixed window (Redis in production, memory embedded). While limited, even a correct
//! password is refused, so guessing gains nothing by waiting for a lucky hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use redis::AsyncCommands as _;

use crate::redis_conn::LazyRedis;

/// The limits.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures per username per window.
    pub per_user: u32,
    /// Failures per client address per window.
    pub per_ip: u32,
    /// The window.
    pub window: Duration,
}

/// The answer of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Go ahead.
    Allowed,
    /// Refuse; the window ends in this many seconds.
    Limited {
        /// Seconds until the oldest counter resets.
        retry_after_secs: u64,
    },
}

enum Backend {
    Memory(Mutex<HashMap<String, (u32, DateTime<Utc>)>>),
    Redis {
        redis: Arc<LazyRedis>,
        prefix: String,
    },
}

/// Counts login failures.
pub struct LoginLimiter {
    backend: Backend,
    limits: LoginLimits,
}

fn keys(user: Option<&str>, ip: Option<&str>) -> Vec<(String, bool)> {
    let mut keys = Vec::with_capacity(2);
    if let Some(user) = user {
        keys.push((format!("user:{user}"), true));
    }
    if let Some(ip) = ip {
        keys.push((format!("ip:{ip}"), false));
    }
    keys
}

impl LoginLimiter {
    /// Counters in process memory.
    pub fn memory(limits: LoginLimits) -> Self {
        Self {
            backend: Backend::Memory(Mutex::new(HashMap::new())),
            limits,
        }
    }

    /// Counters in Redis, shared by every instance.
    pub fn redis(redis: Arc<LazyRedis>, prefix: String, limits: LoginLimits) -> Self {
        Self {
            backend: Backend::Redis { redis, prefix },
            limits,
        }
    }

    fn max(&self, is_user: bool) -> u32 {
        if is_user {
            self.limits.per_user
        } else {
            self.limits.per_ip
        }
    }

    /// Whether a login for `user` (lower-cased name) from `ip` may be attempted.
    /// If Redis cannot be read, the attempt is allowed (logged): the argon2 bound still
    /// caps guessing, and an outage of Redis should not lock everybody out.
    pub async fn check(&self, user: Option<&str>, ip: Option<&str>, now: DateTime<Utc>) -> Limit {
        let mut retry_after_secs = 0u64;
        match &self.backend {
            Backend::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                for (key, is_user) in keys(user, ip) {
                    if let Some((count, ends)) = map.get(&key)
                        && *ends > now
                        && *count >= self.max(is_user)
                    {
                        let secs = (*ends - now).num_seconds().max(1).unsigned_abs();
                        retry_after_secs = retry_after_secs.max(secs);
                    }
                }
            }
            Backend::Redis { redis, prefix } => {
                let result: Result<Vec<(Option<u32>, i64)>, redis::RedisError> = async {
                    let mut conn = redis.conn().await?;
                    let mut pipe = redis::pipe();
                    for (key, _) in keys(user, ip) {
                        let key = format!("{prefix}ratelimit:login:{key}");
                        pipe.get(&key).ttl(&key);
                    }
                    let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
                    let mut out = Vec::new();
                    for pair in flat.chunks(2) {
                        let count: Option<u32> = redis::from_redis_value_ref(&pair[0])?;
                        let ttl: i64 = redis::from_redis_value_ref(&pair[1])?;
                        out.push((count, ttl));
                    }
                    Ok(out)
                }
                .await;
                match result {
                    Ok(counts) => {
                        for ((count, ttl), (_, is_user)) in counts.into_iter().zip(keys(user, ip)) {
                            if count.is_some_and(|c| c >= self.max(is_user)) {
                                retry_after_secs = retry_after_secs.max(ttl.max(1).unsigned_abs());
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "login rate limit unavailable; allowing the attempt")
                    }
                }
            }
        }
        if retry_after_secs > 0 {
            Limit::Limited { retry_after_secs }
        } else {
            Limit::Allowed
        }
    }

    /// Counts a failed login.
    pub async fn record_failure(&self, user: Option<&str>, ip: Option<&str>, now: DateTime<Utc>) {
        let window = TimeDelta::from_std(self.limits.window).unwrap_or(TimeDelta::MAX);
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    map.retain(|_, (_, ends)| *ends > now);
                }
                for (key, _) in keys(user, ip) {
                    let entry = map.entry(key).or_insert((0, now + window));
                    if entry.1 <= now {
                        *entry = (0, now + window);
                    }
                    entry.0 = entry.0.saturating_add(1);
                }
            }
            Backend::Redis { redis, prefix } => {
                let secs = self.limits.window.as_secs().max(1);
                let result: Result<(), redis::RedisError> = async {
                    let mut conn = redis.conn().await?;
                    let mut pipe = redis::pipe();
                    for (key, _) in keys(user, ip) {
                        let key = format!("{prefix}ratelimit:login:{key}");
                        // Start the window on the first failure only; INCR keeps the TTL.
                        pipe.cmd("SET")
                            .arg(&key)
                            .arg(0)
                            .arg("EX")
                            .arg(secs)
                            .arg("NX")
                            .ignore();
                        pipe.incr(&key, 1).ignore();
                    }
                    pipe.query_async::<()>(&mut conn).await
                }
                .await;
                if let Err(error) = result {
                    tracing::warn!(%error, "login failure not counted: Redis unavailable");
                }
            }
        }
    }

    /// A successful login resets the username's counter (not the address's).
    pub async fn record_success(&self, user: &str) {
        let key = format!("user:{user}");
        match &self.backend {
            Backend::Memory(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            }
            Backend::Redis { redis, prefix } => {
                let result: Result<(), redis::RedisError> = async {
                    let mut conn = redis.conn().await?;
                    conn.del::<_, ()>(format!("{prefix}ratelimit:login:{key}"))
                        .await
                }
                .await;
                if let Err(error) = result {
                    tracing::warn!(%error, "login counter not reset: Redis unavailable");
                }
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
    async fn a_username_is_limited_after_its_failures_until_the_window_ends() {
        let l = limiter();
        for i in 0..3 {
            assert_eq!(
                l.check(Some("bob"), Some("1.2.3.4"), at(i)).await,
                Limit::Allowed
            );
            l.record_failure(Some("bob"), Some("1.2.3.4"), at(i)).await;
        }
        assert_eq!(
            l.check(Some("bob"), Some("9.9.9.9"), at(10)).await,
            Limit::Limited {
                retry_after_secs: 50
            }
        );
        assert_eq!(
            l.check(Some("eve"), Some("9.9.9.9"), at(10)).await,
            Limit::Allowed
        );
        assert_eq!(
            l.check(Some("bob"), None, at(60)).await,
            Limit::Allowed,
            "a new window"
        );
    }

    #[tokio::test]
    async fn an_address_is_limited_across_usernames_and_success_resets_only_the_user() {
        let l = limiter();
        for i in 0..5 {
            l.record_failure(Some(&format!("user{i}")), Some("1.2.3.4"), at(0))
                .await;
        }
        assert!(matches!(
            l.check(Some("new"), Some("1.2.3.4"), at(1)).await,
            Limit::Limited { .. }
        ));
        l.record_failure(Some("carl"), None, at(0)).await;
        l.record_failure(Some("carl"), None, at(0)).await;
        l.record_success("carl").await;
        l.record_failure(Some("carl"), None, at(0)).await;
        l.record_failure(Some("carl"), None, at(0)).await;
        assert_eq!(l.check(Some("carl"), None, at(1)).await, Limit::Allowed);
    }
}
