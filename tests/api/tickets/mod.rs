//! Connect tickets: issue, offline shape, exactly-once redemption on every instance, and
//! every refusal; API keys as bearer credentials.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, jwt_part, spawn_app, spawn_app_with};

pub(crate) const AGENTS: &str = "wss://agents.example";
const OTHER: &str = "wss://other.example";

pub(crate) async fn ticket_app() -> TestApp {
    spawn_app_with(|s| s.ticket_audiences = vec![AGENTS.to_owned(), OTHER.to_owned()]).await
}

/// Another instance of `app` (same database and Redis prefix), with tickets on.
async fn another_ticket_instance(app: &TestApp) -> TestApp {
    let database_url = app.services.settings.database_url.clone();
    let prefix = app.services.settings.redis_prefix.clone();
    spawn_app_with(move |s| {
        s.database_url = database_url;
        s.redis_prefix = prefix;
        s.ticket_audiences = vec![AGENTS.to_owned(), OTHER.to_owned()];
    })
    .await
}

/// An API key with scope `tickets`, for the receiving service (owned by the admin).
pub(crate) async fn service_key(app: &TestApp, admin: &str) -> String {
    let created: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            admin,
            Some(json!({"name": "agents service", "scopes": ["tickets"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

async fn ask(app: &TestApp, credential: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/api/tickets", credential, Some(body))
        .await
}

pub(crate) async fn ticket(app: &TestApp, credential: &str, audience: &str) -> String {
    let answer = ask(app, credential, json!({"audience": audience})).await;
    assert_eq!(answer.status(), 201);
    answer.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn redeem(
    app: &TestApp,
    key: &str,
    ticket: &str,
    audience: &str,
) -> reqwest::Response {
    app.call(
        Method::POST,
        "/api/tickets/redeem",
        key,
        Some(json!({"ticket": ticket, "audience": audience})),
    )
    .await
}

/// A 401 with the contract's code for why (`TOKEN_EXPIRED`, `TOKEN_REVOKED`, else
/// `AUTHENTICATION_FAILED`) and a message that says so.
pub(crate) async fn refused_with(response: reqwest::Response, message: &str) {
    let code = match message {
        "expired" => "TOKEN_EXPIRED",
        "revoked" => "TOKEN_REVOKED",
        _ => "AUTHENTICATION_FAILED",
    };
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(message),
        "{body} should say {message:?}"
    );
}

async fn user_login(app: &TestApp) -> Value {
    app.create_user(
        "nora",
        "nora-password",
        &["chat:read", "chat:write"],
        json!({"team": "blue"}),
    )
    .await;
    app.login("nora", "nora-password").await
}

#[tokio::test]
async fn a_ticket_names_the_user_one_audience_and_lives_seconds() {
    let app = ticket_app().await;
    let login = user_login(&app).await;
    let access = login["access_token"].as_str().unwrap();

    let answer = ask(
        &app,
        access,
        json!({"audience": AGENTS, "scope": "chat:read"}),
    )
    .await;
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["expires_in"], 30);
    assert_eq!(body["audience"], AGENTS);
    let ticket = body["ticket"].as_str().unwrap();
    let header = jwt_part(ticket, 0);
    assert_eq!(header["typ"], "ticket+jwt");
    assert_eq!(header["kid"], app.current_kid().as_str());
    let claims = jwt_part(ticket, 1);
    let user = jwt_part(access, 1);
    assert_eq!(claims["iss"], "http://tokenmint.test");
    assert_eq!(claims["sub"], user["sub"]);
    assert_eq!(claims["aud"], AGENTS);
    assert_eq!(claims["sid"], login["session_id"]);
    assert_eq!(claims["tenant_id"], "default");
    assert_eq!(claims["scope"], "chat:read");
    assert_eq!(claims["username"], "nora");
    assert_eq!(claims["team"], "blue");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        30
    );
    assert_ne!(claims["jti"], user["jti"]);

    // Asking for what the caller lacks, or for an audience not configured: 400.
    let wider = ask(&app, access, json!({"audience": AGENTS, "scope": "admin"})).await;
    assert_error(wider, 400, "INVALID_REQUEST").await;
    let elsewhere = ask(&app, access, json!({"audience": "wss://evil.example"})).await;
    assert_error(elsewhere, 400, "INVALID_REQUEST").await;
    let anonymous = app
        .client
        .post(app.url("/api/tickets"))
        .json(&json!({"audience": AGENTS}))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "AUTHENTICATION_FAILED").await;
}

#[tokio::test]
async fn a_ticket_is_never_an_access_token_and_an_access_token_never_a_ticket() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let key = service_key(&app, &admin).await;
    let admin_ticket = ticket(&app, &admin, AGENTS).await;

    assert_error(
        app.get_me(&admin_ticket).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    assert_error(
        app.call(Method::GET, "/api/admin/users", &admin_ticket, None)
            .await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    let introspected: Value = app
        .introspect(&admin, &admin_ticket)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(introspected, json!({"active": false}));
    // A ticket cannot ask for a ticket either.
    assert_error(
        ask(&app, &admin_ticket, json!({"audience": AGENTS})).await,
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;

    refused_with(redeem(&app, &key, &admin, AGENTS).await, "invalid ticket").await;
    // The refusals above used nothing up.
    assert_eq!(
        redeem(&app, &key, &admin_ticket, AGENTS).await.status(),
        200
    );
}

#[tokio::test]
async fn a_ticket_redeems_once_and_refusals_do_not_use_it_up() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let key = service_key(&app, &admin).await;
    let login = user_login(&app).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let ticket = ticket(&app, &access, AGENTS).await;

    // Wrong audience, wrong callers: refused, and the ticket is still good.
    refused_with(redeem(&app, &key, &ticket, OTHER).await, "another audience").await;
    assert_error(
        redeem(&app, &admin, &ticket, AGENTS).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    let introspect_key: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "not a ticket service", "scopes": ["introspect"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_error(
        redeem(
            &app,
            introspect_key["key"].as_str().unwrap(),
            &ticket,
            AGENTS,
        )
        .await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;

    let first = redeem(&app, &key, &ticket, AGENTS).await;
    assert_eq!(first.status(), 200);
    let who: Value = first.json().await.unwrap();
    assert_eq!(
        who,
        json!({"sub": jwt_part(&access, 1)["sub"], "username": "nora", "tenant_id": "default",
               "sid": login["session_id"], "scope": "chat:read chat:write",
               "claims": {"team": "blue"}, "exp": jwt_part(&ticket, 1)["exp"]})
    );
    refused_with(redeem(&app, &key, &ticket, AGENTS).await, "already used").await;
    // Another instance knows too.
    let second = another_ticket_instance(&app).await;
    refused_with(redeem(&second, &key, &ticket, AGENTS).await, "already used").await;
}

#[tokio::test]
async fn expired_and_revoked_tickets_are_refused() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let key = service_key(&app, &admin).await;
    let login = user_login(&app).await;
    let access = login["access_token"].as_str().unwrap().to_owned();

    let stale = ticket(&app, &access, AGENTS).await;
    app.clock.advance(Duration::from_secs(30));
    refused_with(redeem(&app, &key, &stale, AGENTS).await, "expired").await;

    // A fresh, unredeemed ticket of a session that logs out.
    let orphan = ticket(&app, &access, AGENTS).await;
    let logout = app
        .client
        .post(app.url("/api/logout"))
        .bearer_auth(&access)
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    refused_with(redeem(&app, &key, &orphan, AGENTS).await, "revoked").await;
    // The access token is revoked too: no new tickets from it.
    assert_error(
        ask(&app, &access, json!({"audience": AGENTS})).await,
        401,
        "TOKEN_REVOKED",
    )
    .await;

    // An API key's ticket names its owner; logging the owner out everywhere stops it.
    let nora = app.login("nora", "nora-password").await;
    let nora_id = jwt_part(nora["access_token"].as_str().unwrap(), 1)["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "nora's bot", "owner_id": nora_id, "scopes": ["chat:read"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let bot_key = bot["key"].as_str().unwrap();
    let bot_ticket = ticket(&app, bot_key, AGENTS).await;
    let claims = jwt_part(&bot_ticket, 1);
    assert_eq!(claims["sub"], nora_id.as_str());
    assert_eq!(claims["username"], "nora");
    assert_eq!(claims["scope"], "chat:read");
    assert!(claims.get("sid").is_none());
    app.clock.advance(Duration::from_secs(1));
    let everywhere = app
        .call(
            Method::POST,
            &format!("/api/admin/users/{nora_id}/revoke-sessions"),
            &admin,
            None,
        )
        .await;
    assert_eq!(everywhere.status(), 204);
    refused_with(redeem(&app, &key, &bot_ticket, AGENTS).await, "revoked").await;
}

#[tokio::test]
async fn many_concurrent_redemptions_on_two_instances_let_exactly_one_in() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let key = service_key(&app, &admin).await;
    let second = another_ticket_instance(&app).await;
    for round in 0..5 {
        let ticket = ticket(&app, &admin, AGENTS).await;
        let attempts = (0..40).map(|i| {
            let instance = if i % 2 == 0 { &app } else { &second };
            redeem(instance, &key, &ticket, AGENTS)
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "round {round}: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn a_tenants_service_redeems_only_its_tenants_tickets() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let default_service = service_key(&app, &admin).await;
    app.create_tenant(&admin, "acme").await;
    let acme_owner = app
        .create_tenant_user(&admin, "acme", "svc", &["user"], &[])
        .await;
    let acme_service: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "acme agents", "owner_id": acme_owner, "scopes": ["tickets"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let acme_service = acme_service["key"].as_str().unwrap().to_owned();
    let acme_user = app
        .create_tenant_user(&admin, "acme", "ann", &["user"], &[])
        .await;
    let ann = app.tenant_login("acme", "ann").await;
    let ann = ann["access_token"].as_str().unwrap();

    let default_ticket = ticket(&app, &admin, AGENTS).await;
    refused_with(
        redeem(&app, &acme_service, &default_ticket, AGENTS).await,
        "invalid ticket",
    )
    .await;
    assert_eq!(
        redeem(&app, &default_service, &default_ticket, AGENTS)
            .await
            .status(),
        200
    );
    let acme_ticket = ticket(&app, ann, AGENTS).await;
    let who: Value = redeem(&app, &acme_service, &acme_ticket, AGENTS)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["tenant_id"], "acme");
    assert_eq!(who["sub"], acme_user.as_str());
}

#[tokio::test]
async fn tickets_are_off_without_audiences() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    assert_error(
        ask(&app, &admin, json!({"audience": AGENTS})).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_error(redeem(&app, &admin, "x", AGENTS).await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn an_api_key_works_as_a_bearer_credential_wherever_x_api_key_does() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let created: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "webhook sender", "scopes": ["admin", "introspect"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let as_bearer =
        |path: &str, token: &str| app.client.get(app.url(path)).bearer_auth(token).send();

    let users = as_bearer("/api/admin/users", key).await.unwrap();
    assert_eq!(users.status(), 200);
    let introspected: Value = app
        .client
        .post(app.url("/api/token/introspect"))
        .bearer_auth(key)
        .json(&json!({"token": admin}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    let ticket = app
        .client
        .post(app.url("/api/tickets"))
        .bearer_auth(key)
        .json(&json!({"audience": AGENTS, "scope": "introspect"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ticket.status(), 201);

    // A made-up or mistyped key: refused without a lookup, like in X-API-Key.
    let mut mistyped = key.to_owned();
    mistyped.replace_range(10..11, if &key[10..11] == "a" { "b" } else { "a" });
    assert_error(
        as_bearer("/api/admin/users", &mistyped).await.unwrap(),
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
    // A key in both places is two credentials.
    let both = app
        .client
        .get(app.url("/api/admin/users"))
        .bearer_auth(key)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_error(both, 401, "AUTHENTICATION_FAILED").await;
    // Disabled: refused as a bearer at once.
    let id = created["id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/api/admin/api-keys/{id}/disable"),
        &admin,
        None,
    )
    .await;
    assert_error(
        as_bearer("/api/admin/users", key).await.unwrap(),
        401,
        "AUTHENTICATION_FAILED",
    )
    .await;
}

/// A ticket of a disabled user or of a user of a disabled tenant is refused as revoked
/// (`TOKEN_REVOKED`, as the contract says), not as unknown.
#[tokio::test]
async fn tickets_of_a_disabled_user_or_tenant_are_refused_as_revoked() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let key = service_key(&app, &admin).await;
    let login = user_login(&app).await;
    let access = login["access_token"].as_str().unwrap();
    let nora_id = jwt_part(access, 1)["sub"].as_str().unwrap().to_owned();
    let of_nora = ticket(&app, access, AGENTS).await;
    let disabled = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{nora_id}"),
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    refused_with(redeem(&app, &key, &of_nora, AGENTS).await, "revoked").await;

    app.create_tenant(&admin, "acme").await;
    app.create_tenant_user(&admin, "acme", "ann", &["user"], &[])
        .await;
    let ann = app.tenant_login("acme", "ann").await;
    let of_ann = ticket(&app, ann["access_token"].as_str().unwrap(), AGENTS).await;
    let cut_off = app
        .call(
            Method::PATCH,
            "/api/admin/tenants/acme",
            &admin,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(cut_off.status(), 200);
    refused_with(redeem(&app, &key, &of_ann, AGENTS).await, "revoked").await;
}

/// A ticket asked for with an API key carries `admin` only while the key's owner holds
/// the admin role, as at every admin endpoint: a demotion since the key was made counts
/// at once.
#[tokio::test]
async fn a_keys_ticket_carries_admin_only_while_its_owner_is_an_admin() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    let created: Value = app
        .call(
            Method::POST,
            "/api/admin/users",
            &admin,
            Some(json!({"username": "ops", "password": "ops-password",
                        "roles": ["admin"], "scopes": ["admin", "chat:read"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let ops_id = created["id"].as_str().unwrap().to_owned();
    let bot: Value = app
        .call(
            Method::POST,
            "/api/admin/api-keys",
            &admin,
            Some(json!({"name": "ops bot", "owner_id": ops_id, "scopes": ["admin", "chat:read"]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let bot_key = bot["key"].as_str().unwrap();
    let before = jwt_part(&ticket(&app, bot_key, AGENTS).await, 1);
    assert_eq!(before["scope"], "admin chat:read");

    let demoted = app
        .call(
            Method::PATCH,
            &format!("/api/admin/users/{ops_id}"),
            &admin,
            Some(json!({"roles": ["user"]})),
        )
        .await;
    assert_eq!(demoted.status(), 200);
    let after = jwt_part(&ticket(&app, bot_key, AGENTS).await, 1);
    assert_eq!(after["scope"], "chat:read");
    let asked = ask(&app, bot_key, json!({"audience": AGENTS, "scope": "admin"})).await;
    assert_eq!(asked.status(), 400);
}
