//! The admin console over HTTP, as a browser without script would use it: its cookies
//! kept by hand, forms posted with the token the page carried. Chromium drives the same
//! pages in `drivers::browser` (console scenario).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, spawn_app};

/// A hostile value, typed wherever the console shows what someone typed.
pub const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// What the console answered.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The value of the first `name="csrf"` field of the page.
    pub fn csrf(&self) -> String {
        field_value(&self.body, "csrf").expect("the page has a CSRF field")
    }

    /// Every `Set-Cookie` line of the answer.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

fn field_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

/// A browser's cookie jar for one origin, by hand.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub jar: BTreeMap<String, String>,
    pub user_agent: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            jar: BTreeMap::new(),
            user_agent: "console-test".to_owned(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        origin: Option<&str>,
    ) -> Page {
        let mut request = self
            .app
            .client
            .request(method, self.app.url(path))
            .header("user-agent", self.user_agent.clone());
        if !self.jar.is_empty() {
            request = request.header("cookie", self.cookie_header());
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await.expect("request");
        let page = Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        };
        for line in page.set_cookies() {
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let cleared = line.to_ascii_lowercase().contains("max-age=0");
            if cleared || value.is_empty() {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), None).await
    }

    pub async fn post_from(&mut self, origin: &str, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), Some(origin))
            .await
    }

    /// The login form, then the login; the answer to the POST.
    pub async fn log_in(&mut self, username: &str, password: &str, tenant: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("tenant", tenant),
            ],
        )
        .await
    }

    /// Logs the bootstrap admin in; asserts it worked.
    pub async fn log_in_admin(&mut self) {
        let answer = self.log_in("admin", ADMIN_PASSWORD, "").await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location(), Some("/admin/users"));
    }

    /// The CSRF token of the session, from a page.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/admin/users").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.csrf()
    }

    /// The console's access token, as its cookie holds it.
    pub fn access_token(&self) -> String {
        self.jar
            .get("__Host-tokenmint_console")
            .cloned()
            .expect("the console's access cookie")
    }
}

async fn admin_id(app: &TestApp, admin: &str) -> String {
    let me: Value = app.get_me(admin).await.json().await.unwrap();
    me["sub"].as_str().unwrap().to_owned()
}

async fn live_sessions(app: &TestApp, admin: &str, user_id: &str) -> Vec<Value> {
    let page = app
        .get_json(&format!("/api/admin/users/{user_id}/sessions"), admin)
        .await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_console_logs_an_admin_in_with_strict_cookies_and_its_pages_need_that_session() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);

    // No session: every page sends the browser to the login page.
    for path in [
        "/admin",
        "/admin/users",
        "/admin/api-keys",
        "/admin/signing-keys",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 303, "{path}");
    }
    assert_eq!(
        browser.get("/admin/users").await.location(),
        Some("/admin/login")
    );

    let form = browser.get("/admin/login").await;
    assert_eq!(form.status, 200);
    assert!(
        form.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = form.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("script-src"), "no script at all: {policy}");
    assert_eq!(form.headers["x-frame-options"], "DENY");
    assert_eq!(form.headers["cache-control"], "no-store");
    let login_cookie = form.set_cookies().join("\n");
    assert!(
        login_cookie.starts_with("__Host-tokenmint_console_login="),
        "{login_cookie}"
    );

    let answer = browser.log_in("admin", ADMIN_PASSWORD, "").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), Some("/admin/users"));
    let cookies = answer.set_cookies();
    for name in [
        "__Host-tokenmint_console=",
        "__Host-tokenmint_console_refresh=",
    ] {
        let cookie = cookies.iter().find(|c| c.starts_with(name)).expect(name);
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=900",
        ] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }

    let users = browser.get("/admin/users").await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert!(users.body.contains(">admin</a>"), "the admin is listed");
    assert!(users.body.contains("action=\"/admin/logout\""));
    for path in [
        "/admin/api-keys",
        "/admin/clients",
        "/admin/signing-keys",
        "/admin/audit",
        "/admin/tenants",
        "/admin/console.css",
    ] {
        assert_eq!(browser.get(path).await.status, 200, "{path}");
    }

    // The console's session is one of the admin's sessions, narrowed to `admin`.
    let admin = app.admin_token().await;
    let id = admin_id(&app, &admin).await;
    let sessions = live_sessions(&app, &admin, &id).await;
    let console = sessions
        .iter()
        .find(|s| s["user_agent"] == "console-test")
        .expect("the console's session is listed");
    assert_eq!(console["scope"], "admin");
    let access = browser.access_token();
    assert_eq!(app.get_me(&access).await.status(), 200);

    // Logout ends it: the cookies are cleared and its token fails everywhere.
    let csrf = browser.csrf().await;
    let out = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/admin/login"));
    assert!(
        browser.jar.is_empty(),
        "cookies cleared: {:?}",
        browser.jar.keys()
    );
    assert_eq!(app.get_me(&access).await.status(), 401);
    let mut replay = Browser::new(&app);
    replay
        .jar
        .insert("__Host-tokenmint_console".to_owned(), access);
    assert_eq!(
        replay.get("/admin/users").await.location(),
        Some("/admin/login")
    );
}

