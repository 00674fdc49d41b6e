use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app, spawn_app_with};

async fn events(app: &crate::helpers::TestApp, admin: &str) -> Vec<Value> {
    let page = app.get_json("/api/admin/audit?limit=200", admin).await;
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
    let first = app
        .log_in("walt", "walt-password")
        .await
        .refresh()
        .to_owned();
    app.clock.advance(Duration::from_secs(5));
    let second = app.refreshed(&first).await.refresh().to_owned();
    // `first`, presented later than the leeway after it was spent: theft.
    app.clock.advance(Duration::from_secs(301));
    app.refresh(&second).await;
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
        let page = app.get_json(&path, &admin).await;
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

#[tokio::test]
async fn an_actor_filter_beyond_its_documented_length_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // 200 characters (multi-byte ones: the bound counts characters, as JSON Schema does).
    let longest = "é".repeat(200);
    let page = app
        .get_json(&format!("/api/admin/audit?actor={longest}"), &admin)
        .await;
    assert_eq!(page["items"], json!([]), "nobody is named that");
    let longer = format!("{longest}x");
    let refused = app
        .call(
            Method::GET,
            &format!("/api/admin/audit?actor={longer}"),
            &admin,
            None,
        )
        .await;
    assert_error(refused, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn refused_admin_calls_are_audited_and_a_user_update_names_its_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user: Value = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "xena", "password": "xena-password"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let key: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "soon disabled", "scopes": ["admin"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let xena = app.log_in("xena", "xena-password").await.access_token;

    let not_admin = app.call(Method::GET, "/api/admin/users", &xena, None).await;
    assert_error(not_admin, 403, "INSUFFICIENT_PERMISSIONS").await;
    app.call(
        Method::POST,
        &format!(
            "/api/admin/api-keys/{}/disable",
            key["id"].as_str().unwrap()
        ),
        &admin,
        None,
    )
    .await;
    let disabled = app
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{}", user["id"].as_str().unwrap()),
            key["key"].as_str().unwrap(),
            None,
        )
        .await;
    assert_error(disabled, 401, "AUTHENTICATION_FAILED").await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{}", user["id"].as_str().unwrap()),
            &admin,
            Some(json!({"password": "new-xena-password", "claims": {"a": 1}})),
        )
        .await;
    assert_eq!(patched.status(), 200);

    let log = events(&app, &admin).await;
    let refused: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "admin.refused")
        .collect();
    assert!(
        refused.iter().any(
            |e| e["actor"] == format!("user:{}", user["id"].as_str().unwrap())
                && e["target"] == "GET /api/admin/users"
                && e["outcome"] == "failure"
        ),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(
            |e| e["actor"] == format!("api_key:{}", key["id"].as_str().unwrap())
                && e["target"] == "DELETE /api/admin/users/{id}"
        ),
        "{refused:?}"
    );
    let update = log.iter().find(|e| e["action"] == "user.update").unwrap();
    assert_eq!(update["detail"], "changed: password, claims");
}

#[tokio::test]
async fn a_flood_of_limited_logins_writes_one_row_per_window_and_then_a_summary() {
    // The username's delays only (one counter; the address's is tested elsewhere).
    let app = spawn_app_with(|s| s.login_max_failures_per_ip = 1_000).await;
    let mut refused = 0;
    for _ in 0..150 {
        let response = app
            .post_login(&json!({"username": "admin", "password": "wrong-password"}))
            .await;
        match response.status().as_u16() {
            401 => {}
            429 => refused += 1,
            other => panic!("{other}"),
        }
    }
    // Five failures, then 1 s, 2 s... between attempts: most of 150 quick ones wait.
    assert!(refused >= 100, "{refused}");
    let admin_key = {
        // The admin's own login is limited too: act through a key made by the domain.
        use tokenmint::api_keys::{ApiKeyName, NewApiKey};
        use tokenmint::model::Admin;
        let admin_id = app
            .services
            .identity
            .list_users(&Admin::operator(), None, None, None, 10, app.clock_now())
            .await
            .unwrap()[0]
            .id;
        let (_, secret) = app
            .services
            .api_keys
            .create(
                &Admin::operator(),
                NewApiKey {
                    name: ApiKeyName::parse("auditor").unwrap(),
                    owner_id: Some(admin_id),
                    scopes: vec![tokenmint::model::Scope::admin()],
                    expires_at: None,
                    tenant: None,
                },
                app.clock_now(),
            )
            .await
            .unwrap();
        secret.expose().to_owned()
    };
    let limited = |log: &[Value]| {
        log.iter()
            .filter(|e| e["action"] == "login.rate_limited")
            .cloned()
            .collect::<Vec<_>>()
    };
    let during = limited(&events(&app, &admin_key).await);
    assert_eq!(during.len(), 1, "{during:?}");
    assert_eq!(during[0]["target"], "username:admin");

    // The window ends; housekeeping writes what it folded.
    app.clock.advance(Duration::from_secs(16 * 60));
    app.services.audit.flush(app.clock_now()).await;
    let after = limited(&events(&app, &admin_key).await);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        after[0]["detail"],
        format!("{} more like it in this window", refused - 1)
    );
}
