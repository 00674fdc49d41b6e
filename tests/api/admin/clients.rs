//! Registered clients: the admin API, secrets shown once and kept as hashes, and the
//! `client_id` a login names.

use diesel::RunQueryDsl as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, jwt_part, spawn_app};

async fn register(app: &TestApp, admin: &str, body: Value) -> Value {
    let response = app
        .call(Method::POST, "/api/admin/clients", admin, Some(body))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.token_request(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await
}

#[tokio::test]
async fn a_confidential_client_gets_its_secret_once_and_admins_manage_it() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let created = register(
        &app,
        &admin,
        json!({"name": "Billing backend", "type": "confidential",
               "grant_types": ["client_credentials"], "scopes": ["billing:read", "billing:write"]}),
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tmc_") && id.len() == 26, "{id}");
    assert!(
        secret.starts_with("tmcs_") && secret.len() == 48,
        "{secret}"
    );
    let mut fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "audiences",
            "client_id",
            "client_secret",
            "created_at",
            "enabled",
            "grant_types",
            "name",
            "scopes",
            "tenant",
            "type",
            "updated_at"
        ]
    );
    assert_eq!(created["tenant"], "default");
    assert_eq!(created["type"], "confidential");
    assert_eq!(created["audiences"], json!([]));

    // Never again: not by id, not in the list, not in the database.
    let got = app
        .call(
            Method::GET,
            &format!("/api/admin/clients/{id}"),
            &admin,
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !got.contains(&secret) && !got.contains("client_secret"),
        "{got}"
    );
    let listed = app
        .call(Method::GET, "/api/admin/clients", &admin, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(&id) && !listed.contains(&secret));
    let stored = app
        .services
        .db
        .run(|c| -> Result<Vec<String>, tokenmint::store::StoreError> {
            #[derive(diesel::QueryableByName)]
            struct Hash {
                #[diesel(sql_type = diesel::sql_types::Text)]
                secret_hash: String,
            }
            Ok(
                diesel::sql_query("SELECT secret_hash FROM clients WHERE secret_hash IS NOT NULL")
                    .load::<Hash>(c)?
                    .into_iter()
                    .map(|h| h.secret_hash)
                    .collect(),
            )
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&secret[5..]), "a hash, not the secret");

    assert_eq!(client_credentials(&app, &id, &secret).await.status(), 200);

    let patched: Value = app
        .call(
            Method::PATCH,
            &format!("/api/admin/clients/{id}"),
            &admin,
            Some(json!({"name": "Billing", "scopes": ["billing:read"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["name"], "Billing");
    assert_eq!(patched["scopes"], json!(["billing:read"]));
    let narrowed: Value = client_credentials(&app, &id, &secret)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrowed["scope"], "billing:read");

    let disabled = app
        .call(
            Method::POST,
            &format!("/api/admin/clients/{id}/disable"),
            &admin,
            None,
        )
        .await;
    assert_eq!(disabled.json::<Value>().await.unwrap()["enabled"], false);
    let refused = client_credentials(&app, &id, &secret).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let enabled = app
        .call(
            Method::POST,
            &format!("/api/admin/clients/{id}/enable"),
            &admin,
            None,
        )
        .await;
    assert_eq!(enabled.json::<Value>().await.unwrap()["enabled"], true);
    assert_eq!(client_credentials(&app, &id, &secret).await.status(), 200);

    // A new secret: the old one stops at once.
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/admin/clients/{id}/rotate-secret"),
            &admin,
            None,
        )
        .await;
    assert_eq!(rotated.status(), 201);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let new_secret = rotated.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(client_credentials(&app, &id, &secret).await.status(), 401);
    assert_eq!(
        client_credentials(&app, &id, &new_secret).await.status(),
        200
    );

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/admin/clients/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_error(
        app.call(
            Method::GET,
            &format!("/api/admin/clients/{id}"),
            &admin,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        client_credentials(&app, &id, &new_secret).await.status(),
        401
    );
}

#[tokio::test]
async fn client_registrations_that_make_no_sense_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    register(
        &app,
        &admin,
        json!({"client_id": "spa", "name": "SPA", "type": "public", "grant_types": ["password", "refresh_token"]}),
    )
    .await;
    let cases = [
        (
            json!({"name": "x", "type": "public", "grant_types": ["client_credentials"]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "secretive", "grant_types": []}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": ["implicit"]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": ["password", "password"]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": [], "client_id": "has space"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "", "type": "public", "grant_types": []}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": [], "audiences": ["a b"]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": [], "client_secret": "mine"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"name": "again", "type": "public", "grant_types": [], "client_id": "spa"}),
            409,
            "CONFLICT",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": [], "tenant": "nowhere"}),
            404,
            "NOT_FOUND",
        ),
    ];
    for (body, status, code) in cases {
        let answer = app
            .call(
                Method::POST,
                "/api/admin/clients",
                &admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status(), status, "{body}");
        assert_eq!(
            answer.json::<Value>().await.unwrap()["error"],
            code,
            "{body}"
        );
    }
    let rotate_public = app
        .call(
            Method::POST,
            "/api/admin/clients/spa/rotate-secret",
            &admin,
            None,
        )
        .await;
    assert_error(rotate_public, 409, "CONFLICT").await;
    let widen = app
        .call(
            Method::PATCH,
            "/api/admin/clients/spa",
            &admin,
            Some(json!({"grant_types": ["client_credentials"]})),
        )
        .await;
    assert_error(widen, 400, "INVALID_REQUEST").await;

    let page = app.get_json("/api/admin/clients", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "SPA");
    assert_eq!(
        page["items"][0]["grant_types"],
        json!(["password", "refresh_token"])
    );
    // Ordinary users are not admins.
    app.create_user("mallory", "mallory-password", &[], json!({}))
        .await;
    let user = app.log_in("mallory", "mallory-password").await.access_token;
    assert_error(
        app.call(Method::GET, "/api/admin/clients", &user, None)
            .await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
}

#[tokio::test]
async fn a_login_names_only_an_enabled_password_client_of_its_tenant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user(
        "dora",
        "dora-password",
        &["read", "write", "profile"],
        json!({}),
    )
    .await;
    app.create_tenant(&admin, "acme").await;
    register(
        &app,
        &admin,
        json!({"client_id": "web", "name": "Web", "type": "public",
               "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
    )
    .await;
    register(
        &app,
        &admin,
        json!({"client_id": "no-password", "name": "Backend", "type": "confidential",
               "grant_types": ["client_credentials"], "scopes": ["read"]}),
    )
    .await;
    register(
        &app,
        &admin,
        json!({"client_id": "acme-web", "name": "Acme web", "tenant": "acme", "type": "public",
               "grant_types": ["password"], "scopes": ["read"]}),
    )
    .await;
    let login = |client_id: &'static str| {
        let app = &app;
        async move {
            app.post_login(
                &json!({"username": "dora", "password": "dora-password", "client_id": client_id}),
            )
            .await
        }
    };

    let ok = login("web").await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["scope"], "read", "narrowed to the client's scopes");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["tenant_id"], "default");

    for refused in ["unknown", "no-password", "acme-web"] {
        assert_error(login(refused).await, 401, "AUTHENTICATION_FAILED").await;
    }
    app.call(Method::POST, "/api/admin/clients/web/disable", &admin, None)
        .await;
    assert_error(login("web").await, 401, "AUTHENTICATION_FAILED").await;
    // The refresh token of a disabled client's session stops rotating too: the
    // contract's answer for a disabled client's session is TOKEN_REVOKED.
    assert_error(
        app.post_refresh(body["refresh_token"].as_str().unwrap())
            .await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    // Without client_id a login is first-party, with all the user's scopes.
    let first_party = app.log_in("dora", "dora-password").await;
    assert_eq!(first_party.scope, "read write profile");
    assert!(
        jwt_part(first_party.access_token.as_str(), 1)
            .get("client_id")
            .is_none()
    );
}

/// Logins through a client race its disable, round after round: after each disable
/// answered, every token a login got until then is refused (the login either saw the
/// client disabled, or the disable ended its session), never left working. The client is
/// enabled again for the next round.
#[tokio::test]
async fn logins_racing_a_client_disable_get_nothing_that_outlives_it() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Logins refused while the client is disabled count as failures: not what this test
    // is about, so the brute-force limits are out of the way.
    let app = crate::helpers::spawn_app_with(|s| {
        s.login_max_failures = 1_000_000;
        s.login_max_failures_per_ip = 1_000_000;
    })
    .await;
    let admin = app.admin_token().await;
    register(
        &app,
        &admin,
        json!({"client_id": "web", "name": "Web", "type": "public",
               "grant_types": ["password", "refresh_token"], "scopes": ["read"]}),
    )
    .await;
    for n in 0..4 {
        app.create_user(&format!("racer{n}"), "racer-password", &["read"], json!({}))
            .await;
    }
    let issued: Mutex<Vec<Value>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    // Four streams of logins through the client until the rounds are over; refusals
    // while it is disabled are expected.
    let streams = (0..4).map(|n| {
        let (app, issued, done) = (&app, &issued, &done);
        async move {
            while !done.load(Ordering::SeqCst) {
                let answer = app
                    .post_login(&json!({"username": format!("racer{n}"),
                                        "password": "racer-password", "client_id": "web"}))
                    .await;
                if answer.status() == 200 {
                    let body = answer.json::<Value>().await.unwrap();
                    issued.lock().unwrap().push(body);
                } else {
                    assert_error(answer, 401, "AUTHENTICATION_FAILED").await;
                }
            }
        }
    });
    let rounds = async {
        let mut checked = 0;
        for _ in 0..20 {
            while issued.lock().unwrap().len() < 4 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let disabled = app
                .call(Method::POST, "/api/admin/clients/web/disable", &admin, None)
                .await;
            assert_eq!(disabled.status(), 200);
            let round: Vec<Value> = std::mem::take(&mut *issued.lock().unwrap());
            for body in &round {
                let token = body["access_token"].as_str().unwrap();
                assert_error(app.get_me(token).await, 401, "TOKEN_REVOKED").await;
            }
            checked += round.len();
            let enabled = app
                .call(Method::POST, "/api/admin/clients/web/enable", &admin, None)
                .await;
            assert_eq!(enabled.status(), 200);
        }
        done.store(true, Ordering::SeqCst);
        checked
    };
    let (_, checked) = tokio::join!(futures_util::future::join_all(streams), rounds);
    assert!(checked >= 80, "{checked} logins raced the disables");
}
