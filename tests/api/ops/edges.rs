//! The contract's edges, each found by a client or an attacker (issue: hardening, third
//! round): every one failed before its fix.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app};

/// An admin API key, made by the bootstrap admin.
async fn admin_key(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    app.api_key(&admin, &["admin", "introspect"]).await.1
}

/// RFC 8693: `subject` exchanged by the client `(id, secret)` for `https://orders.internal`.
pub(crate) async fn exchange(
    app: &TestApp,
    subject: &str,
    client: (&str, &str),
) -> reqwest::Response {
    app.token_request(
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", "https://orders.internal"),
        ],
        Some(client),
    )
    .await
}

/// Two credentials are refused, whichever places they come in: `?key=` and `X-API-Key`,
/// or `X-API-Key` twice.
#[tokio::test]
async fn a_request_with_a_key_in_the_query_and_in_the_header_is_refused() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let single = app
        .client
        .get(app.url(&format!("/api/admin/users?key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 200, "one key in the query is served");
    let both = app
        .client
        .get(app.url(&format!("/api/admin/users?key={key}")))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_error(both, 401, "AUTHENTICATION_FAILED").await;
    let twice = app
        .client
        .get(app.url("/api/admin/users"))
        .header("x-api-key", &key)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_error(twice, 401, "AUTHENTICATION_FAILED").await;
}

/// A dead or made-up API key sent as a bearer token is a refused bearer token: RFC 6750's
/// challenge, like every other bearer 401.
#[tokio::test]
async fn a_refused_api_key_sent_as_a_bearer_gets_the_bearer_challenge() {
    let app = spawn_app().await;
    let key = admin_key(&app).await;
    let made_up = format!("tmk_{}", "a".repeat(49));
    let mut mistyped = key.clone();
    mistyped.replace_range(10..11, if &key[10..11] == "a" { "b" } else { "a" });
    for token in [made_up.as_str(), mistyped.as_str()] {
        let refused = app
            .client
            .get(app.url("/api/admin/users"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(
            refused.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_error(refused, 401, "AUTHENTICATION_FAILED").await;
    }
    // The same key in X-API-Key is no bearer: no challenge.
    let as_header = app
        .client
        .get(app.url("/api/admin/users"))
        .header("x-api-key", &made_up)
        .send()
        .await
        .unwrap();
    assert!(as_header.headers().get("www-authenticate").is_none());
    assert_error(as_header, 401, "AUTHENTICATION_FAILED").await;
}

/// A login through a client that asks for a scope the user holds but the client may not
/// have is refused naming the client, not the user.
#[tokio::test]
async fn a_scope_the_client_may_not_have_is_refused_naming_the_client() {
    let app = spawn_app().await;
    app.create_user("carol", "carol-password", &["read", "write"], json!({}))
        .await;
    app.register_login_client("reader-app", &["read"]).await;
    let refused = app
        .post_login(&json!({"username": "carol", "password": "carol-password",
                             "client_id": "reader-app", "scope": "write"}))
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "INVALID_REQUEST");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("client `reader-app`"),
        "names the client: {message}"
    );
    let unheld = app
        .post_login(&json!({"username": "carol", "password": "carol-password",
                             "client_id": "reader-app", "scope": "admin"}))
        .await;
    assert_eq!(unheld.status(), 400);
    let body: Value = unheld.json().await.unwrap();
    assert_eq!(body["error"], "INVALID_REQUEST");
    assert!(body["message"].as_str().unwrap().contains("this user"));
    let narrowed = app
        .post_login(&json!({"username": "carol", "password": "carol-password",
                             "client_id": "reader-app"}))
        .await;
    assert_eq!(narrowed.status(), 200);
    let token = narrowed.json::<Value>().await.unwrap();
    assert_eq!(
        crate::helpers::jwt_part(token["access_token"].as_str().unwrap(), 1)["scope"],
        "read"
    );
}

/// Every 503 and every 429 carries `Retry-After` (clients and proxies read only that):
/// a revocation list that cannot be reached at `/api/me`, `/readyz` and the token
/// endpoint, and the login limit.
#[tokio::test]
async fn every_503_and_429_carries_retry_after() {
    let closed = crate::helpers::free_port();
    let app = crate::helpers::spawn_app_with(|s| {
        s.redis_url = Some(format!("redis://127.0.0.1:{closed}").into());
        s.redis_prefix = "edges:".to_owned();
    })
    .await;
    let admin = app.admin_token().await;
    let retry_after = |headers: &reqwest::header::HeaderMap| {
        headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|secs| secs >= 1)
    };

    let me = assert_error(app.get_me(&admin).await, 503, "UNAVAILABLE").await;
    assert!(retry_after(&me), "/api/me: {me:?}");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(retry_after(ready.headers()), "/readyz");

    // Registered through the domain, as the command line does: every admin call checks
    // its bearer against the list that cannot be reached.
    let (gateway, secret) = {
        use tokenmint::model::ClientKind;
        use tokenmint::model::{Audience, GrantType};
        use tokenmint::oauth::clients::NewClient;
        let new = NewClient {
            client_id: None,
            name: "gateway".to_owned(),
            tenant: None,
            kind: ClientKind::Confidential,
            grant_types: vec![GrantType::TokenExchange],
            scopes: vec![],
            audiences: vec![Audience::parse("https://orders.internal").unwrap()],
        };
        let (client, secret) = app
            .services
            .clients
            .create(&tokenmint::model::Admin::operator(), new, app.clock_now())
            .await
            .unwrap();
        (
            client.client_id.as_str().to_owned(),
            secret.unwrap().expose().to_owned(),
        )
    };
    let exchanged = exchange(&app, &admin, (&gateway, &secret)).await;
    assert_eq!(exchanged.status(), 503);
    assert!(retry_after(exchanged.headers()), "/oauth/token");
    assert_eq!(
        exchanged.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );

    let mut limited = None;
    for _ in 0..30 {
        let answer = app
            .post_login(&json!({"username": "admin", "password": "wrong password"}))
            .await;
        if answer.status() == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status(), 401);
    }
    let limited = limited.expect("the login limit answers 429");
    assert!(retry_after(limited.headers()), "/api/login 429");
}

/// A client id that is a user id would give its client-credentials token `sub` = that
/// user (with the client's scopes): chosen client ids may not have a user id's shape.
#[tokio::test]
async fn a_client_id_may_not_be_a_user_id() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = crate::helpers::jwt_part(&admin, 1)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    for chosen in [
        admin_id.clone(),
        admin_id.replace('-', ""),
        admin_id.to_uppercase(),
    ] {
        let answer = app
            .call(
                Method::POST,
                "/api/admin/clients",
                &admin,
                Some(
                    json!({"client_id": chosen, "name": "impostor", "type": "confidential",
                            "grant_types": ["client_credentials"], "scopes": ["admin"]}),
                ),
            )
            .await;
        assert_error(answer, 400, "INVALID_REQUEST").await;
    }
    let listed = app.get_json("/api/admin/clients", &admin).await;
    assert_eq!(listed["items"], json!([]), "nothing was registered");
}

