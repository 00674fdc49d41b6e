//! The revocation list across restarts, data loss and outages.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_PASSWORD, Pair, TestApp, assert_error, free_port, spawn_app, spawn_app_with,
};

fn redis_url() -> Option<String> {
    std::env::var("TOKENMINT_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

async fn revoked_session(app: &TestApp) -> Pair {
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let response = app
        .client
        .post(app.url("/api/logout"))
        .json(&json!({"refresh_token": login.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    login
}

#[tokio::test]
async fn revocations_survive_a_restart_on_the_same_database() {
    let first = spawn_app().await;
    let login = revoked_session(&first).await;
    let access = login.access_token.as_str();
    assert_error(first.get_me(access).await, 401, "TOKEN_REVOKED").await;

    // A second instance on the same database (and Redis prefix): a restarted process.
    let second = first.another_instance().await;

    assert_error(second.get_me(access).await, 401, "TOKEN_REVOKED").await;
    assert_error(
        second.post_refresh(login.refresh()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn revocations_survive_a_flushall() {
    let Some(url) = redis_url() else { return };
    let app = spawn_app().await;
    let login = revoked_session(&app).await;
    let access = login.access_token.as_str();
    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;

    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
    let fresh = app.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get_me(fresh.access_token.as_str()).await.status(), 200);
}

struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_redis(port: u16) -> RedisServer {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed where TOKENMINT_TEST_REDIS_URL is set");
    let server = RedisServer(child);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    for _ in 0..50 {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server on port {port} did not start");
}

/// A Redis that is down answers 503 (fail closed), then the service recovers by itself.
#[tokio::test]
async fn an_unreachable_revocation_list_fails_closed_and_recovers() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let app =
        spawn_app_with(|s| s.redis_url = Some(format!("redis://127.0.0.1:{port}").into())).await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let access = login.access_token.as_str();

    assert_error(app.get_me(access).await, 503, "UNAVAILABLE").await;
    assert_error(app.introspect(access, access).await, 503, "UNAVAILABLE").await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["revocation_list"],
        "unavailable"
    );
    // A revocation that cannot be published yet is recorded in the database and
    // answered 200 (503 would claim that nothing was done)...
    let revoke = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": access}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);

    let redis = start_redis(port).await;
    // ...and holds once Redis is back, without a restart.
    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
    let fresh = app.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(app.get_me(fresh.access_token.as_str()).await.status(), 200);
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    drop(redis);
    // Once the instance has seen the connection close (its mirror of the list dropped).
    until_mirrored(&app, false).await;
    assert_error(
        app.get_me(fresh.access_token.as_str()).await,
        503,
        "UNAVAILABLE",
    )
    .await;
}

/// Polls until `app`'s revocation checks are (or are no longer) answered from its mirror.
async fn until_mirrored(app: &TestApp, wanted: bool) {
    for _ in 0..100 {
        if app.services.revocations.mirrored() == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the revocation mirror never became {wanted}");
}

/// With Redis, checks are answered from each instance's mirror of the list: a revocation
/// made on one instance holds at once on both, and once Redis goes away the mirror is
/// dropped and checks fail closed.
#[tokio::test]
async fn the_mirror_of_the_list_answers_checks_and_goes_when_redis_goes() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let redis = start_redis(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let a = spawn_app_with(|s| s.redis_url = Some(url.clone().into())).await;
    let (database_url, prefix) = (
        a.services.settings.database_url.clone(),
        a.services.settings.redis_prefix.clone(),
    );
    let b = spawn_app_with(|s| {
        s.redis_url = Some(url.clone().into());
        s.database_url = database_url;
        s.redis_prefix = prefix;
    })
    .await;
    until_mirrored(&a, true).await;
    until_mirrored(&b, true).await;

    let login = a.log_in("admin", ADMIN_PASSWORD).await;
    let access = login.access_token.as_str();
    assert_eq!(a.get_me(access).await.status(), 200);
    assert_eq!(b.get_me(access).await.status(), 200);
    let logout = a
        .client
        .post(a.url("/api/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_error(a.get_me(access).await, 401, "TOKEN_REVOKED").await;
    assert_error(b.get_me(access).await, 401, "TOKEN_REVOKED").await;
    assert!(a.services.revocations.mirrored() && b.services.revocations.mirrored());

    let fresh = a.log_in("admin", ADMIN_PASSWORD).await;
    let fresh = fresh.access_token.as_str();
    assert_eq!(b.get_me(fresh).await.status(), 200);
    drop(redis);
    until_mirrored(&b, false).await;
    assert_error(b.get_me(fresh).await, 503, "UNAVAILABLE").await;
    assert_error(b.introspect(fresh, fresh).await, 503, "UNAVAILABLE").await;
}

/// Every key of an app's Redis prefix, with its DUMP.
async fn snapshot(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<(String, Vec<u8>)> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    let mut dumped = Vec::new();
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        dumped.push((key, dump));
    }
    dumped
}

async fn restore(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    dumped: &[(String, Vec<u8>)],
) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap();
    for key in keys {
        let _: () = redis::cmd("DEL").arg(&key).query_async(conn).await.unwrap();
    }
    for (key, dump) in dumped {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(dump.as_slice())
            .query_async(conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_redis_restored_from_an_older_snapshot_does_not_resurrect_a_revocation() {
    let Some(url) = redis_url() else { return };
    let app = spawn_app().await;
    let prefix = app.services.settings.redis_prefix.clone();
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let access = login.access_token.as_str();
    assert_eq!(app.get_me(access).await.status(), 200);

    // Redis as it was before the logout: every key it held, marker included.
    let before = snapshot(&mut conn, &prefix).await;
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;

    restore(&mut conn, &prefix, &before).await;

    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
    assert!(!app.is_active(access).await);
}

#[tokio::test]
async fn revocation_entries_lost_without_their_marker_are_noticed() {
    let Some(url) = redis_url() else { return };
    let app = spawn_app().await;
    let prefix = app.services.settings.redis_prefix.clone();
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let login = revoked_session(&app).await;
    let access = login.access_token.as_str();
    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;

    // Whatever holds the entries goes (an eviction, a partial restore); whatever holds
    // the "filled" marker alone, if it is a separate key, stays.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let marker = |k: &str| k.ends_with("revocations:filled");
    for key in keys.iter().filter(|k| !marker(k)) {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn an_instance_learns_within_seconds_of_a_revocation_that_missed_redis_elsewhere() {
    if redis_url().is_none() {
        return;
    }
    // Instance A cannot reach Redis; B can. Both share the database.
    let b = spawn_app().await;
    let database_url = b.services.settings.database_url.clone();
    let dead_redis = format!("redis://127.0.0.1:{}", free_port());
    let a = spawn_app_with(|s| {
        s.database_url = database_url;
        s.redis_url = Some(dead_redis.into());
    })
    .await;
    let login = b.log_in("admin", ADMIN_PASSWORD).await;
    let access = login.access_token.as_str();
    assert_eq!(b.get_me(access).await.status(), 200);

    // A records the logout in the database; its Redis write fails.
    let logout = a
        .client
        .post(a.url("/api/logout"))
        .bearer_auth(access)
        .json(&json!({"refresh_token": login.refresh()}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if b.get_me(access).await.status() == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instance B still accepts a token revoked 3 s ago"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(b.get_me(access).await, 401, "TOKEN_REVOKED").await;
}
