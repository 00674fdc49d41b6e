//! Security events (RFC 8417 SETs by RFC 8936 poll): what each revocation emits, delivery
//! until acknowledged (across instances and restarts), long polls, tenants, and nothing
//! from a change that rolled back.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, assert_error, non_empty_env, spawn_app};
use crate::oauth::jwks::{fetch_jwks, verify_jwt_with_jwks};

pub(crate) const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const KEY_WITHDRAWN: &str = "urn:tokenmint:event:key-withdrawn";

/// An API key with scope `events`, made by `admin`: (id, secret).
pub(crate) async fn events_key(app: &TestApp, admin: &str) -> (String, String) {
    app.api_key(admin, &["events"]).await
}

/// `POST /api/events/poll` with `body`.
pub(crate) async fn poll(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/api/events/poll", key, Some(body))
        .await
}

/// A poll that answers at once, acknowledging `ack`: the SETs in order, as (jti, SET).
pub(crate) async fn poll_now(app: &TestApp, key: &str, ack: &[String]) -> Vec<(String, String)> {
    let answer = poll(app, key, json!({"ack": ack, "returnImmediately": true})).await;
    assert_eq!(answer.status(), 200);
    sets_of(&answer.text().await.unwrap())
}

/// The `sets` of a poll's body, in the order they were written.
fn sets_of(body: &str) -> Vec<(String, String)> {
    // serde_json's Map would sort the members; the wire order is the delivery order.
    let mut sets = Vec::new();
    let value: Value = serde_json::from_str(body).unwrap();
    let members = value["sets"].as_object().expect("sets");
    let start = body.find("\"sets\"").unwrap();
    let mut rest = &body[start..];
    while let Some(at) = rest.find("\"eyJ") {
        let before = &rest[..at];
        let jti_end = before.rfind("\":").unwrap();
        let jti_start = before[..jti_end].rfind('"').unwrap() + 1;
        let jti = before[jti_start..jti_end].to_owned();
        let set = members[&jti].as_str().unwrap().to_owned();
        rest = &rest[at + 1 + set.len()..];
        sets.push((jti, set));
    }
    assert_eq!(sets.len(), members.len(), "{body}");
    sets
}

/// After `after`, logs the session of `refresh_token` out (204).
async fn log_out(app: &TestApp, refresh_token: &str, after: Duration) {
    tokio::time::sleep(after).await;
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
}

/// A SET verified from JWKS (`typ: secevent+jwt`, this issuer, for key `aud`): its one
/// event's type and payload, and the claims.
pub(crate) async fn open(
    app: &TestApp,
    set: &str,
    aud: &str,
) -> (String, Value, Map<String, Value>) {
    let jwks = fetch_jwks(app).await;
    let claims = verify_jwt_with_jwks(
        &jwks,
        set,
        &app.services.settings.issuer,
        "secevent+jwt",
        aud,
    );
    let events = claims.custom["events"].as_object().unwrap().clone();
    assert_eq!(events.len(), 1, "one event a SET");
    let (kind, payload) = events.into_iter().next().unwrap();
    (kind, payload, claims.custom)
}

async fn kinds_and_reasons(
    app: &TestApp,
    sets: &[(String, String)],
    aud: &str,
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for (_, set) in sets {
        let (kind, payload, _) = open(app, set, aud).await;
        let short = kind
            .rsplit('/')
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_owned();
        let reason = payload["reason"].as_str().unwrap_or("").to_owned();
        seen.push((short, reason));
    }
    seen
}