/// Deleting a client ends its sessions in the same transaction: registering the same
/// `client_id` again (even as a public client, without a secret) brings none back, and
/// disabling one ends them too.
#[tokio::test]
async fn a_deleted_or_disabled_clients_sessions_never_come_back() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("dave", "dave-password", &["read"], json!({}))
        .await;
    for how in ["delete", "disable"] {
        let client_id = format!("app-{how}");
        app.register_login_client(&client_id, &["read"]).await;
        let login = app
            .post_login(&json!({"username": "dave", "password": "dave-password",
                                 "client_id": client_id}))
            .await;
        assert_eq!(login.status(), 200);
        let login: Value = login.json().await.unwrap();
        let access = login["access_token"].as_str().unwrap();
        let refresh = login["refresh_token"].as_str().unwrap();
        assert_eq!(app.get_me(access).await.status(), 200);

        let path = format!("/api/admin/clients/{client_id}");
        if how == "delete" {
            let deleted = app.call(Method::DELETE, &path, &admin, None).await;
            assert_eq!(deleted.status(), 204);
            app.register_login_client(&client_id, &["read"]).await;
        } else {
            let disabled = app
                .call(Method::POST, &format!("{path}/disable"), &admin, None)
                .await;
            assert_eq!(disabled.status(), 200);
            let enabled = app
                .call(Method::POST, &format!("{path}/enable"), &admin, None)
                .await;
            assert_eq!(enabled.status(), 200);
        }
        assert_error(app.post_refresh(refresh).await, 401, "TOKEN_REVOKED").await;
        assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
        // A new login through the client works.
        let again = app
            .post_login(&json!({"username": "dave", "password": "dave-password",
                                 "client_id": client_id}))
            .await;
        assert_eq!(again.status(), 200, "{how}");
    }
}

