//! Tokenmint in a real browser: Debian's Chromium driven by puppeteer-core (tests/browser).
//!
//! These run only when `TOKENMINT_TEST_BROWSER=1` (CI sets it), and then a missing
//! browser is a failure; otherwise they say "skipped", so that a plain `cargo test`
//! never installs anything and passes offline. The driver is installed with `npm ci` in
//! `tests/browser` on first use; no browser is ever downloaded.

use std::path::{Path, PathBuf};
use std::sync::Once;

use serde_json::Value;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Whether browser tests run here (see the module doc).
pub fn browser_available() -> bool {
    let demanded = std::env::var("TOKENMINT_TEST_BROWSER").is_ok_and(|v| v == "1");
    if !demanded {
        eprintln!(
            "skipped: a browser test (TOKENMINT_TEST_BROWSER=1 runs it: needs chromium, node and npm's registry)"
        );
        return false;
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let present = node && Path::new(&chromium()).exists();
    assert!(
        present,
        "TOKENMINT_TEST_BROWSER=1, but {} or node is missing",
        chromium()
    );
    true
}

static NPM_CI: Once = Once::new();

/// One Chromium at a time: a scenario's timings (tabs opened within a reuse leeway, say)
/// are its own, not shared with another browser on the same cores.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a scenario of `tests/browser` with `env`; returns the JSON line it prints.
pub async fn run_scenario(script: &'static str, env: Vec<(&'static str, String)>) -> Value {
    tokio::task::spawn_blocking(move || {
        NPM_CI.call_once(|| {
            if !browser_dir().join("node_modules/puppeteer-core").exists() {
                let status = std::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(browser_dir())
                    .status()
                    .expect("npm runs");
                assert!(status.success(), "npm ci in tests/browser failed");
            }
        });
        let _browser = ONE_BROWSER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let output = std::process::Command::new("node")
            .arg(script)
            .current_dir(browser_dir())
            .env("CHROMIUM", chromium())
            .envs(env)
            .output()
            .expect("node runs");
        super::verdict(script, &output)
    })
    .await
    .unwrap()
}

/// Serves a blank page on an origin of its own: the app, for cross-origin requests.
pub async fn serve_app_page(html: &'static str) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().default_service(web::to(move || async move {
            HttpResponse::Ok().content_type("text/html").body(html)
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn five_tabs_sharing_a_cookie_jar_never_revoke_their_session() {
    if !browser_available() {
        return;
    }
    let page = serve_app_page("<!doctype html><title>app</title><p>app</p>").await;
    let origin = page.clone();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.cors_origins = vec![origin];
        s.refresh_reuse_leeway = std::time::Duration::from_secs(1);
    })
    .await;
    app.create_user("alice", "alice-password", &[], serde_json::json!({}))
        .await;

    let summary = run_scenario(
        "cookie_tabs.mjs",
        vec![
            ("ISSUER", app.address.clone()),
            ("APP", page),
            ("USERNAME", "alice".to_owned()),
            ("PASSWORD", "alice-password".to_owned()),
            ("LEEWAY_MS", "1000".to_owned()),
            ("REPS", "30".to_owned()),
        ],
    )
    .await;
    eprintln!("browser summary: {summary}");

    assert_eq!(summary["repetitions"], 30);
    assert_eq!(
        summary["failures"],
        serde_json::json!([]),
        "every refresh answered 200"
    );
    assert_eq!(summary["ok"], summary["answered"]);
    let count = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(
        count("refreshes"),
        30 * 16,
        "three rounds of five tabs, and one after"
    );
    assert_eq!(count("answered") + count("lost"), count("refreshes"));
    // Chromium re-sends most requests whose connection closed unanswered: those are
    // retries of a refresh the server already rotated.
    assert!(
        count("dropped") > count("lost"),
        "some dropped answers were retried"
    );
    assert!(count("delayed") > 0, "some responses were delayed");
    let theft = &summary["theft"];
    assert_eq!(theft["cookie_name"], "__Host-tokenmint_refresh");
    assert_eq!(theft["before"], serde_json::json!([200, 200, 200]));
    assert_eq!(theft["replay"]["status"], 401);
    assert_eq!(theft["replay"]["error"], "REFRESH_TOKEN_REUSED");
    assert_eq!(theft["victim_after"]["error"], "TOKEN_REVOKED");

    // The server's own record: of the 31 sessions, only the stolen one was revoked, and
    // its theft is in the audit log.
    let (revoked, reuses) = app
        .services
        .db
        .run(|conn| -> Result<_, tokenmint::store::StoreError> {
            use diesel::prelude::*;
            use tokenmint::store::schema::{audit_events, sessions};
            let revoked: i64 = sessions::table
                .filter(sessions::revoked_at.is_not_null())
                .count()
                .get_result(conn)?;
            let reuses: i64 = audit_events::table
                .filter(audit_events::action.eq("refresh.reuse"))
                .count()
                .get_result(conn)?;
            Ok((revoked, reuses))
        })
        .await
        .unwrap();
    assert_eq!(revoked, 1, "no session revoked but the stolen one");
    assert_eq!(reuses, 1, "the theft is in the audit log");
}

