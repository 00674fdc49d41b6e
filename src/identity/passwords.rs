//! Argon2id password hashing, bounded and off the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::admission::{Admissions, Class, Permit};
use crate::error::Error;
use crate::threads::Threads;

/// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;
/// Nice value of the hashing threads: logins yield the CPU to cheaper requests.
const ARGON2_NICENESS: i32 = 10;
/// Longer inputs are refused before hashing: they cost time and prove nothing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when one is set.
pub const MIN_NEW_PASSWORD_CHARS: usize = 8;

/// A password as typed. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    /// A password presented at login: anything from 1 to 1024 bytes.
    pub fn parse_presented(secret: SecretString) -> Result<Self, Error> {
        let len = secret.expose_secret().len();
        if len == 0 || len > MAX_PASSWORD_BYTES {
            return Err(Error::invalid("password must be 1 to 1024 bytes"));
        }
        Ok(Self(secret))
    }

    /// A new password: at least 8 characters, at most 1024 bytes.
    pub fn parse_new(secret: SecretString) -> Result<Self, Error> {
        let s = secret.expose_secret();
        if s.chars().count() < MIN_NEW_PASSWORD_CHARS || s.len() > MAX_PASSWORD_BYTES {
            return Err(Error::invalid(
                "password must be at least 8 characters and at most 1024 bytes",
            ));
        }
        Ok(Self(secret))
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

/// Errors of the hasher.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 failed: a bug or a corrupt stored hash.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The hashing job panicked or its thread is gone.
    #[error("password hashing task failed")]
    Task,
}

impl From<PasswordError> for Error {
    fn from(e: PasswordError) -> Self {
        Self::internal(e)
    }
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `needs_rehash` when the stored parameters are not today's.
    Match {
        /// Stored hash uses other parameters than the configured ones.
        needs_rehash: bool,
    },
    /// Wrong password, or no such user.
    Mismatch,
}

/// Hashes and verifies passwords on `concurrency` dedicated threads (each hash takes
/// 19 MiB), so that memory is bounded by `concurrency` and a login flood never occupies
/// the threads the database needs. (The binary uses jemalloc, which returns each
/// freed block to the system; glibc's per-thread arenas kept them.)
pub struct PasswordHasher {
    threads: Threads,
    dummy_hash: String,
    concurrency: usize,
    /// Logins admitted only while the queue can be worked off within this.
    queue_timeout: Duration,
    /// The fair waiting room in front of the threads.
    admissions: Admissions,
    /// Moving average of one hash, microseconds.
    mean_micros: Arc<AtomicU64>,
    /// argon2 memory (19 MiB each) kept between verifications while logins queue.
    memory: Memory,
}

/// argon2 memory kept between verifications while more logins are admitted than there are
/// threads: allocating it afresh cost page faults and the kernel's zeroing of every page,
/// a sixth of a verification. Freed as soon as the queue is empty.
type Memory = Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>;

fn memory(memory: &Memory) -> std::sync::MutexGuard<'_, Vec<Vec<argon2::Block>>> {
    memory.lock().unwrap_or_else(|p| p.into_inner())
}

/// A login's hashing thread, given back when dropped.
#[derive(Debug)]
pub struct Admission {
    permit: Option<Permit>,
    admissions: Admissions,
    memory: Memory,
}

