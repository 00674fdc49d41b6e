//! Login counters: fixed-window attempt counters (per address, per device proof) and
//! per-username throttles, with their rules as pure functions ([`count_rule`],
//! [`throttle_rule`]). [`MemoryCounters`] applies the rules in this process (bounded,
//! O(1) per attempt: counters expire in the order they were made, and past the bound
//! the oldest go first); [`RedisCounters`] runs their Lua twins, one key per script (the
//! keys of one login may live in different Redis Cluster slots). A property test feeds
//! both the same random sequences. What a login asks of them is
//! `crate::identity::rate_limit`.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex};

use redis::RedisResult;

use super::{Keys, LazyRedis};

/// The first delay of a username past its free failures; each further failure doubles it.
const FIRST_DELAY_MS: i64 = 1_000;

/// What a username's throttle needs to know of the limits.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures before attempts are slowed down.
    pub free: u32,
    /// The longest delay between two attempts.
    pub max_delay_ms: i64,
    /// How long failures are remembered from the first.
    pub window_ms: i64,
}

// ---------------------------------------------------------------------------------------
// The rules

/// A fixed-window counter after one more attempt: allowed while the new count is within
/// `max`. (The window starts with the counter's first attempt.)
pub fn count_rule(count_before: u32, max: u32) -> (u32, bool) {
    let count = count_before.saturating_add(1);
    (count, count <= max)
}

/// A username's state: failures remembered, and when the next attempt may start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Attempts counted as failures (every reserved attempt until one succeeds).
    pub failures: u32,
    /// Milliseconds since the epoch before which an attempt is refused.
    pub open_at_ms: i64,
}

/// What the throttle says to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go ahead; the username's state becomes this.
    Go(Throttle),
    /// Refused (state unchanged): the next attempt may start in this many milliseconds.
    Wait(i64),
}

/// The delay after `failures` failures: none for the first `free - 1`, then 1 s doubling
/// with each failure, capped at `max_ms`.
pub fn delay_ms(failures: u32, free: u32, max_ms: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(40);
    FIRST_DELAY_MS
        .saturating_mul(1_i64 << doublings)
        .min(max_ms)
}

/// The username rule: an attempt before `open_at` waits; one at or after it goes and
/// counts as a failure (until its success forgets them all).
pub fn throttle_rule(state: Throttle, now_ms: i64, limits: &ThrottleLimits) -> Step {
    if now_ms < state.open_at_ms {
        return Step::Wait(state.open_at_ms - now_ms);
    }
    let failures = state.failures.saturating_add(1);
    let delay = delay_ms(failures, limits.free, limits.max_delay_ms);
    Step::Go(Throttle {
        failures,
        // Without a delay the gate stays where it was: concurrent logins read the clock
        // in one order and reach this in another, and none of them may wait for a
        // millisecond it did not see.
        open_at_ms: if delay > 0 {
            now_ms.saturating_add(delay)
        } else {
            state.open_at_ms
        },
    })
}

// ---------------------------------------------------------------------------------------
// Memory

/// Values that expire a window after they were made, in a map bounded to `cap` entries.
/// Each value is made at `now` with the same window, so expiry order is creation order:
/// a queue of creations finds the expired ones in O(1) each.
struct Expiring<V> {
    map: HashMap<u64, (V, i64)>,
    order: VecDeque<(i64, u64)>,
    cap: usize,
    // Keys are kept as 64-bit keyed hashes: fixed size whatever the input.
    hasher: std::collections::hash_map::RandomState,
}

