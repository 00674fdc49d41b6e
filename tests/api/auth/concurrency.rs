//! Guarantees under concurrency: bursts of requests against one use case, and admin
//! changes racing logins. Each guarantee is one domain function doing the whole thing.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, spawn_app, spawn_app_with};

const BURST: usize = 40;

/// Sends `bodies` to `/api/login` all at once; returns each status and body.
async fn login_burst(app: &TestApp, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let requests = bodies.into_iter().map(|body| {
        let (client, url) = (app.client.clone(), app.url("/api/login"));
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    });
    join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Creates a user through the admin API and returns its id.
async fn create_user(app: &TestApp, admin: &str, body: Value) -> String {
    let response = app
        .call(Method::POST, "/api/admin/users", admin, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every session that a burst of logins opened is dead: its access token fails
/// `/api/me` and its refresh token fails to rotate.
async fn assert_no_session_survives(app: &TestApp, answers: &[(u16, Value)]) {
    for (status, body) in answers {
        if *status != 200 {
            continue;
        }
        let session = &body["session_id"];
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(app.get_me(access).await.status(), 401, "session {session}");
        let refresh = body["refresh_token"].as_str().unwrap();
        assert_eq!(
            app.post_refresh(refresh).await.status(),
            401,
            "session {session}"
        );
    }
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_no_more_attempts_than_the_limit() {
    let app = spawn_app().await;
    let limit = app.services.settings.login_max_failures as usize;
    let mut bodies = vec![json!({"username": "admin", "password": "wrong-password"}); BURST - 1];
    // The right password hidden in the burst is one more attempt, nothing more.
    bodies.insert(
        BURST / 2,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    );

    let answers = login_burst(&app, bodies).await;

    // A success starts the username's count over (by design). If the right password was
    // among the first admitted and its check finished before the last of the burst had
    // arrived (a loaded machine spreads the 40 arrivals), the later ones met a fresh
    // count: at most `limit` before the success and `limit` after it.
    let bound = match count(&answers, 200) {
        0 => limit,
        _ => 2 * limit,
    };
    let admitted = answers.len() - count(&answers, 429);
    assert!(
        (1..=bound).contains(&admitted),
        "{admitted} of {BURST} attempts reached the password check; the limit is {limit} \
         ({} succeeded)",
        count(&answers, 200)
    );
    for (status, body) in &answers {
        assert!(matches!(status, 200 | 401 | 429), "{status} {body}");
    }
    // What follows the burst (a delay, never a lock) is tested in `attacks`.
}

#[tokio::test]
async fn a_burst_from_one_address_gets_no_more_attempts_than_its_limit() {
    let app = spawn_app().await;
    let limit = app.services.settings.login_max_failures_per_ip as usize;
    // Each username is tried once: only the address's counter can stop them.
    let bodies = (0..BURST)
        .map(|i| json!({"username": format!("guess{i}"), "password": "wrong-password"}))
        .collect();

    let answers = login_burst(&app, bodies).await;

    let admitted = answers.len() - count(&answers, 429);
    assert!(
        admitted <= limit && count(&answers, 401) == admitted,
        "{admitted} of {BURST} attempts from one address got through; the limit is {limit}"
    );
    assert!(count(&answers, 429) >= BURST - limit);
}

async fn roomy_limits() -> TestApp {
    spawn_app_with(|s| {
        s.login_max_failures = 10_000;
        s.login_max_failures_per_ip = 10_000;
    })
    .await
}

#[tokio::test]
async fn no_login_in_flight_survives_a_password_change() {
    let app = roomy_limits().await;
    let admin = app.admin_token().await;
    let id = create_user(
        &app,
        &admin,
        json!({"username": "pia", "password": "old-password"}),
    )
    .await;
    let logins = vec![json!({"username": "pia", "password": "old-password"}); BURST];

    let change = {
        let (client, url, admin) = (
            app.client.clone(),
            app.url(&format!("/api/admin/users/{id}")),
            admin.clone(),
        );
        tokio::spawn(async move {
            client
                .patch(url)
                .bearer_auth(admin)
                .json(&json!({"password": "new-password"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let answers = login_burst(&app, logins).await;
    assert_eq!(change.await.unwrap(), 200);

    for (status, body) in &answers {
        assert!(matches!(status, 200 | 401), "{status} {body}");
    }
    assert_no_session_survives(&app, &answers).await;
    app.log_in("pia", "new-password").await;
}

#[tokio::test]
async fn no_login_in_flight_survives_a_disable() {
    let app = roomy_limits().await;
    let admin = app.admin_token().await;
    let id = create_user(
        &app,
        &admin,
        json!({"username": "quinn", "password": "quinn-password"}),
    )
    .await;
    let logins = vec![json!({"username": "quinn", "password": "quinn-password"}); BURST];

    let burst = {
        let app_logins = login_burst(&app, logins);
        let disable = async {
            // The logins have read the user and wait for the hasher when this commits.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            app.call(
                Method::PATCH,
                &format!("/api/admin/users/{id}"),
                &admin,
                Some(json!({"enabled": false})),
            )
            .await
            .status()
        };
        let (answers, disabled) = tokio::join!(app_logins, disable);
        assert_eq!(disabled, 200);
        answers
    };

    for (status, body) in &burst {
        assert!(matches!(status, 200 | 401), "{status} {body}");
    }
    assert_no_session_survives(&app, &burst).await;
}

#[tokio::test]
async fn no_login_in_flight_survives_a_delete_and_none_fails_with_500() {
    let app = roomy_limits().await;
    let admin = app.admin_token().await;
    let id = create_user(
        &app,
        &admin,
        json!({"username": "rory", "password": "rory-password"}),
    )
    .await;
    let logins = vec![json!({"username": "rory", "password": "rory-password"}); BURST];

    let (answers, deleted) = tokio::join!(login_burst(&app, logins), async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.call(
            Method::DELETE,
            &format!("/api/admin/users/{id}"),
            &admin,
            None,
        )
        .await
        .status()
    });
    assert_eq!(deleted, 204);

    for (status, body) in &answers {
        assert!(
            matches!(status, 200 | 401),
            "a login racing a delete answers like an unknown user, not {status} {body}"
        );
    }
    assert_no_session_survives(&app, &answers).await;
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_power_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create_user(
        &app,
        &admin,
        json!({"username": "sam", "password": "sam-password", "roles": ["admin"], "scopes": ["admin"]}),
    )
    .await;
    let sam = app.log_in("sam", "sam-password").await.access_token;
    let list = |token: String| {
        let app = &app;
        async move {
            app.call(Method::GET, "/api/admin/users", &token, None)
                .await
        }
    };
    assert_eq!(list(sam.clone()).await.status(), 200);

    let demoted = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            &admin,
            Some(json!({"roles": ["user"]})),
        )
        .await;
    assert_eq!(demoted.status(), 200);

    assert_error(list(sam.clone()).await, 401, "TOKEN_REVOKED").await;
    let minted = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &sam,
            Some(json!({"name": "escape hatch", "scopes": ["admin"]})),
        )
        .await;
    assert_error(minted, 401, "TOKEN_REVOKED").await;
    let relogin = app.log_in("sam", "sam-password").await.access_token;
    assert_error(list(relogin).await, 403, "INSUFFICIENT_PERMISSIONS").await;
}

#[tokio::test]
async fn an_admin_key_stops_when_its_owner_is_disabled_or_demoted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut keys = Vec::new();
    for name in ["tess", "uri"] {
        let id = create_user(
            &app,
            &admin,
            json!({"username": name, "password": "long-password", "roles": ["admin"], "scopes": ["admin"]}),
        )
        .await;
        let token = app.log_in(name, "long-password").await.access_token;
        // No owner named: the key acts for the admin who makes it.
        let created: Value = app
            .call(
                Method::POST,
                "/api/admin/api-keys",
                &token,
                Some(json!({"name": "bot", "scopes": ["admin"]})),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(created["owner_id"], id.as_str());
        let key = created["key"].as_str().unwrap().to_owned();
        assert_eq!(
            app.call(Method::GET, "/api/admin/users", &key, None)
                .await
                .status(),
            200
        );
        keys.push((id, key));
    }
    let patch = |id: &str, body: Value| {
        let (app, admin, path) = (&app, admin.clone(), format!("/api/admin/users/{id}"));
        async move {
            app.call(Method::PATCH, &path, &admin, Some(body))
                .await
                .status()
        }
    };

    assert_eq!(patch(&keys[0].0, json!({"enabled": false})).await, 200);
    assert_eq!(patch(&keys[1].0, json!({"roles": ["user"]})).await, 200);

    assert_error(
        app.call(Method::GET, "/api/admin/users", &keys[0].1, None)
            .await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_error(
        app.call(Method::GET, "/api/admin/users", &keys[1].1, None)
            .await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
}

#[tokio::test]
async fn an_admin_key_needs_an_owner_who_is_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = create_user(
        &app,
        &admin,
        json!({"username": "vic", "password": "vic-password"}),
    )
    .await;

    let refused = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "vic's", "scopes": ["admin"], "owner_id": id})),
        )
        .await;
    assert_error(refused, 400, "INVALID_REQUEST").await;
    let listed = app
        .get_json(&format!("/api/admin/api-keys?owner_id={id}"), &admin)
        .await;
    assert_eq!(listed["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn administration_needs_the_admin_scope_in_the_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    create_user(
        &app,
        &admin,
        json!({"username": "wes", "password": "wes-password", "roles": ["admin"], "scopes": ["admin", "read"]}),
    )
    .await;
    create_user(
        &app,
        &admin,
        json!({"username": "xan", "password": "xan-password", "roles": ["admin"], "scopes": ["read"]}),
    )
    .await;

    let narrowed = app
        .post_login(&json!({"username": "wes", "password": "wes-password", "scope": "read"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(narrowed["scope"], "read");
    let token = narrowed["access_token"].as_str().unwrap();
    assert_error(
        app.call(Method::GET, "/api/admin/users", token, None).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    let full = app.log_in("wes", "wes-password").await;
    assert_eq!(
        app.call(
            Method::GET,
            "/api/admin/users",
            full.access_token.as_str(),
            None
        )
        .await
        .status(),
        200
    );

    let role_without_scope = app.log_in("xan", "xan-password").await;
    assert_error(
        app.call(
            Method::GET,
            "/api/admin/users",
            role_without_scope.access_token.as_str(),
            None,
        )
        .await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
}

#[tokio::test]
async fn a_login_flood_beyond_the_queue_timeout_gets_quick_503s_and_charges_no_username() {
    // One hashing thread and a queue timeout shorter than one hash: one login at a time
    // is admitted, the rest of a burst is turned away at once. (Refusals do spend their
    // address's budget, tested in `attacks`; a roomy one here.)
    let app = spawn_app_with(|s| {
        s.hash_concurrency = 1;
        s.login_queue_timeout = Duration::from_millis(10);
        s.login_max_failures_per_ip = 1_000;
    })
    .await;
    app.create_user("flood", "flood-password", &[], json!({}))
        .await;
    let body = json!({"username": "flood", "password": "flood-password"});
    let burst = (0..16).map(|_| app.post_login(&body));
    let answers = join_all(burst).await;
    let mut ok = 0;
    let mut busy = 0;
    for answer in answers {
        match answer.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "UNAVAILABLE");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 1, "at least the first was admitted");
    assert!(
        busy >= 1,
        "a burst of 16 on one thread is more than 10 ms of work"
    );
    assert_eq!(ok + busy, 16);
    // Turned away before the username's throttle: it was not charged.
    for _ in 0..6 {
        let again = app
            .post_login(&json!({"username": "flood", "password": "flood-password"}))
            .await;
        assert_ne!(again.status(), 429);
        if again.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Revoking calls of concurrent requests commit together (one transaction per group):
/// a burst of logouts, RFC 7009 revocations of refresh and of access tokens and ends of
/// one's own session ends exactly what each asked for, nothing more, and emits one
/// event per ended session, each at a position of its own, delivered in order.
#[tokio::test]
async fn a_burst_of_revoking_calls_ends_what_each_asked_and_emits_each_event_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (key_id, key) = crate::events::events_key(&app, &admin).await;
    app.create_user("rhea", "rhea-password", &[], json!({}))
        .await;
    let mut pairs = Vec::new();
    for _ in 0..24 {
        pairs.push(app.log_in("rhea", "rhea-password").await);
    }

    let calls = pairs.iter().enumerate().map(|(i, pair)| {
        let client = app.client.clone();
        let request = match i % 4 {
            0 => client
                .post(app.url("/api/logout"))
                .json(&json!({"refresh_token": pair.refresh()})),
            1 => client
                .post(app.url("/api/token/revoke"))
                .json(&json!({"token": pair.refresh()})),
            2 => client
                .delete(app.url(&format!("/api/sessions/{}", pair.session_id)))
                .bearer_auth(&pair.access_token),
            _ => client
                .post(app.url("/api/token/revoke"))
                .json(&json!({"token": pair.access_token})),
        };
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    });
    // Checks of a live token meanwhile, each reading a list that the burst keeps
    // moving (and refills behind): none fails.
    let checks = (0..24).map(|_| {
        let request = app.client.get(app.url("/api/me")).bearer_auth(&admin);
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    });
    let (statuses, checked) = tokio::join!(join_all(calls), join_all(checks));
    let statuses: Vec<u16> = statuses.into_iter().map(Result::unwrap).collect();
    let expected: Vec<u16> = (0..24)
        .map(|i| if i % 4 == 0 || i % 4 == 2 { 204 } else { 200 })
        .collect();
    assert_eq!(statuses, expected);
    let checked: Vec<u16> = checked.into_iter().map(Result::unwrap).collect();
    assert_eq!(checked, vec![200; 24]);

    let mut ended = std::collections::BTreeSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        assert_eq!(
            app.get_me(&pair.access_token).await.status(),
            401,
            "call {i}"
        );
        let refresh = app.post_refresh(pair.refresh()).await.status();
        if i % 4 == 3 {
            // Only the access token was revoked: its session lives on.
            assert_eq!(refresh, 200, "call {i}");
        } else {
            assert_eq!(refresh, 401, "call {i}");
            ended.insert(pair.session_id.clone());
        }
    }

    let sets = crate::events::poll_now(&app, &key, &[]).await;
    let mut positions = Vec::new();
    let mut revoked = std::collections::BTreeSet::new();
    for (jti, set) in &sets {
        let (kind, payload, _) = crate::events::open(&app, set, &key_id).await;
        assert_eq!(kind, crate::events::SESSION_REVOKED);
        assert!(
            revoked.insert(payload["subject"]["id"].as_str().unwrap().to_owned()),
            "one event a session: {payload}"
        );
        let (generation, idx) = jti.split_once('-').unwrap();
        positions.push((
            generation.parse::<i64>().unwrap(),
            idx.parse::<i32>().unwrap(),
        ));
    }
    assert_eq!(revoked, ended);
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "delivered in order, each at its own position: {positions:?}"
    );
}

/// A user's sessions logging out while an admin ends all of them: the logouts commit in
/// groups, each holding its sessions' rows while the admin's transaction takes every
/// one of them. Every call succeeds (neither side fails on the other's row locks), and
/// no session survives.
#[tokio::test]
async fn logouts_racing_the_end_of_all_of_a_users_sessions_all_succeed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = app
        .create_user("ines", "ines-password", &[], json!({}))
        .await;
    for round in 0..5 {
        // Past the cut-off of the round before (the end of its second).
        app.clock.advance(Duration::from_secs(2));
        let mut pairs = Vec::new();
        for _ in 0..8 {
            pairs.push(app.log_in("ines", "ines-password").await);
        }
        let mut calls = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            if i == pairs.len() / 2 {
                let request = app
                    .client
                    .post(app.url(&format!("/api/admin/users/{}/revoke-sessions", user.id)))
                    .bearer_auth(&admin);
                calls.push(tokio::spawn(async move {
                    request.send().await.unwrap().status().as_u16()
                }));
            }
            let request = app
                .client
                .post(app.url("/api/logout"))
                .json(&json!({"refresh_token": pair.refresh()}));
            calls.push(tokio::spawn(async move {
                request.send().await.unwrap().status().as_u16()
            }));
        }
        let statuses: Vec<u16> = join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(statuses, vec![204; pairs.len() + 1], "round {round}");
        for pair in &pairs {
            assert_eq!(
                app.get_me(&pair.access_token).await.status(),
                401,
                "round {round}"
            );
            assert_eq!(
                app.post_refresh(pair.refresh()).await.status(),
                401,
                "round {round}"
            );
        }
    }
}

/// PostgreSQL: a revocation whose session another transaction holds locked waits for it
/// on its own, not in the way of other revocations (which commit in groups): a logout
/// of another session is answered while the lock is still held.
#[tokio::test]
async fn a_logout_waiting_for_a_locked_session_holds_up_no_other_logout() {
    use diesel::{Connection as _, RunQueryDsl as _};
    let app = spawn_app().await;
    let url = app.database_url().to_owned();
    if !url.starts_with("postgres") {
        return; // SQLite has one writer and no row locks.
    }
    let locked = app.log_in("admin", ADMIN_PASSWORD).await;
    let free = app.log_in("admin", ADMIN_PASSWORD).await;

    // Another transaction holds the first session's row until told to commit.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = tokio::sync::oneshot::channel::<()>();
    let session = locked.session_id.clone();
    let holder = tokio::task::spawn_blocking(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query(format!(
                "SELECT id FROM sessions WHERE id = '{session}' FOR UPDATE"
            ))
            .execute(conn)?;
            held.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        })
        .unwrap();
    });
    is_held.await.unwrap();

    let logout = |refresh: String| {
        let request = app
            .client
            .post(app.url("/api/logout"))
            .json(&json!({"refresh_token": refresh}));
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    let waiting = logout(locked.refresh().to_owned());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = tokio::time::timeout(Duration::from_secs(20), logout(free.refresh().to_owned()))
        .await
        .expect("the other logout answered while the lock is held")
        .unwrap();
    assert_eq!(other, 204);
    assert!(
        !waiting.is_finished(),
        "the first logout waits for the lock"
    );

    release.send(()).unwrap();
    holder.await.unwrap();
    assert_eq!(waiting.await.unwrap(), 204);
    for pair in [&locked, &free] {
        assert_eq!(app.post_refresh(pair.refresh()).await.status(), 401);
        assert_eq!(app.get_me(&pair.access_token).await.status(), 401);
    }
}
