//! Sessions and devices: a user's live sessions, ending one, ending all others, and the
//! admin twins within the admin's tenant; the addresses come from the one client-address
//! rule (a forged `X-Forwarded-For` from an untrusted peer changes nothing).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Pair, TestApp, assert_error, item_ids, spawn_app, spawn_app_with};

const PASSWORD: &str = "device-password";

/// Logs `username` in from a device: its `User-Agent` and, if given, the address a proxy
/// says it forwards for.
async fn log_in_from(
    app: &TestApp,
    username: &str,
    user_agent: &str,
    forwarded_for: Option<&str>,
) -> Pair {
    let mut request = app
        .client
        .post(app.url("/api/login"))
        .header("user-agent", user_agent)
        .json(&json!({"username": username, "password": PASSWORD}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "login of {username}");
    response.json().await.unwrap()
}

/// The caller's live sessions (first page of 200).
async fn own_sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let page = app.get_json("/api/sessions?limit=200", access).await;
    assert!(page["next_cursor"].is_null(), "{page}");
    page["items"].as_array().unwrap().clone()
}

fn ids(sessions: &[Value]) -> Vec<&str> {
    sessions.iter().map(|s| s["id"].as_str().unwrap()).collect()
}

const OWN: &str = "/api/sessions";
const ADMIN: &str = "/api/admin/sessions";

/// `DELETE <route>/<id>`: a user ending their session (`OWN`) or an admin (`ADMIN`).
async fn end(app: &TestApp, route: &str, id: &str, credential: &str) -> reqwest::Response {
    app.call(Method::DELETE, &format!("{route}/{id}"), credential, None)
        .await
}

/// `POST /api/sessions/revoke-others`.
async fn revoke_others(app: &TestApp, access: &str) -> reqwest::Response {
    app.call(Method::POST, "/api/sessions/revoke-others", access, None)
        .await
}

/// `/api/me` with the access token and a refresh with the refresh token: both statuses.
async fn still_works(app: &TestApp, pair: &Pair) -> (u16, u16) {
    let me = app.get_me(&pair.access_token).await.status().as_u16();
    let refresh = app.post_refresh(pair.refresh()).await.status().as_u16();
    (me, refresh)
}

