//! Brute force, browser safety and headers.

use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_success_resets_the_username_counter() {
    let app = spawn_app().await;
    for _ in 0..2 {
        for _ in 0..4 {
            app.post_login(&json!({"username": "admin", "password": "guess-password"}))
                .await;
        }
        app.log_in("admin", ADMIN_PASSWORD).await;
    }
}

#[tokio::test]
async fn repeated_failures_from_one_address_answer_429_for_any_username() {
    let app = spawn_app_with(|s| s.login_max_failures_per_ip = 3).await;
    for i in 0..3 {
        app.post_login(&json!({"username": format!("nobody{i}"), "password": "guess-password"}))
            .await;
    }
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    assert_error(response, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    let login_from = |app: &crate::helpers::TestApp, ip: &str, password: &str| {
        app.client
            .post(app.url("/api/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "admin", "password": password}))
            .send()
    };
    let behind_proxy = spawn_app_with(|s| {
        s.login_max_failures_per_ip = 2;
        s.login_max_failures = 100;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        login_from(&behind_proxy, "203.0.113.9", "guess-password")
            .await
            .unwrap();
    }
    assert_eq!(
        login_from(&behind_proxy, "203.0.113.9", ADMIN_PASSWORD)
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        login_from(&behind_proxy, "198.51.100.7", ADMIN_PASSWORD)
            .await
            .unwrap()
            .status(),
        200,
        "another client"
    );

    let direct = spawn_app_with(|s| {
        s.login_max_failures_per_ip = 2;
        s.login_max_failures = 100;
    })
    .await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        login_from(&direct, ip, "guess-password").await.unwrap();
    }
    assert_eq!(
        login_from(&direct, "203.0.113.3", ADMIN_PASSWORD)
            .await
            .unwrap()
            .status(),
        429,
        "a forged header changes nothing"
    );
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins_with_credentials() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://app.example".to_owned()]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/refresh-token"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );

    let foreign = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let plain = spawn_app().await;
    let response = plain
        .client
        .get(plain.url("/healthz"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS unless configured"
    );
}

#[tokio::test]
async fn a_cookie_refresh_from_a_foreign_origin_is_refused() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://app.example".to_owned()]).await;
    let login = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let post = |origin: &'static str| {
        app.client
            .post(app.url("/api/refresh-token"))
            .header("cookie", cookie.clone())
            .header("origin", origin)
            .send()
    };
    assert_error(
        post("https://evil.example").await.unwrap(),
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    // GET rotates the cookie too: the same check, before anything is spent.
    let get = app
        .client
        .get(app.url("/api/refresh-token"))
        .header("cookie", cookie.clone())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_error(get, 403, "INSUFFICIENT_PERMISSIONS").await;
    assert_eq!(
        post("https://app.example").await.unwrap().status(),
        200,
        "an allowed origin, with the cookie still unspent"
    );
}

#[tokio::test]
async fn every_answer_carries_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let api = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        api.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    let policy = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
}
