//! `POST /oauth/token`: client credentials, refresh and token exchange, in RFC 6749's
//! formats, and discovery that points standard libraries at it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, jwt_part, spawn_app};

/// A registered client: id and, if confidential, secret.
struct Registered {
    id: String,
    secret: Option<String>,
}

impl Registered {
    fn basic(&self) -> Option<(&str, &str)> {
        self.secret.as_deref().map(|s| (self.id.as_str(), s))
    }
}

async fn register(app: &TestApp, admin: &str, body: Value) -> Registered {
    let response = app
        .call(Method::POST, "/api/admin/clients", admin, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    Registered {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
    }
}

/// Asserts an RFC 6749 section 5.2 error and returns its description.
async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    if status == 401 {
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Basic realm="tokenmint""#
        );
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["error", "error_description"]);
    body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_credentials_give_a_client_its_own_token_by_basic_or_post() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    let client = register(
        &app,
        &admin,
        json!({"name": "worker", "tenant": "acme", "type": "confidential",
               "grant_types": ["client_credentials"], "scopes": ["jobs:read", "jobs:write"]}),
    )
    .await;
    let secret = client.secret.clone().unwrap();

    let by_basic = app
        .token_request(&[("grant_type", "client_credentials")], client.basic())
        .await;
    assert_eq!(by_basic.status(), 200);
    assert_eq!(by_basic.headers()["cache-control"], "no-store");
    let body: Value = by_basic.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "jobs:read jobs:write");
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["tenant_id"], "acme");
    assert!(claims.get("sid").is_none() && claims.get("username").is_none());

    let me: Value = app.get_me(token).await.json().await.unwrap();
    assert_eq!(me["sub"], client.id.as_str());
    assert_eq!(me["session_id"], Value::Null);
    let introspected: Value = app.introspect(&admin, token).await.json().await.unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["client_id"], client.id.as_str());
    assert_eq!(introspected["tenant_id"], "acme");

    // client_secret_post, narrowed.
    let by_post: Value = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", &secret),
                ("scope", "jobs:read"),
            ],
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_post["scope"], "jobs:read");

    // A client token is no admin, and revoking it works like any access token.
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", token, None)
            .await
            .status(),
        403
    );
    let revoked = app
        .client
        .post(app.url("/api/token/revoke"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(app.get_me(token).await.status(), 401);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = register(
        &app,
        &admin,
        json!({"name": "worker", "type": "confidential",
               "grant_types": ["client_credentials"], "scopes": ["jobs:read"]}),
    )
    .await;
    let public = register(
        &app,
        &admin,
        json!({"name": "spa", "type": "public", "grant_types": ["refresh_token"]}),
    )
    .await;
    let secret = client.secret.clone().unwrap();
    let cc = [("grant_type", "client_credentials")];

    // invalid_client, 401 with a challenge.
    let no_auth = app.token_request(&cc, None).await;
    assert_oauth_error(no_auth, 401, "invalid_client").await;
    let wrong = app
        .token_request(&cc, Some((&client.id, "tmcs_wrong")))
        .await;
    assert_oauth_error(wrong, 401, "invalid_client").await;
    let unknown = app.token_request(&cc, Some(("tmc_nobody", &secret))).await;
    assert_oauth_error(unknown, 401, "invalid_client").await;
    let confidential_without_secret = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
            ],
            None,
        )
        .await;
    assert_oauth_error(confidential_without_secret, 401, "invalid_client").await;
    let garbage = app
        .client
        .post(app.url("/oauth/token"))
        .header("authorization", "Basic !!!")
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_oauth_error(garbage, 401, "invalid_client").await;

    // invalid_request.
    let two_methods = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
            client.basic(),
        )
        .await;
    assert_oauth_error(two_methods, 400, "invalid_request").await;
    let no_grant = app.token_request(&[], client.basic()).await;
    assert_oauth_error(no_grant, 400, "invalid_request").await;
    let repeated = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "password"),
            ],
            client.basic(),
        )
        .await;
    assert_oauth_error(repeated, 400, "invalid_request").await;
    let json_body = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json_body, 400, "invalid_request").await;
    let no_refresh_token = app
        .token_request(
            &[("grant_type", "refresh_token"), ("client_id", &public.id)],
            None,
        )
        .await;
    assert_oauth_error(no_refresh_token, 400, "invalid_request").await;

    // Grants.
    let password = app
        .token_request(
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", "x"),
            ],
            client.basic(),
        )
        .await;
    assert_oauth_error(password, 400, "unsupported_grant_type").await;
    let not_allowed = app
        .token_request(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &"A".repeat(43)),
            ],
            client.basic(),
        )
        .await;
    assert_oauth_error(not_allowed, 400, "unauthorized_client").await;
    let public_cc = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &public.id),
            ],
            None,
        )
        .await;
    assert_oauth_error(public_cc, 400, "unauthorized_client").await;
    let scope = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "jobs:read admin"),
            ],
            client.basic(),
        )
        .await;
    assert_oauth_error(scope, 400, "invalid_scope").await;
    let bad_refresh = app
        .token_request(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &public.id),
                ("refresh_token", "nope"),
            ],
            None,
        )
        .await;
    assert_oauth_error(bad_refresh, 400, "invalid_grant").await;
}

