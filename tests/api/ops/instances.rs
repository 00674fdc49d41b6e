//! Revocation reaches every instance before the answer: two instances on one database
//! and one Redis, a revoking call on A, and at once a request on B.
//!
//! These run only with `TOKENMINT_TEST_REDIS_URL`: several instances share a revocation
//! list only through Redis (the in-memory list is one process's, for the embedded
//! default). `TOKENMINT_TEST_INSTANCE_ROUNDS` sets the rounds (default 1,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, non_empty_env, spawn_app, spawn_app_with};

fn rounds() -> usize {
    non_empty_env("TOKENMINT_TEST_INSTANCE_ROUNDS")
        .map_or(1000, |n| n.parse().expect("a number of rounds"))
}

/// A TCP proxy to `upstream` that delivers what the server sends `delay` late (a slow
/// network, or a busy instance, between one instance and Redis). Runs until the test ends.
async fn slow_link(upstream: String, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let (sender, mut receiver) =
                tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut server_read, &mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if sender.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((read_at, bytes)) = receiver.recv().await {
                    tokio::time::sleep_until((read_at + delay).into()).await;
                    if tokio::io::AsyncWriteExt::write_all(&mut client_write, &bytes)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Two instances over Redis, or `None` without Redis. B reaches Redis over a link that
/// delivers 5 ms late: announcements reach B's mirror after A's call has returned unless
/// A waits for them.
async fn two_instances() -> Option<(TestApp, TestApp)> {
    let url = non_empty_env("TOKENMINT_TEST_REDIS_URL")?;
    let upstream = reqwest::Url::parse(&url).expect("TOKENMINT_TEST_REDIS_URL is a URL");
    let upstream = format!(
        "{}:{}",
        upstream.host_str().expect("a host"),
        upstream.port().unwrap_or(6379)
    );
    let port = slow_link(upstream, Duration::from_millis(5)).await;
    let a = spawn_app().await;
    let database_url = a.services.settings.database_url.clone();
    let prefix = a.services.settings.redis_prefix.clone();
    let b = spawn_app_with(|s| {
        s.database_url = database_url;
        s.redis_prefix = prefix;
        s.redis_url = Some(format!("redis://127.0.0.1:{port}").into());
    })
    .await;
    // Both mirrors up, so that B answers from its mirror (the fast path under test).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.services.revocations.mirrored() && b.services.revocations.mirrored()) {
        assert!(Instant::now() < deadline, "the mirrors never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Some((a, b))
}

async fn active_on(app: &TestApp, introspector: &str, token: &str) -> bool {
    let response = app.introspect(introspector, token).await;
    assert_eq!(response.status(), 200, "introspection");
    response.json::<Value>().await.unwrap()["active"]
        .as_bool()
        .unwrap()
}

/// Counts the rounds in which B still accepted what A had just revoked.
struct Tally {
    kind: &'static str,
    accepted: usize,
    rounds: usize,
}

impl Tally {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            accepted: 0,
            rounds: 0,
        }
    }

    fn round(&mut self, accepted_after: bool) {
        self.rounds += 1;
        self.accepted += usize::from(accepted_after);
    }

    fn assert_none(&self) {
        assert!(self.rounds > 0, "{}: no rounds", self.kind);
        assert_eq!(
            self.accepted, 0,
            "{}: B accepted in {} of {} rounds what A had revoked before it answered",
            self.kind, self.accepted, self.rounds
        );
    }
}

#[tokio::test]
async fn a_logout_on_one_instance_is_refused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.create_user("rounds", "rounds-password", &[], json!({}))
        .await;
    let mut tally = Tally::new("logout");
    for _ in 0..rounds() {
        let login = b.log_in("rounds", "rounds-password").await;
        let access = login.access_token.as_str();
        assert_eq!(b.get_me(access).await.status(), 200, "before the logout");
        let logout = a
            .client
            .post(a.url("/api/logout"))
            .json(&json!({"refresh_token": login.refresh()}))
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        tally.round(b.get_me(access).await.status() == 200);
    }
    tally.assert_none();
}

