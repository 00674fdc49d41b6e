//! Emergency withdrawal of a signing key: what it signed is refused by every check at
//! once, it leaves JWKS, a fresh key signs, sessions survive unless a mass logout is asked
//! for; and, over random interleavings with rotation, maintenance and the clock, a
//! withdrawn key never signs, verifies or is published again.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::signing_keys::private_part;
use crate::helpers::{TestApp, assert_error, jwt_part, spawn_app, spawn_app_with};
use crate::oauth::jwks::{fetch_jwks, jwks_after_change, jwks_etag, verify_with_jwks};
use crate::tickets::{AGENTS, redeem, refused_with, service_key, ticket, ticket_app};

const REASON: &str = "private key found in a public repository";

pub(crate) async fn withdraw(
    app: &TestApp,
    admin: &str,
    kid: &str,
    body: Value,
) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/api/admin/signing-keys/{kid}/withdraw"),
        admin,
        Some(body),
    )
    .await
}

async fn keys(app: &TestApp) -> Vec<Value> {
    let admin = app.admin_token().await;
    app.get_json("/api/admin/signing-keys", &admin)
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn kid_with(keys: &[Value], status: &str) -> Vec<String> {
    keys.iter()
        .filter(|k| k["status"] == status)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn status_of(keys: &[Value], kid: &str) -> String {
    keys.iter()
        .find(|k| k["kid"] == kid)
        .map(|k| k["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{kid} is listed"))
}

pub(crate) fn jwks_kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// RFC 8693 token exchange of `subject` by `gateway` for `https://orders.internal`.
async fn exchange(app: &TestApp, gateway: &(String, String), subject: &str) -> reqwest::Response {
    crate::ops::edges::exchange(app, subject, (&gateway.0, &gateway.1)).await
}

async fn gateway(app: &TestApp, admin: &str) -> (String, String) {
    let created: Value = app
        .call(
            Method::POST,
            "/api/admin/clients",
            admin,
            Some(
                json!({"client_id": "gateway", "name": "API gateway", "type": "confidential",
                        "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                        "scopes": ["read"], "audiences": ["https://orders.internal"]}),
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn withdrawing_the_current_key_refuses_all_it_signed_and_a_fresh_key_signs_at_once() {
    let app = ticket_app().await;
    let admin = app.admin_token().await;
    app.create_user("nora", "nora-password", &["read"], json!({}))
        .await;
    let nora = app.log_in("nora", "nora-password").await;
    let service = service_key(&app, &admin).await;
    let (_, introspector) = app.api_key(&admin, &["introspect"]).await;
    let gateway = gateway(&app, &admin).await;
    let exchanged: Value = exchange(&app, &gateway, &nora.access_token)
        .await
        .json()
        .await
        .unwrap();
    let exchanged = exchanged["access_token"].as_str().unwrap().to_owned();
    let old_ticket = ticket(&app, &nora.access_token, AGENTS).await;
    let before = keys(&app).await;
    let (old_current, old_next) = (
        kid_with(&before, "current")[0].clone(),
        kid_with(&before, "next")[0].clone(),
    );
    assert_eq!(jwt_part(&nora.access_token, 0)["kid"], old_current.as_str());
    let etag = jwks_etag(&app).await;

    let answer = withdraw(&app, &admin, &old_current, json!({"reason": REASON})).await;
    assert_eq!(answer.status(), 200);
    let after: Vec<Value> = answer.json().await.unwrap();

    // The key and the `next` key (same database, same KEK) are withdrawn, kept for audit.
    assert_eq!(status_of(&after, &old_current), "withdrawn");
    assert_eq!(status_of(&after, &old_next), "withdrawn");
    for kid in [&old_current, &old_next] {
        let key = after.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
        assert!(key["retired_at"].is_string(), "{key}");
        assert_eq!(private_part(&app, kid).await, None, "private part wiped");
    }
    // A fresh current key signs at once, and a fresh next key is published.
    let (current, next) = (kid_with(&after, "current"), kid_with(&after, "next"));
    assert_eq!((current.len(), next.len()), (1, 1), "{after:?}");
    let (current, next) = (current[0].clone(), next[0].clone());
    assert!(
        !before
            .iter()
            .any(|k| k["kid"] == current.as_str() || k["kid"] == next.as_str())
    );
    let fresh = after.iter().find(|k| k["kid"] == current.as_str()).unwrap();
    assert_eq!(fresh["alg"], "ES256");
    assert!(fresh["activated_at"].is_string());

    // JWKS: a new document, without the withdrawn keys.
    let jwks = jwks_after_change(&app, &etag).await;
    assert_eq!(
        jwks_kids(&jwks),
        BTreeSet::from([current.clone(), next.clone()])
    );

    // Every check refuses what the key signed, as revoked.
    assert_error(app.get_me(&nora.access_token).await, 401, "TOKEN_REVOKED").await;
    assert_error(
        app.call(Method::GET, "/api/admin/users", &admin, None)
            .await,
        401,
        "TOKEN_REVOKED",
    )
    .await;
    for token in [&nora.access_token, &exchanged] {
        let answer: Value = app
            .introspect(&introspector, token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer, json!({"active": false}));
    }
    refused_with(redeem(&app, &service, &old_ticket, AGENTS).await, "revoked").await;
    let refused: Value = exchange(&app, &gateway, &nora.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refused["error"], "invalid_grant");

    // The session survives: its next refresh is signed by the fresh key.
    let refreshed = app.refreshed(nora.refresh()).await;
    assert_eq!(
        jwt_part(&refreshed.access_token, 0)["kid"],
        current.as_str()
    );
    assert_eq!(app.get_me(&refreshed.access_token).await.status(), 200);
    verify_with_jwks(
        &fetch_jwks(&app).await,
        &refreshed.access_token,
        "http://tokenmint.test",
    );
    let fresh_ticket = ticket(&app, &refreshed.access_token, AGENTS).await;
    assert_eq!(
        redeem(&app, &service, &fresh_ticket, AGENTS).await.status(),
        200
    );

    // Audited, with the reason and what went with it.
    let admin = app.admin_token().await;
    let page = app.get_json("/api/admin/audit?limit=50", &admin).await;
    let entry = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "signing_key.withdraw")
        .expect("an audit row");
    assert_eq!(entry["target"], format!("kid:{old_current}"));
    assert_eq!(entry["outcome"], "success");
    let detail = entry["detail"].as_str().unwrap();
    assert!(
        detail.contains(REASON) && detail.contains(&old_next),
        "{detail}"
    );
}

#[tokio::test]
async fn withdrawing_next_replaces_it_and_withdrawing_retiring_drops_it() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let before = keys(&app).await;
    let (current, next) = (
        kid_with(&before, "current")[0].clone(),
        kid_with(&before, "next")[0].clone(),
    );

    let answer = withdraw(&app, &admin, &next, json!({"reason": REASON})).await;
    assert_eq!(answer.status(), 200);
    let after: Vec<Value> = answer.json().await.unwrap();
    assert_eq!(status_of(&after, &next), "withdrawn");
    assert_eq!(
        kid_with(&after, "current"),
        [current.as_str()],
        "current signs on"
    );
    let fresh_next = kid_with(&after, "next");
    assert_eq!(fresh_next.len(), 1);
    assert_ne!(fresh_next[0], next);
    assert_eq!(
        app.get_me(&admin).await.status(),
        200,
        "current's tokens still work"
    );

    // The fresh next key is pre-published like any other before it signs.
    app.clock.advance(Duration::from_secs(301));
    let rotated = app
        .call(Method::POST, "/api/admin/signing-keys/rotate", &admin, None)
        .await;
    assert_eq!(rotated.status(), 200);
    let new_admin = app.admin_token().await;
    assert_eq!(jwt_part(&new_admin, 0)["kid"], fresh_next[0].as_str());
    assert_eq!(
        app.get_me(&admin).await.status(),
        200,
        "retiring still verifies"
    );

    let answer = withdraw(&app, &new_admin, &current, json!({"reason": REASON})).await;
    assert_eq!(answer.status(), 200);
    let dropped: Vec<Value> = answer.json().await.unwrap();
    assert_eq!(status_of(&dropped, &current), "withdrawn");
    assert_eq!(kid_with(&dropped, "current"), [fresh_next[0].clone()]);
    assert_eq!(
        dropped.len(),
        after.len() + 1,
        "one more next from the rotation, nothing else"
    );
    assert_error(app.get_me(&admin).await, 401, "TOKEN_REVOKED").await;
    assert_eq!(app.get_me(&new_admin).await.status(), 200);
    assert!(!jwks_kids(&fetch_jwks(&app).await).contains(&current));
}

#[tokio::test]
async fn end_sessions_logs_everyone_out_and_a_second_withdrawal_changes_nothing_else() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user("kim", "kim-password", &[], json!({})).await;
    let kim = app.log_in("kim", "kim-password").await;
    let kid = app.current_kid();

    // Without `end_sessions`, sessions survive.
    assert_eq!(
        withdraw(&app, &admin, &kid, json!({"reason": REASON}))
            .await
            .status(),
        200
    );
    let kim = app.refreshed(kim.refresh()).await;
    let admin = app.admin_token().await;
    let listed = keys(&app).await;

    // Withdrawn again: nothing changes...
    let again = withdraw(&app, &admin, &kid, json!({"reason": REASON})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), json!(listed));
    assert_eq!(app.get_me(&kim.access_token).await.status(), 200);

    // ...unless a mass logout is asked for: then every session ends.
    let ended = withdraw(
        &app,
        &admin,
        &kid,
        json!({"reason": REASON, "end_sessions": true}),
    )
    .await;
    assert_eq!(ended.status(), 200);
    assert_error(app.get_me(&kim.access_token).await, 401, "TOKEN_REVOKED").await;
    assert_error(app.post_refresh(kim.refresh()).await, 401, "TOKEN_REVOKED").await;
    assert_error(app.get_me(&admin).await, 401, "TOKEN_REVOKED").await;

    // Logging in again works (from the next second: the cut-off covers the second of
    // the logout).
    app.clock.advance(Duration::from_secs(1));
    let kim = app.log_in("kim", "kim-password").await;
    assert_eq!(app.get_me(&kim.access_token).await.status(), 200);
    let kim = app.refreshed(kim.refresh()).await;
    assert_eq!(app.get_me(&kim.access_token).await.status(), 200);
}

#[tokio::test]
async fn withdrawal_refuses_what_it_cannot_do_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let kid = app.current_kid();
    let before = keys(&app).await;
    let rows = [
        (json!({"reason": REASON}), "no-such-kid", 404, "NOT_FOUND"),
        (json!({}), kid.as_str(), 400, "INVALID_REQUEST"),
        (
            json!({"reason": "   "}),
            kid.as_str(),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"reason": "x".repeat(501)}),
            kid.as_str(),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"reason": "a\u{0}b"}),
            kid.as_str(),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"reason": REASON, "end_sessions": "yes"}),
            kid.as_str(),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"reason": REASON, "since": 0}),
            kid.as_str(),
            400,
            "INVALID_REQUEST",
        ),
    ];
    for (body, kid, status, code) in rows {
        assert_error(
            withdraw(&app, &admin, kid, body.clone()).await,
            status,
            code,
        )
        .await;
    }
    assert_eq!(keys(&app).await, before, "nothing changed");
    assert_eq!(app.get_me(&admin).await.status(), 200);

    // A retired key: out of JWKS and its tokens expired already.
    app.clock.advance(Duration::from_secs(301));
    let rotated = app
        .call(Method::POST, "/api/admin/signing-keys/rotate", &admin, None)
        .await;
    assert_eq!(rotated.status(), 200);
    app.clock.advance(Duration::from_secs(16 * 60 + 1));
    app.services
        .keyring
        .maintain(app.clock_now())
        .await
        .unwrap();
    let admin = app.admin_token().await;
    assert_eq!(status_of(&keys(&app).await, &kid), "retired");
    assert_error(
        withdraw(&app, &admin, &kid, json!({"reason": REASON})).await,
        409,
        "CONFLICT",
    )
    .await;

    // Admins of the default tenant only; failures are audited too.
    app.create_user("kim", "kim-password", &[], json!({})).await;
    let kim = app.log_in("kim", "kim-password").await;
    let current = app.current_kid();
    assert_error(
        withdraw(&app, &kim.access_token, &current, json!({"reason": REASON})).await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    app.create_tenant(&admin, "acme").await;
    app.create_tenant_user(&admin, "acme", "root", &["admin"], &[])
        .await;
    let acme = app.tenant_login("acme", "root").await;
    assert_error(
        withdraw(
            &app,
            acme["access_token"].as_str().unwrap(),
            &current,
            json!({"reason": REASON}),
        )
        .await,
        403,
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    assert_eq!(status_of(&keys(&app).await, &current), "current");
}

#[derive(Debug, Clone)]
enum Op {
    /// Withdraw the key in this state (by position among the listed keys of it).
    Withdraw(&'static str),
    /// A manual rotation (refused while the next key is too young: fine).
    Rotate,
    /// The periodic maintenance of an instance (retire, publish next, scheduled rotation).
    Maintain,
    /// The clock moves on.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![Just("current"), Just("next"), Just("retiring"), Just("retired"), Just("withdrawn")]
            .prop_map(Op::Withdraw),
        3 => Just(Op::Rotate),
        2 => Just(Op::Maintain),
        3 => prop_oneof![Just(60u64), Just(301), Just(961), Just(86_400)].prop_map(Op::Wait),
    ]
}

/// The key lifecycle as the contract states it (docs/operations.md, "Signing keys and
/// JWKS", and the withdrawal rules of docs/api.md), written without the service's code:
/// each key's state and times, in seconds of the test's clock.
#[derive(Debug, Clone)]
struct ModelKey {
    kid: String,
    status: &'static str,
    created: u64,
    deactivated: Option<u64>,
}

/// JWKS `max-age` (pre-publication) and access TTL + clock skew (retirement) of the app.
const LEAD: u64 = 300;
const RETIRE_AFTER: u64 = 15 * 60 + 60;

#[derive(Debug, Default)]
struct Model {
    keys: Vec<ModelKey>,
    now: u64,
}

/// What a step answers, and which new keys it makes (their states).
struct Expected {
    status: u16,
    fresh: Vec<&'static str>,
}

impl Model {
    fn set(&mut self, kid: &str, status: &'static str) {
        if let Some(key) = self.keys.iter_mut().find(|k| k.kid == kid) {
            if status == "retiring" {
                key.deactivated = Some(self.now);
            }
            key.status = status;
        }
    }

    fn with(&self, status: &str) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.status == status)
            .map(|k| k.kid.clone())
            .collect()
    }

    fn withdraw(&mut self, kid: &str) -> Expected {
        let status = self.keys.iter().find(|k| k.kid == kid).map(|k| k.status);
        match status {
            Some("current") => {
                self.set(kid, "withdrawn");
                for next in self.with("next") {
                    self.set(&next, "withdrawn");
                }
                Expected {
                    status: 200,
                    fresh: vec!["current", "next"],
                }
            }
            Some("next") => {
                self.set(kid, "withdrawn");
                Expected {
                    status: 200,
                    fresh: vec!["next"],
                }
            }
            Some("retiring") => {
                self.set(kid, "withdrawn");
                Expected {
                    status: 200,
                    fresh: vec![],
                }
            }
            Some("retired") => Expected {
                status: 409,
                fresh: vec![],
            },
            _ => Expected {
                status: 200,
                fresh: vec![],
            },
        }
    }

    fn rotate(&mut self) -> Expected {
        let ready = self
            .keys
            .iter()
            .find(|k| k.status == "next")
            .filter(|k| self.now >= k.created + LEAD)
            .map(|k| k.kid.clone());
        let Some(next) = ready else {
            return Expected {
                status: 409,
                fresh: vec![],
            };
        };
        for current in self.with("current") {
            self.set(&current, "retiring");
        }
        self.set(&next, "current");
        Expected {
            status: 200,
            fresh: vec!["next"],
        }
    }

    /// Whether a retiring key may have left JWKS by now (every instance retires it on its
    /// own schedule once its tokens have all expired).
    fn due(&self, key: &ModelKey) -> bool {
        key.status == "retiring"
            && key
                .deactivated
                .is_some_and(|at| self.now >= at + RETIRE_AFTER)
    }

    /// Takes the keys a step made (`fresh`, by state) from the listing, and the
    /// retirements that were due; then every key must be listed in the model's state.
    fn check(&mut self, listed: &[Value], fresh: &[&'static str]) -> Result<(), TestCaseError> {
        for key in listed {
            let kid = key["kid"].as_str().unwrap();
            let status = key["status"].as_str().unwrap();
            if let Some(known) = self.keys.iter().position(|k| k.kid == kid) {
                if status == "retired" && self.due(&self.keys[known]) {
                    self.keys[known].status = "retired";
                }
                continue;
            }
            let wanted = fresh.iter().find(|s| **s == status);
            prop_assert!(wanted.is_some(), "an unexpected new {} key {}", status, kid);
            let status = *wanted.unwrap();
            self.keys.push(ModelKey {
                kid: kid.to_owned(),
                status,
                created: self.now,
                deactivated: None,
            });
        }
        prop_assert_eq!(listed.len(), self.keys.len(), "{:?}", listed);
        for key in &self.keys {
            prop_assert_eq!(
                status_of(listed, &key.kid),
                key.status,
                "{}: {:?}",
                key.kid,
                self
            );
        }
        Ok(())
    }
}