/// A public client a user logs in through, with refresh at the token endpoint.
async fn login_through(app: &TestApp, client_id: &str) -> Value {
    let response = app
        .post_login(
            &json!({"username": "erin", "password": "erin-password", "client_id": client_id}),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_refresh_grant_is_the_rotation_of_api_refresh_token_for_its_own_client() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("erin", "erin-password", &["read", "write"], json!({}))
        .await;
    let spa = register(
        &app,
        &admin,
        json!({"client_id": "spa", "name": "SPA", "type": "public",
               "grant_types": ["password", "refresh_token"], "scopes": ["read", "write"]}),
    )
    .await;
    let other = register(
        &app,
        &admin,
        json!({"client_id": "other", "name": "Other", "type": "public",
               "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
    )
    .await;
    let login = login_through(&app, &spa.id).await;
    let first = login["refresh_token"].as_str().unwrap();
    let refresh = |client: &str, token: &str| {
        let form = vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("client_id".to_owned(), client.to_owned()),
            ("refresh_token".to_owned(), token.to_owned()),
        ];
        let app = &app;
        async move {
            app.client
                .post(app.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };

    // Another client cannot use it, and its attempt does not spend it.
    app.clock.advance(Duration::from_secs(5));
    assert_oauth_error(refresh(&other.id, first).await, 400, "invalid_grant").await;
    let rotated = refresh(&spa.id, first).await;
    assert_eq!(rotated.status(), 200);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let rotated: Value = rotated.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["scope"], "read write");
    let claims = jwt_part(rotated["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["client_id"], "spa");
    assert_eq!(claims["sid"], login["session_id"]);

    // The same session rotates at /api/refresh-token too (a public client's).
    app.clock.advance(Duration::from_secs(5));
    let third = app.refresh(&second).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A token spent long before the session's latest rotation is reuse: invalid_grant,
    // and the session is over.
    app.clock.advance(Duration::from_secs(600));
    let fourth: Value = refresh(&spa.id, &third).await.json().await.unwrap();
    let fourth = fourth["refresh_token"].as_str().unwrap();
    let reused = assert_oauth_error(refresh(&spa.id, first).await, 400, "invalid_grant").await;
    assert!(reused.contains("already used"), "{reused}");
    assert_oauth_error(refresh(&spa.id, fourth).await, 400, "invalid_grant").await;
    let access = rotated["access_token"].as_str().unwrap();
    assert_eq!(app.get_me(access).await.status(), 401);
}

#[tokio::test]
async fn a_confidential_clients_session_rotates_only_with_its_secret() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("erin", "erin-password", &["read"], json!({}))
        .await;
    let backend = register(
        &app,
        &admin,
        json!({"client_id": "bff", "name": "Backend for frontend", "type": "confidential",
               "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
    )
    .await;
    // A confidential client names itself at login with its secret (a backend for
    // frontend logging its users in); without it, the login is refused.
    let without = app
        .post_login(&json!({"username": "erin", "password": "erin-password", "client_id": "bff"}))
        .await;
    assert_eq!(without.status(), 401);
    let login: Value = app
        .post_login(
            &json!({"username": "erin", "password": "erin-password", "client_id": "bff",
                             "client_secret": backend.secret.as_deref().unwrap()}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = login["refresh_token"].as_str().unwrap();

    // Without the secret, anywhere: refused, and not spent.
    let first_party = app.post_refresh(token).await;
    assert_eq!(first_party.status(), 401);
    let unauthenticated = app
        .token_request(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "bff"),
                ("refresh_token", token),
            ],
            None,
        )
        .await;
    assert_oauth_error(unauthenticated, 401, "invalid_client").await;

    let rotated = app
        .token_request(
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
            backend.basic(),
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let narrowed = app
        .token_request(
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    rotated.json::<Value>().await.unwrap()["refresh_token"]
                        .as_str()
                        .unwrap(),
                ),
                ("scope", "read write"),
            ],
            backend.basic(),
        )
        .await;
    assert_oauth_error(narrowed, 400, "invalid_scope").await;
}

/// A fresh app where erin (scope `read`) has logged in through the public client `spa`.
async fn logged_in_through_a_public_client() -> (TestApp, Value) {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("erin", "erin-password", &["read"], json!({}))
        .await;
    register(
        &app,
        &admin,
        json!({"client_id": "spa", "name": "SPA", "type": "public",
               "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
    )
    .await;
    let login = login_through(&app, "spa").await;
    (app, login)
}

#[tokio::test]
async fn concurrent_refreshes_at_the_token_endpoint_converge_on_one_successor() {
    let (app, login) = logged_in_through_a_public_client().await;
    let token = login["refresh_token"].as_str().unwrap().to_owned();
    let burst = (0..24).map(|_| {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", "spa".to_owned()),
            ("refresh_token", token.clone()),
        ];
        let request = app.client.post(app.url("/oauth/token")).form(&form);
        async move { request.send().await.unwrap() }
    });
    let answers = futures_util::future::join_all(burst).await;
    let mut successors = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        successors.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    successors.sort();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one session, one current token");
    assert_eq!(app.refresh(&successors[0]).await["scope"], "read");
}

#[tokio::test]
async fn a_client_sessions_refreshes_follow_the_same_rules_and_keep_one_row() {
    // A client's session is decided the general way (not by PostgreSQL's grouped
    // statement): the same rules, the same single row.
    let (app, login) = logged_in_through_a_public_client().await;
    let mut token = login["refresh_token"].as_str().unwrap().to_owned();
    let rows = app.row_counts().await;
    for round in 1..=4 {
        app.clock.advance(Duration::from_secs(6));
        let previous = token.clone();
        token = app.refresh(&previous).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(token, previous, "round {round}: rotated");
        // Within the leeway the predecessor still leads to the current token.
        assert_eq!(
            app.refresh(&previous).await["refresh_token"],
            token.as_str()
        );
        assert_eq!(app.row_counts().await, rows, "round {round}: no new rows");
    }
    let spent = token.clone();
    app.clock.advance(Duration::from_secs(6));
    token = app.refresh(&spent).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::from_secs(6));
    crate::helpers::assert_error(app.post_refresh(&spent).await, 401, "REFRESH_TOKEN_REUSED").await;
    crate::helpers::assert_error(app.post_refresh(&token).await, 401, "TOKEN_REVOKED").await;
}

#[tokio::test]
async fn token_exchange_gives_a_short_lived_token_for_an_allowed_audience() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user(
        "erin",
        "erin-password",
        &["read", "write"],
        json!({"plan": "pro"}),
    )
    .await;
    let gateway = register(
        &app,
        &admin,
        json!({"client_id": "gateway", "name": "API gateway", "type": "confidential",
               "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
               "scopes": ["read", "write"], "audiences": ["https://orders.internal"]}),
    )
    .await;
    let user = app.log_in("erin", "erin-password").await;
    let subject = user.access_token.as_str();
    let exchange = |audience: &str, scope: Option<&str>, subject: &str| {
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("subject_token", subject.to_owned()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            ),
            ("audience", audience.to_owned()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope.to_owned()));
        }
        let request = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(&gateway.id, gateway.secret.as_ref())
            .form(&form);
        async move { request.send().await.unwrap() }
    };

    let answer = exchange("https://orders.internal", Some("read"), subject).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    assert!(body["expires_in"].as_i64().unwrap() <= 900);
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    let subject_claims = jwt_part(subject, 1);
    assert_eq!(claims["aud"], "https://orders.internal");
    assert_eq!(claims["sub"], subject_claims["sub"]);
    assert_eq!(claims["act"], json!({"sub": "gateway"}));
    assert_eq!(claims["tenant_id"], "default");
    assert_eq!(claims["client_id"], "gateway");
    assert!(claims["exp"].as_i64() <= subject_claims["exp"].as_i64());
    // Made for another audience: this issuer's own endpoints do not take it.
    assert_eq!(
        app.get_me(body["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );

    assert_oauth_error(
        exchange("https://billing.internal", None, subject).await,
        400,
        "invalid_target",
    )
    .await;
    assert_oauth_error(
        exchange("https://orders.internal", Some("read admin"), subject).await,
        400,
        "invalid_scope",
    )
    .await;
    assert_oauth_error(
        exchange("https://orders.internal", None, "not-a-token").await,
        400,
        "invalid_grant",
    )
    .await;
    // A revoked subject token exchanges for nothing.
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .bearer_auth(subject)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_oauth_error(
        exchange("https://orders.internal", None, subject).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn discovery_points_oauth_libraries_at_the_token_endpoint() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    register(
        &app,
        &admin,
        json!({"name": "w", "type": "confidential", "grant_types": ["client_credentials"],
               "scopes": ["jobs:read", "billing:read"]}),
    )
    .await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["issuer"], "http://tokenmint.test");
        assert_eq!(doc["token_endpoint"], "http://tokenmint.test/oauth/token");
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "password",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["billing:read", "jobs:read"])
        );
        assert_eq!(
            doc["jwks_uri"],
            "http://tokenmint.test/.well-known/jwks.json"
        );
    }
}
