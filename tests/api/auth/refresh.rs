use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, Pair, assert_error, spawn_app, spawn_app_with};

fn refresh_of(pair: &Pair) -> String {
    pair.refresh().to_owned()
}

fn access_of(pair: &Pair) -> String {
    pair.access_token.clone()
}

#[tokio::test]
async fn login_returns_a_refresh_token_that_rotates_once_per_leeway() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    assert!(first.starts_with("tmr_"), "a prefix scanners know: {first}");
    assert_eq!(
        first.len(),
        4 + 75,
        "session, generation and a 256-bit MAC, base64url"
    );
    assert_eq!(login.refresh_expires_in, 7 * 24 * 3600);

    // A head younger than the leeway is answered as it is, with a fresh access token.
    let response = app.post_refresh(&first).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let pair: Pair = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(refresh_of(&pair), first, "not rotated within the leeway");
    assert_ne!(access_of(&pair), access_of(&login));
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(pair.expires_in, 900);
    assert_eq!(pair.session_id, login.session_id);
    assert_eq!(app.get_me(&access_of(&pair)).await.status(), 200);

    // A head as old as the leeway rotates.
    app.clock.advance(Duration::from_secs(5));
    let body = app.refreshed(&first).await;
    let second = refresh_of(&body);
    assert_ne!(second, first);
    assert_eq!(
        body.session_id.as_str(),
        login.session_id.as_str(),
        "the session carries on"
    );
    assert_eq!(app.get_me(&access_of(&body)).await.status(), 200);

    app.clock.advance(Duration::from_secs(5));
    let third = refresh_of(&app.refreshed(&second).await);
    assert_ne!(third, second);
    assert_ne!(third, first);
}