#[tokio::test]
async fn a_logout_is_delivered_as_a_signed_set_until_acknowledged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (key_id, key) = events_key(&app, &admin).await;
    let user = app
        .create_user("nora", "nora-password", &[], json!({}))
        .await;
    let nora = app.log_in("nora", "nora-password").await;
    assert!(poll_now(&app, &key, &[]).await.is_empty(), "nothing yet");

    log_out(&app, nora.refresh(), Duration::ZERO).await;

    let sets = poll_now(&app, &key, &[]).await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (jti, set) = &sets[0];
    let header = crate::helpers::jwt_part(set, 0);
    assert_eq!(header["typ"], "secevent+jwt");
    assert_eq!(header["kid"], app.current_kid().as_str());
    let (kind, payload, _) = open(&app, set, &key_id).await;
    let claims = crate::helpers::jwt_part(set, 1);
    assert_eq!(kind, SESSION_REVOKED);
    assert_eq!(claims["jti"], jti.as_str());
    assert_eq!(claims["aud"], key_id.as_str());
    assert_eq!(claims["iss"], app.services.settings.issuer.as_str());
    assert_eq!(
        payload,
        json!({"subject": {"format": "opaque", "id": nora.session_id}, "sub": user.id.to_string(),
               "tenant_id": "default", "reason": "logout",
               "event_timestamp": payload["event_timestamp"]})
    );
    assert!(payload["event_timestamp"].as_i64().unwrap() >= claims["iat"].as_i64().unwrap() - 1);

    // Not acknowledged: delivered again, the same SET id.
    let again = poll_now(&app, &key, &[]).await;
    assert_eq!(again.iter().map(|s| &s.0).collect::<Vec<_>>(), [jti]);
    // Acknowledged: never again.
    assert!(
        poll_now(&app, &key, std::slice::from_ref(jti))
            .await
            .is_empty()
    );
    assert!(poll_now(&app, &key, &[]).await.is_empty());
}