/// The example WebSocket service (`examples/ws_tickets.rs`, built by `cargo test` with
/// the tests), killed when dropped.
struct WsService {
    child: std::process::Child,
    origin: String,
    log: tempfile::NamedTempFile,
}

impl Drop for WsService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WsService {
    async fn start(port: u16, env: Vec<(&'static str, String)>) -> Self {
        // target/<profile>/deps/api-<hash> -> target/<profile>/examples/ws_tickets
        let exe = std::env::current_exe().unwrap();
        let binary = exe
            .parent()
            .and_then(Path::parent)
            .unwrap()
            .join("examples/ws_tickets");
        assert!(
            binary.exists(),
            "{} is missing: `cargo test` builds the examples",
            binary.display()
        );
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new(binary)
            .env("BIND", format!("127.0.0.1:{port}"))
            .envs(env)
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let origin = format!("http://127.0.0.1:{port}");
        let service = Self { child, origin, log };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(&service.origin).send().await.is_ok() {
                return service;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the example service did not start");
    }
}

#[tokio::test]
async fn a_page_on_another_origin_opens_a_websocket_with_a_ticket() {
    if !browser_available() {
        return;
    }
    const AUDIENCE: &str = "wss://agents.example";
    const OTHER: &str = "wss://billing.example";
    let port = crate::helpers::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let page_origin = origin.clone();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.cors_origins = vec![page_origin];
        s.ticket_audiences = vec![AUDIENCE.to_owned(), OTHER.to_owned()];
        s.ticket_ttl = std::time::Duration::from_secs(2);
    })
    .await;
    let alice = app
        .create_user("alice", "alice-password", &["chat"], serde_json::json!({}))
        .await
        .id
        .to_string();
    let admin = app.admin_token().await;
    let key: Value = app
        .call(
            reqwest::Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(serde_json::json!({"name": "agents", "scopes": ["tickets"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    // The service on the origin Tokenmint allows.
    let service = WsService::start(
        port,
        vec![
            ("TOKENMINT_URL", app.address.clone()),
            ("TOKENMINT_ISSUER", app.services.settings.issuer.clone()),
            ("AUDIENCE", AUDIENCE.to_owned()),
            ("TICKETS_API_KEY", key["key"].as_str().unwrap().to_owned()),
        ],
    )
    .await;
    assert_eq!(service.origin, origin);

    let summary = run_scenario(
        "tickets.mjs",
        vec![
            ("APP", service.origin.clone()),
            ("USERNAME", "alice".to_owned()),
            ("PASSWORD", "alice-password".to_owned()),
            ("OTHER_AUDIENCE", OTHER.to_owned()),
            ("TTL_MS", "2000".to_owned()),
        ],
    )
    .await;
    eprintln!("tickets in the browser: {summary}");

    let first = &summary["first"];
    assert_eq!(first["connected"], true, "{summary}");
    assert_eq!(first["hello"]["verified"], "redeem");
    assert_eq!(first["hello"]["username"], "alice");
    assert_eq!(first["hello"]["sub"], alice.as_str());
    assert_eq!(first["hello"]["tenant_id"], "default");
    assert_eq!(summary["offline"]["connected"], true);
    assert_eq!(summary["offline"]["hello"]["verified"], "offline");
    assert_eq!(summary["offline"]["hello"]["sub"], alice.as_str());
    for refused in [
        "again",
        "other_audience",
        "other_audience_offline",
        "access_token",
        "access_token_offline",
        "expired",
        "expired_offline",
        "after_logout",
    ] {
        assert_eq!(summary[refused]["connected"], false, "{refused}: {summary}");
    }
    // What offline verification cannot know (documented): a logout inside the ticket's
    // seconds. Redemption is the way to exactly-once and revocation.
    assert_eq!(summary["after_logout_offline"]["connected"], true);
    // Each refusal for its own reason, in the order of the scenario (the service logs
    // Tokenmint's message, or jsonwebtoken's, for every connection it refuses).
    let log = std::fs::read_to_string(service.log.path()).unwrap();
    let reasons: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("refused a connection: "))
        .collect();
    let expected = [
        "the ticket was already used",
        "another audience",
        "InvalidAudience",
        "invalid ticket",
        "not a ticket (typ)",
        "the ticket has expired",
        "ExpiredSignature",
        "revoked",
    ];
    assert_eq!(reasons.len(), expected.len(), "{log}");
    for (reason, want) in reasons.iter().zip(expected) {
        assert!(
            reason.contains(want),
            "{reason:?} should say {want:?}\n{log}"
        );
    }
}

/// The example service closes a live socket once its session is revoked: it polls the
/// security events and closes with 4001; a refresh closes nothing, and another user's
/// socket stays open.
#[tokio::test]
async fn a_logout_in_another_tab_closes_the_sessions_websocket_within_seconds() {
    if !browser_available() {
        return;
    }
    const AUDIENCE: &str = "wss://agents.example";
    let port = crate::helpers::free_port();
    let page_origin = format!("http://127.0.0.1:{port}");
    let app = crate::helpers::spawn_app_with(move |s| {
        s.cors_origins = vec![page_origin];
        s.ticket_audiences = vec![AUDIENCE.to_owned()];
    })
    .await;
    for name in ["alice", "bob"] {
        app.create_user(
            name,
            &format!("{name}-password"),
            &["chat"],
            serde_json::json!({}),
        )
        .await;
    }
    let admin = app.admin_token().await;
    let tickets = app.api_key(&admin, &["tickets"]).await.1;
    let events = app.api_key(&admin, &["events"]).await.1;
    let service = WsService::start(
        port,
        vec![
            ("TOKENMINT_URL", app.address.clone()),
            ("TOKENMINT_ISSUER", app.services.settings.issuer.clone()),
            ("AUDIENCE", AUDIENCE.to_owned()),
            ("TICKETS_API_KEY", tickets),
            ("EVENTS_API_KEY", events),
        ],
    )
    .await;
    let summary = run_scenario(
        "ticket_events.mjs",
        vec![
            ("APP", service.origin.clone()),
            ("USERNAME", "alice".to_owned()),
            ("PASSWORD", "alice-password".to_owned()),
            ("OTHER_USERNAME", "bob".to_owned()),
            ("OTHER_PASSWORD", "bob-password".to_owned()),
        ],
    )
    .await;
    eprintln!("security events in the browser: {summary}");
    let log = std::fs::read_to_string(service.log.path()).unwrap();
    assert_eq!(summary["opened"]["open"], true, "{summary}\n{log}");
    assert_eq!(summary["other_opened"]["open"], true, "{summary}");
    assert_eq!(
        summary["after_refresh"]["open"], true,
        "a refresh closes nothing: {summary}\n{log}"
    );
    let closed = &summary["after_logout"];
    assert_eq!(closed["open"], false, "{summary}\n{log}");
    assert_eq!(closed["code"], 4001, "{summary}");
    assert_eq!(closed["reason"], "session revoked", "{summary}");
    let after = summary["closed_after_ms"].as_i64().unwrap();
    assert!(after < 2000, "closed {after} ms after the logout");
    assert_eq!(summary["other_after_logout"]["open"], true, "{summary}");
    assert!(
        log.contains("security event: session revoked: closing 1 sockets"),
        "{log}"
    );
}

/// The app of the client-library tests: a page that loads `clients/js` (as
/// `/tokenmint-client.js`). Returns its origin.
async fn serve_client_page() -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let source = |file: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("clients/js/src")
                .join(file),
        )
        .unwrap()
    };
    let (library, dpop) = (source("index.js"), source("dpop.js"));
    let page = r#"<!doctype html><meta charset="utf-8"><title>app</title>
<script type="module">
import { createClient } from '/tokenmint-client.js';
window.tokenmint = { createClient };
window.ready = true;
</script>"#;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = HttpServer::new(move || {
        let library = library.clone();
        let dpop = dpop.clone();
        App::new()
            // index.js imports `./dpop.js`: next to it.
            .route(
                "/dpop.js",
                web::get().to(move || {
                    let dpop = dpop.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/javascript")
                            .body(dpop)
                    }
                }),
            )
            .route(
                "/tokenmint-client.js",
                web::get().to(move || {
                    let library = library.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/javascript")
                            .body(library)
                    }
                }),
            )
            .default_service(web::to(move || async move {
                HttpResponse::Ok().content_type("text/html").body(page)
            }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    origin
}

/// A control endpoint for a scenario: moves `app`'s clock and reads a session's rotation
/// chain. Returns its URL.
async fn serve_control(app: &crate::helpers::TestApp) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let clock = app.clock.clone();
    let db = app.services.db.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let control = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = HttpServer::new(move || {
        let clock = clock.clone();
        let db = db.clone();
        App::new()
                .route(
                    "/advance/{secs}",
                    web::post().to(move |secs: web::Path<u64>| {
                        let clock = clock.clone();
                        async move {
                            clock.advance(std::time::Duration::from_secs(*secs));
                            HttpResponse::Ok().json(serde_json::json!({"advanced": *secs}))
                        }
                    }),
                )
                .route(
                    "/session/{sid}",
                    web::get().to(move |sid: web::Path<String>| {
                        let db = db.clone();
                        async move {
                            HttpResponse::Ok().json(rotation_chain(&db, sid.into_inner()).await)
                        }
                    }),
                )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    control
}

/// A session as the server saw it: rotations (its head's generation) and whether it is
/// revoked. (A fork, two heads of one session, cannot be stored: a session is one row.)
async fn rotation_chain(db: &tokenmint::store::Db, sid: String) -> Value {
    use diesel::prelude::*;
    use tokenmint::store::schema::sessions;
    db.run(move |conn| -> Result<Value, tokenmint::store::StoreError> {
        let found: Option<(i64, Option<chrono::NaiveDateTime>)> = sessions::table
            .find(&sid)
            .select((sessions::generation, sessions::revoked_at))
            .first(conn)
            .optional()?;
        let (rotations, revoked) = found.unwrap_or((0, None));
        Ok(serde_json::json!({
            "rotations": rotations,
            "revoked": revoked.is_some(),
        }))
    })
    .await
    .unwrap()
}

/// Runs a scenario of the client library (`clients/js` served on an app origin of its
/// own) against a server whose public URL is the address the browser calls (DPoP proofs
/// name it), with the control endpoint and a user `alice`.
async fn client_library_scenario(script: &'static str) -> Value {
    let app_origin = serve_client_page().await;
    let allowed = app_origin.clone();
    let port = crate::helpers::free_port();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.cors_origins = vec![allowed];
        s.bind = ([127, 0, 0, 1], port).into();
        s.issuer = format!("http://127.0.0.1:{port}");
    })
    .await;
    let control = serve_control(&app).await;
    app.create_user("alice", "alice-password", &[], serde_json::json!({}))
        .await;
    run_scenario(
        script,
        vec![
            ("APP", app_origin),
            ("ISSUER", app.address.clone()),
            ("CONTROL", control),
            ("USERNAME", "alice".to_owned()),
            ("PASSWORD", "alice-password".to_owned()),
        ],
    )
    .await
}