/// Both credentials of a session refused as revoked.
async fn assert_ended(app: &TestApp, pair: &Pair) {
    assert_error(app.get_me(&pair.access_token).await, 401, "TOKEN_REVOKED").await;
    assert_error(app.post_refresh(pair.refresh()).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn two_devices_are_listed_newest_first_with_their_fields_and_which_is_current() {
    let app = spawn_app().await;
    let user = app
        .create_user("dana", PASSWORD, &["read"], json!({}))
        .await;
    app.create_user("other", PASSWORD, &[], json!({})).await;
    let laptop = log_in_from(&app, "dana", "Laptop/1.0 (X11; Linux)", None).await;
    app.clock.advance(Duration::from_secs(2));
    let phone = log_in_from(&app, "dana", "Phone/2.0 (Android 15)", None).await;
    log_in_from(&app, "other", "Elsewhere/1.0", None).await;

    let listed = own_sessions(&app, &phone.access_token).await;
    assert_eq!(ids(&listed), [&phone.session_id, &laptop.session_id]);
    let first = listed[0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "client_id",
            "created_at",
            "current",
            "expires_at",
            "id",
            "ip",
            "last_ip",
            "last_refreshed_at",
            "scope",
            "tenant",
            "user_agent",
            "user_id"
        ]
    );
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[1]["current"], false);
    assert_eq!(listed[0]["user_agent"], "Phone/2.0 (Android 15)");
    assert_eq!(listed[1]["user_agent"], "Laptop/1.0 (X11; Linux)");
    for session in &listed {
        assert_eq!(session["user_id"], user.id.to_string());
        assert_eq!(session["tenant"], "default");
        assert_eq!(session["client_id"], Value::Null);
        assert_eq!(session["scope"], "read");
        assert_eq!(session["ip"], "127.0.0.1");
        assert_eq!(session["last_ip"], "127.0.0.1");
        assert_eq!(session["last_refreshed_at"], Value::Null, "never refreshed");
        let created =
            chrono::DateTime::parse_from_rfc3339(session["created_at"].as_str().unwrap()).unwrap();
        let expires =
            chrono::DateTime::parse_from_rfc3339(session["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(
            expires - created,
            chrono::TimeDelta::days(30),
            "absolute end"
        );
    }
    // Seen from the laptop, the laptop is the current one.
    let from_laptop = own_sessions(&app, &laptop.access_token).await;
    assert_eq!(from_laptop[0]["current"], false);
    assert_eq!(from_laptop[1]["current"], true);
}

#[tokio::test]
async fn ending_one_session_ends_its_tokens_at_once_and_leaves_the_other() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let laptop = log_in_from(&app, "dana", "Laptop", None).await;
    let phone = log_in_from(&app, "dana", "Phone", None).await;

    let ended = end(&app, OWN, &laptop.session_id, &phone.access_token).await;
    assert_eq!(ended.status(), 204);
    assert_ended(&app, &laptop).await;
    assert_eq!(still_works(&app, &phone).await, (200, 200));
    let listed = own_sessions(&app, &phone.access_token).await;
    assert_eq!(ids(&listed), [&phone.session_id]);

    // Ended is ended: again, 404.
    let again = end(&app, OWN, &laptop.session_id, &phone.access_token).await;
    assert_error(again, 404, "NOT_FOUND").await;

    // The current session may end itself: its token is refused from the answer on.
    let own = end(&app, OWN, &phone.session_id, &phone.access_token).await;
    assert_eq!(own.status(), 204);
    assert_error(app.get_me(&phone.access_token).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn another_users_session_is_404_and_stays_untouched() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    app.create_user("eve", PASSWORD, &[], json!({})).await;
    let dana = log_in_from(&app, "dana", "Laptop", None).await;
    let eve = log_in_from(&app, "eve", "Intruder", None).await;

    for id in [
        dana.session_id.as_str(),
        "00000000-0000-4000-8000-000000000000",
        "not-a-session",
    ] {
        let answer = end(&app, OWN, id, &eve.access_token).await;
        assert_error(answer, 404, "NOT_FOUND").await;
    }
    assert_eq!(still_works(&app, &dana).await, (200, 200));
    // Eve's list holds only Eve's.
    assert_eq!(
        ids(&own_sessions(&app, &eve.access_token).await),
        [&eve.session_id]
    );
}

#[tokio::test]
async fn revoke_others_ends_every_session_but_the_current_one() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let mut others = Vec::new();
    for device in ["Laptop", "Tablet"] {
        others.push(log_in_from(&app, "dana", device, None).await);
    }
    let phone = log_in_from(&app, "dana", "Phone", None).await;

    let answer = revoke_others(&app, &phone.access_token).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    for other in &others {
        assert_ended(&app, other).await;
    }
    assert_eq!(still_works(&app, &phone).await, (200, 200));
    assert_eq!(
        ids(&own_sessions(&app, &phone.access_token).await),
        [phone.session_id.as_str()]
    );

    let again = revoke_others(&app, &phone.access_token).await;
    assert_eq!(again.json::<Value>().await.unwrap(), json!({"revoked": 0}));
}