/// Request bodies must arrive in time: stalled bodies are answered 408 and their
/// connections closed, and the service answers `/healthz` and logins meanwhile.
#[tokio::test]
async fn a_stalled_request_body_is_cut_off_and_the_service_keeps_answering() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = crate::helpers::spawn_app_with(|s| {
        s.body_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket
            .write_all(
                b"POST /api/login HTTP/1.1\r\nHost: tokenmint\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"username\": \"adm",
            )
            .await
            .unwrap();
        stalled.push(socket);
    }
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "served while bodies stall");
    let login = app.log_in("admin", crate::helpers::ADMIN_PASSWORD).await;
    assert!(!login.access_token.is_empty());

    for mut socket in stalled {
        let mut answer = Vec::new();
        // Until the server closes the connection (a test that hangs here has failed).
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            socket.read_to_end(&mut answer),
        )
        .await
        .expect("the server closes a stalled connection")
        .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"error\":\"REQUEST_TIMEOUT\""), "{answer}");
    }
}

/// More stalled connections than the process has descriptors: they wait in the backlog
/// or are cut off, never take the descriptors the service needs; `/healthz` and logins
/// are answered while they stall, and every stalled client gets its 408.
#[tokio::test]
async fn more_stalled_connections_than_descriptors_do_not_take_the_instance_down() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let database = crate::helpers::TestDatabase::new();
    let (_server, base) = crate::helpers::processes::tokenmint_with_descriptors(
        database.dir.path(),
        &[
            ("TOKENMINT_DATABASE_URL", database.url_string.clone()),
            ("TOKENMINT_BODY_TIMEOUT", "1s".to_owned()),
            ("TOKENMINT_WORKERS", "2".to_owned()),
            (
                "TOKENMINT_BOOTSTRAP_ADMIN",
                format!("admin:{}", crate::helpers::ADMIN_PASSWORD),
            ),
        ],
        256,
    )
    .await;
    let address = base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..400 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket
            .write_all(
                b"POST /api/login HTTP/1.1\r\nHost: tokenmint\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"username\": \"adm",
            )
            .await
            .unwrap();
        stalled.push(socket);
    }
    let client = reqwest::Client::new();
    let health = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        client.get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("/healthz answers while connections stall")
    .unwrap();
    assert_eq!(health.status(), 200);
    let login = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let mut timed_out = 0;
    for mut socket in stalled {
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            socket.read_to_end(&mut answer),
        )
        .await
        .expect("the server closes every stalled connection")
        .unwrap();
        timed_out += usize::from(answer.starts_with(b"HTTP/1.1 408"));
    }
    assert_eq!(timed_out, 400, "every stalled client was answered 408");
}

