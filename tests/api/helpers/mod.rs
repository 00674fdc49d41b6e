//! `spawn_app()`: the real server on a random port, with its own database.
//!
//! By default each app gets its own SQLite file and the in-memory revocation list.
//! With `TOKENMINT_TEST_DATABASE_URL` it gets its own fresh PostgreSQL database, with
//! `TOKENMINT_TEST_REDIS_URL` its own Redis key prefix. Set but unreachable fails the test.

pub mod dpop;
pub mod processes;

use std::sync::{Arc, Once};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
use reqwest::Url;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokenmint::clock::ShiftedClock;
use tokenmint::config::{DatabaseUrl, Settings};
use tokenmint::identity::NewUser;
use tokenmint::identity::passwords::Password;
use tokenmint::model::Admin;
use tokenmint::model::{Claims, Role, Scope, User, Username};
use tokenmint::startup::{Application, Services};
use uuid::Uuid;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

static TRACING: Once = Once::new();

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ShiftedClock>,
    pub services: Services,
    _database: TestDatabase,
}

/// A database of a test's own: a SQLite file in a temporary directory, or, with
/// `TOKENMINT_TEST_DATABASE_URL`, a fresh PostgreSQL database dropped afterwards.
pub struct TestDatabase {
    /// Where it is.
    pub url: DatabaseUrl,
    /// The same, as a `TOKENMINT_DATABASE_URL` value.
    pub url_string: String,
    /// The temporary directory (the SQLite file, generated keys, logs).
    pub dir: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(url) = non_empty_env("TOKENMINT_TEST_DATABASE_URL") else {
            let path = dir.path().join("tokenmint.db");
            return Self {
                url_string: format!("sqlite://{}", path.display()),
                url: DatabaseUrl::Sqlite(path),
                dir,
                pg_database: None,
            };
        };
        let name = format!("tokenmint_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&url)
            .unwrap_or_else(|e| panic!("TOKENMINT_TEST_DATABASE_URL is set but unreachable: {e}"));
        diesel::sql_query(format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .expect("create test database");
        let mut test_url = Url::parse(&url).expect("TOKENMINT_TEST_DATABASE_URL is a URL");
        test_url.set_path(&format!("/{name}"));
        Self {
            // As the service reads TOKENMINT_DATABASE_URL (loopback: plain text first).
            url: DatabaseUrl::parse(test_url.as_str()).expect("a PostgreSQL URL"),
            url_string: test_url.to_string(),
            dir,
            pg_database: Some((url, name)),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_database.take() {
            // Best effort: leave the machine's PostgreSQL as we found it.
            if let Ok(mut conn) = PgConnection::establish(&admin_url) {
                let _ =
                    diesel::sql_query(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                        .execute(&mut conn);
            }
        }
    }
}

/// The answer of a login or a refresh, typed (what a client reads of it).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Pair {
    pub access_token: String,
    /// Absent in cookie mode and for a client without the refresh grant.
    pub refresh_token: Option<String>,
    pub session_id: String,
    pub scope: String,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
}

impl Pair {
    /// The refresh token (the test expects one).
    pub fn refresh(&self) -> &str {
        self.refresh_token.as_deref().expect("a refresh token")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_seeded(customize, |_| async {}).await
}

/// Like [`spawn_app_with`], with `seed` run on the test's database before the server
/// starts (to build the database an older release left, say).
pub async fn spawn_app_seeded<F, Fut>(customize: impl FnOnce(&mut Settings), seed: F) -> TestApp
where
    F: FnOnce(DatabaseUrl) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tokenmint::telemetry::init("info").expect("log filter");
        }
    });
    let database = TestDatabase::new();
    let mut settings = Settings::for_tests(database.dir.path(), ADMIN_PASSWORD);
    settings.database_url = database.url.clone();
    // As many connections as a deployment on this database has by default (on
    // PostgreSQL, concurrent requests run on several).
    settings.db_pool_size = Settings::default_pool_size(&settings.database_url);
    if let Some(url) = non_empty_env("TOKENMINT_TEST_REDIS_URL") {
        settings.redis_url = Some(SecretString::from(url));
        settings.redis_prefix = format!("tokenmint-test:{}:", Uuid::new_v4().simple());
    }
    customize(&mut settings);
    seed(settings.database_url.clone()).await;

    let clock = Arc::new(ShiftedClock::new());
    let app = Application::build(settings, clock.clone())
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let services = app.services();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        address,
        client,
        clock,
        services,
        _database: database,
    }
}