#[tokio::test]
async fn revoke_others_in_a_burst_of_logins_ends_exactly_what_it_counts() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let mut before = Vec::new();
    for _ in 0..4 {
        before.push(log_in_from(&app, "dana", "Before", None).await);
    }
    let keeper = log_in_from(&app, "dana", "Keeper", None).await;
    // Logins racing the revoke-others: each is either counted and ended, or after it
    // and left alone; never ended without being counted, nor counted and left.
    let logins = (0..6).map(|_| log_in_from(&app, "dana", "During", None));
    let revoke = revoke_others(&app, &keeper.access_token);
    let (during, answer) = tokio::join!(futures_util::future::join_all(logins), revoke);
    assert_eq!(answer.status(), 200);
    let revoked = answer.json::<Value>().await.unwrap()["revoked"]
        .as_u64()
        .unwrap();
    let listed: BTreeSet<String> = ids(&own_sessions(&app, &keeper.access_token).await)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert!(listed.contains(&keeper.session_id));
    let mut ended = 0;
    for pair in before.iter().chain(&during) {
        let me = app.get_me(&pair.access_token).await.status().as_u16();
        if listed.contains(&pair.session_id) {
            assert_eq!(me, 200, "a listed session works");
        } else {
            assert_eq!(me, 401, "an unlisted session is ended");
            ended += 1;
        }
    }
    for pair in &before {
        assert!(!listed.contains(&pair.session_id), "older sessions all end");
    }
    assert_eq!(revoked, ended, "the count is what ended");
}

#[tokio::test]
async fn sessions_page_newest_first_without_repeats_and_bad_pages_are_400() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let mut opened = Vec::new();
    for i in 0..5 {
        opened.push(log_in_from(&app, "dana", &format!("Device {i}"), None).await);
        // Two of them in the same instant: the id breaks the tie.
        if i != 2 {
            app.clock.advance(Duration::from_secs(1));
        }
    }
    let token = &opened[4].access_token;
    let mut seen = Vec::new();
    let mut path = "/api/sessions?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = app.get_json(&path, token).await;
        pages += 1;
        seen.extend(item_ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/sessions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first: Vec<&str> = opened.iter().map(|p| p.session_id.as_str()).collect();
    newest_first.reverse();
    // Sessions 2 and 3 share their creation time: either order, each once.
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], newest_first[0]);
    assert_eq!(seen[1], newest_first[1]);
    let middle: BTreeSet<&str> = seen[2..4].iter().map(String::as_str).collect();
    assert_eq!(middle, BTreeSet::from([newest_first[2], newest_first[3]]));
    assert_eq!(seen[4], newest_first[4]);

    for bad in ["limit=0", "limit=201", "cursor=%21%21", "cursor=MTIz"] {
        let answer = app
            .call(Method::GET, &format!("/api/sessions?{bad}"), token, None)
            .await;
        assert_error(answer, 400, "INVALID_REQUEST").await;
    }
}

#[tokio::test]
async fn the_session_routes_need_a_users_access_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, key) = app.api_key(&admin, &["admin"]).await;
    for (method, path) in [
        (Method::GET, "/api/sessions"),
        (Method::POST, "/api/sessions/revoke-others"),
        (
            Method::DELETE,
            "/api/sessions/00000000-0000-4000-8000-000000000000",
        ),
    ] {
        let missing = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        let headers = assert_error(missing, 401, "AUTHENTICATION_FAILED").await;
        assert!(headers.contains_key("www-authenticate"), "{path}");
        // An API key is no session: the routes take a bearer access token only.
        let by_key = app.call(method.clone(), path, &key, None).await;
        assert_error(by_key, 401, "AUTHENTICATION_FAILED").await;
    }
    // A client's own token (client credentials) has no sessions.
    let token = app.client_credentials_token(&admin, None).await;
    let by_client = app.call(Method::GET, "/api/sessions", &token, None).await;
    assert_error(by_client, 403, "INSUFFICIENT_PERMISSIONS").await;
}

#[tokio::test]
async fn a_user_agent_is_kept_to_256_characters() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let long = format!("Browser/{}", "x".repeat(400));
    let pair = log_in_from(&app, "dana", &long, None).await;
    let listed = own_sessions(&app, &pair.access_token).await;
    assert_eq!(listed[0]["user_agent"], long[..256]);
}

