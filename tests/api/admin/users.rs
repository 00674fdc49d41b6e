use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, spawn_app};

async fn create(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/api/admin/users", admin, Some(body))
        .await
}

async fn create_ok(app: &TestApp, admin: &str, username: &str, password: &str) -> Value {
    let response = create(
        app,
        admin,
        json!({"username": username, "password": password, "scopes": ["read"]}),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_admin_creates_gets_and_changes_a_user() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let response = create(
        &app,
        &admin,
        json!({"username": "Lena", "password": "lena-password", "roles": ["ops"], "scopes": ["read", "write"],
               "claims": {"haip": {"max_runs": 10}}}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("argon2") && !text.contains("hash"),
        "never a hash: {text}"
    );
    let user: Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "claims",
            "created_at",
            "enabled",
            "id",
            "roles",
            "scopes",
            "tenant",
            "updated_at",
            "username"
        ]
    );
    assert_eq!(user["username"], "Lena");
    assert_eq!(user["enabled"], true);
    let id = user["id"].as_str().unwrap();

    let got = app
        .get_json(&format!("/api/admin/users/{id}"), &admin)
        .await;
    assert_eq!(got, user);

    let login = app.log_in("lena", "lena-password").await;
    assert_eq!(login.scope, "read write");

    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            &admin,
            Some(json!({"scopes": ["read"], "claims": {"tier": "gold"}})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["scopes"], json!(["read"]));
    assert_eq!(patched["claims"], json!({"tier": "gold"}));
    assert_eq!(patched["roles"], json!(["ops"]), "absent fields stay");

    let relogin = app.log_in("lena", "lena-password").await;
    let me: Value = app
        .get_me(relogin.access_token.as_str())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["claims"], json!({"tier": "gold"}));
    assert_eq!(me["scope"], "read");
    // A scope change ends the sessions that were granted the old scopes.
    assert_error(
        app.get_me(login.access_token.as_str()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    create_ok(&app, &admin, "mike", "mike-password").await;
    let again = create(
        &app,
        &admin,
        json!({"username": "MIKE", "password": "other-password"}),
    )
    .await;
    assert_error(again, 409, "CONFLICT").await;
}

#[tokio::test]
async fn invalid_users_are_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for body in [
        json!({"username": "has space", "password": "long-enough"}),
        json!({"username": "nina", "password": "short"}),
        json!({"username": "nina", "password": "long-enough", "roles": ["bad role"]}),
        json!({"username": "nina", "password": "long-enough", "claims": {"sub": "x"}}),
        json!({"username": "nina", "password": "long-enough", "claims": [1]}),
        json!({"username": "nina", "password": "long-enough", "is_admin": true}),
        json!({"username": "nina"}),
    ] {
        assert_error(
            create(&app, &admin, body.clone()).await,
            400,
            "INVALID_REQUEST",
        )
        .await;
    }
    let list = app.get_json("/api/admin/users", &admin).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only the admin: {list}"
    );
}

