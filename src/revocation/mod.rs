//! The revocation list: which access tokens, sessions and users are cut off.
//!
//! Every revocation is written to the database first (`revocations` table), in the
//! transaction that decides it, which also adds one to the database's revocation
//! *generation* (`markers.revocations`). After commit it is published to the list: Redis
//! in production, process memory for the embedded default.
//!
//! The list knows up to which generation it is complete (a watermark: every generation up
//! to it has arrived). Each instance knows the database's generation: its own commits,
//! and a poll every second ([`Revocations::sync`]). A check that finds the list behind
//! the database, or with no watermark at all (flushed, evicted, never filled), refills the
//! list from the database before answering. So a revocation lost on the way to Redis, a
//! Redis restored from an older snapshot or an evicted list never brings a revoked token
//! back, and an instance learns within a second of a revocation that another instance
//! could not publish. Reads fail closed: when the list cannot be read, callers answer
//! 503, never "active".
//!
//! With Redis, each instance also keeps a mirror of the list in memory: subscribed to the
//! announcements every merge publishes, then a copy of the hash. Checks read the mirror
//! when its watermark has reached what the instance knows, so they cost no round trip;
//! the moment the subscription is lost (connection closed, a ping unanswered for a
//! second), the mirror is dropped and checks read Redis again, failing closed.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::ephemeral::revocation_list::{Held, MemoryList, Monotonic, RedisList};
use crate::ephemeral::{Keys, LazyRedis};
use crate::error::Error;
use crate::store::events::EventRow;
use crate::store::group::Group;
use crate::store::revocations::{self as store, RevocationRow};
use crate::store::{Db, DbConnection, LostConnection as _, StoreError, markers, write_transaction};

/// Errors of the revocation list.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Redis cannot be reached or answered an error.
    #[error("revocation list unavailable: {0}")]
    Unavailable(#[from] ::redis::RedisError),
    /// The durable record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RevocationError> for Error {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::Store(e) => e.into(),
            RevocationError::Unavailable(_) => Self::revocation_list(e),
        }
    }
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One access token, by `jti`.
    Token {
        /// The token id.
        jti: String,
    },
    /// A whole session: its refresh token and every access token carrying its `sid`.
    Session {
        /// The session id.
        sid: String,
    },
    /// Every token of a user issued before `cutoff` (unix seconds).
    User {
        /// The user id.
        sub: String,
        /// Tokens with `iat` before this are revoked.
        cutoff: i64,
    },
    /// Every token of a tenant issued before `cutoff` (a disabled tenant).
    Tenant {
        /// The tenant id.
        tenant: String,
        /// Tokens with `iat` before this are revoked.
        cutoff: i64,
    },
    /// Every token signed by a withdrawn signing key, whatever its claims (a forged one
    /// has any `jti`, `sid` or `sub`): listed until the keyring of every instance has
    /// dropped the key, so a check refuses it before that instance reloads its keys.
    Key {
        /// The key id.
        kid: String,
    },
}

/// The list's kinds of entry: the prefix of an entry's name on the list, and its row's
/// `kind` in the database.
mod kind {
    pub const TOKEN: &str = "jti";
    pub const SESSION: &str = "sid";
    pub const USER: &str = "sub";
    pub const TENANT: &str = "tenant";
    pub const KEY: &str = "kid";
}

/// Appends the list's name for an entry: `<kind>:<subject>`, e.g. `jti:<id>`.
fn push_field(name: &mut String, kind: &str, subject: &str) {
    name.push_str(kind);
    name.push(':');
    name.push_str(subject);
}

impl Revocation {
    fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => kind::TOKEN,
            Self::Session { .. } => kind::SESSION,
            Self::User { .. } => kind::USER,
            Self::Tenant { .. } => kind::TENANT,
            Self::Key { .. } => kind::KEY,
        }
    }

    fn subject(&self) -> &str {
        match self {
            Self::Token { jti } => jti,
            Self::Session { sid } => sid,
            Self::User { sub, .. } => sub,
            Self::Tenant { tenant, .. } => tenant,
            Self::Key { kid } => kid,
        }
    }

    fn cutoff(&self) -> i64 {
        match self {
            Self::User { cutoff, .. } | Self::Tenant { cutoff, .. } => *cutoff,
            _ => 0,
        }
    }

    /// The list's name for this entry: `<kind>:<subject>`, e.g. `jti:<id>` or `kid:<kid>`.
    fn field(&self) -> String {
        let (kind, subject) = (self.kind(), self.subject());
        let mut name = String::with_capacity(kind.len() + 1 + subject.len());
        push_field(&mut name, kind, subject);
        name
    }

    /// The row that records this revocation until `expires_at`.
    pub fn to_row(&self, expires_at: DateTime<Utc>) -> RevocationRow {
        RevocationRow {
            kind: self.kind().to_owned(),
            subject: self.subject().to_owned(),
            cutoff: self.cutoff(),
            expires_at: expires_at.naive_utc(),
        }
    }

    fn from_row(row: RevocationRow) -> Option<(Self, DateTime<Utc>)> {
        let entry = match row.kind.as_str() {
            kind::TOKEN => Self::Token { jti: row.subject },
            kind::SESSION => Self::Session { sid: row.subject },
            kind::USER => Self::User {
                sub: row.subject,
                cutoff: row.cutoff,
            },
            kind::TENANT => Self::Tenant {
                tenant: row.subject,
                cutoff: row.cutoff,
            },
            kind::KEY => Self::Key { kid: row.subject },
            _ => return None,
        };
        Some((entry, row.expires_at.and_utc()))
    }
}

/// A revocation with the time until which it must stay listed.
pub type Listed = (Revocation, DateTime<Utc>);

/// Revocations committed by one transaction, with the generation it gave them.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// What was revoked, and until when.
    pub entries: Vec<Listed>,
    /// The database's revocation generation after the transaction (0: nothing recorded).
    pub generation: i64,
}

