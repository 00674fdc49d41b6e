//! The Redis revocation list: one hash holding every entry (`jti:<id>`, `sid:<id>`,
//! `sub:<id>`, `tenant:<id>` -> `<expires_at>:<cutoff>`) and the watermark `gen`.
//!
//! One key, on purpose: whatever takes entries away (an eviction, a `DEL`, a restart from
//! an older snapshot) takes or rewinds the watermark with them, so the loss is noticed.
//! The price is that the whole list lives on one Redis node (one slot in a cluster).
//! Entries carry their own expiry and are purged by housekeeping, since Redis before 7.4
//! cannot expire fields of a hash.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt as _;
use redis::RedisError;
use redis::aio::ConnectionManager;

use super::memory::MemoryList;
use super::{Held, RevocationError};
use crate::redis_conn::LazyRedis;

/// Merges entries (the later expiry and cut-off win), then moves the watermark: with
/// `publish`, generation `g` joins the pending ones and the watermark climbs while the
/// next generation is there (a list with no watermark stays so: only a fill sets one);
/// with `fill`, the watermark becomes at least `g`. Every call then announces on
/// KEYS[2] what it wrote: `{"g": watermark, "f": {field: "expires_at:cutoff"}}`, for the
/// instances' mirrors (watermark -1: the list has none).
/// KEYS[1]: the hash, KEYS[2]: the channel. ARGV: mode, g, then (field, expires_at,
/// cutoff) triples.
const MERGE: &str = r"
local key = KEYS[1]
local written = {}
local function announce(watermark)
  redis.call('PUBLISH', KEYS[2], cjson.encode({g = watermark, f = written}))
  return watermark
end
for i = 3, #ARGV, 3 do
  local expires_at, cutoff = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local old = redis.call('HGET', key, ARGV[i])
  if old then
    local e, c = string.match(old, '^(%d+):(%d+)$')
    if e then
      expires_at = math.max(expires_at, tonumber(e))
      cutoff = math.max(cutoff, tonumber(c))
    end
  end
  local value = string.format('%d:%d', expires_at, cutoff)
  redis.call('HSET', key, ARGV[i], value)
  written[ARGV[i]] = value
end
local mode, g = ARGV[1], tonumber(ARGV[2])
local gen = tonumber(redis.call('HGET', key, 'gen') or '-1')
if mode == 'publish' and gen < 0 then
  return announce(-1)
end
local pending = {}
for n in string.gmatch(redis.call('HGET', key, 'pending') or '', '%d+') do
  pending[tonumber(n)] = true
end
if mode == 'fill' then
  gen = math.max(gen, g)
else
  pending[g] = true
end
while pending[gen + 1] do
  pending[gen + 1] = nil
  gen = gen + 1
end
local rest = {}
for n, _ in pairs(pending) do
  if n > gen then table.insert(rest, string.format('%d', n)) end
end
if #rest > 0 then
  redis.call('HSET', key, 'pending', table.concat(rest, ','))
else
  redis.call('HDEL', key, 'pending')
end
redis.call('HSET', key, 'gen', string.format('%d', gen))
return announce(gen)
";

/// Deletes the given fields that are still expired at `now` (a publish may have extended
/// one since it was scanned). KEYS[1]: the hash. ARGV: now, then fields.
const PURGE: &str = r"
local now, gone = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  local value = redis.call('HGET', KEYS[1], ARGV[i])
  local e = value and tonumber(string.match(value, '^(%d+):'))
  if e and e <= now then
    redis.call('HDEL', KEYS[1], ARGV[i])
    gone = gone + 1
  end
end
return gone
";

/// The Redis list, with this instance's mirror of it.
pub struct RedisList {
    redis: Arc<LazyRedis>,
    key: String,
    channel: String,
    merge: redis::Script,
    purge: redis::Script,
    /// A copy of the hash kept current by the announcements on `channel`; `None` while
    /// it is not known to be complete (before the first copy, and from the moment the
    /// subscription is lost until a new one has copied the hash again).
    mirror: ArcSwapOption<MemoryList>,
}

/// An announcement of the merge script.
#[derive(serde::Deserialize)]
struct Announcement {
    /// The list's watermark after the merge (-1: none).
    g: i64,
    /// The fields it wrote, with their merged values. (Lua's cjson writes an empty
    /// table as `{}`.)
    f: HashMap<String, String>,
}

/// How often the subscription proves that it is alive, and how long a ping may take.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The entries of a copy or an announcement (the hash's other fields skipped).
fn entries<'a>(fields: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<(String, Held)> {
    fields
        .filter(|(field, _)| field.contains(':'))
        .filter_map(|(field, value)| Some((field.clone(), parse(Some(value.clone()))?)))
        .collect()
}

fn parse(value: Option<String>) -> Option<Held> {
    let (expires_at, cutoff) = value?
        .split_once(':')
        .map(|(e, c)| (e.parse(), c.parse()))?;
    Some(Held {
        expires_at: expires_at.ok()?,
        cutoff: cutoff.ok()?,
    })
}

impl RedisList {
    pub(super) fn new(redis: Arc<LazyRedis>, prefix: String) -> Self {
        Self {
            redis,
            key: format!("{prefix}revocation-list"),
            channel: format!("{prefix}revocation-list:changes"),
            merge: redis::Script::new(MERGE),
            purge: redis::Script::new(PURGE),
            mirror: ArcSwapOption::empty(),
        }
    }

    /// The mirror, while it is complete and its subscription alive.
    pub(super) fn mirror(&self) -> Option<Arc<MemoryList>> {
        self.mirror.load_full()
    }

