//! Upgrades: a database made by an older release keeps working after the migrations.

use std::time::Duration;

use diesel::RunQueryDsl as _;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokenmint::api_keys::ApiKeySecret;
use tokenmint::clock::Clock as _;
use tokenmint::identity::passwords::{Password, PasswordHasher};
use tokenmint::store::conn::run_migrations_up_to;
use tokenmint::store::{Db, StoreError};

use crate::helpers::{TestApp, assert_error, jwt_part, spawn_app_seeded};

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
    let app = spawn_at_release(OWNERLESS_KEYS_RELEASE, rows.to_vec()).await;

    let login = app.log_in("legacy-admin", "legacy-admin-pw").await;
    assert_eq!(
        login.scope, "read admin",
        "an admin of the older release keeps administering"
    );
    let token = login.access_token.as_str();
    assert_eq!(jwt_part(token, 1)["sub"], admin_id.to_string());
    assert_eq!(
        app.call(Method::GET, "/api/admin/users", token, None)
            .await
            .status(),
        200
    );

    let key_view = app
        .get_json(&format!("/api/admin/api-keys/{ownerless_id}"), token)
        .await;
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

/// A refresh token as releases before one-row sessions made them: 256 random bits,
/// base64url, kept in the database as SHA-256 (base64url).
struct LegacyRefreshToken {
    token: String,
    hash: String,
}

impl LegacyRefreshToken {
    fn generate() -> Self {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes: [u8; 32] = std::array::from_fn(|_| rand_byte());
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes(),
        ));
        Self { token, hash }
    }
}

fn rand_byte() -> u8 {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 1];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b[0]
}

/// The last migration of the release before tenants and registered clients.
const BEFORE_TENANTS_RELEASE: &str = "20261201000003";

#[tokio::test]
async fn users_keys_and_sessions_of_the_release_before_tenants_keep_working_under_default() {
    let hasher = PasswordHasher::new(1).unwrap();
    let password = |p: &str| Password::parse_new(SecretString::from(p.to_owned())).unwrap();
    let admin_hash = hasher.hash(password("legacy-admin-pw")).await.unwrap();
    let user_hash = hasher.hash(password("legacy-user-pw")).await.unwrap();
    let key = ApiKeySecret::generate().unwrap();
    let refresh = LegacyRefreshToken::generate();
    let (admin_id, user_id, key_id, session_id) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::new_v4(),
    );
    let now = tokenmint::clock::SystemClock.now().naive_utc();
    let at = |delta: chrono::TimeDelta| (now + delta).format("%Y-%m-%d %H:%M:%S").to_string();
    let (created, expires) = (
        at(chrono::TimeDelta::minutes(-5)),
        at(chrono::TimeDelta::days(1)),
    );
    let rows = [
        format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, enabled, created_at, updated_at) \
             VALUES ('{admin_id}', 'Legacy-Admin', 'legacy-admin', '{admin_hash}', '[\"admin\"]', '[\"admin\"]', '{{}}', TRUE, '{created}', '{created}')"
        ),
        format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, enabled, created_at, updated_at) \
             VALUES ('{user_id}', 'Legacy-User', 'legacy-user', '{user_hash}', '[\"user\"]', '[\"read\"]', '{{}}', TRUE, '{created}', '{created}')"
        ),
        format!(
            "INSERT INTO api_keys (id, key_hash, prefix, name, owner_id, scopes, enabled, created_at, updated_at) \
             VALUES ('{key_id}', '{}', '{}', 'ops bot', '{admin_id}', '[\"admin\"]', TRUE, '{created}', '{created}')",
            key.hash(),
            key.display_prefix()
        ),
        // What that release wrote when it created an admin.
        "UPDATE markers SET value = 1 WHERE name = 'had_admin'".to_owned(),
        // A session opened with client_id as the free-text label it was then.
        format!(
            "INSERT INTO sessions (id, user_id, client_id, scope, created_at, expires_at) \
             VALUES ('{session_id}', '{user_id}', 'mobile-app', 'read', '{created}', '{expires}')"
        ),
        format!(
            "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at) \
             VALUES ('{}', '{session_id}', 0, '{created}', '{expires}')",
            refresh.hash
        ),
    ];
    let app = spawn_at_release(BEFORE_TENANTS_RELEASE, rows.to_vec()).await;

    // Users log in as before, with or without naming `default`.
    let login = app.log_in("legacy-user", "legacy-user-pw").await;
    let claims = jwt_part(login.access_token.as_str(), 1);
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["tenant_id"], "default");
    let named = app
        .post_login(
            &json!({"username": "LEGACY-USER", "password": "legacy-user-pw", "tenant": "default"}),
        )
        .await;
    assert_eq!(named.status(), 200);

    // The session keeps rotating first-party, its label kept, under `default`.
    let rotated = app.refresh(&refresh.token).await;
    let claims = jwt_part(rotated["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sid"], session_id.to_string());
    assert_eq!(claims["client_id"], "mobile-app");
    assert_eq!(claims["tenant_id"], "default");
    assert_eq!(claims["scope"], "read");
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();

    // The key administers `default`, which holds everything.
    let users = app.get_json("/api/admin/users", key.expose()).await;
    let tenants: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["default", "default"]);
    let key_view = app
        .get_json(&format!("/api/admin/api-keys/{key_id}"), key.expose())
        .await;
    assert_eq!(key_view["tenant"], "default");
    let tenant_list = app.get_json("/api/admin/tenants", key.expose()).await;
    assert_eq!(tenant_list["items"][0]["id"], "default");
    assert_eq!(tenant_list["items"][0]["enabled"], true);

    // A client registered later under the label's name does not take the session over.
    let registered = app
        .call(
            Method::POST,
            "/api/admin/clients",
            key.expose(),
            Some(
                json!({"client_id": "mobile-app", "name": "Mobile", "type": "public",
                        "grant_types": ["password", "refresh_token"], "scopes": []}),
            ),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let taken = app
        .token_request(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "mobile-app"),
                ("refresh_token", &next),
            ],
            None,
        )
        .await;
    assert_eq!(taken.status(), 400);
    assert_eq!(
        taken.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(app.refresh(&next).await["scope"], "read");
}

