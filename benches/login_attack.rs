//! Logins under attack: a botnet floods `/api/login` with unknown usernames from a
//! growing pool of source addresses while two legitimate users log in, one on a device
//! that logged in before (it presents its device proof), one on a new device each time.
//! Reports what each of them saw. Then, optionally, fills the login counters with many
//! distinct usernames and compares `/api/me` latency before and after.
//!
//! `cargo bench --bench login_attack -- --seconds 60`; `--server PATH` drives another
//! build (the same harness before and after a change). The server runs embedded (SQLite,
//! memory counters) unless `--env` points it elsewhere, e.g.
//! `--env TOKENMINT_DATABASE_URL=postgres://... --env TOKENMINT_REDIS_URL=redis://...`.
//! Addresses come from `X-Forwarded-For`, the server trusting 127.0.0.1 as its proxy.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

mod support;
use serde_json::{Value, json};
use support::Server;

#[derive(Parser)]
#[command(about = "Tokenmint login-under-attack benchmark")]
struct Args {
    /// Seconds the attack runs while the users log in.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Attacker connections.
    #[arg(long, default_value_t = 300)]
    attackers: usize,
    /// Fresh source addresses the attacker gains per second.
    #[arg(long, default_value_t = 2.8)]
    fresh_per_sec: f64,
    /// Pause of each legitimate user between two logins, milliseconds.
    #[arg(long, default_value_t = 500)]
    user_pause_ms: u64,
    /// Distinct usernames to send through the counters afterwards (0: skip that part).
    #[arg(long, default_value_t = 200_000)]
    usernames: u64,
    /// The server binary (default: this build's `tokenmint`).
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Extra `KEY=VALUE` environment for the server.
    #[arg(long)]
    env: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "attack-bench-admin-password";

fn login_body(username: &str, password: &str, proof: Option<&str>) -> Value {
    let mut body = json!({"username": username, "password": password});
    if let Some(proof) = proof {
        body["device_proof"] = json!(proof);
    }
    body
}

async fn login(
    client: &reqwest::Client,
    base: &str,
    ip: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value, Option<u64>)> {
    let response = client
        .post(format!("{base}/api/login"))
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body, retry))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[derive(Default)]
struct Counts {
    by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
}