impl<V: Default> Expiring<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((expires, key)) = self.order.pop_front() else {
            return false;
        };
        if self.map.get(&key).is_some_and(|(_, e)| *e == expires) {
            self.map.remove(&key);
        }
        true
    }

    fn sweep(&mut self, now_ms: i64) {
        while self.order.front().is_some_and(|(e, _)| *e <= now_ms) {
            self.pop_oldest();
        }
    }

    /// The live value of `key`, made afresh (with its window) if there is none.
    fn entry(&mut self, key: &str, now_ms: i64, window_ms: i64) -> (&mut V, i64) {
        self.sweep(now_ms);
        let hash = self.hasher.hash_one(key);
        let live = self.map.get(&hash).is_some_and(|(_, e)| *e > now_ms);
        let expires = now_ms.saturating_add(window_ms);
        if !live {
            while self.map.len() >= self.cap && self.pop_oldest() {}
            self.map.insert(hash, (V::default(), expires));
            self.order.push_back((expires, hash));
        }
        // Live or made just above: the default is never used.
        let (value, ends) = self.map.entry(hash).or_insert((V::default(), expires));
        (value, *ends - now_ms)
    }

    fn get_mut(&mut self, key: &str, now_ms: i64) -> Option<&mut V> {
        let hash = self.hasher.hash_one(key);
        self.map
            .get_mut(&hash)
            .filter(|(_, e)| *e > now_ms)
            .map(|(v, _)| v)
    }

    fn remove(&mut self, key: &str) {
        let hash = self.hasher.hash_one(key);
        self.map.remove(&hash);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Counters in process memory: the embedded backend, and the fallback of the Redis one.
pub struct MemoryCounters {
    counts: Mutex<Expiring<u32>>,
    throttles: Mutex<Expiring<Throttle>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryCounters {
    /// At most `cap` counters of each kind.
    pub fn new(cap: usize) -> Self {
        Self {
            counts: Mutex::new(Expiring::new(cap)),
            throttles: Mutex::new(Expiring::new(cap)),
        }
    }

    /// [`count_rule`] on `key`: whether the attempt is within `max`, and the
    /// milliseconds left in the counter's window.
    pub fn count(&self, key: &str, max: u32, now_ms: i64, window_ms: i64) -> (bool, i64) {
        let mut counts = locked(&self.counts);
        let (count, left) = counts.entry(key, now_ms, window_ms);
        let (new, allowed) = count_rule(*count, max);
        *count = new;
        (allowed, left)
    }

    /// Hands one attempt of `key` back, never below zero.
    pub fn release(&self, key: &str, now_ms: i64) {
        if let Some(count) = locked(&self.counts).get_mut(key, now_ms) {
            *count = count.saturating_sub(1);
        }
    }

    /// [`throttle_rule`] on `key`.
    pub fn throttle(&self, key: &str, now_ms: i64, limits: &ThrottleLimits) -> Step {
        let mut throttles = locked(&self.throttles);
        let (state, _) = throttles.entry(key, now_ms, limits.window_ms);
        let step = throttle_rule(*state, now_ms, limits);
        if let Step::Go(next) = step {
            *state = next;
        }
        step
    }

    /// Forgets the failures of `key`.
    pub fn forget(&self, key: &str) {
        locked(&self.throttles).remove(key);
    }
}

// ---------------------------------------------------------------------------------------
// Redis: the same rules in Lua.

// count_rule: INCR, starting the window on the first attempt (or on a counter that somehow
// has none). Returns {allowed, milliseconds left in the window}.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if n <= tonumber(ARGV[2]) then return {1, ttl} end
return {0, ttl}
";

// Hands a reservation back, never below zero.
const RELEASE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

// throttle_rule. ARGV: now ms, free failures, max delay ms, window ms, first delay ms.
// Returns {1, 0} to go, {0, ms to wait}.
const THROTTLE: &str = r"
local now = tonumber(ARGV[1])
local open = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if now < open then return {0, open - now} end
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local delay = 0
local free = tonumber(ARGV[2])
if f >= free then
  delay = math.min(tonumber(ARGV[5]) * 2 ^ math.min(f - free, 40), tonumber(ARGV[3]))
end
if delay > 0 then redis.call('HSET', KEYS[1], 'o', string.format('%.0f', now + delay)) end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return {1, 0}
";

/// Counters in Redis, shared by every instance: the rules' Lua twins.
pub struct RedisCounters {
    redis: Arc<LazyRedis>,
    keys: Keys,
    count: redis::Script,
    release: redis::Script,
    throttle: redis::Script,
}

impl RedisCounters {
    /// Counters under `keys`.
    pub fn new(redis: Arc<LazyRedis>, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            count: redis::Script::new(COUNT),
            release: redis::Script::new(RELEASE),
            throttle: redis::Script::new(THROTTLE),
        }
    }

    /// [`MemoryCounters::count`]'s twin.
    pub async fn count(&self, key: &str, max: u32, window_ms: i64) -> RedisResult<(bool, i64)> {
        let mut conn = self.redis.conn().await?;
        let (allowed, left): (i64, i64) = self
            .count
            .key(self.keys.login_counter(key))
            .arg(window_ms)
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        Ok((allowed == 1, left))
    }

    /// [`MemoryCounters::throttle`]'s twin (a `Go` carries no state: it stays in Redis).
    pub async fn throttle(
        &self,
        key: &str,
        now_ms: i64,
        limits: &ThrottleLimits,
    ) -> RedisResult<Step> {
        let mut conn = self.redis.conn().await?;
        let (go, wait): (i64, i64) = self
            .throttle
            .key(self.keys.login_counter(key))
            .arg(now_ms)
            .arg(limits.free)
            .arg(limits.max_delay_ms)
            .arg(limits.window_ms)
            .arg(FIRST_DELAY_MS)
            .invoke_async(&mut conn)
            .await?;
        Ok(if go == 1 {
            Step::Go(Throttle::default())
        } else {
            Step::Wait(wait)
        })
    }

    /// [`MemoryCounters::release`]'s twin.
    pub async fn release(&self, key: &str) -> RedisResult<()> {
        let mut conn = self.redis.conn().await?;
        self.release
            .key(self.keys.login_counter(key))
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    /// [`MemoryCounters::forget`]'s twin.
    pub async fn forget(&self, key: &str) -> RedisResult<()> {
        let mut conn = self.redis.conn().await?;
        redis::cmd("DEL")
            .arg(self.keys.login_counter(key))
            .query_async::<()>(&mut conn)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock as _;
    use proptest::prelude::*;

    const LIMITS: ThrottleLimits = ThrottleLimits {
        free: 3,
        max_delay_ms: 30_000,
        window_ms: 60_000,
    };

    /// Every row of the username rule.
    #[test]
    fn the_throttle_rule_table() {
        let go = |failures, open_at_ms| {
            Step::Go(Throttle {
                failures,
                open_at_ms,
            })
        };
        let state = |failures, open_at_ms| Throttle {
            failures,
            open_at_ms,
        };
        let rows: &[(Throttle, i64, Step, &str)] = &[
            (state(0, 0), 1_000, go(1, 0), "a first failure is free"),
            (
                state(1, 0),
                900,
                go(2, 0),
                "so is the second, whatever the clock read",
            ),
            (
                state(2, 0),
                1_500,
                go(3, 2_500),
                "the third (per_user) waits 1 s",
            ),
            (
                state(3, 2_500),
                2_000,
                Step::Wait(500),
                "an attempt before then waits",
            ),
            (state(3, 2_500), 2_500, go(4, 4_500), "the fourth waits 2 s"),
            (state(4, 4_500), 4_500, go(5, 8_500), "the fifth 4 s"),
            (
                state(7, 0),
                0,
                go(8, 30_000),
                "capped at max_delay (32 s > 30 s)",
            ),
            (state(u32::MAX, 0), 0, go(u32::MAX, 30_000), "no overflow"),
        ];
        for (before, now, expected, why) in rows {
            assert_eq!(throttle_rule(*before, *now, &LIMITS), *expected, "{why}");
        }
        assert_eq!(count_rule(4, 5), (5, true));
        assert_eq!(count_rule(5, 5), (6, false));
        assert_eq!(count_rule(u32::MAX, 5), (u32::MAX, false));
    }

    #[tokio::test]
    async fn memory_is_bounded_and_the_oldest_counters_go_first() {
        let counters = MemoryCounters::new(100);
        for i in 0..1_000 {
            counters.count(&format!("ip:{i}"), 5, i, 60_000);
        }
        assert_eq!(locked(&counters.counts).len(), 100);
        // The newest are still counted.
        assert_eq!(counters.count("ip:999", 1, 1_000, 60_000), (false, 59_999));
        // Expired ones leave on their own.
        counters.count("ip:x", 5, 200_000, 60_000);
        assert_eq!(locked(&counters.counts).len(), 1);
    }

    #[test]
    fn three_hundred_thousand_usernames_stay_within_the_bound_and_the_newest_still_count() {
        let counters = MemoryCounters::new(262_144);
        // All within one window: only the bound can make room.
        for i in 0..300_000 {
            counters.throttle(&format!("user:flood{i}"), 0, &LIMITS);
        }
        assert_eq!(locked(&counters.throttles).len(), 262_144);
        // The newest keep their failures (one so far): one more free, the third opens a
        // delay.
        let key = "user:flood299999";
        assert!(matches!(counters.throttle(key, 0, &LIMITS), Step::Go(_)));
        assert!(matches!(counters.throttle(key, 0, &LIMITS), Step::Go(_)));
        assert_eq!(counters.throttle(key, 0, &LIMITS), Step::Wait(1_000));
        // The oldest were forgotten: a fresh start.
        assert_eq!(
            counters.throttle("user:flood0", 0, &LIMITS),
            Step::Go(Throttle {
                failures: 1,
                open_at_ms: 0
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Count { key: u8 },
        Throttle { key: u8 },
        Release { key: u8 },
        Forget { key: u8 },
        Wait { ms: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3).prop_map(|key| Op::Count { key }),
            (0u8..3).prop_map(|key| Op::Throttle { key }),
            (0u8..3).prop_map(|key| Op::Release { key }),
            (0u8..3).prop_map(|key| Op::Forget { key }),
            (0u16..500).prop_map(|ms| Op::Wait { ms }),
        ]
    }

    /// The Lua twins against the Rust rules, on the same random sequences with the same
    /// clock (needs `TOKENMINT_TEST_REDIS_URL`; skipped without it).
    #[test]
    fn the_lua_scripts_decide_as_the_rust_rules() {
        let Some(url) = crate::ephemeral::test_redis_url() else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let limits = ThrottleLimits {
            free: 2,
            max_delay_ms: 5_000,
            window_ms: 60_000,
        };
        let per_ip = 3;
        let config = proptest::test_runner::Config::with_cases(64);
        proptest!(config, |(ops in proptest::collection::vec(op(), 1..60))| {
            runtime.block_on(async {
                let redis = Arc::new(LazyRedis::new(&url, None).unwrap());
                let remote = RedisCounters::new(redis, Keys::new(format!("test:{}:", uuid::Uuid::new_v4())));
                let rust = MemoryCounters::new(16);
                // Redis expires keys on its own clock: a sequence (at most 30 s of simulated time)
                // stays within one window.
                let mut now = crate::clock::SystemClock.now().timestamp_millis();
                for op in ops {
                    match op {
                        Op::Count { key } => {
                            let key = format!("c{key}");
                            let (l, _) = remote.count(&key, per_ip, limits.window_ms).await.unwrap();
                            let (r, _) = rust.count(&key, per_ip, now, limits.window_ms);
                            assert_eq!(l, r, "count {key}");
                        }
                        Op::Throttle { key } => {
                            let key = format!("t{key}");
                            let l = remote.throttle(&key, now, &limits).await.unwrap();
                            let r = rust.throttle(&key, now, &limits);
                            match (l, r) {
                                (Step::Go(_), Step::Go(_)) => {}
                                (l, r) => assert_eq!(l, r, "throttle {key}"),
                            }
                        }
                        Op::Release { key } => {
                            let key = format!("c{key}");
                            remote.release(&key).await.unwrap();
                            rust.release(&key, now);
                        }
                        Op::Forget { key } => {
                            let key = format!("t{key}");
                            remote.forget(&key).await.unwrap();
                            rust.forget(&key);
                        }
                        Op::Wait { ms } => now += i64::from(ms),
                    }
                }
            });
        });
    }
}