#[tokio::test]
async fn an_rfc7009_revocation_on_one_instance_is_refused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let mut refresh = a.log_in("admin", ADMIN_PASSWORD).await.refresh().to_owned();
    let mut tally = Tally::new("RFC 7009");
    for _ in 0..rounds() {
        // A fresh access token of the same session each round (no password hash).
        let pair = b.refresh(&refresh).await;
        refresh = pair["refresh_token"].as_str().unwrap().to_owned();
        let access = pair["access_token"].as_str().unwrap();
        assert_eq!(
            b.get_me(access).await.status(),
            200,
            "before the revocation"
        );
        let revoked = a
            .client
            .post(a.url("/api/token/revoke"))
            .json(&json!({"token": access, "token_type_hint": "access_token"}))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        tally.round(b.get_me(access).await.status() == 200);
    }
    tally.assert_none();
}

#[tokio::test]
async fn revoke_sessions_and_user_disable_on_one_instance_are_refused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin_token().await;
    let user = a
        .create_user("rounds", "rounds-password", &[], json!({}))
        .await;
    let path = format!("/api/admin/users/{}", user.id);
    let mut revoke_sessions = Tally::new("revoke-sessions");
    let mut disable = Tally::new("user disable");
    // Rounds alternate: each of the two gets `rounds()`.
    for round in 0..2 * rounds() {
        let access = b.log_in("rounds", "rounds-password").await.access_token;
        assert_eq!(b.get_me(&access).await.status(), 200, "before");
        if round % 2 == 0 {
            let answer = a
                .call(
                    Method::POST,
                    &format!("{path}/revoke-sessions"),
                    &admin,
                    None,
                )
                .await;
            assert_eq!(answer.status(), 204);
            revoke_sessions.round(b.get_me(&access).await.status() == 200);
        } else {
            let answer = a
                .call(
                    Method::PATCH,
                    &path,
                    &admin,
                    Some(json!({"enabled": false})),
                )
                .await;
            assert_eq!(answer.status(), 200);
            disable.round(b.get_me(&access).await.status() == 200);
            let enabled = a
                .call(Method::PATCH, &path, &admin, Some(json!({"enabled": true})))
                .await;
            assert_eq!(enabled.status(), 200);
        }
    }
    revoke_sessions.assert_none();
    disable.assert_none();
}

#[tokio::test]
async fn an_ended_session_on_one_instance_is_refused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin_token().await;
    a.create_user("rounds", "rounds-password", &[], json!({}))
        .await;
    let keeper = a.log_in("rounds", "rounds-password").await;
    let mut by_user = Tally::new("session end by its user");
    let mut by_admin = Tally::new("session end by an admin");
    // A loop of 100 each: the user ends another of their sessions, or an admin does.
    for round in 0..200 {
        let victim = b.log_in("rounds", "rounds-password").await;
        assert_eq!(b.get_me(&victim.access_token).await.status(), 200, "before");
        let (path, credential) = if round % 2 == 0 {
            (
                format!("/api/sessions/{}", victim.session_id),
                &keeper.access_token,
            )
        } else {
            (format!("/api/admin/sessions/{}", victim.session_id), &admin)
        };
        let ended = a.call(Method::DELETE, &path, credential, None).await;
        assert_eq!(ended.status(), 204);
        let accepted = b.get_me(&victim.access_token).await.status() == 200;
        if round % 2 == 0 {
            by_user.round(accepted);
        } else {
            by_admin.round(accepted);
        }
        assert_eq!(
            b.post_refresh(victim.refresh()).await.status(),
            401,
            "its refresh token"
        );
    }
    by_user.assert_none();
    by_admin.assert_none();
    assert_eq!(
        b.get_me(&keeper.access_token).await.status(),
        200,
        "the other session"
    );
}