#[tokio::test]
async fn the_client_library_keeps_tabs_on_one_session_and_ends_it_once() {
    if !browser_available() {
        return;
    }
    let summary = client_library_scenario("client_tabs.mjs").await;
    eprintln!("client library in the browser: {summary}");

    // Five tabs, three requests each, all with an access token the server calls expired.
    let tabs = &summary["five_tabs"];
    assert_eq!(tabs["requests"], 15);
    assert_eq!(tabs["ok"], 15, "{tabs}");
    assert_eq!(
        tabs["burst_rotations"], 1,
        "one rotation for the whole burst: {tabs}"
    );
    // The four new tabs hold no session yet, so none of them takes a token from the
    // channel (anything on the origin could post one): each refreshes once, right after
    // login, and a head younger than the leeway is answered as it is, so nothing rotated.
    // The burst then costs one refresh: the tabs now hold the session, and adopt its token.
    assert_eq!(
        tabs["warmup_rotations"], 0,
        "a head younger than the leeway is not rotated: {tabs}"
    );
    assert_eq!(tabs["refresh_requests"], 4 + 1, "{tabs}");
    assert_eq!(tabs["revoked"], false);
    assert_eq!(tabs["session_ended"], serde_json::json!([]));

    // A lost refresh answer: retried by the library, converged, nobody logged out.
    for name in ["lost_answer_memory", "lost_answer_cookie"] {
        let lost = &summary[name];
        assert_eq!(lost["aborted"], 1, "{name}: {lost}");
        assert_eq!(lost["answer"]["status"], 200, "{name}: {lost}");
        assert_eq!(lost["refresh_requests"], 2, "{name}: the library retried");
        // One rotation either way: in memory the retry presents the spent token within the
        // leeway and gets the head; in cookie mode the lost answer's cookie had arrived,
        // and the retry presents that head, younger than the leeway: answered as it is.
        assert_eq!(lost["rotations"], 1, "{name}: {lost}");
        assert_eq!(lost["revoked"], false);
        assert_eq!(lost["session_ended"], serde_json::json!([]));
    }

    let cookie = &summary["cookie_mode"];
    assert_eq!(cookie["app_document_cookie"], "");
    assert_eq!(cookie["issuer_document_cookie"], "");
    assert_eq!(cookie["http_only"], serde_json::json!([true]));
    // The device proof's cookie too: kept by the browser, out of reach of scripts.
    assert_eq!(cookie["device_http_only"], serde_json::json!([true]));
    assert_eq!(cookie["local_storage"], 0);
    assert_eq!(cookie["session_storage"], 0);
    assert_eq!(cookie["after_reload"]["status"], 200);

    let refusals = &summary["refusals"];
    assert_eq!(refusals["revoked"]["status"], 401);
    assert_eq!(refusals["revoked"]["code"], "TOKEN_REVOKED");
    assert_eq!(
        refusals["refreshes_after_revoked"], 0,
        "no refresh for TOKEN_REVOKED"
    );
    assert_eq!(refusals["reuse"], "REFRESH_TOKEN_REUSED");
    assert_eq!(refusals["revoked_session"], true);
    assert_eq!(
        refusals["session_ended"],
        serde_json::json!(["REFRESH_TOKEN_REUSED"]),
        "once, though the app kept calling"
    );

    // Two browsers of one user: the laptop lists both (newest first: the phone), knows
    // itself, sees the phone's real user agent, and ends the phone's session.
    let sessions = &summary["sessions"];
    assert!(
        sessions["earlier_ended"].as_u64().unwrap() >= 1,
        "{sessions}"
    );
    assert_eq!(
        sessions["listed"],
        serde_json::json!([
            {"is_laptop": false, "is_phone": true, "current": false, "same_user_agent": true, "ip": "127.0.0.1"},
            {"is_laptop": true, "is_phone": false, "current": true, "same_user_agent": true, "ip": "127.0.0.1"},
        ]),
        "{sessions}"
    );
    assert_eq!(sessions["phone_after"]["status"], 401, "{sessions}");
    assert_eq!(
        sessions["phone_after"]["code"], "TOKEN_REVOKED",
        "{sessions}"
    );
    assert_eq!(sessions["laptop_after"]["status"], 200, "{sessions}");
}