#[tokio::test]
async fn wrong_passwords_and_users_who_are_not_admins_get_no_console_session() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);

    let wrong = browser.log_in("admin", "not the password", "").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong username or password."));
    assert!(!browser.jar.contains_key("__Host-tokenmint_console"));

    // A typed username comes back as text in the form.
    let hostile = browser.log_in(HOSTILE, "whatever", "").await;
    assert_eq!(hostile.status, 401);
    assert!(!hostile.body.contains(HOSTILE), "the name is escaped");
    assert!(hostile.body.contains("&lt;img src=x onerror=alert(1)&gt;"));

    // A user: refused by the login's own scope rule, before any session exists.
    let user = app
        .create_user("carol", "carol-password", &["read"], json!({}))
        .await;
    let refused = browser.log_in("carol", "carol-password", "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("the console is for admins"));
    assert!(
        live_sessions(&app, &admin, &user.id.to_string())
            .await
            .is_empty()
    );

    // The admin scope without the admin role: the session the login opened is ended
    // before the answer.
    let dave = app
        .create_tenant_user(&admin, "default", "dave", &["user"], &["admin"])
        .await;
    let refused = browser.log_in("dave", "dave-password", "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        live_sessions(&app, &admin, &dave).await.is_empty(),
        "no session left"
    );
    assert!(!browser.jar.contains_key("__Host-tokenmint_console"));

    // And a user's own access token is no console cookie.
    let token = app.login("carol", "carol-password").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut planted = Browser::new(&app);
    planted
        .jar
        .insert("__Host-tokenmint_console".to_owned(), token);
    let page = planted.get("/admin/users").await;
    assert_eq!(page.status, 403);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_or_from_another_origin_are_refused_and_change_nothing()
 {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let mut other = Browser::new(&app);
    other.log_in_admin().await;
    let others_token = other.csrf().await;
    let token = browser.csrf().await;
    assert_ne!(token, others_token, "tokens are bound to their session");

    let keys = || async {
        app.get_json("/api/admin/api-keys", &admin).await["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let form = |csrf: &'static str| vec![("csrf", csrf), ("name", "k"), ("scopes", "introspect")];
    let leaked: &'static str = Box::leak(others_token.into_boxed_str());
    for (what, fields) in [
        ("no token", vec![("name", "k"), ("scopes", "introspect")]),
        ("an empty token", form("")),
        (
            "a made-up token",
            form("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        ("another session's token", form(leaked)),
    ] {
        let page = browser.post("/admin/api-keys", &fields).await;
        assert_eq!(page.status, 403, "{what}");
        assert!(page.body.contains("CSRF"), "{what}: {}", page.body);
    }
    // Refused before anything changes: an old enough session is not even renewed.
    let id = admin_id(&app, &admin).await;
    let session = live_sessions(&app, &admin, &id)
        .await
        .iter()
        .filter(|s| s["user_agent"] == "console-test")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let states = || async {
        let mut states = Vec::new();
        for s in &session {
            states.push(app.session_state(s).await);
        }
        states
    };
    let before = states().await;
    app.clock.advance(Duration::from_secs(61));
    let page = browser.post("/admin/api-keys", &[("name", "k")]).await;
    assert_eq!(page.status, 403);
    assert!(
        page.set_cookies().is_empty(),
        "a refused form renews nothing"
    );
    assert_eq!(states().await, before, "no session was rotated");
    let own: &'static str = Box::leak(token.into_boxed_str());
    let page = browser
        .post_from("http://evil.example", "/admin/api-keys", &form(own))
        .await;
    assert_eq!(page.status, 403, "another origin");
    assert_eq!(keys().await, 0, "no key was created");

    // The login form's token is bound to its own cookie.
    let mut stranger = Browser::new(&app);
    let page = stranger
        .post(
            "/admin/login",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(!stranger.jar.contains_key("__Host-tokenmint_console"));

    // Two login forms open in two tabs: the first one still works.
    let mut tabs = Browser::new(&app);
    let first = tabs.get("/admin/login").await.csrf();
    tabs.get("/admin/login").await;
    let page = tabs
        .post(
            "/admin/login",
            &[
                ("csrf", &first),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);

    // With its token, from the console's own origin, the same form works.
    let address = app.address.clone();
    let page = browser
        .post_from(&address, "/admin/api-keys", &form(own))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(keys().await, 1);
}

#[tokio::test]
async fn an_api_keys_secret_is_shown_once_and_the_consoles_actions_are_the_rest_apis() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let csrf = browser.csrf().await;

    let created = browser
        .post(
            "/admin/api-keys",
            &[("csrf", &csrf), ("name", HOSTILE), ("scopes", "introspect")],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.location().unwrap().to_owned();
    assert!(
        location.starts_with("/admin/api-keys/created"),
        "{location}"
    );
    assert!(!created.body.contains("tmk_"));
    let shown = browser.get(&location).await;
    assert_eq!(shown.status, 200);
    let start = shown.body.find("tmk_").expect("the secret is shown");
    let secret: String = shown.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(!shown.body.contains(HOSTILE), "the name is escaped");
    // A reload does not show it again: the cookie that carried it was cleared.
    let again = browser.get(&location).await;
    assert_eq!(again.status, 200);
    assert!(!again.body.contains("tmk_"), "not shown twice");
    assert!(again.body.contains("shown once"));

    // The key works, then the console disables it and it is refused at once.
    let target = app.login("admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.introspect(&secret, &target).await.status(), 200);
    let listed = app.get_json("/api/admin/api-keys", &admin).await;
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["items"][0]["name"], HOSTILE);
    let list = browser.get("/admin/api-keys").await;
    assert!(!list.body.contains(HOSTILE), "escaped in the list too");
    assert!(list.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let page = browser
        .post(&format!("/admin/api-keys/{id}/disable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(app.introspect(&secret, &target).await.status(), 401);

    // Audited as the REST twin is: the admin, the action, the key.
    let audit = app
        .get_json("/api/admin/audit?action=api_key.disable", &admin)
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["action"], "api_key.disable");
    assert_eq!(
        entry["actor"],
        format!("user:{}", admin_id(&app, &admin).await)
    );
    assert_eq!(entry["target"], format!("api_key:{id}"));

    // Enable and delete, the same way.
    browser
        .post(&format!("/admin/api-keys/{id}/enable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(app.introspect(&secret, &target).await.status(), 200);
    browser
        .post(&format!("/admin/api-keys/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(app.introspect(&secret, &target).await.status(), 401);
}

#[tokio::test]
async fn users_sessions_and_every_typed_value_render_as_text() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let csrf = browser.csrf().await;

    // Create a user, find them by a part of the name.
    let created = browser
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", "Erin.Ops"),
                ("password", "erin-password"),
                ("roles", "user"),
                ("scopes", "read"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let user_page = created.location().unwrap().to_owned();
    let user_id = user_page.rsplit('/').next().unwrap().to_owned();
    let found = browser.get("/admin/users?q=in.o").await;
    assert!(found.body.contains("Erin.Ops"));
    let none = browser.get("/admin/users?q=zzz").await;
    assert!(!none.body.contains("Erin.Ops") && none.body.contains("No user matches"));
    assert!(
        !browser
            .get("/admin/users?q=_")
            .await
            .body
            .contains("Erin.Ops"),
        "LIKE's _ is a character"
    );

    // Erin logs in from a hostile User-Agent; the sessions page shows it as text.
    let response = app
        .client
        .post(app.url("/api/login"))
        .header("user-agent", HOSTILE)
        .json(&json!({"username": "erin.ops", "password": "erin-password"}))
        .send()
        .await
        .unwrap();
    let erin: Value = response.json().await.unwrap();
    let sessions = browser.get(&format!("{user_page}/sessions")).await;
    assert_eq!(sessions.status, 200);
    assert!(!sessions.body.contains(HOSTILE));
    assert!(sessions.body.contains("&lt;img src=x onerror=alert(1)&gt;"));

    // End that session from the console: Erin's token fails at once.
    let sid = erin["session_id"].as_str().unwrap();
    let token = erin["access_token"].as_str().unwrap();
    assert_eq!(app.get_me(token).await.status(), 200);
    let ended = browser
        .post(
            &format!("{user_page}/sessions/{sid}/end"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(ended.status, 303);
    assert_eq!(app.get_me(token).await.status(), 401);

    // Roles and disable, as PATCH /api/admin/users does.
    browser
        .post(
            &format!("{user_page}/roles"),
            &[("csrf", &csrf), ("roles", "user auditor")],
        )
        .await;
    let user = app
        .get_json(&format!("/api/admin/users/{user_id}"), &admin)
        .await;
    assert_eq!(user["roles"], json!(["user", "auditor"]));
    browser
        .post(&format!("{user_page}/disable"), &[("csrf", &csrf)])
        .await;
    let user = app
        .get_json(&format!("/api/admin/users/{user_id}"), &admin)
        .await;
    assert_eq!(user["enabled"], false);
    let refused = app
        .post_login(&json!({"username": "erin.ops", "password": "erin-password"}))
        .await;
    assert_eq!(refused.status(), 401);

    // A bad value is the API's 400, as a page, and changes nothing.
    let bad = browser
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("username", HOSTILE),
                ("password", "long-enough"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("username must be"), "{}", bad.body);
    assert!(!bad.body.contains(HOSTILE));

    // Typed into a tenant's and a client's name: text too.
    browser
        .post(
            "/admin/tenants",
            &[("csrf", &csrf), ("id", "acme"), ("name", HOSTILE)],
        )
        .await;
    browser
        .post(
            "/admin/clients",
            &[
                ("csrf", &csrf),
                ("name", HOSTILE),
                ("kind", "public"),
                ("grant_types", "password"),
                ("grant_types", "refresh_token"),
            ],
        )
        .await;
    for path in ["/admin/tenants", "/admin/clients", "/admin/audit"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(HOSTILE), "{path}");
    }
    assert!(browser.get("/admin/tenants").await.body.contains("&lt;img"));

    // The name people read (a claim: usernames cannot hold markup), in the list and on
    // the user's page.
    let ivan = app
        .create_user("ivan", "ivan-password", &[], json!({"name": HOSTILE}))
        .await;
    for path in [
        "/admin/users?q=ivan".to_owned(),
        format!("/admin/users/{}", ivan.id),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(HOSTILE), "{path}");
        assert!(
            page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{path}"
        );
    }
    assert!(browser.get("/admin/clients").await.body.contains("&lt;img"));
}

#[tokio::test]
async fn ending_the_consoles_own_session_lands_on_the_login_page() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = admin_id(&app, &admin).await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let sessions = browser.get(&format!("/admin/users/{id}/sessions")).await;
    assert!(sessions.body.contains("this console"));
    let own = live_sessions(&app, &admin, &id)
        .await
        .into_iter()
        .find(|s| s["user_agent"] == "console-test")
        .unwrap();
    let csrf = sessions.csrf();
    let ended = browser
        .post(
            &format!(
                "/admin/users/{id}/sessions/{}/end",
                own["id"].as_str().unwrap()
            ),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(ended.status, 303);
    let next = browser.get(ended.location().unwrap()).await;
    assert_eq!(next.status, 303);
    assert_eq!(next.location(), Some("/admin/login"));
    // The REST admin's own session was not touched.
    assert_eq!(app.get_me(&admin).await.status(), 200);
}

#[tokio::test]
async fn a_tenant_admin_sees_only_their_tenant() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_tenant(&admin, "acme").await;
    app.create_tenant_user(&admin, "acme", "boss", &["admin"], &["admin"])
        .await;
    app.create_tenant_user(&admin, "acme", "worker", &["user"], &[])
        .await;
    let default_user = app
        .create_user("frank", "frank-password", &[], json!({}))
        .await;

    let mut browser = Browser::new(&app);
    let answer = browser.log_in("boss", "boss-password", "acme").await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let users = browser.get("/admin/users").await;
    assert!(users.body.contains("worker") && users.body.contains("boss"));
    assert!(!users.body.contains("frank") && !users.body.contains(">admin</a>"));
    for hidden in ["/admin/signing-keys", "/admin/audit", "/admin/tenants"] {
        assert!(
            !users.body.contains(&format!("href=\"{hidden}\"")),
            "{hidden} not in the menu"
        );
        assert_eq!(browser.get(hidden).await.status, 403, "{hidden}");
    }
    let outside = browser
        .get(&format!("/admin/users/{}", default_user.id))
        .await;
    assert_eq!(outside.status, 404);
    let csrf = users.csrf();
    let disable = browser
        .post(
            &format!("/admin/users/{}/disable", default_user.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(disable.status, 404);
    assert_eq!(
        app.post_login(&json!({"username": "frank", "password": "frank-password"}))
            .await
            .status(),
        200,
        "frank was not touched"
    );
}

#[tokio::test]
async fn withdrawing_a_key_needs_its_id_typed_and_the_console_goes_on_with_the_new_key() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let kid = app.current_kid();
    let page = browser
        .get(&format!("/admin/signing-keys/{kid}/withdraw"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Type the key id to confirm"));
    let csrf = page.csrf();

    let mistyped = browser
        .post(
            &format!("/admin/signing-keys/{kid}/withdraw"),
            &[
                ("csrf", &csrf),
                ("reason", "laptop stolen"),
                ("confirm", "current"),
            ],
        )
        .await;
    assert_eq!(mistyped.status, 400);
    assert!(mistyped.body.contains("nothing was withdrawn"));
    assert_eq!(app.current_kid(), kid, "still current");

    let withdrawn = browser
        .post(
            &format!("/admin/signing-keys/{kid}/withdraw"),
            &[
                ("csrf", &csrf),
                ("reason", "laptop stolen"),
                ("confirm", &kid),
            ],
        )
        .await;
    assert_eq!(withdrawn.status, 303, "{}", withdrawn.body);
    assert_ne!(app.current_kid(), kid);
    // The console's session refreshed onto the new key: the next page is served.
    let keys = browser.get("/admin/signing-keys").await;
    assert_eq!(keys.status, 200, "{:?}", keys.location());
    assert!(keys.body.contains("withdrawn"));
    let audit = app
        .get_json(
            "/api/admin/audit?action=signing_key.withdraw",
            &app.admin_token().await,
        )
        .await;
    assert_eq!(audit["items"][0]["target"], format!("kid:{kid}"));
}

#[tokio::test]
async fn an_active_console_renews_its_session_and_an_idle_one_is_logged_out() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let first = browser.access_token();
    assert_eq!(browser.get("/admin/users").await.status, 200);
    assert_eq!(browser.access_token(), first, "young: not renewed");

    app.clock.advance(Duration::from_secs(61));
    let page = browser.get("/admin/users").await;
    assert_eq!(page.status, 200);
    let renewed = browser.access_token();
    assert_ne!(renewed, first, "renewed after a minute");

    // Idle for an access token's lifetime: logged out.
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    let page = browser.get("/admin/users").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/admin/login"));
}

#[tokio::test]
async fn the_rest_twins_filter_the_audit_log_and_search_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("grace", "grace-password", &[], json!({}))
        .await;
    app.create_user("heidi", "heidi-password", &[], json!({}))
        .await;
    let page = app.get_json("/api/admin/users?q=RAC", &admin).await;
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("grace")]);
    let bad = app
        .call(Method::GET, "/api/admin/users?q=%3Cb%3E", &admin, None)
        .await;
    crate::helpers::assert_error(bad, 400, "INVALID_REQUEST").await;

    let logins = app.get_json("/api/admin/audit?action=login", &admin).await;
    let items = logins["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["action"] == "login"));
    let future = app
        .get_json("/api/admin/audit?since=2999-01-01T00:00:00Z", &admin)
        .await;
    assert_eq!(future["items"], json!([]));
    let bad = app
        .call(
            Method::GET,
            "/api/admin/audit?action=nonsense",
            &admin,
            None,
        )
        .await;
    crate::helpers::assert_error(bad, 400, "INVALID_REQUEST").await;
    let id = admin_id(&app, &admin).await;
    let by_admin = app
        .get_json(&format!("/api/admin/audit?actor=user:{id}"), &admin)
        .await;
    assert!(
        by_admin["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == format!("user:{id}"))
    );
}

#[tokio::test]
async fn clients_secrets_are_shown_once_rotated_and_disabled_and_tenants_disabled_from_the_console()
{
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let csrf = browser.csrf().await;

    let created = browser
        .post(
            "/admin/clients",
            &[
                ("csrf", &csrf),
                ("name", "backend"),
                ("kind", "confidential"),
                ("grant_types", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.location().unwrap().to_owned();
    let secret_of = |page: &Page| {
        let start = page.body.find("tmcs_").expect("a client secret is shown");
        page.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect::<String>()
    };
    let first = secret_of(&browser.get(&location).await);
    assert!(
        !browser.get(&location).await.body.contains("tmcs_"),
        "shown once"
    );
    let client_id = location.rsplit('=').next().unwrap().to_owned();
    let grant = |secret: String| {
        let id = client_id.clone();
        let app = &app;
        async move {
            app.token_request(
                &[("grant_type", "client_credentials")],
                Some((&id, &secret)),
            )
            .await
            .status()
        }
    };
    assert_eq!(grant(first.clone()).await, 200);

    let rotated = browser
        .post(
            &format!("/admin/clients/{client_id}/rotate-secret"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, 303);
    let second = secret_of(&browser.get(rotated.location().unwrap()).await);
    assert_ne!(first, second);
    assert_eq!(grant(first).await, 401, "the old secret stopped working");
    assert_eq!(grant(second.clone()).await, 200);

    browser
        .post(
            &format!("/admin/clients/{client_id}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_ne!(grant(second).await, 200, "a disabled client gets nothing");
    let client = app
        .get_json(&format!("/api/admin/clients/{client_id}"), &admin)
        .await;
    assert_eq!(client["enabled"], false);

    browser
        .post(
            "/admin/tenants",
            &[("csrf", &csrf), ("id", "acme"), ("name", "Acme")],
        )
        .await;
    let disabled = browser
        .post("/admin/tenants/acme/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(disabled.status, 303);
    let tenant = app.get_json("/api/admin/tenants/acme", &admin).await;
    assert_eq!(tenant["enabled"], false);
    let page = browser.get("/admin/tenants").await;
    assert!(page.body.contains("/admin/tenants/acme/enable"));
}

#[tokio::test]
async fn console_logins_spend_the_same_limits_as_api_logins() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let mut limited = None;
    for _ in 0..30 {
        let page = browser.log_in("admin", "guess-password", "").await;
        match page.status {
            401 => {}
            429 => {
                limited = Some(page);
                break;
            }
            other => panic!("{other}: {}", page.body),
        }
    }
    let page = limited.expect("failed console logins are limited");
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("Too many attempts"), "{}", page.body);
    // The counters are the login's own: the API refuses the right password too, now.
    let api = app
        .post_login(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(api.status(), 429);
}

#[tokio::test]
async fn long_lists_page_with_the_rest_apis_cursor_and_keep_their_filters() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    // Every read of the audit page is itself an `audit.list` event.
    for _ in 0..105 {
        assert_eq!(
            browser.get("/admin/audit?action=audit.list").await.status,
            200
        );
    }
    let first = browser.get("/admin/audit?action=audit.list").await;
    let rows = |page: &Page| page.body.matches("<td>audit.list</td>").count();
    assert_eq!(rows(&first), 100);
    let marker = "href=\"/admin/audit?";
    let start = first.body.find(marker).expect("a link to older events") + "href=\"".len();
    let end = first.body[start..].find('"').unwrap() + start;
    let next = first.body[start..end].replace("&amp;", "&");
    assert!(
        next.contains("action=audit.list") && next.contains("cursor="),
        "{next}"
    );
    let second = browser.get(&next).await;
    assert_eq!(second.status, 200);
    assert!((5..=7).contains(&rows(&second)), "{}", rows(&second));
    assert!(!second.body.contains(marker), "the last page links nowhere");
    let bad = browser.get("/admin/audit?cursor=!!").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn the_cors_origins_of_browser_apps_may_not_read_the_console() {
    let app =
        crate::helpers::spawn_app_with(|s| s.cors_origins = vec!["http://app.example".to_owned()])
            .await;
    let admin = app.admin_token().await;
    let mut browser = Browser::new(&app);
    browser.log_in_admin().await;
    let read = |path: &'static str, credential: Option<String>| {
        let app = &app;
        let cookies = browser.cookie_header();
        async move {
            let mut request = app
                .client
                .get(app.url(path))
                .header("origin", "http://app.example")
                .header("cookie", cookies);
            if let Some(token) = credential {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap()
        }
    };
    // The API answers the app's origin, with credentials...
    let api = read("/api/me", Some(admin)).await;
    assert_eq!(api.status(), 200);
    assert_eq!(
        api.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    // ...the console never does.
    for path in ["/admin/users", "/admin/login", "/admin/api-keys/created"] {
        let page = read(path, None).await;
        assert!(
            !page.headers().contains_key("access-control-allow-origin"),
            "{path}"
        );
        assert!(
            !page
                .headers()
                .contains_key("access-control-allow-credentials"),
            "{path}"
        );
    }
}