#[tokio::test]
async fn a_key_withdrawn_on_one_instance_is_refused_unpublished_and_unused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin_token().await;
    // An API key: the admin's own tokens go with the first withdrawn key.
    let (_, operator) = a.api_key(&admin, &["admin"]).await;
    a.create_user("rounds", "rounds-password", &[], json!({}))
        .await;
    let mut session = b.log_in("rounds", "rounds-password").await;
    let mut accepted = Tally::new("a token of the withdrawn key");
    let mut published = Tally::new("the withdrawn key in JWKS");
    let mut signed = Tally::new("a token signed by the withdrawn key");
    for _ in 0..50 {
        let token = session.access_token.clone();
        let kid = crate::helpers::jwt_part(&token, 0)["kid"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(b.get_me(&token).await.status(), 200, "before");
        let withdrawn = crate::admin::key_withdrawal::withdraw(
            &a,
            &operator,
            &kid,
            json!({"reason": "rounds"}),
        )
        .await;
        assert_eq!(withdrawn.status(), 200);
        // At once on B: the token is refused as revoked, JWKS leaves the key out, and
        // the session's refresh is signed by the fresh key.
        let me = b.get_me(&token).await;
        accepted.round(me.status() == 200);
        if me.status() != 200 {
            let body: Value = me.json().await.unwrap();
            assert_eq!(body["error"], "TOKEN_REVOKED");
        }
        let jwks = crate::oauth::jwks::fetch_jwks(&b).await;
        published.round(crate::admin::key_withdrawal::jwks_kids(&jwks).contains(&kid));
        session = b.refreshed(session.refresh()).await;
        let new_kid = crate::helpers::jwt_part(&session.access_token, 0)["kid"].clone();
        signed.round(new_kid == kid.as_str());
        assert_eq!(b.get_me(&session.access_token).await.status(), 200, "after");
    }
    accepted.assert_none();
    published.assert_none();
    signed.assert_none();
}

#[tokio::test]
async fn tenant_and_api_key_disable_on_one_instance_are_refused_by_the_other_at_once() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let admin = a.admin_token().await;
    let (_, introspector) = a.api_key(&admin, &["introspect"]).await;
    let mut tenants = Tally::new("tenant disable");
    let mut keys = Tally::new("API key disable");
    for round in 0..rounds() {
        // A tenant of its own each round, with a confidential client (no password hash):
        // its client-credentials token is the tenant's.
        let tenant = format!("t{round}");
        a.create_tenant(&admin, &tenant).await;
        let token = &b.client_credentials_token(&admin, Some(&tenant)).await;
        assert!(active_on(&b, &introspector, token).await, "before");
        let disabled = a
            .call(
                Method::PATCH,
                &format!("/api/admin/tenants/{tenant}"),
                &admin,
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(disabled.status(), 200);
        tenants.round(active_on(&b, &introspector, token).await);

        let (id, key) = a.api_key(&admin, &["introspect"]).await;
        assert_eq!(
            b.introspect(&key, "not-a-token").await.status(),
            200,
            "before"
        );
        let disabled = a
            .call(
                Method::POST,
                &format!("/api/admin/api-keys/{id}/disable"),
                &admin,
                None,
            )
            .await;
        assert_eq!(disabled.status(), 200);
        keys.round(b.introspect(&key, "not-a-token").await.status() == 200);
    }
    tenants.assert_none();
    keys.assert_none();
}

/// Four tasks hammer B with one token while A logs its session out: no request sent after
/// A answered is accepted.
#[tokio::test]
async fn requests_hammering_another_instance_are_refused_from_the_logouts_answer_on() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let b = Arc::new(b);
    let late_accepted = Arc::new(AtomicUsize::new(0));
    let late_sent = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let login = b.log_in("admin", ADMIN_PASSWORD).await;
        let access = login.access_token.clone();
        // When A answered: unknown (None) until it has.
        let answered: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut hammers = Vec::new();
        for _ in 0..4 {
            let (b, access, answered, stop) =
                (b.clone(), access.clone(), answered.clone(), stop.clone());
            let (late_accepted, late_sent) = (late_accepted.clone(), late_sent.clone());
            hammers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let sent = Instant::now();
                    let status = b.get_me(&access).await.status();
                    let after = answered.lock().unwrap().is_some_and(|at| sent > at);
                    if after {
                        late_sent.fetch_add(1, Ordering::SeqCst);
                        if status == 200 {
                            late_accepted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let logout = a
            .client
            .post(a.url("/api/logout"))
            .bearer_auth(&access)
            .json(&json!({"refresh_token": login.refresh()}))
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        *answered.lock().unwrap() = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, Ordering::SeqCst);
        for hammer in hammers {
            hammer.await.unwrap();
        }
    }
    assert!(
        late_sent.load(Ordering::SeqCst) > 0,
        "requests were sent after the answer"
    );
    assert_eq!(
        late_accepted.load(Ordering::SeqCst),
        0,
        "of {} requests sent after A answered",
        late_sent.load(Ordering::SeqCst)
    );
}

