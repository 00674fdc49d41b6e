use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, item_ids, spawn_app, spawn_app_with};

async fn create_key(app: &TestApp, admin: &str, body: Value) -> Value {
    let response = app
        .call(Method::POST, "/api/admin/api-keys", admin, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn admin_key(app: &TestApp) -> (String, Value) {
    let admin = app.admin_token().await;
    let created = create_key(app, &admin, json!({"name": "ops bot", "scopes": ["admin"]})).await;
    (created["key"].as_str().unwrap().to_owned(), created)
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_authenticates_as_x_api_key() {
    let app = spawn_app().await;
    let (key, created) = admin_key(&app).await;

    assert!(key.starts_with("tmk_") && key.len() == 53, "{key}");
    assert_eq!(created["prefix"], &key[..12]);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["scopes"], json!(["admin"]));
    assert!(created["last_used_at"].is_null() && created["last_used_ip"].is_null());
    assert!(created["expires_at"].is_null());
    let admin_token = app.log_in("admin", ADMIN_PASSWORD).await.access_token;
    let admin_id = crate::helpers::jwt_part(&admin_token, 1)["sub"].clone();
    assert_eq!(
        created["owner_id"], admin_id,
        "a key without a named owner acts for the admin who made it"
    );

    let listed = app.call(Method::GET, "/api/admin/users", &key, None).await;
    assert_eq!(
        listed.status(),
        200,
        "X-API-Key with scope admin is an admin"
    );
    let by_query = app
        .client
        .get(app.url(&format!("/api/admin/users?key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200, "?key= where headers cannot be set");

    let id = created["id"].as_str().unwrap();
    for path in [
        format!("/api/admin/api-keys/{id}"),
        "/api/admin/api-keys".to_owned(),
        "/api/admin/audit".to_owned(),
    ] {
        let text = app
            .call(Method::GET, &path, &key, None)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains(&key),
            "the secret appears only at creation: {path}"
        );
    }
    let got = app
        .get_json(&format!("/api/admin/api-keys/{id}"), &key)
        .await;
    assert!(got.get("key").is_none());
    assert!(
        got["last_used_at"].is_string(),
        "last use is recorded: {got}"
    );
    assert_eq!(got["last_used_ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_disabled_key_is_refused_until_enabled_again() {
    let app = spawn_app().await;
    let (key, created) = admin_key(&app).await;
    let admin = app.admin_token().await;
    let id = created["id"].as_str().unwrap();

    for _ in 0..2 {
        let response = app
            .call(
                Method::POST,
                &format!("/api/admin/api-keys/{id}/disable"),
                &admin,
                None,
            )
            .await;
        assert_eq!(response.status(), 200, "idempotent");
        assert_eq!(response.json::<Value>().await.unwrap()["enabled"], false);
    }
    assert_error(
        app.call(Method::GET, "/api/admin/users", &key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    let introspected: Value = app.introspect(&admin, &key).await.json().await.unwrap();
    assert_eq!(introspected, json!({"active": false}));

    for _ in 0..2 {
        let response = app
            .call(
                Method::POST,
                &format!("/api/admin/api-keys/{id}/enable"),
                &admin,
                None,
            )
            .await;
        assert_eq!(response.json::<Value>().await.unwrap()["enabled"], true);
    }
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", &key, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_deleted_key_is_refused_and_gone() {
    let app = spawn_app().await;
    let (key, created) = admin_key(&app).await;
    let admin = app.admin_token().await;
    let path = format!("/api/admin/api-keys/{}", created["id"].as_str().unwrap());

    assert_eq!(
        app.call(Method::DELETE, &path, &admin, None).await.status(),
        204
    );

    assert_error(
        app.call(Method::GET, "/api/admin/users", &key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_error(
        app.call(Method::GET, &path, &admin, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_error(
        app.call(Method::DELETE, &path, &admin, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        app.introspect(&admin, &key)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!({"active": false})
    );
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let expires_at = (app.clock_now() + chrono::TimeDelta::seconds(60)).to_rfc3339();
    let created = create_key(
        &app,
        &admin,
        json!({"name": "short-lived", "scopes": ["admin"], "expires_at": expires_at}),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", key, None)
            .await
            .status(),
        200
    );

    app.clock.advance(Duration::from_secs(61));
    let admin = app.admin_token().await;
    assert_error(
        app.call(Method::GET, "/api/admin/users", key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_eq!(
        app.introspect(&admin, key)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!({"active": false})
    );

    let past = (app.clock_now() - chrono::TimeDelta::seconds(1)).to_rfc3339();
    let response = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "x", "scopes": [], "expires_at": past})),
        )
        .await;
    assert_error(response, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn malformed_and_made_up_keys_are_refused() {
    let app = spawn_app().await;
    let (key, _) = admin_key(&app).await;
    let mut typo = key.clone().into_bytes();
    typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    for bad in [
        typo.as_str(),
        "tmk_short",
        "",
        &format!("{key}0"),
        "Bearer nothing",
    ] {
        let response = app
            .client
            .get(app.url("/api/admin/users"))
            .header("x-api-key", bad)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "AUTHENTICATION_FAILED").await;
    }
}

#[tokio::test]
async fn keys_with_scope_introspect_may_introspect_tokens_and_keys() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let owner = app
        .create_user("tara", "tara-password", &[], json!({}))
        .await;
    let introspector = create_key(
        &app,
        &admin,
        json!({"name": "gateway", "scopes": ["introspect"], "owner_id": owner.id}),
    )
    .await;
    let introspector = introspector["key"].as_str().unwrap();
    let bot = create_key(
        &app,
        &admin,
        json!({"name": "bot", "scopes": ["read"], "owner_id": owner.id}),
    )
    .await;

    let token: Value = app
        .introspect(introspector, &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(token["active"], true);
    assert_eq!(token["token_type"], "access_token");

    let key: Value = app
        .introspect(introspector, bot["key"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(key["active"], true);
    assert_eq!(key["token_type"], "api_key");
    assert_eq!(key["key_id"], bot["id"]);
    assert_eq!(key["sub"], owner.id.to_string());
    assert_eq!(key["scope"], "read");

    let refused = app.introspect(bot["key"].as_str().unwrap(), &admin).await;
    assert_error(refused, 403, "INSUFFICIENT_PERMISSIONS").await;
    let not_admin = app
        .call(Method::GET, "/api/admin/users", introspector, None)
        .await;
    assert_error(not_admin, 403, "INSUFFICIENT_PERMISSIONS").await;
}

#[tokio::test]
async fn a_key_of_a_disabled_owner_acts_for_nobody() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let owner: Value = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "uma", "password": "uma-password", "roles": ["admin"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let owner_id = owner["id"].as_str().unwrap();
    let key = create_key(
        &app,
        &admin,
        json!({"name": "uma's", "scopes": ["admin"], "owner_id": owner_id}),
    )
    .await;
    let key = key["key"].as_str().unwrap();
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", key, None)
            .await
            .status(),
        200
    );

    app.call(
        Method::PATCH,
        &format!("/api/admin/users/{owner_id}"),
        &admin,
        Some(json!({"enabled": false})),
    )
    .await;

    assert_error(
        app.call(Method::GET, "/api/admin/users", key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
}

#[tokio::test]
async fn the_list_filters_by_owner_and_state_and_refuses_bad_input() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let owner = app
        .create_user("vera", "vera-password", &[], json!({}))
        .await;
    let mine = create_key(
        &app,
        &admin,
        json!({"name": "a", "scopes": [], "owner_id": owner.id}),
    )
    .await;
    let other = create_key(&app, &admin, json!({"name": "b", "scopes": []})).await;
    app.call(
        Method::POST,
        &format!(
            "/api/admin/api-keys/{}/disable",
            other["id"].as_str().unwrap()
        ),
        &admin,
        None,
    )
    .await;

    let (mine, other) = (mine["id"].as_str().unwrap(), other["id"].as_str().unwrap());
    for (query, expected) in [
        (format!("owner_id={}", owner.id), [mine]),
        ("enabled=false".to_owned(), [other]),
    ] {
        let page = app
            .get_json(&format!("/api/admin/api-keys?{query}"), &admin)
            .await;
        assert_eq!(item_ids(&page), expected, "{query}");
    }

    for query in ["enabled=maybe", "owner_id=nope", "limit=500"] {
        let response = app
            .call(
                Method::GET,
                &format!("/api/admin/api-keys?{query}"),
                &admin,
                None,
            )
            .await;
        assert_error(response, 400, "INVALID_REQUEST").await;
    }
    for body in [
        json!({"name": "", "scopes": []}),
        json!({"name": "x"}),
        json!({"name": "x", "scopes": ["bad scope"]}),
        json!({"name": "x", "scopes": [], "owner_id": "00000000-0000-0000-0000-000000000000"}),
        json!({"name": "x", "scopes": [], "secret": "mine"}),
    ] {
        let response = app
            .call(Method::POST, "/api/admin/api-keys", &admin, Some(body))
            .await;
        assert_error(response, 400, "INVALID_REQUEST").await;
    }
}

/// Disable and delete hold on every instance the moment they answer.
#[tokio::test]
async fn a_disable_on_one_instance_holds_on_another_at_once() {
    let a = spawn_app().await;
    let (database_url, prefix) = (
        a.services.settings.database_url.clone(),
        a.services.settings.redis_prefix.clone(),
    );
    let b = spawn_app_with(|s| {
        s.database_url = database_url;
        s.redis_prefix = prefix;
    })
    .await;
    let (key, created) = admin_key(&a).await;
    assert_eq!(
        b.call(Method::GET, "/api/admin/users", &key, None)
            .await
            .status(),
        200,
        "B knows the key"
    );

    let admin = a.log_in("admin", ADMIN_PASSWORD).await;
    let admin = admin.access_token.as_str();
    let id = created["id"].as_str().unwrap();
    a.call(
        Method::POST,
        &format!("/api/admin/api-keys/{id}/disable"),
        admin,
        None,
    )
    .await;
    assert_error(
        b.call(Method::GET, "/api/admin/users", &key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;

    a.call(
        Method::POST,
        &format!("/api/admin/api-keys/{id}/enable"),
        admin,
        None,
    )
    .await;
    assert_eq!(
        b.call(Method::GET, "/api/admin/users", &key, None)
            .await
            .status(),
        200
    );
    a.call(
        Method::DELETE,
        &format!("/api/admin/api-keys/{id}"),
        admin,
        None,
    )
    .await;
    assert_error(
        b.call(Method::GET, "/api/admin/users", &key, None).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
}