#[tokio::test]
async fn admins_list_and_end_a_users_sessions_and_are_audited() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = app.create_user("dana", PASSWORD, &[], json!({})).await;
    let laptop = log_in_from(&app, "dana", "Laptop", None).await;
    app.clock.advance(Duration::from_secs(1));
    let phone = log_in_from(&app, "dana", "Phone", None).await;

    let path = format!("/api/admin/users/{}/sessions", user.id);
    let page = app.get_json(&path, &admin).await;
    assert_eq!(
        item_ids(&page),
        [phone.session_id.clone(), laptop.session_id.clone()]
    );
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == false)
    );
    assert_eq!(page["items"][1]["user_agent"], "Laptop");

    let ended = end(&app, ADMIN, &laptop.session_id, &admin).await;
    assert_eq!(ended.status(), 204);
    assert_ended(&app, &laptop).await;
    assert_eq!(still_works(&app, &phone).await, (200, 200));
    assert_eq!(
        item_ids(&app.get_json(&path, &admin).await),
        [phone.session_id.as_str()]
    );
    let again = end(&app, ADMIN, &laptop.session_id, &admin).await;
    assert_error(again, 404, "NOT_FOUND").await;
    let nobody = app
        .call(
            Method::GET,
            "/api/admin/users/00000000-0000-4000-8000-000000000000/sessions",
            &admin,
            None,
        )
        .await;
    assert_error(nobody, 404, "NOT_FOUND").await;

    let log = app.get_json("/api/admin/audit?limit=200", &admin).await;
    let actions: Vec<(String, String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |action: &str, target: String, outcome: &str| {
        assert!(
            actions.contains(&(action.to_owned(), target.clone(), outcome.to_owned())),
            "{action} {target} {outcome}: {actions:?}"
        );
    };
    expect("session.list", format!("user:{}", user.id), "success");
    expect(
        "session.end",
        format!("session:{}", laptop.session_id),
        "success",
    );
    expect(
        "session.end",
        format!("session:{}", laptop.session_id),
        "failure",
    );
}