#[tokio::test]
async fn every_revocation_that_ends_a_session_or_an_account_emits_its_event_in_order() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (key_id, key) = events_key(&app, &admin).await;
    let user = app
        .create_user("kim", "kim-password", &["read"], json!({}))
        .await;
    let kim = user.id.to_string();
    let call = |method: Method, path: String, credential: String, body: Option<Value>| {
        let app = &app;
        async move {
            app.call(method, &path, &credential, body)
                .await
                .status()
                .as_u16()
        }
    };

    // RFC 7009 of a refresh token.
    let a = app.log_in("kim", "kim-password").await;
    let revoked = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": a.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // Reuse of a spent refresh token (no leeway by the time it comes back).
    let b = app.log_in("kim", "kim-password").await;
    app.clock.advance(Duration::from_secs(120));
    let _b2 = app.refreshed(b.refresh()).await;
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(app.post_refresh(b.refresh()).await.status(), 401);
    // The user ends one of their sessions, then all others.
    let c = app.log_in("kim", "kim-password").await;
    let d = app.log_in("kim", "kim-password").await;
    assert_eq!(
        call(
            Method::DELETE,
            format!("/api/sessions/{}", c.session_id),
            d.access_token.clone(),
            None
        )
        .await,
        204
    );
    let e = app.log_in("kim", "kim-password").await;
    assert_eq!(
        call(
            Method::POST,
            "/api/sessions/revoke-others".into(),
            d.access_token.clone(),
            None
        )
        .await,
        200
    );
    let _ = e;
    // An admin logs the user out everywhere, then changes the password.
    let admin = app.admin_token().await;
    assert_eq!(
        call(
            Method::POST,
            format!("/api/admin/users/{kim}/revoke-sessions"),
            admin.clone(),
            None
        )
        .await,
        204
    );
    let _f = app.log_in("kim", "kim-password").await;
    assert_eq!(
        call(
            Method::PATCH,
            format!("/api/admin/users/{kim}"),
            admin.clone(),
            Some(json!({"password": "kim-new-password"}))
        )
        .await,
        200
    );
    // A change of roles.
    assert_eq!(
        call(
            Method::PATCH,
            format!("/api/admin/users/{kim}"),
            admin.clone(),
            Some(json!({"roles": ["admin"]}))
        )
        .await,
        200
    );
    // Disabled, then deleted.
    assert_eq!(
        call(
            Method::PATCH,
            format!("/api/admin/users/{kim}"),
            admin.clone(),
            Some(json!({"enabled": false}))
        )
        .await,
        200
    );
    assert_eq!(
        call(
            Method::DELETE,
            format!("/api/admin/users/{kim}"),
            admin.clone(),
            None
        )
        .await,
        204
    );

    let sets = poll_now(&app, &key, &[]).await;
    let seen = kinds_and_reasons(&app, &sets, &key_id).await;
    let expected: Vec<(String, String)> = [
        ("session-revoked", "revoke"),
        ("session-revoked", "reuse"),
        ("session-revoked", "session ended"),
        ("session-revoked", "other sessions ended"),
        // Logged out everywhere: the live session (d), then the account.
        ("session-revoked", "revoke-sessions"),
        ("account-disabled", ""),
        // The password change: the session opened since (f), then the account.
        ("session-revoked", "user changed"),
        ("account-disabled", ""),
        // Roles changed, disabled (no live session left), deleted.
        ("account-disabled", ""),
        ("account-disabled", ""),
        ("account-disabled", ""),
    ]
    .iter()
    .map(|(k, r)| ((*k).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(seen, expected, "{sets:?}");
    let (kind, payload, _) = open(&app, &sets[5].1, &key_id).await;
    assert_eq!(kind, ACCOUNT_DISABLED);
    assert_eq!(payload["sub"], kim.as_str());
    assert_eq!(payload["tenant_id"], "default");
    // A normal refresh ends nothing: no event.
    let g = app.log_in("admin", crate::helpers::ADMIN_PASSWORD).await;
    app.clock.advance(Duration::from_secs(120));
    let _ = app.refreshed(g.refresh()).await;
    let acked: Vec<String> = sets.iter().map(|s| s.0.clone()).collect();
    assert!(poll_now(&app, &key, &acked).await.is_empty());
}

#[tokio::test]
async fn a_tenant_disable_and_a_key_withdrawal_emit_theirs_and_keys_see_only_their_tenant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    app.create_tenant(&admin, "globex").await;
    app.create_tenant_user(&admin, "acme", "ada", &["admin"], &["admin"])
        .await;
    app.create_tenant_user(&admin, "globex", "gus", &[], &[])
        .await;
    let (all_id, all) = events_key(&app, &admin).await;
    let ada = app.tenant_login("acme", "ada").await;
    let (acme_id, acme) = events_key(&app, ada["access_token"].as_str().unwrap()).await;
    let gus = app.tenant_login("globex", "gus").await;

    let disabled = app
        .call(
            Method::PATCH,
            "/api/admin/tenants/globex",
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    let kid = app.current_kid();
    let withdrawn =
        crate::admin::key_withdrawal::withdraw(&app, &admin, &kid, json!({"reason": "drill"}))
            .await;
    assert_eq!(withdrawn.status(), 200);

    // The default tenant's key sees all; acme's the withdrawals only (the `next` key goes
    // with a withdrawn `current` one: an event each, the asked-for key first).
    let sets = poll_now(&app, &all, &[]).await;
    assert_eq!(sets.len(), 3, "{sets:?}");
    let (kind, payload, _) = open(&app, &sets[0].1, &all_id).await;
    assert_eq!(kind, SESSION_REVOKED);
    assert_eq!(payload["subject"]["id"], gus["session_id"]);
    assert_eq!(payload["tenant_id"], "globex");
    assert_eq!(payload["reason"], "tenant disabled");
    let (kind, payload, _) = open(&app, &sets[1].1, &all_id).await;
    assert_eq!(kind, KEY_WITHDRAWN);
    assert_eq!(payload["kid"], kid.as_str());
    assert_eq!(open(&app, &sets[2].1, &all_id).await.0, KEY_WITHDRAWN);
    // Signed by the fresh key (the withdrawn one signs nothing more).
    assert_ne!(crate::helpers::jwt_part(&sets[1].1, 0)["kid"], kid.as_str());

    let theirs = poll_now(&app, &acme, &[]).await;
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert_eq!(open(&app, &theirs[0].1, &acme_id).await.0, KEY_WITHDRAWN);
    assert_eq!(theirs[0].0, sets[1].0, "one event, one id, whoever polls");
    // Each key has its own cursor.
    let acked: Vec<String> = theirs.iter().map(|s| s.0.clone()).collect();
    assert!(poll_now(&app, &acme, &acked).await.is_empty());
    assert_eq!(poll_now(&app, &all, &[]).await.len(), 3);
}

#[tokio::test]
async fn only_an_events_key_polls_and_bad_polls_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, key) = events_key(&app, &admin).await;
    let (_, tickets) = app.api_key(&admin, &["tickets"]).await;
    assert_error(
        poll(&app, &tickets, json!({})).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    assert_error(
        poll(&app, &admin, json!({})).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    let anonymous = app
        .client
        .post(app.url("/api/events/poll"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    for body in [
        json!({"maxEvents": -1}),
        json!({"maxEvents": 1.5}),
        json!({"maxEvents": 4_294_967_296_u64}),
        json!({"ack": "x"}),
        json!({"returnImmediately": "yes"}),
        json!({"other": 1}),
        json!({"ack": vec!["1-0"; 1001]}),
    ] {
        assert_error(poll(&app, &key, body.clone()).await, 400, "INVALID_REQUEST").await;
    }
    // Unknown and malformed acknowledgements are ignored; `maxEvents: 0` only acknowledges.
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    // An integer may be written with a zero fraction, as JSON Schema's `integer` allows.
    for zero in [json!(0), json!(0.0)] {
        let answer = poll(
            &app,
            &key,
            json!({"ack": ["nonsense", "99-99"], "maxEvents": zero}),
        )
        .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.json::<Value>().await.unwrap(),
            json!({"sets": {}, "moreAvailable": false})
        );
    }
    assert_eq!(poll_now(&app, &key, &[]).await.len(), 1);
    // `setErrs` acknowledge too.
    let jti = poll_now(&app, &key, &[]).await[0].0.clone();
    let answer = poll(
        &app,
        &key,
        json!({"setErrs": {jti: {"err": "invalid_request", "description": "test"}}, "returnImmediately": true}),
    )
    .await;
    assert_eq!(answer.json::<Value>().await.unwrap()["sets"], json!({}));
}

#[tokio::test]
async fn max_events_pages_in_order_and_tells_more_available() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, key) = events_key(&app, &admin).await;
    app.create_user("pat", "pat-password", &[], json!({})).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(app.log_in("pat", "pat-password").await);
    }
    for session in &sessions {
        let revoked = app
            .client
            .post(app.url("/api/token/revoke"))
            .json(&json!({"token": session.refresh()}))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
    }
    let mut order = Vec::new();
    let mut ack: Vec<String> = Vec::new();
    loop {
        let answer: Value = poll(
            &app,
            &key,
            json!({"ack": ack, "maxEvents": 2, "returnImmediately": true}),
        )
        .await
        .json()
        .await
        .unwrap();
        let sets = answer["sets"].as_object().unwrap();
        let mut page: Vec<(String, String)> = Vec::new();
        for (jti, set) in sets {
            let claims = crate::helpers::jwt_part(set.as_str().unwrap(), 1);
            let event = claims["events"][SESSION_REVOKED].clone();
            page.push((
                jti.clone(),
                event["subject"]["id"].as_str().unwrap().to_owned(),
            ));
        }
        assert!(page.len() <= 2);
        page.sort_by_key(|(jti, _)| {
            let (g, i) = jti.split_once('-').unwrap();
            (g.parse::<i64>().unwrap(), i.parse::<i64>().unwrap())
        });
        ack = page.iter().map(|p| p.0.clone()).collect();
        order.extend(page.into_iter().map(|p| p.1));
        if answer["moreAvailable"] == false {
            break;
        }
    }
    let expected: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(
        order, expected,
        "every event once, in the order of the revocations"
    );
}