/// An instance that is stopped (SIGSTOP: it neither acknowledges nor renews) when another
/// logs a session out: the logout waits for its lease to end, at most a lease length, and
/// the stopped instance, resumed, refuses the token on its very next request.
#[tokio::test]
async fn a_stopped_instance_refuses_what_was_revoked_while_it_was_stopped() {
    use base64::Engine as _;
    let Some(redis) = non_empty_env("TOKENMINT_TEST_REDIS_URL") else {
        return;
    };
    let a = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let (b, b_url) = crate::helpers::processes::tokenmint(
        dir.path(),
        &[
            ("TOKENMINT_DATABASE_URL", a.database_url().to_owned()),
            ("TOKENMINT_REDIS_URL", redis),
            (
                "TOKENMINT_REDIS_PREFIX",
                a.services.settings.redis_prefix.clone(),
            ),
            ("TOKENMINT_ISSUER", a.services.settings.issuer.clone()),
            (
                "TOKENMINT_KEY_ENCRYPTION_KEY",
                base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
            ),
        ],
    )
    .await;
    let me_on_b = |token: String| {
        let (client, url) = (a.client.clone(), format!("{b_url}/api/me"));
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut waits = Vec::new();
    for round in 0..10 {
        let login = a.log_in("admin", ADMIN_PASSWORD).await;
        let access = login.access_token.clone();
        // B up, its mirror leased: the token is accepted from the mirror.
        let deadline = Instant::now() + Duration::from_secs(10);
        while me_on_b(access.clone()).await != 200 {
            assert!(Instant::now() < deadline, "B never accepted the token");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        b.signal("STOP");
        let started = Instant::now();
        let logout = a
            .client
            .post(a.url("/api/logout"))
            .json(&json!({"refresh_token": login.refresh()}))
            .send()
            .await
            .unwrap();
        waits.push(started.elapsed());
        b.signal("CONT");
        assert_eq!(logout.status(), 204);
        assert_eq!(
            me_on_b(access).await,
            401,
            "round {round}: B, resumed, accepted a token logged out while it was stopped"
        );
    }
    // Reported, not asserted (a figure for the README, not a test of speed).
    eprintln!(
        "logout while another instance is stopped: longest {:?}",
        waits.iter().max().unwrap()
    );
}

/// A DPoP proof accepted on A is refused on B: the replay check is the instances'
/// shared one (Redis), not each instance's memory.
#[tokio::test]
async fn a_dpop_proof_used_on_one_instance_is_refused_on_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.create_user("rounds", "rounds-password", &[], json!({}))
        .await;
    let key = crate::helpers::dpop::DpopKey::p256();
    for _ in 0..20 {
        let proof = a.proof(&key, "POST", "/api/login", None);
        let login = |app: &TestApp| {
            app.client
                .post(app.url("/api/login"))
                .header("dpop", proof.clone())
                .json(&json!({"username": "rounds", "password": "rounds-password"}))
                .send()
        };
        assert_eq!(login(&a).await.unwrap().status(), 200, "first use, on A");
        let again = login(&b).await.unwrap();
        assert_eq!(again.status(), 400, "replayed on B");
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["error"], "INVALID_DPOP_PROOF");
    }
}