impl Drop for Admission {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.admissions.in_flight() == 0 {
            // Nothing queued or running: no memory is kept while idle.
            memory(&self.memory).clear();
        }
    }
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants that argon2 accepts; a failure here is a bug caught by tests.
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// `argon2().verify_password`, computing into `blocks` (grown if it is too small).
fn verify_blocking(
    password: &[u8],
    stored: &str,
    blocks: &mut Vec<argon2::Block>,
) -> Result<Verified, PasswordError> {
    let hash_error = |e: argon2::password_hash::Error| PasswordError::Hash(e.to_string());
    let parsed = PasswordHash::new(stored).map_err(hash_error)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hash_error)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| PasswordError::Hash(e.to_string()))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(hash_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::Hash(
            "the stored hash has no salt or output".into(),
        ));
    };
    let mut salt_buf = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buf).map_err(hash_error)?;
    let mut out = [0u8; argon2::password_hash::Output::MAX_LENGTH];
    let out = out
        .get_mut(..expected.len())
        .ok_or_else(|| PasswordError::Hash("the stored output is too long".into()))?;
    let count = params.block_count();
    if blocks.len() < count {
        blocks.resize(count, argon2::Block::default());
    }
    let computed = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut blocks[..count],
    );
    let matched = match computed {
        // Output's equality is constant-time.
        Ok(()) => argon2::password_hash::Output::new(out)
            .map(|o| o == expected)
            .map_err(hash_error)?,
        Err(e) => return Err(PasswordError::Hash(e.to_string())),
    };
    match matched {
        true => {
            let current = Params::try_from(&parsed).ok();
            let needs_rehash = parsed.algorithm != Algorithm::Argon2id.ident()
                || parsed.version != Some(Version::V0x13.into())
                || current.is_none_or(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost()) != (MEMORY_KIB, ITERATIONS, LANES)
                });
            Ok(Verified::Match { needs_rehash })
        }
        false => Ok(Verified::Mismatch),
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once. Computes the dummy hash
    /// that unknown users are checked against, so they cost what a real user costs.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        Self::with_queue_timeout(concurrency, Duration::from_secs(1))
    }

    /// [`PasswordHasher::new`], admitting logins only while the queue ahead of them can be
    /// worked off within `queue_timeout` (see [`PasswordHasher::admit`]).
    pub fn with_queue_timeout(
        concurrency: usize,
        queue_timeout: Duration,
    ) -> Result<Self, PasswordError> {
        let started = Instant::now();
        let dummy_hash = hash_blocking(b"tokenmint dummy password, never matched")?;
        let first = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let threads = Threads::new("argon2", concurrency, ARGON2_NICENESS)
            .map_err(|_| PasswordError::Task)?;
        Ok(Self {
            threads,
            dummy_hash,
            concurrency: concurrency.max(1),
            queue_timeout,
            admissions: Admissions::new(concurrency),
            mean_micros: Arc::new(AtomicU64::new(first.max(1))),
            memory: Memory::default(),
        })
    }

    /// A hashing thread for one login's verification, once its turn comes (see
    /// [`super::admission`]): `class` is [`Class::Device`] for a login with a valid device
    /// proof, else its address. The waiting room holds what the threads can finish within
    /// the queue timeout (measured by the moving average of recent hashes); a login not
    /// owed a place in it is `Busy` at once, so a flood gets quick 503s instead of waits
    /// that end in client timeouts.
    pub async fn admit(&self, class: Class) -> Result<Admission, Error> {
        let mean = self.mean_micros.load(Ordering::Relaxed).max(1);
        let budget = u64::try_from(self.queue_timeout.as_micros()).unwrap_or(u64::MAX);
        let per_thread = usize::try_from(budget / mean).unwrap_or(usize::MAX);
        let capacity = per_thread
            .saturating_mul(self.concurrency)
            .max(self.concurrency);
        match self.admissions.admit(class, capacity).await {
            Ok(permit) => Ok(self.admission(permit)),
            Err(_) => Err(Error::Busy {
                retry_after_secs: self.queue_timeout.as_secs().max(1),
            }),
        }
    }

    fn admission(&self, permit: Permit) -> Admission {
        Admission {
            permit: Some(permit),
            admissions: self.admissions.clone(),
            memory: self.memory.clone(),
        }
    }

    /// How long a refused login is held before its 503: 100 ms, or the queue timeout if
    /// shorter (a refusal never takes longer than an admitted login may wait).
    pub fn busy_pause(&self) -> Duration {
        self.queue_timeout.min(Duration::from_millis(100))
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let gauge = metrics::gauge!(crate::metrics::HASHES_IN_FLIGHT);
        gauge.increment(1.0);
        let mean = self.mean_micros.clone();
        // A panic in argon2 is a bug; the request gets a 500, the thread lives on.
        let result = self
            .threads
            .run(move || {
                let started = Instant::now();
                let result = f();
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let old = mean.load(Ordering::Relaxed);
                mean.store(
                    (old.saturating_mul(7) / 8).saturating_add(took / 8).max(1),
                    Ordering::Relaxed,
                );
                result
            })
            .await;
        gauge.decrement(1.0);
        result.map_err(|_| PasswordError::Task)?
    }

    /// Runs `f` as an admitted job (the admission is counted in the queue already).
    async fn run_admitted<T: Send + 'static>(
        &self,
        admission: Admission,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let result = self.run(f).await;
        drop(admission);
        result
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let admission = self
            .admit(Class::Internal)
            .await
            .map_err(|_| PasswordError::Task)?;
        self.run_admitted(admission, move || hash_blocking(password.bytes()))
            .await
    }

    /// Verifies `password` against `stored`; with `None` (unknown user) it verifies
    /// against the dummy hash and answers `Mismatch`, taking the same time.
    pub async fn verify(
        &self,
        admission: Admission,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verified, PasswordError> {
        let (hash, known) = match stored {
            Some(h) => (h, true),
            None => (self.dummy_hash.clone(), false),
        };
        let (admissions, threads, kept) = (
            self.admissions.clone(),
            self.concurrency,
            self.memory.clone(),
        );
        let verified = self
            .run_admitted(admission, move || {
                let mut blocks = memory(&kept).pop().unwrap_or_default();
                let verified = verify_blocking(password.bytes(), &hash, &mut blocks);
                // More admitted than threads: a login is waiting, and will use it.
                if admissions.in_flight() > threads {
                    memory(&kept).push(blocks);
                }
                verified
            })
            .await?;
        Ok(if known { verified } else { Verified::Mismatch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse_presented(SecretString::from(s.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash(pw("correct horse")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify(
                    hasher.admit(Class::Internal).await.unwrap(),
                    pw("correct horse"),
                    Some(hash.clone())
                )
                .await
                .unwrap(),
            Verified::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher
                .verify(
                    hasher.admit(Class::Internal).await.unwrap(),
                    pw("wrong horse"),
                    Some(hash)
                )
                .await
                .unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_the_dummy_password() {
        let hasher = PasswordHasher::new(1).unwrap();
        let dummy = pw("tokenmint dummy password, never matched");
        assert_eq!(
            hasher
                .verify(hasher.admit(Class::Internal).await.unwrap(), dummy, None)
                .await
                .unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_stored_parameters_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let hash = weak.hash_password(b"pw-123456", &salt).unwrap().to_string();
        let hasher = PasswordHasher::new(1).unwrap();
        assert_eq!(
            hasher
                .verify(
                    hasher.admit(Class::Internal).await.unwrap(),
                    pw("pw-123456"),
                    Some(hash)
                )
                .await
                .unwrap(),
            Verified::Match { needs_rehash: true }
        );
    }

    #[test]
    fn new_passwords_have_a_minimum_length_and_all_a_maximum() {
        assert!(Password::parse_new(SecretString::from("short".to_owned())).is_err());
        assert!(Password::parse_new(SecretString::from("long enough".to_owned())).is_ok());
        assert!(Password::parse_presented(SecretString::from(String::new())).is_err());
        assert!(Password::parse_presented(SecretString::from("x".repeat(1025))).is_err());
    }

    #[tokio::test]
    async fn logins_beyond_what_the_queue_timeout_allows_are_turned_away_at_once() {
        // One thread, hashes of about a second, a queue timeout of a second and a half:
        // one running and one waiting fit; the next from the same address is busy at
        // once, and a finished one makes room again.
        let hasher = PasswordHasher::with_queue_timeout(1, Duration::from_millis(1500)).unwrap();
        hasher.mean_micros.store(1_000_000, Ordering::Relaxed);
        let a = || Class::Address("10.0.0.1".into());
        let first = hasher.admit(a()).await.unwrap();
        let h = Arc::new(hasher);
        let waiting = tokio::spawn({
            let h = h.clone();
            async move { h.admit(Class::Address("10.0.0.1".into())).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        match h.admit(a()).await {
            Err(Error::Busy { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.admissions.in_flight(), 2, "a refusal takes no place");
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
        assert!(h.admit(a()).await.is_ok());
    }
}
