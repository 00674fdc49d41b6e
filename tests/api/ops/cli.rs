use std::io::Write as _;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tokenmint");

#[test]
fn openapi_prints_the_checked_in_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        tokenmint::http::openapi::document_json().unwrap()
    );
}

#[test]
fn an_invalid_setting_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("TOKENMINT_ACCESS_TTL", "a while")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TOKENMINT_ACCESS_TTL"), "{stderr}");
}

#[test]
fn user_create_reads_the_password_from_stdin_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    for _ in 0..2 {
        let status = Command::new(BIN)
            .arg("migrate")
            .env("TOKENMINT_DATABASE_URL", &db)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut child = Command::new(BIN)
        .args([
            "user",
            "create",
            "--username",
            "ops",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .env("TOKENMINT_DATABASE_URL", &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ops-password-1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(
        uuid::Uuid::parse_str(id.trim()).is_ok(),
        "prints the new user's id"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("ops-password-1"),
        "the password is not logged"
    );

    let again = Command::new(BIN)
        .args(["user", "create", "--username", "OPS", "--password-stdin"])
        .env("TOKENMINT_DATABASE_URL", &db)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut again = again;
    again
        .stdin
        .take()
        .unwrap()
        .write_all(b"other-password\n")
        .unwrap();
    assert!(
        !again.wait().unwrap().success(),
        "usernames are unique case-insensitively"
    );
}

#[test]
fn keys_rotate_refuses_to_skip_pre_publication() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("keys.db").display());
    let out = Command::new(BIN)
        .args(["keys", "rotate"])
        .env("TOKENMINT_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a fresh next key is too young to sign"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("next key has been published for less than the JWKS max-age"),
        "{stderr}"
    );
}

/// Runs the command line against a running service's database (and Redis, when the
/// tests have one); asserts it succeeds and returns what it printed.
fn run_against(app: &crate::helpers::TestApp, dir: &std::path::Path, args: Vec<String>) -> String {
    use base64::Engine as _;
    let settings = &app.services.settings;
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("TOKENMINT_LOG", "warn")
        .env("TOKENMINT_DATABASE_URL", app.database_url())
        .env("TOKENMINT_ISSUER", &settings.issuer)
        .env("TOKENMINT_REDIS_PREFIX", &settings.redis_prefix)
        .env(
            "TOKENMINT_KEY_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode(crate::helpers::TEST_KEK),
        );
    if let Some(redis) = crate::helpers::non_empty_env("TOKENMINT_TEST_REDIS_URL") {
        command.env("TOKENMINT_REDIS_URL", redis);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `tokenmint keys withdraw`: the admin use case at the command line. With Redis, the
/// service refuses the key's tokens when the command ends; without, within its
/// one-second poll of the database.
#[tokio::test]
async fn keys_withdraw_from_the_command_line_reaches_a_running_service() {
    let app = crate::helpers::spawn_app().await;
    let token = app.admin_token().await;
    let kid = app.current_kid();
    let dir = tempfile::tempdir().unwrap();
    let printed = run_against(
        &app,
        dir.path(),
        vec![
            "keys".into(),
            "withdraw".into(),
            kid.clone(),
            "--reason".into(),
            "leaked in a backup".into(),
        ],
    );
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with(&kid) && l.ends_with("\twithdrawn")),
        "{printed}"
    );
    assert_eq!(
        printed.lines().filter(|l| l.ends_with("\tcurrent")).count(),
        1,
        "{printed}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get_me(&token).await.status() == 200
        || crate::admin::key_withdrawal::jwks_kids(&crate::oauth::jwks::fetch_jwks(&app).await)
            .contains(&kid)
    {
        assert!(std::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let fresh = app.admin_token().await;
    assert_ne!(crate::helpers::jwt_part(&fresh, 0)["kid"], kid.as_str());
    assert_eq!(app.get_me(&fresh).await.status(), 200);
}

/// `tokenmint sessions list --user` and `tokenmint sessions end`: the admin use cases at
/// the command line, against a running service's database (and Redis, when the tests
/// have one).
#[tokio::test]
async fn sessions_are_listed_and_ended_from_the_command_line() {
    let app = crate::helpers::spawn_app().await;
    let user = app
        .create_user("dana", "dana-password", &[], serde_json::json!({}))
        .await;
    let laptop = app.log_in("dana", "dana-password").await;
    let phone = app.log_in("dana", "dana-password").await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| run_against(&app, dir.path(), args);
    let listed = run(vec![
        "sessions".into(),
        "list".into(),
        "--user".into(),
        user.id.to_string(),
    ]);
    let ids: Vec<&str> = listed
        .lines()
        .map(|line| line.split('\t').next().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(ids.contains(&laptop.session_id.as_str()), "{listed}");
    assert!(ids.contains(&phone.session_id.as_str()), "{listed}");

    run(vec![
        "sessions".into(),
        "end".into(),
        laptop.session_id.clone(),
    ]);
    // The refresh token is refused at once (the database says so); the access token as
    // soon as the service has heard, which it does within a second without Redis (it
    // polls the database's revocation generation) and before the command ends with it.
    assert_eq!(app.post_refresh(laptop.refresh()).await.status(), 401);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.get_me(&laptop.access_token).await.status() == 200 {
        assert!(std::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.get_me(&phone.access_token).await.status(), 200);
    let listed = run(vec![
        "sessions".into(),
        "list".into(),
        "--user".into(),
        user.id.to_string(),
    ]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with(&phone.session_id), "{listed}");
}
