//! Load benchmark: starts Tokenmint (embedded, or PostgreSQL + Redis) as a child process,
//! drives each scenario at fixed concurrency for a bounded time, measures references in
//! the same run, and prints ratios against them (absolute numbers drift on shared machines).
//!
//! `cargo bench --bench loadtest -- --backend sqlite|postgres`: the sitting (every
//! scenario for `--seconds`, at `--connections`).
//! `... -- --duration 600 --connections 64`: a sustained refresh run instead, reported
//! per minute. `--sessions N` seeds N live sessions first; `--reference-connections 64`
//! measures refresh and `/api/me` at 64 connections too, for the ratio. Every figure
//! carries the CPU time per request of the service's and the database's processes.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[path = "support/cost.rs"]
mod cost;
#[path = "support/database.rs"]
mod database;
mod support;
use serde::Serialize;
use serde_json::{Value, json};
use support::Server;

// The same allocator as the server, so the argon2 reference pays what the server pays.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Tokenmint load benchmark")]
struct Args {
    /// `sqlite` (embedded, in-memory revocation list) or `postgres` (with Redis).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Keep-alive connections per scenario, each with one request in flight.
    #[arg(
        long = "connections",
        visible_alias = "concurrency",
        default_value_t = 16
    )]
    concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Instead of the sitting: one refresh run of this many seconds (every connection
    /// rotating its own session, or with `--sessions` the seeded ones in turn), reported
    /// per `--interval`, then the database's size per live session.
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds per line of a `--duration` run's report.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Live sessions to seed straight into the database (over 1,000 users) before
    /// measuring. In the sitting, refresh (spread over the seeded sessions) and `/api/me`
    /// are measured with 1,000 sessions first and again with this many, for the ratio.
    #[arg(long)]
    sessions: Option<u64>,
    /// PostgreSQL: set the sessions table's fillfactor to this before seeding (the
    /// migrations set 85; see the migration `sessions_fillfactor`), to compare.
    #[arg(long)]
    sessions_fillfactor: Option<u8>,
    /// In the sitting, also measure refresh and `/api/me` at this many connections, for
    /// the ratio against `--connections`.
    #[arg(long)]
    reference_connections: Option<usize>,
    /// PostgreSQL server for `--backend postgres` (a database is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Redis for `--backend postgres` (keys under a fresh prefix).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The server's TOKENMINT_VERIFIED_TOKEN_CACHE (0 verifies every signature: the
    /// introspection and `/api/me` figures then measure the signature path).
    #[arg(long, default_value_t = 10_000)]
    verified_token_cache: usize,
    /// The server binary to drive (default: this build's `tokenmint`), to compare builds
    /// with one harness.
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Where to write the figures as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Figures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers other than 2xx, and socket errors.
    errors: u64,
    /// Requests that got no answer (connection refused, reset or timed out).
    socket_errors: u64,
    requests: u64,
    /// CPU time per request of the service's process, in µs.
    service_cpu_us: Option<f64>,
    /// CPU time per request of the database's processes (PostgreSQL and Redis; none
    /// for the embedded backend, which runs in the service), in µs.
    database_cpu_us: Option<f64>,
}

impl Figures {
    /// Service and database CPU per request, in µs.
    fn cpu_us(&self) -> Option<f64> {
        Some(self.service_cpu_us? + self.database_cpu_us.unwrap_or(0.0))
    }
}

/// Reads the CPU time of the service's and the database's processes.
#[derive(Clone)]
struct Meter {
    service: u32,
    /// Command names of the database's processes (none: the embedded backend).
    database: &'static [&'static str],
    ticks_per_sec: f64,
}

/// CPU ticks of the service and of the database at one moment.
#[derive(Clone, Copy)]
struct Reading(u64, u64);

impl Meter {
    fn read(&self) -> Reading {
        Reading(
            cost::cpu_ticks(&[self.service]),
            cost::cpu_ticks(&cost::pids_named(self.database)),
        )
    }

    /// µs of CPU per request between two readings, service and database.
    fn per_request(&self, from: Reading, to: Reading, requests: u64) -> (f64, Option<f64>) {
        let us = |ticks: u64| ticks as f64 / self.ticks_per_sec * 1e6 / requests.max(1) as f64;
        (
            us(to.0.saturating_sub(from.0)),
            (!self.database.is_empty()).then(|| us(to.1.saturating_sub(from.1))),
        )
    }
}

/// [`drive`], with the CPU it cost.
async fn drive_metered(
    client: &reqwest::Client,
    meter: &Meter,
    concurrency: usize,
    seconds: u64,
    request: Request,
) -> anyhow::Result<Figures> {
    let before = meter.read();
    let mut figures = drive(client, concurrency, seconds, request).await?;
    let (service, database) = meter.per_request(before, meter.read(), figures.requests);
    figures.service_cpu_us = Some(service);
    figures.database_cpu_us = database;
    Ok(figures)
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx answer.
    Success,
    /// Another answer (e.g. 503 with `Retry-After` from a login queue that is full).
    Refused,
    /// No answer: the connection failed (a socket error).
    Failed,
}

impl Outcome {
    fn of(sent: &Result<reqwest::Response, reqwest::Error>) -> Self {
        match sent {
            Ok(r) if r.status().is_success() => Self::Success,
            Ok(_) => Self::Refused,
            Err(_) => Self::Failed,
        }
    }
}

type Request = Arc<
    dyn Fn(reqwest::Client, usize) -> futures_util::future::BoxFuture<'static, Outcome>
        + Send
        + Sync,
>;

/// Runs `request` on `concurrency` connections for `seconds`: what completed, all told.
async fn drive(
    client: &reqwest::Client,
    concurrency: usize,
    seconds: u64,
    request: Request,
) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let buckets = run_connections(
        client,
        concurrency,
        started,
        seconds,
        seconds.max(1),
        request,
    )
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Bucket::new()?;
    for bucket in &buckets {
        all.add(bucket);
    }
    Ok(all.figures(elapsed))
}

/// One line of a sustained run: what completed in one interval.
#[derive(Debug, Clone, Serialize)]
struct Interval {
    ends_at_sec: u64,
    figures: Figures,
}