/// What identifies an access token for the revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenIds<'a> {
    /// Token id.
    pub jti: &'a str,
    /// Session id (none for a client's own token).
    pub sid: Option<&'a str>,
    /// Subject: the user (or client) id.
    pub sub: &'a str,
    /// Tenant id.
    pub tenant: &'a str,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// The key that signed it.
    pub kid: &'a str,
}

/// Whether a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Not revoked.
    No,
    /// Revoked.
    Yes,
}

/// The names a token's check reads, in order: the token, its session, its subject, its
/// tenant, its signing key (a token without a session reads `sid:`, which no entry has).
/// One buffer holds the five.
struct CheckFields {
    names: String,
    ends: [usize; 5],
}

impl CheckFields {
    fn new(ids: TokenIds<'_>) -> Self {
        let parts = [
            (kind::TOKEN, ids.jti),
            (kind::SESSION, ids.sid.unwrap_or_default()),
            (kind::USER, ids.sub),
            (kind::TENANT, ids.tenant),
            (kind::KEY, ids.kid),
        ];
        let len = parts.iter().map(|(k, s)| k.len() + 1 + s.len()).sum();
        let mut names = String::with_capacity(len);
        let ends = parts.map(|(kind, subject)| {
            push_field(&mut names, kind, subject);
            names.len()
        });
        Self { names, ends }
    }

    fn names(&self) -> [&str; 5] {
        let mut start = 0;
        self.ends.map(|end| {
            let name = self.names.get(start..end).unwrap_or_default();
            start = end;
            name
        })
    }
}

/// A signing key as the list names it (`kid:<kid>`), built once per published key (the
/// keyring keeps them), so that JWKS and every door that signs read the list without
/// building a name per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyField {
    kid: String,
    field: String,
}