/// DPoP in Chromium (`tests/browser/dpop_tabs.mjs`): the client library with `dpop: true`
/// on another origin. Tokens copied out of the page are useless elsewhere; five tabs
/// sharing the session and its key refresh at once for three rounds without ending it;
/// a reload keeps the key and the session.
#[tokio::test]
async fn dpop_in_the_browser_binds_tokens_that_a_copy_cannot_use() {
    if !browser_available() {
        return;
    }
    let summary = client_library_scenario("dpop_tabs.mjs").await;
    eprintln!("DPoP in the browser: {summary}");
    let copied = &summary["copied"];
    assert_eq!(copied["token_type"], "DPoP", "{copied}");
    assert_eq!(copied["in_page"]["status"], 200, "{copied}");
    for replay in ["access_as_dpop", "access_as_bearer", "refresh"] {
        assert_eq!(copied[replay]["status"], 401, "{replay}: {copied}");
    }
    assert_eq!(copied["key_exportable"], false, "{copied}");

    let tabs = &summary["tabs"];
    for round in tabs["rounds"].as_array().unwrap() {
        assert_eq!(round["ok"], 15, "{tabs}");
    }
    assert_eq!(tabs["revoked"], false, "{tabs}");
    assert_eq!(tabs["session_ended"], serde_json::json!([]), "{tabs}");
    assert_eq!(tabs["after_reload"]["status"], 200, "{tabs}");
    assert_eq!(tabs["revoked_after_reload"], false, "{tabs}");
}

