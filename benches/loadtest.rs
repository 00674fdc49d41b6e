//! Load benchmark: starts Tokenmint (embedded, or PostgreSQL + Redis) as a child process,
//! drives each scenario at fixed concurrency for a bounded time, measures references in
//! the same run, and prints ratios against them (absolute numbers drift on shared machines).
//!
//! `cargo bench --bench loadtest -- --backend sqlite|postgres`

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

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
    /// Concurrent requests per scenario.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
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
    errors: u64,
    requests: u64,
}

type Request = Arc<
    dyn Fn(reqwest::Client, usize) -> futures_util::future::BoxFuture<'static, bool> + Send + Sync,
>;

async fn drive(
    client: &reqwest::Client,
    concurrency: usize,
    seconds: u64,
    request: Request,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if request(client.clone(), worker).await {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((latencies, e)) = task.await {
            all.extend(latencies);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        requests_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        requests: all.len() as u64 + errors,
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
        // The median of 9: single verifies drift by a fifth on a shared machine.
        let mut times = Vec::new();
        for _ in 0..9 {
            let t = Instant::now();
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
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok::<_, anyhow::Error>(times[times.len() / 2])
    })?;
    Ok((sign_rate, verify_rate, argon2_secs))
}

/// A bare actix server answering static JSON: the ceiling of any endpoint here.
fn start_static_reference() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = actix_web::HttpServer::new(|| {
                actix_web::App::new().route(
                    "/static",
                    actix_web::web::get().to(|| async {
                        actix_web::HttpResponse::Ok().json(json!({"status": "ok"}))
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

/// Minimal rotations per second on `url`: `concurrency` connections (one on SQLite,
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
    let threads = if sqlite { 1 } else { concurrency.max(1) };
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
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

    let static_port = start_static_reference()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let static_url = format!("http://127.0.0.1:{static_port}/static");

    let get = |url: String| -> Request {
        Arc::new(move |client: reqwest::Client, _| {
            let url = url.clone();
            Box::pin(async move {
                client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
        })
    };
    let login_req: Request = {
        let url = format!("{base}/api/login");
        Arc::new(move |client: reqwest::Client, _| {
            let url = url.clone();
            Box::pin(async move {
                client
                    .post(url)
                    .json(&json!({"username": "admin", "password": "loadtest-admin-password"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
        })
    };
    // Each refresh worker keeps its own session chain.
    let chains: Arc<Vec<tokio::sync::Mutex<String>>> = {
        let mut chains = Vec::new();
        for _ in 0..args.concurrency {
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
                    return false;
                };
                let mut token = chain.lock().await;
                let Ok(response) = client
                    .post(url)
                    .json(&json!({"refresh_token": *token}))
                    .send()
                    .await
                else {
                    return false;
                };
                if !response.status().is_success() {
                    return false;
                }
                match response.json::<Value>().await {
                    Ok(body) => {
                        *token = body["refresh_token"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        true
                    }
                    Err(_) => false,
                }
            })
        })
    };
    let me_req: Request = {
        let (url, token) = (format!("{base}/api/me"), admin_token.clone());
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move {
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
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
                client
                    .get(url)
                    .header("authorization", format!("DPoP {token}"))
                    .header("dpop", proof)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
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
                client
                    .post(url)
                    .json(&json!({"token": token}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
        })
    };
    let introspect_req: Request = {
        let (url, token) = (format!("{base}/api/token/introspect"), admin_token.clone());
        Arc::new(move |client: reqwest::Client, _| {
            let (url, token) = (url.clone(), token.clone());
            Box::pin(async move {
                client
                    .post(url)
                    .bearer_auth(&token)
                    .json(&json!({"token": token}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
        })
    };

    let (c, s) = (args.concurrency, args.seconds);
    let mut results: BTreeMap<&str, Figures> = BTreeMap::new();
    eprintln!("driving scenarios at concurrency {c} for {s} s each...");
    results.insert(
        "reference_static",
        drive(&client, c, s, get(static_url)).await,
    );
    results.insert(
        "jwks",
        drive(&client, c, s, get(format!("{base}/.well-known/jwks.json"))).await,
    );
    results.insert("login", drive(&client, c, s, login_req.clone()).await);
    results.insert("refresh", drive(&client, c, s, refresh_req.clone()).await);
    results.insert("introspect", drive(&client, c, s, introspect_req).await);
    results.insert("me", drive(&client, c, s, me_req).await);
    results.insert("me_dpop", drive(&client, c, s, me_dpop_req).await);
    results.insert("revoke", drive(&client, c, s, revoke_req).await);
    // JWKS and refresh while a login flood runs beside them.
    let half = (c / 2).max(1);
    let flood = tokio::spawn({
        let (client, login_req) = (client.clone(), login_req.clone());
        async move { drive(&client, half, s, login_req).await }
    });
    let jwks_flood = drive(
        &client,
        half,
        s,
        get(format!("{base}/.well-known/jwks.json")),
    )
    .await;
    let _ = flood.await;
    let flood = tokio::spawn({
        let (client, login_req) = (client.clone(), login_req.clone());
        async move { drive(&client, half, s, login_req).await }
    });
    let refresh_flood = drive(&client, half, s, refresh_req).await;
    let _ = flood.await;
    results.insert("jwks_during_login_flood", jwks_flood);
    results.insert("refresh_during_login_flood", refresh_flood);
    let peak_rss_kib = rss_kib(pid, "VmHWM:");
    drop(server);

    if let Some(name) = pg_cleanup {
        use diesel::{Connection as _, RunQueryDsl as _};
        if let Ok(mut conn) = diesel::PgConnection::establish(&args.postgres_url) {
            let _ = diesel::sql_query(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .execute(&mut conn);
        }
    }

    let rps = |k: &str| results.get(k).map_or(0.0, |f| f.requests_per_sec);
    let p99 = |k: &str| results.get(k).map_or(0.0, |f| f.p99_ms);
    let targets = vec![
        (
            "jwks / static reference >= 0.70",
            rps("jwks") / rps("reference_static"),
            0.70,
            true,
        ),
        (
            "refresh / minimal rotation in raw SQL >= 0.60",
            rps("refresh") / direct_rotation_rate,
            0.60,
            true,
        ),
        (
            "login / (cores / argon2 verify) >= 0.85",
            rps("login") / (cores / argon2_secs),
            0.85,
            true,
        ),
        (
            "introspect / (cores x verify rate) >= 0.50",
            rps("introspect") / (cores * verify_rate),
            0.50,
            true,
        ),
        (
            "me / (cores x verify rate) >= 0.50",
            rps("me") / (cores * verify_rate),
            0.50,
            true,
        ),
        (
            "me with DPoP / me with Bearer (report)",
            rps("me_dpop") / rps("me").max(0.001),
            0.0,
            true,
        ),
        (
            "jwks p99 under login flood / without <= 3",
            p99("jwks_during_login_flood") / p99("jwks").max(0.001),
            3.0,
            false,
        ),
        (
            "refresh p99 under login flood / without <= 3",
            p99("refresh_during_login_flood") / p99("refresh").max(0.001),
            3.0,
            false,
        ),
        (
            "peak RSS MiB <= 64",
            peak_rss_kib as f64 / 1024.0,
            64.0,
            false,
        ),
        (
            "idle RSS MiB <= 24",
            idle_rss_kib as f64 / 1024.0,
            24.0,
            false,
        ),
    ];

    println!(
        "backend: {}   cores: {cores}   concurrency: {c}   seconds per scenario: {s}   verified-token cache: {}",
        args.backend, args.verified_token_cache
    );
    println!(
        "{:<30} {:>10} {:>9} {:>9} {:>7}",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, f) in &results {
        println!(
            "{name:<30} {:>10.0} {:>9.2} {:>9.2} {:>7}",
            f.requests_per_sec, f.p50_ms, f.p99_ms, f.errors
        );
    }
    println!(
        "references: ES256 sign {sign_rate:.0}/s, verify {verify_rate:.0}/s (one thread); argon2 verify {:.1} ms; minimal rotation (raw SQL, same driver) {direct_rotation_rate:.0}/s",
        argon2_secs * 1000.0
    );
    println!(
        "RSS: idle {:.1} MiB, peak {:.1} MiB",
        idle_rss_kib as f64 / 1024.0,
        peak_rss_kib as f64 / 1024.0
    );
    println!("{:<46} {:>8}  result", "target", "value");
    let mut report_targets = Vec::new();
    for (name, value, bound, at_least) in &targets {
        let met = if *at_least {
            value >= bound
        } else {
            value <= bound
        };
        println!(
            "{name:<46} {value:>8.2}  {}",
            if met { "met" } else { "NOT MET" }
        );
        report_targets.push(json!({"target": name, "value": value, "met": met}));
    }

    let report = json!({
        "backend": args.backend, "cores": cores, "concurrency": c, "seconds": s,
        "verified_token_cache": args.verified_token_cache,
        "scenarios": results,
        "references": {"es256_sign_per_sec": sign_rate, "es256_verify_per_sec": verify_rate,
                       "argon2_verify_ms": argon2_secs * 1000.0, "direct_rotation_per_sec": direct_rotation_rate},
        "rss_kib": {"idle": idle_rss_kib, "peak": peak_rss_kib},
        "targets": report_targets,
    });
    let path = args.json.unwrap_or_else(|| {
        std::path::PathBuf::from(format!("target/loadtest-{}.json", args.backend))
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}
