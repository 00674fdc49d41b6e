//! TLS to PostgreSQL and Redis, against real servers started here on free ports with a
//! certificate from a CA made here: verification that passes, and each way it must fail
//! at start with a clear message. These need `redis-server` and PostgreSQL's server
//! binaries (`pg_config --bindir`); CI (`TOKENMINT_TEST_TLS=1`) makes them mandatory.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};

use crate::helpers::free_port;
use crate::helpers::processes::{Process, accepting, redis_server, tokenmint, tokenmint_refusing};

/// A test CA and a server certificate it signed for `localhost` only (so that
/// `127.0.0.1` is the wrong host name), as PEM files in `dir`.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificates(dir: &Path) -> Certificates {
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("Tokenmint test CA");
    let stranger = ca("Some other CA");
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = params.signed_by(&server_key, &issuer).unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Certificates {
        ca: write("ca.pem", issuer.pem()),
        other_ca: write("other-ca.pem", stranger.pem()),
        cert: write("server.crt", server.pem()),
        key: write("server.key", server_key.serialize_pem()),
    }
}

fn available(tool: &str, check: impl FnOnce() -> bool) -> bool {
    let demanded = std::env::var("TOKENMINT_TEST_TLS").is_ok_and(|v| v == "1");
    let present = check();
    assert!(
        present || !demanded,
        "TOKENMINT_TEST_TLS=1, but {tool} is missing"
    );
    if !present {
        eprintln!(
            "skipping a TLS test: {tool} is missing (TOKENMINT_TEST_TLS=1 makes this a failure)"
        );
    }
    present
}

fn postgres_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    dir.join("postgres").exists().then_some(dir)
}

fn am_root() -> bool {
    rustix::process::getuid().is_root()
}