#[tokio::test]
async fn the_frontend_flow_expired_access_token_then_refresh_then_retry() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;

    app.clock.advance(Duration::from_secs(16 * 60));
    assert_error(app.get_me(&access_of(&login)).await, 401, "TOKEN_EXPIRED").await;

    let fresh = app.refreshed(&refresh_of(&login)).await;
    assert_eq!(app.get_me(&access_of(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn the_predecessor_within_the_leeway_gets_the_same_successor() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    app.clock.advance(Duration::from_secs(5));
    let successor = refresh_of(&app.refreshed(&first).await);
    assert_ne!(successor, first);

    // A lost answer retried, or another tab: up to the leeway after the rotation.
    app.clock.advance(Duration::from_secs(4));
    let again = app.refreshed(&first).await;

    assert_eq!(refresh_of(&again), successor, "tabs converge on one token");
    assert_eq!(app.get_me(&access_of(&again)).await.status(), 200);
    app.clock.advance(Duration::from_secs(1));
    assert_ne!(
        refresh_of(&app.refreshed(&successor).await),
        successor,
        "which rotates on"
    );
}

#[tokio::test]
async fn the_immediate_predecessor_after_the_leeway_is_reuse_and_ends_the_session() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    app.clock.advance(Duration::from_secs(5));
    let pair = app.refreshed(&first).await;
    // More than the leeway after `first` was spent; nothing else happened meanwhile.
    app.clock.advance(Duration::from_secs(6));

    assert_error(app.post_refresh(&first).await, 401, "REFRESH_TOKEN_REUSED").await;

    assert_error(
        app.post_refresh(&refresh_of(&pair)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(app.get_me(&access_of(&pair)).await, 401, "TOKEN_REVOKED").await;
    assert_error(app.get_me(&access_of(&login)).await, 401, "TOKEN_REVOKED").await;
    assert!(!app.is_active(&access_of(&pair)).await);
    // Reuse again is still refused, and the session stays ended.
    assert_error(app.post_refresh(&first).await, 401, "TOKEN_REVOKED").await;
    // Other sessions of the same user are untouched.
    let other = app.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get_me(&access_of(&other)).await.status(), 200);
}

#[tokio::test]
async fn a_spent_token_is_reuse_however_long_the_wait_and_whichever_it_is() {
    // The defect this replaces: the head's immediate predecessor was accepted at any
    // time, so a thief and the user could refresh side by side forever.
    for (wait, older) in [(6, false), (3 * 24 * 3600, false), (6, true)] {
        let app = spawn_app().await;
        let first = refresh_of(&app.log_in("admin", ADMIN_PASSWORD).await);
        app.clock.advance(Duration::from_secs(5));
        let second = refresh_of(&app.refreshed(&first).await);
        app.clock.advance(Duration::from_secs(5));
        let third = refresh_of(&app.refreshed(&second).await);
        // `second` is the immediate predecessor, `first` older than it.
        let (spent, head) = if older {
            (&first, &third)
        } else {
            (&second, &third)
        };

        app.clock.advance(Duration::from_secs(wait));
        assert_error(app.post_refresh(spent).await, 401, "REFRESH_TOKEN_REUSED").await;
        assert_error(app.post_refresh(head).await, 401, "TOKEN_REVOKED").await;
    }
}

#[tokio::test]
async fn an_owner_and_a_thief_who_alternate_are_caught_at_the_first_late_presentation() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let sid = login.session_id.clone();
    let copied = refresh_of(&login);

    // The owner rotates; the thief, inside the leeway, joins with its copy and gets the
    // head too (it cannot be told from a second tab).
    app.clock.advance(Duration::from_secs(60));
    let owner = refresh_of(&app.refreshed(&copied).await);
    app.clock.advance(Duration::from_secs(2));
    let thief = refresh_of(&app.refreshed(&copied).await);
    assert_eq!(thief, owner, "joined inside the leeway");

    // Long gaps between turns change nothing: both now hold the head. The owner
    // rotates an hour later; the thief presents the same (now spent) token a day later.
    app.clock.advance(Duration::from_secs(3600));
    let owner_next = refresh_of(&app.refreshed(&owner).await);
    assert_ne!(owner_next, owner);
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert_error(app.post_refresh(&thief).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert!(app.session_state(&sid).await.1, "the session is revoked");
    assert_error(app.post_refresh(&owner_next).await, 401, "TOKEN_REVOKED").await;

    // The other order: the thief rotates first, the owner comes back late.
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let copied = refresh_of(&login);
    app.clock.advance(Duration::from_secs(60));
    let thief = refresh_of(&app.refreshed(&copied).await);
    app.clock.advance(Duration::from_secs(6));
    assert_error(app.post_refresh(&copied).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert_error(app.post_refresh(&thief).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn a_lost_answer_retried_inside_the_leeway_converges_and_after_it_is_reuse() {
    let app = spawn_app().await;
    let first = refresh_of(&app.log_in("admin", ADMIN_PASSWORD).await);
    app.clock.advance(Duration::from_secs(60));
    // The answer to this refresh never reaches the client.
    let lost = refresh_of(&app.refreshed(&first).await);
    app.clock.advance(Duration::from_secs(4));
    let retried = app.refreshed(&first).await;
    assert_eq!(refresh_of(&retried), lost, "the answer it lost");
    assert_eq!(app.get_me(&access_of(&retried)).await.status(), 200);

    // A second client that lost its answer and retries after the leeway must log in
    // again: its session is ended.
    let first = refresh_of(&app.log_in("admin", ADMIN_PASSWORD).await);
    app.clock.advance(Duration::from_secs(60));
    let lost = refresh_of(&app.refreshed(&first).await);
    app.clock.advance(Duration::from_secs(6));
    assert_error(app.post_refresh(&first).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert_error(app.post_refresh(&lost).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn a_late_response_in_a_cookie_jar_never_sets_a_browser_back_within_the_leeway() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let sid = login.session_id.clone();
    let first = refresh_of(&login);
    app.clock.advance(Duration::from_secs(60));

    // Tab A rotates; tab B, a moment later, presents the new head: a head younger than
    // the leeway is answered as it is, so both answers carry the same token, in
    // whatever order they reach the jar.
    let a = refresh_of(&app.refreshed(&first).await);
    app.clock.advance(Duration::from_secs(1));
    let b = refresh_of(&app.refreshed(&a).await);
    assert_eq!(a, b, "one head for both tabs");
    assert_eq!(app.session_state(&sid).await, (1, false), "one rotation");

    // An hour on, the jar's token rotates as usual.
    app.clock.advance(Duration::from_secs(3600));
    let next = refresh_of(&app.refreshed(&b).await);
    assert_ne!(next, b);
    assert_eq!(app.session_state(&sid).await, (2, false));
}

#[tokio::test]
async fn another_instance_answers_by_the_same_rules() {
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let first = refresh_of(&a.log_in("admin", ADMIN_PASSWORD).await);
    a.clock.advance(Duration::from_secs(60));
    b.clock.advance(Duration::from_secs(60));
    let second = refresh_of(&a.refreshed(&first).await);
    assert_ne!(second, first);
    // Inside the leeway, B leads the predecessor to A's head.
    assert_eq!(refresh_of(&b.refreshed(&first).await), second);

    a.clock.advance(Duration::from_secs(600));
    b.clock.advance(Duration::from_secs(600));
    let third = refresh_of(&b.refreshed(&second).await);
    assert_ne!(third, second);
    a.clock.advance(Duration::from_secs(6));
    assert_error(a.post_refresh(&second).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert_error(b.post_refresh(&third).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn a_burst_of_40_on_the_head_never_forks_the_session() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let sid = login.session_id.clone();
    let token = refresh_of(&login);
    // Old enough to rotate: one request of the burst rotates it, the others are its
    // predecessor's within the leeway, or the head younger than it.
    app.clock.advance(Duration::from_secs(60));

    let answers = futures_util::future::join_all((0..40).map(|_| app.post_refresh(&token))).await;

    let mut successors = Vec::new();
    for response in answers {
        assert_eq!(response.status(), 200, "never a 5xx or a refusal");
        let pair: Pair = response.json().await.unwrap();
        assert_eq!(pair.session_id, login.session_id, "never a second session");
        successors.push(refresh_of(&pair));
    }
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor");
    assert_ne!(successors[0], token);
    assert_eq!(
        app.session_state(&sid).await,
        (1, false),
        "rotated exactly once"
    );
    app.clock.advance(Duration::from_secs(5));
    app.refreshed(&successors[0]).await;
    assert_eq!(app.session_state(&sid).await, (2, false));
}

#[tokio::test]
async fn a_burst_across_sessions_gets_each_request_its_own_outcome() {
    let app = spawn_app().await;
    let mut heads = Vec::new();
    for _ in 0..10 {
        heads.push(app.log_in("admin", ADMIN_PASSWORD).await);
    }
    // A session whose first token is reuse by the time of the burst.
    let stolen = refresh_of(&app.log_in("admin", ADMIN_PASSWORD).await);
    app.clock.advance(Duration::from_secs(5));
    let second = app.refreshed(&stolen).await;
    app.clock.advance(Duration::from_secs(6));
    let robbed = app.refreshed(&refresh_of(&second)).await;
    // A session that has ended.
    let ended = app.log_in("admin", ADMIN_PASSWORD).await;
    let response = app
        .client
        .post(app.url("/api/logout"))
        .json(&json!({"refresh_token": refresh_of(&ended)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Every head twice, the reused token and the ended session's, all at once.
    let mut presented: Vec<String> = heads.iter().chain(heads.iter()).map(refresh_of).collect();
    presented.push(stolen);
    presented.push(refresh_of(&ended));
    let mut answers =
        futures_util::future::join_all(presented.iter().map(|t| app.post_refresh(t))).await;

    let ended_answer = answers.pop().unwrap();
    let stolen_answer = answers.pop().unwrap();
    assert_error(ended_answer, 401, "TOKEN_REVOKED").await;
    assert_error(stolen_answer, 401, "REFRESH_TOKEN_REUSED").await;
    let mut bodies = Vec::new();
    for response in answers {
        assert_eq!(response.status(), 200);
        bodies.push(response.json::<Pair>().await.unwrap());
    }
    for (i, login) in heads.iter().enumerate() {
        let (first, twin) = (&bodies[i], &bodies[i + heads.len()]);
        assert_eq!(first.session_id, login.session_id, "its own session");
        assert_eq!(twin.session_id, login.session_id, "its own session");
        assert_ne!(refresh_of(first), refresh_of(login), "rotated");
        assert_eq!(
            refresh_of(first),
            refresh_of(twin),
            "one successor per session"
        );
        assert_eq!(app.get_me(&access_of(first)).await.status(), 200);
    }

    // Afterwards: the successors rotate on; the reused token's session is over.
    app.clock.advance(Duration::from_secs(5));
    for body in &bodies[..heads.len()] {
        app.refreshed(&refresh_of(body)).await;
    }
    assert_error(
        app.post_refresh(&refresh_of(&robbed)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(app.get_me(&access_of(&robbed)).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn an_idle_refresh_token_expires_and_the_session_caps_its_tokens() {
    let app = spawn_app_with(|s| {
        s.refresh_ttl = Duration::from_secs(60);
        s.session_ttl = Duration::from_secs(100);
    })
    .await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(login.refresh_expires_in, 60);

    app.clock.advance(Duration::from_secs(50));
    let pair = app.refreshed(&refresh_of(&login)).await;
    let capped = pair.refresh_expires_in as i64;
    assert!(
        (49..=50).contains(&capped),
        "capped by the session's end: {capped}"
    );

    app.clock.advance(Duration::from_secs(51));
    assert_error(
        app.post_refresh(&refresh_of(&pair)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;

    let idle = app.log_in("admin", ADMIN_PASSWORD).await;
    app.clock.advance(Duration::from_secs(61));
    assert_error(
        app.post_refresh(&refresh_of(&idle)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
}

#[tokio::test]
async fn unknown_malformed_and_missing_refresh_tokens_fail_authentication() {
    let app = spawn_app().await;
    for token in [
        "A".repeat(43),
        "short".to_owned(),
        "x".repeat(5000),
        String::new(),
    ] {
        assert_error(app.post_refresh(&token).await, 401, "AUTHENTICATION_FAILED").await;
    }
    let no_body = app
        .client
        .post(app.url("/api/refresh-token"))
        .send()
        .await
        .unwrap();
    assert_error(no_body, 401, "AUTHENTICATION_FAILED").await;
    let bad_json = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("content-type", "application/json")
        .body("{\"refresh_token\": ")
        .send()
        .await
        .unwrap();
    assert_error(bad_json, 400, "INVALID_REQUEST").await;
    let unknown_field = app
        .client
        .post(app.url("/api/refresh-token"))
        .json(&json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(unknown_field, 400, "INVALID_REQUEST").await;
}

/// The refresh cookie a response sets: its value and its whole `Set-Cookie` header.
fn cookie_value(response: &reqwest::Response) -> (String, String) {
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_owned())
        .find(|h| h.starts_with("__Host-tokenmint_refresh=") || h.starts_with("tokenmint_refresh="))
        .expect("a refresh cookie");
    let value = header
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    (value, header)
}

fn attributes(header: &str) -> Vec<String> {
    header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn cookie_mode_keeps_the_refresh_token_out_of_bodies() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    assert_eq!(response.status(), 200);
    let (cookie, header) = cookie_value(&response);
    // __Host-: only this host may set it (Secure, Path=/, no Domain), so a sibling
    // subdomain cannot plant one.
    assert!(header.starts_with("__Host-tokenmint_refresh="), "{header}");
    let attributes = attributes(&header);
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=604800",
    ] {
        assert!(
            attributes.iter().any(|a| a == attribute),
            "{attribute} in {header}"
        );
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("Domain")),
        "{header}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(cookie.len(), 79);
    app.clock.advance(Duration::from_secs(5));

    let post = app
        .refresh_with_cookie(&format!("__Host-tokenmint_refresh={cookie}"))
        .await;
    assert_eq!(post.status(), 200);
    let (rotated, _) = cookie_value(&post);
    assert_ne!(rotated, cookie);
    assert!(
        post.json::<Value>()
            .await
            .unwrap()
            .get("refresh_token")
            .is_none()
    );

    app.clock.advance(Duration::from_secs(5));
    let get = app
        .client
        .get(app.url("/api/refresh-token"))
        .header("cookie", format!("__Host-tokenmint_refresh={rotated}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let (latest, _) = cookie_value(&get);
    assert_ne!(latest, rotated);
    assert!(
        app.get_me(
            get.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
        )
        .await
        .status()
            == 200
    );
}

#[tokio::test]
async fn get_never_reads_a_token_from_the_query_string() {
    let app = spawn_app().await;
    let token = refresh_of(&app.log_in("admin", ADMIN_PASSWORD).await);

    let response = app
        .client
        .get(app.url(&format!("/api/refresh-token?refresh_token={token}")))
        .send()
        .await
        .unwrap();

    assert_error(response, 401, "AUTHENTICATION_FAILED").await;
    app.refreshed(&token).await;
}

#[tokio::test]
async fn the_cookie_is_not_secure_only_when_configured_for_plain_http() {
    let app = spawn_app_with(|s| s.cookie_secure = false).await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (cookie, header) = cookie_value(&response);
    // Browsers refuse a __Host- cookie without Secure: over plain HTTP the plain name.
    assert!(header.starts_with("tokenmint_refresh="), "{header}");
    assert!(!header.contains("Secure"), "{header}");
    assert!(attributes(&header).iter().any(|a| a == "Path=/api"));
    assert!(header.contains("HttpOnly"));
    let refreshed = app
        .refresh_with_cookie(&format!("tokenmint_refresh={cookie}"))
        .await;
    assert_eq!(refreshed.status(), 200);
}

/// When `Secure`, only the `__Host-` cookie is read: one of the old name may have been
/// planted by a sibling subdomain or a plain-HTTP page (it would log the victim into the
/// planter's session). It is not read, and it is cleared.
#[tokio::test]
async fn the_old_cookie_name_is_never_read_when_secure_and_is_cleared() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (cookie, _) = cookie_value(&response);

    // The attacker's own refresh token, planted under the old name.
    let refused = app
        .refresh_with_cookie(&format!("tokenmint_refresh={cookie}"))
        .await;
    let set: Vec<String> = refused
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set.iter()
            .all(|h| !h.starts_with("__Host-tokenmint_refresh=")),
        "no session was handed out: {set:?}"
    );
    assert!(
        set.iter().any(|h| h.starts_with("tokenmint_refresh=;")
            && h.contains("Max-Age=0")
            && h.contains("Path=/api")),
        "the old cookie is cleared: {set:?}"
    );
    assert_error(refused, 401, "AUTHENTICATION_FAILED").await;
    // The token itself was not spent: its owner's own cookie still refreshes.
    let own = app
        .refresh_with_cookie(&format!("__Host-tokenmint_refresh={cookie}"))
        .await;
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn a_request_with_two_refresh_cookies_is_refused_and_spends_nothing() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (cookie, _) = cookie_value(&response);
    let planted = "A".repeat(43);

    for name in ["__Host-tokenmint_refresh", "tokenmint_refresh"] {
        let tossed = app
            .refresh_with_cookie(&format!("{name}={planted}; {name}={cookie}"))
            .await;
        assert_error(tossed, 401, "AUTHENTICATION_FAILED").await;
    }
    // A planted cookie of the old name does not shadow the __Host- one.
    let shadowed = app
        .client
        .post(app.url("/api/refresh-token"))
        .header(
            "cookie",
            format!("tokenmint_refresh={planted}; __Host-tokenmint_refresh={cookie}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        shadowed.status(),
        200,
        "the __Host- cookie wins, and was unspent"
    );
}

#[tokio::test]
async fn logout_revokes_the_session_and_the_access_token() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let refreshed = app.refreshed(&refresh_of(&login)).await;

    let response = app
        .client
        .post(app.url("/api/logout"))
        .bearer_auth(access_of(&refreshed))
        .json(&json!({"refresh_token": refresh_of(&refreshed)}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "the cookie is cleared"
    );
    assert_error(
        app.post_refresh(&refresh_of(&refreshed)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(
        app.get_me(&access_of(&refreshed)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(app.get_me(&access_of(&login)).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn logout_with_an_unknown_or_no_token_is_still_204() {
    let app = spawn_app().await;
    let unknown = app
        .client
        .post(app.url("/api/logout"))
        .json(&json!({"refresh_token": "B".repeat(43)}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 204);
    let nothing = app
        .client
        .post(app.url("/api/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(nothing.status(), 204);
}

#[tokio::test]
async fn logout_through_the_cookie() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (cookie, _) = cookie_value(&response);
    let access = access_of(&response.json::<Pair>().await.unwrap());

    let logout = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", format!("__Host-tokenmint_refresh={cookie}"))
        .send()
        .await
        .unwrap();

    assert_eq!(logout.status(), 204);
    assert_error(app.get_me(&access).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn storage_does_not_grow_with_rotations_and_ended_sessions_go() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let sid = login.session_id.clone();
    let mut token = refresh_of(&login);
    app.clock.advance(Duration::from_secs(5));
    token = refresh_of(&app.refreshed(&token).await);
    let after_first = app.row_counts().await;
    assert_eq!(after_first["sessions"], 1);

    for _ in 0..1_000 {
        app.clock.advance(Duration::from_secs(5));
        token = refresh_of(&app.refreshed(&token).await);
    }
    assert_eq!(app.session_state(&sid).await, (1_001, false));
    assert_eq!(
        app.row_counts().await,
        after_first,
        "every table holds the same rows after 1,001 rotations as after one"
    );
    assert_eq!(
        app.get_me(&access_of(&app.refreshed(&token).await))
            .await
            .status(),
        200
    );

    app.clock.advance(Duration::from_secs(31 * 24 * 3600));
    assert_eq!(
        app.services.sessions.sweep(app.clock_now()).await.unwrap(),
        1,
        "the ended session is deleted"
    );
    assert_eq!(app.row_counts().await["sessions"], 0);
}

#[tokio::test]
async fn in_cookie_mode_only_an_answer_that_moves_the_jar_forward_sets_the_cookie() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (first, _) = cookie_value(&response);
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.refresh_with_cookie(&format!("__Host-tokenmint_refresh={token}"))
                .await
        }
    };
    let sets_refresh_cookie = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|h| h.to_str().unwrap().starts_with("__Host-tokenmint_refresh="))
    };

    // The head, younger than the leeway: the same token, so the jar is left alone (a
    // late answer like this one cannot put back a token that a rotation spent since).
    let young = refresh(first.clone()).await;
    assert_eq!(young.status(), 200);
    assert!(!sets_refresh_cookie(&young), "{:?}", young.headers());
    let access = young.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get_me(&access).await.status(),
        200,
        "a fresh access token"
    );

    // A rotation and its predecessor's answer both set the cookie to the new head.
    app.clock.advance(Duration::from_secs(5));
    let rotated = refresh(first.clone()).await;
    let (second, _) = cookie_value(&rotated);
    assert_ne!(second, first);
    app.clock.advance(Duration::from_secs(1));
    let converged = refresh(first.clone()).await;
    assert_eq!(cookie_value(&converged).0, second);
}
