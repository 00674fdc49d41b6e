//! The Redis revocation list: one hash holding every entry (`jti:<id>`, `sid:<id>`,
//! `sub:<id>`, `tenant:<id>` -> `<expires_at>:<cutoff>`) and the watermark `gen`.
//!
//! One key, on purpose: whatever takes entries away (an eviction, a `DEL`, a restart from
//! an older snapshot) takes or rewinds the watermark with them, so the loss is noticed.
//! The price is that the whole list lives on one Redis node (one slot in a cluster).
//! Entries carry their own expiry and are purged by housekeeping, since Redis before 7.4
//! cannot expire fields of a hash.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt as _;
use redis::RedisError;
use redis::aio::ConnectionManager;

use super::{Held, MemoryList, Monotonic};
use crate::ephemeral::{Keys, LazyRedis};

/// Lua helpers shared by the scripts that touch leases. `now_ms()`: Redis's clock, the
/// one clock every lease is measured by. `leases()`: the holders, by id, each
/// `{e = expires (ms), a = acknowledged sequence, r = sequence it must acknowledge before
/// it is extended}`. `waiting(seq, now)`: marks every live holder that has not
/// acknowledged `seq` (so it cannot be extended until it does) and answers how many there
/// are and how long until the last of their leases runs out.
const LEASE_HELPERS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function leases()
  local raw = redis.call('HGET', KEYS[1], 'leases')
  if not raw then return {} end
  return cjson.decode(raw)
end
local function save(all)
  if next(all) == nil then
    redis.call('HDEL', KEYS[1], 'leases')
  else
    redis.call('HSET', KEYS[1], 'leases', cjson.encode(all))
  end
end
local function waiting(seq, now)
  local all, pending, wait = leases(), 0, 0
  for id, l in pairs(all) do
    if l.e > now and l.a < seq then
      l.r = math.max(l.r, seq)
      pending = pending + 1
      wait = math.max(wait, l.e - now)
    elseif l.e < now - 60000 then
      all[id] = nil
    end
  end
  save(all)
  return pending, wait
end
";

/// Merges entries (the later expiry and cut-off win), then moves the watermark: with
/// `publish`, generations `first..=last` join the pending ones and the watermark climbs
/// while the next generation is there (a list with no watermark stays so: only a fill
/// sets one); with `fill`, the watermark becomes at least `last`. Every call takes the
/// next sequence number and announces on KEYS[2] what it wrote: `{"s": seq, "g":
/// watermark, "f": {field: "expires_at:cutoff"}}`, for the instances' mirrors (watermark
/// -1: the list has none). A publish then marks the mirrors that have not acknowledged
/// it. KEYS[1]: the hash, KEYS[2]: the channel. ARGV: mode, first, last, then (field,
/// expires_at, cutoff) triples. Answers `{seq, holders still to acknowledge, ms until
/// their leases end, 1 if the hash had no epoch (flushed, evicted or new: leases it held
/// are unknown)}`.
const MERGE: &str = r"
local key = KEYS[1]
local fresh = 0
if not redis.call('HGET', key, 'epoch') then
  redis.call('HSET', key, 'epoch', string.format('%d', now_ms()))
  fresh = 1
end
local seq = redis.call('HINCRBY', key, 'seq', 1)
local written = {}
local function announce(watermark)
  redis.call('PUBLISH', KEYS[2], cjson.encode({s = seq, g = watermark, f = written}))
  if ARGV[1] ~= 'publish' then return {seq, 0, 0, fresh} end
  local pending, wait = waiting(seq, now_ms())
  return {seq, pending, wait, fresh}
end
for i = 4, #ARGV, 3 do
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
local mode, first, last = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local gen = tonumber(redis.call('HGET', key, 'gen') or '-1')
if mode == 'publish' and gen < 0 then
  return announce(-1)
end
local pending = {}
for n in string.gmatch(redis.call('HGET', key, 'pending') or '', '%d+') do
  pending[tonumber(n)] = true
end
if mode == 'fill' then
  gen = math.max(gen, last)
else
  for n = first, last do pending[n] = true end
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

/// How many live holders have not acknowledged sequence ARGV[1], and how long until the
/// last of their leases ends: `{pending, ms}`. KEYS[1]: the hash.
const WAITING: &str = r"
local pending, wait = waiting(tonumber(ARGV[1]), now_ms())
return {pending, wait}
";

