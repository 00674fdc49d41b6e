//! The Redis revocation list: one hash holding every entry (`jti:<id>`, `sid:<id>`,
//! `sub:<id>`, `tenant:<id>` -> `<expires_at>:<cutoff>`) and the watermark `gen`.
//!
//! One key, on purpose: whatever takes entries away (an eviction, a `DEL`, a restart from
//! an older snapshot) takes or rewinds the watermark with them, so the loss is noticed.
//! The price is that the whole list lives on one Redis node (one slot in a cluster).
//! Entries carry their own expiry and are purged by housekeeping, since Redis before 7.4
//! cannot expire fields of a hash.

use redis::RedisError;
use redis::aio::ConnectionManager;

use super::{Held, RevocationError};
use crate::redis_conn::LazyRedis;

/// Merges entries (the later expiry and cut-off win), then moves the watermark: with
/// `publish`, generation `g` joins the pending ones and the watermark climbs while the
/// next generation is there (a list with no watermark stays so: only a fill sets one);
/// with `fill`, the watermark becomes at least `g`.
/// KEYS[1]: the hash. ARGV: mode, g, then (field, expires_at, cutoff) triples.
const MERGE: &str = r"
local key = KEYS[1]
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
  redis.call('HSET', key, ARGV[i], string.format('%d:%d', expires_at, cutoff))
end
local mode, g = ARGV[1], tonumber(ARGV[2])
local gen = tonumber(redis.call('HGET', key, 'gen') or '-1')
if mode == 'publish' and gen < 0 then
  return gen
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
return gen
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

/// The Redis list.
pub struct RedisList {
    redis: std::sync::Arc<LazyRedis>,
    key: String,
    merge: redis::Script,
    purge: redis::Script,
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
    pub(super) fn new(redis: std::sync::Arc<LazyRedis>, prefix: String) -> Self {
        Self {
            redis,
            key: format!("{prefix}revocation-list"),
            merge: redis::Script::new(MERGE),
            purge: redis::Script::new(PURGE),
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
        invocation.arg(mode).arg(generation);
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
            invocation.arg("entries").arg(0);
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