/// Runs `request` on `concurrency` connections for `seconds`, and reports each
/// `interval` (requests counted where they complete) with its CPU per request.
async fn drive_sustained(
    client: &reqwest::Client,
    meter: &Meter,
    concurrency: usize,
    seconds: u64,
    interval: u64,
    request: Request,
) -> anyhow::Result<Vec<Interval>> {
    let interval = interval.clamp(1, seconds.max(1));
    let started = Instant::now();
    let sampler = tokio::spawn({
        let meter = meter.clone();
        async move {
            let mut readings = vec![meter.read()];
            let mut at = interval;
            while at <= seconds {
                tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
                readings.push(meter.read());
                at += interval;
            }
            readings
        }
    });
    let buckets = run_connections(client, concurrency, started, seconds, interval, request).await?;
    let readings = sampler.await.unwrap_or_default();
    Ok(buckets
        .into_iter()
        .enumerate()
        .map(|(i, bucket)| {
            let mut figures = bucket.figures(interval as f64);
            if let (Some(from), Some(to)) = (readings.get(i), readings.get(i + 1)) {
                let (service, database) = meter.per_request(*from, *to, figures.requests);
                figures.service_cpu_us = Some(service);
                figures.database_cpu_us = database;
            }
            Interval {
                ends_at_sec: (i as u64 + 1) * interval,
                figures,
            }
        })
        .collect())
}

/// Runs `request` on `concurrency` connections from `started` for `seconds`: what
/// completed in each `interval` (counted where it completes), all connections together.
/// Memory stays the same however long the run: a latency histogram per connection and
/// interval, not a sample per request (which would grow by gigabytes in ten minutes, on
/// the cores the service runs on).
async fn run_connections(
    client: &reqwest::Client,
    concurrency: usize,
    started: Instant,
    seconds: u64,
    interval: u64,
    request: Request,
) -> anyhow::Result<Vec<Bucket>> {
    let deadline = started + Duration::from_secs(seconds);
    let count = usize::try_from(seconds / interval).unwrap_or(0);
    let empty = Bucket::new()?;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, request) = (client.clone(), request.clone());
            let mut buckets = vec![empty.clone(); count];
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let outcome = request(client.clone(), worker).await;
                    let latency = t.elapsed();
                    let at = started.elapsed().as_secs() / interval;
                    // The last request may complete after the deadline: its interval's.
                    let i = usize::try_from(at)
                        .unwrap_or(usize::MAX)
                        .min(count.saturating_sub(1));
                    if let Some(bucket) = buckets.get_mut(i) {
                        bucket.record(outcome, latency);
                    }
                }
                buckets
            })
        })
        .collect();
    let mut buckets = vec![empty; count];
    for task in tasks {
        for (all, one) in buckets.iter_mut().zip(task.await.unwrap_or_default()) {
            all.add(&one);
        }
    }
    Ok(buckets)
}

/// What completed in one interval of a sustained run.
#[derive(Clone)]
struct Bucket {
    /// Latencies of 2xx answers, in µs.
    latencies: hdrhistogram::Histogram<u64>,
    errors: u64,
    socket_errors: u64,
}

impl Bucket {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            // 1 µs to an hour: a longer latency is counted as an hour.
            latencies: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)?,
            errors: 0,
            socket_errors: 0,
        })
    }

    fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Success => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latencies.saturating_record(us.max(1));
            }
            Outcome::Refused => self.errors += 1,
            Outcome::Failed => {
                self.errors += 1;
                self.socket_errors += 1;
            }
        }
    }

    /// Rate over `seconds`, p50 and p99 (no CPU figures: the caller's).
    fn figures(&self, seconds: f64) -> Figures {
        let ok = self.latencies.len();
        let ms = |q: f64| self.latencies.value_at_quantile(q) as f64 / 1000.0;
        Figures {
            requests_per_sec: ok as f64 / seconds.max(f64::MIN_POSITIVE),
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            errors: self.errors,
            socket_errors: self.socket_errors,
            requests: ok + self.errors,
            service_cpu_us: None,
            database_cpu_us: None,
        }
    }

    fn add(&mut self, other: &Self) {
        // The same bounds: adding cannot fail for range.
        let _ = self.latencies.add(&other.latencies);
        self.errors += other.errors;
        self.socket_errors += other.socket_errors;
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The service's count of revocation-list refills so far (`NaN` for a build that does
/// not count them).
async fn refills(client: &reqwest::Client, base: &str) -> f64 {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("tokenmint_revocation_list_refills_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    bearer: Option<&str>,
) -> anyhow::Result<Value> {
    let mut request = client.post(url).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    Ok(response.json().await?)
}

/// A DPoP client of the benchmark: a P-256 key that signs a fresh proof per request
/// (RFC 9449), as a browser with `dpop: true` does.
struct DpopClient {
    key: ring::signature::EcdsaKeyPair,
    header: String,
    rng: ring::rand::SystemRandom,
}

impl DpopClient {
    fn new() -> anyhow::Result<Self> {
        use base64::Engine as _;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("key generation"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("key"))?;
        let point = key.public_key().as_ref().to_vec();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256",
                            "jwk": {"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}});
        Ok(Self {
            key,
            header: b64(header.to_string().as_bytes()),
            rng,
        })
    }

    /// A proof for `method` on `url`, with `ath` for `token` if given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims =
            json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": method, "htu": url, "iat": iat});
        if let Some(token) = token {
            claims["ath"] = json!(b64(ring::digest::digest(
                &ring::digest::SHA256,
                token.as_bytes()
            )
            .as_ref()));
        }
        let signed = format!("{}.{}", self.header, b64(claims.to_string().as_bytes()));
        let signature = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .map(|s| b64(s.as_ref()))
            .unwrap_or_default();
        format!("{signed}.{signature}")
    }
}

/// Single-thread references through the same crypto code the server uses.
fn crypto_references() -> anyhow::Result<(f64, f64, f64)> {
    use tokenmint::identity::passwords::{Password, PasswordHasher};
    use tokenmint::keys::SigningAlg;
    use tokenmint::keys::material::KeyPair;
    tokenmint::keys::crypto_provider::install();
    let pkcs8 = KeyPair::generate_pkcs8(SigningAlg::Es256)?;
    let pair = KeyPair::from_pkcs8(SigningAlg::Es256, &pkcs8)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&pair.public_jwk("k")?)?;
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9";
    let (mut signs, t) = (0u64, Instant::now());
    let mut signature = Vec::new();
    while t.elapsed() < Duration::from_secs(1) {
        signature = pair.sign(message)?;
        signs += 1;
    }
    let sign_rate = signs as f64 / t.elapsed().as_secs_f64();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&signature);
    let (mut verifies, t) = (0u64, Instant::now());
    while t.elapsed() < Duration::from_secs(1) {
        if !jsonwebtoken::crypto::verify(&b64, message, &key, jsonwebtoken::Algorithm::ES256)? {
            bail!("reference verify failed");
        }
        verifies += 1;
    }
    let verify_rate = verifies as f64 / t.elapsed().as_secs_f64();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let argon2_secs = runtime.block_on(async {
        let hasher = PasswordHasher::new(1)?;
        let pw = || {
            Password::parse_presented(secrecy::SecretString::from("reference-password".to_owned()))
        };
        let hash = hasher.hash(pw().map_err(anyhow::Error::msg)?).await?;
        // CPU time, not wall time (the server's figure is CPU time too), of 9 verifies
        // queued at once: the hasher keeps its memory while logins queue, as the
        // server's does under load (one at a time, each would pay its page faults).
        let (runs, cpu_before) = (9, cost::threads_cpu_ns(std::process::id()));
        let verify = || async {
            let admission = hasher
                .admit(tokenmint::identity::admission::Class::Internal)
                .await
                .map_err(anyhow::Error::msg)?;
            hasher
                .verify(
                    admission,
                    pw().map_err(anyhow::Error::msg)?,
                    Some(hash.clone()),
                )
                .await?;
            Ok::<_, anyhow::Error>(())
        };
        for done in futures_util::future::join_all((0..runs).map(|_| verify())).await {
            done?;
        }
        let cpu_ns = cost::threads_cpu_ns(std::process::id()).saturating_sub(cpu_before);
        Ok::<_, anyhow::Error>(cpu_ns as f64 / 1e9 / f64::from(runs))
    })?;
    Ok((sign_rate, verify_rate, argon2_secs))
}