/// A login names a client as that client authenticates: a confidential one with its
/// secret (else refused), a public one with none (a secret is refused too).
#[tokio::test]
async fn a_confidential_client_at_login_needs_its_secret() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("frank", "frank-password", &["read"], json!({}))
        .await;
    let bff: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(
                json!({"client_id": "bff", "name": "BFF", "type": "confidential",
                        "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = bff["client_secret"].as_str().unwrap();
    let login = |client_id: &'static str, secret: Option<&str>| {
        let mut body = json!({"username": "frank", "password": "frank-password",
                              "client_id": client_id});
        if let Some(secret) = secret {
            body["client_secret"] = json!(secret);
        }
        let app = &app;
        async move { app.post_login(&body).await }
    };
    assert_error(login("bff", None).await, 401, "AUTHENTICATION_FAILED").await;
    assert_error(
        login("bff", Some("tmcs_not-the-secret")).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_eq!(login("bff", Some(secret)).await.status(), 200);
    app.register_login_client("spa", &["read"]).await;
    assert_eq!(login("spa", None).await.status(), 200);
    assert_error(
        login("spa", Some(secret)).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
}

/// A client without the `refresh_token` grant gets no refresh token at login, in the
/// body or in a cookie.
#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("gina", "gina-password", &["read"], json!({}))
        .await;
    let registered = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(
                json!({"client_id": "kiosk", "name": "Kiosk", "type": "public",
                        "grant_types": ["password"], "scopes": ["read"]}),
            ),
        )
        .await;
    assert_eq!(registered.status(), 201);
    for cookie in [false, true] {
        let login = app
            .post_login(&json!({"username": "gina", "password": "gina-password",
                                 "client_id": "kiosk", "cookie": cookie}))
            .await;
        assert_eq!(login.status(), 200);
        let cookies: Vec<_> = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cookies.iter().all(|c| !c.contains("tokenmint_refresh")),
            "no refresh cookie: {cookies:?}"
        );
        let body: Value = login.json().await.unwrap();
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["refresh_expires_in"], 0);
        assert_eq!(
            app.get_me(body["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );
    }
}

/// Token exchange needs a client that authenticates: a public client may not hold it.
#[tokio::test]
async fn a_public_client_may_not_hold_the_token_exchange_grant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let answer = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(json!({"name": "exchanger", "type": "public",
                        "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                        "scopes": [], "audiences": ["https://orders.internal"]})),
        )
        .await;
    assert_error(answer, 400, "INVALID_REQUEST").await;
}

/// Introspection and RFC 7009 know every token the service signed: an exchanged token
/// (RFC 8693, another audience) introspects as active while valid, and once revoked as
/// inactive. It still does not act at the service's own endpoints.
#[tokio::test]
async fn exchanged_tokens_introspect_and_revoke_like_every_other() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let gateway: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(json!({"name": "gateway", "type": "confidential",
                        "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                        "scopes": ["admin"], "audiences": ["https://orders.internal"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let exchanged: Value = exchange(
        &app,
        &admin,
        (
            gateway["client_id"].as_str().unwrap(),
            gateway["client_secret"].as_str().unwrap(),
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    let token = exchanged["access_token"].as_str().unwrap();
    let introspected: Value = app.introspect(&admin, token).await.json().await.unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["aud"], "https://orders.internal");
    assert_error(app.get_me(token).await, 401, "AUTHENTICATION_FAILED").await;

    let revoked = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let introspected: Value = app.introspect(&admin, token).await.json().await.unwrap();
    assert_eq!(introspected["active"], false);
    // The subject token was not revoked with it.
    assert_eq!(app.get_me(&admin).await.status(), 200);
}

/// The audit log has a row for every token-endpoint grant, every failed client
/// authentication, every ticket issued and redeemed, and every logout and revocation.
#[tokio::test]
async fn grants_client_failures_tickets_logouts_and_revocations_are_audited() {
    const AGENTS: &str = "wss://agents.example";
    let app =
        crate::helpers::spawn_app_with(|s| s.ticket_audiences = vec![AGENTS.to_owned()]).await;
    let admin = app.admin_token().await;
    let backend: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(json!({"name": "backend", "type": "confidential",
                        "grant_types": ["client_credentials"], "scopes": []})),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = backend["client_id"].as_str().unwrap();
    let granted = app
        .token_request(
            &[("grant_type", "client_credentials")],
            Some((id, backend["client_secret"].as_str().unwrap())),
        )
        .await;
    assert_eq!(granted.status(), 200);
    let failed = app
        .token_request(
            &[("grant_type", "client_credentials")],
            Some((id, "tmcs_wrong")),
        )
        .await;
    assert_eq!(failed.status(), 401);

    let service: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "agents", "scopes": ["tickets"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let ticket: Value = app
        .call(
            Method::POST,
            "/api/tickets",
            &admin,
            Some(json!({"audience": AGENTS})),
        )
        .await
        .json()
        .await
        .unwrap();
    let redeemed = app
        .call(
            Method::POST,
            "/api/tickets/redeem",
            service["key"].as_str().unwrap(),
            Some(json!({"ticket": ticket["ticket"], "audience": AGENTS})),
        )
        .await;
    assert_eq!(redeemed.status(), 200);

    let session = app.log_in("admin", crate::helpers::ADMIN_PASSWORD).await;
    let revoked = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": session.access_token.as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .json(&json!({"refresh_token": session.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    let log = app.get_json("/api/admin/audit?limit=200", &admin).await;
    let rows = log["items"].as_array().unwrap();
    let row = |action: &str, outcome: &str| {
        rows.iter()
            .find(|r| r["action"] == action && r["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {action} {outcome} row in {log}"))
    };
    assert_eq!(
        row("oauth.token", "success")["actor"],
        format!("client:{id}")
    );
    assert_eq!(
        row("client.auth_failed", "failure")["target"],
        format!("client:{id}")
    );
    row("ticket.issue", "success");
    row("ticket.redeem", "success");
    assert!(
        row("token.revoke", "success")["target"]
            .as_str()
            .unwrap()
            .starts_with("jti:")
    );
    assert_eq!(
        row("logout", "success")["target"],
        format!("session:{}", session.session_id.as_str())
    );
}

/// Bursts of revocations of one token all succeed: two transactions recording the same
/// revocation at once both commit (a delete then an insert made the second one a 409).
#[tokio::test]
async fn a_burst_of_revocations_of_one_token_all_succeed() {
    let app = crate::helpers::spawn_app_with(|s| s.workers = 8).await;
    let session = app.log_in("admin", crate::helpers::ADMIN_PASSWORD).await;
    let access = session.access_token.clone();
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let mut burst = Vec::new();
        for _ in 0..32 {
            let (client, url) = (app.client.clone(), app.url("/api/token/revoke"));
            let body = json!({"token": access});
            burst.push(tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        for answer in burst {
            *statuses.entry(answer.await.unwrap()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "{statuses:?}"
    );
    assert_error(app.get_me(&access).await, 401, "TOKEN_REVOKED").await;
}
