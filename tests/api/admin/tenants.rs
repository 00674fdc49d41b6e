//! Tenants: the admin API, per-tenant usernames, isolation of tenant admins, and a
//! disable that cuts a tenant off on every instance.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, jwt_part, non_empty_env, spawn_app};

fn access(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn default_admins_create_list_rename_and_delete_tenants() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let created = app
        .call(
            Method::POST,
            "/api/admin/tenants",
            &admin,
            Some(json!({"id": "acme", "name": "Acme Corp"})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let tenant: Value = created.json().await.unwrap();
    assert_eq!(tenant["id"], "acme");
    assert_eq!(tenant["name"], "Acme Corp");
    assert_eq!(tenant["enabled"], true);
    assert!(tenant["created_at"].is_string() && tenant["updated_at"].is_string());

    let again = app
        .call(
            Method::POST,
            "/api/admin/tenants",
            &admin,
            Some(json!({"id": "acme", "name": "Other"})),
        )
        .await;
    assert_error(again, 409, "CONFLICT").await;
    for bad in ["", "-acme", "Acme", "a_b", &"a".repeat(64)] {
        let refused = app
            .call(
                Method::POST,
                "/api/admin/tenants",
                &admin,
                Some(json!({"id": bad, "name": "x"})),
            )
            .await;
        assert_error(refused, 400, "INVALID_REQUEST").await;
    }

    let page = app.get_json("/api/admin/tenants?limit=1", &admin).await;
    assert_eq!(page["items"][0]["id"], "acme");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(
            &format!("/api/admin/tenants?limit=1&cursor={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(next["items"][0]["id"], "default");
    assert_eq!(next["next_cursor"], Value::Null);

    let renamed: Value = app
        .call(
            Method::PATCH,
            "/api/admin/tenants/acme",
            &admin,
            Some(json!({"name": "ACME"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["name"], "ACME");
    let got = app.get_json("/api/admin/tenants/acme", &admin).await;
    assert_eq!(got["name"], "ACME");

    // `default` is the deployment's own: never disabled, never deleted.
    let disable_default = app
        .call(
            Method::PATCH,
            "/api/admin/tenants/default",
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_error(disable_default, 409, "CONFLICT").await;
    let delete_default = app
        .call(Method::DELETE, "/api/admin/tenants/default", &admin, None)
        .await;
    assert_error(delete_default, 409, "CONFLICT").await;
    assert_eq!(app.get_me(&admin).await.status(), 200);

    // A tenant with a user cannot be deleted; once empty it can.
    let user = app
        .create_tenant_user(&admin, "acme", "wile", &["user"], &[])
        .await;
    let busy = app
        .call(Method::DELETE, "/api/admin/tenants/acme", &admin, None)
        .await;
    assert_error(busy, 409, "CONFLICT").await;
    let removed = app
        .call(
            Method::DELETE,
            &format!("/api/admin/users/{user}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(removed.status(), 204);
    let deleted = app
        .call(Method::DELETE, "/api/admin/tenants/acme", &admin, None)
        .await;
    assert_eq!(deleted.status(), 204);
    let gone = app
        .call(Method::GET, "/api/admin/tenants/acme", &admin, None)
        .await;
    assert_error(gone, 404, "NOT_FOUND").await;
    let unknown = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "x", "password": "x-password-long", "tenant": "acme"})),
        )
        .await;
    assert_error(unknown, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn usernames_are_unique_per_tenant_and_tokens_name_their_tenant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    let in_default = app
        .create_tenant_user(&admin, "default", "alice", &["user"], &["read"])
        .await;
    let in_acme = app
        .create_tenant_user(&admin, "acme", "alice", &["user"], &["write"])
        .await;
    assert_ne!(in_default, in_acme);
    let taken = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "ALICE", "password": "another-password", "tenant": "acme"})),
        )
        .await;
    assert_error(taken, 409, "CONFLICT").await;

    // Same name, same password pattern: which user logs in depends on the tenant.
    let default_login = app.tenant_login("default", "alice").await;
    let acme_login = app.tenant_login("acme", "alice").await;
    let (d, a) = (
        jwt_part(&access(&default_login), 1),
        jwt_part(&access(&acme_login), 1),
    );
    assert_eq!(
        (d["sub"].as_str(), d["tenant_id"].as_str()),
        (Some(in_default.as_str()), Some("default"))
    );
    assert_eq!(
        (a["sub"].as_str(), a["tenant_id"].as_str()),
        (Some(in_acme.as_str()), Some("acme"))
    );
    assert_eq!(a["scope"], "write");
    // Without `tenant`, a login is `default`'s.
    let plain = app
        .post_login(&json!({"username": "alice", "password": "alice-password"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(jwt_part(&access(&plain), 1)["sub"], in_default.as_str());

    let me: Value = app.get_me(&access(&acme_login)).await.json().await.unwrap();
    assert_eq!(me["tenant_id"], "acme");
    let introspected: Value = app
        .introspect(&admin, &access(&acme_login))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["tenant_id"], "acme");

    // An unknown tenant is a failed login, not a way to list tenants.
    let nowhere = app
        .post_login(
            &json!({"username": "alice", "password": "alice-password", "tenant": "nowhere"}),
        )
        .await;
    assert_error(nowhere, 401, "AUTHENTICATION_FAILED").await;
    let bad_slug = app
        .post_login(
            &json!({"username": "alice", "password": "alice-password", "tenant": "No Such"}),
        )
        .await;
    assert_error(bad_slug, 400, "INVALID_REQUEST").await;
}

/// Another tenant's objects, as its own default admin made them.
struct Globex {
    user: String,
    key_id: String,
    key: String,
    client: String,
    user_token: String,
}

async fn globex(app: &TestApp, admin: &str) -> Globex {
    app.create_tenant(admin, "globex").await;
    let user = app
        .create_tenant_user(admin, "globex", "hank", &["user"], &["read"])
        .await;
    let key: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            admin,
            Some(json!({"name": "globex bot", "owner_id": user, "scopes": ["read"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(key["tenant"], "globex");
    let client = app
        .call(
            Method::POST,
            "/api/admin/clients",
            admin,
            Some(
                json!({"name": "globex backend", "tenant": "globex", "type": "confidential",
                        "grant_types": ["client_credentials"], "scopes": ["read"]}),
            ),
        )
        .await;
    assert_eq!(client.status(), 201);
    let client: Value = client.json().await.unwrap();
    Globex {
        user,
        key_id: key["id"].as_str().unwrap().to_owned(),
        key: key["key"].as_str().unwrap().to_owned(),
        client: client["client_id"].as_str().unwrap().to_owned(),
        user_token: access(&app.tenant_login("globex", "hank").await),
    }
}

#[tokio::test]
async fn a_tenant_admin_sees_and_changes_only_its_own_tenant() {
    let app = spawn_app().await;
    let root = app.admin_token().await;
    let other = globex(&app, &root).await;
    app.create_tenant(&root, "acme").await;
    let acme_admin_id = app
        .create_tenant_user(&root, "acme", "road", &["admin"], &["admin"])
        .await;
    let acme_admin = access(&app.tenant_login("acme", "road").await);
    let acme_key: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &acme_admin,
            Some(json!({"name": "acme admin bot", "scopes": ["admin"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme_key["owner_id"], acme_admin_id.as_str());
    assert_eq!(acme_key["tenant"], "acme");
    let acme_key = acme_key["key"].as_str().unwrap().to_owned();
    let own_user = app
        .create_tenant_user(&acme_admin, "acme", "coyote", &["user"], &[])
        .await;

    for caller in [&acme_admin, &acme_key] {
        // By id: another tenant's objects do not exist.
        let by_id = [
            (
                Method::GET,
                format!("/api/admin/users/{}", other.user),
                None,
            ),
            (
                Method::PATCH,
                format!("/api/admin/users/{}", other.user),
                Some(json!({"enabled": false})),
            ),
            (
                Method::DELETE,
                format!("/api/admin/users/{}", other.user),
                None,
            ),
            (
                Method::POST,
                format!("/api/admin/users/{}/revoke-sessions", other.user),
                None,
            ),
            (
                Method::GET,
                format!("/api/admin/api-keys/{}", other.key_id),
                None,
            ),
            (
                Method::POST,
                format!("/api/admin/api-keys/{}/disable", other.key_id),
                None,
            ),
            (
                Method::POST,
                format!("/api/admin/api-keys/{}/enable", other.key_id),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/admin/api-keys/{}", other.key_id),
                None,
            ),
            (
                Method::GET,
                format!("/api/admin/clients/{}", other.client),
                None,
            ),
            (
                Method::PATCH,
                format!("/api/admin/clients/{}", other.client),
                Some(json!({"scopes": []})),
            ),
            (
                Method::POST,
                format!("/api/admin/clients/{}/disable", other.client),
                None,
            ),
            (
                Method::POST,
                format!("/api/admin/clients/{}/enable", other.client),
                None,
            ),
            (
                Method::POST,
                format!("/api/admin/clients/{}/rotate-secret", other.client),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/admin/clients/{}", other.client),
                None,
            ),
            (
                Method::GET,
                "/api/admin/users?tenant=globex".to_owned(),
                None,
            ),
            (
                Method::GET,
                "/api/admin/api-keys?tenant=globex".to_owned(),
                None,
            ),
            (
                Method::GET,
                "/api/admin/clients?tenant=globex".to_owned(),
                None,
            ),
            (
                Method::POST,
                "/api/admin/users".to_owned(),
                Some(json!({"username": "mole", "password": "mole-password", "tenant": "globex"})),
            ),
            (
                Method::POST,
                "/api/admin/clients".to_owned(),
                Some(json!({"name": "mole", "tenant": "globex", "type": "public",
                            "grant_types": ["password"]})),
            ),
        ];
        for (method, path, body) in by_id {
            let answer = app.call(method.clone(), &path, caller, body).await;
            assert_eq!(answer.status(), 404, "{method} {path}");
            assert_eq!(answer.json::<Value>().await.unwrap()["error"], "NOT_FOUND");
        }
        // The deployment's own: tenants, signing keys, the audit log.
        for path in [
            "/api/admin/tenants",
            "/api/admin/tenants/globex",
            "/api/admin/signing-keys",
            "/api/admin/audit",
        ] {
            let answer = app.call(Method::GET, path, caller, None).await;
            assert_error(answer, 403, "INSUFFICIENT_PERMISSIONS").await;
        }
        // Lists hold only their own tenant.
        for (path, field) in [
            ("/api/admin/users", "id"),
            ("/api/admin/api-keys", "id"),
            ("/api/admin/clients", "client_id"),
        ] {
            let page = app.get_json(path, caller).await;
            let items = page["items"].as_array().unwrap();
            assert!(
                items.iter().all(|i| i["tenant"] == "acme"),
                "{path}: {items:?}"
            );
            assert!(
                !items
                    .iter()
                    .any(|i| [&other.user, &other.key_id, &other.client]
                        .contains(&&i[field].as_str().unwrap().to_owned())),
                "{path}"
            );
        }
        let users = app.get_json("/api/admin/users", caller).await;
        assert!(
            users["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == own_user.as_str())
        );
        // Another tenant's token is inactive to it.
        let seen: Value = app
            .introspect(caller, &other.user_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(seen, json!({"active": false}));
    }

    // Nothing of globex changed: its user, key and client still work.
    assert_eq!(app.get_me(&other.user_token).await.status(), 200);
    let key_view = app
        .get_json(&format!("/api/admin/api-keys/{}", other.key_id), &root)
        .await;
    assert_eq!(key_view["enabled"], true);
    let root_view = app
        .get_json(&format!("/api/admin/clients/{}", other.client), &root)
        .await;
    assert_eq!(root_view["enabled"], true);
    assert_eq!(root_view["scopes"], json!(["read"]));
    let root_users = app.get_json("/api/admin/users?tenant=globex", &root).await;
    assert_eq!(root_users["items"][0]["id"], other.user.as_str());
    assert_eq!(root_users["items"][0]["enabled"], true);
}

/// Polls `check` until it is true; with Redis it must be true at once, with the
/// in-memory list (one per process) a second instance learns within its 1 s poll.
async fn on_second_instance(mut check: impl AsyncFnMut() -> bool) {
    if non_empty_env("TOKENMINT_TEST_REDIS_URL").is_some() {
        assert!(check().await, "at once, through Redis");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "the second instance never learned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn disabling_a_tenant_cuts_off_its_tokens_keys_and_clients_on_every_instance() {
    let first = spawn_app().await;
    let second = first.another_instance().await;
    let root = first.admin_token().await;
    let other = globex(&first, &root).await;
    let secret = first
        .call(
            Method::POST,
            &format!("/api/admin/clients/{}/rotate-secret", other.client),
            &root,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_token = first
        .token_request(
            &[("grant_type", "client_credentials")],
            Some((&other.client, &secret)),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = first.tenant_login("globex", "hank").await;
    assert_eq!(second.get_me(&other.user_token).await.status(), 200);
    assert!(second.is_active(&client_token).await);

    let disabled = first
        .call(
            Method::PATCH,
            "/api/admin/tenants/globex",
            &root,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(disabled.json::<Value>().await.unwrap()["enabled"], false);

    on_second_instance(async || second.get_me(&other.user_token).await.status() == 401).await;
    assert_error(second.get_me(&other.user_token).await, 401, "TOKEN_REVOKED").await;
    assert!(!second.is_active(&client_token).await);
    assert_error(
        second
            .post_refresh(session["refresh_token"].as_str().unwrap())
            .await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    let login = second
        .post_login(&json!({"username": "hank", "password": "hank-password", "tenant": "globex"}))
        .await;
    assert_error(login, 401, "AUTHENTICATION_FAILED").await;
    let key = second
        .client
        .post(second.url("/api/token/introspect"))
        .header("x-api-key", &other.key)
        .json(&json!({"token": root}))
        .send()
        .await
        .unwrap();
    assert_error(key, 401, "AUTHENTICATION_FAILED").await;
    let refused = second
        .token_request(
            &[("grant_type", "client_credentials")],
            Some((&other.client, &secret)),
        )
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // Other tenants are untouched.
    assert_eq!(second.get_me(&root).await.status(), 200);

    // Enabled again: new logins work; what the disable cut off stays cut off.
    let enabled = first
        .call(
            Method::PATCH,
            "/api/admin/tenants/globex",
            &root,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status(), 200);
    // The cut-off covers the whole second of the disable (iat has whole seconds).
    second.clock.advance(Duration::from_secs(1));
    let fresh = access(&second.tenant_login("globex", "hank").await);
    assert_eq!(second.get_me(&fresh).await.status(), 200);
    assert_error(second.get_me(&other.user_token).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn no_token_issued_around_a_tenant_disable_outlives_it() {
    let app = spawn_app().await;
    let root = app.admin_token().await;
    let other = globex(&app, &root).await;
    let secret = app
        .call(
            Method::POST,
            &format!("/api/admin/clients/{}/rotate-secret", other.client),
            &root,
            None,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // Streams of logins and client-credentials grants run into the disable: each keeps
    // asking until it is refused. (Five login streams: more of one username at once
    // would meet the brute-force limit.)
    let (logged_in, granted) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let login_streams = (0..5).map(|_| async {
        let mut issued = Vec::new();
        loop {
            let answer = app
                .post_login(
                    &json!({"username": "hank", "password": "hank-password", "tenant": "globex"}),
                )
                .await;
            if answer.status() != 200 {
                assert_error(answer, 401, "AUTHENTICATION_FAILED").await;
                return issued;
            }
            issued.push(answer.json::<Value>().await.unwrap());
            logged_in.fetch_add(1, Ordering::SeqCst);
        }
    });
    let grant_streams = (0..8).map(|_| async {
        let mut issued = Vec::new();
        loop {
            let answer = app
                .token_request(
                    &[("grant_type", "client_credentials")],
                    Some((&other.client, &secret)),
                )
                .await;
            if answer.status() != 200 {
                assert_eq!(answer.status(), 401);
                return issued;
            }
            issued.push(answer.json::<Value>().await.unwrap());
            granted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let disable = async {
        // Once both kinds are flowing.
        while logged_in.load(Ordering::SeqCst) < 2 || granted.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.call(
            Method::PATCH,
            "/api/admin/tenants/globex",
            &root,
            Some(json!({"enabled": false})),
        )
        .await
        .status()
    };
    let (logins, grants, disabled) = tokio::join!(
        futures_util::future::join_all(login_streams),
        futures_util::future::join_all(grant_streams),
        disable
    );
    assert_eq!(disabled, 200);
    let (logins, grants): (Vec<Value>, Vec<Value>) = (
        logins.into_iter().flatten().collect(),
        grants.into_iter().flatten().collect(),
    );
    assert!(
        !logins.is_empty() && !grants.is_empty(),
        "both raced the disable"
    );
    eprintln!(
        "issued around the disable: {} logins, {} client tokens",
        logins.len(),
        grants.len()
    );
    let issued: Vec<Value> = logins.into_iter().chain(grants).collect();
    for body in &issued {
        let token = body["access_token"].as_str().unwrap();
        assert_error(app.get_me(token).await, 401, "TOKEN_REVOKED").await;
        if let Some(refresh) = body["refresh_token"].as_str() {
            assert_error(app.post_refresh(refresh).await, 401, "TOKEN_REVOKED").await;
        }
    }
    eprintln!(
        "{} tokens issued around the disable, all refused after it",
        issued.len()
    );
}
