use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app};

/// Bodies that are no login request, one row each: what is sent, and the error it gets.
#[tokio::test]
async fn bodies_that_are_no_request_get_their_error() {
    let app = spawn_app().await;
    let too_big = json!({"username": "admin", "password": "x".repeat(70 * 1024)}).to_string();
    let form = format!("username=admin&password={ADMIN_PASSWORD}");
    let json = "application/json";
    let rows: [(&str, &str, u16, &str); 7] = [
        (json, "{", 400, "INVALID_REQUEST"),
        (json, "not json", 400, "INVALID_REQUEST"),
        (json, "[]", 400, "INVALID_REQUEST"),
        (
            json,
            "{\"username\": \"admin\", \"password\": }",
            400,
            "INVALID_REQUEST",
        ),
        (json, "", 400, "INVALID_REQUEST"),
        (json, &too_big, 413, "PAYLOAD_TOO_LARGE"),
        ("text/plain", &form, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ];
    for (content_type, body, status, code) in rows {
        let response = app
            .client
            .post(app.url("/api/login"))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_error(response, status, code).await;
    }
}

#[tokio::test]
async fn missing_unknown_and_mistyped_fields_are_invalid_request() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "admin"}),
        json!({"password": ADMIN_PASSWORD}),
        json!({"username": "admin", "password": ADMIN_PASSWORD, "admin": true}),
        json!({"username": 7, "password": ADMIN_PASSWORD}),
        json!({"username": "admin", "password": ADMIN_PASSWORD, "cookie": "yes"}),
        json!({"username": "admin", "password": ""}),
        json!({"username": "admin", "password": ADMIN_PASSWORD, "client_id": ""}),
    ] {
        let response = app.post_login(&body).await;
        assert_error(response, 400, "INVALID_REQUEST").await;
    }
}

/// A body that is JSON but no request is told which field, and where in the body it is.
#[tokio::test]
async fn a_field_error_names_the_field_and_its_place_in_the_body() {
    let app = spawn_app().await;
    let rows = [
        (
            r#"{"username": "admin"}"#,
            "missing field `password` at line 1 column 21",
        ),
        (
            "{\"username\": \"admin\",\n \"password\": \"x\", \"cookie\": \"yes\"}",
            "invalid type: expected a boolean at line 2 column 33",
        ),
    ];
    for (body, message) in rows {
        let response = app
            .client
            .post(app.url("/api/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "INVALID_REQUEST", "{body}");
        assert_eq!(error["message"], message, "{body}");
    }
}

#[tokio::test]
async fn an_error_message_never_echoes_the_input_value() {
    let app = spawn_app().await;
    let response = app
        .post_login(&json!({"username": "admin", "password": ["s3cret-in-the-wrong-place"]}))
        .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn unknown_routes_are_not_found_and_wrong_methods_not_allowed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NOT_FOUND").await;

    let response = app.client.get(app.url("/api/login")).send().await.unwrap();
    let headers = assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
    assert_eq!(headers["allow"], "POST");

    let response = app
        .client
        .delete(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/nothing-here", "/.well-known/jwks.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        assert_eq!(
            response.headers()["referrer-policy"],
            "no-referrer",
            "{path}"
        );
    }
    let _: Option<Value> = None;
}

#[tokio::test]
async fn a_json_array_is_not_an_object_even_where_serde_would_take_it() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body(format!(r#"["admin", "{ADMIN_PASSWORD}"]"#))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "INVALID_REQUEST").await;
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_error(logout, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn every_oversized_body_is_payload_too_large_in_the_error_format() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let big = json!({"username": "big", "password": "x".repeat(70 * 1024)});
    for path in [
        "/api/admin/users",
        "/api/refresh-token",
        "/api/token/revoke",
        "/api/login",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&admin)
            .json(&big)
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    }
    let _: Option<Value> = None;
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_and_change_nothing() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    for body in [
        r#"{"username":"yael","password":"yael-password","roles":["user"],"roles":["admin"]}"#,
        r#"{"username":"yael","password":"yael-password","claims":{"tier":"a","tier":"b"}}"#,
    ] {
        let response = app
            .client
            .post(app.url("/api/admin/users"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        crate::helpers::assert_error(response, 400, "INVALID_REQUEST").await;
    }
    let login = app
        .client
        .post(app.url("/api/login"))
        .header("content-type", "application/json")
        .body(r#"{"username":"nobody","username":"admin","password":"admin-password-for-tests"}"#)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(login, 400, "INVALID_REQUEST").await;
    let users: serde_json::Value = app
        .call(reqwest::Method::GET, "/api/admin/users", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        users["items"].as_array().unwrap().len(),
        1,
        "nobody was created"
    );
}

#[tokio::test]
async fn api_answers_are_never_cached() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    for path in [
        "/api/me",
        "/api/admin/users",
        "/api/admin/audit",
        "/api/admin/signing-keys",
    ] {
        let response = app.call(reqwest::Method::GET, path, &admin, None).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    // Public documents keep their own policy.
    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        jwks.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;

    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let head = app
        .client
        .head(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], jwks.headers()["etag"]);
    assert_eq!(head.headers()["content-type"], "application/json");
    assert!(head.bytes().await.unwrap().is_empty());

    let me = app
        .client
        .head(app.url("/api/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(me.bytes().await.unwrap().is_empty());
    let anonymous = app.client.head(app.url("/api/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the same refusals as GET");

    let post_only = app.client.head(app.url("/api/login")).send().await.unwrap();
    assert_eq!(post_only.status(), 405);
    assert_eq!(post_only.headers()["allow"], "POST");
}
