//! A full scenario with logs at debug: no secret it used may appear in them.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{free_port, wait_until_serving};

const BIN: &str = env!("CARGO_BIN_EXE_tokenmint");

fn encodings(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        hex,
    ]
}

#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("secrets.db");
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let admin_password = "Adm1n-secret-password-xyz";
    let mut server = Command::new(BIN)
        .env("TOKENMINT_BIND", format!("127.0.0.1:{port}"))
        .env(
            "TOKENMINT_DATABASE_URL",
            format!("sqlite://{}", db_path.display()),
        )
        .env("TOKENMINT_LOG", "debug")
        .env(
            "TOKENMINT_BOOTSTRAP_ADMIN",
            format!("admin:{admin_password}"),
        )
        .env("TOKENMINT_JWKS_MAX_AGE", "1s")
        .env("TOKENMINT_KEY_ROTATION_INTERVAL", "1h")
        .env_remove("TOKENMINT_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_serving(&client, &base).await;

    let mut secrets: Vec<String> = vec![
        admin_password.to_owned(),
        "Us3r-secret-password-abc".to_owned(),
    ];
    let login = |username: &str, password: &str| {
        client
            .post(format!("{base}/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
    };
    let admin: Value = login("admin", admin_password)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    secrets.push(admin_token.clone());
    secrets.push(admin["refresh_token"].as_str().unwrap().to_owned());
    let refreshed: Value = client
        .post(format!("{base}/api/refresh-token"))
        .json(&json!({"refresh_token": admin["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(refreshed["refresh_token"].as_str().unwrap().to_owned());
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    let bad = login("admin", "Wr0ng-secret-guess").await.unwrap();
    assert_eq!(bad.status(), 401);
    secrets.push("Wr0ng-secret-guess".to_owned());

    let created = client
        .post(format!("{base}/api/admin/users"))
        .bearer_auth(&admin_token)
        .json(&json!({"username": "user1", "password": "Us3r-secret-password-abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user: Value = login("user1", "Us3r-secret-password-abc")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(user["refresh_token"].as_str().unwrap().to_owned());

    let key: Value = client
        .post(format!("{base}/api/admin/api-keys"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "bot", "scopes": ["admin", "introspect"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = key["key"].as_str().unwrap().to_owned();
    secrets.push(api_key.clone());
    let by_header = client
        .get(format!("{base}/api/admin/users"))
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let by_query = client
        .get(format!("{base}/api/admin/users?key={api_key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let introspected = client
        .post(format!("{base}/api/token/introspect"))
        .header("x-api-key", &api_key)
        .form(&[("token", user["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(introspected.status(), 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = client
        .post(format!("{base}/api/admin/signing-keys/rotate"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let logout = client
        .post(format!("{base}/api/logout"))
        .bearer_auth(&admin_token)
        .json(&json!({"refresh_token": refreshed["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();

    // The key-encryption key and every private key, in the encodings a log might use.
    let kek = std::fs::read_to_string(format!("{}.kek", db_path.display())).unwrap();
    secrets.push(kek.trim().to_owned());
    let settings = tokenmint::config::Settings::from_lookup(|name| match name {
        "TOKENMINT_DATABASE_URL" => Some(format!("sqlite://{}", db_path.display())),
        _ => None,
    })
    .unwrap();
    let kek =
        tokenmint::keys::kek::Kek::from_file(&tokenmint::keys::kek::kek_path(&db_path)).unwrap();
    let db = tokenmint::store::Db::new(&settings.database_url, 1, Duration::from_secs(5)).unwrap();
    let rows = db
        .run(tokenmint::store::signing_keys::list_all)
        .await
        .map_err(|e: tokenmint::store::StoreError| e)
        .unwrap();
    assert!(rows.len() >= 3, "the scenario made keys");
    for row in rows {
        if let Some(sealed) = row.private_key {
            let pkcs8 = kek.decrypt(&sealed, &row.kid).unwrap();
            secrets.extend(encodings(&pkcs8));
        }
    }

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("\"path\":\"/api/login\""),
        "the log was captured: {}",
        &log[..log.len().min(500)]
    );
    assert!(log.contains("DEBUG"), "logs ran at debug");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log: {}...",
            &secret[..8.min(secret.len())]
        );
    }
}
