use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app, spawn_app_with};

fn refresh_of(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

fn access_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn login_returns_a_refresh_token_that_rotates_on_every_use() {
    let app = spawn_app().await;
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    assert_eq!(first.len(), 43, "256 bits, base64url");
    assert_eq!(login["refresh_expires_in"], 7 * 24 * 3600);

    // Right after login: refresh tokens carry no not-before.
    let response = app.post_refresh(&first).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();

    let second = refresh_of(&body);
    assert_ne!(second, first);
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["session_id"], login["session_id"],
        "the session carries on"
    );
    assert_ne!(access_of(&body), access_of(&login));
    assert_eq!(app.get_me(&access_of(&body)).await.status(), 200);

    let third = refresh_of(&app.refresh(&second).await);
    assert_ne!(third, second);
}

#[tokio::test]
async fn the_frontend_flow_expired_access_token_then_refresh_then_retry() {
    let app = spawn_app().await;
    let login = app.login("admin", ADMIN_PASSWORD).await;

    app.clock.advance(Duration::from_secs(16 * 60));
    assert_error(app.get_me(&access_of(&login)).await, 401, "TOKEN_EXPIRED").await;

    let fresh = app.refresh(&refresh_of(&login)).await;
    assert_eq!(app.get_me(&access_of(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn the_predecessor_within_the_leeway_gets_the_same_successor() {
    let app = spawn_app().await;
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    let successor = refresh_of(&app.refresh(&first).await);

    app.clock.advance(Duration::from_secs(3));
    let again = app.refresh(&first).await;

    assert_eq!(refresh_of(&again), successor, "tabs converge on one token");
    assert_eq!(app.get_me(&access_of(&again)).await.status(), 200);
    app.refresh(&successor).await;
}

#[tokio::test]
async fn a_token_the_session_moved_past_more_than_a_leeway_later_is_reuse() {
    let app = spawn_app().await;
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let first = refresh_of(&login);
    let second = app.refresh(&first).await;
    // The session moves on again, more than the leeway after `first` was spent.
    app.clock.advance(Duration::from_secs(6));
    let pair = app.refresh(&refresh_of(&second)).await;

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
    // Other sessions of the same user are untouched.
    let other = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get_me(&access_of(&other)).await.status(), 200);
}

#[tokio::test]
async fn the_predecessor_of_the_current_token_is_accepted_at_any_time() {
    let app = spawn_app().await;
    let first = refresh_of(&app.login("admin", ADMIN_PASSWORD).await);
    let current = refresh_of(&app.refresh(&first).await);

    // A response that never arrived: the client still holds `first`, days later.
    app.clock.advance(Duration::from_secs(3 * 24 * 3600));
    let recovered = app.refresh(&first).await;

    assert_eq!(
        refresh_of(&recovered),
        current,
        "answered with the current token"
    );
    assert_eq!(app.get_me(&access_of(&recovered)).await.status(), 200);
    let next = app.refresh(&current).await;
    assert_ne!(refresh_of(&next), current, "which still rotates");
}

#[tokio::test]
async fn tokens_racing_tabs_spent_within_the_leeway_all_lead_to_the_current_token() {
    let app = spawn_app().await;
    let first = refresh_of(&app.login("admin", ADMIN_PASSWORD).await);
    let second = refresh_of(&app.refresh(&first).await);
    let third = refresh_of(&app.refresh(&second).await);

    // A late response put `first` back into the cookie jar; the next refresh is an hour on.
    app.clock.advance(Duration::from_secs(3600));
    for stale in [&first, &second] {
        let answer = app.refresh(stale).await;
        assert_eq!(refresh_of(&answer), third, "the current token, not a fork");
        assert_eq!(app.get_me(&access_of(&answer)).await.status(), 200);
    }

    // Once the session moves on more than a leeway later, they are theft.
    let fourth = app.refresh(&third).await;
    assert_error(app.post_refresh(&first).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert_error(
        app.post_refresh(&refresh_of(&fourth)).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn another_instance_answers_a_stale_token_with_the_current_one() {
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let first = refresh_of(&a.login("admin", ADMIN_PASSWORD).await);
    let second = refresh_of(&a.refresh(&first).await);
    let third = refresh_of(&b.refresh(&second).await);

    b.clock.advance(Duration::from_secs(600));
    assert_eq!(refresh_of(&b.refresh(&first).await), third);
    assert_eq!(refresh_of(&a.refresh(&second).await), third);
    let fourth = b.refresh(&third).await;
    assert_ne!(refresh_of(&fourth), third);
    assert_error(a.post_refresh(&first).await, 401, "REFRESH_TOKEN_REUSED").await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_get_the_same_successor() {
    let app = spawn_app().await;
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let token = refresh_of(&login);

    let answers = futures_util::future::join_all((0..20).map(|_| app.post_refresh(&token))).await;

    let mut successors = Vec::new();
    for response in answers {
        assert_eq!(response.status(), 200, "never a 5xx or a refusal");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["session_id"], login["session_id"],
            "never a second session"
        );
        successors.push(refresh_of(&body));
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor");
    app.refresh(&successors[0]).await;
}

/// Rotations that arrive together are committed together (one statement or one
/// transaction for the lot): each request must still get its own outcome, a refusal or a
/// reuse among them must not touch the others, and the others must not mask it.
#[tokio::test]
async fn a_burst_across_sessions_gets_each_request_its_own_outcome() {
    let app = spawn_app().await;
    let mut heads = Vec::new();
    for _ in 0..10 {
        heads.push(app.login("admin", ADMIN_PASSWORD).await);
    }
    // A session whose first token is reuse by the time of the burst.
    let stolen = refresh_of(&app.login("admin", ADMIN_PASSWORD).await);
    let second = app.refresh(&stolen).await;
    app.clock.advance(Duration::from_secs(6));
    let robbed = app.refresh(&refresh_of(&second)).await;
    // A session that has ended.
    let ended = app.login("admin", ADMIN_PASSWORD).await;
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
        bodies.push(response.json::<Value>().await.unwrap());
    }
    for (i, login) in heads.iter().enumerate() {
        let (first, twin) = (&bodies[i], &bodies[i + heads.len()]);
        assert_eq!(first["session_id"], login["session_id"], "its own session");
        assert_eq!(twin["session_id"], login["session_id"], "its own session");
        assert_ne!(refresh_of(first), refresh_of(login), "rotated");
        assert_eq!(
            refresh_of(first),
            refresh_of(twin),
            "one successor per session"
        );
        assert_eq!(app.get_me(&access_of(first)).await.status(), 200);
    }

    // Afterwards: the successors rotate on; the reused token's session is over.
    for body in &bodies[..heads.len()] {
        app.refresh(&refresh_of(body)).await;
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
    let login = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login["refresh_expires_in"], 60);

    app.clock.advance(Duration::from_secs(50));
    let pair = app.refresh(&refresh_of(&login)).await;
    let capped = pair["refresh_expires_in"].as_i64().unwrap();
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

    let idle = app.login("admin", ADMIN_PASSWORD).await;
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
    assert_eq!(cookie.len(), 43);

    let post = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("cookie", format!("__Host-tokenmint_refresh={cookie}"))
        .send()
        .await
        .unwrap();
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
    let token = refresh_of(&app.login("admin", ADMIN_PASSWORD).await);

    let response = app
        .client
        .get(app.url(&format!("/api/refresh-token?refresh_token={token}")))
        .send()
        .await
        .unwrap();

    assert_error(response, 401, "AUTHENTICATION_FAILED").await;
    app.refresh(&token).await;
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
        .client
        .post(app.url("/api/refresh-token"))
        .header("cookie", format!("tokenmint_refresh={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
}

#[tokio::test]
async fn the_old_cookie_name_is_still_read_and_then_cleared() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": true}))
        .await;
    let (cookie, _) = cookie_value(&response);

    // A browser that still holds the cookie an earlier release set.
    let refreshed = app
        .client
        .post(app.url("/api/refresh-token"))
        .header("cookie", format!("tokenmint_refresh={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let set: Vec<String> = refreshed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|h| h.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set.iter()
            .any(|h| h.starts_with("__Host-tokenmint_refresh=") && !h.contains("Max-Age=0")),
        "{set:?}"
    );
    assert!(
        set.iter().any(|h| h.starts_with("tokenmint_refresh=;")
            && h.contains("Max-Age=0")
            && h.contains("Path=/api")),
        "the old cookie is cleared: {set:?}"
    );
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
            .client
            .post(app.url("/api/refresh-token"))
            .header("cookie", format!("{name}={planted}; {name}={cookie}"))
            .send()
            .await
            .unwrap();
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
    let login = app.login("admin", ADMIN_PASSWORD).await;
    let refreshed = app.refresh(&refresh_of(&login)).await;

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
    let access = access_of(&response.json::<Value>().await.unwrap());

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
async fn sealed_successors_are_kept_while_they_can_be_needed_and_ended_sessions_go() {
    let app = spawn_app().await;
    let first = refresh_of(&app.login("admin", ADMIN_PASSWORD).await);
    let second = refresh_of(&app.refresh(&first).await);
    assert_eq!(app.sealed_successors().await, 1);

    // The predecessor of the current token may be presented at any time: its seal stays.
    app.clock.advance(Duration::from_secs(6));
    app.services.sessions.sweep(app.clock_now()).await.unwrap();
    assert_eq!(
        app.sealed_successors().await,
        1,
        "kept while it leads to the current token"
    );

    // A rotation more than a leeway later: `first` can never be accepted again.
    app.refresh(&second).await;
    assert_eq!(
        app.sealed_successors().await,
        1,
        "only the new predecessor's"
    );

    app.clock.advance(Duration::from_secs(31 * 24 * 3600));
    assert_eq!(
        app.services.sessions.sweep(app.clock_now()).await.unwrap(),
        1,
        "the ended session is deleted"
    );
    assert_eq!(app.sealed_successors().await, 0);
}
