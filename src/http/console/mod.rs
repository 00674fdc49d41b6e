//! `/admin`: the admin console, pages rendered on the server (maud: templates checked at
//! compile time, every interpolated value escaped). No script: every control is a link
//! or a form. Each page calls [`crate::console::Console::enter`] first, and each action
//! then calls the same use case as its REST twin with the admin it returned; the pages
//! hold no rule of their own but the typed confirmation of a key withdrawal.
//!
//! The console's session lives in two HttpOnly, SameSite=Strict cookies (`__Host-`
//! prefixed when Secure): its access token and its refresh token, both kept as long as an
//! access token lives, so an idle console is logged out (see [`crate::console`]). Every
//! form carries a CSRF token bound to the session (the login form's, to a random value of
//! its own cookie); a POST without it is refused with 403 and changes nothing. A POST
//! from another origin is refused too (the second lock after SameSite).

mod keys;
mod manage;
mod users;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use maud::{DOCTYPE, Markup, html};
use secrecy::SecretString;

use crate::console::{Entered, Held, Request};
use crate::error::Error;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{client_ip, strict_cookie, user_agent};
use crate::http::pagination::{PageQuery, PageRequest};
use crate::identity::LoginAttempt;
use crate::identity::passwords::Password;
use crate::model::TenantId;
use crate::sessions::TokenPair;

/// Whether a request path is the console's (`/admin` and below).
pub fn is_console_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Registers the console's pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(home))
        .route("/admin/", web::get().to(home))
        .route("/admin/console.css", web::get().to(stylesheet))
        .route("/admin/login", web::get().to(login_page))
        .route("/admin/login", web::post().to(login))
        .route("/admin/logout", web::post().to(logout));
    users::routes(cfg);
    keys::routes(cfg);
    manage::routes(cfg);
}

/// The console's cookies: the `__Host-` name when Secure, the plain one over HTTP
/// (development only).
#[derive(Clone, Copy)]
struct CookieName {
    secure: &'static str,
    plain: &'static str,
}

const ACCESS_COOKIE: CookieName = CookieName {
    secure: "__Host-tokenmint_console",
    plain: "tokenmint_console",
};
const REFRESH_COOKIE: CookieName = CookieName {
    secure: "__Host-tokenmint_console_refresh",
    plain: "tokenmint_console_refresh",
};
/// A random value the login form's CSRF token is bound to.
const LOGIN_COOKIE: CookieName = CookieName {
    secure: "__Host-tokenmint_console_login",
    plain: "tokenmint_console_login",
};
/// A new secret on its way to the one page that shows it (see [`reveal`]).
const REVEAL_COOKIE: CookieName = CookieName {
    secure: "__Host-tokenmint_console_reveal",
    plain: "tokenmint_console_reveal",
};

impl CookieName {
    fn of(self, state: &AppState) -> &'static str {
        if state.settings.cookie_secure {
            self.secure
        } else {
            self.plain
        }
    }

    /// This cookie, HttpOnly and SameSite=Strict; `Secure` with `Path=/` (as `__Host-`
    /// needs) when Secure, `Path=/admin` over plain HTTP.
    fn build(self, state: &AppState, value: String, max_age_secs: i64) -> Cookie<'static> {
        let secure = state.settings.cookie_secure;
        strict_cookie(secure, self.of(state), value, max_age_secs, "/admin")
    }

    fn clear(self, state: &AppState) -> Cookie<'static> {
        self.build(state, String::new(), 0)
    }

    fn read(self, state: &AppState, req: &HttpRequest) -> Option<String> {
        req.cookie(self.of(state))
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Why a console request was not answered with its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No console session, or one that ended: to the login page.
    LoggedOut,
    /// Any other refusal, shown as a page with the API's status and message.
    Refused(ApiError),
}

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unauthenticated { .. } => Self::LoggedOut,
            e => Self::Refused(e.into()),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        Self::Refused(e)
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LoggedOut => f.write_str("not logged in to the console"),
            Self::Refused(e) => e.fmt(f),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoggedOut => StatusCode::SEE_OTHER,
            Self::Refused(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::LoggedOut => {
                // The cookies of an ended session are of no more use: cleared, under
                // either name (no state here to say which one is in use).
                let mut response = HttpResponse::SeeOther();
                for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
                    response.cookie(strict_cookie(true, name.secure, String::new(), 0, "/"));
                    response.cookie(strict_cookie(false, name.plain, String::new(), 0, "/admin"));
                }
                response.insert_header((header::LOCATION, "/admin/login"));
                response.finish()
            }
            Self::Refused(e) => {
                // The API's own answer (its log line for a 500, its Retry-After), with
                // the page instead of the JSON body.
                let api = e.error_response();
                let status = api.status();
                let mut response = HttpResponse::build(status);
                for name in [header::RETRY_AFTER, header::ALLOW] {
                    if let Some(value) = api.headers().get(&name) {
                        response.insert_header((name, value.clone()));
                    }
                }
                let title = match status {
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
                    s if s.is_server_error() => "Something went wrong",
                    _ => "Not done",
                };
                let body = html! {
                    p.error role="alert" { (e.message()) }
                    p { "Nothing was changed. " a href="/admin/users" { "Back to the console" } }
                };
                response
                    .content_type(mime::TEXT_HTML_UTF_8)
                    .body(layout(title, None, body).into_string())
            }
        }
    }
}

