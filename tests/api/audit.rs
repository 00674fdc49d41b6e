use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app};

async fn events(app: &crate::helpers::TestApp, admin: &str) -> Vec<Value> {
    let page: Value = app
        .call(Method::GET, "/api/admin/audit?limit=200", admin, None)
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_audit_log_records_admin_calls_failed_logins_reuse_and_rotation() {
    let app = spawn_app().await;
    let bad = app
        .post_login(&json!({"username": "admin", "password": "wrong-password"}))
        .await;
    assert_eq!(bad.status(), 401);
    let admin = app.admin_token().await;
    let user = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "walt", "password": "walt-password"})),
        )
        .await;
    let user: Value = user.json().await.unwrap();
    let first = app.login("walt", "walt-password").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.refresh(&first).await;
    app.clock.advance(Duration::from_secs(301));
    assert_error(app.post_refresh(&first).await, 401, "REFRESH_TOKEN_REUSED").await;
    let admin = app.admin_token().await;
    assert_eq!(
        app.call(Method::POST, "/api/admin/signing-keys/rotate", &admin, None)
            .await
            .status(),
        200
    );

    let log = events(&app, &admin).await;
    let find = |action: &str, outcome: &str| {
        log.iter()
            .find(|e| e["action"] == action && e["outcome"] == outcome)
            .cloned()
    };

    let failed = find("login", "failure").expect("failed login");
    assert_eq!(failed["actor"], "anonymous");
    assert_eq!(failed["target"], "username:admin");
    assert_eq!(failed["ip"], "127.0.0.1");
    let created = find("user.create", "success").expect("admin call");
    assert!(created["actor"].as_str().unwrap().starts_with("user:"));
    assert_eq!(
        created["target"],
        format!("user:{}", user["id"].as_str().unwrap())
    );
    let reuse = find("refresh.reuse", "failure").expect("reuse detection");
    assert_eq!(
        reuse["actor"],
        format!("user:{}", user["id"].as_str().unwrap())
    );
    find("signing_key.rotate", "success").expect("rotation");

    let times: Vec<&str> = log.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(
        log[0]["action"], "audit.list",
        "reading the log is itself an admin call"
    );
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_without_repeats() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for _ in 0..5 {
        app.call(Method::GET, "/api/admin/users", &admin, None)
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/admin/audit?limit=2".to_owned();
    loop {
        let page: Value = app
            .call(Method::GET, &path, &admin, None)
            .await
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/admin/audit?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
    assert!(
        seen.len() >= 7,
        "login + 5 lists + the reads: {}",
        seen.len()
    );
    let _ = ADMIN_PASSWORD;
}