impl KeyField {
    /// The list's name for the key `kid`.
    pub fn new(kid: &str) -> Self {
        let mut field = String::with_capacity(kind::KEY.len() + 1 + kid.len());
        push_field(&mut field, kind::KEY, kid);
        Self {
            kid: kid.to_owned(),
            field,
        }
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl AsRef<str> for KeyField {
    fn as_ref(&self) -> &str {
        &self.field
    }
}

/// The answer for a token from what the list holds for its five fields.
fn decide(held: &[Option<Held>], iat: i64, now: DateTime<Utc>) -> Revoked {
    let now = now.timestamp();
    let live = |h: Option<&Option<Held>>| h.copied().flatten().filter(|h| h.expires_at > now);
    let revoked = live(held.first()).is_some()
        || live(held.get(1)).is_some()
        || live(held.get(2)).is_some_and(|h| iat < h.cutoff)
        || live(held.get(3)).is_some_and(|h| iat < h.cutoff)
        || live(held.get(4)).is_some();
    if revoked { Revoked::Yes } else { Revoked::No }
}

fn held(entries: &[Listed]) -> Vec<(String, Held)> {
    entries
        .iter()
        .map(|(entry, until)| {
            (
                entry.field(),
                Held {
                    expires_at: until.timestamp(),
                    cutoff: entry.cutoff(),
                },
            )
        })
        .collect()
}

enum Backend {
    Memory(MemoryList),
    Redis(Box<RedisList>),
}

/// How long after reading the database's generation an instance still answers from its
/// mirror (it reads it every second). A revoking call that could not publish waits this
/// long before it answers: by then every mirror that answers knows the new generation,
/// finds itself behind, and reads (and refills) the list instead.
pub const SYNC_FRESH: std::time::Duration = std::time::Duration::from_millis(2500);

/// The revocation list with its durable record.
pub struct Revocations {
    backend: Backend,
    db: Db,
    /// The highest generation this instance knows the database has reached.
    known: AtomicI64,
    /// When (ms after `started`) the last successful read of that generation began.
    synced_at: AtomicU64,
    started: Monotonic,
    /// Held by a refill (one at a time): how many this instance has made.
    refilling: tokio::sync::Mutex<u64>,
    /// A read of Redis failed, and no probe since found it answering.
    redis_failing: std::sync::atomic::AtomicBool,
    /// Revoking transactions of concurrent requests, committed together: see
    /// [`Revocations::write`].
    writes: Arc<Group<Revoking, Ran>>,
    /// Generations committed here and not yet in the list.
    due: Arc<Due>,
}

/// What a revoking transaction does before its revocations are recorded: its writes, and
/// the revocations they decide (see [`Revocations::write`]). It may run twice, the first
/// time rolled back.
type Body = dyn Fn(&mut DbConnection) -> Result<Vec<Listed>, Error> + Send + Sync;

/// One revoking transaction queued for a group.
struct Revoking {
    body: Arc<Body>,
    now: DateTime<Utc>,
    /// Where its commit's generations wait for their publication.
    due: Arc<Due>,
}

/// A revoking transaction's answer: what it recorded, and the publication that carries it
/// to the list.
type Written = Result<(Recorded, Arc<Publication>), Error>;

/// What became of a body in a group.
enum Ran {
    /// Committed with the group, or refused by its own doing.
    Done(Written),
    /// To run again alone, on any database thread (see [`write_group`]).
    Alone,
}

/// At most this many revoking transactions commit together.
const WRITE_GROUP: usize = 64;

/// How long a body of a group waits for a row lock that another transaction holds
/// before it gives up and runs again alone (see [`write_group`]); under the server's
/// deadlock check (by default after a second).
const GROUP_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs a group of revoking transactions in one database transaction, so that they share
/// one commit (on PostgreSQL, one WAL flush: each revoking transaction holds the
/// generation's row lock until its commit is flushed, so one at a time they would run
/// one flush after another).
///
/// Each body runs in a savepoint of its own: a body that fails (a domain error, a lock
/// waited for too long) rolls back its own writes and nothing else. Their revocations
/// get their generations last, one per body in the group's order, so the generation's
/// row is the last lock taken, as it is in a revoking transaction of its own: a group
/// forms no lock-order cycle through it. A body waits for another transaction's row
/// lock at most [`GROUP_LOCK_WAIT`], so a cycle through the rows of two bodies ends with
/// the group's body giving up, never with the other transaction failing. A body whose
/// failure was not its own (an internal error, such as that wait), and every body of a
/// group whose transaction failed without losing the connection, runs again alone once
/// the group is over, as a job of its own (so the group's next run does not wait behind
/// it); so a group fails no request that would not fail on its own.
fn write_group(conn: &mut DbConnection, jobs: Vec<Revoking>) -> Result<Vec<Ran>, StoreError> {
    let together = write_transaction(conn, |conn| {
        // A group yields first: the row locks of its earlier bodies are held while a
        // later one waits, which a transaction of its own never does, so a wait of a
        // body could close a cycle with another transaction that takes several rows
        // (ending all of a user's sessions while some of them log out). Such a body
        // gives up before the server's deadlock check (by default after a second)
        // would pick a victim, and runs again alone after the group.
        crate::store::limit_lock_waits(conn, Some(GROUP_LOCK_WAIT))?;
        let mut done = Vec::with_capacity(jobs.len());
        for job in &jobs {
            done.push(diesel::Connection::transaction(conn, |conn| {
                let entries = (job.body)(conn)?;
                Ok::<_, Error>(stage(conn, entries, job.now)?)
            }));
        }
        // The generation's row lock comes last, after every other: waited for as long
        // as it takes.
        crate::store::limit_lock_waits(conn, None)?;
        // One generation per body that recorded anything, in the group's order.
        let (mut batch, mut refusals) = (Vec::new(), Vec::with_capacity(jobs.len()));
        for done in done {
            match done {
                Ok(staged) => {
                    batch.push(staged);
                    refusals.push(None);
                }
                Err(e) => refusals.push(Some(e)),
            }
        }
        let mut recorded = sequence(conn, batch)?.into_iter();
        let written: Vec<Result<Recorded, Error>> = refusals
            .into_iter()
            .map(|refused| match refused {
                Some(e) => Err(e),
                None => Ok(recorded.next().unwrap_or_default()),
            })
            .collect();
        Ok::<_, StoreError>(written)
    });
    match together {
        Ok(written) => {
            let due = jobs.first().map(|job| &job.due);
            let publication = Publication::of(written.iter().filter_map(|w| w.as_ref().ok()), due);
            Ok(written
                .into_iter()
                .map(|answer| match answer {
                    Err(Error::Internal(_)) => Ran::Alone,
                    answer => Ran::Done(answer.map(|recorded| (recorded, publication.clone()))),
                })
                .collect())
        }
        Err(e) if !e.is_lost_connection() => {
            tracing::warn!(error = %e, size = jobs.len(), "a group of revoking transactions failed; each runs again alone");
            Ok(jobs.iter().map(|_| Ran::Alone).collect())
        }
        Err(e) => Err(e),
    }
}

/// One revoking transaction in a transaction of its own.
fn write_alone(conn: &mut DbConnection, job: &Revoking) -> Written {
    let recorded = write_transaction(conn, |conn| {
        let entries = (job.body)(conn)?;
        Ok::<_, Error>(Revocations::record(conn, entries, job.now)?)
    })?;
    let publication = Publication::of([&recorded], Some(&job.due));
    Ok((recorded, publication))
}

/// The revocations of one commit (a group's, or a transaction's alone), carried to the
/// list by one publication for all its callers: one merge of all of them, every caller
/// answered after it. Published one caller at a time, a group's generations would reach
/// the list in any order, and while a later one was known here and an earlier one not
/// yet listed, every check on this instance would find the list behind and refill it.
struct Publication {
    entries: Vec<Listed>,
    /// The generations the commit gave them (a group's are consecutive); `None` when it
    /// recorded nothing.
    generations: Option<RangeInclusive<i64>>,
    /// Set by whichever caller publishes; the others wait for it (and one of them takes
    /// over if that caller goes away before it is done).
    published: tokio::sync::OnceCell<()>,
    /// Where `generations` wait from the commit until the list has them.
    due: Option<Arc<Due>>,
}

impl Publication {
    /// The publication of a commit's revocations, its generations due from now on.
    fn of<'r>(
        recorded: impl IntoIterator<Item = &'r Recorded>,
        due: Option<&Arc<Due>>,
    ) -> Arc<Self> {
        let (mut entries, mut generations) = (Vec::new(), None::<RangeInclusive<i64>>);
        for recorded in recorded {
            if recorded.entries.is_empty() {
                continue;
            }
            entries.extend(recorded.entries.iter().cloned());
            let g = recorded.generation;
            generations = Some(match generations {
                None => g..=g,
                Some(range) => (*range.start()).min(g)..=(*range.end()).max(g),
            });
        }
        let due = generations.as_ref().and(due).cloned();
        if let (Some(due), Some(generations)) = (&due, &generations) {
            due.add(generations);
        }
        Arc::new(Self {
            entries,
            generations,
            published: tokio::sync::OnceCell::new(),
            due,
        })
    }

    /// The list has the generations (or failed to take them): no longer due.
    fn settled(&self) {
        if let (Some(due), Some(generations)) = (&self.due, &self.generations) {
            due.remove(*generations.start());
        }
    }
}

/// A publication whose callers all went away before one of them published: its
/// generations are no longer awaited here (the next check that needs them refills).
impl Drop for Publication {
    fn drop(&mut self) {
        self.settled();
    }
}

/// How long a check that finds the list behind waits for this instance's own
/// publications in flight before it refills the list instead.
const DUE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The generations this instance has committed and not yet published, each publication's
/// by its first (the only one a check compares). Consecutive commits publish concurrently, and a later one can reach the
/// list first: until the earlier one does, the list is behind what this instance knows.
/// A check that finds it so waits for them (up to [`DUE_WAIT`]) rather than refill.
#[derive(Default)]
struct Due {
    firsts: std::sync::Mutex<BTreeSet<i64>>,
    settled: tokio::sync::Notify,
}

impl Due {
    fn add(&self, generations: &RangeInclusive<i64>) {
        self.lock().insert(*generations.start());
    }