/// What a console handler answers.
pub type Answer = Result<HttpResponse, ConsoleError>;

/// The console's session as a request's cookies hold it.
fn held(state: &AppState, req: &HttpRequest) -> Option<(String, Option<String>)> {
    let access = ACCESS_COOKIE.read(state, req)?;
    Some((access, REFRESH_COOKIE.read(state, req)))
}

/// Every page's first step (see [`crate::console::Console::enter`]).
async fn enter(state: &AppState, req: &HttpRequest) -> Result<Entered, ConsoleError> {
    enter_as(state, req, Request::Page).await
}

async fn enter_as(
    state: &AppState,
    req: &HttpRequest,
    request: Request<'_>,
) -> Result<Entered, ConsoleError> {
    let (access, refresh) = held(state, req).ok_or(ConsoleError::LoggedOut)?;
    let route = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    let held = Held {
        access: &access,
        refresh: refresh.as_deref(),
    };
    Ok(state
        .console
        .enter(held, request, client_ip(req), route, state.clock.now())
        .await?)
}

/// A posted form, as name/value pairs.
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, ConsoleError> {
        serde_urlencoded::from_bytes(body)
            .map(Self)
            .map_err(|_| ApiError::invalid_request("the form could not be read").into())
    }

    /// The first value of `name`, if it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, if it is not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Whether the checkbox `name` was checked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every value of `name` (checkboxes of one name).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A space- or comma-separated list of `name`.
    pub fn words(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Takes the value of `name` out as a secret (a password).
    fn secret(&mut self, name: &str) -> Option<SecretString> {
        let at = self.0.iter().position(|(k, _)| k == name)?;
        Some(SecretString::from(self.0.remove(at).1))
    }
}

