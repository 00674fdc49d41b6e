//! The signing-key lifecycle through the server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokenmint::keys::SigningAlg;

use crate::helpers::{ADMIN_PASSWORD, TestApp, assert_error, jwt_part, spawn_app, spawn_app_with};
use crate::oauth::jwks::{fetch_jwks, jwks_after_change, jwks_etag, verify_with_jwks};

async fn rotate(app: &TestApp, body: Option<Value>) -> reqwest::Response {
    let admin = app.admin_token().await;
    let request = app
        .client
        .post(app.url("/api/admin/signing-keys/rotate"))
        .bearer_auth(admin);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn list(app: &TestApp) -> Vec<Value> {
    let admin = app.admin_token().await;
    let response = app
        .client
        .get(app.url("/api/admin/signing-keys"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The stored (encrypted) private part of a key, if it is still kept.
pub(crate) async fn private_part(app: &TestApp, kid: &str) -> Option<Vec<u8>> {
    use diesel::prelude::*;
    use tokenmint::store::schema::signing_keys;
    let kid = kid.to_owned();
    app.services
        .db
        .run(move |conn| -> Result<_, tokenmint::store::StoreError> {
            Ok(signing_keys::table
                .find(kid)
                .select(signing_keys::private_key)
                .first(conn)?)
        })
        .await
        .unwrap()
}

fn with_status<'a>(keys: &'a [Value], status: &str) -> Vec<&'a Value> {
    keys.iter().filter(|k| k["status"] == status).collect()
}

#[tokio::test]
async fn a_rotation_never_skips_the_pre_publication_of_the_next_key() {
    let app = spawn_app().await;
    let before = list(&app).await;
    assert_eq!(with_status(&before, "current").len(), 1);
    assert_eq!(with_status(&before, "next").len(), 1);

    let early = rotate(&app, None).await;
    let headers = assert_error(early, 409, "CONFLICT").await;
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((295..=300).contains(&wait), "{wait}");

    app.clock.advance(Duration::from_secs(301));
    let response = rotate(&app, None).await;
    assert_eq!(response.status(), 200);
    let after: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        with_status(&after, "current")[0]["kid"],
        with_status(&before, "next")[0]["kid"]
    );
    assert_eq!(
        with_status(&after, "retiring")[0]["kid"],
        with_status(&before, "current")[0]["kid"]
    );
    assert_eq!(with_status(&after, "next").len(), 1);
    assert_ne!(
        with_status(&after, "next")[0]["kid"],
        with_status(&before, "next")[0]["kid"]
    );
    assert!(with_status(&after, "current")[0]["activated_at"].is_string());
}

async fn tokens_survive_a_rotation(alg: SigningAlg, name: &str) {
    let app = spawn_app_with(|s| s.signing_alg = alg).await;
    let before = app.admin_token().await;
    assert_eq!(jwt_part(&before, 0)["alg"], name);

    app.clock.advance(Duration::from_secs(301));
    assert_eq!(rotate(&app, Some(json!({"alg": name}))).await.status(), 200);
    let after = app.admin_token().await;

    let (old_kid, new_kid) = (
        jwt_part(&before, 0)["kid"].clone(),
        jwt_part(&after, 0)["kid"].clone(),
    );
    assert_ne!(old_kid, new_kid, "new tokens carry the new kid");
    assert_eq!(new_kid, app.current_kid().as_str());
    let jwks = fetch_jwks(&app).await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        3,
        "retiring, current, next"
    );
    verify_with_jwks(&jwks, &before, "http://tokenmint.test");
    verify_with_jwks(&jwks, &after, "http://tokenmint.test");
    assert_eq!(app.get_me(&before).await.status(), 200);
}

#[tokio::test]
async fn a_token_signed_before_a_rotation_still_verifies_es256() {
    tokens_survive_a_rotation(SigningAlg::Es256, "ES256").await;
}

#[tokio::test]
async fn a_token_signed_before_a_rotation_still_verifies_eddsa() {
    tokens_survive_a_rotation(SigningAlg::EdDsa, "EdDSA").await;
}

#[tokio::test]
async fn a_token_signed_before_a_rotation_still_verifies_rs256() {
    tokens_survive_a_rotation(SigningAlg::Rs256, "RS256").await;
}