    fn remove(&self, first: i64) {
        if self.lock().remove(&first) {
            self.settled.notify_waiters();
        }
    }

    /// Whether a due publication holds a generation at most `needed`.
    fn any_up_to(&self, needed: i64) -> bool {
        self.lock().first().is_some_and(|first| *first <= needed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<i64>> {
        self.firsts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Revocations written by a transaction that has not given them their generation yet.
struct Staged {
    entries: Vec<Listed>,
    /// Their security events, read before the transaction's later writes.
    events: Vec<EventRow>,
}

/// Writes the revocations' rows and prepares their security events
/// ([`crate::events::prepare`]).
fn stage(
    conn: &mut DbConnection,
    entries: Vec<Listed>,
    now: DateTime<Utc>,
) -> Result<Staged, StoreError> {
    if entries.is_empty() {
        return Ok(Staged {
            entries,
            events: Vec::new(),
        });
    }
    for (entry, expires_at) in &entries {
        store::record(conn, &entry.to_row(*expires_at))?;
    }
    let events = crate::events::prepare(conn, &entries, now)?;
    Ok(Staged { entries, events })
}

/// Gives each of the staged revocations that recorded anything the next generation, in
/// order (one statement for all of them), and writes their events to the outbox
/// ([`crate::events::emit`]).
fn sequence(conn: &mut DbConnection, staged: Vec<Staged>) -> Result<Vec<Recorded>, StoreError> {
    let recording = staged.iter().filter(|s| !s.entries.is_empty()).count();
    if recording == 0 {
        return Ok(staged.iter().map(|_| Recorded::default()).collect());
    }
    let count = i64::try_from(recording).map_err(|e| StoreError::Other(Box::new(e)))?;
    // The generation's row lock orders every recording transaction: the events'
    // positions follow commit order.
    let last = markers::increment_by(conn, markers::REVOCATIONS, count)?;
    let mut generation = last - count;
    let mut recorded = Vec::with_capacity(staged.len());
    for staged in staged {
        if staged.entries.is_empty() {
            recorded.push(Recorded::default());
            continue;
        }
        generation += 1;
        crate::events::emit(conn, generation, staged.events)?;
        recorded.push(Recorded {
            entries: staged.entries,
            generation,
        });
    }
    Ok(recorded)
}

impl Revocations {
    /// The in-memory list (embedded default), filled from the database.
    pub fn memory(db: Db) -> Self {
        Self::with(Backend::Memory(MemoryList::default()), db)
    }

    /// The Redis list. Connects lazily: an unreachable Redis does not stop the start,
    /// it makes checks answer 503 until it is back.
    pub fn redis(db: Db, redis: Arc<LazyRedis>, keys: &Keys) -> Self {
        Self::with(Backend::Redis(Box::new(RedisList::new(redis, keys))), db)
    }

    fn with(backend: Backend, db: Db) -> Self {
        Self {
            backend,
            writes: Group::new(db.clone(), WRITE_GROUP, write_group),
            db,
            known: AtomicI64::new(0),
            synced_at: AtomicU64::new(0),
            started: Monotonic::default(),
            refilling: tokio::sync::Mutex::new(0),
            redis_failing: std::sync::atomic::AtomicBool::new(false),
            due: Arc::default(),
        }
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Records revocations inside a caller's transaction, gives them the next generation,
    /// and writes the security events they imply to the outbox ([`crate::events::emit`]);
    /// [`Revocations::publish`] them after commit. Call it once per transaction.
    pub fn record(
        conn: &mut DbConnection,
        entries: Vec<Listed>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let staged = stage(conn, entries, now)?;
        Ok(sequence(conn, vec![staged])?.pop().unwrap_or_default())
    }

    /// A revoking transaction: `body`'s writes and the revocations it returns, recorded
    /// as [`Revocations::record`] does, committed together with those of concurrent
    /// callers (see [`write_group`]) and published with them (see [`Publication`]);
    /// answers what it recorded once they are published as [`Revocations::publish`]
    /// publishes. `body` may run twice (the first time rolled back), so it reads what
    /// it captured and moves nothing out of it. Its revocations are recorded after all
    /// its writes: a transaction that deletes what they name (a user, whose tenant its
    /// event names) records them itself, with [`Revocations::record`], before the
    /// delete.
    pub async fn write<F>(&self, now: DateTime<Utc>, body: F) -> Result<Recorded, Error>
    where
        F: Fn(&mut DbConnection) -> Result<Vec<Listed>, Error> + Send + Sync + 'static,
    {
        let body: Arc<Body> = Arc::new(body);
        let job = Revoking {
            body: body.clone(),
            now,
            due: self.due.clone(),
        };
        let written = match self.writes.run(job).await? {
            Ran::Done(written) => written,
            Ran::Alone => {
                let job = Revoking {
                    body,
                    now,
                    due: self.due.clone(),
                };
                self.db.run(move |conn| write_alone(conn, &job)).await
            }
        };
        let (recorded, publication) = written?;
        publication
            .published
            .get_or_init(|| async {
                if let Some(generations) = &publication.generations {
                    let listed = self
                        .list_generations(&publication.entries, generations.clone(), now)
                        .await;
                    publication.settled();
                    Self::unlisted(listed).await;
                }
            })
            .await;
        Ok(recorded)
    }

    /// Writes committed revocations to the list, and answers once no instance can answer
    /// from a copy of the list without them: every mirror has applied them, or has lost
    /// its lease. If they cannot be written now the database still holds them; this waits
    /// until every instance has read the database's new generation (and so stopped
    /// trusting a list without them), and the next check on any instance refills its list
    /// first. Either way the revocation holds everywhere once this returns, so the caller
    /// is not told otherwise.
    pub async fn publish(&self, recorded: &Recorded, now: DateTime<Utc>) {
        if recorded.entries.is_empty() {
            return;
        }
        let generation = recorded.generation;
        let listed = self
            .list_generations(&recorded.entries, generation..=generation, now)
            .await;
        Self::unlisted(listed).await;
    }

    /// What [`Revocations::publish`] does after a failed write to the list: waits until
    /// every instance has read the database's generation.
    async fn unlisted(listed: Result<(), RevocationError>) {
        if let Err(error) = listed {
            tracing::warn!(%error, "revocations recorded but not published; waiting until every instance has read the database's generation");
            tokio::time::sleep(SYNC_FRESH).await;
        }
    }

    /// Writes the revocations of `generations`, every one of them, to the list, and
    /// raises what this instance knows to them (also when the write failed: the next
    /// check refills).
    async fn list_generations(
        &self,
        entries: &[Listed],
        generations: RangeInclusive<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), RevocationError> {
        let live: Vec<Listed> = entries
            .iter()
            .filter(|(_, until)| *until > now)
            .cloned()
            .collect();
        let fields = held(&live);
        let published = match &self.backend {
            Backend::Memory(list) => {
                list.publish(&fields, generations.clone());
                Ok(())
            }
            Backend::Redis(list) => list
                .publish(&fields, generations.clone())
                .await
                .map_err(Into::into),
        };
        // Known here once the list has them (or has failed to take them), before the
        // caller is answered: every check after the answer needs them, and one that
        // overlaps the publication may answer from the list as it stood (the
        // revocation has not happened yet for it). Raised before the write, it would
        // send every check overlapping a publication to refill the list.
        self.known.fetch_max(*generations.end(), Ordering::SeqCst);
        published
    }

    /// Whether a token is revoked: from the mirror of the Redis list when it is complete,
    /// else one round trip to the list, after a refill if the list is behind the database.
    pub async fn check(
        &self,
        ids: TokenIds<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, RevocationError> {
        let checked = self.read_and_decide(ids, now).await;
        let outcome = match &checked {
            Ok(Revoked::No) => "active",
            Ok(Revoked::Yes) => "revoked",
            Err(_) => "unavailable",
        };
        crate::metrics::count(crate::metrics::REVOCATION_CHECKS, outcome);
        checked
    }

    async fn read_and_decide(
        &self,
        ids: TokenIds<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, RevocationError> {
        let fields = CheckFields::new(ids);
        let held = self.read(&fields.names(), now).await?;
        Ok(decide(&held, ids.iat, now))
    }

    /// Of these signing keys, the ones withdrawn (listed under `kid:`), read like a
    /// token's check: from a complete list, refilled first if it is behind the database.
    /// JWKS leaves them out on an instance that has not reloaded its keys yet.
    ///
    /// Its callers can ask the database instead, so they never wait on a failing Redis:
    /// after a failed read, and until [`Revocations::probe_redis`] finds Redis answering
    /// again (or the mirror is back), it answers unavailable at once.
    pub async fn withdrawn_keys<'k>(
        &self,
        keys: &'k [KeyField],
        now: DateTime<Utc>,
    ) -> Result<Vec<&'k str>, RevocationError> {
        if self.redis_failing() && !self.mirrored() {
            return Err(RevocationError::Unavailable(::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "Redis is failing",
            ))));
        }
        let read = self.read(keys, now).await;
        if read.is_err() && matches!(self.backend, Backend::Redis(_)) {
            self.redis_failing.store(true, Ordering::Release);
        }
        let held = read?;
        let now = now.timestamp();
        Ok(keys
            .iter()
            .zip(held)
            .filter(|(_, h)| h.is_some_and(|h| h.expires_at > now))
            .map(|(key, _)| key.kid())
            .collect())
    }

    /// Whether a read of Redis failed since Redis last answered a probe.
    pub fn redis_failing(&self) -> bool {
        self.redis_failing.load(Ordering::Acquire)
    }

    /// Tries Redis once (the background sync does, every second, while it is failing):
    /// when it answers, [`Revocations::withdrawn_keys`] reads it again.
    pub async fn probe_redis(&self) {
        if self.redis_failing() && self.ping().await.is_ok() {
            self.redis_failing.store(false, Ordering::Release);
        }
    }

    /// What the list holds for `fields`: from the mirror of the Redis list when it is
    /// complete, else one round trip to the list, after a refill if the list is behind
    /// the database.
    async fn read<F: AsRef<str> + Sync>(
        &self,
        fields: &[F],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<Held>>, RevocationError> {
        match self.read_in_memory(fields) {
            Some(held) => Ok(held),
            // Boxed: the usual answer above stays a small future, without the round
            // trips' state.
            None => Box::pin(self.read_from_list(fields, now)).await,
        }
    }

    /// The answer of the list in this process's memory (the in-memory list, or the mirror
    /// of the Redis list), when it has everything this instance knows of; `None` sends
    /// the read to [`Revocations::read_from_list`].
    fn read_in_memory<F: AsRef<str>>(&self, fields: &[F]) -> Option<Vec<Option<Held>>> {
        let mirror;
        let list = match &self.backend {
            Backend::Memory(list) => list,
            Backend::Redis(list) => {
                let at = std::time::Instant::now();
                if !self.synced_recently(at) {
                    return None;
                }
                mirror = list.mirror(at)?;
                mirror.as_deref()?
            }
        };
        let known = self.known.load(Ordering::SeqCst);
        let (watermark, held) = list.read(fields);
        watermark.is_some_and(|w| w >= known).then_some(held)
    }

    /// The list's answer (one round trip to Redis), after a refill if it is behind the
    /// database.
    async fn read_from_list<F: AsRef<str> + Sync>(
        &self,
        fields: &[F],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<Held>>, RevocationError> {
        // Complete up to what this instance knows when the check begins: every
        // revocation answered before it is published, or (if its publication failed)
        // known here and in the database.
        let mut needed = self.known.load(Ordering::SeqCst);
        let read = || async {
            Ok::<_, RevocationError>(match &self.backend {
                Backend::Memory(list) => list.read(fields),
                Backend::Redis(list) => list.read(fields).await?,
            })
        };
        let (watermark, held) = read().await?;
        if watermark.is_some_and(|w| w >= needed) {
            return Ok(held);
        }
        // Behind while generations this instance committed are being published: they are
        // on their way, so the check waits for them (briefly) instead of refilling.
        let deadline = tokio::time::Instant::now() + DUE_WAIT;
        loop {
            // Listening before the look at what is due: a settlement in between wakes it.
            let settled = self.due.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if !self.due.any_up_to(needed)
                || tokio::time::timeout_at(deadline, settled).await.is_err()
            {
                break;
            }
            let (watermark, held) = read().await?;
            if watermark.is_some_and(|w| w >= needed) {
                return Ok(held);
            }
        }
        let refilling = self.refilling.lock().await;
        // While this check waited for the lock, another may have refilled the list, or the
        // publication it lacked may have arrived: then it needs no refill of its own.
        let (watermark, held) = read().await?;
        if watermark.is_some_and(|w| w >= needed) {
            return Ok(held);
        }
        // The refill makes the list complete up to a generation read after the check
        // began. Revocations committed since (their callers not answered yet) may have
        // raised what this instance knows again: they are not needed, but a watermark
        // below the refill's (the list flushed or rewound meanwhile) is a list that lost
        // entries.
        needed = needed.max(self.refill_locked(refilling, now).await?.1);
        let (watermark, held) = read().await?;
        if watermark.is_some_and(|w| w >= needed) {
            return Ok(held);
        }
        Err(RevocationError::Unavailable(::redis::RedisError::from((
            ::redis::ErrorKind::Io,
            "the revocation list lost entries during a refill",
        ))))
    }

    /// Whether the database's generation was read less than [`SYNC_FRESH`] before `at`.
    fn synced_recently(&self, at: std::time::Instant) -> bool {
        let synced_at = self.synced_at.load(Ordering::Acquire);
        let fresh = u64::try_from(SYNC_FRESH.as_millis()).unwrap_or(u64::MAX);
        synced_at > 0 && self.started.ms(at) < synced_at.saturating_add(fresh)
    }

    /// Learns the database's generation (every instance polls it every second).
    pub async fn sync(&self) -> Result<(), RevocationError> {
        // From before the read: the generation read is at least the one of this moment.
        let started = self.started.ms(std::time::Instant::now()).max(1);
        let generation = self
            .db
            .run(|conn| markers::get(conn, markers::REVOCATIONS))
            .await?;
        self.known.fetch_max(generation, Ordering::SeqCst);
        self.synced_at.fetch_max(started, Ordering::AcqRel);
        Ok(())
    }

    /// Copies every live revocation from the database into the list and raises its
    /// watermark to the generation read before them.
    pub async fn refill(&self, now: DateTime<Utc>) -> Result<usize, RevocationError> {
        let refilling = self.refilling.lock().await;
        Ok(self.refill_locked(refilling, now).await?.0)
    }

    /// [`Revocations::refill`] by the holder of its lock (one at a time), with the
    /// generation the list is now complete up to.
    async fn refill_locked(
        &self,
        mut refills: tokio::sync::MutexGuard<'_, u64>,
        now: DateTime<Utc>,
    ) -> Result<(usize, i64), RevocationError> {
        let naive = now.naive_utc();
        // The generation first: rows read after it include every generation up to it.
        let (generation, rows) = self
            .db
            .run(move |conn| {
                let generation = markers::get(conn, markers::REVOCATIONS)?;
                Ok::<_, StoreError>((generation, store::live(conn, naive)?))
            })
            .await?;
        let entries: Vec<Listed> = rows.into_iter().filter_map(Revocation::from_row).collect();
        let fields = held(&entries);
        match &self.backend {
            Backend::Memory(list) => list.fill(&fields, generation),
            Backend::Redis(list) => list.fill(&fields, generation).await?,
        }
        self.known.fetch_max(generation, Ordering::SeqCst);
        *refills += 1;
        metrics::counter!(crate::metrics::REVOCATION_REFILLS).increment(1);
        if !fields.is_empty() {
            tracing::info!(
                entries = fields.len(),
                generation,
                backend = self.backend(),
                "revocation list refilled from the database"
            );
        }
        Ok((fields.len(), generation))
    }

    /// Keeps this instance's mirror of the Redis list current, for as long as the process
    /// runs (nothing to do for the in-memory list). See [`RedisList`].
    pub async fn keep_mirror(&self) {
        if let Backend::Redis(list) = &self.backend {
            list.keep_mirror().await;
        }
    }

    /// Whether checks are answered from a complete mirror of the Redis list right now.
    pub fn mirrored(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => false,
            Backend::Redis(list) => {
                let at = std::time::Instant::now();
                self.synced_recently(at) && list.mirror(at).is_some()
            }
        }
    }

    /// Answers whether the list can be read.
    pub async fn ping(&self) -> Result<(), RevocationError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(list) => Ok(list.ping().await?),
        }
    }

    /// Drops expired entries from the list and the database.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<usize, RevocationError> {
        match &self.backend {
            Backend::Memory(list) => list.purge(now.timestamp()),
            Backend::Redis(list) => {
                if let Some(mirror) = list.mirror_copy() {
                    mirror.purge(now.timestamp());
                }
                list.purge(now.timestamp()).await?;
            }
        }
        let naive = now.naive_utc();
        Ok(self
            .db
            .run(move |conn| store::purge_expired(conn, naive))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: String, until: DateTime<Utc>) -> Listed {
        (Revocation::Token { jti }, until)
    }

    /// The ids of a token `jti` of one user, with no session, issued `at`.
    fn user_token(jti: &str, at: DateTime<Utc>) -> TokenIds<'_> {
        TokenIds {
            jti,
            sid: None,
            sub: "user",
            tenant: "default",
            iat: at.timestamp(),
            kid: "kid",
        }
    }

    /// A database in `dir` on one connection (one database thread), its in-memory list
    /// filled (complete up to generation 0), and the moment the test runs at.
    async fn filled_memory_list(dir: &tempfile::TempDir) -> (Db, Revocations, DateTime<Utc>) {
        let url = crate::store::DatabaseUrl::Sqlite(dir.path().join("revocations.db"));
        let db = Db::new(&url, 1, std::time::Duration::from_secs(5)).unwrap();
        db.migrate().await.unwrap();
        let revocations = Revocations::memory(db.clone());
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        revocations.refill(now).await.unwrap();
        (db, revocations, now)
    }

    /// Concurrent revoking transactions, committed in groups: a body that fails rolls
    /// back its own writes only, one whose failure was not its own (an internal error)
    /// runs again alone, and the others' revocations commit, each with a generation of
    /// its own, with no gap. When any caller of a group is answered, every revocation of
    /// its group is listed (one publication for the group), so a check after it finds
    /// the list complete.
    #[tokio::test]
    async fn a_group_of_revoking_transactions_commits_each_on_its_own_terms() {
        let dir = tempfile::tempdir().unwrap();
        let (db, revocations, now) = filled_memory_list(&dir).await;
        let revocations = Arc::new(revocations);
        let until = now + chrono::TimeDelta::hours(1);
        // The generations that have reached the list (in order or not).
        let arrived = |revocations: &Revocations| match &revocations.backend {
            Backend::Memory(list) => {
                let (_, watermark, pending) = list.snapshot();
                (1..=20)
                    .filter(|g| watermark.is_some_and(|w| w >= *g) || pending.contains(g))
                    .collect::<Vec<i64>>()
            }
            Backend::Redis(_) => Vec::new(),
        };
        let flaky = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let started = Arc::new(tokio::sync::Notify::new());
        let write = |i: usize| {
            let (revocations, flaky) = (revocations.clone(), flaky.clone());
            let started = started.clone();
            async move {
                let answer = revocations
                    .write(now, move |conn| {
                        if i == 0 {
                            // The others queue meanwhile, and run as a group.
                            started.notify_one();
                            #[allow(clippy::disallowed_methods)] // a database thread
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                        match i % 3 {
                            1 => {
                                let (written, _) = token(format!("failed-{i}"), until);
                                store::record(conn, &written.to_row(until))?;
                                Err(Error::invalid("refused after a write"))
                            }
                            2 if flaky.swap(false, Ordering::SeqCst) => {
                                Err(Error::internal("deadlock detected"))
                            }
                            _ => Ok(vec![token(format!("t-{i}"), until)]),
                        }
                    })
                    .await;
                (answer, arrived(&revocations))
            }
        };
        let first = tokio::spawn(write(0));
        started.notified().await;
        let (first, rest) = tokio::join!(first, futures_util::future::join_all((1..30).map(write)));
        let answers = std::iter::once(first.unwrap()).chain(rest);

        let mut generations = Vec::new();
        let mut expected_rows = Vec::new();
        for (i, (answer, arrived)) in (0..30).zip(answers) {
            if i % 3 == 1 {
                assert!(matches!(answer, Err(Error::Invalid(_))), "{i}: {answer:?}");
                continue;
            }
            let recorded = answer.unwrap_or_else(|e| panic!("{i}: {e}"));
            assert_eq!(recorded.entries, vec![token(format!("t-{i}"), until)]);
            // The first body ran alone (generation 1), the 18 that queued behind it
            // committed together (2 to 19), the one that failed internally ran again alone
            // after them (20).
            let committed_with = match recorded.generation {
                1 => 1..=1,
                20 => 20..=20,
                _ => 2..=19,
            };
            assert!(
                committed_with.clone().all(|g| arrived.contains(&g)),
                "{i}: generation {} answered when the list had {arrived:?} of {committed_with:?}",
                recorded.generation
            );
            generations.push(recorded.generation);
            expected_rows.push(format!("t-{i}"));
        }
        generations.sort_unstable();
        assert_eq!(
            generations,
            (1..=20).collect::<Vec<i64>>(),
            "one each, no gap"
        );
        let (generation, mut rows) = db
            .run(move |conn| {
                let generation = markers::get(conn, markers::REVOCATIONS)?;
                Ok::<_, StoreError>((generation, store::live(conn, now.naive_utc())?))
            })
            .await
            .unwrap();
        assert_eq!(generation, 20);
        let mut subjects: Vec<String> = rows.drain(..).map(|r| r.subject).collect();
        subjects.sort();
        expected_rows.sort();
        assert_eq!(subjects, expected_rows, "no refused body's write committed");
    }

    /// Checks that find the list behind the database at the same moment refill it once:
    /// the others, waiting for the refill's lock, find it complete when they get it.
    #[tokio::test]
    async fn checks_that_find_the_list_behind_together_refill_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, revocations, now) = filled_memory_list(&dir).await;
        let until = now + chrono::TimeDelta::hours(1);
        // Recorded in the database and never published (a publication lost on its way),
        // then learnt by this instance's poll.
        db.run(move |conn| Revocations::record(conn, vec![token("lost".into(), until)], now))
            .await
            .unwrap();
        revocations.sync().await.unwrap();
        let ids = |jti| user_token(jti, now);
        let checks = (0..20).map(|i| {
            let jti = if i % 2 == 0 { "lost" } else { "other" };
            let revocations = &revocations;
            async move { revocations.check(ids(jti), now).await.unwrap() }
        });
        let answers = futures_util::future::join_all(checks).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let expected = if i % 2 == 0 {
                Revoked::Yes
            } else {
                Revoked::No
            };
            assert_eq!(answer, expected, "check {i}");
        }
        assert_eq!(
            *revocations.refilling.lock().await,
            2,
            "the first refill and one more"
        );
    }