/// The last migration of the release before one-row sessions.
const BEFORE_ONE_ROW_SESSIONS: &str = "20261201000006";

#[tokio::test]
async fn sessions_of_the_release_before_one_row_sessions_keep_working() {
    let (h0, h1, h2, ended) = (
        LegacyRefreshToken::generate(),
        LegacyRefreshToken::generate(),
        LegacyRefreshToken::generate(),
        LegacyRefreshToken::generate(),
    );
    let (live_sid, ended_sid) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let now = tokenmint::clock::SystemClock.now().naive_utc();
    let at = |minutes: i64| {
        (now + chrono::TimeDelta::minutes(minutes))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    // The admin the bootstrap would create, so that the sessions have a user.
    let mut rows = vec![
        "INSERT INTO users (id, username, username_key, password_hash, roles, scopes, claims, enabled, created_at, updated_at, tenant_id) \
         VALUES ('0190a0a0-0000-7000-8000-000000000001', 'old-admin', 'default:old-admin', 'x', '[\"admin\"]', '[\"admin\"]', '{}', TRUE, '2026-12-01 00:00:00', '2026-12-01 00:00:00', 'default')"
            .to_owned(),
    ];
    for (sid, revoked) in [
        (live_sid, "NULL".to_owned()),
        (ended_sid, format!("'{}'", at(-1))),
    ] {
        rows.push(format!(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at, revoked_at) \
             SELECT '{sid}', id, 'admin', '{}', '{}', {revoked} FROM users",
            at(-60),
            at(24 * 60)
        ));
    }
    // A chain as that release kept it: two spent tokens, then the head (issued 10
    // minutes ago); and the ended session's head.
    for (token, sid, generation, created, spent) in [
        (&h0, live_sid, 0, at(-60), format!("'{}'", at(-30))),
        (&h1, live_sid, 1, at(-30), format!("'{}'", at(-10))),
        (&h2, live_sid, 2, at(-10), "NULL".to_owned()),
        (&ended, ended_sid, 0, at(-60), "NULL".to_owned()),
    ] {
        rows.push(format!(
            "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, expires_at, spent_at) \
             VALUES ('{}', '{sid}', {generation}, '{created}', '{}', {spent})",
            token.hash,
            at(24 * 60)
        ));
    }
    let app = spawn_at_release(BEFORE_ONE_ROW_SESSIONS, rows).await;

    // Only the live session's head and its predecessor were kept, by hash; the old
    // per-token table is gone.
    let counts = app.row_counts().await;
    assert_eq!(counts.get("legacy_refresh_tokens"), Some(&2), "{counts:?}");
    assert!(!counts.contains_key("refresh_tokens"), "{counts:?}");
    assert_eq!(app.session_state(&live_sid.to_string()).await, (2, false));

    // The head rotates once into the new form; presented again within the leeway it
    // leads to that token, as any predecessor does.
    let rotated = app.refresh(&h2.token).await;
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert!(next.starts_with("tmr_"), "{next}");
    assert_eq!(rotated["session_id"], live_sid.to_string());
    assert_eq!(
        app.get_me(rotated["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(app.session_state(&live_sid.to_string()).await, (3, false));
    assert_eq!(app.refresh(&h2.token).await["refresh_token"], next.as_str());

    // The ended session's token stays refused; a token spent before the upgrade and
    // older than the head's predecessor was not kept: unknown.
    assert_error(
        app.post_refresh(&ended.token).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_error(
        app.post_refresh(&h0.token).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;

    // A spent legacy token of the live session is reuse like any other, and ends it.
    assert_error(
        app.post_refresh(&h1.token).await,
        401,
        "REFRESH_TOKEN_REUSED",
    )
    .await;
    assert_error(app.post_refresh(&next).await, 401, "TOKEN_REVOKED").await;

    app.clock.advance(Duration::from_secs(31 * 24 * 3600));
    app.services.sessions.sweep(app.clock_now()).await.unwrap();
    assert_eq!(
        app.row_counts().await["legacy_refresh_tokens"],
        0,
        "gone with their sessions"
    );
}

/// The app over a database that an earlier release left: migrated up to `release`, then
/// `rows` written, then started (which migrates the rest).
async fn spawn_at_release(release: &'static str, rows: Vec<String>) -> TestApp {
    spawn_app_seeded(
        |_| {},
        |url| async move {
            let db = Db::new(&url, 1, Duration::from_secs(5)).unwrap();
            db.run(move |conn| -> Result<(), StoreError> {
                run_migrations_up_to(conn, release).map_err(StoreError::Other)?;
                for row in &rows {
                    diesel::sql_query(row).execute(conn)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        },
    )
    .await
}