/// `program` as the `postgres` user when this runs as root (PostgreSQL refuses root).
fn as_postgres(program: PathBuf) -> Command {
    if am_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_postgres(path: &Path) {
    if am_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A PostgreSQL that accepts only TLS connections (`hostssl` trust, `hostnossl` reject),
/// with the test CA's certificate, on a free port.
async fn postgres_with_tls(dir: &Path, certs: &Certificates) -> (Process, u16) {
    let bindir = postgres_bindir().unwrap();
    let data = dir.join("pgdata");
    std::fs::create_dir(&data).unwrap();
    give_to_postgres(dir);
    let initdb = as_postgres(bindir.join("initdb"))
        .args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ])
        .output()
        .unwrap();
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    std::fs::copy(&certs.cert, data.join("server.crt")).unwrap();
    std::fs::copy(&certs.key, data.join("server.key")).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n\
         hostnossl all all 0.0.0.0/0 reject\nhostnossl all all ::/0 reject\n",
    )
    .unwrap();
    give_to_postgres(&data);
    std::fs::set_permissions(
        data.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = free_port();
    let mut command = as_postgres(bindir.join("postgres"));
    command
        .args(["-D", data.to_str().unwrap(), "-p", &port.to_string()])
        .args(["-k", data.to_str().unwrap()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .args([
            "-c",
            "ssl_cert_file=server.crt",
            "-c",
            "ssl_key_file=server.key",
        ])
        .args(["-c", "fsync=off"]);
    let mut process = Process::spawn(command, dir.join("postgres.log"));
    accepting(&mut process, port).await;
    // Accepting connections is not yet ready for queries: wait for a TLS connection.
    for _ in 0..100 {
        let ready = Command::new(postgres_bindir().unwrap().join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (process, port)
}

async fn login_works(base: &str) {
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": "tls-admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("logged in");
    let me = client
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ok", "{ready}");
}

fn admin() -> (&'static str, String) {
    (
        "TOKENMINT_BOOTSTRAP_ADMIN",
        "admin:tls-admin-password".to_owned(),
    )
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server_and_refuses_what_does_not() {
    if !available("PostgreSQL's server binaries", || {
        postgres_bindir().is_some()
    }) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(dir.path());
    give_to_postgres(dir.path());
    let (_postgres, port) = postgres_with_tls(dir.path(), &certs).await;
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");
    let ca = certs.ca.to_str().unwrap();

    // verify-full against the CA: it connects, migrates, serves.
    let (_served, base) = tokenmint(
        dir.path(),
        &[
            (
                "TOKENMINT_DATABASE_URL",
                url(
                    "localhost",
                    &format!("sslmode=verify-full&sslrootcert={ca}"),
                ),
            ),
            admin(),
        ],
    )
    .await;
    login_works(&base).await;

    // On loopback without an sslmode the service tries plain text first (sslmode=allow):
    // this server refuses plain text (see `sslmode=disable` below), so it must get TLS.
    let (_loopback, base) = tokenmint(
        dir.path(),
        &[("TOKENMINT_DATABASE_URL", url("localhost", "")), admin()],
    )
    .await;
    login_works(&base).await;

    // Each refusal stops the start and says why.
    let other_ca = certs.other_ca.to_str().unwrap();
    let cases = [
        (
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "certificate verify failed",
        ),
        (
            url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "does not match host name",
        ),
        (url("localhost", "sslmode=disable"), "no encryption"),
    ];
    for (database, reason) in cases {
        let output = tokenmint_refusing(
            dir.path(),
            &[("TOKENMINT_DATABASE_URL", database.clone()), admin()],
        )
        .await;
        eprintln!("refused {database}:\n  {}", output.trim());
        assert!(output.contains("database"), "{database}: {output}");
        assert!(
            output.contains(reason),
            "{database} should say {reason:?}:\n{output}"
        );
    }
}

#[tokio::test]
async fn redis_over_tls_verifies_the_server_and_refuses_what_does_not() {
    let has_redis = || {
        Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok()
    };
    if !available("redis-server", has_redis) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = certificates(dir.path());
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (_redis, port) = redis_server(
        dir.path(),
        "--tls-port",
        &[
            "--tls-cert-file".to_owned(),
            path(&certs.cert),
            "--tls-key-file".to_owned(),
            path(&certs.key),
            "--tls-ca-cert-file".to_owned(),
            path(&certs.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ],
    )
    .await;
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());

    let (_served, base) = tokenmint(
        dir.path(),
        &[
            ("TOKENMINT_DATABASE_URL", sqlite("ok.db")),
            ("TOKENMINT_REDIS_URL", format!("rediss://localhost:{port}")),
            ("TOKENMINT_REDIS_CA", path(&certs.ca)),
            admin(),
        ],
    )
    .await;
    login_works(&base).await;
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["checks"]["revocation_list"],
        json!({"status": "ok", "backend": "redis"})
    );

    let cases = [
        (
            format!("rediss://localhost:{port}"),
            Some(path(&certs.other_ca)),
            "UnknownIssuer",
        ),
        (
            format!("rediss://127.0.0.1:{port}"),
            Some(path(&certs.ca)),
            "not valid for name \"127.0.0.1\"",
        ),
        (format!("rediss://localhost:{port}"), None, "UnknownIssuer"),
    ];
    for (i, (redis, ca, reason)) in cases.into_iter().enumerate() {
        let mut env = vec![
            ("TOKENMINT_DATABASE_URL", sqlite(&format!("refused-{i}.db"))),
            ("TOKENMINT_REDIS_URL", redis.clone()),
            admin(),
        ];
        if let Some(ca) = ca {
            env.push(("TOKENMINT_REDIS_CA", ca));
        }
        let output = tokenmint_refusing(dir.path(), &env).await;
        eprintln!("refused {redis}:\n  {}", output.trim());
        assert!(output.contains("TOKENMINT_REDIS_URL"), "{redis}: {output}");
        assert!(
            output.contains(reason),
            "{redis} should say {reason:?}:\n{output}"
        );
    }
}

#[tokio::test]
async fn a_database_on_loopback_is_reached_in_plain_text_unless_the_url_says_otherwise() {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Bool};
    let app = crate::helpers::spawn_app().await;
    // The service's own pooled connections, seen from the server's side.
    let (server_has_tls, tls_connections) = app
        .services
        .db
        .run(|conn| -> Result<_, tokenmint::store::StoreError> {
            let tokenmint::store::DbConnection::Postgres(pg) = conn else {
                return Ok(None);
            };
            let on = diesel::select(diesel::dsl::sql::<Bool>("current_setting('ssl') = 'on'"))
                .get_result::<bool>(pg)?;
            let tls = diesel::select(diesel::dsl::sql::<BigInt>(
                "(SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = current_database() AND s.ssl)",
            ))
            .get_result::<i64>(pg)?;
            Ok(Some((on, tls)))
        })
        .await
        .expect("query pg_stat_ssl")
        .unwrap_or_default();
    if !server_has_tls {
        eprintln!("skipped: needs PostgreSQL with ssl = on (TOKENMINT_TEST_DATABASE_URL)");
        return;
    }
    assert_eq!(
        tls_connections, 0,
        "the server offers TLS, but on loopback the service should not ask for it"
    );
}
