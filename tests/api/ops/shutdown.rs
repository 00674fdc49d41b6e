//! SIGTERM under load: requests in flight finish; none is cut.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{free_port, wait_until_serving};

const BIN: &str = env!("CARGO_BIN_EXE_tokenmint");

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(BIN)
        .env("TOKENMINT_BIND", format!("127.0.0.1:{port}"))
        .env(
            "TOKENMINT_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("t.db").display()),
        )
        .env("TOKENMINT_BOOTSTRAP_ADMIN", "admin:shutdown-password")
        .env("TOKENMINT_HASH_CONCURRENCY", "1")
        // 20 logins of one user in flight at once: over the default limits, which count
        // attempts before the password is checked.
        .env("TOKENMINT_LOGIN_MAX_FAILURES", "1000")
        .env("TOKENMINT_LOGIN_MAX_FAILURES_PER_IP", "1000")
        // ...and more than one slot works off in the default 1 s queue timeout.
        .env("TOKENMINT_LOGIN_QUEUE_TIMEOUT", "1m")
        .env("TOKENMINT_LOG", "warn")
        .env_remove("TOKENMINT_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_until_serving(&client, &base).await;

    // Logins queue on one argon2 slot, so most are still in flight at the signal.
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let url = format!("{base}/api/login");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": "admin", "password": "shutdown-password"}))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );

    for request in requests {
        let response = request
            .await
            .unwrap()
            .expect("an answer: no request is cut");
        assert_eq!(response.status(), 200);
    }
    let status = server.wait().unwrap();
    assert!(status.success(), "a clean exit: {status}");
}
