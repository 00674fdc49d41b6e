//! PostgreSQL going away mid-service: requests answer 503 within the configured timeout
//! (never a 500, never a hang), and the service resumes by itself when it returns.
//! The database is real; a TCP proxy in front of it plays the outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tokenmint::config::DatabaseUrl;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::helpers::{ADMIN_PASSWORD, assert_error, spawn_app_with};

struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().await.push(link);
            }
        });
        Self { port, up, links }
    }

    /// The database is gone: every open connection is cut, new ones are refused.
    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_lost_database_answers_503_and_the_service_resumes_by_itself() {
    let Ok(admin_url) = std::env::var("TOKENMINT_TEST_DATABASE_URL") else {
        return;
    };
    if admin_url.trim().is_empty() {
        return;
    }
    let target = reqwest::Url::parse(&admin_url).unwrap();
    let proxy = Proxy::start(format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port().unwrap_or(5432)
    ))
    .await;
    let port = proxy.port;
    let app = spawn_app_with(|s| {
        s.db_timeout = Duration::from_secs(1);
        let DatabaseUrl::Postgres(url) = &s.database_url else {
            panic!("PostgreSQL expected")
        };
        let mut url = reqwest::Url::parse(url.expose_secret()).unwrap();
        url.set_port(Some(port)).unwrap();
        s.database_url = DatabaseUrl::Postgres(url.to_string().into());
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let login = || {
        client
            .post(app.url("/api/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
    };
    let token: Value = login().await.unwrap().json().await.unwrap();

    proxy.cut().await;

    for _ in 0..3 {
        let response = login().await.expect("an answer, not a hang");
        assert_error(response, 503, "UNAVAILABLE").await;
    }
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["database"],
        "unavailable"
    );
    let jwks = client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200, "keys are served from memory");
    let me = client
        .get(app.url("/api/me"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "verification needs no database");

    proxy.restore();
    let mut status = 0;
    for _ in 0..20 {
        status = login().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "the service resumes without a restart");
    assert_eq!(
        client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