/// The key-encryption key the benchmark gives the server (base64 of 0, 1, ..., 31).
const KEK_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Refreshes of the seeded sessions, spread over the first `sessions` of them: each
/// connection rotates its own share in turn (a million users each refreshing now and
/// then, not a few refreshing fast). The benchmark knows the server's key, so it makes
/// each session's head token from the generation it last reached.
fn spread_refresh(
    base: &str,
    connections: usize,
    sessions: u64,
    generations: Arc<Vec<std::sync::atomic::AtomicI64>>,
) -> anyhow::Result<Request> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokenmint::sessions::refresh_token::{RefreshKey, TokenId};
    let kek = tokenmint::keys::kek::Kek::new(
        &tokenmint::keys::kek::parse_kek(KEK_B64).map_err(anyhow::Error::msg)?,
    )?;
    let key = Arc::new(RefreshKey::new(&*kek.derive(b"refresh-token")?));
    let sessions = sessions.min(generations.len() as u64).max(1);
    // Connection `w` rotates sessions w, w + connections, ... (0-based), round and round.
    let turns: Arc<Vec<AtomicU64>> =
        Arc::new((0..connections).map(|_| AtomicU64::new(0)).collect());
    let url = format!("{base}/api/refresh-token");
    Ok(Arc::new(move |client: reqwest::Client, worker| {
        let turn = turns
            .get(worker)
            .map_or(0, |t| t.fetch_add(1, Ordering::Relaxed));
        let share = (sessions.saturating_sub(worker as u64))
            .div_ceil(connections as u64)
            .max(1);
        let index = (worker as u64 + (turn % share) * connections as u64) % sessions;
        let (url, key, generations) = (url.clone(), key.clone(), generations.clone());
        Box::pin(async move {
            let Some(generation) = usize::try_from(index).ok().and_then(|i| generations.get(i))
            else {
                return Outcome::Failed;
            };
            let id = TokenId {
                session_id: database::seeded_session_id(index + 1),
                generation: generation.load(Ordering::Relaxed),
            };
            let token = key.token(id);
            let sent = client
                .post(url)
                .json(&json!({"refresh_token": token.expose()}))
                .send()
                .await;
            let outcome = Outcome::of(&sent);
            let Ok(response) = sent else {
                return outcome;
            };
            if response.bytes().await.is_err() {
                return Outcome::Failed;
            }
            if outcome == Outcome::Success {
                generation.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        })
    }))
}

type SharedDb = Arc<std::sync::Mutex<database::Db>>;

/// Runs `work` on the benchmark's own database connection, off the runtime's threads.
async fn on_db<T: Send + 'static>(
    db: &SharedDb,
    work: impl FnOnce(&mut database::Db) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut db = db.lock().map_err(|_| anyhow::anyhow!("database lock"))?;
        work(&mut db)
    })
    .await?
}