#[tokio::test]
async fn rotate_sets_the_algorithm_of_the_new_next_key() {
    let app = spawn_app().await;
    app.clock.advance(Duration::from_secs(301));
    let keys: Vec<Value> = rotate(&app, Some(json!({"alg": "EdDSA"})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(with_status(&keys, "next")[0]["alg"], "EdDSA");
    assert_eq!(with_status(&keys, "current")[0]["alg"], "ES256");

    assert_error(
        rotate(&app, Some(json!({"alg": "HS256"}))).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert_error(
        rotate(&app, Some(json!({"algorithm": "ES256"}))).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn a_retiring_key_leaves_jwks_once_its_tokens_have_expired() {
    let app = spawn_app().await;
    let old_kid = app.current_kid();
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(rotate(&app, None).await.status(), 200);

    app.clock.advance(Duration::from_secs(15 * 60 + 59));
    app.services
        .keyring
        .maintain(app.clock_now())
        .await
        .unwrap();
    let jwks = fetch_jwks(&app).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str()),
        "still within access TTL + skew"
    );

    app.clock.advance(Duration::from_secs(2));
    app.services
        .keyring
        .maintain(app.clock_now())
        .await
        .unwrap();
    let jwks = fetch_jwks(&app).await;
    assert!(
        !jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str()),
        "gone"
    );
    let keys = list(&app).await;
    let retired = keys.iter().find(|k| k["kid"] == old_kid.as_str()).unwrap();
    assert_eq!(retired["status"], "retired");
    assert!(retired["retired_at"].is_string());

    let private = private_part(&app, &old_kid).await;
    assert!(
        private.is_none(),
        "the private part of a retired key is wiped"
    );
}

#[tokio::test]
async fn a_token_already_verified_is_refused_once_its_key_left_jwks() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    assert_eq!(app.get_me(&token).await.status(), 200);
    assert_eq!(app.get_me(&token).await.status(), 200);

    let kid = app.current_kid();
    let now = app.clock_now().naive_utc();
    let withdrawn = app
        .services
        .db
        .run(move |conn| -> Result<_, tokenmint::store::StoreError> {
            tokenmint::store::signing_keys::transition(conn, &kid, "current", "retired", now)
        })
        .await
        .unwrap();
    assert!(withdrawn);
    app.services.keyring.reload().await.unwrap();

    assert_error(app.get_me(&token).await, 401, "AUTHENTICATION_FAILED").await;
}

#[tokio::test]
async fn jwks_revalidation_sees_a_rotation() {
    let app = spawn_app().await;
    let etag = jwks_etag(&app).await;
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(rotate(&app, None).await.status(), 200);
    jwks_after_change(&app, &etag).await;
}

#[tokio::test]
async fn signing_key_endpoints_are_for_admins() {
    let app = spawn_app().await;
    app.create_user("kim", "kim-password", &[], json!({})).await;
    let user = app.log_in("kim", "kim-password").await;
    let token = user.access_token.as_str();
    let rows = [
        (
            Method::GET,
            "/api/admin/signing-keys",
            Some(token),
            403,
            "INSUFFICIENT_PERMISSIONS",
        ),
        (
            Method::POST,
            "/api/admin/signing-keys/rotate",
            Some(token),
            403,
            "INSUFFICIENT_PERMISSIONS",
        ),
        (
            Method::GET,
            "/api/admin/signing-keys",
            None,
            401,
            "AUTHENTICATION_FAILED",
        ),
    ];
    for (method, path, bearer, status, code) in rows {
        let mut request = app.client.request(method, app.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        assert_error(request.send().await.unwrap(), status, code).await;
    }
}

/// Two instances on one database (and Redis) whose scheduled rotation falls due at once.
#[tokio::test]
async fn two_instances_rotating_at_once_end_with_one_current_key_and_the_same_jwks() {
    let interval = Duration::from_secs(600);
    let a = spawn_app_with(|s| s.key_rotation_interval = interval).await;
    let (database_url, prefix) = (
        a.services.settings.database_url.clone(),
        a.services.settings.redis_prefix.clone(),
    );
    let b = spawn_app_with(|s| {
        s.key_rotation_interval = interval;
        s.database_url = database_url;
        s.redis_prefix = prefix;
    })
    .await;
    let first = a.current_kid();
    assert_eq!(b.current_kid(), first);

    a.clock.advance(interval + Duration::from_secs(1));
    b.clock.advance(interval + Duration::from_secs(1));
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(
            a.services.keyring.maintain(a.clock_now()),
            b.services.keyring.maintain(b.clock_now())
        );
        ra.unwrap();
        rb.unwrap();
    }

    let keys = list(&a).await;
    assert_eq!(
        with_status(&keys, "current").len(),
        1,
        "never two current keys: {keys:?}"
    );
    assert_eq!(
        with_status(&keys, "retiring").len(),
        1,
        "exactly one rotation: {keys:?}"
    );
    assert_eq!(with_status(&keys, "next").len(), 1, "{keys:?}");
    assert_ne!(a.current_kid(), first);
    assert_eq!(a.current_kid(), b.current_kid());
    let jwks_a = a
        .client
        .get(a.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let jwks_b = b
        .client
        .get(b.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks_a.headers()["etag"], jwks_b.headers()["etag"]);

    let token = a.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(b.get_me(token.access_token.as_str()).await.status(), 200);
}
