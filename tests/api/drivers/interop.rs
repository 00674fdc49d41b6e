//! Tokenmint through standard client libraries (tests/interop): Python `authlib` and
//! `PyJWT`, Node `openid-client` and `jose`. Each finds the token endpoint by discovery,
//! gets tokens by client credentials (basic and post) and by refresh, and verifies them
//! from JWKS; this checks what they verified. `oauth4webapi` is the DPoP client.
//!
//! They run only when `TOKENMINT_TEST_INTEROP=1` (CI sets it), and then a missing tool
//! is a failure; otherwise they say "skipped", so that a plain `cargo test` never
//! installs anything and passes offline. The libraries are installed into
//! `tests/interop` on first use (`pip install --target`, `npm ci`), pinned there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, free_port, spawn_app_with};

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn interop_available() -> bool {
    let demanded = std::env::var("TOKENMINT_TEST_INTEROP").is_ok_and(|v| v == "1");
    if !demanded {
        eprintln!(
            "skipped: an interoperability test (TOKENMINT_TEST_INTEROP=1 runs it: needs python3, node, PyPI and npm's registry)"
        );
        return false;
    }
    assert!(
        runs("python3") && runs("node"),
        "TOKENMINT_TEST_INTEROP=1, but python3 or node is missing"
    );
    true
}

static PIP: Once = Once::new();
static NPM: Once = Once::new();

pub fn install() {
    let dir = interop_dir();
    PIP.call_once(|| {
        // Installed again whenever requirements.txt changes.
        let wanted = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
        let marker = dir.join(".pydeps/.requirements");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--upgrade",
                    "--target",
                    ".pydeps",
                    "-r",
                    "requirements.txt",
                ])
                .current_dir(&dir)
                .status()
                .expect("pip runs");
            assert!(status.success(), "pip install in tests/interop failed");
            std::fs::write(&marker, wanted).unwrap();
        }
    });
    NPM.call_once(|| {
        if !dir.join("node_modules/openid-client").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm runs");
            assert!(status.success(), "npm ci in tests/interop failed");
        }
    });
}

