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