#[tokio::test]
async fn a_long_poll_answers_when_the_event_comes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, key) = events_key(&app, &admin).await;
    app.create_user("lee", "lee-password", &[], json!({})).await;
    let lee = app.log_in("lee", "lee-password").await;
    let started = Instant::now();
    let waiting = poll(&app, &key, json!({}));
    let logout = log_out(&app, lee.refresh(), Duration::from_millis(700));
    let (answer, ()) = tokio::join!(waiting, logout);
    let sets = sets_of(&answer.text().await.unwrap());
    assert_eq!(sets.len(), 1);
    let waited = started.elapsed();
    // It waited for the event (not answered empty at once), and not the full 30 s.
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

/// A change that rolls back emits nothing: a user delete that fails after its sessions
/// were revoked and its events written (a trigger refuses the delete) leaves no event,
/// and the user's session still works.
#[tokio::test]
async fn a_change_that_rolls_back_emits_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, key) = events_key(&app, &admin).await;
    let user = app
        .create_user("doomed", "doomed-password", &[], json!({}))
        .await;
    let doomed = app.log_in("doomed", "doomed-password").await;
    let postgres = app.database_url().starts_with("postgres");
    let statements: Vec<&str> = if postgres {
        vec![
            "CREATE FUNCTION refuse_delete() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'refused by the test'; END; $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON users FOR EACH ROW \
             WHEN (OLD.username = 'doomed') EXECUTE FUNCTION refuse_delete()",
        ]
    } else {
        vec![
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON users WHEN OLD.username = 'doomed' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ]
    };
    app.services
        .db
        .run(move |conn| -> Result<(), tokenmint::store::StoreError> {
            use diesel::RunQueryDsl as _;
            for sql in statements {
                match conn {
                    tokenmint::store::DbConnection::Postgres(c) => {
                        diesel::sql_query(sql).execute(c)?;
                    }
                    tokenmint::store::DbConnection::Sqlite(c) => {
                        diesel::sql_query(sql).execute(c)?;
                    }
                }
            }
            Ok(())
        })
        .await
        .unwrap();

    let refused = app
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{}", user.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(refused.status(), 500, "the delete failed");
    assert!(
        poll_now(&app, &key, &[]).await.is_empty(),
        "no event from a rolled-back change"
    );
    assert_eq!(app.get_me(&doomed.access_token).await.status(), 200);
    assert_eq!(app.post_refresh(doomed.refresh()).await.status(), 200);
}