/// Runs one library's scenario and returns the JSON line it prints last.
async fn run(
    program: &'static str,
    script: &'static str,
    env: Vec<(&'static str, String)>,
) -> Value {
    tokio::task::spawn_blocking(move || {
        install();
        let output = Command::new(program)
            .arg(script)
            .current_dir(interop_dir())
            .env("PYTHONPATH", interop_dir().join(".pydeps"))
            .envs(env)
            .output()
            .expect("the scenario runs");
        super::verdict(script, &output)
    })
    .await
    .unwrap()
}

/// A server whose issuer is its own address (the libraries follow discovery to it), a
/// tenant `acme`, a confidential client there and a user who logs in through it.
async fn setup() -> (TestApp, Vec<(&'static str, String)>) {
    let port = free_port();
    let app = spawn_app_with(|s| {
        // Every refresh rotates (no leeway), so the libraries are seen to take a new
        // refresh token each time; with a leeway a head younger than it comes back as is.
        s.refresh_reuse_leeway = Duration::ZERO;
        s.bind = ([127, 0, 0, 1], port).into();
        s.issuer = format!("http://127.0.0.1:{port}");
    })
    .await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    app.create_tenant_user(&admin, "acme", "erin", &["user"], &["jobs:read", "profile"])
        .await;
    let client: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(
                json!({"client_id": "acme-backend", "name": "Acme backend", "tenant": "acme",
                        "type": "confidential",
                        "grant_types": ["client_credentials", "refresh_token", "password"],
                        "scopes": ["jobs:read", "jobs:write"]}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let env = vec![
        ("ISSUER", app.address.clone()),
        ("AUDIENCE", app.services.settings.audience.clone()),
        ("CLIENT_ID", "acme-backend".to_owned()),
        (
            "CLIENT_SECRET",
            client["client_secret"].as_str().unwrap().to_owned(),
        ),
        ("TENANT", "acme".to_owned()),
        ("USERNAME", "erin".to_owned()),
        ("PASSWORD", "erin-password".to_owned()),
        ("ADMIN_KEY", app.api_key(&admin, &["admin"]).await.1),
    ];
    (app, env)
}

fn check(app: &TestApp, summary: &Value) {
    // After the withdrawal: the session's new token is signed by the fresh key and
    // verifies from JWKS; the withdrawn key's token does not.
    let after = &summary["after_withdrawal"];
    assert_eq!(after["username"], "erin", "{summary}");
    assert_ne!(after["kid"], summary["withdrawn_kid"], "{summary}");
    assert_eq!(after["kid"], app.current_kid().as_str());
    assert_eq!(summary["withdrawn_verifies"], false, "{summary}");
    assert_eq!(
        summary["token_endpoint"],
        format!("{}/oauth/token", app.address)
    );
    assert_eq!(summary["expires_in"], 900);
    assert_eq!(summary["rotated"], true);
    assert_eq!(summary["unknown_refresh"], "invalid_grant");
    for (name, sub, scope) in [
        ("client_credentials", "acme-backend", "jobs:read"),
        (
            "client_credentials_post",
            "acme-backend",
            "jobs:read jobs:write",
        ),
        ("refreshed", "", "jobs:read"),
        ("refreshed_again", "", "jobs:read"),
    ] {
        let claims = &summary[name];
        assert_eq!(claims["tenant_id"], "acme", "{name}: {claims}");
        assert_eq!(claims["client_id"], "acme-backend", "{name}");
        assert_eq!(claims["scope"], scope, "{name}");
        assert_eq!(claims["iss"], app.address.as_str(), "{name}");
        if sub.is_empty() {
            assert_eq!(claims["username"], "erin", "{name}");
            assert!(claims["sid"].is_string(), "{name}");
        } else {
            assert_eq!(claims["sub"], sub, "{name}");
        }
    }
}

#[tokio::test]
async fn python_authlib_and_pyjwt_get_refresh_and_verify_tokens() {
    if !interop_available() {
        return;
    }
    let (app, env) = setup().await;
    let summary = run("python3", "interop.py", env).await;
    eprintln!("authlib/PyJWT: {summary}");
    check(&app, &summary);
    // The session's logout, as a SET that PyJWT verified from JWKS.
    let sets = summary["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{summary}");
    assert_eq!(sets[0]["typ"], "secevent+jwt");
    let event =
        &sets[0]["events"]["https://schemas.openid.net/secevent/caep/event-type/session-revoked"];
    assert_eq!(event["subject"]["id"], summary["session_id"], "{summary}");
    assert_eq!(event["tenant_id"], "acme");
    assert_eq!(event["reason"], "logout");
}

#[tokio::test]
async fn node_openid_client_and_jose_get_refresh_and_verify_tokens() {
    if !interop_available() {
        return;
    }
    let (app, env) = setup().await;
    let summary = run("node", "interop.mjs", env).await;
    eprintln!("openid-client/jose: {summary}");
    check(&app, &summary);
}

/// oauth4webapi as a DPoP client (RFC 9449) with nonces required: its proofs are accepted
/// at `/oauth/token` (client credentials) and `/api/me`, its nonce handling gets through
/// the challenge, and the bound token copied as Bearer is refused.
#[tokio::test]
async fn oauth4webapi_binds_a_client_credentials_token_with_dpop_and_handles_nonces() {
    if !interop_available() {
        return;
    }
    let port = free_port();
    let app = spawn_app_with(|s| {
        s.bind = ([127, 0, 0, 1], port).into();
        s.issuer = format!("http://127.0.0.1:{port}");
        s.dpop_nonce = true;
    })
    .await;
    let admin = app.admin_token().await;
    let client: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            &admin,
            Some(json!({"client_id": "dpop-worker", "name": "DPoP worker",
                        "type": "confidential", "grant_types": ["client_credentials"],
                        "scopes": []})),
        )
        .await
        .json()
        .await
        .unwrap();
    let env = vec![
        ("ISSUER", app.address.clone()),
        ("CLIENT_ID", "dpop-worker".to_owned()),
        (
            "CLIENT_SECRET",
            client["client_secret"].as_str().unwrap().to_owned(),
        ),
    ];
    let summary = run("node", "dpop.mjs", env).await;
    eprintln!("oauth4webapi DPoP: {summary}");
    assert_eq!(summary["dpop_algs"], json!(["ES256", "EdDSA"]));
    assert_eq!(
        summary["token_type"].as_str().map(str::to_ascii_lowercase),
        Some("dpop".to_owned()),
        "{summary}"
    );
    assert_eq!(summary["cnf_jkt"], summary["library_jkt"], "{summary}");
    assert_eq!(summary["me_status"], 200, "{summary}");
    assert_eq!(summary["me_sub"], "dpop-worker", "{summary}");
    assert_eq!(summary["copied_status"], 401, "{summary}");
    assert!(
        summary["copied_challenge"]
            .as_str()
            .is_some_and(|c| c.starts_with("DPoP ")),
        "{summary}"
    );
    // The first token request had no nonce: the server asked, the library retried once.
    assert_eq!(summary["nonce_retries"]["token"], 1, "{summary}");
}