/// A mirror takes or renews its lease. KEYS[1]: the hash. ARGV: holder id, the epoch its
/// copy was taken in ('' for a hash that had none), the sequence it has applied, lease
/// length in ms. The lease is extended when the holder has acknowledged what a waiting
/// publish asked of it, or, for a lease that is new or has run out, everything published
/// so far. Answers `{1 extended | 0 not now | -1 lost (the hash was flushed or replaced
/// since the copy: copy again), epoch}`.
const TAKE_LEASE: &str = r"
local key, id, acked = KEYS[1], ARGV[1], tonumber(ARGV[3])
local epoch = redis.call('HGET', key, 'epoch')
local all = leases()
local held = all[id]
if ARGV[2] == '' then
  if epoch then return {-1, ''} end
  epoch = string.format('%d', now_ms())
  redis.call('HSET', key, 'epoch', epoch)
elseif epoch ~= ARGV[2] then
  return {-1, epoch or ''}
end
local now = now_ms()
local seq = tonumber(redis.call('HGET', key, 'seq') or '0')
local extended = 0
if held and held.e > now and acked >= held.r then
  extended = 1
elseif acked >= seq then
  extended = 1
end
if not held then
  held = {e = 0, a = acked, r = 0}
end
held.a = math.max(held.a, acked)
if extended == 1 then
  held.e = now + tonumber(ARGV[4])
end
all[id] = held
save(all)
return {extended, epoch}
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
    waiting: redis::Script,
    lease: redis::Script,
    purge: redis::Script,
    /// A copy of the hash kept current by the announcements on `channel`; `None` while
    /// it is not known to be complete (before the first copy, and from the moment the
    /// subscription is lost until a new one has copied the hash again).
    mirror: ArcSwapOption<MemoryList>,
    /// Until when (ms after `started`) the mirror may answer: its lease, as this instance
    /// counts it (from before the renewal was sent, so never later than Redis counts it).
    lease_until: AtomicU64,
    started: Monotonic,
    /// The last sequence this instance's mirror has acknowledged in Redis (-1: none): a
    /// publish waits on it for its own mirror instead of polling Redis.
    acknowledged: tokio::sync::watch::Sender<i64>,
}

/// What a publish learnt about the mirrors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    /// The sequence number of the announcement.
    seq: i64,
    /// Mirrors holding a lease that have not applied it yet.
    pending: i64,
    /// How long until the last of their leases ends.
    wait: Duration,
    /// The hash had no epoch: it was flushed, evicted or replaced, and the leases it held
    /// are gone with it; they end within one lease length.
    fresh: bool,
}

impl Published {
    fn from_reply(reply: &[i64]) -> Option<Self> {
        let [seq, pending, wait, fresh] = <[i64; 4]>::try_from(reply).ok()?;
        Some(Self {
            seq,
            pending,
            wait: millis(wait),
            fresh: fresh == 1,
        })
    }
}

/// An announcement of the merge script.
#[derive(serde::Deserialize)]
struct Announcement {
    /// Its sequence number.
    s: i64,
    /// The list's watermark after the merge (-1: none).
    g: i64,
    /// The fields it wrote, with their merged values. (Lua's cjson writes an empty
    /// table as `{}`.)
    f: HashMap<String, String>,
}

/// How often the subscription proves that it is alive, and how long a ping may take.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a mirror may answer without renewing its lease: the longest a revoking call
/// waits for an instance that does not acknowledge (stopped, partitioned, overloaded).
pub const LEASE: Duration = Duration::from_millis(100);
/// How often a mirror renews its lease when nothing new arrives.
const RENEW_EVERY: Duration = Duration::from_millis(25);
/// Taken off the lease as this instance counts it, for clocks that run at slightly
/// different rates.
const LEASE_MARGIN: Duration = Duration::from_millis(10);
/// How long a revoking call waits for acknowledgements at most (leases end by then).
const WAIT_AT_MOST: Duration = Duration::from_millis(300);

/// A duration in milliseconds as a script answers it (never negative).
fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The answer to a lease renewal.
enum Renewed {
    /// Extended from when it was sent; the hash's epoch.
    Extended { sent: Instant, epoch: String },
    /// Not extended: a publish waits for an announcement this mirror has not applied.
    NotNow,
    /// The hash was replaced since the copy.
    Lost,
}