/// The client library's own unit tests (its state machine against a fake server), in
/// Node's test runner: `cd clients/js && npm test` does the same.
#[test]
fn the_client_librarys_unit_tests_pass() {
    let demanded = std::env::var("TOKENMINT_TEST_BROWSER").is_ok_and(|v| v == "1");
    let output = match std::process::Command::new("node")
        .args(["--test", "test/"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js"))
        .output()
    {
        Ok(output) => output,
        Err(e) if !demanded => {
            eprintln!("skipping the client library's unit tests: node is missing ({e})");
            return;
        }
        Err(e) => panic!("TOKENMINT_TEST_BROWSER=1, but node cannot run: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}

#[tokio::test]
async fn the_admin_console_in_chromium() {
    if !browser_available() {
        return;
    }
    let page = serve_app_page("<!doctype html><title>app</title><p>another origin</p>").await;
    let origin = page.clone();
    let app = crate::helpers::spawn_app_with(move |s| s.cors_origins = vec![origin]).await;
    // Markup in the name people read (usernames cannot hold it).
    app.create_user(
        "bob",
        "bob-password",
        &["read"],
        serde_json::json!({"name": crate::console::HOSTILE}),
    )
    .await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let summary = run_scenario(
        "console.mjs",
        vec![
            ("ISSUER", app.address.clone()),
            ("APP", page),
            ("ADMIN_PASSWORD", crate::helpers::ADMIN_PASSWORD.to_owned()),
            ("USER", "bob".to_owned()),
            ("HOSTILE", crate::console::HOSTILE.to_owned()),
            ("SHOTS", shots.display().to_string()),
        ],
    )
    .await;
    eprintln!("console in the browser: {summary}");
    use serde_json::json;

    assert_eq!(
        summary["login"],
        json!({"status": 200, "url": "/admin/users"})
    );
    // The secret once; a reload shows it no more.
    assert_eq!(summary["secret"]["shown"], true);
    assert_eq!(summary["secret"]["url"], "/admin/api-keys/created");
    assert_eq!(summary["secret"]["after_reload"], false);
    assert_eq!(summary["secret"]["after_reload_text"], false);
    // The key worked, and was refused once disabled.
    assert_eq!(summary["key"]["before"], 200);
    assert_eq!(summary["key"]["after"], 401);
    // Markup typed as names is text: no image, no dialog.
    assert_eq!(summary["key"]["listed_as_text"], true);
    assert_eq!(summary["other_session"]["user_agent_as_text"], true);
    assert_eq!(summary["user"], json!({"name_as_text": true, "images": 0}));
    for images in [
        &summary["secret"]["images"],
        &summary["key"]["images"],
        &summary["other_session"]["images"],
    ] {
        assert_eq!(*images, 0);
    }
    assert_eq!(summary["dialogs"], json!([]));
    // The other context's session ended at once; the user's other one did not.
    assert_eq!(summary["other_session"]["before"], 200);
    assert_eq!(summary["other_session"]["listed"], 2);
    assert_eq!(summary["other_session"]["after"], 401);
    assert_eq!(summary["other_session"]["untouched"], 200);
    assert_eq!(summary["non_admin"], json!({"status": 403, "says": true}));
    assert_eq!(
        summary["csrf"],
        json!({"status": 403, "keys_unchanged": true})
    );
    assert_eq!(summary["withdrawal"]["status"], 200);
    assert_eq!(summary["withdrawal"]["url"], "/admin/signing-keys");
    assert_eq!(summary["withdrawal"]["state"], "withdrawn");
    assert_eq!(summary["withdrawal"]["in_jwks"], false);
    for screen in ["audit", "clients", "tenants"] {
        assert_eq!(summary[screen], 200, "{screen}");
    }
    // Framed by another origin: refused (Chromium shows its error page instead).
    assert_eq!(
        summary["framed"]["login_form"], false,
        "{}",
        summary["framed"]
    );
    assert_eq!(summary["own_session"]["url"], "/admin/login");
    let screenshots = summary["screenshots"].as_array().unwrap();
    assert!(screenshots.len() >= 12, "{screenshots:?}");
    for name in screenshots {
        let file = shots.join(format!("{}.png", name.as_str().unwrap()));
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "{}",
            file.display()
        );
    }
}
