use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app};

#[tokio::test]
async fn revoking_an_access_token_makes_it_fail_everywhere() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let access = login.access_token.as_str();

    let response = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": access, "token_type_hint": "access_token"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    let headers = assert_error(app.get_me(access).await, 401, "TOKEN_REVOKED").await;
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert!(!app.is_active(access).await);
    // The session itself lives on.
    app.refresh(login.refresh()).await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session_with_a_form_body() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let refresh = login.refresh();

    let response = app
        .client
        .post(app.url("/api/token/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={refresh}&token_type_hint=refresh_token"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_error(app.post_refresh(refresh).await, 401, "TOKEN_REVOKED").await;
    assert!(!app.is_active(login.access_token.as_str()).await);
}

#[tokio::test]
async fn revoking_an_unknown_token_is_200_and_a_missing_one_400() {
    let app = spawn_app().await;
    for token in ["C".repeat(43), "not-a-token".to_owned(), "a.b.c".to_owned()] {
        let response = app
            .client
            .post(app.url("/api/token/revoke"))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let missing = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(missing, 400, "INVALID_REQUEST").await;
    let bad_hint = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": "x", "token_type_hint": "id_token"}))
        .send()
        .await
        .unwrap();
    assert_error(bad_hint, 400, "INVALID_REQUEST").await;
    let xml = app
        .client
        .post(app.url("/api/token/revoke"))
        .header("content-type", "application/xml")
        .body("<token/>")
        .send()
        .await
        .unwrap();
    assert_error(xml, 415, "UNSUPPORTED_MEDIA_TYPE").await;
}

#[tokio::test]
async fn introspection_describes_an_active_access_token() {
    let app = spawn_app().await;
    app.create_user("ivan", "ivan-password", &["read"], json!({}))
        .await;
    app.register_login_client("cli", &["read"]).await;
    let user = app
        .post_login(&json!({"username": "ivan", "password": "ivan-password", "client_id": "cli"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let token = user["access_token"].as_str().unwrap();
    let admin = app.admin_token().await;

    let form = app
        .client
        .post(app.url("/api/token/introspect"))
        .bearer_auth(&admin)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();

    assert_eq!(form.status(), 200);
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(body["username"], "ivan");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["client_id"], "cli");
    assert_eq!(body["sid"], user["session_id"]);
    assert_eq!(body["iss"], "http://tokenmint.test");
    assert_eq!(body["aud"], "tokenmint");
    for field in ["sub", "jti", "exp", "iat"] {
        assert!(!body[field].is_null(), "{field}");
    }
}

#[tokio::test]
async fn introspection_is_inactive_for_expired_forged_and_refresh_tokens() {
    let app = spawn_app().await;
    let login = app.log_in("admin", ADMIN_PASSWORD).await;
    let token = login.access_token.clone();
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");

    for inactive in [forged.as_str(), login.refresh(), "garbage"] {
        let response = app.introspect(&token, inactive).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"active": false}),
            "{inactive}"
        );
    }

    let long_lived_admin = app.admin_token().await;
    app.clock.advance(Duration::from_secs(600));
    let later_admin = app.admin_token().await;
    app.clock.advance(Duration::from_secs(400));
    let expired = app.introspect(&later_admin, &long_lived_admin).await;
    assert_eq!(
        expired.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
}

#[tokio::test]
async fn introspection_needs_an_admin_caller() {
    let app = spawn_app().await;
    app.create_user("judy", "judy-password", &[], json!({}))
        .await;
    let user = app.log_in("judy", "judy-password").await;
    let token = user.access_token.as_str();

    assert_error(
        app.introspect(token, token).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    let anonymous = app
        .client
        .post(app.url("/api/token/introspect"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "AUTHENTICATION_FAILED").await;
}
