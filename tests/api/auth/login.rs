use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ADMIN_PASSWORD, assert_error, jwt_part, spawn_app};

#[tokio::test]
async fn login_returns_a_bearer_token_under_both_names() {
    let app = spawn_app().await;

    let response = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(body["token"], token);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["scope"], "admin",
        "the bootstrap admin holds the admin scope"
    );
    assert!(Uuid::parse_str(body["session_id"].as_str().unwrap()).is_ok());
    assert_eq!(token.split('.').count(), 3);
}

#[tokio::test]
async fn the_access_token_follows_rfc_9068_with_custom_claims_merged() {
    let app = spawn_app().await;
    let user = app
        .create_user(
            "Carol",
            "carol-password",
            &["read", "write"],
            json!({"haip": {"channels": ["USER", "AGENT"], "max_runs": 10}}),
        )
        .await;
    // The admin API refuses registered names among custom claims; a row written some other
    // way (an older release, a hand edit) must still never override them in a token.
    let id = user.id.to_string();
    app.services
        .db
        .run(move |c| -> Result<_, tokenmint::store::StoreError> {
            use diesel::prelude::*;
            use tokenmint::store::schema::users;
            let claims = r#"{"haip":{"channels":["USER","AGENT"],"max_runs":10},"sub":"forged","iss":"evil"}"#;
            Ok(diesel::update(users::table.find(id))
                .set(users::claims.eq(claims))
                .execute(c)?)
        })
        .await
        .unwrap();

    app.register_login_client("web-app", &["read", "write"])
        .await;
    let body = app
        .post_login(
            &json!({"username": "carol", "password": "carol-password", "client_id": "web-app"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();

    let header = jwt_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], app.current_kid().as_str());
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], "http://tokenmint.test");
    assert_eq!(
        claims["sub"],
        user.id.to_string(),
        "a custom claim never overrides sub"
    );
    assert_eq!(claims["aud"], "tokenmint");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert!(Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    assert_eq!(claims["sid"], body["session_id"]);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(claims["client_id"], "web-app");
    assert_eq!(claims["username"], "Carol");
    assert_eq!(
        claims["haip"],
        json!({"channels": ["USER", "AGENT"], "max_runs": 10})
    );
}

#[tokio::test]
async fn each_login_gets_its_own_token_id_and_session() {
    let app = spawn_app().await;
    let first = app.login("admin", ADMIN_PASSWORD).await;
    let second = app.login("admin", ADMIN_PASSWORD).await;
    assert_ne!(first["session_id"], second["session_id"]);
    let jti = |b: &Value| jwt_part(b["access_token"].as_str().unwrap(), 1)["jti"].clone();
    assert_ne!(jti(&first), jti(&second));
}

#[tokio::test]
async fn usernames_are_case_insensitive() {
    let app = spawn_app().await;
    app.login("ADMIN", ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn a_requested_scope_narrows_the_token() {
    let app = spawn_app().await;
    app.create_user("dave", "dave-password", &["read", "write"], json!({}))
        .await;

    let body = app
        .post_login(&json!({"username": "dave", "password": "dave-password", "scope": "read"}))
        .await
        .json::<Value>()
        .await
        .unwrap();

    assert_eq!(body["scope"], "read");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["scope"],
        "read"
    );
}

#[tokio::test]
async fn a_scope_the_user_lacks_is_refused() {
    let app = spawn_app().await;
    app.create_user("erin", "erin-password", &["read"], json!({}))
        .await;

    let response = app
        .post_login(
            &json!({"username": "erin", "password": "erin-password", "scope": "read admin"}),
        )
        .await;

    assert_error(response, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_get_the_same_answer() {
    let app = spawn_app().await;
    let user = app
        .create_user("frank", "frank-password", &[], json!({}))
        .await;
    let id = user.id.to_string();
    app.services
        .db
        .run(move |c| -> Result<_, tokenmint::store::StoreError> {
            tokenmint::store::users::set_enabled(c, &id, false, chrono::NaiveDateTime::default())
        })
        .await
        .unwrap();

    let mut bodies = Vec::new();
    for (username, password) in [
        ("admin", "wrong-password"),
        ("nobody", "whatever-pw"),
        ("frank", "frank-password"),
    ] {
        let response = app
            .post_login(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(response.status(), 401, "{username}");
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "a password failure is no bearer challenge"
        );
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!(
        serde_json::from_str::<Value>(&bodies[0]).unwrap(),
        json!({"error": "AUTHENTICATION_FAILED", "message": "invalid username or password"})
    );
}

#[tokio::test]
async fn an_invalid_username_is_an_ordinary_failed_login() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "no spaces allowed", "password": "x"}))
        .await;
    assert_error(response, 401, "AUTHENTICATION_FAILED").await;
}