/// Random steps checked against the reference model after each one: every key's state,
/// the keys JWKS publishes (`next`, `current`, `retiring`), the key that signs (the one
/// `current`). And a token signed by a key before its withdrawal is refused as revoked
/// after it, at every later step.
async fn run_lifecycle(app: &TestApp, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    model.check(&keys(app).await, &["current", "next"])?;
    let mut signed_by_withdrawn: Vec<String> = Vec::new();
    for op in ops {
        let admin = app.admin_token().await;
        let listed = keys(app).await;
        model.check(&listed, &[])?;
        let (answer, expected) = match op {
            Op::Withdraw(status) => {
                let Some(kid) = kid_with(&listed, status).into_iter().next() else {
                    continue;
                };
                if status == "current" {
                    // Signed by the key about to be withdrawn.
                    signed_by_withdrawn.push(admin.clone());
                }
                let expected = model.withdraw(&kid);
                (
                    withdraw(app, &admin, &kid, json!({"reason": REASON}))
                        .await
                        .status(),
                    expected,
                )
            }
            Op::Rotate => {
                let expected = model.rotate();
                let answer = app
                    .call(Method::POST, "/api/admin/signing-keys/rotate", &admin, None)
                    .await;
                (answer.status(), expected)
            }
            Op::Maintain => {
                app.services
                    .keyring
                    .maintain(app.clock_now())
                    .await
                    .unwrap();
                continue;
            }
            Op::Wait(secs) => {
                app.clock.advance(Duration::from_secs(secs));
                model.now += secs;
                continue;
            }
        };
        prop_assert_eq!(answer.as_u16(), expected.status, "{:?}", model);
        model.check(&keys(app).await, &expected.fresh)?;
        let published = jwks_kids(&fetch_jwks(app).await);
        let mut want: BTreeSet<String> = BTreeSet::new();
        for status in ["next", "current", "retiring"] {
            want.extend(model.with(status));
        }
        // A due retiring key may still be published by this instance for a moment.
        let due: BTreeSet<String> = model
            .keys
            .iter()
            .filter(|k| model.due(k))
            .map(|k| k.kid.clone())
            .collect();
        prop_assert!(
            published.is_subset(&want) && want.difference(&published).all(|k| due.contains(k)),
            "published {:?}, the model's {:?}",
            published,
            want
        );
        let signer = app.admin_token().await;
        let signer_kid = jwt_part(&signer, 0)["kid"].as_str().unwrap().to_owned();
        prop_assert_eq!(signer_kid, model.with("current")[0].clone());
        for token in &signed_by_withdrawn {
            let me = app.get_me(token).await;
            prop_assert_eq!(me.status().as_u16(), 401);
            let body: Value = me.json().await.unwrap();
            prop_assert_eq!(&body["error"], "TOKEN_REVOKED", "{}", body);
        }
    }
    Ok(())
}

