//! `/metrics`: a real process (its own recorder), scraped and parsed with a Prometheus
//! text parser, counters that move with the events, bounded labels, nothing secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::processes::{redis_server, tokenmint};
use crate::helpers::{TestDatabase, free_port};

/// The official Prometheus Python client's parser over `text`: every sample, or a panic
/// if the exposition is malformed.
async fn parse_with_prometheus_client(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    use std::io::Write as _;
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || {
        crate::drivers::interop::install();
        let mut child = std::process::Command::new("python3")
            .arg("parse_metrics.py")
            .current_dir(crate::drivers::interop::interop_dir())
            .env(
                "PYTHONPATH",
                crate::drivers::interop::interop_dir().join(".pydeps"),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "the Prometheus parser refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// One scrape: every sample as (name, sorted labels) -> value.
struct Scrape {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    text: String,
}

impl Scrape {
    async fn of(client: &reqwest::Client, url: &str) -> Self {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = response.text().await.unwrap();
        let mut samples = BTreeMap::new();
        for (name, labels, value) in parse_with_prometheus_client(&text).await {
            let mut labels: Vec<(String, String)> = labels.into_iter().collect();
            labels.sort();
            samples.insert((name, labels), value);
        }
        Self { samples, text }
    }

    /// The value of `name` with exactly `labels` (0 if absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.samples
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// The label sets of `name`.
    fn series(&self, name: &str) -> Vec<&Vec<(String, String)>> {
        self.samples
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l)
            .collect()
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    bearer: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = client.post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// `POST /api/login` as admin with `password`.
async fn login_admin(client: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    post(
        client,
        format!("{base}/api/login"),
        None,
        json!({"username": "admin", "password": password}),
    )
    .await
}

#[tokio::test]
async fn metrics_count_the_events_with_bounded_labels_and_no_secrets() {
    if !crate::drivers::interop::interop_available() {
        return;
    }
    let database = TestDatabase::new();
    let dir = database.dir.path();
    // Its own Redis, to take it away and see the outage counted.
    let (redis, redis_port) = redis_server(dir, "--port", &[]).await;
    let metrics_port = free_port();
    let (_server, base) = tokenmint(
        dir,
        &[
            ("TOKENMINT_DATABASE_URL", database.url_string.clone()),
            (
                "TOKENMINT_REDIS_URL",
                format!("redis://127.0.0.1:{redis_port}"),
            ),
            (
                "TOKENMINT_METRICS_BIND",
                format!("127.0.0.1:{metrics_port}"),
            ),
            (
                "TOKENMINT_BOOTSTRAP_ADMIN",
                "admin:metrics-admin-password".to_owned(),
            ),
            ("TOKENMINT_JWKS_MAX_AGE", "1s".to_owned()),
            ("TOKENMINT_REFRESH_REUSE_LEEWAY", "1s".to_owned()),
            ("TOKENMINT_KEY_ROTATION_INTERVAL", "1h".to_owned()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let scrape_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let before = Scrape::of(&client, &scrape_url).await;

    // Only on its own address.
    let main = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404);

    // A failed and a successful login.
    let wrong = login_admin(&client, &base, "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    let login: Value = login_admin(&client, &base, "metrics-admin-password")
        .await
        .json()
        .await
        .unwrap();
    let admin = login["access_token"].as_str().unwrap().to_owned();
    let first = login["refresh_token"].as_str().unwrap().to_owned();

    // Many distinct ids on one route: one series for the route.
    let ids: Vec<String> = (0..40).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        let answer = client
            .get(format!("{base}/api/admin/users/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
    }
    for junk in ["/nowhere", "/api/nope/1", "/api/nope/2"] {
        client.get(format!("{base}{junk}")).send().await.unwrap();
    }

    // Rotation, then a reuse: the first token again, after the session moved on twice.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a head older than the leeway
    let second: Value = post(
        &client,
        format!("{base}/api/refresh-token"),
        None,
        json!({"refresh_token": first}),
    )
    .await
    .json()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the reuse leeway
    let third = post(
        &client,
        format!("{base}/api/refresh-token"),
        None,
        json!({"refresh_token": second["refresh_token"]}),
    )
    .await;
    assert_eq!(third.status(), 200);
    let reused = post(
        &client,
        format!("{base}/api/refresh-token"),
        None,
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(
        reused.json::<Value>().await.unwrap()["error"],
        "REFRESH_TOKEN_REUSED"
    );

    // A rotation on demand (the next key has been published for the 1 s max-age).
    let fresh: Value = login_admin(&client, &base, "metrics-admin-password")
        .await
        .json()
        .await
        .unwrap();
    let admin = fresh["access_token"].as_str().unwrap().to_owned();
    let rotated = post(
        &client,
        format!("{base}/api/admin/signing-keys/rotate"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_eq!(rotated.status(), 200, "{}", rotated.text().await.unwrap());

    // The revocation list goes away: once the instance has seen its connection close
    // (the mirror of the list is dropped), checks fail closed and are counted.
    drop(redis);
    for _ in 0..100 {
        if Scrape::of(&client, &scrape_url)
            .await
            .get("tokenmint_revocation_mirror", &[])
            == 0.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let me = client
        .get(format!("{base}/api/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 503);

    let after = Scrape::of(&client, &scrape_url).await;
    eprintln!("a scrape after the scenario:\n{}", after.text);
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    assert_eq!(
        moved("tokenmint_logins_total", &[("outcome", "failure")]),
        1.0
    );
    assert_eq!(
        moved("tokenmint_logins_total", &[("outcome", "success")]),
        2.0
    );
    assert_eq!(
        moved("tokenmint_refreshes_total", &[("outcome", "rotated")]),
        2.0
    );
    assert_eq!(
        moved("tokenmint_refreshes_total", &[("outcome", "reused")]),
        1.0
    );
    assert_eq!(moved("tokenmint_signing_key_rotations_total", &[]), 1.0);
    assert!(
        moved(
            "tokenmint_revocation_checks_total",
            &[("outcome", "unavailable")]
        ) >= 1.0
    );
    assert!(
        moved(
            "tokenmint_revocation_checks_total",
            &[("outcome", "active")]
        ) >= 40.0
    );
    assert_eq!(
        moved(
            "tokenmint_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/admin/users/{id}"),
                ("status", "404")
            ]
        ),
        40.0
    );
    assert_eq!(
        moved(
            "tokenmint_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        3.0
    );
    assert_eq!(
        after.get(
            "tokenmint_http_request_duration_seconds_count",
            &[("route", "/api/admin/users/{id}")]
        ),
        40.0
    );
    // A route without a `{...}` segment: counted under its path, by method and status,
    // each answer once.
    let refreshes = |status| {
        moved(
            "tokenmint_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/refresh-token"),
                ("status", status),
            ],
        )
    };
    assert_eq!((refreshes("200"), refreshes("401")), (2.0, 1.0));
    assert_eq!(
        moved(
            "tokenmint_http_request_duration_seconds_count",
            &[("route", "/api/refresh-token")]
        ),
        3.0
    );
    assert_eq!(
        moved(
            "tokenmint_http_requests_total",
            &[("method", "GET"), ("route", "/api/me"), ("status", "503")]
        ),
        1.0
    );
    assert_eq!(
        after.get("tokenmint_signing_keys", &[("status", "current")]),
        1.0
    );
    assert_eq!(
        after.get("tokenmint_signing_keys", &[("status", "next")]),
        1.0
    );
    assert_eq!(
        after.get("tokenmint_signing_keys", &[("status", "retiring")]),
        1.0
    );
    assert!(after.get("process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(!after.series("tokenmint_db_connections").is_empty());
    assert_eq!(after.get("tokenmint_password_hashes_in_flight", &[]), 0.0);

    // Bounded: routes are templates; no id, username, token or address in any label.
    let routes: std::collections::BTreeSet<&str> = after
        .series("tokenmint_http_requests_total")
        .into_iter()
        .flat_map(|labels| {
            labels
                .iter()
                .filter(|(k, _)| k == "route")
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert!(
        routes
            .iter()
            .all(|r| *r == "unmatched" || r.starts_with('/')),
        "{routes:?}"
    );
    assert!(routes.len() <= 10, "{routes:?}");
    for secret in ids.iter().map(String::as_str).chain([
        admin.as_str(),
        first.as_str(),
        "metrics-admin-password",
        "127.0.0.1",
        "/nowhere",
    ]) {
        assert!(!after.text.contains(secret), "{secret:?} in the scrape");
    }
}

/// A fresh instance exports every counter of the contract at 0, with every outcome, so
/// that `rate()` and alerts work before the first event.
#[tokio::test]
async fn every_counter_of_the_contract_is_exported_at_zero_from_the_start() {
    let database = TestDatabase::new();
    let (_server, base) = tokenmint(
        database.dir.path(),
        &[("TOKENMINT_DATABASE_URL", database.url_string.clone())],
    )
    .await;
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut expected = vec![
        "tokenmint_signing_key_rotations_total 0".to_owned(),
        "tokenmint_revocation_list_refills_total 0".to_owned(),
    ];
    for (name, outcomes) in [
        (
            "tokenmint_logins_total",
            &["success", "failure", "rate_limited", "busy"][..],
        ),
        (
            "tokenmint_refreshes_total",
            &[
                "rotated",
                "converged",
                "reused",
                "expired",
                "revoked",
                "invalid",
            ][..],
        ),
        (
            "tokenmint_revocation_checks_total",
            &["active", "revoked", "unavailable"][..],
        ),
        (
            "tokenmint_tickets_total",
            &["issued", "redeemed", "refused"][..],
        ),
    ] {
        for outcome in outcomes {
            expected.push(format!("{name}{{outcome=\"{outcome}\"}} 0"));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !lines.contains(&e.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
}