/// Events live in the database: a logout on A reaches a poller waiting on B within 2 s,
/// and what a poller did not acknowledge is delivered again by an instance started after
/// the ones it polled were stopped.
#[tokio::test]
async fn events_reach_every_instance_and_survive_restarts() {
    use base64::Engine as _;
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let admin = a.admin_token().await;
    let (_, key) = events_key(&a, &admin).await;
    a.create_user("ivy", "ivy-password", &[], json!({})).await;
    for _ in 0..5 {
        let ivy = b.log_in("ivy", "ivy-password").await;
        let started = Instant::now();
        let waiting = poll(&b, &key, json!({}));
        let logout = log_out(&a, ivy.refresh(), Duration::from_millis(300));
        let (answer, ()) = tokio::join!(waiting, logout);
        let sets = sets_of(&answer.text().await.unwrap());
        let waited = started.elapsed();
        assert_eq!(sets.len(), 1);
        assert!(
            waited < Duration::from_millis(300) + Duration::from_secs(2),
            "{waited:?}"
        );
        let payload = &crate::helpers::jwt_part(&sets[0].1, 1)["events"][SESSION_REVOKED];
        assert_eq!(payload["subject"]["id"], ivy.session_id.as_str());
        let acked: Vec<String> = sets.iter().map(|s| s.0.clone()).collect();
        assert!(poll_now(&b, &key, &acked).await.is_empty());
    }

    // A whole process, stopped and started again.
    let ivy = a.log_in("ivy", "ivy-password").await;
    log_out(&a, ivy.refresh(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("TOKENMINT_DATABASE_URL", a.database_url().to_owned()),
        ("TOKENMINT_ISSUER", a.services.settings.issuer.clone()),
        (
            "TOKENMINT_KEY_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode(crate::helpers::TEST_KEK),
        ),
        (
            "TOKENMINT_REDIS_PREFIX",
            a.services.settings.redis_prefix.clone(),
        ),
    ];
    if let Some(redis) = non_empty_env("TOKENMINT_TEST_REDIS_URL") {
        env.push(("TOKENMINT_REDIS_URL", redis));
    }
    let poll_at = |url: String, ack: Vec<String>| {
        let client = a.client.clone();
        let key = key.clone();
        async move {
            let answer = client
                .post(format!("{url}/api/events/poll"))
                .header("x-api-key", key)
                .json(&json!({"ack": ack, "returnImmediately": true}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            sets_of(&answer.text().await.unwrap())
        }
    };
    let (first, url) = crate::helpers::processes::tokenmint(dir.path(), &env).await;
    let delivered = poll_at(url, Vec::new()).await;
    assert_eq!(delivered.len(), 1);
    drop(first);
    let (second, url) = crate::helpers::processes::tokenmint(dir.path(), &env).await;
    let again = poll_at(url.clone(), Vec::new()).await;
    // The same event, same id and claims (ECDSA signatures differ from one signing to
    // the next).
    let claims = |sets: &[(String, String)]| -> Vec<(String, Value)> {
        sets.iter()
            .map(|(jti, set)| (jti.clone(), Value::Object(crate::helpers::jwt_part(set, 1))))
            .collect()
    };
    assert_eq!(
        claims(&again),
        claims(&delivered),
        "delivered again after a restart"
    );
    let acked: Vec<String> = again.iter().map(|s| s.0.clone()).collect();
    assert!(poll_at(url, acked).await.is_empty());
    drop(second);
    let (_third, url) = crate::helpers::processes::tokenmint(dir.path(), &env).await;
    assert!(
        poll_at(url, Vec::new()).await.is_empty(),
        "acknowledged stays acknowledged"
    );
}