#[tokio::test]
async fn tenant_admins_reach_only_their_tenants_sessions_and_users_none() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    app.create_tenant_user(&admin, "acme", "boss", &["admin"], &["admin"])
        .await;
    let worker = app
        .create_tenant_user(&admin, "acme", "worker", &["user"], &[])
        .await;
    let boss = app.tenant_login("acme", "boss").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let worker_login = app.tenant_login("acme", "worker").await;
    let outsider = app.create_user("dana", PASSWORD, &[], json!({})).await;
    let dana = log_in_from(&app, "dana", "Laptop", None).await;

    // Their own tenant: yes.
    let page = app
        .get_json(&format!("/api/admin/users/{worker}/sessions"), &boss)
        .await;
    assert_eq!(
        item_ids(&page),
        [worker_login["session_id"].as_str().unwrap()]
    );
    assert_eq!(page["items"][0]["tenant"], "acme");
    // Another tenant's user and session: as if they did not exist.
    let list = app
        .call(
            Method::GET,
            &format!("/api/admin/users/{}/sessions", outsider.id),
            &boss,
            None,
        )
        .await;
    assert_error(list, 404, "NOT_FOUND").await;
    let ended = end(&app, ADMIN, &dana.session_id, &boss).await;
    assert_error(ended, 404, "NOT_FOUND").await;
    assert_eq!(still_works(&app, &dana).await, (200, 200));

    // A plain user: 403 on both admin routes, and nothing ends.
    let plain = &dana.access_token;
    let list = app
        .call(
            Method::GET,
            &format!("/api/admin/users/{}/sessions", outsider.id),
            plain,
            None,
        )
        .await;
    assert_error(list, 403, "INSUFFICIENT_PERMISSIONS").await;
    let worker_session = worker_login["session_id"].as_str().unwrap();
    let ended = end(&app, ADMIN, worker_session, plain).await;
    assert_error(ended, 403, "INSUFFICIENT_PERMISSIONS").await;
    assert_eq!(
        app.get_me(worker_login["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_refresh_from_a_new_address_updates_last_ip_on_every_rotation_path() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    app.register_login_client("spa", &[]).await;
    let login = log_in_from(&app, "dana", "Laptop", Some("203.0.113.5")).await;
    let listed = own_sessions(&app, &login.access_token).await;
    assert_eq!(listed[0]["ip"], "203.0.113.5");
    assert_eq!(listed[0]["last_ip"], "203.0.113.5");

    // Past the reuse leeway, a refresh rotates (the rotation writes the address).
    app.clock.advance(Duration::from_secs(30));
    let refreshed = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"refresh_token": login.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let refreshed: Pair = refreshed.json().await.unwrap();
    let listed = own_sessions(&app, &refreshed.access_token).await;
    assert_eq!(listed[0]["ip"], "203.0.113.5", "the login's address stays");
    assert_eq!(listed[0]["last_ip"], "198.51.100.9");
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(listed[0][field].as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let since_login = time("last_refreshed_at") - time("created_at");
    assert!(
        since_login >= chrono::TimeDelta::seconds(30)
            && time("last_refreshed_at") <= app.clock_now(),
        "the rotation's time: {since_login}"
    );

    // A public client's session rotates at the token endpoint, through the general path.
    let spa = app
        .client
        .post(app.url("/api/login"))
        .json(&json!({"username": "dana", "password": PASSWORD, "client_id": "spa"}))
        .send()
        .await
        .unwrap();
    let spa: Pair = spa.json().await.unwrap();
    app.clock.advance(Duration::from_secs(30));
    let rotated = app
        .client
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", "192.0.2.77")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", spa.refresh()),
            ("client_id", "spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let listed = own_sessions(&app, &spa.access_token).await;
    let session = listed
        .iter()
        .find(|s| s["id"] == spa.session_id.as_str())
        .unwrap();
    assert_eq!(session["client_id"], "spa");
    assert_eq!(
        session["ip"], "127.0.0.1",
        "the login came straight from the peer"
    );
    assert_eq!(session["last_ip"], "192.0.2.77");
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_no_address_limit_or_audit() {
    let app = spawn_app_with(|s| {
        s.login_max_failures_per_ip = 3;
        s.login_max_failures = 100;
    })
    .await;
    let admin = app.admin_token().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let login = log_in_from(&app, "dana", "Forger", Some("203.0.113.66")).await;
    app.clock.advance(Duration::from_secs(30));
    let refreshed = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("x-forwarded-for", "203.0.113.67")
        .json(&json!({"refresh_token": login.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let listed = own_sessions(&app, &login.access_token).await;
    assert_eq!(listed[0]["ip"], "127.0.0.1", "the peer, not the header");
    assert_eq!(listed[0]["last_ip"], "127.0.0.1");

    // The audit log names the peer too.
    let log = app.get_json("/api/admin/audit?limit=200", &admin).await;
    let logins: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login" && e["target"] == "username:dana")
        .collect();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["ip"], "127.0.0.1");

    // And the per-address limit counts the peer whatever the header says. (The admin's
    // login and dana's spent none of it: only failures count.)
    for i in 1..=3 {
        let failed = app
            .client
            .post(app.url("/api/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"username": "dana", "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 401);
    }
    let limited = app
        .client
        .post(app.url("/api/login"))
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({"username": "dana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(limited, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn the_concrete_path_wins_over_the_session_id_template() {
    let app = spawn_app().await;
    app.create_user("dana", PASSWORD, &[], json!({})).await;
    let pair = log_in_from(&app, "dana", "Laptop", None).await;
    // `revoke-others` is no session id: the wrong method there is 405, as for any path.
    let answer = app
        .call(
            Method::DELETE,
            "/api/sessions/revoke-others",
            &pair.access_token,
            None,
        )
        .await;
    let headers = assert_error(answer, 405, "METHOD_NOT_ALLOWED").await;
    assert_eq!(headers["allow"], "POST");
    let answer = app
        .call(
            Method::PUT,
            "/api/sessions/some-id",
            &pair.access_token,
            None,
        )
        .await;
    let headers = assert_error(answer, 405, "METHOD_NOT_ALLOWED").await;
    assert_eq!(headers["allow"], "DELETE");
    assert_eq!(still_works(&app, &pair).await, (200, 200));
}
