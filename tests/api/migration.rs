//! Upgrades: a database made by an older release keeps working after the migrations.

use std::time::Duration;

use diesel::RunQueryDsl as _;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokenmint::api_keys::ApiKeySecret;
use tokenmint::identity::passwords::{Password, PasswordHasher};
use tokenmint::store::conn::run_migrations_up_to;
use tokenmint::store::{Db, StoreError};

use crate::helpers::{assert_error, jwt_part, spawn_app_seeded};

/// The last migration of the release before API keys needed an owner and
/// administration needed the `admin` scope.
const OWNERLESS_KEYS_RELEASE: &str = "20261124000004";

#[tokio::test]
async fn admins_and_ownerless_keys_of_the_previous_release_keep_working() {
    let hasher = PasswordHasher::new(1).unwrap();
    let password = |p: &str| Password::parse_new(SecretString::from(p.to_owned())).unwrap();
    let admin_hash = hasher.hash(password("legacy-admin-pw")).await.unwrap();
    let user_hash = hasher.hash(password("legacy-user-pw")).await.unwrap();
    let ownerless = ApiKeySecret::generate().unwrap();
    let owned = ApiKeySecret::generate().unwrap();
    let (admin_id, user_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let (ownerless_id, owned_id) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());

    let rows = [
        format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, enabled, created_at, updated_at) \
             VALUES ('{admin_id}', 'Legacy-Admin', 'legacy-admin', '{admin_hash}', '[\"admin\"]', '[\"read\"]', '{{}}', TRUE, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ),
        format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, enabled, created_at, updated_at) \
             VALUES ('{user_id}', 'legacy-user', 'legacy-user', '{user_hash}', '[\"user\"]', '[]', '{{}}', TRUE, '2026-11-21 10:00:00', '2026-11-21 10:00:00')"
        ),
        format!(
            "INSERT INTO api_keys (id, key_hash, prefix, name, owner_id, scopes, enabled, created_at, updated_at) \
             VALUES ('{ownerless_id}', '{}', '{}', 'ownerless bot', NULL, '[\"admin\"]', TRUE, '2026-11-22 10:00:00', '2026-11-22 10:00:00')",
            ownerless.hash(),
            ownerless.display_prefix()
        ),
        format!(
            "INSERT INTO api_keys (id, key_hash, prefix, name, owner_id, scopes, enabled, created_at, updated_at) \
             VALUES ('{owned_id}', '{}', '{}', 'introspector', '{user_id}', '[\"introspect\"]', TRUE, '2026-11-22 10:00:00', '2026-11-22 10:00:00')",
            owned.hash(),
            owned.display_prefix()
        ),
    ];
    let app = spawn_app_seeded(
        |_| {},
        |url| async move {
            let db = Db::new(&url, 1, Duration::from_secs(5)).unwrap();
            db.run(move |conn| -> Result<(), StoreError> {
                run_migrations_up_to(conn, OWNERLESS_KEYS_RELEASE).map_err(StoreError::Other)?;
                for row in &rows {
                    diesel::sql_query(row).execute(conn)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        },
    )
    .await;

    let login = app.login("legacy-admin", "legacy-admin-pw").await;
    assert_eq!(
        login["scope"], "read admin",
        "an admin of the older release keeps administering"
    );
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 1)["sub"], admin_id.to_string());
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", token, None)
            .await
            .status(),
        200
    );

    let key_view: Value = app
        .call(
            Method::GET,
            &format!("/api/admin/api-keys/{ownerless_id}"),
            token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        key_view["owner_id"],
        admin_id.to_string(),
        "an ownerless key belongs to the oldest admin"
    );
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", ownerless.expose(), None)
            .await
            .status(),
        200
    );

    let introspected = app
        .call(
            Method::POST,
            "/api/token/introspect",
            owned.expose(),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(introspected.status(), 200);
    assert_eq!(introspected.json::<Value>().await.unwrap()["active"], true);

    // The database had an admin: the bootstrap admin was not added to it.
    let bootstrap = app
        .post_login(&json!({"username": "admin", "password": crate::helpers::ADMIN_PASSWORD}))
        .await;
    assert_error(bootstrap, 401, "AUTHENTICATION_FAILED").await;

    // The owner now matters: disabling the legacy admin stops the key (its last call).
    let disabled = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{admin_id}"),
            ownerless.expose(),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_error(
        app.call(Method::GET, "/api/admin/users", ownerless.expose(), None)
            .await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
}