impl Counts {
    fn add(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    fn show(&self) -> String {
        let counts = self.by_status.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn me_latency(client: &reqwest::Client, base: &str, token: &str) -> (f64, f64) {
    let mut times = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let t = Instant::now();
        let ok = client
            .get(format!("{base}/api/me"))
            .bearer_auth(token)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            times.push(t.elapsed());
        }
    }
    times.sort_unstable();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let exe = support::server_exe(args.server.as_deref());
    let (port, base) = support::free_port()?;
    let mut command = Command::new(&exe);
    command
        .env("TOKENMINT_BIND", format!("127.0.0.1:{port}"))
        .env(
            "TOKENMINT_BOOTSTRAP_ADMIN",
            format!("{ADMIN}:{ADMIN_PASSWORD}"),
        )
        .env(
            "TOKENMINT_DATABASE_URL",
            format!("sqlite://{}", work.path().join("attack.db").display()),
        )
        .env(
            "TOKENMINT_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("TOKENMINT_TRUSTED_PROXIES", "127.0.0.1")
        .env("TOKENMINT_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for pair in &args.env {
        let (key, value) = pair.split_once('=').context("--env takes KEY=VALUE")?;
        command.env(key, value);
    }
    let server = Server(command.spawn().context("starting the server")?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.attackers + 8)
        .timeout(Duration::from_secs(60))
        .build()?;
    server.wait_until_up(&client, &base).await?;

    // The known device logs in once before the attack: that is what makes it known.
    let (status, first, _) = login(
        &client,
        &base,
        "198.51.100.10",
        &login_body(ADMIN, ADMIN_PASSWORD, None),
    )
    .await?;
    if status != 200 {
        bail!("the first login answered {status}: {first}");
    }
    let mut proof = first["device_proof"].as_str().map(str::to_owned);
    let token = first["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "server: {}; device proofs: {}",
        exe.display(),
        if proof.is_some() { "yes" } else { "no" }
    );

    let (me_before_p50, me_before_p99) = me_latency(&client, &base, &token).await;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let attack_counts = Arc::new(Counts::default());
    let attempts = Arc::new(AtomicU64::new(0));
    let attackers: Vec<_> = (0..args.attackers)
        .map(|worker| {
            let (client, base, counts, attempts) = (
                client.clone(),
                base.clone(),
                attack_counts.clone(),
                attempts.clone(),
            );
            let fresh_per_sec = args.fresh_per_sec;
            tokio::spawn(async move {
                let mut n = worker as u64;
                while Instant::now() < deadline {
                    // One of the four newest addresses the botnet has gained: the ones
                    // whose budget is not spent yet.
                    let pool = (started.elapsed().as_secs_f64() * fresh_per_sec) as u64 + 1;
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let address = pool.saturating_sub(1 + (n >> 33) % 4);
                    let ip = format!(
                        "10.{}.{}.{}",
                        address >> 16 & 255,
                        address >> 8 & 255,
                        address & 255
                    );
                    let i = attempts.fetch_add(1, Ordering::Relaxed);
                    let body = login_body(&format!("nobody{i}"), "guess-password", None);
                    match login(&client, &base, &ip, &body).await {
                        Ok((status, _, _)) => counts.add(status),
                        Err(_) => counts.add(0),
                    }
                }
            })
        })
        .collect();

    // Let the attack fill the queue first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let known = {
        let (client, base) = (client.clone(), base.clone());
        let pause = Duration::from_millis(args.user_pause_ms);
        tokio::spawn(async move {
            let (mut ok, mut total, mut times) = (0u64, 0u64, Vec::new());
            let counts = Counts::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let body = login_body(ADMIN, ADMIN_PASSWORD, proof.as_deref());
                let answer = login(&client, &base, "198.51.100.10", &body).await;
                total += 1;
                if let Ok((status, body, _)) = &answer {
                    counts.add(*status);
                    if *status == 200 {
                        ok += 1;
                        times.push(t.elapsed());
                        if let Some(p) = body["device_proof"].as_str() {
                            proof = Some(p.to_owned());
                        }
                    }
                }
                tokio::time::sleep(pause).await;
            }
            times.sort_unstable();
            (ok, total, times, counts.show())
        })
    };
    let newcomer = {
        let (client, base) = (client.clone(), base.clone());
        let pause = Duration::from_millis(args.user_pause_ms);
        tokio::spawn(async move {
            // Each round: a new device at a new address, retrying as told until it is in.
            let (mut rounds, mut times, mut gave_up) = (0u64, Vec::new(), 0u64);
            while Instant::now() < deadline {
                rounds += 1;
                let ip = format!("192.0.2.{}", rounds % 250 + 1);
                let t = Instant::now();
                loop {
                    let body = login_body(ADMIN, ADMIN_PASSWORD, None);
                    match login(&client, &base, &ip, &body).await {
                        Ok((200, _, _)) => {
                            times.push(t.elapsed());
                            break;
                        }
                        Ok((_, _, retry)) => {
                            if t.elapsed() > Duration::from_secs(60) {
                                gave_up += 1;
                                break;
                            }
                            let wait = retry.unwrap_or(1).clamp(1, 30);
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
                tokio::time::sleep(pause).await;
            }
            times.sort_unstable();
            (rounds, times, gave_up)
        })
    };
    let (ok, total, known_times, known_counts) = known.await?;
    let (rounds, newcomer_times, gave_up) = newcomer.await?;
    for attacker in attackers {
        attacker.await?;
    }
    let attack_total = attempts.load(Ordering::Relaxed);

    println!(
        "attack: {} s, {} connections, {:.1} fresh addresses/s",
        args.seconds, args.attackers, args.fresh_per_sec
    );
    println!(
        "  attacker requests: {attack_total} ({:.0}/s); answers: {}",
        attack_total as f64 / args.seconds as f64,
        attack_counts.show()
    );
    println!(
        "  known device: {ok}/{total} logins in ({:.1}%), p50 {:.0} ms, p99 {:.0} ms; answers: {known_counts}",
        100.0 * ok as f64 / total.max(1) as f64,
        percentile(&known_times, 0.5),
        percentile(&known_times, 0.99),
    );
    println!(
        "  new device: {} of {rounds} rounds in (gave up after 60 s: {gave_up}); time to get in p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        newcomer_times.len(),
        percentile(&newcomer_times, 0.5),
        percentile(&newcomer_times, 0.99),
        newcomer_times
            .last()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );

    if args.usernames > 0 {
        // Distinct usernames, twenty per address (each address's whole budget): every one
        // of them reaches the username counters.
        let sent = Arc::new(AtomicU64::new(0));
        let flood_started = Instant::now();
        let floods: Vec<_> = (0..256)
            .map(|_| {
                let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
                let total = args.usernames;
                tokio::spawn(async move {
                    loop {
                        let i = sent.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let a = i / 20;
                        let ip =
                            format!("172.{}.{}.{}", 16 + (a >> 16 & 15), a >> 8 & 255, a & 255);
                        let body = login_body(&format!("flood{i}"), "guess-password", None);
                        let _ = login(&client, &base, &ip, &body).await;
                    }
                })
            })
            .collect();
        // /api/me under the same flood with few counters, then with most of them made:
        // if the counters' cost grew with their number, the second would be slower.
        let (me_early_p50, me_early_p99) = me_latency(&client, &base, &token).await;
        while sent.load(Ordering::Relaxed) < args.usernames * 3 / 4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (me_late_p50, me_late_p99) = me_latency(&client, &base, &token).await;
        for flood in floods {
            flood.await?;
        }
        let flood_secs = flood_started.elapsed().as_secs_f64();
        let (me_after_p50, me_after_p99) = me_latency(&client, &base, &token).await;
        let rss = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
            })
            .unwrap_or_else(|| "?".into());
        println!(
            "counters: {} distinct usernames in {flood_secs:.0} s; server RSS {rss} KiB",
            args.usernames
        );
        println!(
            "  /api/me under the flood: p50 {me_early_p50:.2} ms with the first counters, {me_late_p50:.2} ms with three quarters of them ({:.2}x); p99 {me_early_p99:.2} / {me_late_p99:.2} ms",
            me_late_p50 / me_early_p50.max(1e-9),
        );
        println!(
            "  /api/me at rest: p50 {me_before_p50:.2} ms before, {me_after_p50:.2} ms after ({:.2}x); p99 {me_before_p99:.2} / {me_after_p99:.2} ms",
            me_after_p50 / me_before_p50.max(1e-9),
        );
    }
    drop(server);
    Ok(())
}