    /// Keeps the mirror for as long as the process runs: subscribe, copy the hash, apply
    /// every announcement; on any loss of the subscription, drop the mirror at once (checks
    /// go back to reading Redis, and fail closed when it is gone) and start again.
    pub(super) async fn keep_mirror(&self) {
        let mut pause = Duration::from_millis(100);
        loop {
            let error = self.mirror_once().await;
            self.mirror.store(None);
            metrics::gauge!(crate::metrics::REVOCATION_MIRROR).set(0.0);
            tracing::debug!(%error, "revocation list mirror lost; reading Redis until it is back");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// One subscription: returns when it is lost, with why.
    async fn mirror_once(&self) -> RedisError {
        let lost = |what: &'static str| RedisError::from((redis::ErrorKind::Io, what));
        let subscribed = tokio::time::timeout(HEARTBEAT * 2, async {
            let mut pubsub = self.redis.client().get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, RedisError>(pubsub.split())
        })
        .await;
        let (mut sink, mut messages) = match subscribed {
            Ok(Ok(halves)) => halves,
            Ok(Err(e)) => return e,
            Err(_) => return lost("timed out subscribing"),
        };
        // Subscribed first, copied second: every merge after the copy is announced to us,
        // every merge before it is in the copy, and applying one twice changes nothing.
        let mirror = Arc::new(MemoryList::default());
        let copied = async {
            let mut conn = self.redis.conn().await?;
            let all: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(&self.key)
                .query_async(&mut conn)
                .await?;
            Ok::<_, RedisError>(all)
        };
        let mut copied = std::pin::pin!(copied);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut copying = true;
        loop {
            tokio::select! {
                all = &mut copied, if copying => {
                    let all = match all {
                        Ok(all) => all,
                        Err(e) => return e,
                    };
                    copying = false;
                    let watermark = all.get("gen").and_then(|g| g.parse().ok());
                    mirror.copy(&entries(all.iter()), watermark);
                    self.mirror.store(Some(mirror.clone()));
                    metrics::gauge!(crate::metrics::REVOCATION_MIRROR).set(1.0);
                }
                message = messages.next() => {
                    let Some(message) = message else {
                        return lost("the subscription ended");
                    };
                    let Ok(payload) = message.get_payload::<String>() else {
                        continue;
                    };
                    let Ok(announced) = serde_json::from_str::<Announcement>(&payload) else {
                        tracing::warn!("unreadable revocation list announcement ignored");
                        continue;
                    };
                    mirror.copy(&entries(announced.f.iter()), (announced.g >= 0).then_some(announced.g));
                }
                _ = heartbeat.tick() => {
                    // Subscribed, PING answers ["pong", ""]: any answer will do.
                    match tokio::time::timeout(HEARTBEAT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return e,
                        Err(_) => return lost("the subscription stopped answering"),
                    }
                }
            }
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.redis.conn().await
    }

    async fn merge(
        &self,
        mode: &str,
        fields: &[(String, Held)],
        generation: i64,
    ) -> Result<(), RevocationError> {
        let mut invocation = self.merge.key(&self.key);
        invocation.key(&self.channel).arg(mode).arg(generation);
        for (field, held) in fields {
            invocation.arg(field).arg(held.expires_at).arg(held.cutoff);
        }
        let mut conn = self.conn().await?;
        invocation.invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }

    pub(super) async fn publish(
        &self,
        fields: &[(String, Held)],
        generation: i64,
    ) -> Result<(), RevocationError> {
        self.merge("publish", fields, generation).await
    }

    /// Writes every entry, in chunks, and only then raises the watermark.
    pub(super) async fn fill(
        &self,
        fields: &[(String, Held)],
        generation: i64,
    ) -> Result<(), RevocationError> {
        for chunk in fields.chunks(500) {
            // Entries only: no generation moves until all of them are in.
            let mut invocation = self.merge.key(&self.key);
            invocation.key(&self.channel).arg("entries").arg(0);
            for (field, held) in chunk {
                invocation.arg(field).arg(held.expires_at).arg(held.cutoff);
            }
            let mut conn = self.conn().await?;
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        self.merge("fill", &[], generation).await
    }

    /// The watermark and the four fields of a check, in one round trip.
    pub(super) async fn read(
        &self,
        fields: &[String; 4],
    ) -> Result<(Option<i64>, [Option<Held>; 4]), RevocationError> {
        let mut conn = self.conn().await?;
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.key)
            .arg("gen")
            .arg(&fields[..])
            .query_async(&mut conn)
            .await?;
        let [generation, jti, sid, sub, tenant] =
            <[Option<String>; 5]>::try_from(values).map_err(|_| {
                RedisError::from((
                    redis::ErrorKind::Parse,
                    "HMGET answered the wrong number of values",
                ))
            })?;
        let watermark = generation.and_then(|g| g.parse().ok());
        Ok((
            watermark,
            [parse(jti), parse(sid), parse(sub), parse(tenant)],
        ))
    }

    pub(super) async fn purge(&self, now: i64) -> Result<(), RevocationError> {
        let mut conn = self.conn().await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(&self.key)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            let expired: Vec<&String> = page
                .iter()
                .filter(|(field, value)| {
                    field.contains(':')
                        && parse(Some(value.clone())).is_some_and(|h| h.expires_at <= now)
                })
                .map(|(field, _)| field)
                .collect();
            if !expired.is_empty() {
                let mut invocation = self.purge.key(&self.key);
                invocation.arg(now);
                for field in expired {
                    invocation.arg(field);
                }
                invocation.invoke_async::<i64>(&mut conn).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    pub(super) async fn ping(&self) -> Result<(), RevocationError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
