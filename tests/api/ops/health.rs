use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_reports_each_dependency() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let census = app.services.keyring.census();
    let backend = |redis: bool| if redis { "redis" } else { "memory" };
    assert_eq!(
        body,
        json!({
            "status": "ok", "database": "ok", "revocation_list": "ok",
            "checks": {
                "database": {"status": "ok", "backend": app.services.db.backend()},
                "revocation_list": {
                    "status": "ok",
                    "backend": backend(app.services.settings.redis_url.is_some()),
                },
                "signing_keys": {
                    "status": "ok",
                    "current": census.current.unwrap(),
                    "next": census.next.unwrap(),
                    "retiring": 0,
                },
            },
        })
    );
}

#[tokio::test]
async fn docs_render_the_served_document() {
    let app = spawn_app().await;
    let redirect = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        init.contains("/api-docs/openapi.json"),
        "the UI loads our document"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = crate::helpers::spawn_app().await;
    let tokenmint::config::DatabaseUrl::Sqlite(db) = app.services.settings.database_url.clone()
    else {
        return; // PostgreSQL keeps its own files.
    };
    // A write, so that the write-ahead log and its index exist.
    app.log_in("admin", crate::helpers::ADMIN_PASSWORD).await;

    // (The generated .kek is 0600 too: a unit test of keys::kek shows it.)
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path} holds password hashes: {mode:o}");
    }
}