type Renewal =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Renewed, RedisError>> + Send>>;

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
    pub(crate) fn new(redis: Arc<LazyRedis>, keys: &Keys) -> Self {
        Self {
            redis,
            key: keys.revocation_list(),
            channel: keys.revocation_changes(),
            merge: redis::Script::new(&format!("{LEASE_HELPERS}{MERGE}")),
            waiting: redis::Script::new(&format!("{LEASE_HELPERS}{WAITING}")),
            lease: redis::Script::new(&format!("{LEASE_HELPERS}{TAKE_LEASE}")),
            purge: redis::Script::new(PURGE),
            mirror: ArcSwapOption::empty(),
            lease_until: AtomicU64::new(0),
            started: Monotonic::default(),
            acknowledged: tokio::sync::watch::Sender::new(-1),
        }
    }

    /// The mirror at `at`, while it is complete, its subscription alive and its lease
    /// held: every revocation published more than a lease ago is in it, and any publish
    /// since waits for it (or for the lease to end) before it answers.
    ///
    /// A guard, not a counted reference: every check of every worker reads the mirror,
    /// and a count shared by all of them would be written by each read.
    pub(crate) fn mirror(&self, at: Instant) -> Option<arc_swap::Guard<Option<Arc<MemoryList>>>> {
        if self.started.ms(at) >= self.lease_until.load(Ordering::Acquire) {
            return None;
        }
        let mirror = self.mirror.load();
        mirror.is_some().then_some(mirror)
    }

    /// The mirror whether or not it may answer now (for housekeeping).
    pub(crate) fn mirror_copy(&self) -> Option<Arc<MemoryList>> {
        self.mirror.load_full()
    }

    fn drop_mirror(&self) {
        self.lease_until.store(0, Ordering::Release);
        self.acknowledged.send_replace(-1);
        self.mirror.store(None);
        metrics::gauge!(crate::metrics::REVOCATION_MIRROR).set(0.0);
    }

    /// Keeps the mirror for as long as the process runs: subscribe, copy the hash, apply
    /// every announcement; on any loss of the subscription, drop the mirror at once (checks
    /// go back to reading Redis, and fail closed when it is gone) and start again.
    pub(crate) async fn keep_mirror(&self) {
        let mut pause = Duration::from_millis(100);
        loop {
            let error = self.mirror_once().await;
            self.drop_mirror();
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
        let mut renew_tick = tokio::time::interval(RENEW_EVERY);
        renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let holder = uuid::Uuid::new_v4().simple().to_string();
        // The epoch the copy was taken in ('' for none), and the last sequence applied;
        // `None` until the copy is in.
        let mut copy: Option<(String, i64)> = None;
        // One renewal at a time. Another starts when it ends if more was applied since
        // (so that a waiting publish hears from us at once), and every RENEW_EVERY.
        let mut renewing: Option<Renewal> = None;
        let mut acknowledged = -1;
        let mut tick_due = false;
        loop {
            if renewing.is_none()
                && let Some((epoch, applied)) = &copy
                && (tick_due || *applied > acknowledged)
            {
                renewing = Some(self.renew(holder.clone(), epoch.clone(), *applied));
                acknowledged = *applied;
                tick_due = false;
            }
            tokio::select! {
                all = &mut copied, if copy.is_none() => {
                    let all = match all {
                        Ok(all) => all,
                        Err(e) => return e,
                    };
                    let watermark = all.get("gen").and_then(|g| g.parse().ok());
                    let seq = all.get("seq").and_then(|g| g.parse().ok()).unwrap_or(0);
                    mirror.copy(&entries(all.iter()), watermark);
                    copy = Some((all.get("epoch").cloned().unwrap_or_default(), seq));
                    // Usable once its lease is granted.
                    self.mirror.store(Some(mirror.clone()));
                }
                renewed = async {
                    match renewing.as_mut() {
                        Some(renewal) => renewal.await,
                        None => std::future::pending().await,
                    }
                }, if renewing.is_some() => {
                    renewing = None;
                    if matches!(renewed, Ok(Renewed::Extended { .. } | Renewed::NotNow)) {
                        // Either way Redis now holds this acknowledgement.
                        self.acknowledged.send_if_modified(|held| {
                            let newer = acknowledged > *held;
                            *held = (*held).max(acknowledged);
                            newer
                        });
                    }
                    match renewed {
                        Ok(Renewed::Extended { sent, epoch }) => {
                            if let Some((held, _)) = copy.as_mut() {
                                *held = epoch;
                            }
                            let until = self.started.ms(sent + LEASE - LEASE_MARGIN);
                            self.lease_until.fetch_max(until, Ordering::AcqRel);
                            metrics::gauge!(crate::metrics::REVOCATION_MIRROR).set(1.0);
                        }
                        Ok(Renewed::NotNow) => {}
                        Ok(Renewed::Lost) => return lost("the list was flushed or replaced since it was copied"),
                        Err(e) => return e,
                    }
                }
                _ = renew_tick.tick() => tick_due = true,
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
                    if let Some((_, applied)) = copy.as_mut() {
                        *applied = (*applied).max(announced.s);
                    }
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

    /// Takes or renews this mirror's lease, acknowledging `applied`.
    fn renew(&self, holder: String, epoch: String, applied: i64) -> Renewal {
        let (redis, script, key) = (self.redis.clone(), self.lease.clone(), self.key.clone());
        Box::pin(async move {
            let mut invocation = script.key(&key);
            invocation
                .arg(holder)
                .arg(epoch)
                .arg(applied)
                .arg(u64::try_from(LEASE.as_millis()).unwrap_or(100));
            let sent = Instant::now();
            let mut conn = redis.conn().await?;
            let (granted, epoch): (i64, String) =
                tokio::time::timeout(HEARTBEAT, invocation.invoke_async(&mut conn))
                    .await
                    .map_err(|_| {
                        RedisError::from((redis::ErrorKind::Io, "a lease renewal timed out"))
                    })??;
            Ok(match granted {
                1 => Renewed::Extended { sent, epoch },
                0 => Renewed::NotNow,
                _ => Renewed::Lost,
            })
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        self.redis.conn().await
    }

    async fn merge(
        &self,
        mode: &str,
        fields: &[(String, Held)],
        generations: RangeInclusive<i64>,
    ) -> Result<Published, RedisError> {
        let mut invocation = self.merge.key(&self.key);
        invocation
            .key(&self.channel)
            .arg(mode)
            .arg(*generations.start())
            .arg(*generations.end());
        for (field, held) in fields {
            invocation.arg(field).arg(held.expires_at).arg(held.cutoff);
        }
        let mut conn = self.conn().await?;
        let reply: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        Published::from_reply(&reply).ok_or_else(|| {
            RedisError::from((redis::ErrorKind::Parse, "the merge script answered oddly"))
        })
    }

    /// Merges the entries of generations `generations` (every one of them: a group's
    /// are consecutive), announces them, and returns once every mirror that may answer
    /// has applied them: each holder of a lease has acknowledged the announcement or its
    /// lease has ended (it cannot be renewed until it acknowledges). Typically one round
    /// trip more; at most a lease length for an instance that stopped answering.
    pub(crate) async fn publish(
        &self,
        fields: &[(String, Held)],
        generations: RangeInclusive<i64>,
    ) -> Result<(), RedisError> {
        let published = self.merge("publish", fields, generations).await?;
        if published.fresh {
            // Leases held before the hash was lost are unknown: wait them out.
            tokio::time::sleep(LEASE).await;
            return Ok(());
        }
        let deadline = Instant::now() + WAIT_AT_MOST;
        let (mut pending, mut wait) = (published.pending, published.wait);
        if pending > 0 && self.mirror_copy().is_some() {
            // This instance's own mirror is one of them: its acknowledgement is known here
            // the moment it lands, with no polling. Then Redis says who else is left.
            let mut acknowledged = self.acknowledged.subscribe();
            let own = tokio::time::timeout(LEASE, acknowledged.wait_for(|a| *a >= published.seq));
            if matches!(own.await, Ok(Ok(_))) {
                (pending, wait) = self.waiting_for(published.seq).await?;
            }
        }
        let mut pause = Duration::from_micros(250);
        while pending > 0 {
            if Instant::now() >= deadline {
                tracing::warn!(
                    pending,
                    "mirrors neither acknowledged a revocation nor let their leases end in time"
                );
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "mirrors did not acknowledge a revocation in time",
                )));
            }
            tokio::time::sleep(pause.min(wait.max(Duration::from_micros(250)))).await;
            pause = (pause * 2).min(Duration::from_millis(5));
            (pending, wait) = self.waiting_for(published.seq).await?;
        }
        Ok(())
    }

    /// How many lease holders have not acknowledged `seq`, and how long until the last
    /// of their leases ends.
    async fn waiting_for(&self, seq: i64) -> Result<(i64, Duration), RedisError> {
        let mut conn = self.conn().await?;
        let (pending, wait): (i64, i64) = self
            .waiting
            .key(&self.key)
            .arg(seq)
            .invoke_async(&mut conn)
            .await?;
        Ok((pending, millis(wait)))
    }

    /// Writes every entry, in chunks, and only then raises the watermark.
    pub(crate) async fn fill(
        &self,
        fields: &[(String, Held)],
        generation: i64,
    ) -> Result<(), RedisError> {
        for chunk in fields.chunks(500) {
            // Entries only: no generation moves until all of them are in.
            let mut invocation = self.merge.key(&self.key);
            invocation.key(&self.channel).arg("entries").arg(0).arg(0);
            for (field, held) in chunk {
                invocation.arg(field).arg(held.expires_at).arg(held.cutoff);
            }
            let mut conn = self.conn().await?;
            invocation.invoke_async::<Vec<i64>>(&mut conn).await?;
        }
        self.merge("fill", &[], generation..=generation)
            .await
            .map(|_| ())
    }

    /// The watermark and the fields of a check, in one round trip.
    pub(crate) async fn read<F: AsRef<str> + Sync>(
        &self,
        fields: &[F],
    ) -> Result<(Option<i64>, Vec<Option<Held>>), RedisError> {
        let mut conn = self.conn().await?;
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&self.key).arg("gen");
        for field in fields {
            hmget.arg(field.as_ref());
        }
        let values: Vec<Option<String>> = hmget.query_async(&mut conn).await?;
        if values.len() != fields.len() + 1 {
            return Err(RedisError::from((
                redis::ErrorKind::Parse,
                "HMGET answered the wrong number of values",
            )));
        }
        let mut values = values.into_iter();
        let watermark = values.next().flatten().and_then(|g| g.parse().ok());
        Ok((watermark, values.map(parse).collect()))
    }

    pub(crate) async fn purge(&self, now: i64) -> Result<(), RedisError> {
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

    pub(crate) async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// What a lease renewal is answered (the rule [`TAKE_LEASE`] implements, written once
/// more as the reference its table test holds the script to).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseAnswer {
    /// Extended by a lease length from now.
    Extended,
    /// Not extended: a publish waits for an announcement the mirror has not applied.
    NotNow,
    /// The hash was replaced since the mirror's copy: copy again.
    Lost,
}

/// A holder's lease as the hash keeps it.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldLease {
    /// Not run out yet (by Redis's clock).
    pub live: bool,
    /// The sequence a waiting publish asked it to acknowledge.
    pub required: i64,
}

/// The lease rule. `hash_epoch`: the hash's epoch (none: flushed or new); `copy_epoch`:
/// the one the mirror's copy was taken in ('' for none); `seq`: the last announcement
/// published; `acked`: the last one the mirror applied.
#[cfg(test)]
pub(crate) fn lease_rule(
    hash_epoch: Option<&str>,
    copy_epoch: &str,
    held: Option<HeldLease>,
    acked: i64,
    seq: i64,
) -> LeaseAnswer {
    match (copy_epoch, hash_epoch) {
        // A copy of a hash without an epoch joins a hash without one (it gets one now).
        ("", None) => {}
        ("", Some(_)) => return LeaseAnswer::Lost,
        (copied, Some(now)) if copied == now => {}
        _ => return LeaseAnswer::Lost,
    }
    match held {
        // A live lease is extended unless a publish waits for it.
        Some(lease) if lease.live && acked >= lease.required => LeaseAnswer::Extended,
        // A new or run-out lease: only with everything published so far.
        _ if acked >= seq => LeaseAnswer::Extended,
        _ => LeaseAnswer::NotNow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: Option<HeldLease> = Some(HeldLease {
        live: true,
        required: 5,
    });
    const RUN_OUT: Option<HeldLease> = Some(HeldLease {
        live: false,
        required: 5,
    });

    /// Every row of the rule: (hash epoch, copy epoch, lease, acked, seq, answer).
    #[allow(clippy::type_complexity)]
    const ROWS: &[(Option<&str>, &str, Option<HeldLease>, i64, i64, LeaseAnswer)] = &[
        // The hash was replaced since the copy, or the copy predates an epoch.
        (Some("e2"), "e1", LIVE, 9, 9, LeaseAnswer::Lost),
        (None, "e1", LIVE, 9, 9, LeaseAnswer::Lost),
        (Some("e1"), "", None, 0, 0, LeaseAnswer::Lost),
        // Joining a hash without an epoch: with everything published.
        (None, "", None, 0, 0, LeaseAnswer::Extended),
        // A live lease: extended while it has acknowledged what a publish waits for.
        (Some("e1"), "e1", LIVE, 5, 9, LeaseAnswer::Extended),
        (Some("e1"), "e1", LIVE, 4, 9, LeaseAnswer::NotNow),
        // A new lease, or one that ran out: only with everything published so far.
        (Some("e1"), "e1", None, 9, 9, LeaseAnswer::Extended),
        (Some("e1"), "e1", None, 8, 9, LeaseAnswer::NotNow),
        (Some("e1"), "e1", RUN_OUT, 9, 9, LeaseAnswer::Extended),
        (Some("e1"), "e1", RUN_OUT, 5, 9, LeaseAnswer::NotNow),
    ];

    #[test]
    fn the_lease_rule_row_by_row() {
        for (hash_epoch, copy_epoch, held, acked, seq, answer) in ROWS {
            assert_eq!(
                lease_rule(*hash_epoch, copy_epoch, *held, *acked, *seq),
                *answer,
                "{hash_epoch:?} {copy_epoch:?} {held:?} acked {acked} seq {seq}"
            );
        }
    }

    /// The same rows through the Lua script, in a real Redis (with
    /// `TOKENMINT_TEST_REDIS_URL`; set but unreachable is a failure).
    #[tokio::test]
    async fn the_lease_script_answers_every_row_as_the_rule_does() {
        let Some(url) = crate::ephemeral::test_redis_url() else {
            return;
        };
        let client = redis::Client::open(url).expect("a Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("TOKENMINT_TEST_REDIS_URL is set but unreachable");
        let script = redis::Script::new(&format!("{LEASE_HELPERS}{TAKE_LEASE}"));
        let waiting = redis::Script::new(&format!("{LEASE_HELPERS}{WAITING}"));
        for (row, (hash_epoch, copy_epoch, held, acked, seq, answer)) in ROWS.iter().enumerate() {
            let key = format!(
                "tokenmint-unit:{}:lease-{row}",
                uuid::Uuid::new_v4().simple()
            );
            let (secs, micros): (i64, i64) =
                redis::cmd("TIME").query_async(&mut conn).await.unwrap();
            let now_ms = secs * 1000 + micros / 1000;
            let mut setup = redis::pipe();
            setup.hset(&key, "seq", *seq);
            if let Some(epoch) = hash_epoch {
                setup.hset(&key, "epoch", *epoch);
            }
            if let Some(lease) = held {
                let e = if lease.live {
                    now_ms + 60_000
                } else {
                    now_ms - 1_000
                };
                let leases = serde_json::json!({"h": {"e": e, "a": 0, "r": lease.required}});
                setup.hset(&key, "leases", leases.to_string());
            }
            let _: () = setup.query_async(&mut conn).await.unwrap();
            let (granted, epoch): (i64, String) = script
                .key(&key)
                .arg("h")
                .arg(*copy_epoch)
                .arg(*acked)
                .arg(100)
                .invoke_async(&mut conn)
                .await
                .unwrap();
            let got = match granted {
                1 => LeaseAnswer::Extended,
                0 => LeaseAnswer::NotNow,
                _ => LeaseAnswer::Lost,
            };
            assert_eq!(got, *answer, "row {row}");
            // A publish of the next sequence waits for a holder that was just extended
            // (and has not acknowledged it), and for none that was not.
            if got == LeaseAnswer::Extended {
                // As the merge script does: the next sequence, then the waiting.
                let _: i64 = redis::cmd("HINCRBY")
                    .arg(&key)
                    .arg("seq")
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let (pending, wait): (i64, i64) = waiting
                    .key(&key)
                    .arg(seq + 1)
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(pending, 1, "row {row}: the fresh lease is waited for");
                assert!(
                    wait > 0 && wait <= 100,
                    "row {row}: at most a lease ({wait} ms)"
                );
                // Marked: not extended again until it acknowledges.
                let renew = |acked: i64| {
                    let mut invocation = script.key(&key);
                    invocation.arg("h").arg(&epoch).arg(acked).arg(100);
                    let mut conn = conn.clone();
                    async move {
                        invocation
                            .invoke_async::<(i64, String)>(&mut conn)
                            .await
                            .unwrap()
                            .0
                    }
                };
                assert_eq!(
                    renew(*acked).await,
                    0,
                    "row {row}: not renewed before it acknowledges"
                );
                assert_eq!(renew(seq + 1).await, 1, "row {row}: renewed once it has");
            }
            let _: () = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    #[derive(Debug, Clone)]
    enum MergeOp {
        /// Generations `first..=first + more`.
        Publish(i64, i64, Vec<(u8, i64, i64)>),
        Fill(i64, Vec<(u8, i64, i64)>),
    }

    fn merge_op() -> impl proptest::strategy::Strategy<Value = MergeOp> {
        use proptest::prelude::*;
        let fields = proptest::collection::vec((0u8..4, 0i64..100, 0i64..100), 0..4);
        prop_oneof![
            (0i64..10, 0i64..3, fields.clone()).prop_map(|(g, n, f)| MergeOp::Publish(g, n, f)),
            (0i64..10, fields).prop_map(|(g, f)| MergeOp::Fill(g, f)),
        ]
    }

    /// The Lua merge and its Rust twin ([`MemoryList`]) on the same random sequences of
    /// publishes and fills, generations out of order: after every step the same
    /// entries, watermark and pending generations (with `TOKENMINT_TEST_REDIS_URL`; set
    /// but unreachable is a failure).
    #[test]
    fn the_lua_watermark_merge_and_its_rust_twin_agree() {
        use proptest::prelude::*;
        let Some(url) = crate::ephemeral::test_redis_url() else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = redis::Client::open(url).expect("a Redis URL");
        let conn = runtime
            .block_on(client.get_multiplexed_async_connection())
            .expect("TOKENMINT_TEST_REDIS_URL is set but unreachable");
        let merge = redis::Script::new(&format!("{LEASE_HELPERS}{MERGE}"));
        let config = proptest::test_runner::Config::with_cases(64);
        proptest!(config, |(ops in proptest::collection::vec(merge_op(), 1..24))| {
            let keys = Keys::new(format!("test:{}:", uuid::Uuid::new_v4()));
            let (key, channel) = (keys.revocation_list(), keys.revocation_changes());
            let twin = MemoryList::default();
            let mut conn = conn.clone();
            for op in ops {
                let (mode, generations, fields) = match &op {
                    MergeOp::Publish(g, n, f) => ("publish", *g..=*g + *n, f),
                    MergeOp::Fill(g, f) => ("fill", *g..=*g, f),
                };
                let fields: Vec<(String, Held)> = fields
                    .iter()
                    .map(|(n, e, c)| (format!("jti:{n}"), Held { expires_at: *e, cutoff: *c }))
                    .collect();
                let mut invocation = merge.key(&key);
                invocation
                    .key(&channel)
                    .arg(mode)
                    .arg(*generations.start())
                    .arg(*generations.end());
                for (field, held) in &fields {
                    invocation.arg(field).arg(held.expires_at).arg(held.cutoff);
                }
                let hash: HashMap<String, String> = runtime.block_on(async {
                    invocation.invoke_async::<Vec<i64>>(&mut conn).await.unwrap();
                    redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap()
                });
                match op {
                    MergeOp::Publish(..) => twin.publish(&fields, generations),
                    MergeOp::Fill(..) => twin.fill(&fields, *generations.end()),
                }
                let lua_entries: std::collections::BTreeMap<String, Held> =
                    entries(hash.iter()).into_iter().collect();
                let lua_watermark = hash
                    .get("gen")
                    .and_then(|g| g.parse::<i64>().ok())
                    .filter(|g| *g >= 0);
                let lua_pending: std::collections::BTreeSet<i64> = hash
                    .get("pending")
                    .map(|p| p.split(',').filter_map(|n| n.parse().ok()).collect())
                    .unwrap_or_default();
                let (entries, watermark, pending) = twin.snapshot();
                prop_assert_eq!(&lua_entries, &entries, "entries after {:?}", op);
                prop_assert_eq!(lua_watermark, watermark, "watermark after {:?}", op);
                prop_assert_eq!(&lua_pending, &pending, "pending after {:?}", op);
            }
            runtime.block_on(async {
                redis::cmd("DEL").arg(&key).query_async::<()>(&mut conn).await.unwrap();
            });
        });
    }
}
