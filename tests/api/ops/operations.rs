//! Operating the service: restarts, replicas, the bootstrap admin, partial data loss.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, jwt_part, spawn_app};

#[tokio::test]
async fn a_deleted_bootstrap_admin_is_not_created_again_at_the_next_start() {
    let first = spawn_app().await;
    let admin = first.admin_token().await;
    let admin_id = jwt_part(&admin, 1)["sub"].as_str().unwrap().to_owned();
    let created = first
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "ops", "password": "ops-password", "roles": ["admin"], "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let ops = first.log_in("ops", "ops-password").await.access_token;
    // The bootstrap admin's password leaked: it is deleted.
    let deleted = first
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{admin_id}"),
            &ops,
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);

    // Restarted with TOKENMINT_BOOTSTRAP_ADMIN still set.
    let second = first.another_instance().await;

    let login = second
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    assert_error(login, 401, "AUTHENTICATION_FAILED").await;
    let users = second.get_json("/api/admin/users", &ops).await;
    let names: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops"]);
}

const BIN: &str = env!("CARGO_BIN_EXE_tokenmint");

/// A `tokenmint serve` child process, killed when dropped.
struct Replica {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(
    database: &crate::helpers::TestDatabase,
    redis_prefix: &str,
    name: &str,
) -> Replica {
    let port = crate::helpers::free_port();
    let log = database.dir.path().join(format!("{name}.log"));
    let mut command = std::process::Command::new(BIN);
    command
        .arg("serve")
        .env_clear()
        .env("TOKENMINT_BIND", format!("127.0.0.1:{port}"))
        .env("TOKENMINT_DATABASE_URL", &database.url_string)
        .env("TOKENMINT_BOOTSTRAP_ADMIN", "admin:replica-password")
        // Replicas behind one load balancer share one issuer.
        .env("TOKENMINT_ISSUER", "https://idp.replicas.test")
        .env("TOKENMINT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if let tokenmint::config::DatabaseUrl::Postgres(_) = database.url {
        command.env(
            "TOKENMINT_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
    }
    if let Some(redis) = crate::helpers::non_empty_env("TOKENMINT_TEST_REDIS_URL") {
        command
            .env("TOKENMINT_REDIS_URL", redis)
            .env("TOKENMINT_REDIS_PREFIX", redis_prefix);
    }
    Replica {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// Waits until the replica serves; fails with its log if it exits first.
async fn serving(replica: &mut Replica, client: &reqwest::Client) {
    for _ in 0..200 {
        if let Some(status) = replica.child.try_wait().unwrap() {
            panic!(
                "a replica exited with {status}:\n{}",
                std::fs::read_to_string(&replica.log).unwrap_or_default()
            );
        }
        if client
            .get(format!("{}/healthz", replica.base))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("a replica did not start");
}

#[tokio::test]
async fn two_replicas_starting_together_on_an_empty_database_agree_on_keys_and_admin() {
    let client = reqwest::Client::new();
    for round in 0..5 {
        let database = crate::helpers::TestDatabase::new();
        let prefix = format!("tokenmint-test:{}:", uuid::Uuid::new_v4().simple());
        let mut a = start_replica(&database, &prefix, "a");
        let mut b = start_replica(&database, &prefix, "b");
        serving(&mut a, &client).await;
        serving(&mut b, &client).await;

        let mut kids = Vec::new();
        let mut tokens = Vec::new();
        for replica in [&a, &b] {
            let login = client
                .post(format!("{}/api/login", replica.base))
                .json(&json!({"username": "admin", "password": "replica-password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(login.status(), 200, "round {round}");
            let token = login.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            kids.push(jwt_part(&token, 0)["kid"].clone());
            tokens.push(token);
        }
        assert_eq!(kids[0], kids[1], "round {round}: one current key");

        let keys: Value = client
            .get(format!("{}/api/admin/signing-keys", a.base))
            .bearer_auth(&tokens[1])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let statuses: Vec<&str> = keys
            .as_array()
            .unwrap_or_else(|| panic!("round {round}: {keys}"))
            .iter()
            .map(|k| k["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses.len(), 2, "round {round}: {statuses:?}");
        assert!(
            statuses.contains(&"current") && statuses.contains(&"next"),
            "{statuses:?}"
        );
        let users: Value = client
            .get(format!("{}/api/admin/users", b.base))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            users["items"].as_array().unwrap().len(),
            1,
            "round {round}: one admin"
        );
    }
}