#[test]
fn the_key_lifecycle_follows_its_model_and_a_withdrawn_key_never_signs_verifies_or_is_published() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 20,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..12), |ops| {
        runtime.block_on(async {
            // A fresh keyring for each case: the sequence starts from a first start.
            let app = spawn_app_with(|_| {}).await;
            run_lifecycle(&app, ops).await
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[tokio::test]
async fn with_redis_unreachable_jwks_logins_and_withdrawal_go_on_from_the_database() {
    let closed = crate::helpers::free_port();
    let app = spawn_app_with(|s| {
        s.redis_url = Some(format!("redis://127.0.0.1:{closed}").into());
        s.redis_prefix = "withdrawal-outage:".to_owned();
    })
    .await;
    let kid = app.current_kid();
    assert!(jwks_kids(&fetch_jwks(&app).await).contains(&kid));
    let before = app.admin_token().await;
    assert_eq!(jwt_part(&before, 0)["kid"], kid.as_str());

    // The operator's command line: the use case itself (an admin's bearer cannot be
    // checked without the list).
    let withdrawal = tokenmint::keys::admin::Withdrawal {
        reason: tokenmint::keys::admin::WithdrawReason::parse(REASON).unwrap(),
        end_sessions: false,
    };
    let listed = app
        .services
        .signing_keys
        .withdraw(
            &tokenmint::model::Admin::operator(),
            kid.clone(),
            withdrawal,
            app.clock_now(),
        )
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.kid == kid && k.status.as_str() == "withdrawn")
    );
    assert!(!jwks_kids(&fetch_jwks(&app).await).contains(&kid));
    let after = app.admin_token().await;
    assert_ne!(jwt_part(&after, 0)["kid"], kid.as_str());
}

#[tokio::test]
async fn a_burst_of_withdrawals_and_rotations_leaves_one_current_key_and_the_kid_withdrawn() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, operator) = app.api_key(&admin, &["admin"]).await;
    let kid = app.current_kid();
    // The next key may sign: rotations race the withdrawals for real.
    app.clock.advance(Duration::from_secs(301));
    let withdrawals = (0..8).map(|_| withdraw(&app, &operator, &kid, json!({"reason": REASON})));
    let rotations = (0..4).map(|_| {
        app.call(
            Method::POST,
            "/api/admin/signing-keys/rotate",
            &operator,
            None,
        )
    });
    let (withdrawn, rotated) = tokio::join!(
        futures_util::future::join_all(withdrawals),
        futures_util::future::join_all(rotations)
    );
    for answer in withdrawn {
        assert_eq!(answer.status(), 200, "every withdrawal of the kid holds");
    }
    for answer in rotated {
        assert!([200, 409].contains(&answer.status().as_u16()));
    }
    let listed = keys(&app).await;
    assert_eq!(status_of(&listed, &kid), "withdrawn");
    assert_eq!(kid_with(&listed, "current").len(), 1, "{listed:?}");
    assert_eq!(kid_with(&listed, "next").len(), 1, "{listed:?}");
    assert_error(app.get_me(&admin).await, 401, "TOKEN_REVOKED").await;
    assert!(!jwks_kids(&fetch_jwks(&app).await).contains(&kid));
    let fresh = app.admin_token().await;
    assert_eq!(app.get_me(&fresh).await.status(), 200);
    assert_ne!(jwt_part(&fresh, 0)["kid"], kid.as_str());
    // One audit row per withdrawal asked for.
    let page = app.get_json("/api/admin/audit?limit=100", &fresh).await;
    let rows = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "signing_key.withdraw")
        .count();
    assert_eq!(rows, 8);
}