/// Drops the benchmark's PostgreSQL database, if it made one.
fn drop_database(postgres_url: &str, name: Option<String>) {
    use diesel::{Connection as _, RunQueryDsl as _};
    if let Some(name) = name
        && let Ok(mut conn) = diesel::PgConnection::establish(postgres_url)
    {
        let _ = diesel::sql_query(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .execute(&mut conn);
    }
}

/// Writes the figures as JSON (`--json`, else `target/loadtest-<backend>[-sustained].json`).
fn write_report(args: &Args, report: &Value) -> anyhow::Result<()> {
    let path = args.json.clone().unwrap_or_else(|| {
        let kind = if args.duration.is_some() {
            "-sustained"
        } else {
            ""
        };
        std::path::PathBuf::from(format!("target/loadtest-{}{kind}.json", args.backend))
    });
    std::fs::write(&path, serde_json::to_string_pretty(report)?)?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}

/// A report line per target: its value and whether it is met (`at_least`: value >=
/// bound, else value <= bound).
fn print_targets(targets: &[(String, f64, f64, bool)]) -> Vec<Value> {
    println!("{:<52} {:>9}  result", "target", "value");
    targets
        .iter()
        .map(|(name, value, bound, at_least)| {
            let met = if *at_least {
                value >= bound
            } else {
                value <= bound
            };
            println!(
                "{name:<52} {value:>9.2}  {}",
                if met { "met" } else { "NOT MET" }
            );
            json!({"target": name, "value": value, "met": met})
        })
        .collect()
}

/// Bytes per live session, or 0 if none.
fn per_session(bytes: u64, sessions: i64) -> f64 {
    bytes as f64 / sessions.max(1) as f64
}

/// The `--duration` run: refresh on every connection for `duration` seconds (with
/// `--sessions`, spread over the seeded sessions; else each connection its own), a report
/// line per interval, the first interval against the last, and the database's size per
/// live session before and after.
#[allow(clippy::too_many_arguments)]
async fn sustained(
    args: &Args,
    client: &reqwest::Client,
    meter: &Meter,
    db: &SharedDb,
    base: &str,
    duration: u64,
    refresh: Request,
    idle_rss_kib: u64,
    pid: u32,
) -> anyhow::Result<Value> {
    let mut refresh = refresh;
    if let Some(total) = args.sessions {
        eprintln!("seeding {total} live sessions...");
        let t = Instant::now();
        let fillfactor = args.sessions_fillfactor;
        let added = on_db(db, move |db| {
            if let Some(f) = fillfactor {
                db.set_sessions_fillfactor(f)?;
            }
            db.seed_sessions(total)
        })
        .await?;
        eprintln!("seeded {added} in {:.1} s", t.elapsed().as_secs_f64());
        let generations = (0..total)
            .map(|_| std::sync::atomic::AtomicI64::new(0))
            .collect();
        refresh = spread_refresh(base, args.concurrency, total, Arc::new(generations))?;
    }
    let before = on_db(db, |db| {
        db.checkpoint()?;
        db.stats()
    })
    .await?;
    let c = args.concurrency;
    eprintln!(
        "refresh on {c} connections for {duration} s, a line every {} s...",
        args.interval
    );
    let intervals = drive_sustained(client, meter, c, duration, args.interval, refresh).await?;
    if !meter.database.is_empty() {
        tokio::time::sleep(database::STATS_DELAY).await;
    }
    let after = on_db(db, |db| {
        db.checkpoint()?;
        db.stats()
    })
    .await?;
    let rss = (rss_kib(pid, "VmRSS:"), rss_kib(pid, "VmHWM:"));

    println!(
        "backend: {}   connections: {c}   duration: {duration} s   live sessions: {}",
        args.backend, after.live_sessions
    );
    println!(
        "{:>8} {:>10} {:>9} {:>9} {:>7} {:>14} {:>14}",
        "until s", "refresh/s", "p50 ms", "p99 ms", "errors", "service µs/req", "database µs/req"
    );
    for line in &intervals {
        let f = &line.figures;
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        println!(
            "{:>8} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>14} {:>14}",
            line.ends_at_sec,
            f.requests_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.errors,
            us(f.service_cpu_us),
            us(f.database_cpu_us)
        );
    }
    for (when, stats) in [("before", &before), ("after", &after)] {
        println!(
            "database {when}: {:.1} MiB, {} live sessions, {:.0} bytes per session{}",
            stats.bytes as f64 / 1_048_576.0,
            stats.live_sessions,
            per_session(stats.bytes, stats.live_sessions),
            stats.sessions_bytes.map_or_else(String::new, |b| format!(
                " (sessions table and its indexes: {:.0} bytes per session)",
                per_session(b, stats.live_sessions)
            )),
        );
    }
    if let Some(u) = &after.updates {
        println!(
            "sessions table: {} updates, {:.1}% HOT, {} dead rows now, {} autovacuum runs (autovacuum {}), options [{}]",
            u.updates,
            100.0 * u.hot as f64 / u.updates.max(1) as f64,
            u.dead,
            u.autovacuums,
            u.autovacuum,
            u.options
        );
    }
    println!(
        "service RSS: idle {:.1} MiB, now {:.1} MiB, peak {:.1} MiB",
        idle_rss_kib as f64 / 1024.0,
        rss.0 as f64 / 1024.0,
        rss.1 as f64 / 1024.0
    );
    let (first, last) = (
        intervals.first().map(|l| l.figures.clone()),
        intervals.last().map(|l| l.figures.clone()),
    );
    let (first, last) = (first.context("no interval")?, last.context("no interval")?);
    let cpu: Vec<f64> = intervals
        .iter()
        .filter_map(|l| l.figures.cpu_us())
        .collect();
    let errors: u64 = intervals.iter().map(|l| l.figures.errors).sum();
    let targets = print_targets(&[
        (
            "last interval's rate / first's >= 0.9".into(),
            last.requests_per_sec / first.requests_per_sec.max(0.001),
            0.9,
            true,
        ),
        (
            "last interval's p99 / first's <= 1.5".into(),
            last.p99_ms / first.p99_ms.max(0.001),
            1.5,
            false,
        ),
        (
            "CPU µs per refresh (service + database) <= 60".into(),
            cpu.iter().sum::<f64>() / cpu.len().max(1) as f64,
            60.0,
            false,
        ),
        (
            "errors (non-2xx or socket) == 0".into(),
            errors as f64,
            0.0,
            false,
        ),
        (
            "database growth per refresh, bytes (report)".into(),
            (after.bytes as f64 - before.bytes as f64)
                / intervals
                    .iter()
                    .map(|l| l.figures.requests)
                    .sum::<u64>()
                    .max(1) as f64,
            f64::INFINITY,
            false,
        ),
        (
            "database bytes per session, after / before <= 1.5".into(),
            per_session(after.bytes, after.live_sessions)
                / per_session(before.bytes, before.live_sessions).max(1.0),
            1.5,
            false,
        ),
    ]);
    Ok(json!({
        "backend": args.backend, "connections": c, "duration": duration,
        "interval": args.interval, "intervals": intervals,
        "database": {"before": before, "after": after},
        "rss_kib": {"idle": idle_rss_kib, "now": rss.0, "peak": rss.1},
        "targets": targets,
    }))
}

/// An answer as the service sent it: its headers (but the ones the server sets itself)
/// and its body, parsed once and shared, so that serving it again costs what a constant
/// answer costs (no allocation per header).
#[derive(Clone)]
struct Recorded {
    headers: Arc<
        [(
            actix_web::http::header::HeaderName,
            actix_web::http::header::HeaderValue,
        )],
    >,
    body: actix_web::web::Bytes,
}

impl Recorded {
    async fn of(client: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let response = client.get(url).send().await?.error_for_status()?;
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "content-length" | "date"))
            .map(|(name, value)| {
                Ok((
                    HeaderName::from_bytes(name.as_str().as_bytes())?,
                    HeaderValue::from_bytes(value.as_bytes())?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let body = response.bytes().await?;
        Ok(Self {
            headers,
            body: actix_web::web::Bytes::copy_from_slice(&body),
        })
    }
}

/// A bare actix server answering static JSON (`/static`): the ceiling of any endpoint
/// here; and (`/same`) `same`, the service's own answer (same bytes, same headers)
/// served as a constant: what a JWKS answer costs whatever serves it.
fn start_static_reference(same: Recorded) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                let same = same.clone();
                actix_web::App::new()
                    .route(
                        "/static",
                        actix_web::web::get().to(|| async {
                            actix_web::HttpResponse::Ok().json(json!({"status": "ok"}))
                        }),
                    )
                    .route(
                        "/same",
                        actix_web::web::get().to(move || {
                            let mut answer = actix_web::HttpResponse::Ok();
                            for (name, value) in same.headers.iter() {
                                answer.insert_header((name.clone(), value.clone()));
                            }
                            let body = same.body.clone();
                            async move { answer.body(body) }
                        }),
                    )
            })
            .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .listen(listener);
            if let Ok(server) = server {
                let _ = server.run().await;
            }
        });
    });
    Ok(port)
}