/// Every action's first step: a page we trust posted it, by a console session, with that
/// session's CSRF token, checked before the session is renewed. Any of them missing:
/// refused, and nothing changes.
async fn act(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(Entered, Form), ConsoleError> {
    same_origin(req)?;
    let form = Form::parse(body)?;
    let entered = enter_as(state, req, Request::Form(form.get("csrf"))).await?;
    Ok((entered, form))
}

/// Whether a POST comes from the console's own pages: a browser says where a request
/// comes from (`Sec-Fetch-Site`, and `Origin` on every POST); either naming another site
/// is refused. The origin is compared with the host the request was sent to (the
/// console's pages post to themselves), so a deployment behind a proxy needs no setting.
/// SameSite=Strict already keeps the cookies off cross-site requests: this is the second
/// lock, for browsers that do not honour it. A request with neither header is no
/// browser's, and carries no browser's cookies.
fn same_origin(req: &HttpRequest) -> Result<(), ConsoleError> {
    let refused = || {
        ConsoleError::from(Error::Forbidden(
            "cross-site request refused: the form was not posted by the console",
        ))
    };
    if let Some(site) = req.headers().get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(refused());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    if authority == Some(req.connection_info().host()) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Sets the cookies of a renewed console session.
fn keep_session(state: &AppState, response: &mut HttpResponseBuilder, renewed: Option<&TokenPair>) {
    if let Some(pair) = renewed {
        set_session(state, response, pair);
    }
}

fn set_session(state: &AppState, response: &mut HttpResponseBuilder, pair: &TokenPair) {
    let lifetime = i64::try_from(state.settings.access_ttl.as_secs()).unwrap_or(i64::MAX);
    response.cookie(ACCESS_COOKIE.build(state, pair.access.token.clone(), lifetime));
    response.cookie(REFRESH_COOKIE.build(state, pair.refresh_token.expose().to_owned(), lifetime));
}

/// A page of the console, 200.
fn page(
    state: &AppState,
    entered: &Entered,
    title: &str,
    active: &str,
    body: Markup,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    keep_session(state, &mut response, entered.renewed.as_ref());
    response
        .content_type(mime::TEXT_HTML_UTF_8)
        .body(layout(title, Some((entered, active)), body).into_string())
}

/// After an action: to the page that shows its effect (303, so a reload does not post
/// again).
fn see_other(state: &AppState, entered: &Entered, location: &str) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    keep_session(state, &mut response, entered.renewed.as_ref());
    response.insert_header((header::LOCATION, location.to_owned()));
    response.finish()
}

/// The sections of the navigation: (path, label, for admins of `default` only).
const SECTIONS: [(&str, &str, bool); 6] = [
    ("/admin/users", "Users", false),
    ("/admin/api-keys", "API keys", false),
    ("/admin/clients", "Clients", false),
    ("/admin/signing-keys", "Signing keys", true),
    ("/admin/audit", "Audit", true),
    ("/admin/tenants", "Tenants", true),
];

/// The frame of every page; `nav` for a logged-in admin, with the active section.
fn layout(title: &str, nav: Option<(&Entered, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tokenmint console" }
                link rel="stylesheet" href="/admin/console.css";
            }
            body {
                header {
                    a.brand href="/admin/users" { "Tokenmint" }
                    @if let Some((entered, active)) = nav {
                        nav aria-label="Sections" {
                            @for (path, label, default_only) in SECTIONS {
                                @if !default_only || entered.admin.tenant().is_default() {
                                    @if path == active {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                        span.tenant { "tenant " code { (entered.admin.tenant().as_str()) } }
                        form.logout method="post" action="/admin/logout" {
                            (csrf_field(entered))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(entered: &Entered) -> Markup {
    html! { input type="hidden" name="csrf" value=(entered.csrf); }
}

/// A form of one button that posts to `action`.
pub fn button(entered: &Entered, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(entered))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// Text as one segment of a path (a key id may hold any base64url character).
pub fn path_segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// A list's `?cursor=`.
#[derive(serde::Deserialize)]
pub struct Cursor {
    /// Where the page starts.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Items on a page of a list.
pub const PAGE: i64 = 100;

/// Where a list's page starts: `?cursor=`, as the REST API reads it (a malformed one is a
/// 400 page).
pub fn page_start(cursor: Option<String>) -> Result<PageRequest, ConsoleError> {
    Ok(PageQuery {
        limit: Some(PAGE),
        cursor,
    }
    .parse()?)
}

/// The link to a list's next page: `base` with the page's `filters` and `cursor`, if there
/// is a next page.
pub fn next_page(
    base: &str,
    filters: &[(&str, Option<&str>)],
    cursor: Option<String>,
) -> Option<String> {
    let cursor = cursor?;
    let mut params: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect();
    params.push(("cursor", &cursor));
    Some(format!(
        "{base}?{}",
        serde_urlencoded::to_string(params).ok()?
    ))
}

/// The last segment of an enable or disable action's path (`.../{id}/enable`).
pub const SWITCH: &str = "{switch:enable|disable}";

/// The id of an enable or disable action, and whether it enables.
pub fn switched(path: web::Path<(String, String)>) -> (String, bool) {
    let (id, switch) = path.into_inner();
    (id, switch == "enable")
}

/// The button that switches a thing at `base` (enabled or not) the other way;
/// `disable_label` says what disabling does.
pub fn switch_button(entered: &Entered, base: &str, enabled: bool, disable_label: &str) -> Markup {
    if enabled {
        button(entered, &format!("{base}/disable"), disable_label, "danger")
    } else {
        button(entered, &format!("{base}/enable"), "Enable", "")
    }
}

/// A time as the pages show it.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional time.
pub fn maybe_when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "never".to_owned(), when)
}

/// A new secret, shown once: the action that made it sets it in a short-lived cookie and
/// sends the browser to `<list>/created?of=<whose>`, whose page ([`show_secret`]) takes
/// it out of the cookie (clearing it) and shows it. A reload then finds nothing: the
/// secret is never rendered twice, and no server keeps it.
fn reveal(
    state: &AppState,
    entered: &Entered,
    list: &str,
    whose: &str,
    secret: &str,
) -> HttpResponse {
    let of = serde_urlencoded::to_string([("of", whose)]).unwrap_or_default();
    let mut response = HttpResponse::SeeOther();
    keep_session(state, &mut response, entered.renewed.as_ref());
    response.cookie(REVEAL_COOKIE.build(state, secret.to_owned(), 60));
    response.insert_header((header::LOCATION, format!("{list}/created?{of}")));
    response.finish()
}

#[derive(serde::Deserialize)]
struct Whose {
    #[serde(default)]
    of: Option<String>,
}

/// The page that shows a new secret once (see [`reveal`]): "the secret of `kind`
/// `?of=`", then the secret if the cookie still holds it; back to `list`.
async fn show_secret(
    state: &AppState,
    req: &HttpRequest,
    title: &str,
    list: &str,
    kind: &str,
) -> Answer {
    let entered = enter(state, req).await?;
    let Whose { of } = query(req)?;
    let secret = REVEAL_COOKIE.read(state, req);
    let body = html! {
        @if let Some(of) = of { p { "The secret of " (kind) " " strong { (of) } ":" } }
        @if let Some(secret) = &secret {
            p { "Copy it now: it is shown only this once, and Tokenmint keeps only its hash." }
            p { output.secret id="secret" { (secret) } }
        } @else {
            p.error role="status" { "This secret was shown once and is not kept: it cannot be shown again." }
        }
        p { a href=(list) { "Done" } }
    };
    let mut response = HttpResponse::Ok();
    keep_session(state, &mut response, entered.renewed.as_ref());
    response.cookie(REVEAL_COOKIE.clear(state));
    Ok(response
        .content_type(mime::TEXT_HTML_UTF_8)
        .body(layout(title, Some((&entered, list)), body).into_string()))
}

/// A query string, read as the page's filters; a malformed one is a 400 page.
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ConsoleError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|_| {
        ConsoleError::from(ApiError::invalid_request(
            "the page's parameters could not be read",
        ))
    })
}

async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/admin/users"))
        .finish()
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime::TEXT_CSS_UTF_8)
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .body(include_str!("console.css"))
}

/// The login form, with the login cookie its CSRF token is bound to (the browser's own,
/// if it has one: two tabs on the login page both work).
async fn login_page(state: web::Data<AppState>, req: HttpRequest) -> Answer {
    let nonce = match LOGIN_COOKIE.read(&state, &req) {
        Some(nonce) => nonce,
        None => crate::api_keys::random_base62(32)
            .map_err(|_| ApiError::internal("the system random source failed"))?,
    };
    let form = login_form(&state, &nonce, None, None);
    Ok(HttpResponse::Ok()
        .cookie(LOGIN_COOKIE.build(&state, nonce, 3600))
        .content_type(mime::TEXT_HTML_UTF_8)
        .body(form.into_string()))
}

fn login_form(
    state: &AppState,
    nonce: &str,
    username: Option<&str>,
    problem: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        form.card method="post" action="/admin/login" {
            input type="hidden" name="csrf" value=(state.console.login_csrf_token(nonce));
            label { "Username" input name="username" autocomplete="username" required value=[username]; }
            label { "Password" input name="password" type="password" autocomplete="current-password" required; }
            label { "Tenant " small { "(empty: default)" } input name="tenant" autocomplete="off"; }
            button type="submit" { "Log in" }
        }
    };
    layout("Log in", None, body)
}

/// The login: the console's use case, then the session's cookies.
async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    same_origin(&req)?;
    let mut form = Form::parse(&body)?;
    let nonce = LOGIN_COOKIE.read(&state, &req).unwrap_or_default();
    state.console.check_login_csrf(&nonce, form.get("csrf"))?;
    let password = form
        .secret("password")
        .unwrap_or_else(|| SecretString::from(""));
    let username = form.get("username").unwrap_or("").to_owned();
    let tenant = match form.text("tenant") {
        Some(t) => TenantId::parse(t)?,
        None => TenantId::default_tenant(),
    };
    let attempt = LoginAttempt {
        username: username.clone(),
        password: Password::parse_presented(password)?,
        tenant,
        client_id: None,
        client_secret: None,
        scopes: None,
        ip: client_ip(&req),
        user_agent: user_agent(&req),
        device_proof: None,
        dpop: None,
    };
    match state.console.login(attempt, state.clock.now()).await {
        Ok(pair) => {
            let mut response = HttpResponse::SeeOther();
            set_session(&state, &mut response, &pair);
            response.cookie(LOGIN_COOKIE.clear(&state));
            response.insert_header((header::LOCATION, "/admin/users"));
            Ok(response.finish())
        }
        Err(Error::Unauthenticated { .. }) => {
            let page = login_form(
                &state,
                &nonce,
                Some(&username),
                Some("Wrong username or password."),
            );
            Ok(HttpResponse::Unauthorized()
                .content_type(mime::TEXT_HTML_UTF_8)
                .body(page.into_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Logout: the session ends as at `/api/logout`, and its cookies are cleared.
async fn logout(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Answer {
    let (_, form) = act(&state, &req, &body).await?;
    drop(form);
    if let Some((access, refresh)) = held(&state, &req) {
        let held = Held {
            access: &access,
            refresh: refresh.as_deref(),
        };
        state
            .console
            .logout(held, client_ip(&req), state.clock.now())
            .await?;
    }
    Ok(HttpResponse::SeeOther()
        .cookie(ACCESS_COOKIE.clear(&state))
        .cookie(REFRESH_COOKIE.clear(&state))
        .insert_header((header::LOCATION, "/admin/login"))
        .finish())
}
