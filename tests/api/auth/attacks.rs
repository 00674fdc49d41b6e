//! Logins under attack: failures slow a username down but never lock it, a device proof
//! keeps its owner out of the slowdown, addresses count per /64, and a refused login
//! still spends its address's budget.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, spawn_app_with};

/// Behind a trusted proxy, so that each request may come "from" any address.
async fn behind_proxy(customize: impl FnOnce(&mut tokenmint::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        customize(s);
    })
    .await
}

async fn login_from(
    app: &TestApp,
    ip: &str,
    username: &str,
    password: &str,
    proof: Option<&str>,
) -> Response {
    let mut body = json!({"username": username, "password": password});
    if let Some(proof) = proof {
        body["device_proof"] = json!(proof);
    }
    app.client
        .post(app.url("/api/login"))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .expect("request")
}

fn retry_after(response: &Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `failures` wrong passwords for `username`, each from its own address, moving the
/// service's clock over each delay they impose. Afterwards the next attempt must wait at
/// least 2^(failures - free) seconds (16 s after 9 with the default 5 free).
async fn fail_from_many_addresses(app: &TestApp, username: &str, failures: usize) {
    let mut done = 0;
    let mut i = 0;
    while done < failures {
        i += 1;
        let response = login_from(
            app,
            &format!("203.0.113.{i}"),
            username,
            "guess-password",
            None,
        )
        .await;
        match response.status().as_u16() {
            401 => done += 1,
            429 => {
                let wait = retry_after(&response);
                assert!((1..=30).contains(&wait), "{wait}");
                app.clock.advance(Duration::from_secs(wait));
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
}

async fn proof_of(body: &Value) -> String {
    body["device_proof"]
        .as_str()
        .expect("a login answers a device proof")
        .to_owned()
}

#[tokio::test]
async fn failures_slow_a_username_down_and_never_lock_it() {
    let app = behind_proxy(|_| {}).await;
    fail_from_many_addresses(&app, "admin", 9).await;

    // The right password without a proof waits, with a delay no longer than the cap.
    let slowed = login_from(&app, "198.51.100.1", "admin", ADMIN_PASSWORD, None).await;
    let wait = retry_after(&slowed);
    assert!((2..=16).contains(&wait), "{wait}");
    assert_error(slowed, 429, "RATE_LIMITED").await;

    // No wall: once the delay is over, the owner is in.
    app.clock.advance(Duration::from_secs(wait));
    let response = login_from(&app, "198.51.100.1", "admin", ADMIN_PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    // And the success forgot the failures.
    for i in 0..4 {
        let response = login_from(&app, &format!("192.0.2.{i}"), "admin", "guess", None).await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn five_wrong_passwords_from_five_addresses_do_not_stop_the_owner_on_a_known_device() {
    let app = behind_proxy(|_| {}).await;
    let proof = proof_of(&app.login("admin", ADMIN_PASSWORD).await).await;
    fail_from_many_addresses(&app, "admin", 9).await;

    let anonymous = login_from(&app, "198.51.100.1", "admin", ADMIN_PASSWORD, None).await;
    assert_error(anonymous, 429, "RATE_LIMITED").await;
    let known = login_from(&app, "198.51.100.1", "admin", ADMIN_PASSWORD, Some(&proof)).await;
    assert_eq!(known.status(), 200);
    let body: Value = known.json().await.unwrap();
    let fresh = proof_of(&body).await;
    assert_ne!(fresh, proof, "each login hands out a fresh proof");
    let me = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // The address limit does not stop a known device either (a NAT's neighbours failed).
    let app = behind_proxy(|s| s.login_max_failures_per_ip = 3).await;
    let proof = proof_of(&app.login("admin", ADMIN_PASSWORD).await).await;
    for i in 0..3 {
        login_from(&app, "10.9.9.9", &format!("nobody{i}"), "guess", None).await;
    }
    let neighbour = login_from(&app, "10.9.9.9", "admin", ADMIN_PASSWORD, None).await;
    assert_error(neighbour, 429, "RATE_LIMITED").await;
    let known = login_from(&app, "10.9.9.9", "admin", ADMIN_PASSWORD, Some(&proof)).await;
    assert_eq!(known.status(), 200);
}

#[tokio::test]
async fn a_proof_for_another_username_or_a_forged_one_changes_nothing() {
    let app = behind_proxy(|_| {}).await;
    app.create_user("mallory", "mallory-password", &[], json!({}))
        .await;
    let mallory = proof_of(&app.login("mallory", "mallory-password").await).await;
    let admin = proof_of(&app.login("admin", ADMIN_PASSWORD).await).await;
    fail_from_many_addresses(&app, "admin", 9).await;

    let mut forged = admin.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for proof in [mallory.as_str(), forged.as_str(), "tmd1.nonsense", ""] {
        let response = login_from(&app, "198.51.100.1", "admin", ADMIN_PASSWORD, Some(proof)).await;
        assert_error(response, 429, "RATE_LIMITED").await;
    }
    // Ignored, never refused: a wrong proof with a username that is not slowed down.
    let response = login_from(
        &app,
        "198.51.100.2",
        "mallory",
        "mallory-password",
        Some(&admin),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_password_change_a_disable_and_a_delete_end_the_proofs() {
    let app = behind_proxy(|_| {}).await;
    let admin_token = app.admin_token().await;
    let user = app.create_user("pat", "pat-password", &[], json!({})).await;
    let path = format!("/api/admin/users/{}", user.id);
    let patch = |body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&admin_token)
            .json(&body)
            .send()
    };

    // A password change.
    let old = proof_of(&app.login("pat", "pat-password").await).await;
    assert_eq!(
        patch(json!({"password": "pat-password-2"}))
            .await
            .unwrap()
            .status(),
        200
    );
    fail_from_many_addresses(&app, "pat", 9).await;
    let response = login_from(&app, "198.51.100.1", "pat", "pat-password-2", Some(&old)).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    app.clock.advance(Duration::from_secs(31));

    // A disable, even once enabled again.
    let old = proof_of(&app.login("pat", "pat-password-2").await).await;
    assert_eq!(
        patch(json!({"enabled": false})).await.unwrap().status(),
        200
    );
    assert_eq!(patch(json!({"enabled": true})).await.unwrap().status(), 200);
    fail_from_many_addresses(&app, "pat", 9).await;
    let response = login_from(&app, "198.51.100.1", "pat", "pat-password-2", Some(&old)).await;
    assert_error(response, 429, "RATE_LIMITED").await;
    app.clock.advance(Duration::from_secs(31));

    // A delete, even with a new user of the same name.
    let old = proof_of(&app.login("pat", "pat-password-2").await).await;
    let deleted = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    app.create_user("pat", "pat-password-3", &[], json!({}))
        .await;
    fail_from_many_addresses(&app, "pat", 9).await;
    let response = login_from(&app, "198.51.100.1", "pat", "pat-password-3", Some(&old)).await;
    assert_error(response, 429, "RATE_LIMITED").await;

    // A live proof still works, which is what makes the three above meaningful.
    app.clock.advance(Duration::from_secs(31));
    let live = proof_of(&app.login("pat", "pat-password-3").await).await;
    fail_from_many_addresses(&app, "pat", 9).await;
    let response = login_from(&app, "198.51.100.1", "pat", "pat-password-3", Some(&live)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_stolen_proof_buys_a_few_guesses_not_a_bypass() {
    let app = behind_proxy(|_| {}).await;
    let proof = proof_of(&app.login("admin", ADMIN_PASSWORD).await).await;
    fail_from_many_addresses(&app, "admin", 9).await;
    // The proof's own budget: five failures, then it is anonymous for the window.
    for i in 0..5 {
        let response = login_from(
            &app,
            &format!("192.0.2.{i}"),
            "admin",
            "guess",
            Some(&proof),
        )
        .await;
        assert_error(response, 401, "AUTHENTICATION_FAILED").await;
    }
    let response = login_from(&app, "192.0.2.99", "admin", ADMIN_PASSWORD, Some(&proof)).await;
    assert_error(response, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn ipv6_addresses_of_one_64_share_a_budget() {
    let app = behind_proxy(|s| {
        s.login_max_failures_per_ip = 3;
        s.login_max_failures = 100;
    })
    .await;
    for host in ["a", "b", "c"] {
        let response = login_from(
            &app,
            &format!("2001:db8:1:2::{host}"),
            "admin",
            "guess",
            None,
        )
        .await;
        assert_eq!(response.status(), 401);
    }
    let same_64 = login_from(
        &app,
        "2001:db8:1:2:ffff:1:2:3",
        "admin",
        ADMIN_PASSWORD,
        None,
    )
    .await;
    assert_error(same_64, 429, "RATE_LIMITED").await;
    let other_64 = login_from(&app, "2001:db8:1:3::a", "admin", ADMIN_PASSWORD, None).await;
    assert_eq!(other_64.status(), 200);
}

#[tokio::test]
async fn a_login_refused_as_busy_still_spends_its_address_budget() {
    // One hashing thread and a queue of ten milliseconds: a burst is mostly refused 503.
    let app = behind_proxy(|s| {
        s.hash_concurrency = 1;
        s.login_queue_timeout = Duration::from_millis(10);
        s.login_max_failures_per_ip = 12;
        s.login_max_failures = 1_000;
    })
    .await;
    let names: Vec<String> = (0..12).map(|i| format!("bot{i}")).collect();
    let burst: Vec<_> = names
        .iter()
        .map(|name| login_from(&app, "10.1.1.1", name, "guess", None))
        .collect();
    let statuses: Vec<u16> = futures_util::future::join_all(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 503)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the queue refused some: {statuses:?}"
    );
    // Twelve attempts counted, however few were hashed.
    let next = login_from(&app, "10.1.1.1", "admin", ADMIN_PASSWORD, None).await;
    assert_error(next, 429, "RATE_LIMITED").await;
    let elsewhere = login_from(&app, "10.1.1.2", "admin", ADMIN_PASSWORD, None).await;
    assert_eq!(elsewhere.status(), 200);
}

#[tokio::test]
async fn in_cookie_mode_the_proof_is_also_an_http_only_cookie_and_is_read_back() {
    let app = behind_proxy(|_| {}).await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-tokenmint_device="))
        .expect("a device cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=7776000",
    ] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    let body: Value = response.json().await.unwrap();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("__Host-tokenmint_device=")
        .to_owned();
    assert_eq!(value, proof_of(&body).await);

    fail_from_many_addresses(&app, "admin", 9).await;
    let with_cookie = app
        .client
        .post(app.url("/api/login"))
        .header("x-forwarded-for", "198.51.100.1")
        .header("cookie", format!("__Host-tokenmint_device={value}"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
}