#[tokio::test]
async fn disabling_a_user_revokes_their_sessions_and_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = create_ok(&app, &admin, "olga", "olga-password").await;
    let login = app.log_in("olga", "olga-password").await;
    let path = format!("/api/admin/users/{}", user["id"].as_str().unwrap());

    let disabled = app
        .call(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status(), 200);

    assert_error(
        app.get_me(login.access_token.as_str()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(
        app.post_refresh(login.refresh()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    let response = app
        .post_login(&json!({"username": "olga", "password": "olga-password"}))
        .await;
    assert_error(response, 401, "AUTHENTICATION_FAILED").await;

    app.call(Method::PATCH, &path, &admin, Some(json!({"enabled": true})))
        .await;
    let back = app.log_in("olga", "olga-password").await;
    assert_eq!(app.get_me(back.access_token.as_str()).await.status(), 200);
}

#[tokio::test]
async fn a_password_change_revokes_sessions_and_only_the_new_password_works() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = create_ok(&app, &admin, "pete", "pete-password").await;
    let login = app.log_in("pete", "pete-password").await;
    let path = format!("/api/admin/users/{}", user["id"].as_str().unwrap());

    app.call(
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"password": "pete-new-password"})),
    )
    .await;

    assert_error(
        app.get_me(login.access_token.as_str()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    let old = app
        .post_login(&json!({"username": "pete", "password": "pete-password"}))
        .await;
    assert_error(old, 401, "AUTHENTICATION_FAILED").await;
    app.log_in("pete", "pete-new-password").await;
}

#[tokio::test]
async fn deleting_a_user_revokes_everything() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = create_ok(&app, &admin, "quinn", "quinn-password").await;
    let login = app.log_in("quinn", "quinn-password").await;
    let path = format!("/api/admin/users/{}", user["id"].as_str().unwrap());

    assert_eq!(
        app.call(Method::DELETE, &path, &admin, None).await.status(),
        204
    );

    assert_error(
        app.get_me(login.access_token.as_str()).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    assert_error(
        app.post_refresh(login.refresh()).await,
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
}

#[tokio::test]
async fn logout_everywhere_cuts_off_old_tokens_but_not_a_login_right_after() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = create_ok(&app, &admin, "rosa", "rosa-password").await;
    let first = app.log_in("rosa", "rosa-password").await;
    let second = app.log_in("rosa", "rosa-password").await;

    let path = format!(
        "/api/admin/users/{}/revoke-sessions",
        user["id"].as_str().unwrap()
    );
    assert_eq!(
        app.call(Method::POST, &path, &admin, None).await.status(),
        204
    );

    for login in [&first, &second] {
        assert_error(
            app.get_me(login.access_token.as_str()).await,
            401,
            "TOKEN_REVOKED",
        )
        .await;
        assert!(!app.is_active(login.access_token.as_str()).await);
        assert_error(
            app.post_refresh(login.refresh()).await,
            401,
            "TOKEN_REVOKED",
        )
        .await;
    }
    let fresh = app.log_in("rosa", "rosa-password").await;
    assert_eq!(
        app.get_me(fresh.access_token.as_str()).await.status(),
        200,
        "same second, new session"
    );
}

#[tokio::test]
async fn pagination_walks_every_user_exactly_once_while_users_are_added() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut expected: HashSet<String> = HashSet::new();
    let list = app.get_json("/api/admin/users", &admin).await;
    expected.insert(list["items"][0]["id"].as_str().unwrap().to_owned());
    for i in 0..7 {
        let user = create_ok(&app, &admin, &format!("page{i}"), "page-password").await;
        expected.insert(user["id"].as_str().unwrap().to_owned());
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/users?limit=3&cursor={c}"),
            None => "/api/admin/users?limit=3".to_owned(),
        };
        let page = app.get_json(&path, &admin).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        create_ok(&app, &admin, &format!("late{added}"), "late-password").await;
        added += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(added < 20, "the walk ends");
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no user twice");
    assert!(
        expected.is_subset(&unique),
        "every user that existed is seen"
    );
}

#[tokio::test]
async fn bad_page_parameters_and_ids_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for query in ["limit=0", "limit=201", "limit=x", "cursor=nonsense"] {
        let response = app
            .call(
                Method::GET,
                &format!("/api/admin/users?{query}"),
                &admin,
                None,
            )
            .await;
        assert_error(response, 400, "INVALID_REQUEST").await;
    }
    for id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        assert_error(
            app.call(Method::GET, &format!("/api/admin/users/{id}"), &admin, None)
                .await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
}

#[tokio::test]
async fn a_non_admin_gets_403_everywhere_under_admin() {
    let app = spawn_app().await;
    app.create_user("sam", "sam-password", &[], json!({})).await;
    let user = app.log_in("sam", "sam-password").await;
    let token = user.access_token.as_str();
    let id = "00000000-0000-0000-0000-000000000000";
    let calls = [
        (Method::POST, "/api/admin/users".to_owned()),
        (Method::GET, "/api/admin/users".to_owned()),
        (Method::GET, format!("/api/admin/users/{id}")),
        (Method::PATCH, format!("/api/admin/users/{id}")),
        (Method::DELETE, format!("/api/admin/users/{id}")),
        (
            Method::POST,
            format!("/api/admin/users/{id}/revoke-sessions"),
        ),
        (Method::POST, "/api/admin/api-keys".to_owned()),
        (Method::GET, "/api/admin/api-keys".to_owned()),
        (Method::GET, format!("/api/admin/api-keys/{id}")),
        (Method::POST, format!("/api/admin/api-keys/{id}/disable")),
        (Method::POST, format!("/api/admin/api-keys/{id}/enable")),
        (Method::DELETE, format!("/api/admin/api-keys/{id}")),
        (Method::GET, "/api/admin/audit".to_owned()),
        (Method::GET, "/api/admin/signing-keys".to_owned()),
        (Method::POST, "/api/admin/signing-keys/rotate".to_owned()),
    ];
    for (method, path) in calls {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        let response = app.call(method.clone(), &path, token, body).await;
        assert_eq!(response.status(), 403, "{method} {path}");
        let anonymous = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{method} {path}");
    }
    let _ = ADMIN_PASSWORD;
}