pub fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_login(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/login"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Logs in and returns the parsed 200 body.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .post_login(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(response.status(), 200, "login of {username}");
        response.json().await.expect("json")
    }

    /// Logs in and returns the typed 200 answer.
    pub async fn log_in(&self, username: &str, password: &str) -> Pair {
        let response = self
            .post_login(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(response.status(), 200, "login of {username}");
        response.json().await.expect("a token pair")
    }

    /// Refreshes and returns the typed 200 answer.
    pub async fn refreshed(&self, refresh_token: &str) -> Pair {
        let response = self.post_refresh(refresh_token).await;
        assert_eq!(response.status(), 200, "refresh");
        response.json().await.expect("a token pair")
    }

    /// `POST /api/refresh-token` with this `Cookie` header and no body.
    pub async fn refresh_with_cookie(&self, cookie: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/refresh-token"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/refresh-token"))
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .expect("request")
    }

    /// Refreshes and returns the parsed 200 body.
    pub async fn refresh(&self, refresh_token: &str) -> Value {
        let response = self.post_refresh(refresh_token).await;
        assert_eq!(response.status(), 200, "refresh");
        response.json().await.expect("json")
    }

    /// Every table of the database (from its catalogue, so a new table is counted too)
    /// with its number of rows, by name.
    pub async fn row_counts(&self) -> std::collections::BTreeMap<String, i64> {
        use diesel::sql_types::{BigInt, Text};
        #[derive(diesel::QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            name: String,
        }
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        self.services
            .db
            .run(|conn| -> Result<_, tokenmint::store::StoreError> {
                let catalogue = match conn {
                    tokenmint::store::DbConnection::Postgres(_) => {
                        "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
                    }
                    tokenmint::store::DbConnection::Sqlite(_) => {
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                    }
                };
                let names: Vec<Name> = diesel::sql_query(catalogue).load(conn)?;
                let mut counts = std::collections::BTreeMap::new();
                for Name { name } in names {
                    let count: Count =
                        diesel::sql_query(format!(r#"SELECT COUNT(*) AS n FROM "{name}""#))
                            .get_result(conn)?;
                    counts.insert(name, count.n);
                }
                Ok(counts)
            })
            .await
            .expect("count rows")
    }

    /// A session's head generation and whether it is revoked.
    pub async fn session_state(&self, session_id: &str) -> (i64, bool) {
        use diesel::prelude::*;
        use tokenmint::store::schema::sessions;
        let id = session_id.to_owned();
        self.services
            .db
            .run(move |conn| -> Result<_, tokenmint::store::StoreError> {
                let (generation, revoked): (i64, Option<chrono::NaiveDateTime>) = sessions::table
                    .find(&id)
                    .select((sessions::generation, sessions::revoked_at))
                    .first(conn)?;
                Ok((generation, revoked.is_some()))
            })
            .await
            .expect("read the session")
    }

    /// Introspects `token` as `caller` (a bearer token, or an API key if it starts with `tmk_`).
    pub async fn introspect(&self, caller: &str, token: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::POST,
            "/api/token/introspect",
            caller,
            Some(json!({"token": token})),
        )
        .await
    }

    /// Introspects as the admin and returns `active`.
    pub async fn is_active(&self, token: &str) -> bool {
        let admin = self.admin_token().await;
        let response = self.introspect(&admin, token).await;
        assert_eq!(response.status(), 200, "introspection");
        response.json::<Value>().await.expect("json")["active"]
            .as_bool()
            .expect("active")
    }

    /// An admin call with a bearer token or (when it starts with `tmk_`) an API key.
    /// `GET path` with `credential`, expecting 200: its JSON body.
    pub async fn get_json(&self, path: &str, credential: &str) -> Value {
        let response = self
            .call(reqwest::Method::GET, path, credential, None)
            .await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        request = if credential.starts_with("tmk_") {
            request.header("x-api-key", credential)
        } else {
            request.bearer_auth(credential)
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn get_me(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.url("/api/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Creates an API key with `scopes` as `admin`; its id and its secret.
    pub async fn api_key(&self, admin: &str, scopes: &[&str]) -> (String, String) {
        let created: Value = self
            .call(
                reqwest::Method::POST,
                "/api/admin/api-keys",
                admin,
                Some(json!({"name": "test key", "scopes": scopes})),
            )
            .await
            .json()
            .await
            .expect("json");
        (
            created["id"].as_str().expect("id").to_owned(),
            created["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Creates a user through the domain, as the command line does.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        scopes: &[&str],
        claims: Value,
    ) -> User {
        let Value::Object(claims) = claims else {
            panic!("claims must be an object")
        };
        let new = NewUser {
            username: Username::parse(username).expect("username"),
            password: Password::parse_new(SecretString::from(password.to_owned()))
                .expect("password"),
            roles: vec![Role::parse("user").unwrap()],
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            claims: Claims::parse(claims).expect("claims"),
            tenant: None,
        };
        self.services
            .identity
            .create_user(&Admin::operator(), new, self.services.clock.now())
            .await
            .expect("user created")
    }

    /// Registers a client in `default` through the domain, as the command line does:
    /// public, with grants `password` and `refresh_token`, so logins may name it.
    pub async fn register_login_client(&self, client_id: &str, scopes: &[&str]) {
        use tokenmint::model::{ClientId, ClientKind, GrantType};
        use tokenmint::oauth::clients::NewClient;
        let new = NewClient {
            client_id: Some(ClientId::parse(client_id).expect("client id")),
            name: format!("{client_id} (test)"),
            tenant: None,
            kind: ClientKind::Public,
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            audiences: vec![],
        };
        self.services
            .clients
            .create(&Admin::operator(), new, self.services.clock.now())
            .await
            .expect("client registered");
    }

    /// Another instance on the same database and Redis prefix: a restart, or a replica.
    pub async fn another_instance(&self) -> TestApp {
        let database_url = self.services.settings.database_url.clone();
        let prefix = self.services.settings.redis_prefix.clone();
        spawn_app_with(|s| {
            s.database_url = database_url;
            s.redis_prefix = prefix;
        })
        .await
    }

    /// `POST /oauth/token` with a form and, optionally, HTTP Basic client credentials.
    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.expect("request")
    }

    /// Registers a confidential client with only `client_credentials` in `tenant` (none:
    /// the admin's) and returns its own access token (no password hash on the way).
    pub async fn client_credentials_token(&self, admin: &str, tenant: Option<&str>) -> String {
        let mut body = json!({"name": "worker", "type": "confidential",
                              "grant_types": ["client_credentials"], "scopes": []});
        if let Some(tenant) = tenant {
            body["tenant"] = json!(tenant);
        }
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/admin/clients",
                admin,
                Some(body),
            )
            .await;
        assert_eq!(created.status(), 201, "client registered");
        let client: Value = created.json().await.expect("json");
        let answer = self
            .token_request(
                &[("grant_type", "client_credentials")],
                Some((
                    client["client_id"].as_str().expect("client_id"),
                    client["client_secret"].as_str().expect("client_secret"),
                )),
            )
            .await;
        assert_eq!(answer.status(), 200, "client credentials");
        answer.json::<Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a tenant as the default admin and returns its id.
    pub async fn create_tenant(&self, admin: &str, id: &str) {
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/admin/tenants",
                admin,
                Some(json!({"id": id, "name": format!("Tenant {id}")})),
            )
            .await;
        assert_eq!(created.status(), 201, "tenant {id}");
    }

    /// Creates a user in `tenant` through the admin API and returns its id.
    pub async fn create_tenant_user(
        &self,
        admin: &str,
        tenant: &str,
        username: &str,
        roles: &[&str],
        scopes: &[&str],
    ) -> String {
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/admin/users",
                admin,
                Some(
                    json!({"username": username, "password": format!("{username}-password"),
                            "tenant": tenant, "roles": roles, "scopes": scopes}),
                ),
            )
            .await;
        assert_eq!(created.status(), 201, "user {username} in {tenant}");
        created.json::<Value>().await.expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Logs a user of `tenant` in (password `<username>-password`); the parsed 200 body.
    pub async fn tenant_login(&self, tenant: &str, username: &str) -> Value {
        let response = self
            .post_login(
                &json!({"username": username, "password": format!("{username}-password"),
                                "tenant": tenant}),
            )
            .await;
        assert_eq!(response.status(), 200, "login of {username} in {tenant}");
        response.json().await.expect("json")
    }

    /// Signs arbitrary claims with the server's current key, header typ `at+jwt`.
    pub fn sign(&self, claims: &Value) -> String {
        self.services.keyring.sign(claims).expect("sign").0
    }

    /// The database as a `TOKENMINT_DATABASE_URL` value (for a process of its own).
    pub fn database_url(&self) -> &str {
        &self._database.url_string
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.services.clock.now()
    }

    pub fn current_kid(&self) -> String {
        self.services.keyring.current_kid().expect("a current key")
    }
}

/// Decodes one base64url JWT part into JSON.
/// The `id` of every item of a page (`{"items": [...]}`), in order.
pub fn item_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

pub fn jwt_part(token: &str, index: usize) -> Map<String, Value> {
    let part = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON part")
}

/// A JWT from raw parts, signature given as bytes.
pub fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("json"));
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Asserts an API.md error: status, code, and a JSON body of exactly error + message.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(response.status(), status, "status");
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(Map::len), Some(2), "{body}");
    headers
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 5 s) until a server started as a child process answers `/healthz`.
pub async fn wait_until_serving(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How a signing-key row planted by [`TestApp::plant_key`] carries its private part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planted {
    /// Sealed under the service's key-encryption key, matching the public key.
    Sealed,
    /// No private part at all: only a public key.
    Unsealed,
    /// The sealed private part of another key.
    SealedOtherKey,
    /// Sealed under another key-encryption key.
    SealedOtherKek,
}

/// The key-encryption key of `Settings::for_tests`.
pub const TEST_KEK: [u8; 32] = [7u8; 32];

impl TestApp {
    /// Inserts a `next` ES256 signing key as someone with write access to the database
    /// would, and reloads the keyring. Returns its kid and private key.
    pub async fn plant_key(&self, how: Planted) -> (String, tokenmint::keys::material::KeyPair) {
        use jsonwebtoken::jwk::ThumbprintHash;
        use tokenmint::keys::SigningAlg;
        use tokenmint::keys::kek::{Kek, KeyEncryptionKey};
        use tokenmint::keys::material::KeyPair;
        let pkcs8 = KeyPair::generate_pkcs8(SigningAlg::Es256).unwrap();
        let pair = KeyPair::from_pkcs8(SigningAlg::Es256, &pkcs8).unwrap();
        let mut jwk = pair.public_jwk("").unwrap();
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        jwk.common.key_id = Some(kid.clone());
        let kek = Kek::new(&KeyEncryptionKey::new(Box::new(TEST_KEK))).unwrap();
        let private_key = match how {
            Planted::Sealed => Some(kek.encrypt(&pkcs8, &kid).unwrap()),
            Planted::Unsealed => None,
            Planted::SealedOtherKey => {
                let other = KeyPair::generate_pkcs8(SigningAlg::Es256).unwrap();
                Some(kek.encrypt(&other, &kid).unwrap())
            }
            Planted::SealedOtherKek => {
                let other = Kek::new(&KeyEncryptionKey::new(Box::new([9u8; 32]))).unwrap();
                Some(other.encrypt(&pkcs8, &kid).unwrap())
            }
        };
        let row = tokenmint::store::signing_keys::SigningKeyRow {
            kid: kid.clone(),
            alg: "ES256".to_owned(),
            status: "next".to_owned(),
            public_jwk: serde_json::to_string(&jwk).unwrap(),
            private_key,
            created_at: self.clock_now().naive_utc(),
            activated_at: None,
            retired_at: None,
            deactivated_at: None,
        };
        self.services
            .db
            .run(move |conn| -> Result<(), tokenmint::store::StoreError> {
                tokenmint::store::signing_keys::insert(conn, &row)
            })
            .await
            .unwrap();
        // Whatever the row holds, reloading must not fail the service.
        self.services.keyring.reload().await.unwrap();
        (kid, pair)
    }

    /// Valid access-token claims for `sub`, issued now for `lifetime_secs`.
    pub fn claims(&self, sub: &str, lifetime_secs: i64) -> Value {
        let now = self.clock_now().timestamp();
        json!({
            "iss": "http://tokenmint.test", "sub": sub, "aud": "tokenmint",
            "iat": now, "nbf": now, "exp": now.saturating_add(lifetime_secs),
            "jti": Uuid::new_v4().to_string(), "sid": Uuid::new_v4().to_string(),
            "scope": "", "roles": [], "username": "someone"
        })
    }
}

/// A compact JWS of `claims` under `header`, signed by `pair`.
pub fn sign_jws(
    pair: &tokenmint::keys::material::KeyPair,
    header: &Value,
    claims: &Value,
) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{c}");
    let signature = pair.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Every order of `0..n`: for checking that answers to requests sent together are those
/// of some order of them, one at a time (linearizability).
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    match n {
        0 => vec![vec![]],
        _ => {
            let mut out = Vec::new();
            for rest in permutations(n - 1) {
                for at in 0..=rest.len() {
                    let mut p = rest.clone();
                    p.insert(at, n - 1);
                    out.push(p);
                }
            }
            out
        }
    }
}