    /// A check that finds the list behind by a commit of this instance whose publication
    /// is still on its way (a later commit's reached the list first) waits for it instead
    /// of refilling; if that publication is abandoned, the check refills.
    #[tokio::test]
    async fn a_check_behind_a_publication_of_this_instance_waits_for_it_rather_than_refill() {
        let dir = tempfile::tempdir().unwrap();
        let (db, revocations, now) = filled_memory_list(&dir).await;
        let until = now + chrono::TimeDelta::hours(1);
        let ids = |jti| user_token(jti, now);
        let record = |jti: &'static str| {
            db.run(move |conn| Revocations::record(conn, vec![token(jti.into(), until)], now))
        };
        let refills = || async { *revocations.refilling.lock().await };
        for abandoned in [false, true] {
            let (early, late) = if abandoned {
                ("early-abandoned", "late-abandoned")
            } else {
                ("early", "late")
            };
            // Two commits; the earlier one's publication is due, the later one's lands
            // first: the list is behind what this instance knows.
            let first = record(early).await.unwrap();
            let publication = Publication::of([&first], Some(&revocations.due));
            let second = record(late).await.unwrap();
            assert_eq!(second.generation, first.generation + 1);
            revocations.publish(&second, now).await;
            let before = refills().await;
            let settle = async {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                if abandoned {
                    drop(publication);
                } else {
                    let generations = publication.generations.clone().unwrap();
                    revocations
                        .list_generations(&publication.entries, generations, now)
                        .await
                        .unwrap();
                    publication.settled();
                }
            };
            let (answers, ()) = tokio::join!(
                futures_util::future::join_all(
                    [early, late, "other"].map(|jti| revocations.check(ids(jti), now))
                ),
                settle
            );
            let answers: Vec<Revoked> = answers.into_iter().map(Result::unwrap).collect();
            assert_eq!(answers, [Revoked::Yes, Revoked::Yes, Revoked::No]);
            let expected = if abandoned { before + 1 } else { before };
            assert_eq!(refills().await, expected, "abandoned: {abandoned}");
        }
    }

    #[test]
    fn a_key_is_read_under_the_field_its_withdrawal_is_listed_under() {
        let kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let key = KeyField::new(kid);
        let withdrawal = Revocation::Key {
            kid: kid.to_owned(),
        };
        assert_eq!(key.as_ref(), withdrawal.field());
        assert_eq!(key.as_ref(), format!("kid:{kid}"));
        assert_eq!(key.kid(), kid);
    }

    #[test]
    fn a_check_reads_each_of_its_tokens_revocations_under_the_name_it_is_listed_under() {
        let ids = TokenIds {
            jti: "0193c2e0-6f1e-7c3a-9a57-5b1f3c7c4d01",
            sid: Some("0193c2e0-6f1e-7c3a-9a57-5b1f3c7c4d02"),
            sub: "0193c2e0-6f1e-7c3a-9a57-5b1f3c7c4d03",
            tenant: "default",
            iat: 1_800_000_000,
            kid: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        };
        // In the order `decide` reads them.
        let revocations = [
            Revocation::Token {
                jti: ids.jti.to_owned(),
            },
            Revocation::Session {
                sid: "0193c2e0-6f1e-7c3a-9a57-5b1f3c7c4d02".to_owned(),
            },
            Revocation::User {
                sub: ids.sub.to_owned(),
                cutoff: 1,
            },
            Revocation::Tenant {
                tenant: ids.tenant.to_owned(),
                cutoff: 1,
            },
            Revocation::Key {
                kid: ids.kid.to_owned(),
            },
        ];
        let fields = CheckFields::new(ids);
        assert_eq!(
            fields.names(),
            revocations.each_ref().map(Revocation::field)
        );
        assert_eq!(fields.names()[0], format!("jti:{}", ids.jti));
        // A token without a session reads a name no session's revocation has.
        let sessionless = CheckFields::new(TokenIds { sid: None, ..ids });
        assert_eq!(sessionless.names()[1], "sid:");
        assert_eq!(sessionless.names()[4], fields.names()[4]);
        // Each entry comes back from its database row as it was recorded.
        let until = DateTime::from_timestamp(1_800_000_900, 0).unwrap();
        for revocation in revocations {
            let row = revocation.to_row(until);
            assert_eq!(Revocation::from_row(row), Some((revocation, until)));
        }
    }

    #[test]
    fn a_token_is_revoked_by_its_jti_its_session_or_a_later_cut_off() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let live = |cutoff| {
            Some(Held {
                expires_at: 1_800_000_100,
                cutoff,
            })
        };
        let gone = Some(Held {
            expires_at: 1_800_000_000,
            cutoff: 0,
        });
        let iat = 1_799_999_990;
        assert_eq!(decide(&[None; 5], iat, now), Revoked::No);
        assert_eq!(
            decide(&[live(0), None, None, None, None], iat, now),
            Revoked::Yes
        );
        assert_eq!(
            decide(&[None, live(0), None, None, None], iat, now),
            Revoked::Yes
        );
        assert_eq!(
            decide(&[None, None, live(iat + 1), None, None], iat, now),
            Revoked::Yes,
            "a user's cut-off"
        );
        assert_eq!(
            decide(&[None, None, None, live(iat + 1), None], iat, now),
            Revoked::Yes,
            "a tenant's cut-off"
        );
        assert_eq!(
            decide(&[None, None, None, None, live(0)], iat, now),
            Revoked::Yes,
            "a withdrawn signing key, whatever the token's issue time"
        );
        assert_eq!(
            decide(&[None, None, live(iat), live(iat), None], iat, now),
            Revoked::No,
            "issued at the cut-off"
        );
        assert_eq!(
            decide(&[gone, gone, None, gone, gone], iat, now),
            Revoked::No,
            "expired entries"
        );
    }
}