/// Minimal rotations per second on `url`: `concurrency` connections (at most 64; one on SQLite,
/// where writers take turns anyway), each looping look-up (locked), update, insert,
/// commit, for `seconds`, on a scratch table of 20 000 tokens.
fn minimal_rotation_rate(url: &str, concurrency: usize, seconds: u64) -> anyhow::Result<f64> {
    use diesel::connection::SimpleConnection as _;
    use diesel::sql_types::{BigInt, Text};
    use diesel::{Connection as _, RunQueryDsl as _};
    const ROWS: i64 = 20_000;
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        #[allow(dead_code)]
        id: i64,
    }
    // The driver connects as the service does: with the URL as the service reads it (on
    // loopback without an sslmode, plain text first; see `DatabaseUrl::parse`).
    let url = &match tokenmint::store::DatabaseUrl::parse(url).map_err(anyhow::Error::msg)? {
        tokenmint::store::DatabaseUrl::Postgres(effective) => {
            secrecy::ExposeSecret::expose_secret(&effective).to_owned()
        }
        tokenmint::store::DatabaseUrl::Sqlite(_) => url.to_owned(),
    };
    let sqlite = url.starts_with("sqlite://");
    let path = url.trim_start_matches("sqlite://").to_owned();
    let setup = "DROP TABLE IF EXISTS bench_rotation; \
        CREATE TABLE bench_rotation (id BIGINT PRIMARY KEY, token_hash TEXT NOT NULL, \
        user_id BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT); \
        CREATE UNIQUE INDEX bench_rotation_hash ON bench_rotation (token_hash);";
    let fill = format!(
        "INSERT INTO bench_rotation (id, token_hash, user_id, expires_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         SELECT i, 'h' || i, i % 1000, 4102444800 FROM n"
    );
    if sqlite {
        let mut c = diesel::SqliteConnection::establish(&path)?;
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )?;
        c.batch_execute(setup)?;
        c.batch_execute(&fill)?;
    } else {
        let mut c = diesel::PgConnection::establish(url)?;
        c.batch_execute(setup)?;
        c.batch_execute(&fill)?;
    }
    // At most 64 connections: PostgreSQL's default limit is 100 in all.
    let threads = if sqlite { 1 } else { concurrency.clamp(1, 64) };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let next_id = Arc::new(std::sync::atomic::AtomicI64::new(ROWS + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (url, path, next_id) = (url.to_owned(), path.clone(), next_id.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut n = 0u64;
                let mut pick = (t as i64 * 7919) % ROWS;
                macro_rules! rotate {
                    ($conn:expr, $begin:expr, $lock:expr) => {{
                        while Instant::now() < deadline {
                            pick = (pick * 48271 + 11) % ROWS + 1;
                            let hash = format!("h{pick}");
                            let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            $conn.batch_execute($begin)?;
                            let found: Vec<Found> = diesel::sql_query(concat!(
                                "SELECT id FROM bench_rotation WHERE token_hash = $1",
                                $lock
                            ))
                            .bind::<Text, _>(&hash)
                            .load(&mut $conn)?;
                            diesel::sql_query("UPDATE bench_rotation SET used_at = $1 WHERE token_hash = $2")
                                .bind::<BigInt, _>(id)
                                .bind::<Text, _>(&hash)
                                .execute(&mut $conn)?;
                            diesel::sql_query("INSERT INTO bench_rotation (id, token_hash, user_id, expires_at) VALUES ($1, $2, $3, 4102444800)")
                                .bind::<BigInt, _>(id)
                                .bind::<Text, _>(format!("n{id}"))
                                .bind::<BigInt, _>(found.len() as i64)
                                .execute(&mut $conn)?;
                            $conn.batch_execute("COMMIT")?;
                            n += 1;
                        }
                    }};
                }
                if sqlite {
                    let mut c = diesel::SqliteConnection::establish(&path)?;
                    c.batch_execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")?;
                    rotate!(c, "BEGIN IMMEDIATE", "");
                } else {
                    let mut c = diesel::PgConnection::establish(&url)?;
                    rotate!(c, "BEGIN", " FOR UPDATE");
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker
            .join()
            .map_err(|_| anyhow::anyhow!("a rotation thread panicked"))??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let work = tempfile::tempdir()?;
    let exe = support::server_exe(args.server.as_deref());
    let (port, base) = support::free_port()?;
    let mut env: Vec<(String, String)> = vec![
        ("TOKENMINT_BIND".into(), format!("127.0.0.1:{port}")),
        (
            "TOKENMINT_BOOTSTRAP_ADMIN".into(),
            "admin:loadtest-admin-password".into(),
        ),
        ("TOKENMINT_LOGIN_MAX_FAILURES".into(), "1000000".into()),
        (
            "TOKENMINT_LOGIN_MAX_FAILURES_PER_IP".into(),
            "1000000".into(),
        ),
        ("TOKENMINT_LOG".into(), "warn".into()),
        // Every refresh rotates: a worker refreshes its chain far more often than once per
        // leeway, and under the default leeway a head younger than it is answered without
        // a write. The refresh figures are rotations, as the raw-SQL reference is.
        ("TOKENMINT_REFRESH_REUSE_LEEWAY".into(), "0s".into()),
        (
            "TOKENMINT_VERIFIED_TOKEN_CACHE".into(),
            args.verified_token_cache.to_string(),
        ),
        (
            "TOKENMINT_KEY_ENCRYPTION_KEY".into(),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        ),
    ];
    let mut pg_cleanup = None;
    let database_url = match args.backend.as_str() {
        "sqlite" => format!("sqlite://{}", work.path().join("bench.db").display()),
        "postgres" => {
            use diesel::{Connection as _, RunQueryDsl as _};
            let name = format!("tokenmint_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn =
                diesel::PgConnection::establish(&args.postgres_url).context("PostgreSQL")?;
            diesel::sql_query(format!(r#"CREATE DATABASE "{name}""#)).execute(&mut conn)?;
            let mut url = reqwest::Url::parse(&args.postgres_url)?;
            url.set_path(&format!("/{name}"));
            env.push(("TOKENMINT_REDIS_URL".into(), args.redis_url.clone()));
            env.push(("TOKENMINT_REDIS_PREFIX".into(), format!("bench-{name}:")));
            pg_cleanup = Some(name);
            url.to_string()
        }
        other => bail!("unknown backend {other:?}"),
    };
    env.push(("TOKENMINT_DATABASE_URL".into(), database_url.clone()));

    eprintln!("measuring references...");
    let (sign_rate, verify_rate, argon2_secs) =
        tokio::task::spawn_blocking(crypto_references).await??;
    let most_connections = args
        .concurrency
        .max(args.reference_connections.unwrap_or(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(most_connections * 2)
        .build()?;

    let child = Command::new(&exe)
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(child);
    let pid = server.0.id();
    server.wait_until_up(&client, &base).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = rss_kib(pid, "VmRSS:");
    let meter = Meter {
        service: pid,
        database: if pg_cleanup.is_some() {
            &["postgres", "redis-server"]
        } else {
            &[]
        },
        ticks_per_sec: cost::ticks_per_sec(),
    };
    let db = {
        let url = database_url.clone();
        tokio::task::spawn_blocking(move || database::Db::open(&url)).await??
    };
    let db = Arc::new(std::sync::Mutex::new(db));

    let admin = post_json(
        &client,
        &format!("{base}/api/login"),
        &json!({"username": "admin", "password": "loadtest-admin-password"}),
        None,
    )
    .await?;
    let admin_token = admin["access_token"].as_str().context("token")?.to_owned();

    // Rotation reference: what the database itself does for a minimal refresh rotation
    // (look the token up row-locked, mark it used, insert its successor; durable commit),
    // in raw SQL through the same driver, on a scratch table of the same database: the
    // statements a pgbench rotation script runs. Not Tokenmint's own
    // transaction, which would only measure itself.
    let direct_rotation_rate = {
        let url = database_url.clone();
        let (concurrency, seconds) = (args.concurrency, args.seconds);
        tokio::task::spawn_blocking(move || minimal_rotation_rate(&url, concurrency, seconds))
            .await??
    };

    let jwks_url = format!("{base}/.well-known/jwks.json");
    let static_port = start_static_reference(Recorded::of(&client, &jwks_url).await?)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let static_url = format!("http://127.0.0.1:{static_port}/static");
    let same_jwks_url = format!("http://127.0.0.1:{static_port}/same");

    let get = |url: String| -> Request {
        Arc::new(move |client: reqwest::Client, _| {
            let url = url.clone();
            Box::pin(async move { Outcome::of(&client.get(url).send().await) })
        })
    };
    let login_req: Request = {
        let url = format!("{base}/api/login");
        Arc::new(move |client: reqwest::Client, _| {
            let url = url.clone();
            Box::pin(async move {
                Outcome::of(
                    &client
                        .post(url)
                        .json(&json!({"username": "admin", "password": "loadtest-admin-password"}))
                        .send()
                        .await,
                )
            })
        })
    };
    // Each refresh worker keeps its own session chain.
    let chains: Arc<Vec<tokio::sync::Mutex<String>>> = {
        let mut chains = Vec::new();
        for _ in 0..most_connections {
            let login = post_json(
                &client,
                &format!("{base}/api/login"),
                &json!({"username": "admin", "password": "loadtest-admin-password"}),
                None,
            )
            .await?;
            chains.push(tokio::sync::Mutex::new(
                login["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        Arc::new(chains)
    };
    let refresh_req: Request = {
        let url = format!("{base}/api/refresh-token");
        let chains = chains.clone();
        Arc::new(move |client: reqwest::Client, worker| {
            let (url, chains) = (url.clone(), chains.clone());
            Box::pin(async move {
                let Some(chain) = chains.get(worker) else {
                    return Outcome::Failed;
                };
                let mut token = chain.lock().await;
                let sent = client
                    .post(url)
                    .json(&json!({"refresh_token": *token}))
                    .send()
                    .await;
                let outcome = Outcome::of(&sent);
                let response = match sent {
                    Ok(response) if outcome == Outcome::Success => response,
                    _ => return outcome,
                };
                match response.json::<Value>().await {
                    Ok(body) => {
                        *token = body["refresh_token"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        Outcome::Success
                    }
                    Err(_) => Outcome::Failed,
                }
            })
        })
    };
    if let Some(duration) = args.duration {
        let report = sustained(
            &args,
            &client,
            &meter,
            &db,
            &base,
            duration,
            refresh_req,
            idle_rss_kib,
            pid,
        )
        .await;
        drop(server);
        drop_database(&args.postgres_url, pg_cleanup);
        return write_report(&args, &report?);
    }
    let me_req: Request = {
        let (url, token) = (format!("{base}/api/me"), admin_token.clone());
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move { Outcome::of(&client.get(url).bearer_auth(token).send().await) })
        })
    };
    // The same call with a token bound to a key (DPoP): a fresh proof per request, which
    // the server checks (signature, claims, single use) before the token.
    let dpop = Arc::new(DpopClient::new()?);
    let dpop_token = {
        let url = format!("{base}/api/login");
        let response = client
            .post(&url)
            .header("dpop", dpop.proof("POST", &url, None))
            .json(&json!({"username": "admin", "password": "loadtest-admin-password"}))
            .send()
            .await?;
        let body: Value = response.json().await?;
        if body["token_type"] != "DPoP" {
            bail!("the DPoP login did not bind: {body}");
        }
        body["access_token"].as_str().context("token")?.to_owned()
    };
    let me_dpop_req: Request = {
        let (url, token, dpop) = (format!("{base}/api/me"), dpop_token, dpop.clone());
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token, dpop) = (url.clone(), token.clone(), dpop.clone());
            Box::pin(async move {
                let proof = dpop.proof("GET", &url, Some(&token));
                Outcome::of(
                    &client
                        .get(url)
                        .header("authorization", format!("DPoP {token}"))
                        .header("dpop", proof)
                        .send()
                        .await,
                )
            })
        })
    };
    // RFC 7009 of one access token of its own, again and again: each call records a
    // revocation and publishes it, so its time is a revoking call's (with Redis: the
    // publish and the wait for every mirror's acknowledgement).
    let revoked_token = post_json(
        &client,
        &format!("{base}/api/login"),
        &json!({"username": "admin", "password": "loadtest-admin-password"}),
        None,
    )
    .await?["access_token"]
        .as_str()
        .context("token")?
        .to_owned();
    let revoke_req: Request = {
        let (url, token) = (format!("{base}/api/token/revoke"), revoked_token);
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move {
                Outcome::of(&client.post(url).json(&json!({"token": token})).send().await)
            })
        })
    };
    let introspect_req: Request = {
        let (url, token) = (format!("{base}/api/token/introspect"), admin_token.clone());
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move {
                Outcome::of(
                    &client
                        .post(url)
                        .bearer_auth(&token)
                        .json(&json!({"token": token}))
                        .send()
                        .await,
                )
            })
        })
    };

    if args.sessions.is_some() {
        // The sitting runs with this many; the scale check below seeds the rest.
        on_db(&db, |db| db.seed_sessions(database::SEED_USERS)).await?;
    }
    let (c, s) = (args.concurrency, args.seconds);
    let mut results: BTreeMap<String, Figures> = BTreeMap::new();
    eprintln!("driving scenarios on {c} connections for {s} s each...");
    results.insert(
        "reference_static".into(),
        drive(&client, c, s, get(static_url.clone())).await?,
    );
    results.insert(
        "reference_same_jwks".into(),
        drive(&client, c, s, get(same_jwks_url)).await?,
    );
    for (name, request) in [
        ("jwks", get(jwks_url.clone())),
        ("login", login_req.clone()),
        ("refresh", refresh_req.clone()),
        ("introspect", introspect_req),
        ("me", me_req.clone()),
        ("me_dpop", me_dpop_req),
        ("revoke", revoke_req.clone()),
    ] {
        results.insert(
            name.into(),
            drive_metered(&client, &meter, c, s, request).await?,
        );
    }
    // JWKS and refresh while a login flood runs beside them, and the flood's own figures
    // (how many logins still get through, and how many are answered 503 beyond the
    // login queue).
    let half = (c / 2).max(1);
    for (name, flood_name, request) in [
        (
            "jwks_during_login_flood",
            "login_beside_jwks",
            get(jwks_url),
        ),
        (
            "refresh_during_login_flood",
            "login_beside_refresh",
            refresh_req.clone(),
        ),
    ] {
        let flood = tokio::spawn({
            let (client, login_req) = (client.clone(), login_req.clone());
            async move { drive(&client, half, s, login_req).await }
        });
        results.insert(name.into(), drive(&client, half, s, request).await?);
        results.insert(flood_name.into(), flood.await??);
    }
    // `/api/me` while revocations stream beside it: each revocation raises the list's
    // generation, which every check needs the list to have reached (a check that finds
    // it behind refills it from the database).
    let refills_before = refills(&client, &base).await;
    let stream = tokio::spawn({
        let (client, revoke_req) = (client.clone(), revoke_req.clone());
        async move { drive(&client, half, s, revoke_req).await }
    });
    results.insert(
        "me_beside_revocations".into(),
        drive(&client, half, s, me_req.clone()).await?,
    );
    results.insert("revoke_beside_checks".into(), stream.await??);
    let refills_per_revocation = (refills(&client, &base).await - refills_before)
        / results["revoke_beside_checks"].requests.max(1) as f64;
    let peak_rss_kib = rss_kib(pid, "VmHWM:");
    // The same two calls on another number of connections.
    // The same two calls on another number of connections, and the static reference:
    // the load generator shares the machine's cores, and its own cost grows with its
    // connections.
    if let Some(rc) = args.reference_connections {
        results.insert(
            format!("reference_static_on_{rc}_connections"),
            drive(&client, rc, s, get(static_url.clone())).await?,
        );
        for (name, request) in [("refresh", refresh_req.clone()), ("me", me_req.clone())] {
            results.insert(
                format!("{name}_on_{rc}_connections"),
                drive_metered(&client, &meter, rc, s, request).await?,
            );
        }
    }
    // The same two calls with many sessions in the database, right after a measure
    // with 1,000.
    let mut scale = None;
    if let Some(total) = args.sessions.filter(|n| *n > database::SEED_USERS) {
        let generations = Arc::new(
            (0..total)
                .map(|_| std::sync::atomic::AtomicI64::new(0))
                .collect::<Vec<_>>(),
        );
        let spread = |n| spread_refresh(&base, c, n, generations.clone());
        for (name, request) in [
            ("refresh", spread(database::SEED_USERS)?),
            ("me", me_req.clone()),
        ] {
            results.insert(
                format!("{name}_with_1000_sessions"),
                drive_metered(&client, &meter, c, s, request).await?,
            );
        }
        // Memory after the same two scenarios, each time.
        let rss_before = rss_kib(pid, "VmRSS:");
        eprintln!("seeding up to {total} live sessions...");
        let t = Instant::now();
        on_db(&db, move |db| db.seed_sessions(total)).await?;
        eprintln!("seeded in {:.1} s", t.elapsed().as_secs_f64());
        for (name, request) in [("refresh", spread(total)?), ("me", me_req.clone())] {
            results.insert(
                format!("{name}_with_{total}_sessions"),
                drive_metered(&client, &meter, c, s, request).await?,
            );
        }
        scale = Some((total, rss_before, rss_kib(pid, "VmRSS:")));
    }
    let stats = on_db(&db, |db| db.stats()).await?;
    drop(server);
    drop_database(&args.postgres_url, pg_cleanup);

    let rps = |k: &str| results.get(k).map_or(0.0, |f| f.requests_per_sec);
    let p99 = |k: &str| results.get(k).map_or(0.0, |f| f.p99_ms);
    let cpu = |k: &str| results.get(k).and_then(Figures::cpu_us).unwrap_or(f64::NAN);
    let mut targets: Vec<(String, f64, f64, bool)> = vec![
        (
            "jwks / static reference >= 0.90".into(),
            rps("jwks") / rps("reference_static"),
            0.90,
            true,
        ),
        (
            "  jwks / the same answer from the bare server (report)".into(),
            rps("jwks") / rps("reference_same_jwks"),
            f64::NEG_INFINITY,
            true,
        ),
        (
            "  the same answer / static reference (report)".into(),
            rps("reference_same_jwks") / rps("reference_static"),
            f64::NEG_INFINITY,
            true,
        ),
        (
            "refresh / minimal rotation in raw SQL >= 0.60".into(),
            rps("refresh") / direct_rotation_rate,
            0.60,
            true,
        ),
        (
            "login / (cores / argon2 verify) >= 0.85".into(),
            rps("login") / (cores / argon2_secs),
            0.85,
            true,
        ),
        (
            "introspect / (cores x verify rate) >= 0.50".into(),
            rps("introspect") / (cores * verify_rate),
            0.50,
            true,
        ),
        (
            "me / (cores x verify rate) >= 0.50".into(),
            rps("me") / (cores * verify_rate),
            0.50,
            true,
        ),
        (
            "me with DPoP / me with Bearer (report)".into(),
            rps("me_dpop") / rps("me").max(0.001),
            0.0,
            true,
        ),
        (
            "refills per revocation beside checks (report)".into(),
            refills_per_revocation,
            f64::NEG_INFINITY,
            true,
        ),
        (
            "jwks p99 under login flood / without <= 3".into(),
            p99("jwks_during_login_flood") / p99("jwks").max(0.001),
            3.0,
            false,
        ),
        (
            "refresh p99 under login flood / without <= 3".into(),
            p99("refresh_during_login_flood") / p99("refresh").max(0.001),
            3.0,
            false,
        ),
        (
            "CPU µs per refresh (service + database) <= 60".into(),
            cpu("refresh"),
            60.0,
            false,
        ),
        (
            // A login's own work is under the spread of one argon2 verify (a few
            // percent of 17 ms), so this difference is a report, not a measure.
            "CPU µs per login less one argon2 verify (report)".into(),
            cpu("login") - argon2_secs * 1e6,
            f64::NEG_INFINITY,
            true,
        ),
        (
            "CPU µs per /api/me (service + database) <= 60".into(),
            cpu("me"),
            60.0,
            false,
        ),
        (
            "peak RSS MiB <= 64".into(),
            peak_rss_kib as f64 / 1024.0,
            64.0,
            false,
        ),
        (
            "idle RSS MiB <= 24".into(),
            idle_rss_kib as f64 / 1024.0,
            24.0,
            false,
        ),
    ];
    if c == 64 {
        targets.push((
            "me p99 ms on 64 connections <= 5".into(),
            p99("me"),
            5.0,
            false,
        ));
        targets.push((
            "refresh p99 ms on 64 connections <= 20".into(),
            p99("refresh"),
            20.0,
            false,
        ));
    }
    if let Some(rc) = args.reference_connections {
        let ratio = |name: &str| rps(name) / rps(&format!("{name}_on_{rc}_connections")).max(0.001);
        targets.push((
            format!("static reference on {c} connections / on {rc} (report)"),
            ratio("reference_static"),
            f64::NEG_INFINITY,
            true,
        ));
        for name in ["refresh", "me"] {
            targets.push((
                format!("{name} on {c} connections / on {rc} >= 0.9"),
                ratio(name),
                0.9,
                true,
            ));
            targets.push((
                "  the same, over the static reference's >= 0.9".into(),
                ratio(name) / ratio("reference_static").max(0.001),
                0.9,
                true,
            ));
        }
    }
    let socket_errors: u64 = results.values().map(|f| f.socket_errors).sum();
    targets.push((
        "socket errors, every scenario == 0".into(),
        socket_errors as f64,
        0.0,
        false,
    ));
    // A login flood is answered 503 with Retry-After beyond the login queue: by design.
    let refused: u64 = results
        .iter()
        .filter(|(name, _)| !name.starts_with("login"))
        .map(|(_, f)| f.errors)
        .sum();
    targets.push((
        "non-2xx answers, logins aside == 0".into(),
        refused as f64,
        0.0,
        false,
    ));
    if let Some((total, rss_before, rss_after)) = scale {
        for name in ["refresh", "me"] {
            targets.push((
                format!("{name} with {total} sessions / with 1000 >= 0.9"),
                rps(&format!("{name}_with_{total}_sessions"))
                    / rps(&format!("{name}_with_1000_sessions")).max(0.001),
                0.9,
                true,
            ));
        }
        targets.push((
            format!("RSS with {total} sessions / with 1000 <= 1.1"),
            rss_after as f64 / rss_before.max(1) as f64,
            1.1,
            false,
        ));
    }

    println!(
        "backend: {}   cores: {cores}   connections: {c}   seconds per scenario: {s}   verified-token cache: {}",
        args.backend, args.verified_token_cache
    );
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>7} {:>7} {:>12}",
        "scenario", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket", "CPU µs/req"
    );
    for (name, f) in &results {
        println!(
            "{name:<34} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>7} {:>12}",
            f.requests_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.errors - f.socket_errors,
            f.socket_errors,
            f.cpu_us()
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
        );
    }
    println!(
        "references: ES256 sign {sign_rate:.0}/s, verify {verify_rate:.0}/s (one thread); argon2 verify {:.1} ms of CPU; minimal rotation (raw SQL, same driver) {direct_rotation_rate:.0}/s",
        argon2_secs * 1000.0
    );
    println!(
        "RSS: idle {:.1} MiB, peak {:.1} MiB; database {:.1} MiB, {} live sessions",
        idle_rss_kib as f64 / 1024.0,
        peak_rss_kib as f64 / 1024.0,
        stats.bytes as f64 / 1_048_576.0,
        stats.live_sessions
    );
    let report_targets = print_targets(&targets);
    write_report(
        &args,
        &json!({
            "backend": args.backend, "cores": cores, "connections": c, "seconds": s,
            "verified_token_cache": args.verified_token_cache,
            "scenarios": results,
            "references": {"es256_sign_per_sec": sign_rate, "es256_verify_per_sec": verify_rate,
                           "argon2_verify_ms": argon2_secs * 1000.0, "direct_rotation_per_sec": direct_rotation_rate},
            "rss_kib": {"idle": idle_rss_kib, "peak": peak_rss_kib,
                        "with_1000_sessions": scale.map(|s| s.1), "with_all_sessions": scale.map(|s| s.2)},
            "database": stats,
            "targets": report_targets,
        }),
    )
}
